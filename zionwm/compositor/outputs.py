"""Outputs: their description for IPC and the per-frame scene commit.

The frame handler is the hottest path in the compositor, so it runs in C (native/): one
scene commit and one frame-done broadcast per frame (wlroots skips disabled trees, so hidden
desktops get no frame callbacks). Python hears of a frame only when it asked to, to time a
desktop switch.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from wlroots.wlr_types import Output, OutputLayout, Scene

from . import native
from .desktops import DesktopModel
from .listeners import HasListeners

log = logging.getLogger(__name__)
_ids = itertools.count(1)


def scale_from_env(environ: Mapping[str, str]) -> float:
    """$ZIONWM_OUTPUT_SCALE (e.g. 2 for a 200 % HiDPI screen), 1 when unset or unusable."""
    text = environ.get("ZIONWM_OUTPUT_SCALE", "").strip()
    try:
        scale = float(text) if text else 1.0
    except ValueError:
        log.warning("ZIONWM_OUTPUT_SCALE=%r is not a number: using 1", text)
        return 1.0
    if not 0.5 <= scale <= 4:
        log.warning("ZIONWM_OUTPUT_SCALE=%r is outside 0.5..4: using 1", text)
        return 1.0
    return scale


def apply_scale(output: Output, scale: float) -> None:
    if scale == 1.0:
        return
    output.set_scale(scale)
    try:
        output.commit()
    except RuntimeError:
        log.error("output %s: could not set scale %g", output.name, scale)


class OutputCompositor(Protocol):
    """What an output asks of the compositor: the scene it shows, its place in the layout,
    the desktop it shows, and whom to tell when it goes."""

    @property
    def scene(self) -> Scene: ...

    @property
    def output_layout(self) -> OutputLayout: ...

    @property
    def model(self) -> DesktopModel[Any]: ...

    def output_destroyed(self, so: ServerOutput) -> None: ...


class ServerOutput(HasListeners):
    def __init__(self, server: OutputCompositor, output: Output) -> None:
        self.server = server
        self.output = output
        self.name = output.name or f"output-{id(output):x}"
        self.scene_output = server.scene.get_scene_output(output)
        self.id = next(_ids)
        self._frame = native.attach_frame_handler(output, self.scene_output, self.id)
        self.add_listener(output.destroy_event, self._on_output_destroy)

    def time_next_frame(self) -> None:
        native.notify_next_frame(self._frame)

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

    def _on_output_destroy(self, listener: Any, data: Any) -> None:
        native.detach_frame_handler(self._frame)
        self.finalize_listeners()
        self.server.output_destroyed(self)
