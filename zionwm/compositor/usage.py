"""Usage samples of the desktops (CPU share, memory and processes, read from each desktop's
cgroup), sent on the event stream once a second, and only while a control client subscribed
to them: nobody listening, no timer runs."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)

USAGE_INTERVAL_MS = 1000


class UsageSampler:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.sampling = False
        self._last: dict[str, tuple[float, int]] = {}
        control = self._control()
        if control is not None:
            control.on_subscriptions = self._on_subscriptions
        self._timer = server.loop.timer(self._on_tick, "usage sample")

    def _control(self) -> Any:
        """The control protocol's server (it knows who subscribed to what)."""
        for s in getattr(self.server.ipc, "servers", ()) or ():
            if hasattr(s, "subscribed"):
                return s
        return None

    def _on_subscriptions(self) -> None:
        control = self._control()
        wanted = control is not None and control.subscribed("usage")
        if wanted and not self.sampling:
            self.sampling = True
            self.sample()  # a baseline, so the first event has a CPU figure
            self._timer.schedule(USAGE_INTERVAL_MS)
        elif not wanted and self.sampling:
            self.sampling = False
            self._timer.schedule(0)
            self._last.clear()

    def _on_tick(self) -> None:
        control = self._control()
        if control is None or not control.subscribed("usage"):
            self.sampling = False
            self._last.clear()
            return
        self.server.emit("usage", {"desktops": self.sample()})
        self._timer.schedule(USAGE_INTERVAL_MS)

    def sample(self) -> dict[str, dict[str, Any]]:
        srv = self.server
        iso = srv.isolation
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        for name in srv.desktops:
            cg = iso.cgroups.get(name) if iso is not None else None
            if cg is None:
                out[name] = {"cpu_percent": None, "memory_bytes": None, "pids": None}
                continue
            usec = cg.cpu_usec()
            prev = self._last.get(name)
            cpu = None
            if usec is not None and prev is not None and now > prev[0]:
                cpu = round((usec - prev[1]) / 1e6 / (now - prev[0]) * 100, 1)
            if usec is not None:
                self._last[name] = (now, usec)
            out[name] = {
                "cpu_percent": cpu,
                "memory_bytes": cg.memory_bytes(),
                "pids": len(cg.pids()),
                "frozen": srv.model.desktops[name].frozen,
            }
        return out

    def close(self) -> None:
        self._timer.remove()
