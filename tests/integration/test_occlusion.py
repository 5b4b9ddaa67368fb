"""Windows wholly under opaque ones are left out of each frame's drawing (the native
module's occlusion pass, compositor/native/occlusion.c), and nothing else changes for them:
they come back the moment what covered them goes, still get their frame callbacks, and a
translucent window never hides what is under it. Real compositor, raw Wayland clients,
pixels read back with grim."""

from __future__ import annotations

import struct
from typing import Any

from tests.harness import Compositor, wait_for
from tests.wire import WireClient, _string

XRGB, ARGB = 1, 0
RED, BLUE, GREY = 0xFFE02020, 0xFF2020E0, 0xFF808080
SIZE = (200, 150)


class Window:
    """A toplevel of one colour on a desktop's socket, with the buffer format asked for."""

    def __init__(self, comp: Compositor, app_id: str, colour: int, fmt: int) -> None:
        self.c = WireClient(comp.desktop_socket("personal"))
        self.shm, self.surface, xsurf, top = self.c.new_toplevel()
        self.c.send(top, 3, _string(app_id))  # set_app_id
        self.c.configure(self.surface, xsurf)
        self.fmt = fmt
        self.draw(colour)
        self.c.roundtrip()

    def draw(self, colour: int) -> None:
        w, h = SIZE
        self.c.show(self.surface, self.c.shm_buffer(self.shm, w, h, colour, fmt=self.fmt), w, h)

    def frame_done(self, colour: int) -> None:
        """Ask for a frame callback with a new buffer; return when `done` arrives."""
        cb = self.c.new_id()
        self.c.send(self.surface, 3, struct.pack("=I", cb))  # frame
        self.draw(colour)
        self.c.wait_event(cb, 0, timeout=10)  # wl_callback.done


def _rect(comp: Compositor, app_id: str) -> tuple[int, int, int, int]:
    w: dict[str, Any] = comp.wait_window("personal", app_id)[0]
    return w["x"], w["y"], w["width"], w["height"]


def _pixel(comp: Compositor, x: int, y: int) -> tuple[int, int, int]:
    r, g, b = comp.screenshot().getpixel((x, y))[:3]
    return r, g, b


def _near(px: tuple[int, int, int], argb: int, tol: int = 16) -> bool:
    want = ((argb >> 16) & 0xFF, (argb >> 8) & 0xFF, argb & 0xFF)
    return all(abs(a - b) <= tol for a, b in zip(px, want, strict=True))


def _stack(comp: Compositor, top_colour: int, top_fmt: int) -> tuple[Window, Window]:
    """`bottom` (red, opaque), then `top` moved exactly over it (it has the keyboard)."""
    bottom = Window(comp, "bottom", RED, XRGB)
    bx, by, _w, _h = _rect(comp, "bottom")
    top = Window(comp, "top", top_colour, top_fmt)
    tx, ty, _w, _h = _rect(comp, "top")
    comp.zionctl("move", "left" if tx > bx else "right", str(abs(tx - bx)))
    comp.zionctl("move", "up" if ty > by else "down", str(abs(ty - by)))
    wait_for(lambda: _rect(comp, "top") == _rect(comp, "bottom"), 10, "top over bottom")
    return bottom, top


def test_a_covered_window_shows_again_when_the_window_over_it_goes(
    compositor: Compositor,
) -> None:
    bottom, top = _stack(compositor, BLUE, XRGB)
    x, y, w, h = _rect(compositor, "bottom")
    cx, cy = x + w // 2, y + h // 2
    wait_for(lambda: _near(_pixel(compositor, cx, cy), BLUE), 10, "the top window drawn")
    # the bottom window redraws while covered: the frame that uncovers it shows the new one
    bottom.frame_done(RED)
    top.c.close()
    for px, py in ((cx, cy), (x + 2, y + 2), (x + w - 3, y + h - 3)):
        wait_for(
            lambda px=px, py=py: _near(_pixel(compositor, px, py), RED),  # type: ignore[misc]
            10,
            f"the uncovered window at ({px}, {py})",
        )


def test_a_covered_window_still_gets_frame_callbacks(compositor: Compositor) -> None:
    bottom, _top = _stack(compositor, BLUE, XRGB)
    x, y, w, h = _rect(compositor, "bottom")
    wait_for(lambda: _near(_pixel(compositor, x + w // 2, y + h // 2), BLUE), 10, "top drawn")
    for colour in (RED, GREY, RED):  # each one waits for its wl_callback.done
        bottom.frame_done(colour)


def test_a_translucent_window_does_not_hide_the_one_under_it(compositor: Compositor) -> None:
    _bottom, _top = _stack(compositor, 0x802020E0, ARGB)  # half-transparent blue
    x, y, w, h = _rect(compositor, "bottom")
    px = wait_for(
        lambda: (p := _pixel(compositor, x + w // 2, y + h // 2)) != (0, 0, 0) and p,
        10,
        "the stack drawn",
    )
    # premultiplied 0x80 blue over opaque red: both colours are in the pixel
    assert px[0] > 0x50 and px[2] > 0x50, f"only one window visible: {px}"
