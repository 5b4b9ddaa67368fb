"""Start, supervise and listen to the quarantine service (`zionwm-quarantined`).

The service runs as its own process so scanning never stalls a frame. The compositor writes
its policy file (desktops, downloads policies, audit settings), starts it, restarts it if it
dies (with a crash-loop bound), and turns its events into notifications and the pending
count on the desktop indicator.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from zionwm import paths
from zionwm.quarantine import explain
from zionwm.quarantine.accounting import audit_limits
from zionwm.quarantine.client import EventStream
from zionwm.quarantine.service import policy_to_json

from .children import Child
from .loop import FdHandle

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)

MAX_RESTARTS = 5  # within RESTART_WINDOW seconds, then give up and say so
RESTART_WINDOW = 60.0


class QuarantineLink:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.policy_path = paths.runtime_dir() / "quarantine-policy.json"
        self.child: Child | None = None
        self.stream: EventStream | None = None
        self._stream_watch: FdHandle | None = None
        self._ready_watch: FdHandle | None = None
        self._ready_fd: int | None = None
        self._restarts: list[float] = []
        self.counts: dict[str, int] = {}
        self.closing = False
        self.write_policy()
        self.start()

    @property
    def pending_count(self) -> int:
        return int(self.counts.get("pending", 0))

    def write_policy(self) -> None:
        settings = self.server.config.settings
        audit: dict[str, Any] = {}
        clamd = getattr(settings, "clamd_socket", None)
        if clamd:
            audit["clamd_socket"] = str(clamd)
        rules = getattr(settings, "yara_rule_dirs", ())
        if rules:
            audit["yara_rule_dirs"] = [str(r) for r in rules]
        audit["antivirus"] = getattr(settings, "antivirus", "required")
        data = policy_to_json(
            self.server.config.desktops, audit=audit, audit_cgroups=self._audit_cgroups()
        )
        tmp = self.policy_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.chmod(tmp, 0o600)
        tmp.replace(self.policy_path)

    def _audit_cgroups(self) -> dict[str, list[str]]:
        """Per source desktop, the cgroup its audits are accounted in: beside the desktop's
        own (not inside it, so a frozen desktop does not freeze its pending audits), with
        limits derived from the desktop's."""
        iso = getattr(self.server, "isolation", None)
        manager = getattr(iso, "cgroups", None)
        if manager is None or not hasattr(manager, "audit_group"):
            return {}
        out: dict[str, list[str]] = {}
        for spec in self.server.config.desktops:
            cg = manager.audit_group(spec.name, audit_limits(spec.limits))
            if cg is not None:
                out[spec.name] = [str(p) for p in cg.procs_files()]
        return out

    def start(self) -> None:
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        argv = [
            sys.executable,
            "-m",
            "zionwm.quarantine.service",
            "--policy-file",
            str(self.policy_path),
            "--ready-fd",
            str(wfd),
        ]
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, pass_fds=(wfd,), start_new_session=True
        )
        os.close(wfd)
        self.child = self.server.children.adopt(proc.pid, argv, None, proc.poll, proc.kill)
        self.child.extra["quarantine"] = True
        self._ready_fd = rfd
        self._ready_watch = self.server.loop.add_reader(rfd, self._on_ready, "quarantine ready")

    def _on_ready(self) -> None:
        assert self._ready_fd is not None
        line = os.read(self._ready_fd, 64)
        self._stop_ready_watch()
        if not line.startswith(b"READY"):
            return  # it died before being ready: the exit handler restarts it
        try:
            self.stream = EventStream()
        except OSError as e:
            log.error("quarantine service is up but refused a subscription: %s", e)
            return
        self.counts = dict(self.stream.counts)
        self._stream_watch = self.server.loop.add_reader(
            self.stream.fileno(), self._on_events, "quarantine events"
        )
        self.server._update_indicators()
        log.info("quarantine service ready (pid %d)", self.child.pid if self.child else -1)

    def _stop_ready_watch(self) -> None:
        if self._ready_watch is not None:
            self._ready_watch.remove()
            self._ready_watch = None
        if self._ready_fd is not None:
            os.close(self._ready_fd)
            self._ready_fd = None

    def _on_events(self) -> None:
        assert self.stream is not None
        for ev in self.stream.read_events():
            self._on_event(ev)
        self.counts = dict(self.stream.counts)
        self.server._update_indicators()
        if self.stream.closed:
            self._drop_stream()

    def _on_event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        item = ev.get("item", {})
        name = item.get("name", "?")
        src = item.get("source", "?")
        if kind == "released":
            unscanned = " (no antivirus scan)" if item.get("verdict") == "no-antivirus-scan" else ""
            self.server.notify(f"Released {name} from {src} to {item.get('dest', '?')}{unscanned}")
        elif kind == "held" and item.get("verdict") == "no-antivirus-scan":
            # say it now: a file that waits for an antivirus may wait a long time
            self.server.notify(
                f"Holding {name} from {src}: no antivirus scan. {item.get('reason') or ''}\n"
                f"zionctl quarantine show {item.get('id', '')}"
            )
        elif kind in ("rejected", "release-failed"):
            verdict = item.get("verdict") or item.get("reason") or kind
            words = explain.verdict_words(item.get("verdict")) if item.get("verdict") else ""
            self.server.notify(
                f"Quarantine kept {name} from {src}: {verdict}. {words}\n"
                f"zionctl quarantine show {item.get('id', '')}",
                urgent=True,
            )
        self.server.emit("quarantine", {"event": kind, "item": item})

    def _drop_stream(self) -> None:
        if self._stream_watch is not None:
            self._stream_watch.remove()
            self._stream_watch = None
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def child_exited(self, child: Child) -> None:
        """Called by the server for every child; restarts the service if it was ours."""
        if child is not self.child:
            return
        self._stop_ready_watch()
        self._drop_stream()
        self.child = None
        if self.closing:
            return
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW]
        if len(self._restarts) >= MAX_RESTARTS:
            self.server.notify(
                "The quarantine service keeps crashing; downloads stay in the "
                "inbox until it runs again (zionctl status)",
                urgent=True,
                seconds=30,
            )
            return
        self._restarts.append(now)
        log.warning("quarantine service exited with %s: restarting", child.returncode)
        self.start()

    def reload(self) -> None:
        self.write_policy()
        if self.child is not None:
            os.kill(self.child.pid, signal.SIGHUP)

    def status(self) -> dict[str, Any]:
        return {
            "quarantine": {
                "running": self.stream is not None,
                "pid": self.child.pid if self.child else None,
                "counts": self.counts,
            }
        }

    def close(self) -> None:
        self.closing = True
        self._stop_ready_watch()
        self._drop_stream()
        child = self.child
        if child is not None:
            try:
                os.kill(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 5
            while child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if child.poll() is None:
                child.kill()
