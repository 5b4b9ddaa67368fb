"""Compositor-drawn UI that clients cannot forge: text rendering shared by the strip
(strip.py) and the overview (overview.py), and notifications.

All of it lives in the overlay layer, above every desktop. Text is drawn in C with
pango-cairo (native/text.py) once per change, never per frame.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .native import SceneImage, SceneNode, SceneTree
from .native.text import Canvas, text_width

log = logging.getLogger(__name__)

Color = tuple[float, float, float, float]
STRIP_HEIGHT = 24


def width_of(size: float, bold: bool = True) -> Callable[[str], float]:
    """A text's width in pixels at `size` pixels (native: pango shapes it as it is drawn)."""
    return lambda text: text_width(text, size, bold)


def scaled(n: float, scale: float) -> int:
    """Layout pixels to an output's pixels."""
    return round(n * scale)


@dataclass(frozen=True)
class Raster:
    """Pixels for a box `width` x `height` layout pixels, drawn at an output's `scale` (so
    text is as sharp as the screen and as big as at scale 1)."""

    width: int
    height: int
    scale: float
    pixels: bytes  # premultiplied ARGB8888 (little-endian BGRA bytes), scaled(width) wide

    def show(self, parent: Any) -> SceneImage:
        w, h = scaled(self.width, self.scale), scaled(self.height, self.scale)
        return SceneImage.create(parent, w, h, self.pixels, size=(self.width, self.height))


def render_label(
    text: str,
    fg: tuple[int, int, int],
    bg: tuple[int, int, int, int],
    height: int,
    pad: int = 8,
    size: int = 14,
    scale: float = 1.0,
    max_width: int | None = None,
) -> Raster:
    """One line of text in a box `height` layout pixels tall, drawn at `scale`; at most
    `max_width` layout pixels wide, the text ellipsized where it is longer."""
    px_size = scaled(size, scale)
    width = max(1, math.ceil(text_width(text, px_size) / scale) + 2 * pad)
    room = 0
    if max_width is not None and width > max_width:
        width = max(1, max_width)
        room = max(1, scaled(width - 2 * pad, scale))
    canvas = Canvas(scaled(width, scale), scaled(height, scale), bg)
    canvas.text(scaled(pad, scale), 0, canvas.height, text, px_size, (*fg, 255), max_width=room)
    return Raster(width, height, scale, canvas.pixels())


def label_image(
    parent: Any,
    text: str,
    fg: tuple[int, int, int],
    bg: tuple[int, int, int, int],
    height: int,
    size: int = 14,
    scale: float = 1.0,
    max_width: int | None = None,
) -> SceneImage:
    """One line of text drawn at `scale` under `parent`, at most `max_width` layout pixels
    wide (the text ellipsized)."""
    return label_box(parent, text, fg, bg, height, size, scale, max_width)[0]


def label_box(
    parent: Any,
    text: str,
    fg: tuple[int, int, int],
    bg: tuple[int, int, int, int],
    height: int,
    size: int = 14,
    scale: float = 1.0,
    max_width: int | None = None,
) -> tuple[SceneImage, int]:
    """label_image() and the width, in layout pixels, it covers."""
    r = render_label(text, fg, bg, height, size=size, scale=scale, max_width=max_width)
    return r.show(parent), r.width


HOST_FRAME: Color = (0.92, 0.92, 0.92, 1.0)
HOST_TAB_HEIGHT = 18


@lru_cache(maxsize=4)
def host_label(scale: float = 1.0) -> Raster:
    """The tab above every host window: dark text on the host frame's light grey, a sign
    that no desktop's frame carries (desktop frames have no tab at all)."""
    return render_label(
        "\u25c6 host",
        (20, 20, 24),
        (*rgb255(HOST_FRAME), 255),
        HOST_TAB_HEIGHT,
        pad=7,
        size=11,
        scale=scale,
    )


def rgb255(colour: Color) -> tuple[int, int, int]:
    return (round(colour[0] * 255), round(colour[1] * 255), round(colour[2] * 255))


