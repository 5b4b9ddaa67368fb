"""Pointer buttons and scrolls, and moving or resizing a window with the pointer.

Motion runs in C (native.Pointer): it tells Python only when the pointer's seat changes and,
during a grab, each motion. A press focuses the window under it, switches desktops on a strip
chip, or starts a Super+drag; no client sees a press meant for the compositor.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from wlroots import ffi as wlr_ffi
from wlroots import lib as wlr_lib
from wlroots.util.edges import Edges
from wlroots.wlr_types import Seat, Surface
from wlroots.wlr_types.input_device import ButtonState
from wlroots.wlr_types.keyboard import KeyboardModifier
from wlroots.wlr_types.xdg_shell import XdgSurface, XdgSurfaceRole

from . import native
from .core import ServerCore
from .desktops import SwitchError
from .runtime import Grab
from .views import View, popup_parent

log = logging.getLogger(__name__)

BTN_LEFT = 0x110
BTN_RIGHT = 0x111


class PointerRouting(ServerCore):
    """Buttons, scrolls, the cursor image a client may set, and interactive grabs."""

    def _on_pointer_seat_changed(self, slot: int | None) -> None:
        self._pointer_seat = (
            None if slot is None else self.seat_of_desktop(self._desktop_of_slot(slot))
        )

    def _on_pointer_grab_motion(self, time_msec: int) -> None:
        self._process_grab()

    def _refresh_pointer_focus(self) -> None:
        if self.pointer is not None:
            self.pointer.refresh(int(time.monotonic() * 1000))

    def _surface_at(self, x: float, y: float) -> tuple[Any, Seat, float, float] | None:
        """The surface under a layout point as a raw pywlroots pointer (no wrapper objects:
        this runs for every pointer motion), with the seat of its desktop."""
        hit = native.node_at(self._scene_root, x, y)
        if hit is None:
            return None
        addr, sx, sy = hit
        ptr = wlr_ffi.cast("struct wlr_surface *", addr)
        desktop = self._desktop_of_slot(native.resource_desktop(ptr.resource))
        return ptr, self.seat_of_desktop(desktop), sx, sy

    def _on_cursor_button(self, listener: Any, event: Any) -> None:
        if event.button_state == ButtonState.RELEASED and self.grab is not None:
            held_by_us = self.grab.by_compositor
            self.wm.grab_ended(self.grab.view)
            self.grab = None
            if held_by_us:
                return  # the client never saw the press: it gets no release either
        elif self.input_taken:
            self.locker.input_seen()
            if event.button_state == ButtonState.PRESSED and self.overview.is_open:
                self.overview.click(self.cursor.x, self.cursor.y)
            return  # no client is under the overview or the lock
        elif event.button_state == ButtonState.PRESSED and self._strip_click():
            return
        elif event.button_state == ButtonState.PRESSED:
            view = self._view_under_cursor()
            if view is not None:
                self.focus_view(view, by_user=True)
                if self._super_held() and event.button in (BTN_LEFT, BTN_RIGHT):
                    # Super+drag: move (left) or resize from the bottom-right (right); the
                    # compositor's own gesture, so the click does not reach the client
                    mode = "move" if event.button == BTN_LEFT else "resize"
                    edges = Edges.NONE if mode == "move" else Edges.BOTTOM | Edges.RIGHT
                    self.begin_interactive(view, mode, edges, by_compositor=True)
                    return
        if self.pointer_seat is not None:
            self.pointer_seat.pointer_notify_button(
                event.time_msec, event.button, event.button_state
            )

    def _strip_click(self) -> bool:
        """A press on a strip: its chips switch desktops; no client gets it."""
        x, y = self.cursor.x, self.cursor.y
        for strip in self.indicators.values():
            if strip.contains(x, y):
                name = strip.chip_at(x, y)
                if name is not None and name in self.desktops:
                    self.switch_started_ns = time.monotonic_ns()
                    try:
                        self.switch_to(name)
                    except SwitchError as e:  # a desktop going away as it is clicked
                        self.notify(str(e), urgent=True)
                return True
        return False

    def _view_under_cursor(self) -> View | None:
        hit = self._surface_at(self.cursor.x, self.cursor.y)
        if hit is None:
            return None
        root = wlr_lib.wlr_surface_get_root_surface(hit[0])
        for v in self.all_views():
            if v.surface._ptr == root and self.desktop_visible(v.desktop):
                return v
        # a popup: its root is the popup surface; find the toplevel that owns it
        try:
            xs = XdgSurface.from_surface(Surface(root))
        except Exception:
            return None
        while xs.role == XdgSurfaceRole.POPUP:
            xs = XdgSurface.from_surface(popup_parent(xs))
        return self._view_for_xdg_surface(xs)

    def _on_cursor_axis(self, listener: Any, event: Any) -> None:
        if self.pointer_seat is not None and not self.input_taken:
            self.pointer_seat.pointer_notify_axis(
                event.time_msec, event.orientation, event.delta, event.delta_discrete, event.source
            )

    def _on_seat_request_set_cursor(self, seat: Seat, event: Any) -> None:
        if seat is not self.pointer_seat:
            return
        focused = seat._ptr.pointer_state.focused_client
        if focused != wlr_ffi.NULL and event._ptr.seat_client == focused:
            self.cursor.set_surface(event.surface, event.hotspot)

    def begin_interactive(
        self, view: View, mode: str, edges: Edges, by_compositor: bool = False
    ) -> None:
        if view is not self.focused_view:
            return  # only the focused window may start a grab
        g = view.xdg_surface.get_geometry()
        self.grab = Grab(
            view,
            mode,
            edges,
            self.cursor.x,
            self.cursor.y,
            (view.x, view.y, g.width, g.height),
            by_compositor,
        )

    def _super_held(self) -> bool:
        return any(int(k.keyboard.modifier) & int(KeyboardModifier.LOGO) for k in self.keyboards)

    def _process_grab(self) -> None:
        grab = self.grab
        assert grab is not None
        dx = self.cursor.x - grab.cursor_x
        dy = self.cursor.y - grab.cursor_y
        x, y, w, h = grab.box
        if grab.mode == "move":
            grab.view.move_to(int(x + dx), int(y + dy))
            return
        e = grab.edges
        if e & Edges.LEFT:
            x, w = int(x + dx), int(w - dx)
        elif e & Edges.RIGHT:
            w = int(w + dx)
        if e & Edges.TOP:
            y, h = int(y + dy), int(h - dy)
        elif e & Edges.BOTTOM:
            h = int(h + dy)
        if w > 20 and h > 20:
            grab.view.move_to(x, y)
            grab.view.request_size(w, h)
