"""Each desktop's session bus, attached to the running compositor.

The bus of a desktop (zionwm/desktopbus) is started the first time the desktop runs a
program: the launcher asks `session_bus_for(spec)` while planning the sandbox. zionwm's
connection to that bus is watched by the event loop; what arrives there (notifications,
links, portal requests) is tagged with the desktop by the connection it came on and shown
or routed here. The portal's slow parts live in compositor/portal_link.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zionwm.desktopbus import bus as dbus_bus
from zionwm.desktopbus import policy, shim
from zionwm.desktopbus.events import (
    ChooseRequest,
    CloseRequest,
    OpenFileRequest,
    OpenRequest,
    Refused,
    ScreenshotRequest,
)
from zionwm.desktopbus.policy import FrozenQueue, Notice
from zionwm.desktopbus.service import BusError, DesktopService
from zionwm.isolation.bwrap import SYSTEM_BUS_SOCKET, SessionBus
from zionwm.isolation.spec import DesktopSpec

from . import capture, desktop_notice
from .launch_notices import LaunchNotices
from .loop import FdHandle, Timer
from .portal_link import PortalLink

if TYPE_CHECKING:
    from zionwm.isolation.launcher import Launcher

    from .children import Child
    from .server import Server

log = logging.getLogger(__name__)

# files refused by a desktop's portal rate limit are told at most once in this time
FILES_QUIET_MS = 5000


def host_session_socket(environ: dict[str, str] | os._Environ[str]) -> str | None:
    """The host's session bus socket path, from DBUS_SESSION_BUS_ADDRESS or the usual place."""
    addr = environ.get("DBUS_SESSION_BUS_ADDRESS", "")
    for part in addr.split(";"):
        if part.startswith("unix:"):
            for kv in part[5:].split(","):
                if kv.startswith("path="):
                    return kv[5:]
    run = environ.get("XDG_RUNTIME_DIR")
    if run and os.path.exists(os.path.join(run, "bus")):
        return os.path.join(run, "bus")
    return None


class _Running:
    def __init__(self, bus: dbus_bus.DesktopBus, service: DesktopService) -> None:
        self.bus = bus
        self.service = service
        self.reader: FdHandle | None = None
        self.writer: FdHandle | None = None
        self.dropped_told = 0
        self.files_told = 0  # files refused by the portal's rate limit, told so far
        self.files_quiet: Timer | None = None  # while set, more refusals are told later


