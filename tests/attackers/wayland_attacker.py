"""A hostile Wayland client, run INSIDE a desktop's sandbox by the attack tests.

Run by the system's python3 in the sandbox (stdlib only, next to a copy of tests/wire.py):
`python3 wayland_attacker.py ATTACK JSON-ARGS`. It writes one JSON object to stdout, and
files it is asked for into its working directory. Attacks that must watch for a while run
until a file named `stop` appears in that directory (the test creates it) or their deadline
passes.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from wire import Event, WireClient, _string

SOCKET = Path(os.environ.get("XDG_RUNTIME_DIR", "/run/user/0")) / os.environ.get(
    "WAYLAND_DISPLAY", "wayland-0"
)
KEYBOARD_EVENTS = {0: "keymap", 1: "enter", 2: "leave", 3: "key", 4: "modifiers", 5: "repeat_info"}


def stopped(deadline: float) -> bool:
    return Path("stop").exists() or time.monotonic() > deadline


def error_text(ev: Event) -> dict[str, Any]:
    obj, code = struct.unpack_from("=II", ev.payload)
    text, _ = ev.string(8)
    return {"object": obj, "code": code, "message": text}


def bind_by_number(args: dict[str, Any]) -> dict[str, Any]:
    """Bind globals by number, whatever the registry advertised; report each answer."""
    out = []
    for name, iface, version in args["probes"]:
        c = WireClient(SOCKET)
        oid = c.new_id()
        c.send(
            c.registry,
            0,
            struct.pack("=I", name) + _string(iface) + struct.pack("=II", version, oid),
        )
        answer: dict[str, Any] = {"bound": True, "message": "", "code": None}
        try:
            c.roundtrip()
        except ConnectionError:  # closed (even before our sync went out): read what came
            answer["bound"] = False
            c.disconnected(5.0)
        if c.errors:
            answer = {"bound": False, **error_text(c.errors[0])}
        c.close()
        out.append({"name": name, "interface": iface, "version": version, **answer})
    seen = WireClient(SOCKET)
    seen.close()
    return {"probes": out, "advertised": {i: n for i, (n, _v) in seen.globals.items()}}


def watch_keyboard(c: WireClient, seconds: float, activate: bool = False) -> dict[str, Any]:
    """Map a window, hold a wl_keyboard, and record every keyboard event until told to stop.
    With `activate`, ask xdg-activation again and again to be focused (a self-made token)."""
    surface = c.map_toplevel(200, 120, 0xFF00FF00)
    seat = c.bind("wl_seat", 5)
    kbd = c.new_id()
    c.send(seat, 1, struct.pack("=I", kbd))  # wl_seat.get_keyboard
    c.roundtrip()
    c.events = [e for e in c.events if e.obj == kbd]  # what arrived on binding is our own doing
    baseline = [KEYBOARD_EVENTS.get(e.opcode, str(e.opcode)) for e in c.events]
    c.events.clear()
    Path("ready").write_text("1")
    activation = c.bind("xdg_activation_v1", 1) if activate else 0
    attempts = 0
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while not stopped(deadline):
        if activation:
            token = c.new_id()
            c.send(activation, 1, struct.pack("=I", token))  # get_activation_token
            c.send(token, 2, struct.pack("=I", surface))  # set_surface
            c.send(token, 3)  # commit
            done = c.wait_event(token, 0)
            text, _ = done.string(0)
            c.send(activation, 2, _string(text) + struct.pack("=I", surface))  # activate
            c.send(token, 4)  # destroy
            attempts += 1
        if not c.read(0.05):
            break
        for e in c.events:
            if e.obj == kbd:
                seen.append(
                    {"event": KEYBOARD_EVENTS.get(e.opcode, str(e.opcode)), "t": time.monotonic()}
                )
        c.events.clear()
    return {
        "on_bind": baseline,
        "events": seen,
        "activations": attempts,
        "errors": [error_text(e) for e in c.errors],
    }


def keylog(args: dict[str, Any]) -> dict[str, Any]:
    return watch_keyboard(
        WireClient(SOCKET), float(args.get("seconds", 60)), bool(args.get("activate"))
    )


def big_window(args: dict[str, Any]) -> dict[str, Any]:
    """Map a window (bigger than the screen, say) and ignore every configure that asks it to
    change; paint bars in another desktop's colour along its edges, where a frame would be,
    and with `inset` declare a window geometry that puts those bars outside the window."""
    w, h = int(args["width"]), int(args["height"])
    c = WireClient(SOCKET)
    shm, surface, xsurf, top = c.new_toplevel()
    c.configure(surface, xsurf)
    body, bar = int(args["body"], 16), int(args["bar"], 16)
    buffer = striped_buffer(c, shm, w, h, body, bar, int(args.get("bar_height", 8)))
    inset = int(args.get("inset", 0))
    if inset:  # declare a window smaller than the buffer: the bars lie where the frame goes
        geometry = struct.pack("=iiii", inset, inset, w - 2 * inset, h - 2 * inset)
        c.send(xsurf, 3, geometry)  # xdg_surface.set_window_geometry
    c.show(surface, buffer, w, h)
    c.roundtrip()
    Path("ready").write_text("1")
    configures = []
    deadline = time.monotonic() + float(args.get("seconds", 60))
    while not stopped(deadline):
        if not c.read(0.1):
            break
        for e in c.events:
            if e.obj == top and e.opcode == 0:  # xdg_toplevel.configure: ignored on purpose
                configures.append(list(struct.unpack_from("=ii", e.payload)))
        c.events.clear()
    return {"configures": configures}


def striped_buffer(c: WireClient, shm: int, w: int, h: int, body: int, bar: int, bar_h: int) -> int:
    import mmap

    stride = w * 4
    size = stride * h
    fd = os.memfd_create("attacker-shm", os.MFD_CLOEXEC)
    os.ftruncate(fd, size)
    with mmap.mmap(fd, size) as m:
        bar_row = struct.pack("=I", bar) * w
        body_row = (
            struct.pack("=I", bar) * bar_h
            + struct.pack("=I", body) * (w - 2 * bar_h)
            + struct.pack("=I", bar) * bar_h
        )
        for y in range(h):
            m.write(bar_row if y < bar_h or y >= h - bar_h else body_row)
    pool = c.new_id()
    c.send(shm, 0, struct.pack("=Ii", pool, size), fds=(fd,))
    buffer = c.new_id()
    c.send(pool, 0, struct.pack("=Iiiiii", buffer, 0, w, h, stride, 0))
    os.close(fd)
    return buffer


def connect(args: dict[str, Any]) -> dict[str, Any]:
    """Try to reach Wayland sockets by path: the host's, other desktops', guessed ones."""
    out = {}
    for path in args["paths"]:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            out[path] = "connected"
        except OSError as e:
            out[path] = errno.errorcode.get(e.errno or 0, str(e))
        finally:
            s.close()
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    listing = sorted(os.listdir(runtime)) if runtime and os.path.isdir(runtime) else []
    return {"results": out, "runtime_dir": runtime, "runtime_listing": listing}


def garbage(args: dict[str, Any]) -> dict[str, Any]:
    """Random bytes instead of Wayland messages."""
    import random

    c = WireClient(SOCKET)
    c.sock.send(bytes(random.Random(int(args.get("seed", 7))).getrandbits(8) for _ in range(16384)))
    return {"disconnected": c.disconnected(10.0)}


def truncated_shm(args: dict[str, Any]) -> dict[str, Any]:
    """Map a window whose shm pool is cut to nothing behind the compositor's back (reading
    it would fault in the compositor)."""
    c = WireClient(SOCKET)
    shm, surface, xs, _top = c.new_toplevel()
    c.configure(surface, xs)
    c.show(surface, c.shm_buffer(shm, 64, 64, 0xFFFF0000, truncate_after=True), 64, 64)
    gone = c.disconnected(10.0)
    return {"disconnected": gone, "errors": [error_text(e) for e in c.errors]}


def inhibit_idle(args: dict[str, Any]) -> dict[str, Any]:
    """Map a window and hold an idle inhibitor on it (as a video player does), to keep the
    screen from locking, until told to stop."""
    c = WireClient(SOCKET)
    surface = c.map_toplevel(200, 120, 0xFF0000FF)
    manager = c.bind("zwp_idle_inhibit_manager_v1", 1)
    inhibitor = c.new_id()
    c.send(manager, 1, struct.pack("=II", inhibitor, surface))  # create_inhibitor
    c.roundtrip()
    Path("ready").write_text("1")
    deadline = time.monotonic() + float(args.get("seconds", 60))
    while not stopped(deadline):
        if not c.read(0.1):
            break
        c.events.clear()
    return {"errors": [error_text(e) for e in c.errors]}


ATTACKS = {
    "inhibit-idle": inhibit_idle,
    "garbage": garbage,
    "truncated-shm": truncated_shm,
    "bind-by-number": bind_by_number,
    "keylog": keylog,
    "big-window": big_window,
    "connect": connect,
}

if __name__ == "__main__":
    result = ATTACKS[sys.argv[1]](json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
    print(json.dumps(result))
