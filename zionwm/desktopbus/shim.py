"""The programs zionwm puts first on PATH in a desktop with its own bus.

`xdg-open` hands its one argument to zionwm's org.zionwm.Open service on the desktop's bus
(so the compositor opens a link, or sends a file, where the desktop's config says) instead
of looking for a handler inside the sandbox. The argument travels as one D-Bus string
("string:" keeps dbus-send from reading it as an option); all checking happens on zionwm's
side.
"""

from __future__ import annotations

from . import policy

XDG_OPEN = f"""#!/bin/sh
# zionwm: links and files go to the desktop the config names (see docs/desktop-bus.md)
if [ "$#" -ne 1 ]; then
    echo "usage: xdg-open URL|FILE" >&2
    exit 1
fi
call() {{
    exec dbus-send --session --print-reply=literal --dest={policy.OPEN_NAME} \\
        {policy.OPEN_PATH} {policy.OPEN_INTERFACE}."$1" "string:$2" >/dev/null
}}
case "$1" in
    file://*) call OpenFile "${{1#file://}}" ;;
    *:*) call OpenURI "$1" ;;
    /*) call OpenFile "$1" ;;
    *) call OpenFile "$PWD/$1" ;;
esac
""".encode()

PROGRAMS: tuple[tuple[str, bytes], ...] = (("xdg-open", XDG_OPEN),)

# GLib (`gio open`, g_app_info_launch_default_for_uri) does not call xdg-open: it looks up
# the default handler of x-scheme-handler/http(s). This desktop entry and default make that
# handler the xdg-open above. The desktop's own ~/.config/mimeapps.list still wins.
SHARE_DIR = "/run/zionwm/share"
XDG_DIR = "/run/zionwm/xdg"
OPEN_DESKTOP_ENTRY = b"""[Desktop Entry]
Type=Application
Name=Open in the desktop zionwm's config names
Exec=/run/zionwm/bin/xdg-open %u
NoDisplay=true
MimeType=x-scheme-handler/http;x-scheme-handler/https;
"""
MIMEAPPS = b"""[Default Applications]
x-scheme-handler/http=zionwm-open.desktop
x-scheme-handler/https=zionwm-open.desktop
"""
FILES: tuple[tuple[str, bytes], ...] = (
    (f"{SHARE_DIR}/applications/zionwm-open.desktop", OPEN_DESKTOP_ENTRY),
    (f"{XDG_DIR}/mimeapps.list", MIMEAPPS),
)
# GTK 3 and Firefox use the FileChooser and OpenURI portals only when told to (outside
# Flatpak); GTK 4 the same with GDK_DEBUG=portals. Settings they read on their own.
ENV: tuple[tuple[str, str], ...] = (
    ("XDG_DATA_DIRS", f"{SHARE_DIR}:/usr/local/share:/usr/share"),
    ("XDG_CONFIG_DIRS", f"{XDG_DIR}:/etc/xdg"),
    ("GTK_USE_PORTAL", "1"),
    ("GDK_DEBUG", "portals"),
)
