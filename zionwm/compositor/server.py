"""The compositor server: owns the display, the event loop and every global.

The boot is one linear sequence in `Server.__init__` (display, backend, renderer, allocator,
compositor, scene, shells, seats, protocols, sockets); handlers elsewhere are thin and call
the operations below, which apply what the pure desktop model decides.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pywayland import lib as pw_lib
from pywayland.protocol.wayland import WlKeyboard, WlSeat
from pywayland.server import Display, Signal
from wlroots import ffi as wlr_ffi
from wlroots import lib as wlr_lib
from wlroots.allocator import Allocator
from wlroots.backend import Backend, BackendType
from wlroots.renderer import Renderer
from wlroots.util.box import Box
from wlroots.util.edges import Edges
from wlroots.wlr_types import (
    Compositor,
    Cursor,
    DataControlManagerV1,
    DataDeviceManager,
    ExportDmabufManagerV1,
    GammaControlManagerV1,
    InputDevice,
    Output,
    OutputLayout,
    PrimarySelectionV1DeviceManager,
    Scene,
    ScreencopyManagerV1,
    Seat,
    Surface,
    Viewporter,
    VirtualKeyboardManagerV1,
    VirtualPointerManagerV1,
    XCursorManager,
    XdgOutputManagerV1,
    XdgShell,
)
from wlroots.wlr_types import SceneNode as WlrSceneNode
from wlroots.wlr_types.idle_inhibit_v1 import IdleInhibitorManagerV1
from wlroots.wlr_types.input_device import ButtonState, InputDeviceType
from wlroots.wlr_types.keyboard import KeyboardModifier
from wlroots.wlr_types.layer_shell_v1 import LayerShellV1, LayerSurfaceV1
from wlroots.wlr_types.server_decoration import (
    ServerDecorationManager,
    ServerDecorationManagerMode,
)
from wlroots.wlr_types.xdg_decoration_v1 import (
    XdgDecorationManagerV1,
    XdgToplevelDecorationV1,
    XdgToplevelDecorationV1Mode,
)
from wlroots.wlr_types.xdg_shell import XdgSurface, XdgSurfaceRole

from zionwm import commands as cmdlang
from zionwm import config as cfgmod
from zionwm import paths
from zionwm.isolation.spec import DesktopSpec

from . import native
from .children import Child, Children
from .clients import DesktopSocket, ensure_private_dir
from .clipboard import ClipboardBridge
from .desktops import DesktopModel, SwitchError
from .input import BindingTable, KeyboardHandler, attach_keyboard, compiled_keymap
from .layers import Layers, LayerView
from .listeners import HasListeners
from .loop import Loop
from .native import SceneTree
from .outputs import ServerOutput, apply_scale, scale_from_env
from .overview import Overview
from .policy import DESKTOP_GLOBALS
from .strip import Chip, MinuteClock, Strip, StripState
from .ui import HOST_FRAME, STRIP_HEIGHT, Notifications
from .views import View
from .windows import WindowManager

log = logging.getLogger(__name__)

BTN_LEFT = 0x110
BTN_RIGHT = 0x111
HOST = "host"  # pseudo-desktop of trusted clients on the WAYLAND_DISPLAY socket


@dataclass
class Options:
    headless: bool = False
    outputs: int = 1
    size: tuple[int, int] = (1280, 720)
    config_path: Path | None = None
    socket_name: str | None = None


@dataclass
class DesktopRuntime:
    """What the compositor holds for one desktop besides the pure model."""

    spec: DesktopSpec
    slot: int  # stable id recorded on each client in C; never reused within a run
    seat: Seat
    tree: SceneTree
    socket: DesktopSocket
    views: list[View] = field(default_factory=list)
    clients: set[int] = field(default_factory=set)
    freeze_timer: Any = None


@dataclass
class Grab:
    view: View
    mode: str  # "move" | "resize"
    edges: Edges
    cursor_x: float
    cursor_y: float
    box: tuple[int, int, int, int]
    by_compositor: bool = False  # Super+drag: the client never saw the press


class Server(HasListeners):
    def __init__(self, config: Any, options: Options, config_errors: list[str] | None = None):
        self.config = config
        self.options = options
        self.switch_started_ns = 0
        self.shutting_down = False
        self.switch_latencies_ms: list[float] = []
        self.focused_view: View | None = None
        self._grab: Grab | None = None
        self.pointer: native.Pointer | None = None  # motion and frame events, in C
        self.keyboards: list[KeyboardHandler] = []
        self.outputs: list[ServerOutput] = []
        self.indicators: dict[str, Strip] = {}
        # the strip hides over a fullscreen window only after the user's own gesture, and
        # comes back at the next compositor binding (see views.View.set_fullscreen)
        self.strip_recalled = False
        self.in_binding = False
        self.host_views: list[View] = []
        self._pointer_seat: Seat | None = None
        self._consumed_keys: set[int] = set()
        self._slots = 0
        self._slot_names: dict[int, str] = {}
        self._views_by_id: dict[int, View] = {}
        self.desktops: dict[str, DesktopRuntime] = {}
        self.ipc: Any = None
        self.extensions: list[Any] = []  # isolation/quarantine integrations (close on exit)
        self.launch_hook: Any = None  # replaced by the sandbox launcher when available
        self.isolation: Any = None  # integration.Isolation once attached
        self.desktop_data: Any = None  # live.LiveDesktops: desktops made at run time
        self._seat_listeners: dict[int, HasListeners] = {}

        # -- display and event loop (one Loop for the server's life: see loop.py) --
        self.display = Display()
        self.loop = Loop(self.display)
        self.loop.add_signal(signal.SIGTERM, self.display.terminate)
        self.loop.add_signal(signal.SIGINT, self.display.terminate)

        # -- backend, renderer, allocator --
        btype = BackendType.HEADLESS if options.headless else BackendType.AUTO
        self.backend = Backend(self.display, backend_type=btype)
        self.renderer = Renderer.autocreate(self.backend)
        self.renderer.init_display(self.display)
        self.allocator = Allocator.autocreate(self.backend, self.renderer)

        # -- compositor and scene: one tree per desktop, host tree, overlay. No background
        # rect: the scene clears to black for free, while a full-output rect costs wlroots
        # 0.15's pixman renderer a full-size fill on every damaged frame (a third of our CPU
        # with animated windows, measured) --
        self.compositor = Compositor(self.display, self.renderer)
        self.output_layout = OutputLayout()
        self.scene = Scene(self.output_layout)
        self._scene_root = native.scene_root(self.scene)
        below = [SceneTree.create(self.scene), SceneTree.create(self.scene)]
        self.desktops_layer = SceneTree.create(self.scene)
        self.host_tree = SceneTree.create(self.scene)
        above = [SceneTree.create(self.scene), SceneTree.create(self.scene)]
        self.overlay = SceneTree.create(self.scene)  # the compositor's own UI: always on top
        self.layers = Layers(self, below, above)
        self.layer_focus: LayerView | None = None
        self.notifications = Notifications(self.overlay, self.loop)
        self.overview = Overview(self)
        self.clock = MinuteClock(self.loop, self._update_indicators)

        # -- shells, data devices, decorations --
        self.xdg_shell = XdgShell(self.display)
        self.add_listener(self.xdg_shell.new_surface_event, self._on_xdg_shell_new_surface)
        self.data_device_manager = DataDeviceManager(self.display)
        self.primary_selection = PrimarySelectionV1DeviceManager(self.display)
        self.xdg_decoration = XdgDecorationManagerV1.create(self.display)
        self.add_listener(
            self.xdg_decoration.new_toplevel_decoration_event, self._on_xdg_decoration_new
        )
        self.server_decoration = ServerDecorationManager.create(self.display)
        self.server_decoration.set_default_mode(ServerDecorationManagerMode.SERVER)
        self.viewporter = Viewporter(self.display)
        self.xdg_output = XdgOutputManagerV1(self.display, self.output_layout)
        self.idle_inhibit = IdleInhibitorManagerV1(self.display)

        native.attach_presentation(self.display, self.backend, self.scene)
        activation = native.xdg_activation_signal(self.display)
        if activation is not None:
            self.add_listener(Signal(ptr=activation), self._on_xdg_activation_request)

        # -- privileged protocols: the global filter shows them to host clients only --
        self.layer_shell = LayerShellV1(self.display)
        self.add_listener(self.layer_shell.new_surface_event, self._on_layer_shell_new_surface)
        self.screencopy = ScreencopyManagerV1(self.display)
        self.export_dmabuf = ExportDmabufManagerV1(self.display)
        self.data_control = DataControlManagerV1(self.display)
        self.gamma_control = GammaControlManagerV1(self.display)
        self.virtual_keyboard = VirtualKeyboardManagerV1(self.display)
        self.add_listener(
            self.virtual_keyboard.new_virtual_keyboard_event, self._on_virtual_keyboard_new
        )
        self.virtual_pointer = VirtualPointerManagerV1(self.display)
        self.add_listener(
            self.virtual_pointer.new_virtual_pointer_event, self._on_virtual_pointer_new
        )
        native.install_global_filter(self.display, DESKTOP_GLOBALS)

        # -- cursor and the host seat (desktops get their own seats below) --
        self.cursor = Cursor(self.output_layout)
        self.cursor_manager = XCursorManager(24)
        self.host_seat = self._make_seat("seat0", -1)
        for sig, handler in (
            (self.cursor.button_event, self._on_cursor_button),
            (self.cursor.axis_event, self._on_cursor_axis),
        ):
            self.add_listener(sig, handler)
        # motion and frame: no Python per event (native.Pointer)
        self.pointer = native.Pointer(
            self.cursor,
            self.cursor_manager,
            self._scene_root,
            self._on_pointer_grab_motion,
            self._on_pointer_seat_changed,
        )
        self.add_listener(self.backend.new_input_event, self._on_backend_new_input)
        self.add_listener(self.backend.new_output_event, self._on_backend_new_output)

        # -- desktops: model, trees, seats, sockets --
        self.children = Children(self.loop, self._on_child_exit)
        self.model: DesktopModel[View] = DesktopModel([d.name for d in config.desktops])
        ensure_private_dir(paths.runtime_dir())
        for spec in config.desktops:
            self._add_desktop(spec)
        native.set_client_destroyed_callback(self._on_client_destroyed)
        native.set_geometry_callback(self._on_geometry_changed)
        native.set_frame_callback(self._on_frame_committed)
        self.bindings = self._binding_table(config)
        self.wm = WindowManager(self)  # focus cycling, snapping, tiling (windows.py)
        self.extensions.append(self.wm)
        settings = config.settings
        self.clipboard = ClipboardBridge(
            self.loop,
            self.seat_of_desktop,
            self.display.next_serial,
            self.notify,
            max_bytes=int(getattr(settings, "clipboard_max_bytes", 1 << 20)),
            mime_types=tuple(getattr(settings, "clipboard_mime_types", ()))
            or ("text/plain;charset=utf-8", "UTF8_STRING", "text/plain", "TEXT", "STRING"),
        )
        self._apply_visibility()

        # -- the trusted host socket --
        self.socket_name = self.display.add_socket(options.socket_name)
        if isinstance(self.socket_name, bytes):
            self.socket_name = self.socket_name.decode()
        os.environ["WAYLAND_DISPLAY"] = self.socket_name

        # -- start the backend; headless gets its outputs and a keyboard --
        self.backend.start()
        if self.backend.is_headless:
            w, h = options.size
            for _ in range(options.outputs):
                wlr_lib.wlr_headless_add_output(self.backend._ptr, w, h)
            wlr_lib.wlr_headless_add_input_device(
                self.backend._ptr, wlr_lib.WLR_INPUT_DEVICE_KEYBOARD
            )
        for err in config_errors or ():
            self.notify(err, seconds=20, urgent=True)
        log.info(
            "zionwm ready: host socket %s, desktops %s", self.socket_name, ", ".join(self.desktops)
        )

    # ================================================================ lifecycle

    def run(self) -> None:
        ready = os.environ.get("ZIONWM_READY_FD")
        if ready:
            # tell whoever started us (tests, the session script) that we accept clients
            with os.fdopen(int(ready), "w") as f:
                f.write(self.socket_name + "\n")
        self.display.run()

    def shutdown(self) -> None:
        log.info("shutting down")
        self.shutting_down = True
        self.clock.close()
        self.overview.shutdown()  # held frames go back before the outputs do
        # Disconnect clients first: Wayland programs then exit by themselves, and the
        # sandboxes stopped next are mostly gone already.
        for d in self.desktops.values():
            d.socket.close()
        pw_lib.wl_display_destroy_clients(self.display._ptr)
        for ext in reversed(self.extensions):
            try:
                ext.close()
            except Exception:
                log.exception("shutdown of %s failed", type(ext).__name__)
        self.children.kill_all()
        for held in self._seat_listeners.values():
            held.finalize_listeners()
        self.finalize_listeners()
        if self.pointer is not None:
            self.pointer.detach()
        self.backend.destroy()
        # The rest (scene, layout, cursor, display) is released by process exit: pywlroots'
        # ffi.gc destructors run in no defined order at interpreter exit, so the CLI ends
        # with os._exit after this returns.

    # ================================================================ desktops

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

    def _binding_table(self, config: Any) -> BindingTable:
        rows = [(frozenset(b.modifiers), b.keysym, b.command) for b in config.bindings]
        return BindingTable(rows)

    def desktop_tree(self, desktop: str) -> SceneTree:
        return self.host_tree if desktop == HOST else self.desktops[desktop].tree

    def desktop_colour(self, desktop: str) -> tuple[float, float, float, float]:
        return HOST_FRAME if desktop == HOST else self.desktops[desktop].spec.colour

    def is_host(self, desktop: str) -> bool:
        return desktop == HOST

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

    def _on_geometry_changed(self, view_id: int, x: int, y: int, w: int, h: int) -> None:
        view = self._views_by_id.get(view_id)
        if view is not None:
            view.on_geometry_change(x, y, w, h)
            self.wm.geometry_changed(view)

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
            self.overview.desktop_left(plan.old)
        self._apply_visibility()
        if plan.old is not None:
            old = self.desktops[plan.old]
            old.seat.keyboard_clear_focus()
            old.seat.pointer_notify_clear_focus()
            for ext in self.extensions:
                hook = getattr(ext, "after_hide", None)
                if hook:
                    hook(plan.old)
        for v in new.views:
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

    # ================================================================ views

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

    def all_views(self) -> list[View]:
        out = list(self.host_views)
        for d in self.desktops.values():
            out.extend(d.views)
        return out

    def place_new_view(self, view: View) -> tuple[int, int]:
        return self.wm.place_new_view(view)

    def views_of(self, desktop: str) -> list[View]:
        return self.host_views if desktop == HOST else self.desktops[desktop].views

    def view_mapped(self, view: View) -> None:
        self.wm.view_mapped(view)
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
            self.model.remove_window(view.desktop, view)
        if self.focused_view is view:
            self.focused_view = None
        if self.grab and self.grab.view is view:
            self.grab = None
        self.wm.view_gone(view)

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
        if self.keyboards and not self.overview.is_open:
            seat.set_keyboard(self.keyboards[-1].device)
            seat.keyboard_notify_enter(view.surface, self.keyboards[-1].keyboard)
        self.emit("focus", view.describe())
        self._update_indicators()

    def fullscreen_changed(self, view: View) -> None:
        self._update_indicators()
        self.wm.state_changed(view)

    def _all_seats(self) -> list[Seat]:
        return [self.host_seat, *(d.seat for d in self.desktops.values())]

    def output_box_for(self, view: View) -> Any:
        out = self.output_layout.output_at(*view.centre()) or (
            self.outputs[0].output if self.outputs else None
        )
        box = self.output_layout.get_box(out) if out else None
        return box or Box(0, 0, *self.options.size)

    def usable_area_for(self, view: View) -> Any:
        b = self.output_box_for(view)
        for so in self.outputs:
            ob = so.box()
            if (ob.x, ob.y) == (b.x, b.y) and so.name in self.layers.exclusive:
                return self.layers.exclusive[so.name]
        return Box(b.x, b.y + STRIP_HEIGHT, b.width, b.height - STRIP_HEIGHT)

    # ---- layer shell (trusted host panels) and activation ----

    def _on_layer_shell_new_surface(self, listener: Any, surface: LayerSurfaceV1) -> None:
        self.layers.new_surface(surface)

    def focus_layer(self, view: LayerView) -> None:
        if not self.keyboards:
            return
        self.layer_focus = view
        if self.overview.is_open:
            return  # it gets the keyboard when the overview closes
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

    # ================================================================ outputs

    def _on_backend_new_output(self, listener: Any, output: Output) -> None:
        output.init_render(self.allocator, self.renderer)
        mode = output.preferred_mode()
        if mode is not None:  # headless and nested outputs have no modes: nothing to commit
            output.set_mode(mode)
            output.enable()
            try:
                output.commit()
            except RuntimeError:
                log.error("output %s: could not enable its preferred mode", output.name)
                return
        apply_scale(output, scale_from_env(os.environ))
        # sway's format, "make model serial (NAME)": panels such as waybar parse it
        native.set_output_description(
            output,
            f"{output.make or 'Unknown'} {output.model or 'Unknown'} "
            f"{output.serial or 'Unknown'} ({output.name})",
        )
        self.output_layout.add_auto(output)
        so = ServerOutput(self, output)
        self.outputs.append(so)
        self._layout_changed()

    def output_destroyed(self, so: ServerOutput) -> None:
        self.outputs.remove(so)
        ind = self.indicators.pop(so.name, None)
        if self.shutting_down:
            return

        # not from inside the output's destroy signal: the scene is still tearing down its
        # scene output, and destroying a node now would damage a half-destroyed output
        def later() -> None:
            if ind:
                ind.destroy()
            self._layout_changed()

        self.loop.call_later(1, later, "output removal")

    def _layout_changed(self) -> None:
        self.overview.close()  # its grid was made for the old outputs
        self.layers.arrange()
        for so in self.outputs:
            b = so.box()
            ind = self.indicators.get(so.name)
            if ind is None:
                self.indicators[so.name] = Strip(self.overlay, b.x, b.y, b.width)
            else:
                ind.resize(b.x, b.y, b.width)
        if self.outputs:
            b = self.outputs[0].box()
            self.notifications.place(b.x, b.y, b.width)
        self._update_indicators()

    def _on_frame_committed(self, output_id: int, now_ns: int) -> None:
        if self.switch_started_ns:
            self.frame_committed(now_ns)
        self.overview.frame_shown(now_ns)

    def frame_committed(self, now_ns: int) -> None:
        ms = (now_ns - self.switch_started_ns) / 1e6
        self.switch_started_ns = 0
        self.switch_latencies_ms.append(ms)
        del self.switch_latencies_ms[:-1000]

    # ================================================================ input

    def _on_backend_new_input(self, listener: Any, device: InputDevice) -> None:
        self._add_input(device)

    def _on_virtual_keyboard_new(self, listener: Any, vkbd: Any) -> None:
        self._add_input(vkbd.input_device)

    def _on_virtual_pointer_new(self, listener: Any, event: Any) -> None:
        self._add_input(event.new_pointer.input_device)

    def _add_input(self, device: InputDevice) -> None:
        if device.device_type == InputDeviceType.KEYBOARD:
            settings = self.config.settings
            kb = device.keyboard
            # a virtual keyboard brings its own keymap; do not replace it
            if kb._ptr.keymap == wlr_ffi.NULL:
                keymap = compiled_keymap(
                    getattr(settings, "keyboard_layout", None) or None,
                    getattr(settings, "keyboard_variant", None) or None,
                    getattr(settings, "keyboard_options", None) or None,
                )
                kb.set_keymap(keymap)
            kb.set_repeat_info(
                int(getattr(settings, "repeat_rate", 25)),
                int(getattr(settings, "repeat_delay", 600)),
            )
            handler = KeyboardHandler(self, device)
            self.keyboards.append(handler)
            self._route_keyboard()
            self._reenter_keyboard_focus()
        elif device.device_type in (InputDeviceType.POINTER, InputDeviceType.TOUCH):
            self.cursor.attach_input_device(device)

    def keyboard_destroyed(self, handler: KeyboardHandler) -> None:
        if handler in self.keyboards:
            self.keyboards.remove(handler)
        if self.keyboards:
            self._route_keyboard()

    def _input_seat(self) -> Seat:
        if self.layer_focus is not None:
            return self.host_seat
        v = self.focused_view
        return self.seat_of_desktop(v.desktop) if v is not None else self.host_seat

    def keyboard_modifiers(self, handler: KeyboardHandler) -> None:
        if self.overview.is_open:
            return  # no client has the keyboard while the overview is open
        seat = self._input_seat()
        seat.set_keyboard(handler.device)
        seat.keyboard_notify_modifiers(handler.keyboard.modifiers)
        self.wm.modifiers_changed(int(handler.keyboard.modifier))

    def keyboard_key(self, handler: KeyboardHandler, event: Any) -> None:
        if self.overview.is_open:
            if event.state == WlKeyboard.key_state.pressed:
                self.overview.key(handler.keysyms(event.keycode + 8))
            return
        seat = self._input_seat()
        seat.set_keyboard(handler.device)
        seat.keyboard_notify_key(event)

    def binding_pressed(self, command: str, keycode: int) -> None:
        self._consumed_keys.add(keycode)
        name = command.split(None, 1)[0]
        if name in ("switch", "switch-prev"):
            self.switch_started_ns = time.monotonic_ns()
        if name != "overview":
            self.overview.close()
        # any binding brings a hidden strip back; the fullscreen command may hide it again
        self.strip_recalled = True
        self.in_binding = True
        try:
            result = self.run_command_text(command)
        finally:
            self.in_binding = False
            self._update_indicators()
        if not result["ok"]:
            self.notify(result["message"], urgent=True)

    def consume_release(self, keycode: int) -> bool:
        if keycode in self._consumed_keys:
            self._consumed_keys.discard(keycode)
            return True
        return False

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
        elif self.overview.is_open:
            if event.button_state == ButtonState.PRESSED:
                self.overview.click(self.cursor.x, self.cursor.y)
            return  # no client is under the overview
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
        if self.pointer_seat is not None:
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

    # ================================================================ commands

    def run_command_text(self, text: str | list[str]) -> dict[str, Any]:
        try:
            cmd = cmdlang.parse(text)
        except cmdlang.CommandError as e:
            return {"ok": False, "message": str(e)}
        attr = "_cmd_" + cmd.name.replace("-", "_")
        handler = getattr(self, attr, None) or getattr(self.wm, attr, None)
        if handler is None:
            return {"ok": False, "message": f"{cmd.name}: not supported by this compositor"}
        try:
            message = handler(cmd)
        except (SwitchError, LookupError, ValueError, OSError, RuntimeError) as e:
            log.info("command %s failed: %s", cmd, e)
            return {"ok": False, "message": str(e).strip("'\"")}
        if isinstance(message, dict):
            return {"ok": True, "message": message.get("message", ""), "data": message}
        return {"ok": True, "message": message or ""}

    def _cmd_switch(self, cmd: Any) -> str:
        target = cmd.desktop or str(cmd.index)
        return self.switch_to(target)

    def _cmd_switch_prev(self, cmd: Any) -> str:
        prev = self.model.previous
        return self.switch_to(prev) if prev else "no previous desktop"

    def _cmd_spawn(self, cmd: Any) -> str:
        return self.launch(self.model.active, list(cmd.argv))

    def _cmd_launch(self, cmd: Any) -> str:
        return self.launch(cmd.desktop, list(cmd.argv), ephemeral=cmd.ephemeral)

    def _cmd_close(self, cmd: Any) -> str:
        if self.focused_view is None:
            return "no focused window"
        self.focused_view.close()
        return "asked the window to close"

    def _cmd_fullscreen(self, cmd: Any) -> str:
        v = self.focused_view
        if v is None:
            return "no focused window"
        # a key binding is the user's own gesture: only it may give true fullscreen (and it
        # turns a client's own, framed fullscreen into true fullscreen where allowed)
        if self.in_binding and self.fullscreen_allowed(v.desktop):
            v.request_state("fullscreen", not v.true_fullscreen, by_user=True)
        else:
            v.request_state("fullscreen", not v.fullscreen)
        if v.true_fullscreen:
            self.strip_recalled = False
        return "fullscreen " + ("on" if v.fullscreen else "off")

    def _cmd_overview(self, cmd: Any) -> str:
        return self.overview.toggle()

    def overview_opened(self) -> None:
        """While the overview is open no client has the keyboard or the pointer."""
        for seat in self._all_seats():
            seat.keyboard_clear_focus()
        if self.pointer_seat is not None:
            self.pointer_seat.pointer_notify_clear_focus()
            self.pointer_seat = None
        self.grab = None

    def overview_closed(self) -> None:
        if self.layer_focus is not None:
            self.focus_layer(self.layer_focus)
        else:
            view, self.focused_view = self.focused_view, None
            if view is not None and self.desktop_visible(view.desktop):
                self.focus_view(view)
        self._refresh_pointer_focus()

    def _cmd_maximize(self, cmd: Any) -> str:
        v = self.focused_view
        if v is None:
            return "no focused window"
        v.request_state("maximize", not v.maximized if cmd.enable is None else cmd.enable)
        self.wm.state_changed(v)
        return "maximized " + ("on" if v.maximized else "off")

    def _cmd_quit(self, cmd: Any) -> str:
        self.loop.call_later(1, self.display.terminate, "quit")
        return "quitting"

    def _cmd_reload(self, cmd: Any) -> str:
        return self.reload_config()

    def _cmd_clipboard_copy(self, cmd: Any) -> str:
        desktop = self.focused_view.desktop if self.focused_view else self.model.active
        return self.clipboard.copy(desktop)

    def _cmd_clipboard_paste(self, cmd: Any) -> str:
        desktop = self.focused_view.desktop if self.focused_view else self.model.active
        return self.clipboard.paste(desktop)

    def _isolation_for(self, desktop: str) -> Any:
        if desktop not in self.desktops:
            raise LookupError(f"no desktop named {desktop!r}")
        if self.isolation is None:
            raise RuntimeError("the isolation layer is not running")
        return self.isolation

    def _cmd_freeze(self, cmd: Any) -> str:
        return str(self._isolation_for(cmd.desktop).freeze(cmd.desktop))

    def _cmd_thaw(self, cmd: Any) -> str:
        return str(self._isolation_for(cmd.desktop).thaw(cmd.desktop))

    def _cmd_kill(self, cmd: Any) -> str:
        return str(self._isolation_for(cmd.desktop).kill(cmd.desktop))

    def _cmd_net(self, cmd: Any) -> str:
        if cmd.for_time is not None and self.desktop_data is not None:
            return str(self.desktop_data.grant_network(cmd.desktop, bool(cmd.enable), cmd.for_time))
        return str(self._isolation_for(cmd.desktop).set_network(cmd.desktop, bool(cmd.enable)))

    def _cmd_desktop(self, cmd: Any) -> Any:
        if self.desktop_data is None:
            raise RuntimeError("run-time desktops are not available in this compositor")
        return self.desktop_data.command(list(cmd.args))

    def _cmd_manager(self, cmd: Any) -> str:
        from . import manager_link  # noqa: PLC0415 - only when asked for

        return manager_link.start(self)

    def _cmd_move_to(self, cmd: Any) -> str:
        raise ValueError("windows never change desktop: their programs live in its sandbox")

    # ================================================================ programs

    def launch(self, desktop: str, argv: list[str], ephemeral: bool = False) -> str:
        if desktop not in self.desktops:
            raise LookupError(f"no desktop named {desktop!r}")
        if not argv:
            raise ValueError("nothing to launch")
        spec = self.desktops[desktop].spec
        if self.launch_hook is None:
            # Never started another way: outside a sandbox a program would have the host's
            # home, runtime dir and sockets.
            text = f"Not starting {argv[0]} on {desktop}: the sandbox launcher is not running"
            self.notify(text, urgent=True)
            raise RuntimeError(text)
        child = self.launch_hook(spec, argv, ephemeral)
        self.emit("launch", {"desktop": desktop, "argv": argv, "pid": child.pid})
        return f"started {argv[0]} on {desktop} (pid {child.pid})"

    def _on_child_exit(self, child: Child) -> None:
        quick = time.monotonic() - child.started_at < 3.0
        quiet = child.extra.get("quiet_exit") or child.extra.get("exit_notified")
        if child.returncode and quick and child.desktop is not None and not quiet:
            child.extra["exit_notified"] = True
            self.notify(
                f"{shlex.join(child.argv)} on {child.desktop} exited with {child.returncode} "
                f"right after starting (is it installed? zionctl log {child.desktop})",
                urgent=True,
            )
        for ext in self.extensions:
            hook = getattr(ext, "child_exited", None)
            if hook:
                hook(child)
        self.emit(
            "exit",
            {
                "desktop": child.desktop,
                "argv": child.argv,
                "pid": child.pid,
                "returncode": child.returncode,
            },
        )

    # ================================================================ config

    def reload_config(self) -> str:
        path = self.options.config_path or cfgmod.default_config_path()
        new, errors = cfgmod.load_config(path)
        if new is None:
            text = "\n".join(str(e) for e in errors) or "config did not load"
            self.notify(
                "Config reload failed; keeping the running config:\n" + text,
                seconds=15,
                urgent=True,
            )
            self.emit("error", {"what": "config", "errors": [str(e) for e in errors]})
            raise ValueError("reload failed, running config kept:\n" + text)
        if self.desktop_data is not None:
            new = self.desktop_data.rebase(new)  # the desktops made at run time stay
        self.apply_config(new)
        for ext in self.extensions:
            hook = getattr(ext, "reload", None)
            if hook:
                hook()
        if errors:  # warnings only
            self.notify("\n".join(str(e) for e in errors), seconds=10)
        self.emit("config", {"path": str(path)})
        return f"reloaded {path}"

    def apply_config(self, new: Any) -> None:
        self.overview.close()  # its grid was made for the old desktop list
        names = [d.name for d in new.desktops]
        kept = self.model.update_names(names)
        for spec in new.desktops:
            if spec.name in self.desktops:
                self.desktops[spec.name].spec = spec
                for v in self.desktops[spec.name].views:
                    v._paint_borders(v is self.focused_view)
            else:
                self._add_desktop(spec)
        for name in list(self.desktops):
            if name not in names and name not in kept:
                self._remove_desktop(name)
        if kept:
            self.notify("Kept desktops that still have windows: " + ", ".join(kept))
        self.config = new
        self.bindings = self._binding_table(new)
        self._apply_visibility()

    # ================================================================ IPC surface

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        if event == "quarantine":  # the overview counts each desktop's waiting downloads
            self.overview.quarantine.event(payload.get("item") or {})
        if self.ipc is not None:
            self.ipc.emit(event, payload)

    def notify(self, text: str, seconds: float = 6.0, urgent: bool = False) -> None:
        (log.warning if urgent else log.info)("notification: %s", text)
        self.notifications.show(text, seconds, urgent)
        self.emit("notification", {"text": text, "urgent": urgent})

    def describe_desktops(self) -> list[dict[str, Any]]:
        out = []
        for name, d in self.desktops.items():
            st = self.model.desktops[name]
            focused = st.focused
            info: dict[str, Any] = {
                "name": name,
                "index": st.index + 1,
                "colour": d.spec.colour_hex,
                "active": name == self.model.active,
                "visible": name == self.model.active,
                "frozen": st.frozen,
                "windows": len([v for v in d.views if v.mapped]),
                "focused_window": focused.id if focused else None,
                "socket": str(d.socket.path),
                "ephemeral": d.spec.ephemeral,
                "network": d.spec.network.mode.value,
            }
            for ext in self.extensions:
                more = getattr(ext, "describe_desktop", None)
                if more:
                    info.update(more(name))
            out.append(info)
        return out

    def describe_windows(self) -> list[dict[str, Any]]:
        views = [v for v in self.all_views() if v.mapped]
        return [{**v.describe(), **self.wm.describe_window(v)} for v in views]

    def describe_outputs(self) -> list[dict[str, Any]]:
        return [o.describe() for o in self.outputs]

    def status(self) -> dict[str, Any]:
        lat = sorted(self.switch_latencies_ms)
        return {
            "host_socket": self.socket_name,
            "active": self.model.active,
            "desktops": len(self.desktops),
            "windows": len(self.describe_windows()),
            "pid": os.getpid(),
            "notifications": self.notifications.history[-10:],
            "overview": self.overview.describe(),
            "switch_latency_ms": {
                "count": len(lat),
                "p50": lat[len(lat) // 2] if lat else None,
                "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
                # raw, in arrival order (the last 1000): benchmarks compute their own stats
                "samples": [round(x, 4) for x in self.switch_latencies_ms],
            },
            **{k: v for ext in self.extensions for k, v in getattr(ext, "status", dict)().items()},
        }


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
