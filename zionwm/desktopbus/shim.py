"""The programs zionwm puts first on PATH in a desktop with its own bus.

`xdg-open` hands its one argument to zionwm's org.zionwm.Open service on the desktop's bus
(so the compositor opens a link, or sends a file, where the desktop's config says) instead
of looking for a handler inside the sandbox. The argument travels as one D-Bus string
("string:" keeps dbus-send from reading it as an option); all checking happens on zionwm's
side.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

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
# the default handler of the link's scheme (x-scheme-handler/...) or of the file's MIME type,
# and GIO_USE_PORTALS does not change that in GLib 2.74 (`gio open` still started the host's
# handlers with it). So the sandbox's XDG config names the xdg-open above as the default for
# the schemes below and for every MIME type the system's database knows: links come as %u,
# files as %f (a plain path, so a name with spaces arrives unescaped). A scheme other than
# http(s) reaches zionwm too and is refused there with a notice, not opened in the sandbox.
# The desktop's own ~/.config/mimeapps.list still wins: a program may open its own
# desktop's files in its own desktop, never in another one.
SHARE_DIR = "/run/zionwm/share"
XDG_DIR = "/run/zionwm/xdg"
MIME_TYPES = "/usr/share/mime/types"
SCHEMES = ("http", "https", "mailto")
# used when the system has no MIME database to read (a minimal image)
COMMON_TYPES = (
    "application/octet-stream",
    "application/pdf",
    "text/plain",
    "text/html",
    "image/png",
    "image/jpeg",
)
LINK_ENTRY = "zionwm-open.desktop"
FILE_ENTRY = "zionwm-open-file.desktop"
OPEN_DESKTOP_ENTRY = b"""[Desktop Entry]
Type=Application
Name=Open in the desktop zionwm's config names
Exec=/run/zionwm/bin/xdg-open %u
NoDisplay=true
MimeType=x-scheme-handler/http;x-scheme-handler/https;x-scheme-handler/mailto;
"""
OPEN_FILE_ENTRY = b"""[Desktop Entry]
Type=Application
Name=Open in the desktop zionwm's config names
Exec=/run/zionwm/bin/xdg-open %f
NoDisplay=true
"""


def mimeapps(types: Iterable[str]) -> bytes:
    """The sandbox's mimeapps.list: zionwm's xdg-open is the default for the link schemes
    and for each of `types` (lines that are not a plain type/subtype are left out)."""
    lines = ["[Default Applications]"]
    lines += [f"x-scheme-handler/{s}={LINK_ENTRY}" for s in SCHEMES]
    seen: set[str] = set()
    for raw in types:
        t = raw.strip()
        if t in seen or not _MIME.fullmatch(t):
            continue
        seen.add(t)
        lines.append(f"{t}={FILE_ENTRY}")
    return ("\n".join(lines) + "\n").encode()


_MIME = re.compile(r"[a-z0-9][a-z0-9.+_-]*/[A-Za-z0-9][A-Za-z0-9.+_-]*")


@functools.cache
def files() -> tuple[tuple[str, bytes], ...]:
    """The files put in a sandbox with its own bus (read once: the MIME database of the
    system, which the sandbox sees read-only, lists the types)."""
    try:
        with open(MIME_TYPES, encoding="utf-8") as f:
            types = [*COMMON_TYPES, *f.read().splitlines()]
    except (OSError, UnicodeDecodeError):
        types = list(COMMON_TYPES)
    return (
        (f"{SHARE_DIR}/applications/{LINK_ENTRY}", OPEN_DESKTOP_ENTRY),
        (f"{SHARE_DIR}/applications/{FILE_ENTRY}", OPEN_FILE_ENTRY),
        (f"{XDG_DIR}/mimeapps.list", mimeapps(types)),
    )


# GTK 3 and Firefox use the FileChooser and OpenURI portals only when told to (outside
# Flatpak); GTK 4 the same with GDK_DEBUG=portals. Settings they read on their own.
ENV: tuple[tuple[str, str], ...] = (
    ("XDG_DATA_DIRS", f"{SHARE_DIR}:/usr/local/share:/usr/share"),
    ("XDG_CONFIG_DIRS", f"{XDG_DIR}:/etc/xdg"),
    ("GTK_USE_PORTAL", "1"),
    ("GDK_DEBUG", "portals"),
)
