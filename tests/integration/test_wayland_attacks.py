"""Wayland-level attacks, each run by a hostile client INSIDE a desktop's real sandbox
(started with `zionctl launch`, as a user's program is): keylogging a desktop while another
is shown, stealing focus from the compositor's trusted host surfaces, hiding the frame with a
window bigger than the screen, learning hidden globals from bind errors, and reaching other
Wayland sockets by path. The trusted side (the user typing, a host launcher, screenshots)
runs on the host socket, as it does in a session."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Compositor, colour_near, require, wait_for
from tests.inside import attacker, launch_inside
from tests.wire import WireClient, _string
from zionwm.compositor.ui import STRIP_HEIGHT
from zionwm.compositor.views import BORDER

PERSONAL = "#3b82f6"
WORK_GREEN = "FF22C55E"
BODY = "FF808080"  # another desktop's colour, painted by an attacker as a fake frame
STRIP = STRIP_HEIGHT  # the compositor's strip at the top of each output


def _type_into_a_personal_terminal(comp: Compositor, text: str) -> None:
    """The user types into a real terminal of the shown desktop (the positive control)."""
    require("foot")
    out = comp.desktop_home("personal") / "typed.txt"
    comp.zionctl("switch", "personal")
    comp.zionctl("launch", "personal", "--", "foot", "sh", "-c", "cat > ~/typed.txt")
    comp.wait_window("personal", "foot")
    comp.type_keys(text + "\n")
    comp.type_keys("-M", "ctrl", "d", "-m", "ctrl")
    wait_for(lambda: out.exists() and out.read_text() == text + "\n", 20, "the terminal to get it")


@pytest.mark.security
def test_a_hidden_desktop_gets_no_keyboard_event_while_the_user_types_elsewhere(
    compositor: Compositor,
) -> None:
    """A keylogger in `work` had the keyboard focus, then the user switched to `personal` and
    typed there. Besides the one `leave`, it must get nothing: no key, no modifiers, and no
    keymap or repeat-info either (they mark when typing starts and stops). It also asks
    xdg-activation to focus it, again and again: that must neither focus it nor switch."""
    require("wtype")
    compositor.zionctl("switch", "work")
    spy = attacker(compositor, "work", "keylog", seconds=120, activate=True).ready()
    _type_into_a_personal_terminal(compositor, "my password is hunter2")
    assert compositor.desktops()["personal"]["active"], "activation switched desktops"
    result = spy.stop().json()
    assert result["activations"] > 0, result
    kinds = [e["event"] for e in result["events"]]
    assert set(kinds) <= {"leave"} and kinds.count("leave") <= 1, kinds


class LayerClient:
    """A trusted launcher on the host socket: an overlay layer surface that takes the
    keyboard exclusively (as fuzzel, wofi or a password prompt do), and records its keys."""

    def __init__(self, comp: Compositor) -> None:
        c = self.c = WireClient(Path(comp.runtime) / comp.socket_name)
        compositor = c.bind("wl_compositor", 4)
        shm = c.bind("wl_shm", 1)
        shell = c.bind("zwlr_layer_shell_v1", 1)
        seat = c.bind("wl_seat", 5)
        self.kbd = c.new_id()
        c.send(seat, 1, struct.pack("=I", self.kbd))  # wl_seat.get_keyboard
        self.surface = c.new_id()
        c.send(compositor, 0, struct.pack("=I", self.surface))
        layer = c.new_id()
        # get_layer_surface(id, surface, output=null, layer=overlay, namespace)
        c.send(shell, 0, struct.pack("=IIII", layer, self.surface, 0, 3) + _string("launcher"))
        self.layer = layer
        c.send(layer, 0, struct.pack("=II", 400, 60))  # set_size
        c.send(layer, 4, struct.pack("=I", 1))  # set_keyboard_interactivity(exclusive)
        c.send(self.surface, 6)  # commit
        configure = c.wait_event(layer, 0)
        c.send(layer, 6, struct.pack("=I", configure.u32(0)))  # ack_configure
        buffer = c.shm_buffer(shm, 400, 60, 0xFF202020)
        c.send(self.surface, 1, struct.pack("=Iii", buffer, 0, 0))
        c.send(self.surface, 2, struct.pack("=iiii", 0, 0, 400, 60))
        c.send(self.surface, 6)
        c.roundtrip()

    def set_interactivity(self, mode: int) -> None:
        self.c.send(self.layer, 4, struct.pack("=I", mode))
        self.c.send(self.surface, 6)  # commit
        self.c.roundtrip()

    def key_presses(self) -> int:
        self.c.read(0.2)
        return len([e for e in self.c.events if e.obj == self.kbd and e.opcode == 3 and e.u32(3)])

    def has_focus(self) -> bool:
        self.c.read(0.2)
        focus = None
        for e in self.c.events:
            if e.obj == self.kbd and e.opcode in (1, 2):  # enter / leave
                focus = e.opcode == 1
        return bool(focus)


@pytest.mark.security
def test_a_desktop_client_cannot_take_the_keyboard_from_a_host_launcher(
    compositor: Compositor,
) -> None:
    """The user opened a launcher (exclusive keyboard). A program of the shown desktop then
    maps a window and asks xdg-activation to focus it, over and over: what the user types
    must still reach the launcher, and nothing of it the desktop's program."""
    require("wtype")
    launcher = LayerClient(compositor)
    wait_for(launcher.has_focus, 10, "the launcher to get the keyboard")
    thief = attacker(compositor, "personal", "keylog", seconds=120, activate=True).ready()
    compositor.wait_window("personal")
    compositor.type_keys("hello")
    wait_for(lambda: launcher.key_presses() >= 5, 15, "the five keys to reach the launcher")
    result = thief.stop().json()
    assert result["activations"] > 0, result
    kinds = {e["event"] for e in result["events"]} | set(result["on_bind"])
    assert not kinds & {"enter", "key"}, result
    assert launcher.has_focus()
    # the launcher itself gives the keyboard back, and takes it again
    launcher.set_interactivity(0)
    wait_for(lambda: not launcher.has_focus(), 10, "the launcher to let go of the keyboard")
    launcher.set_interactivity(1)
    wait_for(launcher.has_focus, 10, "the launcher to take the keyboard again")
    launcher.c.close()


