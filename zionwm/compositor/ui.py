"""Compositor-drawn UI that clients cannot forge: the desktop indicator and notifications.

Both live in the overlay layer, above every desktop (so above fullscreen windows too, unless
the desktop's config allows true fullscreen). Text is rasterised with Pillow once per change,
never per frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from .native import SceneImage, SceneNode, SceneRect, SceneTree

log = logging.getLogger(__name__)

STRIP_HEIGHT = 24
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


@lru_cache(maxsize=64)
def render_label(
    text: str, colour: tuple[float, float, float, float], width: int
) -> tuple[int, int, bytes]:
    """The indicator's label, rendered once per (text, colour, width): switching back and
    forth between desktops then costs no text rendering."""
    rgb = _rgb255(colour)
    w, h, pixels = render_text(text, _text_colour_on(colour), (*rgb, 255), STRIP_HEIGHT)
    return min(w, width), h, _crop(pixels, w, h, width)


@lru_cache(maxsize=4)
def _font(size: int) -> Any:
    for path in FONT_CANDIDATES:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default()


def render_text(
    text: str,
    fg: tuple[int, int, int],
    bg: tuple[int, int, int, int],
    height: int,
    pad: int = 8,
    size: int = 14,
) -> tuple[int, int, bytes]:
    """Rasterise one line of text to premultiplied ARGB8888 (little-endian BGRA bytes)."""
    font = _font(size)
    left, top, right, bottom = font.getbbox(text or " ")
    width = max(1, right - left + 2 * pad)
    img = Image.new("RGBA", (width, height), bg)
    draw = ImageDraw.Draw(img)
    draw.text((pad - left, (height - (bottom - top)) // 2 - top), text, font=font, fill=(*fg, 255))
    if bg[3] != 255:
        img = Image.alpha_composite(Image.new("RGBA", img.size, (0, 0, 0, 0)), img)
    return width, height, img.tobytes("raw", "BGRA")


def _rgb255(colour: tuple[float, float, float, float]) -> tuple[int, int, int]:
    return (round(colour[0] * 255), round(colour[1] * 255), round(colour[2] * 255))


def _text_colour_on(colour: tuple[float, float, float, float]) -> tuple[int, int, int]:
    r, g, b = _rgb255(colour)
    return (0, 0, 0) if (0.299 * r + 0.587 * g + 0.114 * b) > 150 else (255, 255, 255)


@dataclass
class IndicatorState:
    desktop: str
    colour: tuple[float, float, float, float]
    frozen: tuple[str, ...] = ()
    pending: int = 0  # quarantine items waiting


class Indicator:
    """A strip across the top of an output in the active desktop's colour, with its name."""

    def __init__(self, overlay: SceneTree, x: int, y: int, width: int) -> None:
        self.tree = SceneTree.create(overlay)
        self.tree.set_position(x, y)
        self.width = width
        self.rect = SceneRect.create(self.tree, width, STRIP_HEIGHT, (0, 0, 0, 1))
        self.label: SceneNode | None = None
        self.state: IndicatorState | None = None

    def show(self, state: IndicatorState) -> None:
        if state == self.state:
            return
        self.state = state
        self.rect.set_color(state.colour)
        text = f"\u25cf {state.desktop}"
        if state.pending:
            text += f"    quarantine: {state.pending} pending"
        if state.frozen:
            text += f"    frozen: {', '.join(state.frozen)}"
        w, h, pixels = render_label(text, state.colour, self.width)
        if self.label is not None:
            self.label.destroy()
        self.label = SceneImage.create(self.tree, w, h, pixels)
        self.label.set_position(4, 0)

    def set_visible(self, on: bool) -> None:
        self.tree.set_enabled(on)

    def resize(self, x: int, y: int, width: int) -> None:
        self.width = width
        self.tree.set_position(x, y)
        self.rect.set_size(width, STRIP_HEIGHT)
        state, self.state = self.state, None
        if state is not None:
            self.show(state)

    def destroy(self) -> None:
        self.tree.destroy()


def _crop(pixels: bytes, w: int, h: int, max_w: int) -> bytes:
    if w <= max_w:
        return pixels
    return b"".join(pixels[row * w * 4 : row * w * 4 + max_w * 4] for row in range(h))


class Notifications:
    """Stacked boxes at the top right of the first output; each expires on a timer."""

    def __init__(self, overlay: SceneTree, loop: Any) -> None:
        self.tree = SceneTree.create(overlay)
        self.loop = loop
        self.items: list[tuple[SceneNode, str]] = []
        self.history: list[str] = []
        self.area = (0, 0, 1280)

    def place(self, x: int, y: int, width: int) -> None:
        self.area = (x, y, width)
        self._layout()

    def show(self, text: str, seconds: float = 6.0, urgent: bool = False) -> None:
        self.history.append(text)
        del self.history[:-50]
        bg = (160, 30, 30, 235) if urgent else (30, 30, 30, 235)
        node = SceneTree.create(self.tree)
        lines = text.splitlines()[:8] or [""]
        y = 0
        for line in lines:
            w, h, px = render_text(line[:160], (255, 255, 255), bg, 22, size=13)
            w = min(w, 900)
            img = SceneImage.create(node, w, h, _crop(px, *_size_of(px, h), 900))
            img.set_position(0, y)
            y += h
        entry = (node, text)
        self.items.append(entry)
        self._layout()
        self.loop.call_later(int(seconds * 1000), lambda: self._expire(entry), "notification")

    def show_node(self, node: SceneNode, rows: str, history: str, seconds: float) -> None:
        """Stack a box drawn elsewhere under `self.tree` (a desktop's notification, see
        desktop_notice.py): `rows` has one line per 22 px row, for the layout."""
        self.history.append(history)
        del self.history[:-50]
        entry = (node, rows)
        self.items.append(entry)
        self._layout()
        self.loop.call_later(int(seconds * 1000), lambda: self._expire(entry), "notification")

    def _expire(self, entry: tuple[SceneNode, str]) -> None:
        if entry in self.items:
            self.items.remove(entry)
            entry[0].destroy()
            self._layout()

    def _layout(self) -> None:
        x, y, width = self.area
        top = y + STRIP_HEIGHT + 8
        for node, text in self.items:
            node.set_position(x + max(0, width - 620), top)
            top += 22 * min(8, max(1, len(text.splitlines()))) + 6


def _size_of(pixels: bytes, h: int) -> tuple[int, int]:
    return len(pixels) // (4 * h), h
