"""The overview: every desktop at once, as a grid the compositor draws in the overlay layer,
on the output the pointer is on when it opens (its pictures are of that output).

Each cell shows a desktop's colour, number and name, its state (running, frozen, no
programs), its window count, its network mode, the downloads it has waiting in quarantine,
and a thumbnail of its windows: drawn when the overview opens, for the desktop on screen and
every desktop left, or whose windows came or went, since its picture was drawn (or never
drawn, or not frozen: its windows may have drawn since), after the overview's first
frame, in C from that desktop's own surfaces alone (never read off the screen, so no host
window, notification or cursor that was on top is in it) and scaled down once; it is never
re-rendered per frame, and a switch draws nothing. Nothing exists while the overview
is closed: its scene nodes are made at open and destroyed at close, and it has no timers.

While it is open, keys and clicks go to the overview only: every seat loses keyboard focus,
so no client sees a key, and the grid covers every window, so no client is under the
pointer. The grid is stable: cells follow the desktops' order, so a desktop keeps its place.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from wlroots.allocator import Allocator
from wlroots.renderer import Renderer
from xkbcommon import xkb

from zionwm.quarantine.states import PENDING_STATES

from . import native
from .desktops import DesktopModel
from .loop import Loop
from .native import SceneImage, SceneRect, SceneTree
from .native.text import Canvas
from .outputs import ServerOutput
from .runtime import DesktopRuntime
from .strip import FROZEN_MARK, PENDING_MARK
from .ui import STRIP_HEIGHT, Color, rgb255, scaled, text_colour_on, width_of

log = logging.getLogger(__name__)

HEADER_H = 32
INFO_H = 28
FRAME = 4  # the cell's border in the desktop's colour
RING = 4  # the white ring around the selected cell
GAP = 28
MARGIN = 32
TITLE_H = 44
HINT_H = 34
BACKDROP = (0.05, 0.05, 0.07, 1.0)
THUMB_BG = (0.0, 0.0, 0.0, 1.0)
INFO_BG = (30, 30, 38)
INFO_PAD = 8  # the info line's text from its edges
INFO_SEP = "   \u00b7   "
WELL_INSET = 8  # a slot with no picture: a well this far inside it
WELL_BG, WELL_RIM, NOTE_INK = (20, 20, 26), (58, 58, 68), (110, 110, 120)
HEADER_LEFT, HEADER_RIGHT = 10, 12  # the header's texts' distance from its edges
HEADER_GAP = 8  # the least room between the header's name and its state
MIN_KEPT = 2  # an ellipsized text keeps at least this many characters, or goes
ELLIPSIS = "\u2026"
HINT = "\u2190\u2191\u2193\u2192 choose    1\u20139 / Enter / click  switch    Esc  close"
PENDING = frozenset(state.value for state in PENDING_STATES)


@dataclass(frozen=True)
class Cell:
    """What one desktop's cell says."""

    name: str
    index: int  # 1-based, as Super+N and the overview's digits count
    colour: Color
    state: str  # "running" | "frozen" | "no programs"
    windows: int
    pending: int
    network: str
    active: bool
    oom_kills: int = 0  # programs the memory limit killed: a limit that was hit


@dataclass(frozen=True)
class Layout:
    cols: int
    rows: int
    cells: tuple[tuple[int, int, int, int], ...]  # x, y, w, h from the overview's origin
    thumb: tuple[int, int]  # thumbnail size inside every cell


