"""Start, supervise and listen to the quarantine service (`zionwm-quarantined`).

The service runs as its own process so scanning never stalls a frame. The compositor writes
its policy file (desktops, downloads policies, audit settings), starts it, restarts it if it
dies (with a crash-loop bound), and turns its events into notifications and the pending
count on the desktop indicator.

Names and reasons in those events come from a desktop: they are escaped (`printable`)
before they reach a notification or the log, and each desktop gets a few notifications per
window, the rest summed up in one. What happened while the compositor was not subscribed (a
file kept before it started, or while the service restarted) is not lost: each
subscription asks for the items held or kept now, and what the user was not told yet is
told then; which item was told is remembered in the state directory (`ShownNotices`), so
nothing is told twice, across restarts of either side.

It also keeps ephemeral desktops ephemeral at the edges: their Downloads and Outbox are host
directories that outlive a session, so when a session ends (its last program exits, or at
start) everything left there that the quarantine does not take (dotfiles, partial downloads,
sub-folders) is wiped and logged.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zionwm import paths
from zionwm.isolation import storage
from zionwm.quarantine.accounting import audit_limits
from zionwm.quarantine.client import EventStream
from zionwm.quarantine.names import is_candidate_name  # the rule only: no store, no sqlite3
from zionwm.quarantine.policy import policy_to_json
from zionwm.quarantine.policy import window as quarantine_window
from zionwm.ratelimit import Limiter
from zionwm.untrusted import printable

from .children import Child
from .loop import FdHandle

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)

NOTICES_FILE = "quarantine-notified.json"
MAX_RESTARTS = 5  # within RESTART_WINDOW seconds, then give up and say so
RESTART_WINDOW = 60.0
NOTIFY_PER_WINDOW = 3  # quarantine notifications shown one by one, per desktop and window
NOTIFY_WINDOW = 30.0


class NotifyThrottle(Limiter):
    """Per source desktop: the first `limit` notifications of a window are shown, the rest
    counted and summed up in one when the window ends. Pure: the caller gives the time."""

    def __init__(self, limit: int = NOTIFY_PER_WINDOW, window: float = NOTIFY_WINDOW) -> None:
        super().__init__(limit, window=window)

    def starts_summary(self, source: str) -> bool:
        """The first one held: a summary is due at `window_end(source)`."""
        return self.held_total(source) == 1

    def summary(self, source: str) -> str | None:
        """The one notification for what was held back (and a new window after it)."""
        counts = self.take_held(source)
        if not counts:
            return None
        parts = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        return f"Quarantine: more from {source} than shown ({parts})\nzionctl quarantine list --all"


def notice_key(kind: str, item: dict[str, Any]) -> str | None:
    """What one notification is about, to tell it once per item (pure): None for kinds told
    each time (a failed release is retried and told again)."""
    item_id = item.get("id")
    if not isinstance(item_id, int):
        return None
    if kind == "released":
        return f"{item_id}:released"
    if kind == "rejected":
        return f"{item_id}:kept"
    if kind == "held" and item.get("verdict") == "no-antivirus-scan":
        return f"{item_id}:unscanned"
    return None


def backlog_kind(item: dict[str, Any]) -> str | None:
    """The event a held or kept item of a subscription's backlog would have come with, if
    it is one the user is told of (pure)."""
    if item.get("state") == "rejected":
        return "rejected"
    if item.get("state") == "held" and item.get("verdict") == "no-antivirus-scan":
        return "held"
    return None


class ShownNotices:
    """The quarantine notifications already shown, by `notice_key`, kept in a small file so
    that a restart of the compositor does not tell them again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: set[str] = set()
        self.dirty = False
        try:
            data = json.loads(path.read_text())
            self.keys = {k for k in data if isinstance(k, str)} if isinstance(data, list) else set()
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as e:
            log.warning("cannot read %s (%s): quarantine notices may be shown again", path, e)

    def first(self, key: str) -> bool:
        """True the first time `key` is asked for (and it is remembered)."""
        if key in self.keys:
            return False
        self.keys.add(key)
        self.dirty = True
        return True

    def forget_item(self, item_id: object) -> None:
        """An item audited again (a rescan): its next verdict is news."""
        prefix = f"{item_id}:"
        gone = {k for k in self.keys if k.startswith(prefix)}
        if gone:
            self.keys -= gone
            self.dirty = True

    def keep_only(self, item_ids: set[int]) -> None:
        """Forget the items no longer held or kept (they will not be told again anyway)."""
        kept = {k for k in self.keys if k.split(":", 1)[0] in {str(i) for i in item_ids}}
        if kept != self.keys:
            self.keys = kept
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(sorted(self.keys)))
            tmp.replace(self.path)
            self.dirty = False
        except OSError as e:
            log.warning("cannot write %s: %s", self.path, e)


