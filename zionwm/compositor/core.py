"""What every part of the compositor server shares: its state, the questions about desktops
they all ask (which scene tree, colour and seat a desktop has, whether it is shown), the
pointer state mirrored into C, and the event stream (`emit`, `notify`).

The server is one object that owns every global (tinywl's shape), assembled from one class
per concern, each deriving from `ServerCore`: desktop switching (switching.py), windows and
focus (focus.py), keys (key_routing.py), the pointer (pointer_routing.py), commands
(actions.py), config reload (config_reload.py), outputs (screens.py) and what is reported
over IPC (reporting.py); server.py holds the boot. `ServerCore` names the state they share
and, for the type checker only, what one part calls of another.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pywayland.server import Display
from wlroots.allocator import Allocator
from wlroots.backend import Backend
from wlroots.renderer import Renderer
from wlroots.util.edges import Edges
from wlroots.wlr_types import Compositor, Cursor, OutputLayout, Scene, Seat, XCursorManager
from wlroots.wlr_types.xdg_shell import XdgSurface

from zionwm.isolation.spec import DesktopSpec

from . import native
from .children import Children
from .clipboard import ClipboardBridge
from .desktops import DesktopModel
from .input import BindingTable, KeyboardHandler
from .ipc import Deferred
from .layers import Layers, LayerView
from .listeners import HasListeners
from .lock import IdleInhibitor, Locker
from .loop import Loop
from .native import SceneTree
from .outputs import ServerOutput
from .overview import Overview
from .runtime import HOST, DesktopRuntime, Grab
from .strip import MinuteClock, Strip
from .ui import HOST_FRAME, Notifications
from .views import View
from .windows import WindowManager

log = logging.getLogger(__name__)


@dataclass
class Options:
    headless: bool = False
    outputs: int = 1
    size: tuple[int, int] = (1280, 720)
    config_path: Path | None = None
    socket_name: str | None = None


class ServerCore:
    """The server's shared state (set in `Server.__init__`) and the lookups every part uses."""

    config: Any
    options: Options
    shutting_down: bool
    # -- wlroots objects made at boot --
    display: Display
    loop: Loop
    backend: Backend
    renderer: Renderer
    allocator: Allocator
    compositor: Compositor
    output_layout: OutputLayout
    scene: Scene
    _scene_root: Any
    desktops_layer: SceneTree
    host_tree: SceneTree
    overlay: SceneTree  # the compositor's own UI, above everything
    cursor: Cursor
    cursor_manager: XCursorManager
    host_seat: Seat
    socket_name: str
    # -- desktops: the pure model and what the compositor holds for each --
    model: DesktopModel[View]
    desktops: dict[str, DesktopRuntime]
    host_views: list[View]
    _slots: int
    _slot_names: dict[int, str]
    _views_by_id: dict[int, View]
    _seat_listeners: dict[int, HasListeners]
    children: Children
    # -- focus and input --
    focused_view: View | None
    layer_focus: LayerView | None
    keyboards: list[KeyboardHandler]
    bindings: BindingTable
    in_binding: bool
    _consumed_keys: set[int]
    pointer: native.Pointer | None  # motion and frame events, in C
    _pointer_seat: Seat | None
    _grab: Grab | None
    # -- outputs and what the compositor draws --
    outputs: list[ServerOutput]
    layers: Layers
    indicators: dict[str, Strip]
    strip_recalled: bool
    notifications: Notifications
    overview: Overview
    lock_layer: SceneTree  # the lock screen, above the overlay
    locker: Locker
    idle_inhibitors: set[IdleInhibitor]
    clock: MinuteClock
    switch_started_ns: int
    switch_ready_ns: int  # the switch's own handling ended (the key's, or a command's)
    switch_ready_cpu_ns: int  # the compositor thread's CPU time then
    switch_latencies_ms: list[float]
    switch_frame_waits_ms: list[float]  # of each latency, the wait for the frame clock
    # -- parts and extensions --
    wm: WindowManager
    clipboard: ClipboardBridge
    ipc: Any
    extensions: list[Any]  # isolation/quarantine integrations (close on exit)
    launch_hook: Any  # the sandbox launcher, when available
    isolation: Any  # integration.Isolation once attached
    desktop_data: Any  # live.LiveDesktops: desktops made at run time

    # ---- desktops ----

    def desktop_tree(self, desktop: str) -> SceneTree:
        return self.host_tree if desktop == HOST else self.desktops[desktop].tree

    def desktop_colour(self, desktop: str) -> tuple[float, float, float, float]:
        return HOST_FRAME if desktop == HOST else self.desktops[desktop].spec.colour

    def is_host(self, desktop: str) -> bool:
        return desktop == HOST

    def watch_idle(self) -> None:
        """(Re)start the lock's idle watch with the current `lock_after`."""
        self.locker.watch_idle(lambda: (self.cursor.x, self.cursor.y), self.idle_inhibited)

    def idle_inhibited(self) -> bool:
        """A program on screen (of the desktop shown, or the host) holds an idle inhibitor:
        a hidden desktop's never keeps the screen from locking."""
        return any(self.desktop_visible(h.desktop) for h in self.idle_inhibitors)

    @property
    def input_taken(self) -> bool:
        """The compositor's own screen (the overview, the lock) has the keyboard and the
        pointer: no client gets either."""
        return self.overview.is_open or self.locker.locked

    @property
    def ui_scale(self) -> float:
        return max((so.output.scale for so in self.outputs), default=1.0)

    def fullscreen_allowed(self, desktop: str) -> bool:
        return desktop != HOST and self.desktops[desktop].spec.allow_fullscreen

    def desktop_visible(self, desktop: str) -> bool:
        return desktop in (HOST, self.model.active)

    def seat_of_desktop(self, desktop: str) -> Seat:
        return self.host_seat if desktop == HOST else self.desktops[desktop].seat

    def _desktop_of_slot(self, slot: int) -> str:
        if slot < 0:
            return HOST
        name = self._slot_names.get(slot)
        if name is None or name not in self.desktops:
            raise LookupError(f"no desktop has slot {slot}")
        return name

    def all_views(self) -> list[View]:
        out = list(self.host_views)
        for d in self.desktops.values():
            out.extend(d.views)
        return out

    def views_of(self, desktop: str) -> list[View]:
        return self.host_views if desktop == HOST else self.desktops[desktop].views

    def _all_seats(self) -> list[Seat]:
        return [self.host_seat, *(d.seat for d in self.desktops.values())]

    # The pointer's seat and the grab are mirrored into the native handler, which runs
    # every motion (hit test, enter, motion, cursor image) without Python.
    @property
    def pointer_seat(self) -> Seat | None:
        return self._pointer_seat

    @pointer_seat.setter
    def pointer_seat(self, seat: Seat | None) -> None:
        self._pointer_seat = seat
        if seat is None and self.pointer is not None:
            self.pointer.forget_seat()

    @property
    def grab(self) -> Grab | None:
        return self._grab

    @grab.setter
    def grab(self, grab: Grab | None) -> None:
        self._grab = grab
        if self.pointer is not None:
            self.pointer.set_grab(grab is not None)

    # ---- the event stream (control and sway sockets) and notifications ----

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        if event == "quarantine":  # the overview counts each desktop's waiting downloads
            self.overview.quarantine.event(payload.get("item") or {})
        if self.ipc is not None:
            self.ipc.emit(event, payload)

    def notify(self, text: str, seconds: float = 6.0, urgent: bool = False) -> None:
        (log.warning if urgent else log.info)("notification: %s", text)
        self.notifications.show(text, seconds, urgent)
        self.emit("notification", {"text": text, "urgent": urgent})

    if TYPE_CHECKING:
        # What one part calls of another (each is defined once, in the part named; `Server`
        # mixes them all in). Declared for the type checker only: at run time nothing here
        # stands in the way of the real methods.

        # switching.py
        @abstractmethod
        def switch_to(self, target: str) -> str: ...
        @abstractmethod
        def _add_desktop(self, spec: DesktopSpec) -> None: ...
        @abstractmethod
        def _remove_desktop(self, name: str) -> None: ...
        @abstractmethod
        def _apply_visibility(self) -> None: ...
        @abstractmethod
        def _route_keyboard(self) -> None: ...
        @abstractmethod
        def _update_indicators(self) -> None: ...

        # focus.py
        @abstractmethod
        def focus_view(self, view: View, by_user: bool = False) -> None: ...
        @abstractmethod
        def _reenter_keyboard_focus(self) -> None: ...
        @abstractmethod
        def _view_for_xdg_surface(self, xdg_surface: XdgSurface) -> View | None: ...

        # pointer_routing.py
        @abstractmethod
        def begin_interactive(
            self, view: View, mode: str, edges: Edges, by_compositor: bool = False
        ) -> None: ...
        @abstractmethod
        def _refresh_pointer_focus(self) -> None: ...
        @abstractmethod
        def _on_seat_request_set_cursor(self, seat: Seat, event: Any) -> None: ...

        # actions.py and config_reload.py
        @abstractmethod
        def run_command_text(
            self, text: str | list[str]
        ) -> dict[str, Any] | Deferred[dict[str, Any]]: ...
        @abstractmethod
        def reload_config(self) -> str: ...
