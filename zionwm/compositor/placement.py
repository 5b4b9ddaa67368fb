"""Where a window may be: its whole frame inside the usable area of its output.

Pure geometry, no wlroots: the View applies what `fit_window` decides. The usable area is
the output below the compositor's strip, less what trusted panels reserve. A window that
fits is moved until its frame does; one bigger than the area is asked for a size that fits,
and until it obeys (a hostile client never does) its frame is drawn around the part of it
that is on screen, so every edge of the frame stays visible, in the desktop's colour.
"""

from __future__ import annotations

from dataclasses import dataclass

Rect = tuple[int, int, int, int]  # x, y, width, height


@dataclass(frozen=True)
class Fit:
    x: int  # where the window's geometry goes (layout coordinates)
    y: int
    width: int  # the part of the window the frame goes around
    height: int
    ask: tuple[int, int] | None  # the size to ask the client for, when it is too big

    @property
    def clipped(self) -> bool:
        return self.ask is not None


def fit_window(area: Rect, x: int, y: int, width: int, height: int, border: int) -> Fit:
    """Clamp a window at (x, y) of `width` x `height`, framed by `border`, into `area`."""
    ax, ay, aw, ah = area
    most_w = max(1, aw - 2 * border)
    most_h = max(1, ah - 2 * border)
    w, h = min(width, most_w), min(height, most_h)
    ask = (w, h) if (w, h) != (width, height) else None
    x = _clamp(x, ax + border, ax + aw - border - w)
    y = _clamp(y, ay + border, ay + ah - border - h)
    return Fit(x, y, w, h, ask)


def overflow(fit: Fit, extent: Rect) -> list[Rect]:
    """The parts of `extent` (what the client draws, relative to the window's origin) that lie
    outside the frame of a clipped window: top, bottom, left and right bands to cover."""
    ex, ey, ew, eh = extent
    right, bottom = ex + ew, ey + eh
    fw, fh = fit.width, fit.height
    return [
        (ex, ey, ew, max(0, -ey)),  # above the frame
        (ex, fh, ew, max(0, bottom - fh)),  # below it
        (ex, 0, max(0, -ex), fh),  # left of it
        (fw, 0, max(0, right - fw), fh),  # right of it
    ]


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(v, hi)) if hi >= lo else lo
