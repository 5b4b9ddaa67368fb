"""An X11 program that renames its window without pause, run *inside* a desktop's sandbox by
Debian's /usr/bin/python3 (stdlib ctypes over libX11; the test passes this file's text with
`python3 -c`).

Usage: python3 -c SRC
It maps a 200x100 window titled "zt-title-0", then sets its title to "zt-title-N" for
N = 1, 2, ... every millisecond or so, each one flushed: a steady stream of PropertyNotify
events the window manager answers with round trips to the X server.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time


def main() -> None:
    x = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    x.XOpenDisplay.restype = ctypes.c_void_p
    x.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x.XDefaultRootWindow.restype = ctypes.c_ulong
    x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x.XCreateSimpleWindow.restype = ctypes.c_ulong
    x.XCreateSimpleWindow.argtypes = (
        [ctypes.c_void_p, ctypes.c_ulong]
        + [ctypes.c_int] * 2
        + [ctypes.c_uint] * 3
        + [ctypes.c_ulong] * 2
    )
    x.XStoreName.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_char_p]
    x.XMapWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    x.XFlush.argtypes = [ctypes.c_void_p]
    dpy = x.XOpenDisplay(None)
    if not dpy:
        raise SystemExit("cannot open the display")
    win = x.XCreateSimpleWindow(dpy, x.XDefaultRootWindow(dpy), 0, 0, 200, 100, 0, 0, 0xFFFFFF)
    x.XStoreName(dpy, win, b"zt-title-0")
    x.XMapWindow(dpy, win)
    x.XFlush(dpy)
    n = 0
    while True:
        n += 1
        x.XStoreName(dpy, win, b"zt-title-%d" % n)
        x.XFlush(dpy)
        time.sleep(0.001)


if __name__ == "__main__":
    main()
