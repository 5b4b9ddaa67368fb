"""The compositor server: owns the display, the event loop and every global.

The boot is one linear sequence in `Server.__init__` (display, backend, renderer, allocator,
compositor, scene, shells, seats, protocols, sockets), and so is the shutdown. The handlers
it wires and the operations they call live in one module per concern, mixed into `Server`
(see core.py for the list); they apply what the pure desktop model decides.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from pywayland import lib as pw_lib
from pywayland.server import Display, Signal
from wlroots import lib as wlr_lib
from wlroots.allocator import Allocator
from wlroots.backend import Backend, BackendType
from wlroots.renderer import Renderer
from wlroots.wlr_types import (
    Compositor,
    Cursor,
    DataControlManagerV1,
    DataDeviceManager,
    ExportDmabufManagerV1,
    GammaControlManagerV1,
    OutputLayout,
    PrimarySelectionV1DeviceManager,
    Scene,
    ScreencopyManagerV1,
    Seat,
    Viewporter,
    VirtualKeyboardManagerV1,
    VirtualPointerManagerV1,
    XCursorManager,
    XdgOutputManagerV1,
    XdgShell,
)
from wlroots.wlr_types.idle_inhibit_v1 import IdleInhibitorManagerV1
from wlroots.wlr_types.layer_shell_v1 import LayerShellV1
from wlroots.wlr_types.server_decoration import (
    ServerDecorationManager,
    ServerDecorationManagerMode,
)
from wlroots.wlr_types.xdg_decoration_v1 import XdgDecorationManagerV1

from zionwm import paths

from . import native
from .actions import CommandHandling
from .children import Children
from .clients import ensure_private_dir
from .clipboard import ClipboardBridge
from .config_reload import ConfigReload
from .core import Options, ServerCore
from .desktops import DesktopModel
from .focus import FocusHandling
from .input import KeyboardHandler
from .key_routing import KeyRouting
from .layers import Layers, LayerView
from .listeners import HasListeners
from .lock import IdleInhibitor, Locker
from .loop import Loop
from .native import SceneTree
from .outputs import ServerOutput
from .overview import Overview
from .pointer_routing import PointerRouting
from .policy import DESKTOP_GLOBALS
from .reporting import Reporting
from .runtime import DesktopRuntime, Grab
from .screens import OutputHandling
from .strip import MinuteClock, Strip
from .switching import DesktopSwitching
from .ui import Notifications
from .views import View
from .windows import WindowManager

log = logging.getLogger(__name__)

__all__ = ["Options", "Server"]


class Server(
    HasListeners,
    DesktopSwitching,
    FocusHandling,
    KeyRouting,
    PointerRouting,
    CommandHandling,
    ConfigReload,
    OutputHandling,
    Reporting,
    ServerCore,
):
    """The boot and the shutdown; everything else comes from the parts above (core.py)."""

    def __init__(self, config: Any, options: Options, config_errors: list[str] | None = None):
        self.config = config
        self.options = options
        self.switch_started_ns = 0
        self.switch_ready_ns = 0
        self.switch_ready_cpu_ns = 0
        self.shutting_down = False
        self.switch_latencies_ms: list[float] = []
        self.switch_frame_waits_ms: list[float] = []
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
        self.lock_layer = SceneTree.create(self.scene)  # the lock screen: above that too
        self.layers = Layers(self, below, above)
        self.layer_focus: LayerView | None = None
        self.notifications = Notifications(self.overlay, self.loop, self._pointer_output_area)
        self.overview = Overview(self)
        self.locker = Locker(self, self.lock_layer, self.config.settings.lock_after)
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
        self.idle_inhibitors: set[IdleInhibitor] = set()
        self.add_listener(self.idle_inhibit.new_inhibitor_event, self._on_new_idle_inhibitor)

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
        self.watch_idle()
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
        self.locker.shutdown()
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
