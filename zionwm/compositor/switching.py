"""Desktops at run time: their seats, scene trees and sockets as they come and go, and the
switch from one to another (what is shown, which seat holds the keyboard, the strip).
"""

from __future__ import annotations

import logging
import time

from pywayland.protocol.wayland import WlSeat
from wlroots import ffi as wlr_ffi
from wlroots import lib as wlr_lib
from wlroots.wlr_types import Seat

from zionwm.isolation.spec import DesktopSpec

from . import native
from .clients import DesktopSocket
from .core import ServerCore
from .desktops import SwitchError
from .input import attach_keyboard
from .listeners import HasListeners
from .native import SceneTree
from .runtime import HOST, DesktopRuntime
from .strip import Chip, StripState

log = logging.getLogger(__name__)


class DesktopSwitching(ServerCore):
    """Adds, removes and switches desktops; the pure `DesktopModel` decides, this applies."""

    def _make_seat(self, name: str, slot: int) -> Seat:
        seat = Seat(self.display, name)
        seat.set_capabilities(WlSeat.capability.pointer | WlSeat.capability.keyboard)
        native.set_seat_for_desktop(slot, seat)
        # one holder per seat, so a desktop removed at run time takes its listeners along
        held = self._seat_listeners.setdefault(slot, HasListeners())
        held.add_listener(
            seat.request_set_cursor_event,
            lambda _l, ev, s=seat: self._on_seat_request_set_cursor(s, ev),
        )
        held.add_listener(
            seat.request_set_selection_event,
            lambda _l, ev, s=seat: s.set_selection(ev._ptr.source, ev.serial),
        )
        held.add_listener(
            seat.request_set_primary_selection_event,
            lambda _l, ev, s=seat: s.set_primary_selection(ev._ptr.source, ev.serial),
        )
        return seat

    def _add_desktop(self, spec: DesktopSpec) -> None:
        slot = self._slots
        self._slots += 1
        seat = self._make_seat(f"seat-{spec.name}", slot)
        tree = SceneTree.create(self.desktops_layer)
        sock = DesktopSocket(self.display, self.loop, spec.name, slot, self._on_desktop_client)
        self.desktops[spec.name] = DesktopRuntime(spec, slot, seat, tree, sock)
        self._slot_names[slot] = spec.name

    def _remove_desktop(self, name: str) -> None:
        """Undo _add_desktop for a desktop with no windows left."""
        d = self.desktops.pop(name)
        d.socket.close()
        # its remaining clients (no windows, e.g. a clipboard owner) belong to a
        # compartment that no longer exists
        for client in list(d.clients):
            native.client_destroy(client)
        d.tree.destroy()
        native.set_seat_for_desktop(d.slot, None)
        if self.pointer_seat is d.seat:
            self.pointer_seat = None
        held = self._seat_listeners.pop(d.slot, None)
        if held is not None:
            held.finalize_listeners()
        # wlr_seat_destroy leaves its listener on the keyboard's destroy signal: drop the
        # keyboard first, or destroying the keyboard later runs into the freed seat
        wlr_lib.wlr_seat_set_keyboard(d.seat._ptr, wlr_ffi.NULL)
        d.seat.destroy()

    def _on_client_destroyed(self, client: int, slot: int) -> None:
        name = self._slot_names.get(slot)
        if name is not None and name in self.desktops:
            self.desktops[name].clients.discard(client)

    def _on_desktop_client(self, desktop: str, client: int) -> None:
        self.desktops[desktop].clients.add(client)
        log.debug("client %#x connected to desktop %s", client, desktop)

    def switch_to(self, target: str) -> str:
        if not self.switch_started_ns:
            self.switch_started_ns = time.monotonic_ns()
        try:
            plan = self.model.switch(target)
        except SwitchError:
            self.switch_started_ns = 0
            raise
        if plan is None:
            self.switch_started_ns = 0
            return f"{self.model.active} is already shown"
        new = self.desktops[plan.new]
        for ext in self.extensions:
            hook = getattr(ext, "before_show", None)
            if hook:
                hook(plan.new)
        self.overview.close()  # a switch from elsewhere (zionctl, a chip) ends it too
        if plan.old is not None:
            self.overview.picture_stale(plan.old)
        self._apply_visibility()
        if plan.old is not None:
            old = self.desktops[plan.old]
            old.seat.keyboard_clear_focus()
            old.seat.pointer_notify_clear_focus()
            for ext in self.extensions:
                hook = getattr(ext, "after_hide", None)
                if hook:
                    hook(plan.old)
        waiting, new.deferred = list(new.deferred), {}
        for v in waiting:
            v.flush_deferred()
        target_view = self.model.focused(plan.new)
        kept = self.focused_view
        if kept is not None and kept.desktop == HOST and kept.mapped:
            # a host window (the manager, a prompt) is shown on every desktop: it keeps the
            # keyboard it had, as a window on all desktops does elsewhere; dropping it here
            # let the next window a program of the new desktop mapped take the keyboard
            if target_view is not None:
                target_view.set_activated(False)
        else:
            self.focused_view = None
            if target_view is not None:
                self.focus_view(target_view, by_user=True)
        self._refresh_pointer_focus()
        for so in self.outputs:
            so.time_next_frame()  # the C frame handler reports the frame that shows it
        self.emit("switch", {"old": plan.old, "new": plan.new})
        self.switch_ready_ns = time.monotonic_ns()
        self.switch_ready_cpu_ns = time.thread_time_ns()
        return f"switched to {plan.new}"

    def _apply_visibility(self) -> None:
        active = self.model.active
        for name, d in self.desktops.items():
            d.tree.set_enabled(name == active)
        self._route_keyboard()
        self._update_indicators()

    def _route_keyboard(self) -> None:
        """Only the host seat and the shown desktop's seat hold the keyboard (input.py)."""
        device = self.keyboards[-1].device if self.keyboards else None
        attach_keyboard(self.host_seat, device)
        for name, d in self.desktops.items():
            attach_keyboard(d.seat, device if name == self.model.active else None)

    def _update_indicators(self) -> None:
        # built from the desktops as they are now: desktops may come and go at run time
        chips = tuple(
            Chip(name, self.desktops[name].spec.colour, st.frozen)
            for name, st in self.model.desktops.items()
            if name in self.desktops
        )
        active = self.desktops[self.model.active]
        pending = sum(getattr(e, "pending_count", 0) for e in self.extensions)
        state = StripState(chips, self.model.active, active.spec.colour, pending, self.clock.now())
        v = self.focused_view
        # only the user's own fullscreen gesture, on a desktop that allows it, hides the strip
        hidden = (
            active.spec.allow_fullscreen
            and v is not None
            and v.desktop == self.model.active
            and v.true_fullscreen
            and not self.strip_recalled
        )
        for ind in self.indicators.values():
            ind.show(state)
            ind.set_visible(not hidden)

    def set_frozen(self, desktop: str, frozen: bool) -> None:
        """Record what the cgroup layer did, for the indicator and IPC."""
        self.model.desktops[desktop].frozen = frozen
        self._update_indicators()
        self.emit("freeze" if frozen else "thaw", {"desktop": desktop})
