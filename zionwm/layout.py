"""Where windows go: master-and-stack tiling, snapping to a half, maximizing, keyboard moves
and resizes, the cascade of new floating windows and dialogs centred on their parent.

Pure geometry, no wlroots: every function takes the usable area (the output below the
compositor's strip), the windows' sizes and constraints, and returns window geometries; the
compositor applies them with configures. A rectangle is `(x, y, width, height)` of a window's
own geometry; its frame of `border` pixels lies around it, and every function keeps that
whole frame inside the area whenever the area is big enough to hold it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Rect = tuple[int, int, int, int]

LAYOUTS = ("float", "tile")
# The smallest inside of a tile: below it a terminal shows nothing useful, so a stack with
# more windows than fit in one column opens a second column instead of shrinking further.
MIN_TILE = 16
CASCADE_STEP = 32
DEFAULT_MASTER = 0.5
MASTER_RANGE = (0.1, 0.9)


@dataclass(frozen=True)
class SizeHints:
    """A window's own limits (xdg-shell's min/max size; 0 means no limit)."""

    min_w: int = 0
    min_h: int = 0
    max_w: int = 0
    max_h: int = 0

    @property
    def fixed(self) -> bool:
        """A window that cannot be resized (a typical dialog): it is never tiled."""
        return (
            self.min_w > 0
            and self.min_h > 0
            and (self.min_w, self.min_h)
            == (
                self.max_w,
                self.max_h,
            )
        )

    def clamp(self, width: int, height: int) -> tuple[int, int]:
        w = max(width, self.min_w)
        h = max(height, self.min_h)
        if self.max_w:
            w = min(w, self.max_w)
        if self.max_h:
            h = min(h, self.max_h)
        return w, h


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(v, hi)) if hi >= lo else lo


def fit(area: Rect, rect: Rect, border: int) -> Rect:
    """The one clamp: `rect` shrunk to what the area holds with its frame, then moved until
    its whole frame is inside the area."""
    ax, ay, aw, ah = area
    x, y, w, h = rect
    w = max(1, min(w, aw - 2 * border))
    h = max(1, min(h, ah - 2 * border))
    x = _clamp(x, ax + border, ax + aw - border - w)
    y = _clamp(y, ay + border, ay + ah - border - h)
    return x, y, w, h


def centred(area: Rect, size: tuple[int, int], border: int) -> Rect:
    ax, ay, aw, ah = area
    w, h = size
    return fit(area, (ax + (aw - w) // 2, ay + (ah - h) // 2, w, h), border)


def cascade(
    area: Rect, size: tuple[int, int], previous: Rect | None, border: int, step: int = CASCADE_STEP
) -> Rect:
    """A new floating window: centred when it is the first, else one step down and right of
    the previous one; when that would push its frame out of the area, back to the top-left
    corner, so a window is never placed even partly off-screen."""
    if previous is None:
        return centred(area, size, border)
    ax, ay, aw, ah = area
    w, h = size
    x, y = previous[0] + step, previous[1] + step
    if x + w + border > ax + aw or y + h + border > ay + ah:
        x, y = ax + border, ay + border
    return fit(area, (x, y, w, h), border)


def centre_on(parent: Rect, size: tuple[int, int], area: Rect, border: int) -> Rect:
    """A dialog centred on its parent window, kept inside the area."""
    px, py, pw, ph = parent
    w, h = size
    return fit(area, (px + (pw - w) // 2, py + (ph - h) // 2, w, h), border)


def maximized(area: Rect, border: int) -> Rect:
    ax, ay, aw, ah = area
    return fit(area, (ax + border, ay + border, aw - 2 * border, ah - 2 * border), border)


def half(area: Rect, side: str, border: int) -> Rect:
    """The left or right half of the area; the two halves' frames meet without overlapping."""
    ax, ay, aw, ah = area
    left_w = aw // 2
    if side == "left":
        cell = (ax, ay, left_w, ah)
    elif side == "right":
        cell = (ax + left_w, ay, aw - left_w, ah)
    else:
        raise ValueError(f"side must be 'left' or 'right', not {side!r}")
    return _inside(cell, SizeHints(), border)


def moved(rect: Rect, dx: int, dy: int, area: Rect, border: int) -> Rect:
    x, y, w, h = rect
    return fit(area, (x + dx, y + dy, w, h), border)


def resized(rect: Rect, dw: int, dh: int, hints: SizeHints, area: Rect, border: int) -> Rect:
    """Grow or shrink from the bottom-right corner, within the window's limits, never below
    one tile's minimum; a window grown against the area's edge moves away from it, and stops
    growing at the area's size."""
    x, y, w, h = rect
    w, h = hints.clamp(max(MIN_TILE, w + dw), max(MIN_TILE, h + dh))
    return fit(area, (x, y, w, h), border)


def _inside(cell: Rect, hints: SizeHints, border: int) -> Rect:
    """A window in a cell: the cell less the frame, within the window's limits; a window with
    a maximum smaller than the cell is centred in it, one with a minimum bigger is given the
    cell anyway (its frame stays in the cell; what it draws beyond is the client's)."""
    cx, cy, cw, ch = cell
    iw, ih = max(1, cw - 2 * border), max(1, ch - 2 * border)
    w, h = hints.clamp(iw, ih)
    w, h = min(w, iw), min(h, ih)
    return cx + border + (iw - w) // 2, cy + border + (ih - h) // 2, w, h


def _split(start: int, length: int, parts: int) -> list[tuple[int, int]]:
    """`length` cut into `parts` contiguous pieces whose sizes differ by at most one."""
    edges = [start + length * i // parts for i in range(parts + 1)]
    return [(edges[i], edges[i + 1] - edges[i]) for i in range(parts)]


def tile(
    area: Rect, hints: Sequence[SizeHints], border: int, master: float = DEFAULT_MASTER
) -> list[Rect]:
    """Master and stack: the first window takes the left part (`master` of the width), the
    others share the right part in rows. A stack with more windows than rows of `MIN_TILE`
    fit opens more columns; only when even those are full (hundreds of windows on a small
    screen) do the last cells hold more than one window."""
    n = len(hints)
    if n == 0:
        return []
    ax, ay, aw, ah = area
    if n == 1:
        return [_inside(area, hints[0], border)]
    smallest = MIN_TILE + 2 * border
    lo, hi = MASTER_RANGE
    mw = round(aw * min(hi, max(lo, master)))
    mw = _clamp(mw, min(smallest, aw // 2), max(aw - smallest, aw // 2))
    out = [_inside((ax, ay, mw, ah), hints[0], border)]
    sx, sw = ax + mw, aw - mw
    stack = n - 1
    max_rows = max(1, ah // smallest)
    max_cols = max(1, sw // smallest)
    cols = min(max_cols, math.ceil(stack / max_rows))
    per_col = math.ceil(stack / cols)
    cells: list[Rect] = []
    for c, (cx, cw) in enumerate(_split(sx, sw, cols)):
        rows = min(per_col, stack - c * per_col)
        if rows <= 0:
            break
        rows = min(rows, max_rows)
        cells.extend((cx, ry, cw, rh) for ry, rh in _split(ay, ah, rows))
    for i, h in enumerate(hints[1:]):
        # past every cell only when the area is truly too small: share the last cells
        out.append(_inside(cells[min(i, len(cells) - 1)], h, border))
    return out


def adjust_master(master: float, delta_px: int, area_width: int) -> float:
    """The master share after a keyboard resize of the master by `delta_px`."""
    lo, hi = MASTER_RANGE
    return min(hi, max(lo, master + delta_px / max(1, area_width)))