class DesktopBusLink:
    def __init__(
        self, server: Server, launcher: Launcher, cgroup_procs: Callable[[str], list[Path]]
    ) -> None:
        """`cgroup_procs(desktop)`: the cgroup.procs files a desktop's bus joins, so that it
        is frozen and limited with the desktop's programs."""
        self.server = server
        self._cgroup_procs = cgroup_procs
        self.running: dict[str, _Running] = {}
        self.queues: dict[str, FrozenQueue] = {}
        self.failures: dict[str, str] = {}
        # links and files opened on a desktop's behalf: told once the program runs
        self.launches = LaunchNotices(server)
        self.portal = PortalLink(server, launcher, self, self.launches)
        launcher.session_bus = self.session_bus_for
        capture.attach(server)

    # ---- the launcher's question ----

    def session_bus_for(self, spec: DesktopSpec) -> SessionBus | None:
        if spec.dbus == "none":
            return None
        if spec.dbus == "host":
            sock = host_session_socket(os.environ)
            system = SYSTEM_BUS_SOCKET if os.path.exists(SYSTEM_BUS_SOCKET) else None
            if sock is None:
                log.warning("desktop %s: dbus='host' but the host has no session bus", spec.name)
                return None
            return SessionBus(socket=sock, system_socket=system)
        run = self.ensure(spec.name)
        if run is None:
            return None
        return SessionBus(
            socket=str(run.bus.proxy_socket),
            programs=shim.PROGRAMS,
            files=shim.files(),
            env=shim.ENV,
        )

    def ensure(self, desktop: str) -> _Running | None:
        run = self.running.get(desktop)
        if run is not None and run.bus.alive() and run.service.sock is not None:
            return run
        if run is not None:
            self._stop(desktop)
        try:
            refusals = getattr(self.server, "refusals", None)  # refusals.py reads its log
            log_fd = refusals.reporter_fd(desktop) if refusals is not None else None
            bus = dbus_bus.start(desktop, self._cgroup_procs(desktop), log_fd=log_fd)
        except (dbus_bus.BusStartError, OSError) as exc:
            self._failed(desktop, str(exc))
            return None
        service = DesktopService(desktop, appearance=self.portal.appearance())
        try:
            service.connect(str(bus.daemon_socket))
        except BusError as exc:
            bus.stop()
            self._failed(desktop, str(exc))
            return None
        run = self.running[desktop] = _Running(bus, service)
        run.reader = self.server.loop.add_reader(
            service.fileno(), lambda: self._on_bus_readable(desktop), f"bus of {desktop}"
        )
        self.failures.pop(desktop, None)
        return run

    def _failed(self, desktop: str, why: str) -> None:
        # The program still starts, without any bus: a missing bus withholds, never grants.
        log.warning("desktop %s: no session bus: %s", desktop, why)
        if desktop not in self.failures:
            self.server.notify(f"{desktop} runs without its session bus: {why}", urgent=True)
        self.failures[desktop] = why

    # ---- what arrives on a bus ----

    def _on_bus_readable(self, desktop: str) -> None:
        run = self.running.get(desktop)
        if run is None:
            return
        events, closed = run.service.on_readable()
        for ev in events:
            if isinstance(ev, Notice):
                self._on_notice(ev)
            elif isinstance(ev, OpenRequest):
                self._on_open(ev)
            elif isinstance(ev, Refused):
                self.server.notify(
                    f"{ev.desktop}: a link was not opened ({ev.reason}): {ev.what or '(empty)'}",
                    urgent=True,
                )
            elif isinstance(ev, ChooseRequest):
                self.portal.choose(ev)
            elif isinstance(ev, ScreenshotRequest):
                self.portal.screenshot(ev)
            elif isinstance(ev, OpenFileRequest):
                self.portal.open_file(ev)
            elif isinstance(ev, CloseRequest):
                self.portal.close_request(ev)
        dropped = run.service.rate.dropped
        if dropped > run.dropped_told:
            run.dropped_told = dropped
            self.server.notify(f"{desktop}: too many notifications, {dropped} dropped so far")
        self._tell_files_dropped(desktop, run)
        if closed:
            log.warning("desktop %s: its session bus went away; restarted on next launch", desktop)
            self._stop(desktop)
            return
        self._watch_writes(desktop, run)

    def _tell_files_dropped(self, desktop: str, run: _Running) -> None:
        """Files the portal refused for coming too fast are told, at most once per
        `FILES_QUIET_MS`: what is refused meanwhile is counted into the next notice."""
        dropped = run.service.portal.files_dropped
        if dropped <= run.files_told or run.files_quiet is not None:
            return
        n, run.files_told = dropped - run.files_told, dropped
        self.server.notify(f"Too many files at once from {desktop}: {n} not opened")
        run.files_quiet = self.server.loop.call_later(
            FILES_QUIET_MS, lambda: self._files_quiet_over(desktop, run), f"bus of {desktop}"
        )

    def _files_quiet_over(self, desktop: str, run: _Running) -> None:
        run.files_quiet = None
        if self.running.get(desktop) is run:
            self._tell_files_dropped(desktop, run)

    def respond(
        self, desktop: str, handle: str, code: int, results: dict[str, tuple[str, Any]]
    ) -> None:
        """Answer a portal request of `desktop` (nothing if its bus is gone meanwhile)."""
        run = self.running.get(desktop)
        if run is None or handle == "":
            return
        run.service.respond(handle, code, results)
        self._watch_writes(desktop, run)

    def _watch_writes(self, desktop: str, run: _Running) -> None:
        if run.service.wants_write and run.writer is None:
            run.writer = self.server.loop.add_writer(
                run.service.fileno(), lambda: self._on_bus_writable(desktop), f"bus of {desktop}"
            )
        elif not run.service.wants_write and run.writer is not None:
            run.writer.remove()
            run.writer = None

    def _on_bus_writable(self, desktop: str) -> None:
        run = self.running.get(desktop)
        if run is not None:
            run.service.flush()
            self._watch_writes(desktop, run)

    def _on_notice(self, notice: Notice) -> None:
        d = self.server.desktops.get(notice.desktop)
        if d is None:
            return
        frozen = self.server.model.desktops[notice.desktop].frozen
        if frozen and d.spec.notify_when_frozen == "queue":
            self.queues.setdefault(notice.desktop, FrozenQueue()).put(notice)
            return
        self._show(notice)

    def _show(self, notice: Notice) -> None:
        d = self.server.desktops.get(notice.desktop)
        if d is None:
            return
        lines = notice.text().splitlines()
        log.info("notification from %s: %s", notice.desktop, " / ".join(lines))
        desktop_notice.show(
            self.server.notifications,
            notice.desktop,
            d.spec.colour,
            lines,
            12.0 if notice.urgent else 8.0,
        )
        self.server.emit(
            "notification",
            {"desktop": notice.desktop, "text": notice.text(), "urgent": notice.urgent},
        )

    def _on_open(self, req: OpenRequest) -> None:
        source = self.server.desktops.get(req.desktop)
        if source is None:
            return
        target = source.spec.open_links_in or req.desktop
        if target not in self.server.desktops:
            self.server.notify(f"{req.desktop}: links go to {target}, which is not running")
            return
        argv = policy.browser_argv(self.server.desktops[target].spec.browser, req.url)
        where = "" if target == req.desktop else f" in {target}"
        link = policy.short(req.url)
        self.launches.launch(
            target,
            argv,
            done=f"Link from {req.desktop} opened{where}: {link}",
            failed=f"Link from {req.desktop} not opened{where} ({link})",
            waiting=f"Opening a link from {req.desktop}{where}: "
            f"{target}'s network is being set up\u2026",
        )

    # ---- compositor hooks ----

    def before_show(self, desktop: str) -> None:
        queue = self.queues.get(desktop)
        if queue is not None:
            for notice in queue.take():
                self._show(notice)

    def child_exited(self, child: Child) -> None:
        self.launches.child_exited(child)

    def quarantine_event(self, kind: str, item: dict[str, Any]) -> None:
        self.portal.quarantine_event(kind, item)

    def reload(self) -> None:
        self.portal.reload()
        # a desktop that is gone, or no longer has a bus of its own, loses the one it had
        for name in list(self.running):
            d = self.server.desktops.get(name)
            if d is None or d.spec.dbus != "desktop":
                self._stop(name)
                self.queues.pop(name, None)

    def describe_desktop(self, desktop: str) -> dict[str, Any]:
        d = self.server.desktops.get(desktop)
        run = self.running.get(desktop)
        return {
            "dbus": d.spec.dbus if d else None,
            "bus_running": run is not None and run.bus.alive(),
        }

    def status(self) -> dict[str, Any]:
        buses: dict[str, Any] = {}
        for name, run in self.running.items():
            buses[name] = {
                "start_ms": round(run.bus.started_ms, 1),
                "memory_kib": run.bus.memory_kib(),
                "alive": run.bus.alive(),
                "portal_requests_open": len(run.service.portal.pending),
                "portal_calls": dict(run.service.portal.calls),
                "portal_files_ready": run.service.portal.files_ready(),
                "portal_files_refused": run.service.portal.files_dropped,
                # links: one budget for xdg-open and the portal (desktop-bus.md)
                "links_ready": run.service.link_rate.available(),
                "links_refused": run.service.link_rate.dropped,
            }
        for name, why in self.failures.items():
            buses.setdefault(name, {})["error"] = why
        out: dict[str, Any] = {"desktop_buses": buses}
        host = [n for n, d in self.server.desktops.items() if d.spec.dbus == "host"]
        if host:
            out["dbus_warning"] = (
                f"{', '.join(host)}: dbus='host': programs there reach the host's session and "
                "system buses (every other program and service on them)"
            )
        return out

    def _stop(self, desktop: str) -> None:
        run = self.running.pop(desktop, None)
        if run is None:
            return
        for handle in (run.reader, run.writer, run.files_quiet):
            if handle is not None:
                handle.remove()
        self.portal.desktop_gone(desktop)
        run.service.close()
        run.bus.stop()

    def close(self) -> None:
        for desktop in list(self.running):
            self._stop(desktop)