@pytest.mark.security
def test_a_desktop_client_cannot_take_the_keyboard_from_a_host_window(
    compositor: Compositor,
) -> None:
    """A trusted window on the host socket (a prompt, the manager) has the keyboard; a
    program of the shown desktop maps a window and keeps asking xdg-activation: the user's
    keys still reach the host window. The user's own click does move the focus (control)."""
    require("wtype")
    host, kbd = _host_window_with_a_keyboard(compositor)
    _keys_stay_with_the_host_until_the_user_clicks(compositor, "personal", host, kbd)


@pytest.mark.security
def test_a_host_window_keeps_the_keyboard_when_the_user_switches_desktops(
    compositor: Compositor,
) -> None:
    """A trusted host window (the manager) has the keyboard and the user switches to a
    desktop without windows: the host window, shown on every desktop, keeps the keyboard, so
    a program of that desktop mapping a window and asking xdg-activation does not get it
    either. Only the user's click hands the keyboard to the program's window (control)."""
    require("wtype")
    host, kbd = _host_window_with_a_keyboard(compositor)
    wait_for(
        lambda: [w for w in compositor.windows("host") if w["focused"]], 10, "the host focused"
    )
    compositor.zionctl("switch", "work")
    assert [w for w in compositor.windows("host") if w["focused"]], "the switch took it"
    _keys_stay_with_the_host_until_the_user_clicks(compositor, "work", host, kbd)


def _host_window_with_a_keyboard(compositor: Compositor) -> tuple[WireClient, int]:
    """A trusted client's window, mapped, with its keyboard object (to count key presses)."""
    host = WireClient(Path(compositor.runtime) / compositor.socket_name)
    seat = host.bind("wl_seat", 5)
    kbd = host.new_id()
    host.send(seat, 1, struct.pack("=I", kbd))
    host.map_toplevel(100, 50)  # smaller than the desktop's window: part of it stays clear
    compositor.wait_window("host")
    return host, kbd


