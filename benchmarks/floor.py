"""The floor under zionwm's memory: the smallest compositor its own stack can make.

    .venv/bin/python -m benchmarks.floor      # runs until SIGTERM; prints "ready" on stdout

Python with pywlroots, pywayland and xkbcommon (the stack the project is built on), and
nothing of zionwm: a headless backend with one 1280x720 output and the pixman renderer (as
the benchmarks run zionwm and sway), the core globals an xdg-shell client needs (compositor,
xdg-shell, seat, data device, output layout, cursor with its theme), and a frame loop that
clears the output and answers its surfaces' frame callbacks. It maps what clients show but
draws none of it: the figure is a start-up figure, read before any client connects.

`benchmarks.idle` starts it beside zionwm and sway and reports its resident memory: what a
compositor in this stack holds before it does anything of its own, against which zionwm's
own share (its scene, UI text, desktops, launcher, quarantine link...) is read.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

from pywayland.server import Display, Listener
from wlroots import lib as wlr_lib
from wlroots.allocator import Allocator
from wlroots.backend import Backend, BackendType
from wlroots.renderer import Renderer
from wlroots.util.clock import Timespec
from wlroots.wlr_types import (
    Compositor,
    Cursor,
    DataDeviceManager,
    Output,
    OutputLayout,
    Seat,
    XCursorManager,
    XdgShell,
)
from wlroots.wlr_types.xdg_shell import XdgSurface

SIZE = (1280, 720)


class Floor:
    def __init__(self) -> None:
        self.display = Display()
        self.backend = Backend(self.display, backend_type=BackendType.HEADLESS)
        self.renderer = Renderer.autocreate(self.backend)
        self.renderer.init_display(self.display)
        self.allocator = Allocator.autocreate(self.backend, self.renderer)
        self.compositor = Compositor(self.display, self.renderer)
        self.layout = OutputLayout()
        self.xdg_shell = XdgShell(self.display)
        self.data_devices = DataDeviceManager(self.display)
        self.seat = Seat(self.display, "seat0")
        self.cursor = Cursor(self.layout)
        self.cursor_theme = XCursorManager(24)
        self.outputs: list[Output] = []
        self.surfaces: list[XdgSurface] = []
        self.listeners = [
            (self.backend.new_output_event, self._on_new_output),
            (self.xdg_shell.new_surface_event, self._on_new_surface),
        ]
        for event, handler in self.listeners:
            event.add(listen(handler))
        self.socket = self.display.add_socket()
        self.backend.start()
        wlr_lib.wlr_headless_add_output(self.backend._ptr, *SIZE)

    def _on_new_output(self, _l: object, output: Output) -> None:
        output.init_render(self.allocator, self.renderer)
        output.set_custom_mode(*SIZE, 0)
        output.enable()
        output.commit()
        self.layout.add_auto(output)
        output.create_global()
        self.cursor_theme.load(output.scale)
        output.frame_event.add(listen(lambda _l, _d, o=output: self._on_frame(o)))
        self.outputs.append(output)

    def _on_new_surface(self, _l: object, surface: XdgSurface) -> None:
        self.surfaces.append(surface)
        surface.destroy_event.add(listen(lambda _l, _d, s=surface: self.surfaces.remove(s)))

    def _on_frame(self, output: Output) -> None:
        output.attach_render()
        w, h = output.effective_resolution()
        self.renderer.begin(w, h)
        self.renderer.clear((0.0, 0.0, 0.0, 1.0))
        self.renderer.end()
        output.commit()
        now = Timespec.get_monotonic_time()
        for s in self.surfaces:
            s.surface.send_frame_done(now)


def listen(handler: Any) -> Listener:
    return Listener(handler)


def main() -> int:
    floor = Floor()
    signal.signal(signal.SIGTERM, lambda *_: floor.display.terminate())
    # one frame on screen before the figure: the output's buffer is allocated by then
    deadline = time.monotonic() + 5
    loop = floor.display.get_event_loop()
    while not floor.outputs and time.monotonic() < deadline:
        loop.dispatch(100)
    loop.dispatch(50)
    sys.stdout.write(
        f"ready {floor.socket.decode() if isinstance(floor.socket, bytes) else floor.socket}\n"
    )
    sys.stdout.flush()
    floor.display.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
