"""`zionwm-manager`: refuse to start anywhere but on zionwm's host socket, then run the GTK
window. The GTK modules are imported only after the check, so a refusal costs no toolkit
start-up and works where GTK is missing."""

from __future__ import annotations

import logging
import os
import sys
import time

from zionwm.manager import trust
from zionwm.manager.client import Control, ControlError

log = logging.getLogger(__name__)
EXIT_NO_COMPOSITOR = 2


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    logging.basicConfig(
        level=os.environ.get("ZIONWM_LOG", "warning").upper(),
        format="zionwm-manager: %(levelname)s %(name)s: %(message)s",
    )
    env = dict(os.environ)
    why = trust.refusal(env, None)
    if why:
        print(f"zionwm-manager: refused: {why}", file=sys.stderr)
        return trust.EXIT_REFUSED
    try:
        control = Control()
        status = control.request("status")
    except ControlError as exc:
        print(f"zionwm-manager: {exc}", file=sys.stderr)
        return EXIT_NO_COMPOSITOR
    why = trust.refusal(env, str(status.get("host_socket") or "") or None)
    if why:
        control.close()
        print(f"zionwm-manager: refused: {why}", file=sys.stderr)
        return trust.EXIT_REFUSED
    try:
        from zionwm.manager import gtk_app  # noqa: PLC0415 - after the trust check
    except (ImportError, ValueError) as exc:
        print(
            f"zionwm-manager: GTK 4 and libadwaita are not available ({exc}); install the "
            "Debian packages gir1.2-gtk-4.0 and gir1.2-adw-1 and the 'manager' extra",
            file=sys.stderr,
        )
        return EXIT_NO_COMPOSITOR
    return gtk_app.run(control, status, started, argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
