"""The pointer's motion path (hit test, enter/leave, the seat of each desktop), driven by a
virtual pointer on the host socket against real clients of the running compositor."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import pytest

from tests.harness import Compositor, wait_for
from tests.integration.test_core import VirtualPointer
from tests.wire import Event, WireClient

# wl_pointer events
ENTER, LEAVE, MOTION, FRAME = 0, 1, 2, 5


class PointerClient:
    """A mapped window with a wl_pointer, recording what its pointer is told."""

    def __init__(self, socket: Path, width: int, height: int) -> None:
        self.app = WireClient(socket)
        self.surface = self.app.map_toplevel(width, height)
        seat = self.app.bind("wl_seat", 5)
        self.pointer = self.app.new_id()
        self.app.send(seat, 0, struct.pack("=I", self.pointer))  # wl_seat.get_pointer
        self.app.roundtrip()

    def pending(self) -> list[Event]:
        """Every pointer event that has arrived so far (read without waiting long)."""
        self.app.read(0.05)
        out = [e for e in self.app.events if e.obj == self.pointer]
        self.app.events = [e for e in self.app.events if e.obj != self.pointer]
        return out

    def wait(self, opcode: int, what: str) -> Event:
        try:
            return self.app.wait_event(self.pointer, opcode, timeout=10)
        except TimeoutError:
            raise AssertionError(f"no wl_pointer event {opcode}: {what}") from None

    def close(self) -> None:
        self.app.close()


def _fixed(ev: Event, index: int) -> float:
    return float(struct.unpack_from("=i", ev.payload, 4 * index)[0]) / 256


def _settle(vp: VirtualPointer, *clients: PointerClient) -> None:
    """A roundtrip of the pointer's own connection: every motion sent is handled."""
    vp.c.roundtrip()
    for c in clients:
        c.app.roundtrip()


def _rect(comp: Compositor, desktop: str, index: int = 0) -> tuple[int, int, int, int]:
    w = comp.windows(desktop)[index]
    return int(w["x"]), int(w["y"]), int(w["width"]), int(w["height"])


def test_hit_testing_at_a_windows_edges(compositor: Compositor) -> None:
    """The first and last pixel of a window are its own; one pixel past any edge (its
    border, drawn by the compositor) is not: the client hears leave there."""
    c = PointerClient(compositor.desktop_socket("personal"), 120, 80)
    try:
        wait_for(lambda: compositor.windows("personal"), 10, "the window")
        x, y, w, h = _rect(compositor, "personal")
        vp = VirtualPointer(compositor)

        vp.move(x, y)
        enter = c.wait(ENTER, "the top-left pixel")
        assert enter.u32(1) == c.surface
        assert (_fixed(enter, 2), _fixed(enter, 3)) == (0.0, 0.0)

        vp.move(x + w - 1, y + h - 1)
        motion = c.wait(MOTION, "the bottom-right pixel")
        assert (_fixed(motion, 1), _fixed(motion, 2)) == (w - 1, h - 1)

        for outside in ((x + w, y + h - 1), (x + w - 1, y + h), (x - 1, y), (x, y - 1)):
            vp.move(*outside)
            leave = c.wait(LEAVE, f"one pixel outside at {outside}")
            assert leave.u32(1) == c.surface
            vp.move(x + 5, y + 5)
            assert c.wait(ENTER, "back inside").u32(1) == c.surface
        _settle(vp, c)
        assert [e.opcode for e in c.pending() if e.opcode in (ENTER, LEAVE)] == []
    finally:
        c.close()


def test_the_pointer_over_the_strip_reaches_no_client(compositor: Compositor) -> None:
    """The strip is the compositor's: moving onto it takes the pointer from the window, and
    motion along it sends the client nothing; clicks there switch desktops (see test_ui)."""
    c = PointerClient(compositor.desktop_socket("personal"), 300, 200)
    try:
        wait_for(lambda: compositor.windows("personal"), 10, "the window")
        x, y, _w, _h = _rect(compositor, "personal")
        vp = VirtualPointer(compositor)
        vp.move(x + 10, y + 10)
        c.wait(ENTER, "the window")
        vp.move(x + 10, 5)  # the strip, 24 px at the top of the output
        c.wait(LEAVE, "the strip")
        for step in range(20):
            vp.move(40 + 50 * step, 5 + step % 10)
        _settle(vp, c)
        assert [e.opcode for e in c.pending() if e.opcode != FRAME] == []
        vp.move(x + 10, y + 10)
        c.wait(ENTER, "the window after the strip")
    finally:
        c.close()


def test_focus_moves_between_windows_and_between_seats(compositor: Compositor) -> None:
    """Enter/leave between two windows of one desktop, and between a desktop's window and
    a host window (another seat): each client hears only of its own surface, and the one
    left always hears leave before another one hears enter."""
    a = PointerClient(compositor.desktop_socket("personal"), 120, 80)
    b = PointerClient(compositor.desktop_socket("personal"), 120, 80)
    # wide and low: centred like the others, it still leaves each window pixels of its own
    host = PointerClient(Path(compositor.runtime) / compositor.socket_name, 400, 20)
    try:
        wait_for(lambda: len(compositor.windows("personal")) == 2, 10, "two windows")
        wait_for(lambda: compositor.windows("host"), 10, "the host window")
        rects = {
            "a": _rect(compositor, "personal", 0),
            "b": _rect(compositor, "personal", 1),
            "host": _rect(compositor, "host"),
        }

        def only_in(name: str) -> tuple[int, int]:
            x, y, w, h = rects[name]
            for py in range(y + 1, y + h - 1, 3):
                for px in range(x + 1, x + w - 1, 3):
                    if not any(
                        ox - 4 <= px < ox + ow + 4 and oy - 4 <= py < oy + oh + 4
                        for other, (ox, oy, ow, oh) in rects.items()
                        if other != name
                    ):
                        return px, py
            pytest.fail(f"window {name} has no pixel of its own: {rects}")

        clients = {"a": a, "b": b, "host": host}
        vp = VirtualPointer(compositor)
        order = ["a", "b", "host", "a", "host", "b"]
        vp.move(*only_in(order[0]))
        assert a.wait(ENTER, "a first").u32(1) == a.surface
        for prev, name in itertools.pairwise(order):
            vp.move(*only_in(name))
            leave = clients[prev].wait(LEAVE, f"{prev} left for {name}")
            assert leave.u32(1) == clients[prev].surface
            enter = clients[name].wait(ENTER, f"{name} entered from {prev}")
            assert enter.u32(1) == clients[name].surface
        _settle(vp, a, b, host)
        # nobody else was told anything about enter/leave
        for name, c in clients.items():
            extra = [e.opcode for e in c.pending() if e.opcode in (ENTER, LEAVE)]
            assert extra == [], (name, extra)
    finally:
        for c in (a, b, host):
            c.close()
