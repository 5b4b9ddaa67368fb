"""Outputs as they come and go, and what follows their layout: panels, strips, notifications;
the frame timing that measures a desktop switch.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from wlroots.wlr_types import Output

from . import native
from .core import ServerCore
from .outputs import ServerOutput, apply_scale, scale_from_env
from .strip import Strip

log = logging.getLogger(__name__)


class OutputHandling(ServerCore):
    """New and removed outputs, and the layout that depends on them."""

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
        self.locker.outputs_changed()  # first: a new output shows nothing but the lock
        self.overview.close()  # its grid was made for the old outputs
        self.layers.arrange()
        for so in self.outputs:
            b = so.box()
            ind = self.indicators.get(so.name)
            if ind is None:
                self.indicators[so.name] = Strip(self.overlay, b.x, b.y, b.width, so.output.scale)
            else:
                ind.resize(b.x, b.y, b.width, so.output.scale)
        if self.outputs:
            b = self.outputs[0].box()
            self.notifications.place(b.x, b.y, b.width, self.outputs[0].output.scale)
        self._update_indicators()

    def _on_frame_committed(
        self, output_id: int, start_ns: int, start_cpu_ns: int, now_ns: int
    ) -> None:
        if self.switch_started_ns:
            self.frame_committed(start_ns, start_cpu_ns, now_ns)
        self.overview.frame_shown(now_ns)

    def frame_committed(self, start_ns: int, start_cpu_ns: int, now_ns: int) -> None:
        """The frame showing a switch went out: its latency from the key (or command), and
        of that, how long the switch, handled, waited for the output's next frame event
        (the display's clock: a key comes at any point of the frame period). Whatever the
        compositor's thread ran meanwhile (other clients' requests, a collection) is not
        waiting: only the time it did not run counts."""
        ms = (now_ns - self.switch_started_ns) / 1e6
        wait = 0.0
        if start_ns and self.switch_ready_ns:
            ran = max(0, start_cpu_ns - self.switch_ready_cpu_ns)
            wait = max(0, start_ns - self.switch_ready_ns - ran) / 1e6
        self.switch_started_ns = 0
        self.switch_ready_ns = 0
        self.switch_latencies_ms.append(ms)
        self.switch_frame_waits_ms.append(min(wait, ms))
        del self.switch_latencies_ms[:-1000]
        del self.switch_frame_waits_ms[:-1000]
