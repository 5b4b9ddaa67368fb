"""X11 windows of a desktop's rootless Xwayland, as ordinary windows of that desktop.

wlroots' XWM (one per desktop, see xwayland.py) turns each X toplevel into a
`wlr_xwayland_surface`. A managed one becomes an `XView`: a `View` (frame in the desktop's
colour, focus, move, resize, fullscreen, listing) whose shell calls go to X instead of
xdg-shell. An override-redirect one (menu, tooltip, drop-down) is not managed: it is drawn
where X placed it, above the desktop's windows, without a frame; X coordinates are layout
coordinates, and the compositor tells X where each managed window is (`configure`) so that
the menus a program places next to its windows land there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from wlroots import ffi as wlr_ffi
from wlroots.util.box import Box
from wlroots.util.edges import Edges
from wlroots.wlr_types import Seat
from wlroots.xwayland import Surface as XSurface
from wlroots.xwayland import SurfaceConfigureEvent

from . import native
from .input import KeyboardHandler
from .listeners import HasListeners
from .native import SceneTree
from .views import BORDER, View, ViewCompositor

log = logging.getLogger(__name__)

XCB_STACK_MODE_ABOVE = 0


class XViewCompositor(ViewCompositor, Protocol):
    """What an X window asks of the compositor beyond what every window does: X programs
    ask to be activated, and a menu that wants the keyboard takes it itself."""

    @property
    def keyboards(self) -> Sequence[KeyboardHandler]: ...

    def focus_view(self, view: View, by_user: bool = False) -> None: ...

    def seat_of_desktop(self, desktop: str) -> Seat: ...


class XShell:
    """What `View` and the server ask of an xdg surface, answered for an X window."""

    def __init__(self, view: XView) -> None:
        self._view = view

    @property
    def surface(self) -> Any:
        return self._view.xsurface.surface

    def get_geometry(self) -> Box:
        xs = self._view.xsurface
        return Box(0, 0, int(xs.width), int(xs.height))

    def set_size(self, width: int, height: int) -> None:
        self._view.configure(width=int(width), height=int(height))

    def schedule_configure(self) -> None:
        self._view.configure()

    def set_fullscreen(self, on: bool) -> None:
        self._view.xsurface.set_fullscreen(on)

    def set_activated(self, on: bool) -> None:
        xs = self._view.xsurface
        xs.activate(on)
        if on:
            xs.restack(None, XCB_STACK_MODE_ABOVE)
            if self._view.on_activated is not None:
                self._view.on_activated()

    def send_close(self) -> None:
        self._view.xsurface.close()


class XView(View):
    """A managed X11 toplevel. It belongs to the desktop whose Xwayland made it."""

    server: XViewCompositor

    def __init__(self, server: XViewCompositor, xsurface: XSurface, desktop: str) -> None:
        self.xsurface = xsurface
        self.xdg_surface = XShell(self)  # type: ignore[assignment]
        self.toplevel = None  # type: ignore[assignment]
        self._set_up(server, desktop, int(xsurface.x), int(xsurface.y))
        # X windows report their size through set_geometry; what the X surface draws is
        # followed in C while mapped (see on_geometry_change)
        self._geometry_watch = None
        self.add_listener(xsurface.map_event, self._on_x_map)
        self.add_listener(xsurface.unmap_event, self._on_x_unmap)
        self.add_listener(xsurface.destroy_event, self._on_x_destroy)
        self.add_listener(xsurface.request_configure_event, self._on_x_request_configure)
        self.add_listener(xsurface.request_move_event, self._on_x_request_move)
        self.add_listener(xsurface.request_resize_event, self._on_x_request_resize)
        self.add_listener(xsurface.request_maximize_event, self._on_x_request_maximize)
        self.add_listener(xsurface.request_fullscreen_event, self._on_x_request_fullscreen)
        self.add_listener(xsurface.request_activate_event, self._on_x_request_activate)
        self.add_listener(xsurface.set_title_event, self._on_x_set_title)
        self.add_listener(xsurface.set_class_event, self._on_x_set_title)
        self.add_listener(xsurface.set_geometry_event, self._on_x_set_geometry)
        self.add_listener(xsurface.set_override_redirect_event, self._on_x_set_override_redirect)
        # called with (xsurface, was_mapped) when the window turns out to be of the other
        # kind (override-redirect), after this object has let go of it
        self.on_kind_changed: Callable[[XSurface, bool], None] | None = None
        # called once X has been told that this window has the focus
        self.on_activated: Callable[[], None] | None = None

    def _add_surface_layer(self) -> None:
        # made at map, when X pairs the window with its wl_surface; popups stay unused (X
        # menus are windows of their own)
        self.surface_holder = SceneTree.create(self.tree)
        self.surface_node = None

    # ---- description ----

    @property
    def title(self) -> str:
        return self.xsurface.title or ""

    @property
    def app_id(self) -> str:
        return self.xsurface.wm_class or ""

    @property
    def surface(self) -> Any:
        return self.xsurface.surface

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["shell"] = "xwayland"
        out["class"] = self.xsurface.wm_class or ""
        out["instance"] = _text(self.xsurface._ptr.instance)
        pid = int(self.xsurface.pid)
        if pid > 0:
            out["x11_pid"] = pid  # a pid in the desktop's sandbox, not the host's
        return out

    # ---- X requests ----

    def configure(
        self, width: int | None = None, height: int | None = None, x: int | None = None
    ) -> None:
        """Tell X this window's place and size (layout coordinates are X coordinates)."""
        xs = self.xsurface
        w = int(xs.width) if width is None else width
        h = int(xs.height) if height is None else height
        xs.configure(self.x if x is None else x, self.y, max(1, w), max(1, h))
        if self.mapped:
            self._geometry = (0, 0, max(1, w), max(1, h))
            self._update_borders()

    def move_to(self, x: int, y: int) -> None:
        super().move_to(x, y)
        self.configure()

    def _on_x_map(self, listener: Any, data: Any) -> None:
        self.surface_node = native.subsurface_tree(self.surface_holder, self.xsurface.surface)
        self._watch_drawn(True)
        self.mapped = True
        self.x, self.y = self.server.place_new_view(self)
        self.tree.set_position(self.x, self.y)
        self.configure()
        self.tree.set_enabled(True)
        self._update_borders(force=True)
        self.server.view_mapped(self)

    def _on_x_unmap(self, listener: Any, data: Any) -> None:
        self._watch_drawn(False)
        self.mapped = False
        self.tree.set_enabled(False)
        if self.surface_node is not None:
            self.surface_node.destroy()
            self.surface_node = None
        self.server.view_unmapped(self)

    def _watch_drawn(self, on: bool) -> None:
        if self._geometry_watch is not None:
            native.unwatch_geometry(self._geometry_watch)
            self._geometry_watch = None
        if on:
            self._geometry_watch = native.watch_extents(self.xsurface.surface, self.id)

    def _on_x_destroy(self, listener: Any, data: Any) -> None:
        self._watch_drawn(False)
        self.finalize_listeners()
        self.server.view_destroyed(self)
        self.tree.destroy()

    def _on_x_set_override_redirect(self, listener: Any, data: Any) -> None:
        # a program may make a window override-redirect after creating it (X reports it at
        # MapNotify): it is a menu or tooltip after all, not a window to manage
        if not self.xsurface.override_redirect:
            return
        was_mapped = self.mapped
        if was_mapped:
            self._on_x_unmap(listener, data)
        self._on_x_destroy(listener, data)
        if self.on_kind_changed is not None:
            self.on_kind_changed(self.xsurface, was_mapped)

    def _on_x_request_configure(self, listener: Any, event: SurfaceConfigureEvent) -> None:
        if not self.mapped:
            # before it is shown a program may pick its own place; placement decides on map
            self.xsurface.configure(event.x, event.y, event.width, event.height)
            return
        # a floating window may change its size; its place stays the compositor's
        self.configure(width=int(event.width), height=int(event.height))

    def _on_x_request_move(self, listener: Any, data: Any) -> None:
        self.server.begin_interactive(self, "move", Edges.NONE)

    def _on_x_request_resize(self, listener: Any, data: Any) -> None:
        edges = wlr_ffi.cast("struct wlr_xwayland_resize_event *", data._ptr).edges
        self.server.begin_interactive(self, "resize", Edges(int(edges)))

    def _on_x_request_maximize(self, listener: Any, data: Any) -> None:
        xs = self.xsurface
        self.request_state("maximize", bool(xs.maximized_vert and xs.maximized_horz))

    def _on_x_request_fullscreen(self, listener: Any, data: Any) -> None:
        self.request_state("fullscreen", bool(self.xsurface.fullscreen))

    def _on_x_request_activate(self, listener: Any, data: Any) -> None:
        if self.mapped:
            self.server.focus_view(self)

    def _on_x_set_title(self, listener: Any, data: Any) -> None:
        if self.mapped:
            self.server.emit("title", self.describe())

    def _on_x_set_geometry(self, listener: Any, data: Any) -> None:
        if self.mapped:
            self._geometry = (0, 0, int(self.xsurface.width), int(self.xsurface.height))
            self._update_borders()

    # ---- what differs from xdg-shell in View ----

    def on_geometry_change(self, x: int, y: int, width: int, height: int) -> None:
        """What the X server draws for the window changed size (the extents watch; X windows
        report their size through set_geometry). X says the new size before its buffer of
        that size comes, so the masks over what overflows the frame were cut for the old
        buffer (after fullscreen, a screen-sized one that hid every window beside it)."""
        if self.mapped:
            self._update_borders(force=True)

    def set_maximized(self, on: bool) -> None:
        if on == self.maximized or self.fullscreen:
            self.configure()
            return
        if on:
            self.saved = self._current_geometry()
            area = self.server.usable_area_for(self)
            self.maximized = True
            super().move_to(area.x + BORDER, area.y + BORDER)
            self.configure(width=area.width - 2 * BORDER, height=area.height - 2 * BORDER)
        else:
            self.maximized = False
            self._restore()
        self.xsurface.set_maximized(on)


