"""Windows and panels coming and going, and which surface has the keyboard.

New xdg toplevels and popups, layer surfaces, decorations and activation requests arrive
here from wlroots; a window is focused only on the desktop being shown, and a trusted host
surface (a launcher, a prompt, the manager) keeps the keyboard it took.
"""

from __future__ import annotations

import logging
from typing import Any

from wlroots.util.box import Box
from wlroots.wlr_types import SceneNode as WlrSceneNode
from wlroots.wlr_types.layer_shell_v1 import LayerSurfaceV1
from wlroots.wlr_types.xdg_decoration_v1 import XdgToplevelDecorationV1
from wlroots.wlr_types.xdg_shell import XdgSurface, XdgSurfaceRole

from . import native
from .core import ServerCore
from .layers import LayerView
from .lock import IdleInhibitor
from .outputs import ServerOutput
from .runtime import HOST
from .ui import STRIP_HEIGHT
from .views import Decoration, View, popup_parent

log = logging.getLogger(__name__)


class FocusHandling(ServerCore):
    """Views in their desktops, focus, and the area a window may use."""

    def _on_xdg_shell_new_surface(self, listener: Any, xdg_surface: XdgSurface) -> None:
        if xdg_surface.role == XdgSurfaceRole.POPUP:
            parent = XdgSurface.from_surface(popup_parent(xdg_surface))
            parent_node = parent.data
            if parent_node is None:
                log.warning("popup without a known parent: ignored")
                return
            node = WlrSceneNode.xdg_surface_create(parent_node, xdg_surface)
            xdg_surface.data = node
            self._unconstrain_popup(xdg_surface)
            return
        if xdg_surface.role != XdgSurfaceRole.TOPLEVEL:
            return
        desktop = self._desktop_of_slot(native.surface_desktop(xdg_surface.surface))
        self.add_view(View(self, xdg_surface, desktop))

    def add_view(self, view: View) -> None:
        """Take a new, not yet mapped toplevel (xdg-shell or X11) into its desktop."""
        desktop = view.desktop
        self._views_by_id[view.id] = view
        if not view.mapped and (view.x, view.y) == (0, 0):
            # a new window opens on the output the pointer is on: its placement (cascade,
            # tile, maximized or fullscreen before its first frame) is in that output's area
            box = self.output_box_at(self.cursor.x, self.cursor.y)
            view.x, view.y = box.x, box.y
        if desktop == HOST:
            self.host_views.append(view)
        else:
            self.desktops[desktop].views.append(view)
            self.model.add_window(desktop, view)

    def _unconstrain_popup(self, xdg_surface: XdgSurface) -> None:
        box = self.output_layout.get_box(None)
        if box is None:
            return
        popup = xdg_surface.popup
        parent = XdgSurface.from_surface(popup_parent(xdg_surface))
        view = self._view_for_xdg_surface(parent)
        ox, oy = (view.x, view.y) if view else (0, 0)
        popup.unconstrain_from_box(Box(box.x - ox, box.y - oy, box.width, box.height))

    def _view_for_xdg_surface(self, xdg_surface: XdgSurface) -> View | None:
        for v in self.all_views():
            if v.xdg_surface == xdg_surface:
                return v
        return None

    def place_new_view(self, view: View) -> tuple[int, int]:
        return self.wm.place_new_view(view)

    def view_mapped(self, view: View) -> None:
        self.wm.view_mapped(view)
        if view.desktop != HOST:
            self.overview.picture_stale(view.desktop)
        if self.desktop_visible(view.desktop):
            self.focus_view(view)
        else:
            view._paint_borders(False)
        self.emit("map", view.describe())

    def view_unmapped(self, view: View) -> None:
        if self.grab and self.grab.view is view:
            self.grab = None
        was_focused = self.focused_view is view
        if view.desktop != HOST:
            self.model.demote(view.desktop, view)
            self.overview.picture_stale(view.desktop)
        if was_focused:
            self.focused_view = None
            # a closed host dialog gives the keyboard back to its host window first
            host = self.host_views if view.desktop == HOST else []
            candidates = [*self._focus_candidates(), *host]
            nxt = next((v for v in reversed(candidates) if v.mapped and v is not view), None)
            if nxt is not None:
                self.focus_view(nxt)
            elif self.layer_focus is None:
                self.seat_of_desktop(view.desktop).keyboard_clear_focus()
        self.wm.view_gone(view)
        self.emit("unmap", view.describe())

    def view_destroyed(self, view: View) -> None:
        self._views_by_id.pop(view.id, None)
        if view.desktop == HOST:
            self.host_views.remove(view)
        else:
            self.desktops[view.desktop].views.remove(view)
            self.desktops[view.desktop].deferred.pop(view, None)
            self.model.remove_window(view.desktop, view)
        if self.focused_view is view:
            self.focused_view = None
        if self.grab and self.grab.view is view:
            self.grab = None
        self.wm.view_gone(view)

    def defer_until_shown(self, view: View) -> None:
        d = self.desktops.get(view.desktop)
        if d is not None:
            d.deferred[view] = None

    def _on_geometry_changed(self, view_id: int, x: int, y: int, w: int, h: int) -> None:
        view = self._views_by_id.get(view_id)
        if view is not None:
            view.on_geometry_change(x, y, w, h)
            self.wm.geometry_changed(view)

    def _focus_candidates(self) -> list[View]:
        return list(self.model.desktops[self.model.active].focus_stack)

    def focus_view(self, view: View, by_user: bool = False) -> None:
        if not view.mapped or not self.desktop_visible(view.desktop):
            return
        prev = self.focused_view
        if (
            not by_user
            and view.desktop != HOST
            and prev is not None
            and prev.desktop == HOST
            and prev.mapped
        ):
            # a trusted host window (a prompt, the manager) has the keyboard: a desktop's
            # program mapping a window or asking xdg-activation does not take it
            view.set_activated(False)
            self.model.focus(view.desktop, view)
            return
        if self.layer_focus is not None and self.layer_focus.keeps_keyboard(by_user):
            # a trusted host surface (launcher, prompt) holds the keyboard: the window only
            # becomes the one that gets it back when that surface lets go
            if prev is not None and prev is not view and prev.mapped:
                prev.set_activated(False)
            self.focused_view = view
            if view.desktop != HOST:
                self.model.focus(view.desktop, view)
            return
        self.layer_focus = None
        if prev is view:
            return
        if prev is not None and prev.mapped:
            prev.set_activated(False)
        self.focused_view = view
        view.tree.raise_to_top()
        view.set_activated(True)
        if view.desktop != HOST:
            self.model.focus(view.desktop, view)
        seat = self.seat_of_desktop(view.desktop)
        for other in self._all_seats():
            if other is not seat:
                other.keyboard_clear_focus()
        if self.keyboards and not self.input_taken:
            seat.set_keyboard(self.keyboards[-1].device)
            seat.keyboard_notify_enter(view.surface, self.keyboards[-1].keyboard)
        self.emit("focus", view.describe())
        self._update_indicators()

    def fullscreen_changed(self, view: View) -> None:
        self._update_indicators()
        self.wm.state_changed(view)

    def maximized_changed(self, view: View) -> None:
        self.wm.state_changed(view)  # it leaves or rejoins a tiling layout

    def output_box_at(self, x: float, y: float) -> Any:
        """The box of the output at (x, y) in the layout; the first output's off every one."""
        out = self.output_layout.output_at(x, y) or (
            self.outputs[0].output if self.outputs else None
        )
        box = self.output_layout.get_box(out) if out else None
        return box or Box(0, 0, *self.options.size)

    def output_box_for(self, view: View) -> Any:
        return self.output_box_at(*view.centre())

    def usable_area_for(self, view: View) -> Any:
        b = self.output_box_for(view)
        for so in self.outputs:
            ob = so.box()
            if (ob.x, ob.y) == (b.x, b.y) and so.name in self.layers.exclusive:
                return self.layers.exclusive[so.name]
        return Box(b.x, b.y + STRIP_HEIGHT, b.width, b.height - STRIP_HEIGHT)

    def _on_layer_shell_new_surface(self, listener: Any, surface: LayerSurfaceV1) -> None:
        self.layers.new_surface(surface)

    def focus_layer(self, view: LayerView) -> None:
        if not self.keyboards:
            return
        self.layer_focus = view
        if self.input_taken:
            return  # it gets the keyboard when the overview closes or the lock lifts
        for seat in self._all_seats():
            if seat is not self.host_seat:
                seat.keyboard_clear_focus()
        self.host_seat.set_keyboard(self.keyboards[-1].device)
        self.host_seat.keyboard_notify_enter(view.surface.surface, self.keyboards[-1].keyboard)

    def _reenter_keyboard_focus(self) -> None:
        """Enter the keyboard focus again (a keyboard came): the same surface keeps it."""
        if self.layer_focus is not None:
            self.focus_layer(self.layer_focus)
        elif self.focused_view is not None:
            view, self.focused_view = self.focused_view, None
            self.focus_view(view)

    def unfocus_layer(self, view: LayerView) -> None:
        if self.layer_focus is not view:
            return
        self.layer_focus = None
        self.host_seat.keyboard_clear_focus()
        back, self.focused_view = self.focused_view, None
        if back is not None:
            self.focus_view(back)

    def _on_xdg_activation_request(self, listener: Any, data: Any) -> None:
        # A window may be raised and focused only on the desktop being shown: activation
        # never switches desktops or reaches across them.
        addr = native.activation_surface(data)
        for v in self.all_views():
            if v.mapped and native.address_of(v.surface._ptr) == addr:
                if self.desktop_visible(v.desktop):
                    self.focus_view(v)
                return

    def _on_xdg_decoration_new(self, listener: Any, deco: XdgToplevelDecorationV1) -> None:
        Decoration(deco)

    def overview_opened(self) -> None:
        """While the overview is open no client has the keyboard or the pointer."""
        self._input_to_compositor()

    def overview_closed(self) -> None:
        if not self.locker.locked:
            self._input_to_clients()

    def _on_new_idle_inhibitor(self, listener: Any, inhibitor: Any) -> None:
        try:
            desktop = self._desktop_of_slot(native.surface_desktop(inhibitor.surface))
        except LookupError:
            return  # a desktop going away
        IdleInhibitor(inhibitor, desktop, self.idle_inhibitors)

    def lock_taken(self) -> None:
        """The screen locked: the overview closes, no client keeps the keyboard or the
        pointer, and no grab goes on."""
        self.overview.close()
        self._input_to_compositor()

    def lock_lifted(self) -> None:
        self._input_to_clients()

    def output_at(self, x: float, y: float) -> ServerOutput | None:
        """The output at (x, y) in the layout (None: no output there)."""
        out = self.output_layout.output_at(x, y)
        return next((so for so in self.outputs if so.output == out), None) if out else None

    def output_at_pointer(self) -> ServerOutput | None:
        return self.output_at(self.cursor.x, self.cursor.y)

    def _pointer_output_area(self) -> tuple[int, int, int, float] | None:
        """The x, y, width and scale of the output the pointer is on (None: no output)."""
        so = self.output_at_pointer()
        if so is None:
            return None
        b = so.box()
        return b.x, b.y, b.width, float(so.output.scale)

    def lock_outputs(self) -> list[tuple[int, int, int, int, float]]:
        """Every output's box and scale, the one the pointer is on first (it gets the
        lock's panel)."""
        here = self.output_at_pointer()
        return [
            (b.x, b.y, b.width, b.height, float(so.output.scale))
            for so in sorted(self.outputs, key=lambda so: so is not here)
            for b in (so.box(),)
        ]

    def _input_to_compositor(self) -> None:
        for seat in self._all_seats():
            seat.keyboard_clear_focus()
        if self.pointer_seat is not None:
            self.pointer_seat.pointer_notify_clear_focus()
            self.pointer_seat = None
        self.grab = None

    def _input_to_clients(self) -> None:
        if self.layer_focus is not None:
            self.focus_layer(self.layer_focus)
        else:
            view, self.focused_view = self.focused_view, None
            if view is not None and self.desktop_visible(view.desktop):
                self.focus_view(view)
        self._refresh_pointer_focus()
