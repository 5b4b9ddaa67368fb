"""A toplevel window (xdg-shell) and its compositor-drawn frame in the desktop's colour.

A View lives in exactly one desktop's scene tree, fixed by the socket its client came
through; nothing a client asks can move it. Configure events for windows of hidden desktops
are deferred until the desktop is shown again (a frozen client cannot read them).

Fullscreen comes in two kinds. A client's own request fills the area below the trusted
strip and keeps its coloured frame. Only the user's gesture (a compositor key binding) on a
desktop whose config allows it gives true fullscreen: the whole output, no frame, and the
strip hidden until the next binding. So no program can hide the strip and draw a fake one.

Windows of trusted host tools get a frame no desktop can have: a light frame with a "host"
tab above it.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from wlroots import lib as wlr_lib
from wlroots.util.edges import Edges
from wlroots.wlr_types import SceneNode as WlrSceneNode
from wlroots.wlr_types import Surface
from wlroots.wlr_types.xdg_decoration_v1 import (
    XdgToplevelDecorationV1,
    XdgToplevelDecorationV1Mode,
)
from wlroots.wlr_types.xdg_shell import (
    XdgSurface,
    XdgTopLevelMoveEvent,
    XdgTopLevelResizeEvent,
    XdgTopLevelSetFullscreenEvent,
)

from . import native
from .listeners import HasListeners
from .native import SceneImage, SceneRect, SceneTree
from .placement import Fit, fit_window, overflow
from .ui import host_label

log = logging.getLogger(__name__)

BORDER = 3
HOST_LINE = (0.25, 0.25, 0.28, 1.0)  # the inner line of a host window's frame
_ids = itertools.count(1)


class ViewCompositor(Protocol):
    """What a window asks of the compositor: where it is drawn, what its desktop allows, and
    where it reports its events. The server answers it; a window sees nothing else of it."""

    @property
    def focused_view(self) -> View | None: ...

    def desktop_tree(self, desktop: str) -> SceneTree: ...

    def desktop_colour(self, desktop: str) -> tuple[float, float, float, float]: ...

    def is_host(self, desktop: str) -> bool: ...

    @property
    def ui_scale(self) -> float:
        """The scale to draw a window's frame labels at (the outputs' highest)."""
        ...

    def desktop_visible(self, desktop: str) -> bool: ...

    def defer_until_shown(self, view: View) -> None:
        """`view`'s desktop is hidden and the window has work for when it is shown: the
        switch that shows it calls `flush_deferred` on such windows only."""
        ...

    def fullscreen_allowed(self, desktop: str) -> bool: ...

    def output_box_for(self, view: View) -> Any: ...

    def usable_area_for(self, view: View) -> Any: ...

    def place_new_view(self, view: View) -> tuple[int, int]: ...

    def view_mapped(self, view: View) -> None: ...

    def view_unmapped(self, view: View) -> None: ...

    def view_destroyed(self, view: View) -> None: ...

    def begin_interactive(
        self, view: View, mode: str, edges: Edges, by_compositor: bool = False
    ) -> None: ...

    def fullscreen_changed(self, view: View) -> None: ...

    def maximized_changed(self, view: View) -> None: ...

    def emit(self, event: str, payload: dict[str, Any]) -> None: ...


@dataclass
class Geometry:
    x: int = 0
    y: int = 0
    width: int = 0
    height: int = 0


class View(HasListeners):
    def __init__(self, server: ViewCompositor, xdg_surface: XdgSurface, desktop: str) -> None:
        self.xdg_surface = xdg_surface
        self.toplevel = xdg_surface.toplevel
        self._set_up(server, desktop)
        self._popup_parent = WlrSceneNode(self.popups.wlr_node)
        xdg_surface.data = self._popup_parent  # popups find their parent node here

        self.add_listener(xdg_surface.map_event, self._on_xdg_surface_map)
        self.add_listener(xdg_surface.unmap_event, self._on_xdg_surface_unmap)
        self.add_listener(xdg_surface.destroy_event, self._on_xdg_surface_destroy)
        # commits are watched in C (every client frame is one): Python runs only when the
        # window geometry changes, through server.geometry_changed -> _on_geometry_change
        self._geometry_watch = native.watch_geometry(xdg_surface, self.id)
        tl = self.toplevel
        self.add_listener(tl.request_move_event, self._on_toplevel_request_move)
        self.add_listener(tl.request_resize_event, self._on_toplevel_request_resize)
        self.add_listener(tl.request_maximize_event, self._on_toplevel_request_maximize)
        self.add_listener(tl.request_fullscreen_event, self._on_toplevel_request_fullscreen)
        self.add_listener(tl.set_title_event, self._on_toplevel_set_title)

    def _set_up(self, server: ViewCompositor, desktop: str, x: int = 0, y: int = 0) -> None:
        """The state and the scene nodes of every window, whichever shell it comes from
        (xdg-shell here, X11 in xviews.py); the shell's own surface layer comes from
        `_add_surface_layer`. The window starts hidden, until its client maps it."""
        self.server = server
        self.id = next(_ids)
        self.desktop = desktop
        self.mapped = False
        self.fullscreen = False
        self.true_fullscreen = False  # whole output, no frame: only after the user's gesture
        self.maximized = False
        self.saved: Geometry | None = None  # geometry before fullscreen/maximize
        self.x = x
        self.y = y
        self._last_size: tuple[int, int, int, int] = (-1, -1, -1, -1)
        self._pending_configure: tuple[str, bool, bool] | None = None
        self._asked: tuple[int, int] | None = None  # the size last asked for, to fit
        self._ask_deferred = False  # a size to fit waits until the desktop is shown
        self._geometry = (0, 0, 0, 0)

        self.tree = SceneTree.create(server.desktop_tree(desktop))
        colour = server.desktop_colour(desktop)
        # bottom to top: the client's surface (wlroots puts its window geometry at the tree's
        # origin), the frame with black masks over whatever the client draws outside it, and
        # the window's popups. The frame is above the surface so that no client can paint over
        # its own frame (a buffer bigger than the window it declares, a window bigger than the
        # screen); popups stay above the frame.
        self._add_surface_layer()
        self.frame = SceneTree.create(self.tree)
        self.masks = [SceneRect.create(self.frame, 0, 0, (0, 0, 0, 1)) for _ in range(4)]
        self.borders = [SceneRect.create(self.frame, 0, 0, colour) for _ in range(4)]
        self.host_tab: SceneImage | None = None
        self.host_lines: list[SceneRect] = []
        if server.is_host(desktop):
            # two tones (a dark line inside the light frame) and a tab: a desktop's frame is
            # one plain colour, whatever colour it is given, and has no tab
            self.host_lines = [SceneRect.create(self.frame, 0, 0, HOST_LINE) for _ in range(4)]
            self.host_tab = host_label(server.ui_scale).show(self.frame)
        self.popups = SceneTree.create(self.tree)
        self.tree.set_enabled(False)

    def _add_surface_layer(self) -> None:
        self.surface_node: Any = WlrSceneNode.xdg_surface_create(
            WlrSceneNode(self.tree.wlr_node), self.xdg_surface
        )

    # ---- description ----

    @property
    def title(self) -> str:
        return self.toplevel.title or ""

    @property
    def app_id(self) -> str:
        return self.toplevel.app_id or ""

    @property
    def surface(self) -> Any:
        return self.xdg_surface.surface

    def describe(self) -> dict[str, Any]:
        g = self.xdg_surface.get_geometry()
        return {
            "id": self.id,
            "app_id": self.app_id,
            "title": self.title,
            "desktop": self.desktop,
            "focused": self.server.focused_view is self,
            "x": self.x,
            "y": self.y,
            "width": g.width,
            "height": g.height,
            "fullscreen": self.fullscreen,
            "maximized": self.maximized,
        }

    # ---- handlers: thin, they call the server/model ----

    def _on_xdg_surface_map(self, listener: Any, data: Any) -> None:
        self.mapped = True
        self.x, self.y = self.server.place_new_view(self)
        self.tree.set_position(self.x, self.y)
        self.tree.set_enabled(True)
        self._update_borders(force=True)
        self.server.view_mapped(self)

    def _on_xdg_surface_unmap(self, listener: Any, data: Any) -> None:
        self.mapped = False
        self.tree.set_enabled(False)
        self.server.view_unmapped(self)

    def _on_xdg_surface_destroy(self, listener: Any, data: Any) -> None:
        native.unwatch_geometry(self._geometry_watch)
        self.finalize_listeners()
        self.server.view_destroyed(self)
        # the xdg surface's scene node is destroyed by wlroots with the surface; our tree
        # (and the borders in it) go now
        self.tree.destroy()

    def on_geometry_change(self, x: int, y: int, width: int, height: int) -> None:
        self._geometry = (x, y, width, height)
        if self.mapped:
            self._update_borders(force=True)  # the geometry or what the client draws changed

    def _on_toplevel_request_move(self, listener: Any, event: XdgTopLevelMoveEvent) -> None:
        self.server.begin_interactive(self, "move", Edges.NONE)

    def _on_toplevel_request_resize(self, listener: Any, event: XdgTopLevelResizeEvent) -> None:
        self.server.begin_interactive(self, "resize", event.edges)

    def _on_toplevel_request_maximize(self, listener: Any, data: Any) -> None:
        wanted = bool(self.toplevel._ptr.requested.maximized)
        self.request_state("maximize", wanted)

    def _on_toplevel_request_fullscreen(
        self, listener: Any, event: XdgTopLevelSetFullscreenEvent
    ) -> None:
        self.request_state("fullscreen", bool(event.fullscreen))

    def _on_toplevel_set_title(self, listener: Any, data: Any) -> None:
        self.server.emit("title", self.describe())

    # ---- state changes (deferred while the desktop is hidden) ----

    def request_state(self, kind: str, on: bool, by_user: bool = False) -> None:
        if not self.server.desktop_visible(self.desktop):
            self._pending_configure = (kind, on, by_user)
            self.server.defer_until_shown(self)
            return
        if kind == "fullscreen":
            self.set_fullscreen(on, by_user)
        else:
            self.set_maximized(on)

    def flush_deferred(self) -> None:
        if self._pending_configure is not None:
            kind, on, by_user = self._pending_configure
            self._pending_configure = None
            self.request_state(kind, on, by_user)
        if self.mapped and self._ask_deferred:
            # a size to fit is waiting to be asked. Nothing else can be stale: geometry,
            # extents, moves and the usable area (refit) reach a hidden window as they
            # happen, so a window with nothing deferred is left alone (a switch to a
            # desktop of 50 windows spent about 15 ms redoing every frame here), and the
            # switch calls this only for windows that said they wait (defer_until_shown)
            self._ask_deferred = False
            self._update_borders(force=True)

    def set_fullscreen(self, on: bool, by_user: bool = False) -> None:
        """`by_user`: asked by a compositor key binding, never by the client itself."""
        full = on and by_user and self.server.fullscreen_allowed(self.desktop)
        if on and self.fullscreen and not by_user:
            full = self.true_fullscreen  # a client repeating its request keeps the user's choice
        if on == self.fullscreen and full == self.true_fullscreen:
            self.xdg_surface.schedule_configure()
            return
        if on:
            if not self.fullscreen and not self.maximized:
                self.saved = self._current_geometry()
            self.fullscreen = True
            self.true_fullscreen = full
            if full:
                box = self.server.output_box_for(self)
                self.move_to(box.x, box.y)
                self.xdg_surface.set_size(box.width, box.height)
            else:
                # below the strip, framed: the trust colour stays on screen
                area = self.server.usable_area_for(self)
                self.move_to(area.x + BORDER, area.y + BORDER)
                self.xdg_surface.set_size(area.width - 2 * BORDER, area.height - 2 * BORDER)
            self.tree.raise_to_top()
        else:
            self.fullscreen = False
            self.true_fullscreen = False
            self._restore()
        self.xdg_surface.set_fullscreen(on)
        self._update_borders(force=True)
        self.server.fullscreen_changed(self)

    def set_maximized(self, on: bool) -> None:
        if on == self.maximized or self.fullscreen:
            self.xdg_surface.schedule_configure()
            return
        if on:
            self.saved = self._current_geometry()
            area = self.server.usable_area_for(self)
            self.maximized = True
            self.move_to(area.x + BORDER, area.y + BORDER)
            self.xdg_surface.set_size(area.width - 2 * BORDER, area.height - 2 * BORDER)
        else:
            self.maximized = False
            self._restore()
        wlr_lib.wlr_xdg_toplevel_set_maximized(self.xdg_surface._ptr, on)
        self.server.maximized_changed(self)  # it leaves or rejoins a tiling layout

    def _restore(self) -> None:
        if self.saved is not None:
            self.move_to(self.saved.x, self.saved.y)
            self.xdg_surface.set_size(self.saved.width, self.saved.height)
            self.saved = None

    def _current_geometry(self) -> Geometry:
        g = self.xdg_surface.get_geometry()
        return Geometry(self.x, self.y, g.width, g.height)

    def move_to(self, x: int, y: int) -> None:
        self.x, self.y = int(x), int(y)
        self.tree.set_position(self.x, self.y)
        if self.mapped and not self.true_fullscreen:
            self._update_borders(force=True)  # clamps it back inside the usable area

    def refit(self) -> None:
        """The usable area changed (outputs, panels): keep the frame inside it."""
        if self.mapped and not self.true_fullscreen:
            self._update_borders(force=True)

    def request_size(self, width: int, height: int) -> None:
        """Ask the client for a size, no bigger than fits the usable area with the frame."""
        fit = fit_window(self._area(), self.x, self.y, width, height, BORDER)
        self.xdg_surface.set_size(fit.width, fit.height)

    def centre(self) -> tuple[int, int]:
        _gx, _gy, w, h = self._geometry
        return self.x + w // 2, self.y + h // 2

    def _area(self) -> tuple[int, int, int, int]:
        a = self.server.usable_area_for(self)
        return (a.x, a.y, a.width, a.height)

    def _refit(self, gx: int, gy: int, w: int, h: int) -> Fit:
        """Keep the whole frame inside the usable area (placement.py); ask a window that is
        too big for a size that fits, once per size, and only while it can be seen."""
        fit = fit_window(self._area(), self.x, self.y, w, h, BORDER)
        if (fit.x, fit.y) != (self.x, self.y):
            self.x, self.y = fit.x, fit.y
            self.tree.set_position(self.x, self.y)
        if fit.ask is None:
            self._asked = None
        elif fit.ask != self._asked:
            if self.server.desktop_visible(self.desktop):
                self._asked = fit.ask
                self.xdg_surface.set_size(*fit.ask)
            else:
                self._ask_deferred = True  # flush_deferred asks when it is shown
                self.server.defer_until_shown(self)
        return fit

    def set_activated(self, on: bool) -> None:
        if self.server.desktop_visible(self.desktop):
            self.xdg_surface.set_activated(on)
        self._paint_borders(on)

    def close(self) -> None:
        self.xdg_surface.send_close()

    # ---- frame ----

    def _update_borders(self, force: bool = False) -> None:
        if force:
            g = self.xdg_surface.get_geometry()
            self._geometry = (g.x, g.y, g.width, g.height)
        gx, gy, w, h = self._geometry
        if (gx, gy, w, h) == self._last_size and not force:
            return
        self._last_size = (gx, gy, w, h)
        show = not self.true_fullscreen
        if show and w > 0 and h > 0:
            fit = self._refit(gx, gy, w, h)
            self._clip(fit, gx, gy, w, h)
            w, h = fit.width, fit.height
        else:
            self._clip(None, gx, gy, w, h)
        top, bottom, left, right = self.borders
        top.set_size(w + 2 * BORDER, BORDER)
        top.set_position(-BORDER, -BORDER)
        bottom.set_size(w + 2 * BORDER, BORDER)
        bottom.set_position(-BORDER, h)
        left.set_size(BORDER, h)
        left.set_position(-BORDER, 0)
        right.set_size(BORDER, h)
        right.set_position(w, 0)
        for r in self.borders:
            r.set_enabled(show)
        if self.host_tab is not None:
            self.host_tab.set_position(-BORDER, -BORDER - self.host_tab_height)
            self.host_tab.set_enabled(show)
        if self.host_lines:
            top, bottom, left, right = self.host_lines
            top.set_size(w + 2, 1)
            top.set_position(-1, -1)
            bottom.set_size(w + 2, 1)
            bottom.set_position(-1, h)
            left.set_size(1, h)
            left.set_position(-1, 0)
            right.set_size(1, h)
            right.set_position(w, 0)
            for r in self.host_lines:
                r.set_enabled(show)

    @property
    def host_tab_height(self) -> int:
        return host_label().height

    def _clip(self, fit: Fit | None, gx: int, gy: int, w: int, h: int) -> None:
        """Black masks over everything the client draws outside its frame: beyond a window
        too big for the screen (it would show on a neighbouring output), and outside a window
        smaller than its buffer (a fake frame, or a fake window beside it)."""
        if fit is None:
            for m in self.masks:
                m.set_enabled(False)
            return
        ex, ey, ew, eh = native.surface_extents(self.xdg_surface.surface)
        # in the tree's coordinates, where the window geometry starts at the origin
        extent = (ex - gx, ey - gy, ew, eh)
        for mask, (x, y, mw, mh) in zip(self.masks, overflow(fit, extent), strict=True):
            mask.set_position(x, y)
            mask.set_size(mw, mh)
            mask.set_enabled(mw > 0 and mh > 0)

    def _paint_borders(self, focused: bool) -> None:
        r, g, b, a = self.server.desktop_colour(self.desktop)
        colour = (r, g, b, a) if focused else (r * 0.55, g * 0.55, b * 0.55, a)
        for rect in self.borders:
            rect.set_color(colour)


def popup_parent(xdg_surface: XdgSurface) -> Surface:
    # pywlroots 0.15.24's XdgPopup.parent recurses into itself; read the pointer directly
    return Surface(xdg_surface.popup._ptr.parent)


class Decoration(HasListeners):
    """Server-side decorations always: the compositor draws every frame, so a client cannot
    paint a fake trust colour outside its own surface."""

    live: set[Decoration] = set()

    def __init__(self, deco: XdgToplevelDecorationV1) -> None:
        self.deco = deco
        self.add_listener(deco.request_mode_event, self._on_decoration_request_mode)
        self.add_listener(deco.destroy_event, self._on_decoration_destroy)
        Decoration.live.add(self)
        if deco.added:
            deco.set_mode(XdgToplevelDecorationV1Mode.SERVER_SIDE)

    def _on_decoration_request_mode(self, listener: Any, data: Any) -> None:
        self.deco.set_mode(XdgToplevelDecorationV1Mode.SERVER_SIDE)

    def _on_decoration_destroy(self, listener: Any, data: Any) -> None:
        self.finalize_listeners()
        Decoration.live.discard(self)
