"""A tiny X11 program with a popup, run *inside* a desktop's sandbox by Debian's
/usr/bin/python3 (stdlib ctypes over libX11; the test passes this file's text with
`python3 -c`).

Usage: python3 -c SRC OUT
It maps a 240x160 toplevel titled "zt-popup", waits until the window manager has placed it,
then does what a toolkit does for a menu: reads the toplevel's position on the root window
and maps an override-redirect 90x70 red window at (+30, +40) from it, and a 60x50 blue one
at (+140, +40) that is created as an ordinary window and made override-redirect just
before it is mapped (as some toolkits do). Writes one JSON object to OUT (renamed into
place when complete):
    {"toplevel": [x, y], "popup": [x, y, w, h], "late": [x, y, w, h]}
and keeps both windows up until it is killed (or 60 s).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import sys
import time


class XSetWindowAttributes(ctypes.Structure):
    _fields_ = [
        ("background_pixmap", ctypes.c_ulong),
        ("background_pixel", ctypes.c_ulong),
        ("border_pixmap", ctypes.c_ulong),
        ("border_pixel", ctypes.c_ulong),
        ("bit_gravity", ctypes.c_int),
        ("win_gravity", ctypes.c_int),
        ("backing_store", ctypes.c_int),
        ("backing_planes", ctypes.c_ulong),
        ("backing_pixel", ctypes.c_ulong),
        ("save_under", ctypes.c_int),
        ("event_mask", ctypes.c_long),
        ("do_not_propagate_mask", ctypes.c_long),
        ("override_redirect", ctypes.c_int),
        ("colormap", ctypes.c_ulong),
        ("cursor", ctypes.c_ulong),
    ]


CW_BACK_PIXEL = 1 << 1
CW_OVERRIDE_REDIRECT = 1 << 9
COPY_FROM_PARENT = 0
INPUT_OUTPUT = 1


def main(out: str) -> None:
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
    x.XCreateWindow.restype = ctypes.c_ulong
    x.XCreateWindow.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.POINTER(XSetWindowAttributes),
    ]
    x.XStoreName.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_char_p]
    x.XMapWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    x.XChangeWindowAttributes.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.POINTER(XSetWindowAttributes),
    ]
    x.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x.XTranslateCoordinates.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_ulong),
    ]
    dpy = x.XOpenDisplay(None)
    if not dpy:
        raise SystemExit("cannot open the display")
    root = x.XDefaultRootWindow(dpy)
    top = x.XCreateSimpleWindow(dpy, root, 0, 0, 240, 160, 0, 0, 0xFFFFFF)
    x.XStoreName(dpy, top, b"zt-popup")
    x.XMapWindow(dpy, top)
    x.XSync(dpy, 0)

    def where() -> tuple[int, int]:
        rx, ry, child = ctypes.c_int(), ctypes.c_int(), ctypes.c_ulong()
        x.XTranslateCoordinates(dpy, top, root, 0, 0, rx, ry, child)
        return rx.value, ry.value

    # the window manager places it when it maps: wait until the place holds still
    last, still, deadline = where(), 0, time.monotonic() + 20
    while still < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
        now = where()
        still = still + 1 if now == last and now != (0, 0) else 0
        last = now
    attrs = XSetWindowAttributes()
    attrs.override_redirect = 1
    attrs.background_pixel = 0xFF0000
    px, py = last[0] + 30, last[1] + 40
    popup = x.XCreateWindow(
        dpy,
        root,
        px,
        py,
        90,
        70,
        0,
        COPY_FROM_PARENT,
        INPUT_OUTPUT,
        None,
        CW_BACK_PIXEL | CW_OVERRIDE_REDIRECT,
        ctypes.byref(attrs),
    )
    x.XMapWindow(dpy, popup)
    lx, ly = last[0] + 140, last[1] + 40
    late = x.XCreateSimpleWindow(dpy, root, lx, ly, 60, 50, 0, 0, 0x0000FF)
    x.XSync(dpy, 0)
    late_attrs = XSetWindowAttributes()
    late_attrs.override_redirect = 1
    x.XChangeWindowAttributes(dpy, late, CW_OVERRIDE_REDIRECT, ctypes.byref(late_attrs))
    x.XMapWindow(dpy, late)
    x.XSync(dpy, 0)
    with open(out + ".tmp", "w") as f:
        json.dump({"toplevel": list(last), "popup": [px, py, 90, 70], "late": [lx, ly, 60, 50]}, f)
    os.rename(out + ".tmp", out)
    time.sleep(60)


if __name__ == "__main__":
    main(sys.argv[1])
