"""The compositor core against real clients: windows on screen, keyboard, popups,
fullscreen, misbehaving clients, leaks, and the libraries actually loaded."""

from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
from pathlib import Path

import pytest

from tests.harness import Compositor, colour_near, require, wait_for
from tests.inside import attacker, launch_inside
from tests.wire import WireClient

PERSONAL = "#3b82f6"  # the default config's colours
BACKGROUND = (0, 0, 0)  # the scene clears to black


def test_window_appears_where_reported_framed_in_desktop_colour(compositor: Compositor) -> None:
    require("weston-simple-shm")
    compositor.zionctl("launch", "personal", "--", "weston-simple-shm")
    (win,) = compositor.wait_window("personal", "org.freedesktop.weston.simple-shm")
    img = compositor.screenshot()
    x, y, w, h = win["x"], win["y"], win["width"], win["height"]
    assert (w, h) == (250, 250)
    # the frame, one pixel outside the window on each side, is the desktop's colour
    for px in ((x - 1, y + h // 2), (x + w, y + h // 2), (x + w // 2, y - 1), (x + w // 2, y + h)):
        assert colour_near(img.getpixel(px), PERSONAL), (px, img.getpixel(px))
    # the client's own pixels are there, not the background
    centre = img.getpixel((x + w // 2, y + h // 2))
    assert not colour_near(centre, "#{:02x}{:02x}{:02x}".format(*BACKGROUND))
    # and the indicator strip shows the active desktop's colour
    assert colour_near(img.getpixel((img.width - 5, 5)), PERSONAL)


def test_typed_text_reaches_a_terminal(compositor: Compositor) -> None:
    require("foot")
    # the terminal runs sandboxed: it writes into the desktop's own home
    out = compositor.desktop_home("personal") / "typed.txt"
    compositor.zionctl("launch", "personal", "--", "foot", "sh", "-c", "cat > ~/typed.txt")
    compositor.wait_window("personal", "foot")
    compositor.type_keys("hello zionwm\n")
    compositor.type_keys("-M", "ctrl", "d", "-m", "ctrl")
    wait_for(
        lambda: out.exists() and out.read_text() == "hello zionwm\n",
        15,
        "foot to write what wtype typed",
    )


def test_fullscreen_request_covers_the_area_below_the_strip(compositor: Compositor) -> None:
    """A program's own fullscreen request fills the output below the trust strip, framed
    (only the user's key may give more: tests/integration/test_ui.py)."""
    require("foot")
    compositor.zionctl("launch", "personal", "--", "foot", "--fullscreen")
    wait_for(
        lambda: [
            w
            for w in compositor.windows("personal")
            if w["fullscreen"] and (w["x"], w["y"], w["width"], w["height"]) == (3, 27, 1274, 690)
        ],
        15,
        "a fullscreen window filling the area below the strip",
    )
    img = compositor.screenshot()
    # the trust indicator is still drawn over the fullscreen window
    assert colour_near(img.getpixel((img.width - 5, 5)), PERSONAL)


def test_popup_maps(compositor: Compositor) -> None:
    """weston-terminal opens its context menu (an xdg_popup) on a right click."""
    require("weston-terminal")
    compositor.zionctl("launch", "personal", "--", "weston-terminal")
    (win,) = compositor.wait_window("personal")
    px, py = win["x"] + 100, win["y"] + 100
    vp = VirtualPointer(compositor)
    vp.move(px, py)
    vp.c.roundtrip()
    # the menu opens below and right of the pointer; look past the cursor image
    box = (px + 30, py + 30, px + 90, py + 60)
    before = compositor.screenshot().crop(box).tobytes()
    vp.click(px, py, button=0x111)  # BTN_RIGHT

    def changed() -> bool:
        return compositor.screenshot().crop(box).tobytes() != before

    wait_for(changed, 10, "the popup menu to appear under the pointer")
    assert compositor.alive()


class VirtualPointer:
    """Pointer input through zwlr_virtual_pointer_v1 on the host socket (a trusted tool)."""

    def __init__(self, comp: Compositor) -> None:
        self.c = WireClient(Path(comp.runtime) / comp.socket_name)
        mgr = self.c.bind("zwlr_virtual_pointer_manager_v1", 1)
        self.ptr = self.c.new_id()
        self.c.send(mgr, 0, struct.pack("=II", 0, self.ptr))  # create_virtual_pointer(null)
        self.t = 1

    def move(self, x: int, y: int) -> None:
        self.t += 1
        self.c.send(self.ptr, 1, struct.pack("=IIIII", self.t, x, y, 1280, 720))
        self.c.send(self.ptr, 4)  # frame

    def click(self, x: int, y: int, button: int = 0x110) -> None:
        self.move(x, y)
        for state in (1, 0):
            self.t += 1
            self.c.send(self.ptr, 2, struct.pack("=III", self.t, button, state))
            self.c.send(self.ptr, 4)
        self.c.roundtrip()


@pytest.mark.security
def test_misbehaving_clients_are_disconnected_and_others_keep_working(
    compositor: Compositor,
) -> None:
    require("weston-simple-shm")
    compositor.zionctl("launch", "personal", "--", "weston-simple-shm")
    compositor.wait_window("personal")

    # each attacker runs inside a desktop's sandbox, as a program of that desktop would
    # 1. garbage on a desktop socket
    got = attacker(compositor, "work", "garbage").wait().json()
    assert got["disconnected"], "a client sending garbage must be disconnected"

    # 2. a mapped window whose shm pool is truncated behind the compositor's back
    got = attacker(compositor, "personal", "truncated-shm").wait().json()
    assert got["disconnected"], "a client whose shm pool was truncated must be disconnected"
    assert "SHM" in got["errors"][0]["message"], got
    wait_for(lambda: len(compositor.windows("personal")) == 1, 10, "the bad window to go")

    # 3. a program killed with SIGKILL while drawing (its whole sandbox goes with it)
    victim = launch_inside(compositor, "personal", ["weston-simple-shm"])
    compositor.wait_window("personal", count=2)
    os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: len(compositor.windows("personal")) == 1, 10, "the killed window to go")

    # the compositor and the first client are fine and still drawing
    assert compositor.alive()
    assert len(compositor.windows("personal")) == 1
    good = WireClient(compositor.desktop_socket("personal"))
    good.map_toplevel()
    compositor.wait_window("personal", count=2)
    good.close()


def _rss_kib(pid: int) -> int:
    m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert m
    return int(m.group(1))


@pytest.mark.slow
def test_connect_map_disconnect_cycles_do_not_leak(compositor: Compositor) -> None:
    sock = compositor.desktop_socket("personal")
    assert compositor.proc is not None
    pid = compositor.proc.pid

    def cycle() -> None:
        c = WireClient(sock)
        c.map_toplevel(32, 32)
        c.close()

    for _ in range(30):  # warm up caches and allocator pools
        cycle()
    wait_for(lambda: not compositor.windows(), 10, "warm-up windows to go")
    start = _rss_kib(pid)
    for _ in range(200):
        cycle()
    wait_for(lambda: not compositor.windows(), 10, "all windows to go")
    grown = _rss_kib(pid) - start
    print(f"RSS start {start} KiB, growth after 200 cycles {grown} KiB")
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB over 200 map cycles"


def test_loaded_wayland_and_wlroots_are_the_system_ones(compositor: Compositor) -> None:
    assert compositor.proc is not None
    maps = Path(f"/proc/{compositor.proc.pid}/maps").read_text()
    libs = {
        line.split()[-1]
        for line in maps.splitlines()
        if "libwayland-server" in line or "libwlroots" in line
    }
    assert libs, "no libwayland-server/libwlroots mapped?"
    for lib in libs:
        assert lib.startswith(("/usr/lib/", "/lib/")), f"bundled copy loaded: {lib}"
    for wheel_libs in ("pywayland.libs/", "pywlroots.libs/", "xkbcommon.libs/"):
        assert wheel_libs not in maps, f"a binary wheel's bundled copy is loaded: {wheel_libs}"


def test_sigterm_shuts_down_cleanly(compositor: Compositor) -> None:
    require("weston-simple-shm")
    compositor.zionctl("launch", "personal", "--", "weston-simple-shm")
    compositor.wait_window("personal")
    assert compositor.proc is not None
    compositor.proc.send_signal(signal.SIGTERM)
    assert compositor.proc.wait(timeout=15) == 0
    assert not (compositor.runtime / "zionwm" / "ipc.sock").exists()
    assert not os.path.exists(compositor.desktop_socket("personal"))


def test_programs_start_with_no_blocked_signals(compositor: Compositor) -> None:
    """The compositor must not leak a blocked signal mask into what it starts: a program
    that cannot receive SIGTERM cannot be stopped politely."""
    out = compositor.desktop_home("work") / "sigblk"
    compositor.zionctl(
        "launch", "work", "--", "sh", "-c", "grep SigBlk /proc/self/status > ~/sigblk"
    )
    wait_for(lambda: out.exists() and out.read_text().strip(), 10, "the probe to run")
    assert int(out.read_text().split()[1], 16) == 0, out.read_text()


@pytest.mark.security
def test_trusted_layer_shell_client_draws_below_the_indicator(compositor: Compositor) -> None:
    """swaybg on the host socket paints the background layer; the same tool run inside a
    desktop's sandbox finds no layer-shell at all."""
    swaybg = require("swaybg")
    compositor.client([swaybg, "-c", "#ff8800"])
    wait_for(
        lambda: colour_near(compositor.screenshot().getpixel((640, 400)), "#ff8800"),
        15,
        "the background layer to be painted",
    )
    img = compositor.screenshot()
    assert colour_near(img.getpixel((img.width - 5, 5)), PERSONAL)  # indicator on top
    from tests.inside import run_inside

    r = run_inside(compositor, "work", ["swaybg", "-c", "#00ff00"], timeout=20)
    assert r.rc != 0 and "missing a required wayland interface" in r.err.lower(), r.err


@pytest.mark.security
def test_vnc_serves_the_session_on_loopback(tmp_path: Path) -> None:
    """`zionwm --headless --vnc` as `make run` uses it: a real VNC client sees the desktop."""
    import socket

    from PIL import Image

    from tests.harness import VENV_BIN, running

    require("wayvnc")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with running(tmp_path, args=("--vnc", f"127.0.0.1:{port}")) as comp:
        shot = tmp_path / "vnc.png"

        def captured() -> bool:
            r = subprocess.run(
                [str(VENV_BIN / "vncdo"), "-s", f"127.0.0.1::{port}", "capture", str(shot)],
                capture_output=True,
                timeout=20,
            )
            return r.returncode == 0 and shot.exists()

        wait_for(captured, 30, "a VNC capture of the session")
        with Image.open(shot) as img:
            rgb = img.convert("RGB")
            assert rgb.size == (1280, 720)
            assert colour_near(rgb.getpixel((rgb.width - 5, 5)), PERSONAL)
        # bound to loopback only
        listening = Path("/proc/net/tcp").read_text()
        assert f"0100007F:{port:04X}" in listening
        assert comp.alive()


def test_a_program_that_cannot_start_is_reported(compositor: Compositor) -> None:
    compositor.zionctl("launch", "work", "--", "no-such-program-here")
    wait_for(
        lambda: any(
            "no-such-program-here" in n for n in compositor.zjson("status")["notifications"]
        ),
        10,
        "the user to be told the program did not start",
    )
    assert compositor.alive()


def test_runs_nested_inside_another_wayland_session(compositor: Compositor, tmp_path: Path) -> None:
    """`zionwm` with WAYLAND_DISPLAY set runs as a window of that session (wlroots' Wayland
    backend); here the outer session is another zionwm."""
    from tests.harness import VENV_BIN

    runtime = tmp_path / "inner-run"
    runtime.mkdir(mode=0o700)
    env = {
        **compositor.env,
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_CONFIG_HOME": str(tmp_path / "inner-config"),
        "XDG_DATA_HOME": str(tmp_path / "inner-data"),
        "WAYLAND_DISPLAY": str(compositor.runtime / compositor.socket_name),
        "ZIONWM_INSTANCE": "nested",
        "ZIONWM_NO_QUARANTINE": "1",
    }
    env.pop("WLR_BACKENDS", None)  # auto-detection must find the outer session
    rfd, wfd = os.pipe()
    inner = subprocess.Popen(
        [str(VENV_BIN / "zionwm"), "--socket", "wayland-inner"],
        env={**env, "ZIONWM_READY_FD": str(wfd)},
        pass_fds=(wfd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(wfd)
    try:
        with os.fdopen(rfd) as ready:
            assert ready.readline().strip() == "wayland-inner"
        (win,) = compositor.wait_window("host")
        assert win["app_id"] == "wlroots"
        # the inner session's own strip is drawn inside the window: its first chip, below
        # the chip's text, is the colour of the inner session's first desktop
        img = compositor.screenshot()
        assert colour_near(img.getpixel((win["x"] + 20, win["y"] + 18)), PERSONAL)
        # and it serves its own clients
        r = subprocess.run(
            ["wayland-info"],
            env={**env, "WAYLAND_DISPLAY": "wayland-inner"},
            capture_output=True,
            timeout=20,
        )
        assert r.returncode == 0 and b"xdg_wm_base" in r.stdout
    finally:
        inner.terminate()
        assert inner.wait(timeout=15) == 0


def test_interactive_move_follows_the_pointer(compositor: Compositor) -> None:
    """A client asks to be moved on a pointer press (as a client-side titlebar does); the
    window then follows the pointer until the button is released."""
    app = WireClient(compositor.desktop_socket("personal"))
    app.map_toplevel(120, 80)
    seat = app.bind("wl_seat", 5)
    pointer = app.new_id()
    app.send(seat, 0, struct.pack("=I", pointer))  # wl_seat.get_pointer
    app.roundtrip()
    (win,) = compositor.wait_window("personal")
    x0, y0 = win["x"], win["y"]
    vp = VirtualPointer(compositor)
    vp.move(x0 + 20, y0 + 20)
    vp.t += 1
    vp.c.send(vp.ptr, 2, struct.pack("=III", vp.t, 0x110, 1))  # press BTN_LEFT
    vp.c.send(vp.ptr, 4)
    vp.c.roundtrip()
    press = app.wait_event(pointer, 3)  # wl_pointer.button: serial, time, button, state
    app.send(app.toplevel, 5, struct.pack("=II", seat, press.u32(0)))  # xdg_toplevel.move
    app.roundtrip()
    for step in range(1, 11):
        vp.move(x0 + 20 + 10 * step, y0 + 20 + 5 * step)
    vp.t += 1
    vp.c.send(vp.ptr, 2, struct.pack("=III", vp.t, 0x110, 0))  # release
    vp.c.send(vp.ptr, 4)
    vp.c.roundtrip()

    def moved() -> bool:
        w = compositor.windows("personal")[0]
        return (w["x"], w["y"]) == (x0 + 100, y0 + 50)

    wait_for(moved, 10, "the window to follow the pointer by (100, 50)")
    # after the release the grab is over: moving the pointer leaves the window where it is
    vp.move(5, 600)
    vp.c.roundtrip()
    assert (compositor.windows("personal")[0]["x"], compositor.windows("personal")[0]["y"]) == (
        x0 + 100,
        y0 + 50,
    )
    app.close()


class VirtualKeyboard:
    """Key state through zwp_virtual_keyboard_v1 on the host socket (a trusted tool)."""

    def __init__(self, comp: Compositor) -> None:
        from xkbcommon import xkb

        self.c = WireClient(Path(comp.runtime) / comp.socket_name)
        seat = self.c.bind("wl_seat", 1)
        mgr = self.c.bind("zwp_virtual_keyboard_manager_v1", 1)
        self.kb = self.c.new_id()
        self.c.send(mgr, 0, struct.pack("=II", seat, self.kb))
        keymap = xkb.Context().keymap_new_from_names()
        text = keymap.get_as_bytes() + b"\0"
        self.logo = 1 << keymap.mod_get_index("Mod4")
        self.lock = 1 << keymap.mod_get_index("Lock")  # Caps Lock
        fd = os.memfd_create("keymap")
        os.write(fd, text)
        self.c.send(self.kb, 0, struct.pack("=II", 1, len(text)), fds=(fd,))  # keymap
        os.close(fd)
        self.c.roundtrip()

    def modifiers(self, depressed: int) -> None:
        self.c.send(self.kb, 2, struct.pack("=IIII", depressed, 0, 0, 0))
        self.c.roundtrip()


def test_super_drag_moves_and_resizes_a_window(compositor: Compositor) -> None:
    app = WireClient(compositor.desktop_socket("personal"))
    app.map_toplevel(120, 80)
    (win,) = compositor.wait_window("personal")
    x0, y0 = win["x"], win["y"]
    kb = VirtualKeyboard(compositor)
    vp = VirtualPointer(compositor)

    def drag(button: int, dx: int, dy: int) -> None:
        w = compositor.windows("personal")[0]
        sx, sy = w["x"] + 20, w["y"] + 20
        vp.move(sx, sy)
        vp.t += 1
        vp.c.send(vp.ptr, 2, struct.pack("=III", vp.t, button, 1))
        vp.c.send(vp.ptr, 4)
        for step in range(1, 6):
            vp.move(sx + dx * step // 5, sy + dy * step // 5)
        vp.t += 1
        vp.c.send(vp.ptr, 2, struct.pack("=III", vp.t, button, 0))
        vp.c.send(vp.ptr, 4)
        vp.c.roundtrip()

    kb.modifiers(kb.logo)
    drag(0x110, 100, 60)  # Super + left: move
    wait_for(
        lambda: (
            (compositor.windows("personal")[0]["x"], compositor.windows("personal")[0]["y"])
            == (x0 + 100, y0 + 60)
        ),
        10,
        "Super+drag to move the window",
    )
    drag(0x111, 50, 40)  # Super + right: the compositor asks the client for a bigger size
    xs = app.toplevel
    wait_for(
        lambda: app.read(0.1) and any(e.obj == xs and e.opcode == 0 for e in app.events),
        10,
        "a configure with the new size",
    )
    (configure,) = [e for e in app.events if e.obj == xs and e.opcode == 0][-1:]
    width, height = struct.unpack_from("=ii", configure.payload)
    assert (width, height) == (120 + 50, 80 + 40)
    kb.modifiers(0)
    app.close()