def _keys_stay_with_the_host_until_the_user_clicks(
    compositor: Compositor, desktop: str, host: WireClient, kbd: int
) -> None:
    """A keylogger of `desktop` maps a window and asks for activation: typed keys still go
    to the host window; then (the control) the user's click on the attacker's window gives
    it the keyboard, and the attacker saw no key before it. Closes `host`."""

    def presses() -> int:
        host.read(0.2)
        return len([e for e in host.events if e.obj == kbd and e.opcode == 3 and e.u32(3)])

    thief = attacker(compositor, desktop, "keylog", seconds=120, activate=True).ready()
    (win,) = compositor.wait_window(desktop)
    compositor.type_keys("hello")
    wait_for(lambda: presses() >= 5, 15, "the five keys to reach the host window")
    assert [w for w in compositor.windows("host") if w["focused"]]
    from tests.integration.test_core import VirtualPointer

    (mine,) = compositor.windows("host")
    # a point of the desktop's window left of the host window, its frame and its host tab
    spot = (win["x"] + 5, win["y"] + win["height"] // 2)
    assert spot[0] < mine["x"] - 3, (win, mine)
    VirtualPointer(compositor).click(*spot)
    wait_for(lambda: compositor.windows(desktop)[0]["focused"], 10, "the click to focus it")
    result = thief.stop().json()
    assert result["activations"] > 0, result
    kinds = [e["event"] for e in result["events"]]
    assert "enter" in kinds and kinds.count("key") == 0, kinds  # entered only by the click
    host.close()


def _frame_is_whole(img: object, colour: str, box: tuple[int, int, int, int]) -> list[str]:
    """Where the frame around `box` (x, y, w, h of the frame's outer edge) is not `colour`."""
    x, y, w, h = box
    bad = []
    for name, points in (
        ("top", [(x + i, y + 1) for i in range(5, w - 5, 40)]),
        ("bottom", [(x + i, y + h - 2) for i in range(5, w - 5, 40)]),
        ("left", [(x + 1, y + j) for j in range(5, h - 5, 40)]),
        ("right", [(x + w - 2, y + j) for j in range(5, h - 5, 40)]),
    ):
        wrong = [p for p in points if not colour_near(img.getpixel(p), colour)]  # type: ignore[attr-defined]
        if wrong:
            bad.append(f"{name} edge at {wrong[:3]}")
    return bad


@pytest.mark.security
def test_a_window_bigger_than_the_screen_keeps_its_whole_frame_on_screen(
    make_compositor: Any,
) -> None:
    """A 1400x900 window on a 1280x720 screen. One that resizes when asked (foot) is made to
    fit; one that ignores the request (the attacker, painting a bar in another desktop's
    colour along its edges) is clipped: either way all four edges of the frame are on screen,
    below the strip, in the desktop's colour, and nothing of the window spills onto the
    output to the right."""
    compositor = make_compositor(outputs=2)
    area = (0, STRIP, 1280, 720 - STRIP)
    big = attacker(
        compositor,
        "personal",
        "big-window",
        width=1400,
        height=900,
        body=BODY,
        bar=WORK_GREEN,
        seconds=120,
    ).ready()
    compositor.wait_window("personal")

    def whole() -> list[str]:
        return _frame_is_whole(compositor.screenshot(), PERSONAL, area)

    try:
        wait_for(lambda: not whole(), 10, "the frame of the ignoring window on screen")
    except AssertionError:
        raise AssertionError(f"frame not whole: {whole()}") from None
    img = compositor.screenshot()
    spilt = [
        (x, y)
        for x in (1285, 1350, 1395)
        for y in (100, 400)
        if img.getpixel((x, y)) == (0x80, 0x80, 0x80)
    ]
    assert not spilt, f"the window shows on the second output at {spilt}"
    result = big.stop().json()
    assert result["configures"] and max(result["configures"]) <= [1280, 720], result
    wait_for(lambda: not compositor.windows("personal"), 10, "the big window to go")

    require("foot")
    compositor.zionctl("launch", "personal", "--", "foot", "--window-size-pixels=1400x900")
    compositor.wait_window("personal", "foot")

    def fits() -> bool:
        (w,) = compositor.windows("personal")
        return w["width"] + 2 * BORDER <= area[2] and w["height"] + 2 * BORDER <= area[3]

    wait_for(fits, 15, "foot to take the size it was asked to")
    try:
        wait_for(lambda: not whole(), 10, "foot's frame on screen")
    except AssertionError:
        raise AssertionError(f"frame not whole: {whole()}") from None

    # mapped while its desktop is hidden (it cannot be asked then: the desktop may be
    # frozen): asked once shown, and framed whole from the first frame shown
    hidden = attacker(
        compositor,
        "work",
        "big-window",
        width=1400,
        height=900,
        body=BODY,
        bar="FF3B82F6",  # personal's colour this time
        seconds=120,
    ).ready()
    compositor.wait_window("work")
    compositor.zionctl("switch", "work")
    work = compositor.desktops()["work"]["colour"]
    try:
        wait_for(lambda: not _frame_is_whole(compositor.screenshot(), work, area), 10, "work")
    except AssertionError:
        raise AssertionError(f"{_frame_is_whole(compositor.screenshot(), work, area)}") from None
    asked = hidden.stop().json()["configures"]
    assert [1280 - 2 * BORDER, 720 - STRIP - 2 * BORDER] in asked, asked


@pytest.mark.security
def test_a_window_cannot_paint_over_or_beside_its_own_frame(compositor: Compositor) -> None:
    """The attacker declares a window 20 pixels smaller than its buffer, so the bars it paints
    in `work`'s colour lie exactly where `personal`'s frame goes and just outside it: the
    frame must still show in personal's colour all round, and nothing of the bars outside."""
    big = attacker(
        compositor,
        "personal",
        "big-window",
        width=400,
        height=300,
        body=BODY,
        bar=WORK_GREEN,
        bar_height=12,
        inset=10,
        seconds=120,
    ).ready()
    (win,) = compositor.wait_window("personal")
    frame = (win["x"] - BORDER, win["y"] - BORDER, win["width"] + 6, win["height"] + 6)
    assert (win["width"], win["height"]) == (380, 280)

    def problems() -> list[str]:
        img = compositor.screenshot()
        bad = _frame_is_whole(img, PERSONAL, frame)
        x, y, w, h = frame
        beside = [(x - 4, y + h // 2), (x + w + 3, y + h // 2), (x + w // 2, y - 4)]
        beside.append((x + w // 2, y + h + 3))
        bad += [
            f"fake colour beside the frame at {p}" for p in beside if img.getpixel(p) != (0, 0, 0)
        ]
        return bad

    try:
        wait_for(lambda: not problems(), 10, "the real frame, and nothing beside it")
    except AssertionError:
        raise AssertionError(f"frame: {problems()}") from None
    big.stop()


def _host_globals(comp: Compositor) -> dict[str, tuple[int, int]]:
    c = WireClient(Path(comp.runtime) / comp.socket_name)
    c.close()
    return c.globals


@pytest.mark.security
def test_binding_a_hidden_global_by_number_looks_like_an_unused_number(
    compositor: Compositor,
) -> None:
    """Global numbers are predictable. Binding a hidden one by its number, with a wrong
    interface name, a too-high version or version 0, must fail exactly as a number that
    never existed does: libwayland's own messages would name the hidden interface or its
    version. The right name and version must fail too (no screen capture, no virtual input)."""
    host = _host_globals(compositor)
    unused = max(n for n, _v in host.values()) + 100
    probes = []
    for iface in (
        "zwlr_screencopy_manager_v1",
        "zwlr_export_dmabuf_manager_v1",
        "zwp_virtual_keyboard_manager_v1",
        "zwlr_virtual_pointer_manager_v1",
        "zwlr_layer_shell_v1",
    ):
        name, version = host[iface]
        for claimed, v in ((iface, 1), ("wl_compositor", 1), (iface, version + 7), (iface, 0)):
            probes += [[name, claimed, v], [unused, claimed, v]]
    result = attacker(compositor, "work", "bind-by-number", probes=probes).wait().json()
    assert not set(result["advertised"]) & set(
        ["zwlr_screencopy_manager_v1", "zwp_virtual_keyboard_manager_v1"]
    )
    answers = result["probes"]
    assert not [a for a in answers if a["bound"]], "a hidden global was bound"
    for hidden, never in zip(answers[0::2], answers[1::2], strict=True):
        assert hidden["interface"] == never["interface"]
        seen = hidden["message"].replace(f"({hidden['name']})", "(N)")
        expected = never["message"].replace(f"({never['name']})", "(N)")
        assert (hidden["code"], seen) == (never["code"], expected), (hidden, never)
    # wrong interface names were refused without naming the real one
    for a in answers:
        if a["interface"] == "wl_compositor":
            assert "wanted" not in a["message"] and "zwlr" not in a["message"], a


@pytest.mark.security
def test_no_other_wayland_socket_is_reachable_from_inside(compositor: Compositor) -> None:
    """By host path, the host socket and the other desktops' sockets do not exist inside a
    sandbox; the runtime dir holds the desktop's own sockets only (Wayland, and its own session
    bus's proxy), and the Wayland one works."""
    uid = os.getuid()
    paths = [
        str(compositor.runtime / compositor.socket_name),
        str(compositor.desktop_socket("personal")),
        str(compositor.desktop_socket("web")),
        f"/run/user/{uid}/{compositor.socket_name}",
        f"/run/user/{uid}/zionwm/personal/wayland-0",
        f"/run/user/{uid}/wayland-0",
    ]
    result = attacker(compositor, "work", "connect", paths=paths).wait().json()
    got = result["results"]
    assert got[f"/run/user/{uid}/wayland-0"] == "connected"  # its own, the control
    for p in paths[:-1]:
        assert got[p] in ("ENOENT", "ECONNREFUSED", "EACCES"), (p, got[p])
    # its own Wayland socket, and the proxy of its own session bus (docs/desktop-bus.md)
    assert result["runtime_listing"] == ["bus", "wayland-0"], result
    # and the one it reaches is its own desktop's: windows it maps land in `work`
    launch_inside(compositor, "work", ["weston-simple-shm"])
    compositor.wait_window("work")
