"""`desktop hibernate NAME [--estimate]`: freeze a desktop, then push its memory out.

The request answers at once with the estimate (what the kernel could free, see
`zionwm.isolation.hibernate`); freezing finishes on later turns of the event loop, so the
push happens once the desktop is frozen, on a worker of the isolation's `offload` (it can
take a long time), and its result is told as a `hibernate` event
(`{"desktop", "freed_bytes", "estimate"}`), or as `{"desktop", "error"}` if the freeze did
not happen. Pushing memory out of a desktop whose programs still run would only see them
fault it straight back in.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from zionwm.isolation import hibernate

from .loop import Timer
from .offload import RECLAIM_LANE

if TYPE_CHECKING:
    from zionwm.isolation.cgroups.desktop import DesktopCgroup

    from .server import Server

log = logging.getLogger(__name__)

POLL_MS = 50
FREEZE_DEADLINE = 15.0  # seconds; a freeze is rolled back well before this


class Hibernation:
    def __init__(self, server: Server) -> None:
        self.server = server
        self._waiting: dict[str, tuple[Timer, float]] = {}

    def _cgroup(self, name: str) -> DesktopCgroup:
        srv = self.server
        if name not in srv.desktops:
            raise LookupError(f"no desktop named {name!r} (desktops: {', '.join(srv.desktops)})")
        iso = srv.isolation
        cg = iso.cgroups.get(name) if iso is not None else None
        if cg is None:
            raise RuntimeError(f"{name} has no cgroup here: it cannot be frozen or hibernated")
        return cg

    def command(self, words: list[str]) -> dict[str, Any]:
        plain = [w for w in words if w != "--estimate"]
        if len(plain) != 1 or any(w.startswith("--") for w in plain):
            raise ValueError("usage: desktop hibernate NAME [--estimate]")
        name = plain[0]
        est = hibernate.read_estimate(self._cgroup(name))
        if "--estimate" in words:
            return {"message": f"hibernating {name} would free {est.text()}", **_fields(est)}
        if name == self.server.model.active:
            raise ValueError(f"{name} is shown: switch to another desktop to hibernate it")
        if self.server.model.desktops[name].frozen:
            self._push(name)
            return {
                "message": f"hibernating {name}: frozen already, pushing out {est.text()}",
                "done": False,
                **_fields(est),
            }
        if name not in self._waiting:
            iso = self.server.isolation
            assert iso is not None
            iso.freeze(name)
            timer = self.server.loop.timer(lambda: self._check(name), f"hibernate {name}")
            self._waiting[name] = (timer, time.monotonic() + FREEZE_DEADLINE)
            timer.schedule(POLL_MS)
        return {
            "message": f"hibernating {name}: freezing it, then pushing out {est.text()}",
            "done": False,
            **_fields(est),
        }

    def _check(self, name: str) -> None:
        timer, deadline = self._waiting[name]
        st = self.server.model.desktops.get(name)
        if st is not None and st.frozen:
            del self._waiting[name]
            timer.remove()
            self._push(name)
            return
        if st is None or time.monotonic() > deadline:
            del self._waiting[name]
            timer.remove()
            self.server.emit("hibernate", {"desktop": name, "error": "it could not be frozen"})
            return
        timer.schedule(POLL_MS)

    def _push(self, name: str) -> None:
        """Push the frozen desktop's memory out on a worker (memory.reclaim walks all of
        it: far too long for the compositor's thread); the result comes as an event."""
        cg = self._cgroup(name)
        iso = self.server.isolation
        assert iso is not None

        def push() -> tuple[int | None, hibernate.Estimate]:
            est = hibernate.read_estimate(cg)
            return hibernate.push_out(cg, est), est

        def pushed(result: tuple[int | None, hibernate.Estimate]) -> None:
            freed, est = result
            log.info("desktop %s hibernated: %s bytes freed (estimate %s)", name, freed, est.text())
            self.server.emit(
                "hibernate", {"desktop": name, "freed_bytes": freed, "estimate": est.as_dict()}
            )

        def failed(exc: BaseException) -> None:
            log.warning("hibernating desktop %s failed: %s", name, exc)
            self.server.emit("hibernate", {"desktop": name, "error": f"pushing out failed: {exc}"})

        iso.offload.submit(
            RECLAIM_LANE, f"hibernating {name}", push, on_done=pushed, on_error=failed
        )

    def close(self) -> None:
        for timer, _ in self._waiting.values():
            timer.remove()
        self._waiting.clear()


def _fields(est: hibernate.Estimate) -> dict[str, Any]:
    return {"estimate": est.as_dict()}
