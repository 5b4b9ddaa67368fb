"""Outputs: mode set-up, the per-frame scene commit, and frame timing for the switch metric.

The frame handler is the hottest path in the compositor: it does one scene commit, one
frame-done broadcast (wlroots skips disabled trees, so hidden desktops get no frame
callbacks), and nothing else unless a switch is being timed.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from wlroots.util.clock import Timespec
from wlroots.wlr_types import Output

from .listeners import HasListeners

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)


class ServerOutput(HasListeners):
    def __init__(self, server: Server, output: Output) -> None:
        self.server = server
        self.output = output
        self.name = output.name or f"output-{id(output):x}"
        self.scene_output = server.scene.get_scene_output(output)
        self.add_listener(output.frame_event, self._on_output_frame)
        self.add_listener(output.destroy_event, self._on_output_destroy)

    def box(self) -> Any:
        return self.server.output_layout.get_box(self.output)

    def describe(self) -> dict[str, Any]:
        b = self.box()
        return {
            "name": self.name,
            "x": b.x,
            "y": b.y,
            "width": b.width,
            "height": b.height,
            "scale": self.output.scale,
            "active": True,
            "desktop": self.server.model.active,
        }

    def _on_output_frame(self, listener: Any, data: Any) -> None:
        try:
            self.scene_output.commit()
        except RuntimeError:
            log.debug("output %s: commit failed", self.name)
        else:
            if self.server.switch_started_ns:
                self.server.frame_committed(time.perf_counter_ns())
        self.scene_output.send_frame_done(Timespec.get_monotonic_time())

    def _on_output_destroy(self, listener: Any, data: Any) -> None:
        self.finalize_listeners()
        self.server.output_destroyed(self)
