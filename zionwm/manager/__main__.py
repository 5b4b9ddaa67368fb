import sys

from zionwm.manager.app import main

if __name__ == "__main__":
    sys.exit(main())
