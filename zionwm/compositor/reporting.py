"""What the compositor reports over the control protocol: desktops, windows, outputs and its
status (extensions add their own fields).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .core import ServerCore

log = logging.getLogger(__name__)


class Reporting(ServerCore):
    """`describe_*` and `status`, as the control and sway protocols ask for them."""

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
            "lock": self.locker.describe(),
            "switch_latency_ms": {
                "count": len(lat),
                "p50": lat[len(lat) // 2] if lat else None,
                "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
                # raw, in arrival order (the last 1000): benchmarks compute their own stats
                "samples": [round(x, 4) for x in self.switch_latencies_ms],
                # of each sample, the wait of the switch, handled, for the output's next
                # frame event (same order)
                "frame_wait_samples": [round(x, 4) for x in self.switch_frame_waits_ms],
            },
            **{k: v for ext in self.extensions for k, v in getattr(ext, "status", dict)().items()},
        }