def sweep_ephemeral_edges(desktop: str) -> list[str]:
    """Wipe what an ephemeral desktop's session left in its Downloads and Outbox that the
    quarantine will not take: dotfiles, partial downloads, sub-folders, and anything but a
    final-named file at the top. Complete files stay for the quarantine (audited as usual).
    Returns a line per entry wiped; each is logged."""

    def keep(name: str, st: os.stat_result) -> bool:
        return is_candidate_name(name) and not stat.S_ISDIR(st.st_mode)

    lines = []
    for label, where in (
        ("Downloads", paths.desktop_inbox(desktop)),
        ("Outbox", paths.desktop_outbox(desktop)),
    ):
        try:
            removed = storage.wipe_entries(where, keep)
        except (OSError, storage.UnsafePathError) as e:
            log.error("desktop %s: cannot wipe %s at the end of its session: %s", desktop, label, e)
            continue
        for name, what in removed:
            line = f"~/{label}/{printable(name)} ({what})"
            log.warning("desktop %s (ephemeral): session over, wiped %s", desktop, line)
            lines.append(line)
    return lines


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
        self.throttle = NotifyThrottle(window=quarantine_window(NOTIFY_WINDOW))
        self.shown = ShownNotices(paths.state_home() / NOTICES_FILE)
        self.write_policy()
        self.start()
        # A session that ended with the compositor (a crash included) is over too.
        for spec in self.server.config.desktops:
            if spec.ephemeral and not self._runs_programs(spec.name):
                self._end_session(spec.name)

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
            self.stream = EventStream(backlog=True)
        except (OSError, ValueError) as e:
            log.error("quarantine service is up but refused a subscription: %s", e)
            return
        self.counts = dict(self.stream.counts)
        self._catch_up(self.stream.backlog)
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

    def _catch_up(self, backlog: list[dict[str, Any]]) -> None:
        """Tell what is held or kept now that the user was not told (it happened while no
        one was subscribed)."""
        self.shown.keep_only({i["id"] for i in backlog if isinstance(i.get("id"), int)})
        for item in backlog:
            told = backlog_kind(item)
            if told is not None:
                self._tell(told, item)
        self.shown.save()

    def _on_events(self) -> None:
        assert self.stream is not None
        for ev in self.stream.read_events():
            self._on_event(ev)
        self.shown.save()
        self.counts = dict(self.stream.counts)
        self.server._update_indicators()
        if self.stream.closed:
            self._drop_stream()

    def _on_event(self, ev: dict[str, Any]) -> None:
        kind = str(ev.get("event"))
        raw = ev.get("item", {})
        if kind == "received" and isinstance(raw, dict):
            self.shown.forget_item(raw.get("id"))
        item = self._tell(kind, raw if isinstance(raw, dict) else {})
        self.server.emit("quarantine", {"event": kind, "item": item})
        for ext in self.server.extensions:
            hook = getattr(ext, "quarantine_event", None)
            if hook:
                hook(kind, item)

    def _tell(self, kind: str, raw: dict[str, Any]) -> dict[str, Any]:
        """Notify the user of one event (once per item and kind); the item, escaped."""
        item = dict(raw)
        for key in ("name", "reason", "release_name", "origin_url", "referrer_url"):
            if isinstance(item.get(key), str):
                item[key] = printable(item[key])
        src = printable(str(item.get("source", "?")), 40)
        if kind in ("released", "rejected", "release-failed") or (
            kind == "held" and item.get("verdict") == "no-antivirus-scan"
        ):
            once = notice_key(kind, item)
            if once is None or self.shown.first(once):
                self._notify(kind, src, item)
        return item

    def _notify(self, kind: str, src: str, item: dict[str, Any]) -> None:
        if not self.throttle.admit(src, time.time(), "released" if kind == "released" else "kept"):
            if self.throttle.starts_summary(src):
                delay = max(0.0, self.throttle.window_end(src) - time.time())
                self.server.loop.call_later(
                    int(delay * 1000) + 1, lambda: self._summary(src), "quarantine summary"
                )
            return
        name = item.get("name", "?")
        if kind == "released":
            dest = printable(str(item.get("dest", "?")), 40)
            unscanned = " (no antivirus scan)" if item.get("verdict") == "no-antivirus-scan" else ""
            self.server.notify(f"Released {name} from {src} to {dest}{unscanned}")
        elif kind == "held" and item.get("verdict") == "no-antivirus-scan":
            # say it now: a file that waits for an antivirus may wait a long time
            self.server.notify(
                f"Holding {name} from {src}: no antivirus scan. {item.get('reason') or ''}\n"
                f"zionctl quarantine show {item.get('id', '')}"
            )
        elif kind in ("rejected", "release-failed"):
            verdict = item.get("verdict") or item.get("reason") or kind
            from zionwm.quarantine import explain  # noqa: PLC0415

            words = explain.verdict_words(item.get("verdict")) if item.get("verdict") else ""
            self.server.notify(
                f"Quarantine kept {name} from {src}: {printable(str(verdict))}. {words}\n"
                f"zionctl quarantine show {item.get('id', '')}",
                urgent=True,
            )

    def _summary(self, src: str) -> None:
        text = self.throttle.summary(src)
        if text is not None:
            self.server.notify(text, urgent=True, seconds=10)

    def _drop_stream(self) -> None:
        if self._stream_watch is not None:
            self._stream_watch.remove()
            self._stream_watch = None
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def _runs_programs(self, desktop: str) -> bool:
        return any(c.desktop == desktop for c in self.server.children.running.values())

    def _end_session(self, desktop: str) -> None:
        wiped = sweep_ephemeral_edges(desktop)
        if wiped:
            self.server.notify(
                f"{desktop} is ephemeral: wiped {len(wiped)} item(s) its session left in "
                "Downloads/Outbox (listed in the log)"
            )

    def child_exited(self, child: Child) -> None:
        """Called by the server for every child: ends an ephemeral desktop's session with
        its last program, and restarts the service if it was ours."""
        if child.desktop is not None and child is not self.child:
            d = self.server.desktops.get(child.desktop)
            if d is not None and d.spec.ephemeral and not self._runs_programs(child.desktop):
                self._end_session(child.desktop)
            return
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