def text_colour_on(colour: Color) -> tuple[int, int, int]:
    r, g, b = rgb255(colour)
    return (0, 0, 0) if (0.299 * r + 0.587 * g + 0.114 * b) > 150 else (255, 255, 255)


MARGIN = 8  # layout pixels between a notification box and the output's edges
MAX_WIDTH = 900  # of a notification box, on a wide enough output


class Notifications:
    """Stacked boxes at the top right of an output, each wholly inside it with a `MARGIN` to
    its edges (however long its text); each expires on a timer. The stack starts on the
    output `where()` names when it is empty (the one the pointer is on) and stays there
    while any box is up, so it never splits or jumps."""

    def __init__(
        self,
        overlay: SceneTree,
        loop: Any,
        where: Callable[[], tuple[int, int, int, float] | None] | None = None,
    ) -> None:
        self.tree = SceneTree.create(overlay)
        self.loop = loop
        self.where = where
        self.items: list[Notice] = []
        self.history: list[str] = []
        self.area = (0, 0, 1280)  # layout x, y and logical width of the output
        self.scale = 1.0  # of the output the boxes are on: their text is drawn at it

    def place(self, x: int, y: int, width: int, scale: float = 1.0) -> None:
        self.area = (x, y, width)
        self.scale = scale
        self._layout()

    def follow(self) -> None:
        """Before a box is drawn: an empty stack moves to the output `where()` names (its
        scale is the one the box is drawn at)."""
        if self.items or self.where is None:
            return
        got = self.where()
        if got is not None:
            x, y, width, scale = got
            self.area, self.scale = (x, y, width), scale

    def max_width(self, reserved: int = 0) -> int:
        """How wide a box (less `reserved` of its own, e.g. a stripe) may be: the output's
        width less the margins, and at most `MAX_WIDTH`."""
        return max(1, min(MAX_WIDTH, self.area[2] - 2 * MARGIN) - reserved)

    def show(self, text: str, seconds: float = 6.0, urgent: bool = False) -> Notice:
        """Stack a box of `text`; the box, to `withdraw` before it expires."""
        self.history.append(text)
        del self.history[:-50]
        self.follow()
        bg = (160, 30, 30, 235) if urgent else (30, 30, 30, 235)
        node = SceneTree.create(self.tree)
        lines = text.splitlines()[:8] or [""]
        y = width = 0
        for line in lines:
            img, w = label_box(
                node, line[:160], (255, 255, 255), bg, 22, 13, self.scale, self.max_width()
            )
            img.set_position(0, y)
            width = max(width, w)
            y += 22
        entry = Notice(node, text, width)
        self.items.append(entry)
        self._layout()
        self.loop.call_later(int(seconds * 1000), lambda: self.withdraw(entry), "notification")
        return entry

    def show_node(
        self, node: SceneNode, rows: str, history: str, seconds: float, width: int
    ) -> None:
        """Stack a box drawn elsewhere under `self.tree` (a desktop's notification, see
        desktop_notice.py), `width` layout pixels wide: `rows` has one line per 22 px row,
        for the layout."""
        self.history.append(history)
        del self.history[:-50]
        entry = Notice(node, rows, width)
        self.items.append(entry)
        self._layout()
        self.loop.call_later(int(seconds * 1000), lambda: self.withdraw(entry), "notification")

    def withdraw(self, entry: Notice) -> None:
        """Take a box off the screen (expired, or replaced by what it announced); a box
        already gone is left alone."""
        if entry in self.items:
            self.items.remove(entry)
            entry.node.destroy()
            self._layout()

    def _layout(self) -> None:
        x, y, width = self.area
        top = y + STRIP_HEIGHT + MARGIN
        for item in self.items:
            # flush right with the margin; a box drawn for a wider output keeps its left
            # margin instead (its right end is then cut, never its start)
            item.node.set_position(x + max(MARGIN, width - MARGIN - item.width), top)
            top += 22 * min(8, max(1, len(item.rows.splitlines()))) + 6


@dataclass(eq=False)
class Notice:
    """A notification box on screen: its node, its text (one line per row) and its width."""

    node: SceneNode
    rows: str
    width: int
