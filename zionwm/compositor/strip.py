"""The trusted strip across the top of every output: one chip per desktop in its colour, the
current one marked, a frozen mark, the downloads waiting in quarantine, and the time.

The strip lives in the overlay layer, above every client. Its background is the colour of
the desktop being shown, the one signal a user must be able to trust at a glance. Text is
drawn in C with pango-cairo once per change (the chips when a desktop changes, the clock
once a minute), never per frame; what a state looks like is cached, so switching back and
forth renders nothing.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from .native import SceneImage, SceneNode, SceneRect, SceneTree
from .native.text import Canvas, text_width
from .ui import STRIP_HEIGHT, Color, rgb255, scaled, text_colour_on

log = logging.getLogger(__name__)

CHIP_HEIGHT = 18
CHIP_GAP = 6
CHIP_PAD = 9
CLOCK_WIDTH = 60
FROZEN_MARK = "\u2744"  # snowflake
PENDING_MARK = "\u21e3"  # downwards dashed arrow


@dataclass(frozen=True)
class Chip:
    name: str
    colour: Color
    frozen: bool = False


@dataclass(frozen=True)
class StripState:
    """Everything the strip shows; built afresh from the current desktops on every change."""

    chips: tuple[Chip, ...]
    active: str
    colour: Color  # the active desktop's colour: the strip's background
    pending: int = 0  # downloads waiting in quarantine
    clock: str = ""


def chip_label(index: int, chip: Chip) -> str:
    label = f"{index} {chip.name}" if index <= 9 else chip.name
    return f"{label} {FROZEN_MARK}" if chip.frozen else label


@lru_cache(maxsize=32)
def render_chips(
    state: StripState, width: int, scale: float = 1.0
) -> tuple[bytes, tuple[tuple[str, int, int], ...]]:
    """The strip without its clock, as ARGB8888 of width x STRIP_HEIGHT layout pixels drawn
    at `scale`, and each chip's horizontal span (name, x0, x1) for clicks, in layout
    pixels."""

    def s(n: float) -> int:
        return scaled(n, scale)

    def box(x0: int, y0: int, x1: int, y1: int, colour: Color, radius: int) -> None:
        # a box of layout pixels [x0, x1] x [y0, y1], the last pixel included
        x, y = s(x0), s(y0)
        canvas.box(x, y, s(x1 + 1) - x, s(y1 + 1) - y, (*rgb255(colour), 255), s(radius))

    canvas = Canvas(s(width), s(STRIP_HEIGHT), (*rgb255(state.colour), 255))
    size = s(12)
    top = (STRIP_HEIGHT - CHIP_HEIGHT) // 2
    x = 4
    spans = []
    for i, chip in enumerate(state.chips, start=1):
        text = chip_label(i, chip)
        w = math.ceil(text_width(text, size) / scale) + 2 * CHIP_PAD
        if x + w > width - 8:
            break  # no room: the overview lists every desktop
        x1, y1 = x + w - 1, top + CHIP_HEIGHT - 1
        if chip.name == state.active:
            # the current desktop: a white ring around its chip, on any background
            box(x - 2, top - 2, x1 + 2, y1 + 2, (1.0, 1.0, 1.0, 1.0), 6)
        else:
            box(x - 1, top - 1, x1 + 1, y1 + 1, (0.0, 0.0, 0.0, 1.0), 5)
        box(x, top, x1, y1, chip.colour, 4)
        ink = (*text_colour_on(chip.colour), 255)
        canvas.text(s(x + CHIP_PAD), s(top), s(CHIP_HEIGHT), text, size, ink)
        spans.append((chip.name, x - 2, x + w + 2))
        x += w + CHIP_GAP
    if state.pending:
        text = f"{PENDING_MARK} {state.pending} in quarantine"
        tx = width - math.ceil(text_width(text, size) / scale) - 12
        if tx > x + 8:
            ink = (*text_colour_on(state.colour), 255)
            canvas.text(s(tx), 0, s(STRIP_HEIGHT), text, size, ink)
    return canvas.pixels(), tuple(spans)


@lru_cache(maxsize=16)
def render_clock(text: str, colour: Color, scale: float = 1.0) -> bytes:
    """The clock, CLOCK_WIDTH x STRIP_HEIGHT layout pixels drawn at `scale`."""
    canvas = Canvas(scaled(CLOCK_WIDTH, scale), scaled(STRIP_HEIGHT, scale), (*rgb255(colour), 255))
    size = scaled(13, scale)
    x = canvas.width - text_width(text, size) - scaled(10, scale)
    canvas.text(x, 0, canvas.height, text, size, (*text_colour_on(colour), 255))
    return canvas.pixels()


class Strip:
    """The strip of one output: a background rect, the chips image and the clock image."""

    def __init__(self, overlay: SceneTree, x: int, y: int, width: int, scale: float = 1.0) -> None:
        self.tree = SceneTree.create(overlay)
        self.tree.set_position(x, y)
        self.x, self.y, self.width = x, y, width
        self.scale = scale  # the output's: text is drawn at its density
        self.rect = SceneRect.create(self.tree, width, STRIP_HEIGHT, (0, 0, 0, 1))
        self.chips: SceneNode | None = None
        self.clock: SceneNode | None = None
        self.state: StripState | None = None
        self.spans: tuple[tuple[str, int, int], ...] = ()

    def show(self, state: StripState) -> None:
        old, self.state = self.state, state
        if old is not None and (old.chips, old.active, old.colour, old.pending) == (
            state.chips,
            state.active,
            state.colour,
            state.pending,
        ):
            if old.clock != state.clock:
                self._show_clock(state)
            return
        self.rect.set_color(state.colour)
        chips_w = max(1, self.width - CLOCK_WIDTH)
        # the clock is drawn on its own: a new minute must not miss the chips' cache
        pixels, self.spans = render_chips(replace(state, clock=""), chips_w, self.scale)
        if self.chips is not None:
            self.chips.destroy()
        self.chips = self._image(chips_w, pixels)
        self._show_clock(state)

    def _show_clock(self, state: StripState) -> None:
        if self.clock is not None:
            self.clock.destroy()
        self.clock = self._image(CLOCK_WIDTH, render_clock(state.clock, state.colour, self.scale))
        self.clock.set_position(max(0, self.width - CLOCK_WIDTH), 0)

    def _image(self, width: int, pixels: bytes) -> SceneImage:
        px = (scaled(width, self.scale), scaled(STRIP_HEIGHT, self.scale))
        return SceneImage.create(self.tree, *px, pixels, size=(width, STRIP_HEIGHT))

    def chip_at(self, lx: float, ly: float) -> str | None:
        """The desktop whose chip is under a layout point, if any."""
        if not self.tree.enabled or not (self.y <= ly < self.y + STRIP_HEIGHT):
            return None
        for name, x0, x1 in self.spans:
            if self.x + x0 <= lx < self.x + x1:
                return name
        return None

    def contains(self, lx: float, ly: float) -> bool:
        return (
            self.tree.enabled
            and self.x <= lx < self.x + self.width
            and self.y <= ly < self.y + STRIP_HEIGHT
        )

    def set_visible(self, on: bool) -> None:
        self.tree.set_enabled(on)

    def resize(self, x: int, y: int, width: int, scale: float = 1.0) -> None:
        self.x, self.y, self.width, self.scale = x, y, width, scale
        self.tree.set_position(x, y)
        self.rect.set_size(width, STRIP_HEIGHT)
        state, self.state = self.state, None
        if state is not None:
            self.show(state)

    def destroy(self) -> None:
        self.tree.destroy()


class MinuteClock:
    """Calls `tick` at the start of every minute (one timer; nothing runs in between)."""

    def __init__(self, loop: Any, tick: Callable[[], None]) -> None:
        self.tick = tick
        self.timer = loop.timer(self._fire, "clock")
        self._arm()

    @staticmethod
    def now() -> str:
        return time.strftime("%H:%M")

    def _arm(self) -> None:
        ms = int((60.0 - time.time() % 60.0) * 1000) + 20
        self.timer.schedule(ms)

    def _fire(self) -> None:
        self._arm()
        self.tick()

    def close(self) -> None:
        self.timer.remove()
