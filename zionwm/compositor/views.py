"""A toplevel window (xdg-shell) and its compositor-drawn frame in the desktop's colour.

A View lives in exactly one desktop's scene tree, fixed by the socket its client came
through; nothing a client asks can move it. Configure events for windows of hidden desktops
are deferred until the desktop is shown again (a frozen client cannot read them).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wlroots import lib as wlr_lib
from wlroots.util.edges import Edges
from wlroots.wlr_types import SceneNode as WlrSceneNode
from wlroots.wlr_types.xdg_shell import (
    XdgSurface,
    XdgTopLevelMoveEvent,
    XdgTopLevelResizeEvent,
    XdgTopLevelSetFullscreenEvent,
)

from . import native
from .listeners import HasListeners
from .native import SceneRect, SceneTree

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)

BORDER = 3
_ids = itertools.count(1)


@dataclass
class Geometry:
    x: int = 0
    y: int = 0
    width: int = 0
    height: int = 0


class View(HasListeners):
    def __init__(self, server: Server, xdg_surface: XdgSurface, desktop: str) -> None:
        self.server = server
        self.id = next(_ids)
        self.xdg_surface = xdg_surface
        self.toplevel = xdg_surface.toplevel
        self.desktop = desktop
        self.mapped = False
        self.fullscreen = False
        self.maximized = False
        self.saved: Geometry | None = None  # geometry before fullscreen/maximize
        self.x = 0
        self.y = 0
        self._last_size: tuple[int, int, int, int] = (-1, -1, -1, -1)
        self._pending_configure: tuple[str, bool] | None = None

        parent = server.desktop_tree(desktop)
        self.tree = SceneTree.create(parent)
        colour = server.desktop_colour(desktop)
        self.borders = [SceneRect.create(self.tree, 0, 0, colour) for _ in range(4)]
        self.surface_node = WlrSceneNode.xdg_surface_create(
            WlrSceneNode(self.tree.wlr_node), xdg_surface
        )
        xdg_surface.data = self.surface_node  # popups find their parent node here
        self.tree.set_enabled(False)

        self.add_listener(xdg_surface.map_event, self._on_xdg_surface_map)
        self.add_listener(xdg_surface.unmap_event, self._on_xdg_surface_unmap)
        self.add_listener(xdg_surface.destroy_event, self._on_xdg_surface_destroy)
        # commits are watched in C (every client frame is one): Python runs only when the
        # window geometry changes, through server.geometry_changed -> _on_geometry_change
        self._geometry_watch = native.watch_geometry(xdg_surface, self.id)
        self._geometry = (0, 0, 0, 0)
        tl = self.toplevel
        self.add_listener(tl.request_move_event, self._on_toplevel_request_move)
        self.add_listener(tl.request_resize_event, self._on_toplevel_request_resize)
        self.add_listener(tl.request_maximize_event, self._on_toplevel_request_maximize)
        self.add_listener(tl.request_fullscreen_event, self._on_toplevel_request_fullscreen)
        self.add_listener(tl.set_title_event, self._on_toplevel_set_title)

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
            self._update_borders()

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

    def request_state(self, kind: str, on: bool) -> None:
        if not self.server.desktop_visible(self.desktop):
            self._pending_configure = (kind, on)
            return
        if kind == "fullscreen":
            self.set_fullscreen(on)
        else:
            self.set_maximized(on)

    def flush_deferred(self) -> None:
        if self._pending_configure is not None:
            kind, on = self._pending_configure
            self._pending_configure = None
            self.request_state(kind, on)

    def set_fullscreen(self, on: bool) -> None:
        if on == self.fullscreen:
            self.xdg_surface.schedule_configure()
            return
        box = self.server.output_box_for(self)
        if on:
            if not self.maximized:
                self.saved = self._current_geometry()
            self.fullscreen = True
            self.move_to(box.x, box.y)
            self.xdg_surface.set_size(box.width, box.height)
            self.tree.raise_to_top()
        else:
            self.fullscreen = False
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
        show = not self.fullscreen
        top, bottom, left, right = self.borders
        # The scene's xdg-surface tree already moves its surface by minus the geometry
        # offset on every commit (wlroots 0.15); moving it here too would shift windows
        # with client-side shadows (GTK) away from their frame by that offset again.
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

    def _paint_borders(self, focused: bool) -> None:
        r, g, b, a = self.server.desktop_colour(self.desktop)
        colour = (r, g, b, a) if focused else (r * 0.55, g * 0.55, b * 0.55, a)
        for rect in self.borders:
            rect.set_color(colour)
