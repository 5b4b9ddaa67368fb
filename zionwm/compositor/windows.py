"""Window management per desktop: Alt+Tab focus cycling, snapping, maximize/restore, keyboard
move and resize, the tiling layout and where new windows and dialogs appear.

The geometry is decided by the pure `zionwm.layout`; this shell reads what it needs from the
views (size, min/max size, parent), applies the answer with configures, and keeps the little
state the model has no place for: each desktop's layout and master share, the tiling order,
the geometry a snapped window returns to, and the Alt+Tab cycle under way. Everything stays
inside one desktop: a window of another desktop is never focused, placed against or tiled
with. The compositor registers it as an extension, so `before_show`, `reload`,
`describe_desktop` and `close` reach it like the other integrations.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from wlroots import ffi as wlr_ffi
from wlroots.util.edges import Edges
from wlroots.wlr_types.keyboard import KeyboardModifier

from zionwm import layout

from .desktops import DesktopModel
from .input import KeyboardHandler
from .runtime import HOST, DesktopRuntime  # host windows float, never in a desktop's layout
from .views import BORDER, View

if TYPE_CHECKING:
    from zionwm.commands import Command

log = logging.getLogger(__name__)

# A modifier held keeps an Alt+Tab cycle going; releasing them all ends it.
_CYCLE_MODIFIERS = int(KeyboardModifier.ALT | KeyboardModifier.LOGO | KeyboardModifier.CTRL)
_SNAP_EDGES = {
    "left": Edges.TOP | Edges.BOTTOM | Edges.LEFT,
    "right": Edges.TOP | Edges.BOTTOM | Edges.RIGHT,
}
_ALL_EDGES = Edges.TOP | Edges.BOTTOM | Edges.LEFT | Edges.RIGHT
# ICCCM WM_NORMAL_HINTS flags: which of an X window's size limits are set
_X_MIN_SIZE = 1 << 4
_X_MAX_SIZE = 1 << 5


@dataclass
class _Cycle:
    desktop: str
    windows: list[View]  # most recently focused first, as the cycle began
    index: int = 0


class WindowCompositor(Protocol):
    """What window management asks of the compositor: the desktops and their windows, the
    usable area, the keyboards (for the Alt+Tab cycle) and focus."""

    @property
    def desktops(self) -> Mapping[str, DesktopRuntime]: ...

    @property
    def model(self) -> DesktopModel[View]: ...

    @property
    def keyboards(self) -> Sequence[KeyboardHandler]: ...

    @property
    def focused_view(self) -> View | None: ...

    def views_of(self, desktop: str) -> list[View]: ...

    def usable_area_for(self, view: View) -> Any: ...

    def desktop_visible(self, desktop: str) -> bool: ...

    def focus_view(self, view: View, by_user: bool = False) -> None: ...


class WindowManager:
    def __init__(self, server: WindowCompositor) -> None:
        self.server = server
        self.modes: dict[str, str] = {}  # a layout chosen at run time, over the config's
        self.masters: dict[str, float] = {}
        self.order: dict[str, list[View]] = {}  # mapped windows, in tiling order
        self.snapped: dict[int, tuple[str, layout.Rect]] = {}  # id -> side, geometry before
        self.tiled: set[int] = set()
        self._asked: dict[int, tuple[tuple[int, int], tuple[int, int]]] = {}
        self._targets: dict[int, tuple[tuple[int, int], tuple[int, int]]] = {}
        self._dirty: set[str] = set()  # hidden desktops to re-tile when shown
        self._cycle: _Cycle | None = None
        self._config_layouts = self._spec_layouts()

    # ---------------------------------------------------------------- what a view is

    # A window is an xdg toplevel, or (with X11) a view holding an `xsurface`: both shells
    # have a parent and size limits, read here from whichever the view has.

    @staticmethod
    def hints(view: View) -> layout.SizeHints:
        top = getattr(view, "toplevel", None)
        if top is not None:
            st = top._ptr.current
            return layout.SizeHints(
                int(st.min_width), int(st.min_height), int(st.max_width), int(st.max_height)
            )
        xs = getattr(view, "xsurface", None)
        hints = xs._ptr.size_hints if xs is not None else wlr_ffi.NULL
        if hints == wlr_ffi.NULL:
            return layout.SizeHints()
        flags = int(hints.flags)
        lo = (int(hints.min_width), int(hints.min_height)) if flags & _X_MIN_SIZE else (0, 0)
        hi = (int(hints.max_width), int(hints.max_height)) if flags & _X_MAX_SIZE else (0, 0)
        return layout.SizeHints(*(max(0, v) for v in (*lo, *hi)))

    @staticmethod
    def _shell_ptr(view: View) -> Any:
        xs = getattr(view, "xsurface", None)
        return xs._ptr if xs is not None else view.xdg_surface._ptr

    @staticmethod
    def _parent_ptr(view: View) -> Any:
        top = getattr(view, "toplevel", None)
        if top is not None:
            return top._ptr.parent
        xs = getattr(view, "xsurface", None)
        return xs._ptr.parent if xs is not None else wlr_ffi.NULL

    def parent_of(self, view: View) -> View | None:
        parent = self._parent_ptr(view)
        if parent == wlr_ffi.NULL:
            return None
        for v in self.server.views_of(view.desktop):  # never a window of another desktop
            if v.mapped and self._shell_ptr(v) == parent:
                return v
        return None

    def is_dialog(self, view: View) -> bool:
        """Dialogs float in every layout: a toplevel with a parent, or one of fixed size."""
        return self._parent_ptr(view) != wlr_ffi.NULL or self.hints(view).fixed

    @staticmethod
    def _set_tiled(view: View, edges: Edges) -> None:
        set_tiled = getattr(view.xdg_surface, "set_tiled", None)
        if set_tiled is not None:  # xdg-shell's hint; X11 has none
            set_tiled(int(edges))

    @staticmethod
    def rect(view: View) -> layout.Rect:
        g = view.xdg_surface.get_geometry()
        return view.x, view.y, g.width, g.height

    def area(self, view: View) -> layout.Rect:
        a = self.server.usable_area_for(view)
        return a.x, a.y, a.width, a.height

    def mode(self, desktop: str) -> str:
        if desktop == HOST:
            return "float"
        return self.modes.get(desktop) or self.server.desktops[desktop].spec.layout

    def _tiles(self, view: View) -> bool:
        return (
            self.mode(view.desktop) == "tile"
            and not self.is_dialog(view)
            and not view.fullscreen
            and not view.maximized
        )

    def _apply(self, view: View, rect: layout.Rect) -> None:
        x, y, w, h = rect
        before = self.rect(view)[2:]
        view.xdg_surface.set_size(w, h)
        view.move_to(x, y)
        self._asked[view.id] = ((w, h), before)
        if (w, h) != before:
            # A view keeps its frame inside the area for the size it has now: a window
            # shrinking into a place where its old size does not fit lands short of it, so
            # the place is set again once the client has drawn its new size.
            self._targets[view.id] = ((x, y), before)
        else:
            self._targets.pop(view.id, None)

    def geometry_changed(self, view: View) -> None:
        """The client drew a new size: put it where the last `_apply` meant it to be."""
        target = self._targets.get(view.id)
        if target is None or self.rect(view)[2:] == target[1]:
            return
        del self._targets[view.id]
        if (view.x, view.y) != target[0]:
            view.move_to(*target[0])

    def current(self, view: View) -> layout.Rect:
        """Where the window is, or is about to be: the size last asked for while the client
        has not answered yet (a held key repeats faster than a client redraws)."""
        x, y, w, h = self.rect(view)
        asked = self._asked.get(view.id)
        if asked is not None and asked[1] == (w, h):
            w, h = asked[0]
        return x, y, w, h

    def _restorable(self, view: View) -> layout.Rect:
        """The geometry to return to: before maximizing if it is maximized."""
        if view.maximized and view.saved is not None:
            s = view.saved
            return s.x, s.y, s.width, s.height
        return self.current(view)

    # ---------------------------------------------------------------- the view's life

    def place_new_view(self, view: View) -> tuple[int, int]:
        """Where a window appears: a dialog centred on its parent, a tiled window in its
        tile, any other one a cascade step from the last floating window of its desktop."""
        if view.fullscreen or view.maximized:
            return view.x, view.y  # asked for before its first frame: already placed
        area = self.area(view)  # the output the pointer was on when the window came
        g = view.xdg_surface.get_geometry()
        size = (g.width, g.height)
        if self.is_dialog(view):
            parent = self.parent_of(view)
            if parent is None and view.desktop != HOST:
                parent = self.server.model.focused(view.desktop)
            if parent is not None and parent is not view:
                area = self.area(parent)  # on its parent's output
                rect = layout.centre_on(self.rect(parent), size, area, BORDER)
            else:
                rect = layout.centred(area, size, BORDER)
        elif self._tiles(view):
            tiled = [v for v in self._tiled_on(view.desktop, area) if v is not view] + [view]
            rects = layout.tile(
                area, [self.hints(v) for v in tiled], BORDER, self._master(view.desktop)
            )
            rect = rects[-1]
        else:
            floating = [
                v
                for v in self.order.get(view.desktop, [])
                if v is not view
                and v.mapped
                and not v.fullscreen
                and not v.maximized
                and self.area(v) == area
            ]
            previous = self.rect(floating[-1]) if floating else None
            rect = layout.cascade(area, size, previous, BORDER)
        if rect[2:] != size and not self._tiles(view):
            view.xdg_surface.set_size(rect[2], rect[3])  # bigger than the area: ask to fit
        return rect[0], rect[1]

    def view_mapped(self, view: View) -> None:
        order = self.order.setdefault(view.desktop, [])
        if view not in order:
            order.append(view)
        if self._tiles(view):
            self.retile(view.desktop)

    def view_gone(self, view: View) -> None:
        """Unmapped or destroyed: forget it and close the gap it leaves."""
        order = self.order.get(view.desktop, [])
        was_tiled = view.id in self.tiled
        if view in order:
            order.remove(view)
        self.snapped.pop(view.id, None)
        self._asked.pop(view.id, None)
        self._targets.pop(view.id, None)
        self.tiled.discard(view.id)
        if self._cycle is not None and view in self._cycle.windows:
            self._cycle.windows.remove(view)
        if was_tiled and view.desktop in self.server.desktops:
            self.retile(view.desktop)

    def grab_ended(self, view: View) -> None:
        """A tiled window dragged with the pointer goes back to its tile when dropped."""
        if view.id in self.tiled:
            self.retile(view.desktop)

    def state_changed(self, view: View) -> None:
        """Fullscreen or maximized changed: it leaves or rejoins the layout."""
        if view.desktop != HOST and self.mode(view.desktop) == "tile":
            self.retile(view.desktop)

    # ---------------------------------------------------------------- tiling

    def _master(self, desktop: str) -> float:
        return self.masters.get(desktop, layout.DEFAULT_MASTER)

    def _tiled_views(self, desktop: str) -> list[View]:
        return [v for v in self.order.get(desktop, []) if v.mapped and self._tiles(v)]

    def _tiled_on(self, desktop: str, area: layout.Rect) -> list[View]:
        """The desktop's tiled windows on the output whose usable area is `area`."""
        return [v for v in self._tiled_views(desktop) if self.area(v) == area]

    def retile(self, desktop: str) -> None:
        if desktop == HOST or self.mode(desktop) != "tile":
            return
        if not self.server.desktop_visible(desktop):
            # its clients may be frozen: configure them when the desktop is shown
            self._dirty.add(desktop)
            return
        self._dirty.discard(desktop)
        views = self._tiled_views(desktop)
        if not views:
            return
        # each output tiles the windows on it, in the desktop's order; a tiled window
        # dropped on another output joins the layout there
        by_area: dict[layout.Rect, list[View]] = {}
        for v in views:
            by_area.setdefault(self.area(v), []).append(v)
        for area, group in by_area.items():
            rects = layout.tile(area, [self.hints(v) for v in group], BORDER, self._master(desktop))
            for v, r in zip(group, rects, strict=True):
                self.snapped.pop(v.id, None)
                if v.id not in self.tiled:
                    self.tiled.add(v.id)
                    self._set_tiled(v, _ALL_EDGES)
                self._apply(v, r)
        for v in self.order.get(desktop, []):
            if v.id in self.tiled and v not in views:
                self.tiled.discard(v.id)
                self._set_tiled(v, Edges.NONE)
        for v in self.order.get(desktop, []):
            if v.mapped and self.is_dialog(v):
                v.tree.raise_to_top()  # dialogs float above the tiles

    def set_mode(self, desktop: str, mode: str) -> None:
        self.modes[desktop] = mode
        if mode == "tile":
            self.retile(desktop)
            return
        for v in self.order.get(desktop, []):
            if v.id in self.tiled:
                self.tiled.discard(v.id)
                self._set_tiled(v, Edges.NONE)  # they stay where they are

    # ---------------------------------------------------------------- Alt+Tab

    def _modifiers_held(self) -> bool:
        return any(int(k.keyboard.modifier) & _CYCLE_MODIFIERS for k in self.server.keyboards)

    def modifiers_changed(self, modifiers: int) -> None:
        if not modifiers & _CYCLE_MODIFIERS:
            self._cycle = None  # Alt released: the window reached stays on top of the order

    def focus_cycle(self, step: int) -> str:
        desktop = self.server.model.active
        cycle = self._cycle
        if cycle is None or cycle.desktop != desktop:
            stack = self.server.model.desktops[desktop].focus_stack
            own = self.server.desktops[desktop].views
            windows = [v for v in reversed(stack) if v.mapped and v in own]
            cycle = _Cycle(desktop, windows)
        windows = [v for v in cycle.windows if v.mapped]
        if not windows:
            self._cycle = None
            return f"no windows on {desktop}"
        cycle.windows = windows
        if self._modifiers_held():
            # Alt+Tab: each press while the modifier is held goes one further down the order
            # the windows had when the cycle began; releasing it ends the cycle
            cycle.index = (cycle.index + step) % len(windows)
            target = windows[cycle.index]
            self._cycle = cycle
        else:
            # a lone command (zionctl, sway IPC): `next` takes the least recently focused
            # window, so repeating it visits every window in turn; `prev` goes back one
            self._cycle = None
            target = windows[-1] if step > 0 else windows[min(1, len(windows) - 1)]
        # a key binding or the control socket: the user's own gesture, which may take the
        # keyboard from a host window (a program's own request may not)
        self.server.focus_view(target, by_user=True)
        return f"focused {target.app_id or target.title or target.id}"

    # ---------------------------------------------------------------- commands

    def _focused(self) -> View:
        v = self.server.focused_view
        if v is None:
            raise LookupError("no focused window")
        return v

    def _cmd_focus(self, cmd: Command) -> str:
        return self.focus_cycle(1 if cmd.word == "next" else -1)

    def _cmd_snap(self, cmd: Command) -> str:
        v = self._focused()
        side = str(cmd.word)
        if v.fullscreen:
            raise ValueError("snap: the window is fullscreen")
        if v.id in self.tiled:
            raise ValueError(
                f"snap: the window is tiled by {v.desktop}'s layout ('layout float' first)"
            )
        before = self.snapped.get(v.id, (side, self._restorable(v)))[1]
        if v.maximized:
            v.set_maximized(False)
        self.snapped[v.id] = (side, before)
        self._set_tiled(v, _SNAP_EDGES[side])
        self._apply(v, layout.half(self.area(v), side, BORDER))
        return f"snapped {side}"

    def _cmd_restore(self, cmd: Command) -> str:
        v = self._focused()
        done = []
        if v.maximized:
            v.request_state("maximize", False)
            done.append("unmaximized")
        snap = self.snapped.pop(v.id, None)
        if snap is not None:
            self._set_tiled(v, Edges.NONE)
            self._apply(v, layout.fit(self.area(v), snap[1], BORDER))
            done.append("unsnapped")
        return ", ".join(done) or "nothing to restore"

    def _cmd_move(self, cmd: Command) -> str:
        v = self._focused()
        if v.fullscreen:
            raise ValueError("move: the window is fullscreen")
        if v.id in self.tiled:
            return self._swap(v, -1 if cmd.word in ("left", "up") else 1)
        self._release(v)
        step = int(cmd.amount or 0)
        dx, dy = {"left": (-step, 0), "right": (step, 0), "up": (0, -step), "down": (0, step)}[
            str(cmd.word)
        ]
        x, y, _w, _h = layout.moved(self.current(v), dx, dy, self.area(v), BORDER)
        v.move_to(x, y)
        return f"moved to {x},{y}"

    def _cmd_resize(self, cmd: Command) -> str:
        v = self._focused()
        if v.fullscreen:
            raise ValueError("resize: the window is fullscreen")
        delta = int(cmd.amount or 0) * (1 if cmd.word == "grow" else -1)
        if v.id in self.tiled:
            if cmd.axis != "width":
                raise ValueError("resize: a tiled window's height is set by the stack")
            views = self._tiled_on(v.desktop, self.area(v))
            # the master's right edge moves: growing the master or shrinking a stacked one
            # widens the master column
            sign = 1 if views and views[0] is v else -1
            area = self.area(v)
            share = layout.adjust_master(self._master(v.desktop), sign * delta, area[2])
            self.masters[v.desktop] = share
            self.retile(v.desktop)
            return f"master takes {round(share * 100)}% of the width"
        self._release(v)
        dw, dh = (delta, 0) if cmd.axis == "width" else (0, delta)
        r = layout.resized(self.current(v), dw, dh, self.hints(v), self.area(v), BORDER)
        self._apply(v, r)
        return f"resized to {r[2]}x{r[3]}"

    def _cmd_layout(self, cmd: Command) -> str:
        desktop = self.server.model.active
        mode = str(cmd.word)
        if mode == "toggle":
            mode = "float" if self.mode(desktop) == "tile" else "tile"
        self.set_mode(desktop, mode)
        return f"layout of {desktop}: {mode}"

    def _release(self, v: View) -> None:
        """A window moved or resized by hand is no longer snapped or maximized."""
        if v.maximized:
            v.set_maximized(False)
        if self.snapped.pop(v.id, None) is not None:
            self._set_tiled(v, Edges.NONE)

    def _swap(self, v: View, step: int) -> str:
        if v not in self._tiled_views(v.desktop):
            raise ValueError("move: the window is not tiled")
        views = self._tiled_on(v.desktop, self.area(v))  # its neighbours on its output
        order = self.order[v.desktop]
        i = views.index(v)
        j = (i + step) % len(views)
        if i == j:
            return "the only tiled window"
        a, b = order.index(views[i]), order.index(views[j])
        order[a], order[b] = order[b], order[a]
        self.retile(v.desktop)
        return f"swapped with {views[j].app_id or views[j].id}"

    # ---------------------------------------------------------------- extension hooks

    def _spec_layouts(self) -> dict[str, str]:
        return {n: d.spec.layout for n, d in self.server.desktops.items()}

    def before_show(self, desktop: str) -> None:
        if desktop in self._dirty:
            self.retile(desktop)

    def reload(self) -> None:
        """A reloaded config that changes a desktop's layout wins over one chosen at run
        time; the others keep theirs."""
        now = self._spec_layouts()
        for name, mode in now.items():
            if self._config_layouts.get(name) != mode:
                self.modes.pop(name, None)
                self.set_mode(name, mode)
                self.modes.pop(name, None)
        self._config_layouts = now

    def describe_desktop(self, desktop: str) -> dict[str, Any]:
        return {"layout": self.mode(desktop)}

    def describe_window(self, view: View) -> dict[str, Any]:
        snap = self.snapped.get(view.id)
        return {
            "tiled": view.id in self.tiled,
            "snapped": snap[0] if snap else None,
            "dialog": self.is_dialog(view),
        }

    def close(self) -> None:
        self._cycle = None
