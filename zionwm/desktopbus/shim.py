"""The programs zionwm puts first on PATH in a desktop with its own bus.

`xdg-open` hands its one argument to zionwm's org.zionwm.Open service on the desktop's bus
(so the compositor opens a link where the desktop's config says) instead of looking for a
handler inside the sandbox. The argument travels as one D-Bus string ("string:" keeps
dbus-send from reading it as an option); all checking happens on zionwm's side.
"""

from __future__ import annotations

from . import policy

XDG_OPEN = f"""#!/bin/sh
# zionwm: links go to the desktop the config names (see docs/desktop-bus.md)
if [ "$#" -ne 1 ]; then
    echo "usage: xdg-open URL" >&2
    exit 1
fi
exec dbus-send --session --print-reply=literal --dest={policy.OPEN_NAME} \\
    {policy.OPEN_PATH} {policy.OPEN_INTERFACE}.OpenURI "string:$1" >/dev/null
""".encode()

PROGRAMS: tuple[tuple[str, bytes], ...] = (("xdg-open", XDG_OPEN),)