class Unmanaged(HasListeners):
    """An override-redirect X window (menu, tooltip): drawn where X put it, no frame."""

    def __init__(self, server: XViewCompositor, xsurface: XSurface, desktop: str) -> None:
        self.server = server
        self.xsurface = xsurface
        self.desktop = desktop
        self.node: Any = None
        self.on_gone: Callable[[Unmanaged], None] | None = None
        self.on_kind_changed: Callable[[XSurface, bool], None] | None = None
        self.add_listener(xsurface.map_event, self._on_map)
        self.add_listener(xsurface.set_override_redirect_event, self._on_set_override_redirect)
        self.add_listener(xsurface.unmap_event, self._on_unmap)
        self.add_listener(xsurface.destroy_event, self._on_destroy)
        self.add_listener(xsurface.set_geometry_event, self._on_set_geometry)
        self.add_listener(xsurface.request_configure_event, self._on_request_configure)

    def _on_map(self, listener: Any, data: Any) -> None:
        self.node = native.subsurface_tree(
            self.server.desktop_tree(self.desktop), self.xsurface.surface
        )
        self.node.set_position(int(self.xsurface.x), int(self.xsurface.y))
        self.node.raise_to_top()
        # an override-redirect window that is not a menu or tooltip (a game's own fullscreen
        # window, a splash with a text field) takes the keyboard, as in other X11 WMs
        if self.xsurface.or_surface_wants_focus():
            self._keyboard_to(self.xsurface.surface)

    def _on_set_override_redirect(self, listener: Any, data: Any) -> None:
        if self.xsurface.override_redirect:
            return
        was_mapped = self.node is not None
        self._on_destroy(listener, data)
        if self.on_kind_changed is not None:
            self.on_kind_changed(self.xsurface, was_mapped)

    def _on_set_geometry(self, listener: Any, data: Any) -> None:
        if self.node is not None:
            self.node.set_position(int(self.xsurface.x), int(self.xsurface.y))

    def _on_request_configure(self, listener: Any, event: SurfaceConfigureEvent) -> None:
        self.xsurface.configure(event.x, event.y, event.width, event.height)

    def _on_unmap(self, listener: Any, data: Any) -> None:
        if self.node is not None:
            self.node.destroy()
            self.node = None
            focused = self.server.focused_view
            if focused is not None and focused.mapped and focused.desktop == self.desktop:
                self._keyboard_to(focused.surface)  # back to the window that had it

    def _keyboard_to(self, surface: Any) -> None:
        server = self.server
        if not server.keyboards or not server.desktop_visible(self.desktop):
            return
        seat = server.seat_of_desktop(self.desktop)
        kb = server.keyboards[-1]
        seat.set_keyboard(kb.device)
        seat.keyboard_notify_enter(surface, kb.keyboard)

    def _on_destroy(self, listener: Any, data: Any) -> None:
        self._on_unmap(listener, data)
        self.finalize_listeners()
        if self.on_gone is not None:
            self.on_gone(self)


def _text(ptr: Any) -> str:
    return "" if ptr == wlr_ffi.NULL else wlr_ffi.string(ptr).decode(errors="replace")