def grid_layout(n: int, width: int, height: int, screen: tuple[int, int]) -> Layout:
    """Cells for `n` desktops in an area of width x height, each with room for a thumbnail
    of a `screen`-sized frame. Pure: tests call it directly."""
    n = max(1, n)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    aw = max(1, width - 2 * MARGIN)
    ah = max(1, height - TITLE_H - HINT_H)
    cw = (aw - (cols - 1) * GAP) // cols
    ch = (ah - (rows - 1) * GAP) // rows
    sw, sh = max(1, screen[0]), max(1, screen[1])
    chrome = HEADER_H + INFO_H
    # fit each cell to the screen's shape: no thumbnail is stretched
    inner_w, inner_h = cw - 2 * FRAME, ch - chrome
    if inner_w * sh > inner_h * sw:
        inner_w = inner_h * sw // sh
    else:
        inner_h = inner_w * sh // sw
    inner_w, inner_h = max(16, inner_w), max(9, inner_h)
    cw, ch = inner_w + 2 * FRAME, inner_h + chrome
    gw = cols * cw + (cols - 1) * GAP
    gh = rows * ch + (rows - 1) * GAP
    x0 = (width - gw) // 2
    y0 = TITLE_H + (ah - gh) // 2
    cells = tuple(
        (x0 + (i % cols) * (cw + GAP), y0 + (i // cols) * (ch + GAP), cw, ch) for i in range(n)
    )
    return Layout(cols, rows, cells, (inner_w, inner_h))


def network_label(policy: Any) -> str:
    mode = str(policy.mode.value)
    return f"{mode}, no LAN" if getattr(policy, "block_lan", False) and mode != "none" else mode


def cell_state(frozen: bool, programs: int) -> str:
    if frozen:
        return "frozen"
    return "running" if programs else "no programs"


def fit_text(text: str, room: float, width_of: Callable[[str], float]) -> str:
    """`text` if it is at most `room` wide; else its longest start of MIN_KEPT characters
    or more (a space before the cut dropped) that fits with an ellipsis after it; else
    nothing. Pure: tests call it directly."""
    if width_of(text) <= room:
        return text
    for n in range(len(text) - 1, MIN_KEPT - 1, -1):
        cut = text[:n].rstrip() + ELLIPSIS
        if width_of(cut) <= room:
            return cut
    return ""


def header_texts(cell: Cell, width: int, scale: float = 1.0) -> tuple[str, str]:
    """The header's name and state for a cell `width` layout pixels wide at `scale`: the
    name first; the state on the right, shortened or left out where both do not fit."""
    label = f"{cell.index}  {cell.name}" if cell.index <= 9 else cell.name
    state = f"{FROZEN_MARK} frozen" if cell.state == "frozen" else cell.state
    room = scaled(width - HEADER_LEFT - HEADER_RIGHT, scale)
    big = width_of(scaled(15, scale))
    label = fit_text(label, room, big)
    rest = room - big(label) - scaled(HEADER_GAP, scale)
    state = fit_text(state, rest, width_of(scaled(12, scale)))
    return label, state


def info_text(cell: Cell, width: int, scale: float = 1.0) -> str:
    """The line under a cell's thumbnail, `width` layout pixels wide at `scale`: its
    windows, network, waiting downloads and a hit memory limit, shortened to fit."""
    windows = f"{cell.windows} window" + ("" if cell.windows == 1 else "s")
    parts = [windows, f"network {cell.network}"]
    if cell.pending:
        parts.append(f"{PENDING_MARK} {cell.pending} in quarantine")
    if cell.oom_kills:
        parts.append(f"\u26a0 {cell.oom_kills} killed at the memory limit")
    room = scaled(width - 2 * INFO_PAD, scale)
    width_at = width_of(scaled(12, scale), bold=False)
    # whole parts, as many as fit, an ellipsis for those left out; else the first, shortened
    for n in range(len(parts), 0, -1):
        text = INFO_SEP.join(parts[:n]) + ("" if n == len(parts) else f"  {ELLIPSIS}")
        if width_at(text) <= room:
            return text
    return fit_text(parts[0], room, width_at)


@lru_cache(maxsize=64)
def render_header(cell: Cell, width: int, scale: float = 1.0) -> bytes:
    """The cell's header, `width` x HEADER_H layout pixels drawn at `scale`."""
    fg = (*text_colour_on(cell.colour), 255)
    canvas = Canvas(scaled(width, scale), scaled(HEADER_H, scale), (*rgb255(cell.colour), 255))
    label, state = header_texts(cell, width, scale)
    canvas.text(scaled(HEADER_LEFT, scale), 0, canvas.height, label, scaled(15, scale), fg)
    if state:
        small = scaled(12, scale)
        right_x = scaled(width - HEADER_RIGHT, scale) - width_of(small)(state)
        canvas.text(right_x, 0, canvas.height, state, small, fg)
    return canvas.pixels()


@lru_cache(maxsize=64)
def render_info(cell: Cell, width: int, height: int, scale: float = 1.0) -> bytes:
    canvas = Canvas(scaled(width, scale), scaled(height, scale), (*INFO_BG, 255))
    text = info_text(cell, width, scale)
    x, size = scaled(INFO_PAD, scale), scaled(12, scale)
    canvas.text(x, 0, canvas.height, text, size, (230, 230, 235, 255), bold=False)
    return canvas.pixels()


@lru_cache(maxsize=8)
def render_banner(
    text: str, width: int, height: int, size: int, bold: bool, scale: float = 1.0
) -> bytes:
    canvas = Canvas(scaled(width, scale), scaled(height, scale), (*rgb255(BACKDROP), 255))
    px_size = scaled(size, scale)
    x = (canvas.width - width_of(px_size, bold)(text)) // 2
    colour = (245, 245, 250, 255) if bold else (170, 170, 180, 255)
    canvas.text(x, 0, canvas.height, text, px_size, colour, bold=bold)
    return canvas.pixels()


def well_note(state: str) -> str:
    """What the thumbnail slot of a desktop with no window says."""
    return "empty" if state == "no programs" else "no windows"


@lru_cache(maxsize=8)
def render_well_note(text: str, width: int, height: int, scale: float = 1.0) -> bytes:
    """A thumbnail slot with no picture of its desktop, `width` x `height` layout pixels
    drawn at `scale` (in the thumbnail's own pixels, as a thumbnail is): a dark well with
    a rim, the note in its middle."""
    canvas = Canvas(scaled(width, scale), scaled(height, scale), (*rgb255(THUMB_BG), 255))
    # a small slot (many desktops, a small screen) keeps more room for its note
    inset = scaled(min(WELL_INSET, max(2, min(width, height) // 12)), scale)
    rim, radius = max(1, scaled(1, scale)), scaled(8, scale)
    well_w, well_h = canvas.width - 2 * inset, canvas.height - 2 * inset
    canvas.box(inset, inset, well_w, well_h, (*WELL_RIM, 255), radius)
    inner = (inset + rim, inset + rim, well_w - 2 * rim, well_h - 2 * rim)
    canvas.box(*inner, (*WELL_BG, 255), radius - rim)
    size = scaled(13, scale)
    note = fit_text(text, well_w - 2 * scaled(2, scale), width_of(size, bold=False))
    x = (canvas.width - width_of(size, bold=False)(note)) // 2
    canvas.text(x, 0, canvas.height, note, size, (*NOTE_INK, 255), bold=False)
    return canvas.pixels()


def _image(parent: Any, width: int, height: int, pixels: bytes, scale: float) -> SceneImage:
    """`pixels` drawn at `scale` for a box of `width` x `height` layout pixels."""
    px = (scaled(width, scale), scaled(height, scale))
    return SceneImage.create(parent, *px, pixels, size=(width, height))


class PendingBySource:
    """Downloads still in the quarantine's pipeline, per source desktop, learnt from the
    quarantine's events (the compositor relays each one); a dict update per event."""

    def __init__(self) -> None:
        self._items: dict[int, str] = {}  # item id -> source desktop

    def event(self, item: dict[str, Any]) -> None:
        item_id = item.get("id")
        if not isinstance(item_id, int):
            return
        if item.get("state") in PENDING:
            self._items[item_id] = str(item.get("source", "?"))
        else:
            self._items.pop(item_id, None)

    def count(self, desktop: str) -> int:
        return sum(1 for source in self._items.values() if source == desktop)


class OverviewCompositor(Protocol):
    """What the overview asks of the compositor: the desktops and outputs it shows, where it
    draws, and the switch it asks for; it tells when it opens and closes, so that no client
    has the keyboard or the pointer meanwhile."""

    @property
    def desktops(self) -> Mapping[str, DesktopRuntime]: ...

    @property
    def model(self) -> DesktopModel[Any]: ...

    @property
    def outputs(self) -> Sequence[ServerOutput]: ...

    @property
    def loop(self) -> Loop: ...

    @property
    def renderer(self) -> Renderer: ...

    @property
    def allocator(self) -> Allocator: ...

    @property
    def overlay(self) -> SceneTree: ...

    @property
    def ui_scale(self) -> float: ...

    @property
    def isolation(self) -> Any: ...

    def switch_to(self, target: str) -> str: ...

    def output_at(self, x: float, y: float) -> ServerOutput | None: ...

    def output_at_pointer(self) -> ServerOutput | None: ...

    def overview_opened(self) -> None: ...

    def overview_closed(self) -> None: ...


class Overview:
    def __init__(self, server: OverviewCompositor) -> None:
        self.server = server
        self.tree: SceneTree | None = None
        self.ring: SceneRect | None = None
        self.names: list[str] = []
        self._wells: dict[str, tuple[SceneTree, SceneImage]] = {}
        # drawn once the overview's first frame went out: the active desktop, and those
        # with windows but no picture yet (never shown)
        self._after_open: list[str] = []
        self.cells: list[Cell] = []
        self.layout: Layout | None = None
        self.origin = (0, 0)
        self.selected = 0
        # desktop -> (width, height, pixels, the name of the output the picture is of)
        self.thumbs: dict[str, tuple[int, int, bytes, str]] = {}
        self.opened_ns = 0  # set until the first frame showing the overview went out
        self.latencies_ms: list[float] = []
        self._due: set[str] = set()  # desktops left since their thumbnail was drawn
        self._on: Any = None  # the output the overview opened on
        self.quarantine = PendingBySource()

    @property
    def is_open(self) -> bool:
        return self.tree is not None

    # ---- thumbnails ----

    def _output(self) -> Any | None:
        """The output the overview is on: the one chosen when it opened (the pointer's), while
        it is still there; else the first."""
        outs = self.server.outputs
        if self._on in outs:
            return self._on
        return outs[0] if outs else None

    def _screen(self) -> tuple[Any, tuple[int, int, int, int]] | None:
        out = self._output()
        if out is None:
            return None
        b = out.box()
        return out, (b.x, b.y, b.width, b.height)

    def _frame_scale(self) -> float:
        """The scale of the output the thumbnails are taken from: its frames are in its own
        pixels, `scale` to a layout pixel."""
        out = self._output()
        return float(out.output.scale) if out is not None else 1.0

    def _thumb_size(self, n: int) -> tuple[int, int]:
        """A thumbnail's size in the output's pixels (its slot's layout size at the output's
        scale): scaled to that, it is as sharp as the screen."""
        scr = self._screen()
        if scr is None:
            return (0, 0)
        _x, _y, w, h = scr[1]
        area_h = h - STRIP_HEIGHT
        tw, th = grid_layout(n, w, area_h, (w, area_h)).thumb
        sc = self._frame_scale()
        return scaled(tw, sc), scaled(th, sc)

    def picture_stale(self, desktop: str) -> None:
        """`desktop` is being switched away from, or one of its windows was mapped or
        unmapped: its thumbnail is drawn anew the next time the overview opens (a hidden
        desktop's would show a window that is gone). Nothing is drawn now: drawn 60 ms after
        each switch, a 50-window desktop's picture landed on the next switch of a quick
        series (switch p99 10 -> 19 ms)."""
        self._due.add(desktop)

    def _draw(self, desktop: str) -> None:
        """Keep a picture of `desktop`'s windows alone as its thumbnail: drawn from their
        surfaces, not read off the screen, so nothing else that was on screen (host
        windows, notifications, another desktop's notice, the cursor, the strip) is in it,
        and a desktop never shown gets one too. Their frames are not drawn: the cell around
        the picture is in the desktop's colour."""
        scr = self._screen()
        d = self.server.desktops.get(desktop)
        if scr is None or d is None:
            return
        ox, oy, w, h = scr[1]
        size = self._thumb_size(len(self.server.desktops))
        box = (ox, oy + STRIP_HEIGHT, w, h - STRIP_HEIGHT)
        # drawn at twice the thumbnail's size (then a 2x2 box filter), never sharper than
        # the screen: a full-size picture cost three times as much for no visible gain
        draw_scale = min(self._frame_scale(), 2 * size[0] / max(1, w))
        t0 = time.perf_counter()
        pixels = native.capture_thumbnail(
            self.server.renderer, self.server.allocator, d.tree, box, draw_scale, size
        )
        if pixels is None:
            log.warning("overview: the renderer could not draw %s's thumbnail", desktop)
            return
        self.thumbs[desktop] = (*size, pixels, scr[0].name)
        log.debug(
            "overview: %s's thumbnail drawn in %.2f ms", desktop, (time.perf_counter() - t0) * 1e3
        )

    def frame_shown(self, now_ns: int) -> None:
        """A frame went out after a switch, an opening or a closing: the active desktop's
        thumbnail waits for the overview's first frame."""
        if self._after_open:
            self.server.loop.call_later(1, self._draw_after_open, "overview thumbnails")
        if self.opened_ns:
            self.latencies_ms.append((now_ns - self.opened_ns) / 1e6)
            del self.latencies_ms[:-1000]
            self.opened_ns = 0

    def _draw_after_open(self) -> None:
        """Draw the thumbnails the overview opened without into their cells, after its first
        frame (so the overview shows at once), one desktop per turn of the event loop (so
        input and frames go on between them)."""
        if not self._after_open or not self.is_open or self.layout is None:
            return
        desktop = self._after_open.pop(0)
        if self._after_open:
            self.server.loop.call_later(1, self._draw_after_open, "overview thumbnails")
        if desktop not in self._wells:
            return
        self._due.discard(desktop)
        self._draw(desktop)
        got = self.thumbs.get(desktop)
        if got is None or not self._has_windows(desktop):
            return  # no window: its cell keeps the note it opened with
        w, h, pixels, _ = got
        if (w, h) != self._thumb_size(len(self.names)):
            return
        node, old = self._wells[desktop]
        img = SceneImage.create(node, w, h, pixels, size=self.layout.thumb)
        img.set_position(FRAME, HEADER_H)
        old.destroy()
        self._wells[desktop] = (node, img)

    def _needs_picture(self, desktop: str, output: str) -> bool:
        """Its picture is to be drawn at this opening: it was left, or its windows came or
        went, since its picture was drawn; or it has windows and no picture of `output`
        (never shown since zionwm started, or drawn on another output), or is not frozen
        (its windows may have drawn since)."""
        if desktop in self._due:
            return True
        if not self.server.desktops[desktop].views:
            return False
        return (
            self._drawn_on(desktop) != output  # none yet, or of another output
            or not self.server.model.desktops[desktop].frozen
        )

    def _windows(self, desktop: str) -> tuple[int, int]:
        """(the desktop's mapped windows, those of them on the overview's output or on no
        output at all): a picture of this output shows the latter."""
        d = self.server.desktops.get(desktop)
        mapped = [v for v in d.views if v.mapped] if d is not None else []
        out = self._output()
        where = [self.server.output_at(*v.centre()) for v in mapped]
        return len(mapped), sum(1 for o in where if o is None or o is out)

    def _has_windows(self, desktop: str) -> bool:
        """It has a window the picture of the overview's output shows."""
        return self._windows(desktop)[1] > 0

    def _drawn_on(self, desktop: str) -> str | None:
        """The output the desktop's picture is of (None: it has none)."""
        got = self.thumbs.get(desktop)
        return got[3] if got is not None else None

    def _thumb_for(self, desktop: str, size: tuple[int, int]) -> bytes | None:
        got = self.thumbs.get(desktop)
        out = self._output()
        if got is None or out is None or got[3] != out.name:
            return None  # none yet, or of another output: drawn after the opening
        w, h, pixels, output = got
        if (w, h) != size:
            # the grid changed (desktops were added or removed): rescale the small copy
            pixels = native.scale_pixels(pixels, w, h, *size)
            self.thumbs[desktop] = (*size, pixels, output)
        return pixels

    # ---- open, close ----

    def toggle(self) -> str:
        if self.is_open:
            self.close()
            return "overview closed"
        return self.open()

    def open(self) -> str:
        if self.is_open:
            return "overview already open"
        self._on = self.server.output_at_pointer()  # it opens where the user is looking
        scr = self._screen()
        if scr is None:
            raise RuntimeError("no output to show the overview on")
        here = scr[0].name
        self.opened_ns = time.monotonic_ns()
        server = self.server
        for name in list(self.thumbs):
            if name not in server.desktops:
                del self.thumbs[name]  # a desktop deleted since: its picture goes too
        # the desktops as they are now (they may come and go while zionwm runs)
        self.names = [n for n in server.model.desktops if n in server.desktops]
        ox, oy, w, h = scr[1]
        self.origin = (ox, oy + STRIP_HEIGHT)
        area_h = h - STRIP_HEIGHT
        layout = grid_layout(len(self.names), w, area_h, (w, area_h))
        self.layout = layout
        self.selected = (
            self.names.index(server.model.active) if server.model.active in self.names else 0
        )

        try:
            self.cells = [self._cell(name, i + 1) for i, name in enumerate(self.names)]
            tree = self._build(w, area_h, layout)
        except Exception:
            # nothing half-built may stay on screen
            self.opened_ns = 0
            self.ring = None
            raise
        self.tree = tree
        # drawn after the overview's first frame, the desktop on screen last (its cell is
        # the one chosen, so it is looked at first: when it shows, every cell does)
        active = server.model.active
        self._after_open = [
            n for n in self.names if n != active and self._needs_picture(n, here)
        ] + [active]
        self._place_ring()
        server.overview_opened()
        for so in server.outputs:
            so.time_next_frame()
        log.debug("overview open: %d desktops", len(self.names))
        return "overview open"

    def _build(self, w: int, area_h: int, layout: Layout) -> SceneTree:
        tree = SceneTree.create(self.server.overlay)
        try:
            tree.set_position(*self.origin)
            SceneRect.create(tree, w, area_h, BACKDROP)
            here = self._output()
            for so in self.server.outputs:
                if so is not here:
                    # the other outputs are covered below their strips too: no program is
                    # under the pointer anywhere while the overview is open
                    b = so.box()
                    rect = SceneRect.create(tree, b.width, b.height - STRIP_HEIGHT, BACKDROP)
                    rect.set_position(b.x - self.origin[0], b.y + STRIP_HEIGHT - self.origin[1])
            sc = self.server.ui_scale
            banner = render_banner("Desktops", w, TITLE_H, 17, True, sc)
            title = _image(tree, w, TITLE_H, banner, sc)
            title.set_position(0, 4)
            hint = _image(tree, w, HINT_H, render_banner(HINT, w, HINT_H, 13, False, sc), sc)
            hint.set_position(0, area_h - HINT_H)
            self.ring = SceneRect.create(tree, 0, 0, (1.0, 1.0, 1.0, 1.0))
            tw, th = layout.thumb
            fs = self._frame_scale()
            pw, ph = scaled(tw, fs), scaled(th, fs)  # the thumbnail's own pixels
            self._wells = {}
            for i, (name, cell) in enumerate(zip(self.names, self.cells, strict=True)):
                x, y, cw, ch = layout.cells[i]
                node = SceneTree.create(tree)
                node.set_position(x, y)
                SceneRect.create(node, cw, ch, cell.colour)
                header = _image(node, cw, HEADER_H, render_header(cell, cw, sc), sc)
                header.set_position(0, 0)
                total, here = self._windows(name)
                pixels = self._thumb_for(name, (pw, ph)) if here else None
                if pixels is None:
                    # no window, its windows all on another output, or never shown since
                    # zionwm started: say so rather than show a black box
                    if here:
                        note = "not shown yet"
                    else:
                        note = "on another screen" if total else well_note(cell.state)
                    pixels = render_well_note(note, tw, th, fs)
                img = SceneImage.create(node, pw, ph, pixels, size=(tw, th))
                img.set_position(FRAME, HEADER_H)
                self._wells[name] = (node, img)
                iw, ih = cw - 2 * FRAME, INFO_H - FRAME
                info = _image(node, iw, ih, render_info(cell, iw, ih, sc), sc)
                info.set_position(FRAME, HEADER_H + th)
        except Exception:
            tree.destroy()
            raise
        return tree

    def close(self) -> None:
        if self.tree is None:
            return
        self.tree.destroy()
        self.tree = None
        self.ring = None
        self._wells = {}
        # closed before every picture was drawn: those are drawn at the next opening
        self._due.update(self._after_open)
        self._after_open = []
        self.opened_ns = 0
        self.server.overview_closed()
        # the frame after this one shows a desktop again: a thumbnail may be taken from it
        for so in self.server.outputs:
            so.time_next_frame()

    def _cell(self, name: str, index: int) -> Cell:
        s = self.server
        d = s.desktops[name]
        windows = len([v for v in d.views if v.mapped])
        programs = windows + len(d.clients)
        if s.isolation is not None:
            programs += len(s.isolation.launcher.sandboxes(name))
        pending = self.quarantine.count(name)
        oom = 0
        network = network_label(d.spec.network)
        if s.isolation is not None:
            cg = s.isolation.cgroups.get(name)
            oom = (cg.oom_kills() or 0) if cg is not None else 0
            net = s.isolation.net.get(name) if s.isolation.net is not None else None
            if net is not None and not net.enabled:
                network = "off (cut by hand)"
        return Cell(
            name=name,
            index=index,
            colour=d.spec.colour,
            state=cell_state(s.model.desktops[name].frozen, programs),
            windows=windows,
            pending=pending,
            network=network,
            active=name == s.model.active,
            oom_kills=oom,
        )

    def _place_ring(self) -> None:
        if self.ring is None or self.layout is None:
            return
        x, y, cw, ch = self.layout.cells[self.selected]
        self.ring.set_position(x - RING, y - RING)
        self.ring.set_size(cw + 2 * RING, ch + 2 * RING)

    # ---- input while open ----

    def key(self, syms: list[int]) -> None:
        """A key pressed while the overview is open (no client sees it)."""
        if self.layout is None:
            return
        n, cols = len(self.names), self.layout.cols
        for sym in syms:
            if sym == xkb.keysym_from_name("Escape"):
                self.close()
                return
            if sym in (xkb.keysym_from_name("Return"), xkb.keysym_from_name("KP_Enter")):
                self.choose(self.selected)
                return
            step = {
                xkb.keysym_from_name("Left"): -1,
                xkb.keysym_from_name("Right"): 1,
                xkb.keysym_from_name("Up"): -cols,
                xkb.keysym_from_name("Down"): cols,
            }.get(sym)
            if step is not None:
                target = self.selected + step
                if 0 <= target < n:
                    self.selected = target
                    self._place_ring()
                return
            for digit in range(1, 10):
                if sym in (xkb.keysym_from_name(str(digit)), xkb.keysym_from_name(f"KP_{digit}")):
                    if digit <= n:
                        self.choose(digit - 1)
                    return

    def click(self, lx: float, ly: float) -> None:
        if self.layout is None:
            return
        x, y = lx - self.origin[0], ly - self.origin[1]
        for i, (cx, cy, cw, ch) in enumerate(self.layout.cells):
            if cx <= x < cx + cw and cy <= y < cy + ch:
                self.choose(i)
                return
        if y >= 0:
            self.close()  # a click beside the cells closes, as Escape does

    def choose(self, i: int) -> None:
        name = self.names[i] if 0 <= i < len(self.names) else None
        self.close()
        if name is not None and name in self.server.desktops:
            self.server.switch_to(name)

    def describe(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "open": self.is_open,
            "selected": self.names[self.selected] if self.is_open else None,
            "desktops": list(self.names) if self.is_open else [],
            # what each cell says, for tools and tests (colour as drawn)
            "cells": [
                {
                    "name": c.name,
                    "state": c.state,
                    "windows": c.windows,
                    "pending": c.pending,
                    "network": c.network,
                    "oom_kills": c.oom_kills,
                }
                for c in self.cells
            ]
            if self.is_open
            else [],
            "thumbnails": sorted(self.thumbs),
            "drawing": list(self._after_open),  # pictures still to draw since it opened
            # where each cell's thumbnail shows, in layout pixels of the output
            "thumbnail_boxes": self._thumb_boxes(),
            "open_latency_ms": {
                "count": len(lat),
                "samples": [round(x, 4) for x in self.latencies_ms],
            },
        }

    def _thumb_boxes(self) -> list[list[int]]:
        if not self.is_open or self.layout is None:
            return []
        ox, oy = self.origin
        tw, th = self.layout.thumb
        return [[ox + x + FRAME, oy + y + HEADER_H, tw, th] for x, y, _w, _h in self.layout.cells]

    def shutdown(self) -> None:
        self._after_open = []
        self._due.clear()
