import sys

from zionwm.manager.app import main

sys.exit(main())
