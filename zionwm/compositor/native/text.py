"""The compositor's own text and boxes, drawn in C with pango-cairo (text.c): one shaped
line of text per call, with fontconfig's fallback for what the main face lacks (CJK,
Arabic, symbols), into premultiplied ARGB8888 pixels that a SceneImage shows.

Sizes and positions here are in an output's pixels: the callers (ui.py, strip.py,
overview.py) turn layout pixels into them at the output's scale.
"""

from __future__ import annotations

from typing import Any

from ._zionwm_native import ffi, lib

RGBA = tuple[int, int, int, int]  # 0..255 each, not premultiplied


def text_width(text: str, size: float, bold: bool = True) -> float:
    """How wide one line of `text` is at `size` pixels (its advance, as it is drawn)."""
    return float(lib.zion_text_width(text.encode(), size, bold))


def unknown_glyphs(text: str, size: float = 13, bold: bool = True) -> int:
    """How many characters of `text` no installed font has a glyph for (drawn as boxes)."""
    return int(lib.zion_text_unknown_glyphs(text.encode(), size, bold))


class Canvas:
    """`width` x `height` pixels to draw boxes and text on, then read once with pixels()."""

    def __init__(self, width: int, height: int, background: RGBA | None = None) -> None:
        self.width, self.height = max(1, width), max(1, height)
        self._buf = ffi.new("unsigned char[]", self.width * self.height * 4)
        c = lib.zion_canvas_create(self._buf, self.width, self.height)
        if c == ffi.NULL:
            raise MemoryError(f"a {self.width}x{self.height} canvas")
        self._c: Any = ffi.gc(c, lib.zion_canvas_destroy)
        if background is not None:
            self.box(0, 0, self.width, self.height, background)

    def box(self, x: float, y: float, w: float, h: float, colour: RGBA, radius: float = 0) -> None:
        r, g, b, a = (v / 255 for v in colour)
        lib.zion_canvas_box(self._c, x, y, w, h, radius, r, g, b, a)

    def text(
        self,
        x: float,
        top: float,
        height: float,
        text: str,
        size: float,
        colour: RGBA,
        bold: bool = True,
        max_width: float = 0,
    ) -> float:
        """`text` from x, on the baseline that centres capitals in the band `top` ..
        `top + height`; cut with an ellipsis to `max_width` if that is > 0. Returns its
        width."""
        r, g, b, a = (v / 255 for v in colour)
        return float(
            lib.zion_canvas_text(
                self._c, x, top, height, text.encode(), size, bold, r, g, b, a, max_width
            )
        )

    def pixels(self) -> bytes:
        """The pixels drawn (B, G, R, A bytes, premultiplied); the canvas is done."""
        if self._c is not None:
            ffi.release(self._c)  # flushes cairo's drawing into the buffer
            self._c = None
        return bytes(ffi.buffer(self._buf))
