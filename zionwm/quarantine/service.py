"""`zionwm-quarantined`: the quarantine service process.

Owns the pipeline around the store: inboxes (downloads and outboxes) -> audit in worker
threads (each hands the file to `zygote.ZygotePool`, which forks a fresh sandboxed child per
file from a warm sandbox of the source desktop) -> verdict
and policy -> hold timers -> release; the control socket (`paths.runtime_dir() /
"quarantine.sock"`, 0600, peers checked with SO_PEERCRED) speaking newline-delimited JSON;
and the events sent to subscribers (the compositor's notifications and pending badge).

One thread runs the loop (selectors + a heap of deadlines) and is the only one touching the
store; audit threads get an fd and hand back a report through a queue and a wake-up pipe.
At start, after taking the store lock, `recover()` applies `store.recovery_action` to every
unfinished item, then every inbox is rescanned for files that arrived while it was down.

What the service audits and releases is its own copy of each file (see inbox.py); the
release checks the copy's digest against the audit's. Every way out of a desktop (its
downloads, its outbox, `send`) is held and judged under that desktop's downloads policy
(`source_bound_policy`). Refused inbox entries are recorded at a bounded rate per desktop.

The compositor writes the policy file (`policy_to_json(specs)`), starts this process with
`--policy-file PATH [--ready-fd N]` and supervises it; SIGHUP re-reads the policy file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import heapq
import importlib.util
import json
import logging
import os
import queue
import re
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zionwm import paths
from zionwm.isolation.spec import DesktopSpec, DownloadsPolicy, VerdictAction
from zionwm.quarantine.client import socket_path
from zionwm.quarantine.engines import (
    ANTIVIRUS_MODES,
    changes,
    engine_state,
    resolve_clamd_socket,
)
from zionwm.quarantine.inbox import (
    EMPTY_SETTLE,
    InboxSpec,
    InboxWatcher,
    Outcome,
    RefusalLimiter,
    is_partial_name,
    take,
    take_copy,
)
from zionwm.quarantine.release import (
    ORIGIN_XATTRS,
    ContentChanged,
    Destination,
    audit_stamp,
    is_released_copy,
    open_dir_chain,
    release_file,
)
from zionwm.quarantine.report import AuditReport, Finding, Verdict, severity
from zionwm.quarantine.store import (
    PENDING_STATES,
    SHARED_DEST,
    Item,
    Kind,
    RecoveryAction,
    State,
    Store,
    StoreError,
    recovery_action,
)

log = logging.getLogger(__name__)

_MAX_REQUEST = 1 << 20
_MAX_SUBSCRIBER_BACKLOG = 4 << 20
_RETRY_FIRST = 2.0
_RETRY_MAX = 60.0
# A deleted inbox sends no inotify event while we hold its directory fd: look every so often.
_INBOX_CHECK = 2.0
# Refused inbox entries recorded per desktop per window; the rest are summed up in one row.
REFUSALS_PER_WINDOW = 10
REFUSAL_WINDOW = 60.0
SAFE_COPY = "safe copy of item"  # how a converted copy's record begins
# How often an item that waits for an antivirus (antivirus="required") looks for one.
_AV_WAIT = 30.0


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceConfig:
    """What the service enforces, from the policy file the compositor writes."""

    downloads: dict[str, DownloadsPolicy] = field(default_factory=dict)  # source -> policy
    desktops: tuple[str, ...] = ()  # every desktop: outboxes watched, valid send targets
    outbox: DownloadsPolicy = field(
        default_factory=lambda: DownloadsPolicy(release_to=SHARED_DEST, hold=0.0)
    )
    send: DownloadsPolicy = field(default_factory=lambda: DownloadsPolicy(release_to="", hold=0.0))
    audit: dict[str, Any] = field(default_factory=dict)  # keyword arguments of AuditSettings
    # source desktop -> cgroup.procs files its audit sandboxes are accounted in
    audit_cgroups: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _policy_json(p: DownloadsPolicy) -> dict[str, Any]:
    return {
        "release_to": p.release_to,
        "hold": p.hold,
        "on_suspicious": p.on_suspicious.value,
        "on_malicious": p.on_malicious.value,
        "on_cannot_inspect": p.on_cannot_inspect.value,
        "safe_copy": p.safe_copy,
    }


_DESKTOP_NAME = re.compile(r"[a-z0-9_-]{1,32}")


def _policy_from(d: dict[str, Any], release_to: str) -> DownloadsPolicy:
    hold = float(d.get("hold", 600.0))
    if hold < 0:
        raise ValueError(f"hold must be >= 0, not {hold}")
    return DownloadsPolicy(
        release_to=str(d.get("release_to", release_to)),
        hold=hold,
        on_suspicious=VerdictAction(d.get("on_suspicious", "keep")),
        on_malicious=VerdictAction(d.get("on_malicious", "keep")),
        on_cannot_inspect=VerdictAction(d.get("on_cannot_inspect", "keep")),
        safe_copy=bool(d.get("safe_copy", False)),
    )


def policy_to_json(
    specs: Iterable[DesktopSpec],
    outbox: DownloadsPolicy | None = None,
    send: DownloadsPolicy | None = None,
    audit: dict[str, Any] | None = None,
    audit_cgroups: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The policy file's content for these desktops (what the compositor writes)."""
    out: dict[str, Any] = {"desktops": []}
    for spec in specs:
        entry: dict[str, Any] = {"desktop": spec.name}
        if audit_cgroups and audit_cgroups.get(spec.name):
            entry["audit_cgroup"] = list(audit_cgroups[spec.name])
        if spec.downloads is not None:
            entry["downloads"] = _policy_json(spec.downloads)
        out["desktops"].append(entry)
    if outbox is not None:
        out["outbox"] = _policy_json(outbox)
    if send is not None:
        out["send"] = _policy_json(send)
    if audit:
        out["audit"] = audit
    return out


def policy_from_json(d: dict[str, Any]) -> ServiceConfig:
    downloads: dict[str, DownloadsPolicy] = {}
    names: list[str] = []
    cgroups: dict[str, tuple[str, ...]] = {}
    for entry in d.get("desktops", []):
        name = str(entry["desktop"])
        if not _DESKTOP_NAME.fullmatch(name):
            raise ValueError(f"bad desktop name {name!r}")
        names.append(name)
        procs = entry.get("audit_cgroup") or ()
        if not all(isinstance(p, str) and p.endswith("/cgroup.procs") for p in procs):
            raise ValueError(f"desktop {name}: audit_cgroup lists cgroup.procs files")
        cgroups[name] = tuple(procs)
        # Either nested ({"desktop", "downloads": {...}}) or flat ({"desktop", "release_to",
        # "hold", "on_*"}): both spell a DownloadsPolicy.
        spelled = entry.get("downloads") if "release_to" not in entry else entry
        if spelled is not None:
            downloads[name] = _policy_from(spelled, "")
            if not _DESKTOP_NAME.fullmatch(downloads[name].release_to):
                raise ValueError(f"desktop {name}: downloads needs a valid release_to")
    return ServiceConfig(
        downloads=downloads,
        desktops=tuple(names),
        outbox=_policy_from(d.get("outbox", {"hold": 0.0}), SHARED_DEST),
        send=_policy_from(d.get("send", {"hold": 0.0}), ""),
        audit=_audit_settings(dict(d.get("audit", {}))),
        audit_cgroups=cgroups,
    )


def _audit_settings(audit: dict[str, Any]) -> dict[str, Any]:
    mode = audit.get("antivirus", "required")
    if mode not in ANTIVIRUS_MODES:
        raise ValueError(f"antivirus must be one of {', '.join(ANTIVIRUS_MODES)}, not {mode!r}")
    return audit


def load_policy_file(path: Path) -> ServiceConfig:
    with open(path, encoding="utf-8") as f:
        return policy_from_json(json.load(f))


# -- the pure decisions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    state: State  # HELD or REJECTED
    hold_until: float | None = None
    delete_content: bool = False
    reason: str | None = None


def decide(
    verdict: Verdict, policy: DownloadsPolicy, now: float, antivirus: str = "required"
) -> Decision:
    """What an audited item becomes under its desktop's policy."""
    if verdict is Verdict.CLEAN:
        return Decision(State.HELD, hold_until=now + policy.hold)
    if verdict is Verdict.NO_ANTIVIRUS:
        # held either way; "required" is applied when the hold ends (it waits for clamd)
        how = (
            'waits for an antivirus scan (antivirus="required")'
            if antivirus == "required"
            else 'released after the hold (antivirus="if-available")'
        )
        return Decision(
            State.HELD, hold_until=now + policy.hold, reason=f"no antivirus scan: {how}"
        )
    action = {
        Verdict.SUSPICIOUS: policy.on_suspicious,
        Verdict.MALICIOUS: policy.on_malicious,
        Verdict.CANNOT_INSPECT: policy.on_cannot_inspect,
    }[verdict]
    if action is VerdictAction.RELEASE:
        return Decision(
            State.HELD, hold_until=now + policy.hold, reason=f"{verdict.value}, released by policy"
        )
    if action is VerdictAction.DELETE:
        return Decision(
            State.REJECTED,
            delete_content=True,
            reason=f"{verdict.value}: content deleted by policy",
        )
    return Decision(State.REJECTED, reason=f"{verdict.value}: kept in quarantine")


_STRICTNESS = {VerdictAction.RELEASE: 0, VerdictAction.KEEP: 1, VerdictAction.DELETE: 2}


def source_bound_policy(path: DownloadsPolicy, source: DownloadsPolicy | None) -> DownloadsPolicy:
    """The policy of a file leaving a desktop by `path` (its outbox, or `send`), under the
    source desktop's own downloads policy: whatever leaves a desktop waits at least that
    desktop's hold, and a verdict is released only when both policies would release it.
    The destination stays the path's (Shared for an outbox, the named desktop for send)."""
    if source is None:
        return path

    def stricter(a: VerdictAction, b: VerdictAction) -> VerdictAction:
        return a if _STRICTNESS[a] >= _STRICTNESS[b] else b

    return DownloadsPolicy(
        release_to=path.release_to,
        hold=max(path.hold, source.hold),
        on_suspicious=stricter(path.on_suspicious, source.on_suspicious),
        on_malicious=stricter(path.on_malicious, source.on_malicious),
        on_cannot_inspect=stricter(path.on_cannot_inspect, source.on_cannot_inspect),
    )


def destination(item: Item) -> Destination:
    if item.dest == SHARED_DEST:
        return Destination(paths.data_home(), item.subdir)
    return Destination(paths.desktop_dir(item.dest), item.subdir)


def release_refusal(item: Item, i_understand: bool) -> str | None:
    """Why the user's `release` of this item is refused, or None to go ahead."""
    if item.state is State.HELD:
        return None
    if item.state in (State.RECEIVED, State.AUDITING, State.TAKING):
        return "not audited yet"
    if item.state is not State.REJECTED:
        return f"item is {item.state.value}"
    if not item.content:
        return "its content is not in quarantine (refused at intake or deleted)"
    if item.verdict is None:
        return "never audited: rescan it first"
    if item.verdict is not Verdict.CLEAN and not i_understand:
        return f"verdict is {item.verdict.value}; add --i-understand to release it anyway"
    return None


# -- audit jobs (run in worker threads) ------------------------------------------------------


@dataclass(frozen=True)
class _AuditResult:
    item_id: int
    sha256: str
    size: int
    report: AuditReport
    rescan: tuple[str, ...] | None = None  # why it was scanned again at the end of its hold


def _failed(detail: str) -> AuditReport:
    return AuditReport(
        findings=(Finding("worker", "audit-failed", detail, Verdict.CANNOT_INSPECT),)
    )


def effective_audit(audit: dict[str, Any]) -> dict[str, Any]:
    """The audit settings in force now: a clamd at the usual place is used unconfigured."""
    out = dict(audit)
    out["clamd_socket"] = resolve_clamd_socket(audit.get("clamd_socket"))
    return out


_ENGINES_TTL = 1.0  # asking clamd and hashing the rules for every file would cost more than
_engines_cache: dict[str, tuple[float, dict[str, Any]]] = {}  # the audit itself
_engines_lock = threading.Lock()


def engines_now(audit: dict[str, Any], fresh: bool = False) -> dict[str, Any]:
    """Antivirus and rule state, at most `_ENGINES_TTL` old (`fresh`: asked now). The
    engines' own answer, not the files: a reload of clamd's database counts from when
    clamd says it has it."""
    key = json.dumps(
        [audit.get("clamd_socket"), audit.get("clamd_database_dir"), audit.get("yara_rule_dirs")]
    )
    now = time.monotonic()
    with _engines_lock:
        hit = _engines_cache.get(key)
        if hit is not None and not fresh and now - hit[0] < _ENGINES_TTL:
            return hit[1]
        state = engine_state(
            audit.get("clamd_socket"),
            audit.get("clamd_database_dir"),
            tuple(str(d) for d in audit.get("yara_rule_dirs", ())),
        )
        _engines_cache[key] = (now, state)
        return state


def with_engines(
    report: AuditReport, engines: dict[str, Any], versions: dict[str, Any]
) -> AuditReport:
    """The report with what looked at the file, and an honest word when no antivirus did."""
    av = engines.get("clamd") or {}
    recorded: dict[str, Any] = {
        s: {"version": v} for s, v in versions.items() if s in ("magic", "office", "pdf")
    }
    recorded["yara"] = {"version": versions.get("yara"), **(engines.get("yara") or {})}
    recorded["clamd"] = {**av, "version": av.get("engine")}
    recorded["checked_at"] = engines.get("checked_at")
    findings = report.findings
    if not av.get("available") and "clamd" not in report.scanners:
        findings += (
            Finding(
                "clamd",
                "no-antivirus",
                f"No antivirus looked at this file: {av.get('why', 'no clamd')}.",
                Verdict.NO_ANTIVIRUS,
            ),
        )
    return AuditReport(findings, report.scanners, report.durations, recorded, report.rescan)


def _audit_job(
    item_id: int,
    fd: int,
    name: str,
    audit: dict[str, Any],
    pool: Any,
    source: str = "",
    rescan: tuple[str, ...] | None = None,
) -> _AuditResult:
    """Hash and audit one stored file. Never raises: a failure is a cannot-inspect report."""
    digest = hashlib.sha256()
    offset = 0
    head = b""
    try:
        while chunk := os.pread(fd, 1 << 20, offset):
            digest.update(chunk)
            if not offset:
                head = chunk[:8192]
            offset += len(chunk)
        # Imported here, not at the top: the scanners' libraries (yara, libmagic, oletools)
        # load only in the service process, not in the compositor importing policy_to_json.
        from zionwm.quarantine.worker import AuditSettings  # noqa: PLC0415

        configured = audit.get("clamd_socket")  # None: look at the usual place
        audit = effective_audit(audit)
        engines = engines_now(audit)
        if not configured and not engines["clamd"]["available"]:
            # a socket at the usual place that does not answer: as good as none (a
            # configured one that does not answer is the clamd scanner's cannot-inspect)
            audit["clamd_socket"] = None
        settings = AuditSettings.from_json(audit)
        from zionwm.quarantine.zygote import flavor_for  # noqa: PLC0415

        report = pool.audit(
            fd, name, settings, source, engines["yara"]["signatures"], flavor_for(head)
        )
        report = with_engines(report, engines, pool.versions())
    except Exception as e:
        log.exception("audit of item %d failed", item_id)
        report = _failed(f"the audit failed: {type(e).__name__}: {e}")
    finally:
        os.close(fd)
    return _AuditResult(item_id, digest.hexdigest(), offset, report, rescan)


@dataclass(frozen=True)
class _ConvertResult:
    item_id: int
    pdf: bytes | None
    pages: int = 0
    seconds: float = 0.0
    error: str | None = None


def _convert_job(item_id: int, fd: int) -> _ConvertResult:
    """Make a safe copy of one stored file in two sandboxes. Never raises."""
    from zionwm.quarantine.convert import ConvertError, convert  # noqa: PLC0415

    try:
        done = convert(fd)
        return _ConvertResult(item_id, done.pdf, done.pages, done.seconds)
    except (ConvertError, OSError, ValueError) as e:
        return _ConvertResult(item_id, None, error=str(e))
    finally:
        os.close(fd)


# -- the service -----------------------------------------------------------------------------


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.outbuf = b""
        self.subscriber = False


class Service:
    def __init__(
        self, config: ServiceConfig, workers: int = 2, policy_file: Path | None = None
    ) -> None:
        self.config = config
        self.policy_file = policy_file
        qdir = paths.quarantine_dir()
        qdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = os.open(qdir / "service.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise RuntimeError("another zionwm-quarantined owns this quarantine") from None
        self.store = Store(qdir)
        self.inboxes = InboxWatcher()
        self.sel = selectors.DefaultSelector()
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="audit")
        from zionwm.quarantine.zygote import ZygotePool  # noqa: PLC0415 - service only

        # warm audit sandboxes, one per source desktop, accounted in its audit cgroup
        self.audits = ZygotePool(cgroups=lambda source: self.config.audit_cgroups.get(source, ()))
        self.rescans: dict[int, tuple[str, ...]] = {}  # held items due for a rescan: why
        self.workers = max(1, workers)
        self.results: queue.SimpleQueue[_AuditResult | _ConvertResult] = queue.SimpleQueue()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.queue: deque[int] = deque()  # received items waiting for a worker slot
        self.queued: set[int] = set()
        self.running_audits: set[int] = set()
        self.timers: list[tuple[float, int, str, int]] = []
        self.refusals = RefusalLimiter(REFUSALS_PER_WINDOW, REFUSAL_WINDOW)
        self._settle_pending = False
        self._timer_seq = 0
        self.retry_delay: dict[int, float] = {}
        self.conns: dict[int, _Conn] = {}
        self.stopping = False
        self.reload_requested = False
        self.listener = self._listen()

    # -- set-up ------------------------------------------------------------------------------

    def _listen(self) -> socket.socket:
        rdir = paths.runtime_dir()
        rdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = socket_path()
        if path.exists() or path.is_symlink():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()
            else:
                probe.close()
                raise RuntimeError(f"{path} is in use by a running service")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)  # the socket is born 0600: no window with wider access
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        sock.listen(64)
        sock.setblocking(False)
        return sock

    def _inbox_specs(self) -> list[InboxSpec]:
        specs = []
        for source in self.config.downloads:
            specs.append(
                InboxSpec(
                    source,
                    paths.desktop_inbox(source),
                    Kind.DOWNLOAD,
                    self.config.downloads[source].release_to,
                    ("home", "Downloads"),
                )
            )
        for source in self.config.desktops:
            specs.append(
                InboxSpec(
                    source, paths.desktop_outbox(source), Kind.OUTBOX, SHARED_DEST, ("shared",)
                )
            )
        return specs

    def start(self) -> None:
        if importlib.util.find_spec("zionwm.quarantine.worker") is None:
            log.error("the audit worker is not installed: every item will be kept unreleased")
        self.recover()
        for spec in self._inbox_specs():
            self.inboxes.add(spec)
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")
        self.sel.register(self.inboxes.fileno(), selectors.EVENT_READ, "inotify")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        for spec in self.inboxes.specs:
            self._scan(spec)
        for item in self.store.list(frozenset({State.RECEIVED})):
            self._enqueue(item.id)
        for item in self.store.list(frozenset({State.HELD})):
            self._schedule(item.hold_until or 0.0, "release", item.id)
        self._schedule(time.time() + _INBOX_CHECK, "inbox-check", 0)
        self._pump()

    def reload(self) -> None:
        if self.policy_file is None:
            return
        try:
            config = load_policy_file(self.policy_file)
        except (OSError, ValueError, KeyError) as e:
            log.error("policy reload failed, keeping the previous policy: %s", e)
            return
        self.config = config
        known = {(s.source, s.kind) for s in self.inboxes.specs}
        for spec in self._inbox_specs():
            if (spec.source, spec.kind) not in known:
                self.inboxes.add(spec)
                self._scan(spec)
        log.info("policy reloaded: %d inboxes", len(self.inboxes.specs))

    # -- recovery ----------------------------------------------------------------------------

    def _in_store(self, item: Item) -> bool:
        try:
            st = os.stat(str(item.id), dir_fd=self.store.items_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == (item.dev, item.ino)

    def _at_destination(self, item: Item) -> bool:
        if not item.release_name:
            return False
        dest = destination(item)
        try:
            dir_fd = open_dir_chain(dest.root, dest.parts, create=False)
        except OSError:
            return False
        try:
            return is_released_copy(dir_fd, item.release_name, item.id, item.sha256)
        finally:
            os.close(dir_fd)

    def _remove_taken_entry(self, item: Item) -> None:
        """A take that crashed after its copy was placed: the inbox entry it copied goes,
        if it is still that file (otherwise the rescan would take it a second time)."""
        if item.inbox_name is None or item.src_ino is None:
            return
        inbox = (
            paths.desktop_outbox(item.source)
            if item.kind is Kind.OUTBOX
            else paths.desktop_inbox(item.source)
        )
        try:
            dir_fd = os.open(inbox, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return
        try:
            st = os.stat(item.inbox_name, dir_fd=dir_fd, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == (item.src_dev, item.src_ino):
                os.unlink(item.inbox_name, dir_fd=dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    def _unlink_content(self, item_id: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(item_id), dir_fd=self.store.items_fd)

    def _resolve(self, item: Item) -> None:
        """Bring one unfinished item to a consistent state from where its file is."""
        action = recovery_action(item.state, self._in_store(item), self._at_destination(item))
        if action is RecoveryAction.KEEP:
            return
        log.info("recovery: item %d (%s) -> %s", item.id, item.state.value, action.value)
        if action is RecoveryAction.DROP:
            self.store.drop_taking(item.id)
        elif action is RecoveryAction.TO_RECEIVED:
            if item.state is State.TAKING:
                self._remove_taken_entry(item)
            self.store.transition(item.id, State.RECEIVED, content=True)
        elif action is RecoveryAction.TO_HELD:
            self.store.transition(item.id, State.HELD)
        elif action is RecoveryAction.TO_RELEASED:
            self._unlink_content(item.id)  # a copy-release that crashed before its unlink
            self.store.transition(item.id, State.RELEASED, content=False, released_at=time.time())
        elif action is RecoveryAction.TO_DELETED:
            self._unlink_content(item.id)
            self._finish_delete(item)
        elif action is RecoveryAction.TO_LOST:
            self.store.transition(
                item.id,
                State.REJECTED,
                content=False,
                reason=f"content missing at recovery (was {item.state.value})",
            )

    def recover(self) -> None:
        for item in self.store.list(PENDING_STATES | {State.DELETING}):
            try:
                self._resolve(item)
            except (OSError, StoreError) as e:  # one bad record must not stop the service
                log.error("recovery of item %d failed: %s", item.id, e)
        # Content in items/ that no record claims (never expected): reported, not touched.
        known = {str(i.id) for i in self.store.list() if i.content}
        for name in os.listdir(self.store.items_fd):
            if name not in known:
                log.warning("quarantine store: %r has no record; left in place", name)

    # -- the pipeline ------------------------------------------------------------------------

    def _scan(self, spec: InboxSpec) -> None:
        dir_fd = self.inboxes.dir_fds[spec]
        for name in self.inboxes.scan(spec):
            self._take(spec, dir_fd, name, False)

    def _take(self, spec: InboxSpec, dir_fd: int, name: str, from_create: bool) -> None:
        try:
            result = take(self.store, spec, dir_fd, name, from_create, self.refusals)
        except OSError as e:
            log.warning("inbox %s: could not take %r: %s", spec.source, name, e)
            return
        if result.outcome is Outcome.REFUSED and result.item_id is None:
            # over the rate limit: summed up in one row when the desktop's window ends
            if self.refusals.suppressed.get(spec.source) == 1:
                self._schedule(self.refusals.window_end(spec.source), "refusals", 0)
            return
        if result.outcome is Outcome.SETTLING and not self._settle_pending:
            self._settle_pending = True
            self._schedule(time.time() + EMPTY_SETTLE + 0.05, "settle", 0)
        if result.item_id is None:
            return
        item = self.store.get(result.item_id)
        if result.outcome is Outcome.TAKEN:
            self._emit("received", item)
            self._enqueue(item.id)
        elif result.outcome is Outcome.REFUSED:
            self._emit("rejected", item)

    def _record_suppressed(self, now: float) -> None:
        for source, count in self.refusals.due(now):
            spec = next((s for s in self.inboxes.specs if s.source == source), None)
            reason = (
                f"{count} more refused entries (symbolic links, hard links or special files)"
                f" in {REFUSAL_WINDOW:.0f} s: removed from the inbox without a record each"
            )
            item_id = self.store.record_refused(
                kind=spec.kind if spec else Kind.DOWNLOAD,
                source=source,
                dest=spec.dest if spec else "",
                subdir=spec.subdir if spec else (),
                name=f"({count} entries)",
                reason=reason,
            )
            log.warning("inbox %s: %s (item %d)", source, reason, item_id)
            self._emit("rejected", self.store.get(item_id))

    def _enqueue(self, item_id: int) -> None:
        if item_id not in self.queued and item_id not in self.running_audits:
            self.queue.append(item_id)
            self.queued.add(item_id)

    def _pump(self) -> None:
        """Start audits while worker slots are free."""
        while self.queue and len(self.running_audits) < self.workers:
            item_id = self.queue.popleft()
            self.queued.discard(item_id)
            try:
                item = self.store.get(item_id)
                rescan = self.rescans.pop(item_id, None)
                if rescan is not None and item.state is State.HELD:
                    self._start_rescan(item, rescan)
                    continue
                if item.state is not State.RECEIVED:
                    continue
                fd = os.open(
                    str(item_id),
                    os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                    dir_fd=self.store.items_fd,
                )
            except (OSError, StoreError) as e:
                log.error("item %d: cannot start its audit: %s", item_id, e)
                continue
            try:
                item = self.store.transition(item_id, State.AUDITING)
            except StoreError as e:
                os.close(fd)
                log.error("item %d: cannot start its audit: %s", item_id, e)
                continue
            self.running_audits.add(item_id)
            fut = self.pool.submit(
                _audit_job, item_id, fd, item.name, self.config.audit, self.audits, item.source
            )
            fut.add_done_callback(self._audit_done)

    def _start_rescan(self, item: Item, why: tuple[str, ...]) -> None:
        """Scan a held item again; it stays held (a kill -9 meanwhile leaves it held, and
        the end of its hold asks again), and only the loop releases or keeps it."""
        try:
            fd = os.open(
                str(item.id), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.store.items_fd
            )
        except OSError as e:
            log.error("item %d: cannot rescan it: %s", item.id, e)
            return
        log.info("item %d: scanning again at the end of its hold: %s", item.id, "; ".join(why))
        self.running_audits.add(item.id)
        fut = self.pool.submit(
            _audit_job, item.id, fd, item.name, self.config.audit, self.audits, item.source, why
        )
        fut.add_done_callback(self._audit_done)

    def _audit_done(self, fut: Any) -> None:
        # Runs in the worker thread: hand over to the loop, touch nothing else.
        if fut.cancelled():
            return  # shutting down: the item resumes as received at the next start
        self.results.put(fut.result())
        with contextlib.suppress(BlockingIOError):
            os.write(self.wake_w, b"a")

    def _policy_for(self, item: Item) -> DownloadsPolicy:
        own = self.config.downloads.get(item.source)
        if item.kind is Kind.OUTBOX:
            return source_bound_policy(self.config.outbox, own)
        if item.kind is Kind.SEND:
            return source_bound_policy(self.config.send, own)
        policy = own
        if policy is None:  # the desktop lost its downloads policy: strictest defaults
            return DownloadsPolicy(release_to=item.dest)
        return policy

    def _antivirus(self) -> str:
        return str(self.config.audit.get("antivirus", "required"))

    def _hold_ended(self, item: Item) -> None:
        """At the end of a hold: scan again if the signatures or rules changed since the
        audit; wait for an antivirus if one is required; otherwise release."""
        audit = effective_audit(self.config.audit)
        # at most a second old: asking clamd and hashing the rules for every release of a
        # flood would make the releases the slowest stage
        now_engines = engines_now(audit)
        av = now_engines["clamd"]
        waits = item.verdict is Verdict.NO_ANTIVIRUS and self._antivirus() == "required"
        if waits and not av.get("available"):
            log.info("item %d waits for an antivirus scan (%s)", item.id, av.get("why"))
            self._schedule(time.time() + _AV_WAIT, "release", item.id)
            return
        why = changes(item.report.engines if item.report else None, now_engines)
        if why and item.id not in self.running_audits:
            self.rescans[item.id] = tuple(why)
            self._enqueue(item.id)
            return
        if item.id in self.running_audits:
            return  # its rescan is running; its result decides
        self._release(item.id)

    def _on_rescan_result(self, item: Item, res: _AuditResult) -> None:
        assert res.rescan is not None and item.report is not None
        old = item.verdict or Verdict.CANNOT_INSPECT
        new = res.report.verdict
        report = dataclasses.replace(
            res.report,
            rescan={
                "at": time.time(),
                "why": list(res.rescan),
                "previous_verdict": old.value,
                "previous_engines": item.report.engines,
                "previous_findings": [f.detail for f in item.report.findings][:20],
            },
        )
        if res.sha256 != item.sha256:
            # the stored bytes are not the audited bytes: never release them
            self.store.transition(
                item.id,
                State.REJECTED,
                content=True,
                report=report,
                reason="its content changed in quarantine since its audit",
            )
            return
        words = "; ".join(res.rescan)
        if new is Verdict.NO_ANTIVIRUS and self._antivirus() == "required":
            log.info("item %d: rescan found no antivirus; it keeps waiting", item.id)
            self._schedule(time.time() + _AV_WAIT, "release", item.id)
            return
        decision = decide(new, self._policy_for(item), time.time(), self._antivirus())
        if severity(new) > severity(old) and decision.state is State.REJECTED:
            item = self.store.transition(
                item.id,
                State.REJECTED,
                content=True,
                verdict=new,
                report=report,
                reason=f"scanned again when its hold ended ({words}): now {new.value}, "
                f"was {old.value}; kept in quarantine",
            )
            log.info("item %d kept after its rescan: %s -> %s", item.id, old.value, new.value)
            self._emit("rejected", item)
            return
        worst = new if severity(new) > severity(old) else old
        self._release(item.id, fields={"verdict": worst, "report": report})

    def _on_audit_result(self, res: _AuditResult) -> None:
        self.running_audits.discard(res.item_id)
        item = self.store.get(res.item_id)
        if res.rescan is not None:
            if item.state is State.HELD:
                self._on_rescan_result(item, res)
            return
        if item.state is not State.AUDITING:
            log.warning("item %d changed to %s during its audit", item.id, item.state.value)
            return
        verdict = res.report.verdict
        decision = decide(verdict, self._policy_for(item), time.time(), self._antivirus())
        fields: dict[str, Any] = {
            "sha256": res.sha256,
            "size": res.size,
            "verdict": verdict,
            "report": res.report,
            "reason": decision.reason,
        }
        if item.reason and item.reason.startswith(SAFE_COPY):
            # what the item is stays on its record through its audit
            fields["reason"] = "; ".join(r for r in (item.reason, decision.reason) if r)
        if decision.state is State.HELD:
            item = self.store.transition(
                item.id, State.HELD, hold_until=decision.hold_until, **fields
            )
            self._emit("held", item)
            self._schedule(decision.hold_until or 0.0, "release", item.id)
        elif decision.delete_content:
            item = self.store.transition(item.id, State.DELETING, then_state="rejected", **fields)
            self._unlink_content(item.id)
            item = self._finish_delete(item)
            self._emit("rejected", item)
        else:
            item = self.store.transition(item.id, State.REJECTED, content=True, **fields)
            self._emit("rejected", item)
            self._safe_copy_if_asked(item)
        log.info("item %d %r: %s -> %s", item.id, item.name, verdict.value, item.state.value)

    def _safe_copy_if_asked(self, item: Item) -> None:
        """A kept PDF or image from a desktop whose policy asks for it gets a safe copy."""
        if item.kind is not Kind.DOWNLOAD or (item.reason or "").startswith(SAFE_COPY):
            return
        policy = self.config.downloads.get(item.source)
        if policy is None or not policy.safe_copy:
            return
        reply = self._cmd_convert(item.id)
        if not reply["ok"]:
            log.info("item %d: no safe copy: %s", item.id, reply["error"])

    def _finish_delete(self, item: Item) -> Item:
        then = State(item.then_state) if item.then_state else State.DELETED
        return self.store.transition(item.id, then, content=False)

    def _release(
        self, item_id: int, forced: bool = False, fields: dict[str, Any] | None = None
    ) -> Item:
        item = self.store.transition(
            item_id,
            State.RELEASING,
            release_name=None,
            forced=forced or self.store.get(item_id).forced,
            **(fields or {}),
        )
        claimed = tuple(
            key
            for key, value in zip(ORIGIN_XATTRS, (item.origin_url, item.referrer_url), strict=True)
            if value is not None
        )
        stamp = audit_stamp(
            item.id,
            item.verdict.value if item.verdict else "unknown",
            item.sha256,
            item.report.scanners if item.report else (),
            item.forced,
            source=item.source,
            claimed=claimed,
        )
        try:
            final = release_file(
                self.store.items_fd,
                src_name=str(item.id),
                dest=destination(item),
                name=item.name,
                stamp=stamp,
                on_attempt=lambda cand: self.store.set_release_name(item.id, cand),
                expect_sha256=item.sha256,
            )
        except ContentChanged as e:
            return self._changed_after_audit(item, str(e))
        except OSError as e:
            item = self.store.get(item.id)
            if self._at_destination(item):
                self._unlink_content(item.id)
                final = item.release_name or item.name
            else:
                delay = min(self.retry_delay.get(item.id, _RETRY_FIRST / 2) * 2, _RETRY_MAX)
                self.retry_delay[item.id] = delay
                log.warning("item %d: release failed (%s); retrying in %.0f s", item.id, e, delay)
                item = self.store.transition(item.id, State.HELD, reason=f"release failed: {e}")
                self._schedule(time.time() + delay, "release", item.id)
                self._emit("release-failed", item)
                return item
        self.retry_delay.pop(item.id, None)
        item = self.store.transition(
            item.id, State.RELEASED, release_name=final, released_at=time.time(), content=False
        )
        log.info("item %d released to %s as %r", item.id, item.dest, final)
        self._emit("released", item)
        return item

    def _changed_after_audit(self, item: Item, detail: str) -> Item:
        """The stored copy is not what was audited: keep it, with a finding saying so."""
        finding = Finding(
            "release",
            "changed-after-audit",
            f"{detail}; the audit saw sha256 {item.sha256}. Rescan it to audit what is there.",
            Verdict.SUSPICIOUS,
        )
        old = item.report or AuditReport()
        report = AuditReport((*old.findings, finding), old.scanners, old.durations)
        self.retry_delay.pop(item.id, None)
        item = self.store.transition(
            item.id,
            State.REJECTED,
            content=True,
            verdict=report.verdict,
            report=report,
            reason="content changed after its audit: kept",
        )
        log.error("item %d: %s; kept in quarantine", item.id, detail)
        self._emit("rejected", item)
        return item

    # -- timers ------------------------------------------------------------------------------

    def _schedule(self, when: float, what: str, item_id: int) -> None:
        self._timer_seq += 1
        heapq.heappush(self.timers, (when, self._timer_seq, what, item_id))

    def _run_timers(self) -> None:
        now = time.time()
        while self.timers and self.timers[0][0] <= now:
            _, _, what, item_id = heapq.heappop(self.timers)
            if what == "inbox-check":
                self._rewatch(self.inboxes.gone())
                self.audits.sweep()
                self._schedule(now + _INBOX_CHECK, "inbox-check", 0)
                continue
            if what == "refusals":
                self._record_suppressed(now)
                continue
            if what == "settle":
                self._settle_pending = False
                for spec in self.inboxes.specs:
                    self._scan(spec)
                continue
            item = self.store.get(item_id)
            # Stale timers (rescanned, released by hand, re-held later) are dropped here.
            if item.state is State.HELD and (item.hold_until or 0.0) <= now:
                self._hold_ended(item)

    def _timeout(self) -> float | None:
        if not self.timers:
            return None
        return max(0.0, self.timers[0][0] - time.time())

    # -- events and control ------------------------------------------------------------------

    def _emit(self, event: str, item: Item) -> None:
        if not any(c.subscriber for c in self.conns.values()):
            return
        msg = {"event": event, "item": item.to_json(), "counts": self.store.counts()}
        data = (json.dumps(msg) + "\n").encode()
        for conn in list(self.conns.values()):
            if conn.subscriber:
                self._send(conn, data)

    def _send(self, conn: _Conn, data: bytes) -> None:
        conn.outbuf += data
        if len(conn.outbuf) > _MAX_SUBSCRIBER_BACKLOG:
            log.warning("dropping a client that does not read its events")
            self._close(conn)
            return
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        try:
            while conn.outbuf:
                n = conn.sock.send(conn.outbuf)
                conn.outbuf = conn.outbuf[n:]
        except BlockingIOError:
            pass
        except OSError:
            self._close(conn)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbuf else 0)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(conn.sock, events, "conn")

    def _close(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if self.conns.pop(fd, None) is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        conn.sock.close()

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if uid != os.getuid():
            log.warning("refused a control connection from uid %d", uid)
            sock.close()
            return
        sock.setblocking(False)
        conn = _Conn(sock)
        self.conns[sock.fileno()] = conn
        self.sel.register(sock, selectors.EVENT_READ, "conn")

    def _on_conn(self, sock: socket.socket, mask: int) -> None:
        conn = self.conns.get(sock.fileno())
        if conn is None:
            return
        if mask & selectors.EVENT_WRITE:
            self._flush(conn)
        if not mask & selectors.EVENT_READ:
            return
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        conn.inbuf += data
        if len(conn.inbuf) > _MAX_REQUEST:
            self._close(conn)
            return
        while b"\n" in conn.inbuf and conn.sock.fileno() in self.conns:
            line, conn.inbuf = conn.inbuf.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                req = json.loads(line)
                if not isinstance(req, dict):
                    raise ValueError("a request is a JSON object")
                reply = self.handle(req, conn)
            except (ValueError, KeyError, TypeError) as e:
                reply = {"ok": False, "error": f"bad request: {e}"}
            self._send(conn, (json.dumps(reply) + "\n").encode())

    def handle(self, req: dict[str, Any], conn: _Conn | None = None) -> dict[str, Any]:
        """One control request -> its reply. Errors the user should see come back as text."""
        cmd = req.get("cmd")
        try:
            if cmd == "ping":
                return {"ok": True, "pid": os.getpid(), "counts": self.store.counts()}
            if cmd == "status":
                return {"ok": True, "pid": os.getpid(), **self.audit_status()}
            if cmd == "list":
                every = bool(req.get("all", False))
                items = self.store.list()
                if not every:
                    items = [
                        i
                        for i in items
                        if i.state in PENDING_STATES or (i.state is State.REJECTED and i.content)
                    ]
                return {
                    "ok": True,
                    "items": [_summary(i) for i in items],
                    "counts": self.store.counts(),
                }
            if cmd == "show":
                return {"ok": True, "item": self.store.get(int(req["id"])).to_json()}
            if cmd == "release":
                return self._cmd_release(int(req["id"]), bool(req.get("i_understand")))
            if cmd == "delete":
                return self._cmd_delete(int(req["id"]))
            if cmd == "rescan":
                return self._cmd_rescan(int(req["id"]))
            if cmd == "convert":
                return self._cmd_convert(int(req["id"]))
            if cmd == "send":
                return self._cmd_send(
                    str(req["from"]), str(req["to"]), [str(p) for p in req["paths"]]
                )
            if cmd == "subscribe":
                if conn is None:
                    return {"ok": False, "error": "subscribe needs a connection"}
                conn.subscriber = True
                return {"ok": True, "counts": self.store.counts()}
            if cmd == "reload":
                self.reload()
                return {"ok": True}
        except StoreError as e:
            return {"ok": False, "error": str(e)}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def audit_status(self) -> dict[str, Any]:
        """Is antivirus scanning active, how old are its signatures, what the audit side
        holds (for `zionctl status`)."""
        audit = effective_audit(self.config.audit)
        return {
            "antivirus": self._antivirus(),
            "engines": engines_now(audit),
            "audit_sandboxes": self.audits.stats(),
            "scanners": self.audits.versions(),
        }

    def _cmd_release(self, item_id: int, i_understand: bool) -> dict[str, Any]:
        item = self.store.get(item_id)
        refusal = release_refusal(item, i_understand)
        if refusal is not None:
            return {"ok": False, "error": f"item {item_id}: {refusal}"}
        forced = item.verdict is not Verdict.CLEAN
        item = self._release(item_id, forced=forced)
        if item.state is not State.RELEASED:
            return {"ok": False, "error": f"item {item_id}: {item.reason}", "item": item.to_json()}
        return {"ok": True, "item": item.to_json()}

    def _cmd_delete(self, item_id: int) -> dict[str, Any]:
        item = self.store.get(item_id)
        if item.state is State.AUDITING:
            return {"ok": False, "error": f"item {item_id} is being audited; try again"}
        if not item.content:
            return {"ok": False, "error": f"item {item_id} has no content in quarantine"}
        if item_id in self.queued:
            self.queue.remove(item_id)
            self.queued.discard(item_id)
        item = self.store.transition(item_id, State.DELETING, then_state=None)
        self._unlink_content(item_id)
        item = self._finish_delete(item)
        self._emit("deleted", item)
        return {"ok": True, "item": item.to_json()}

    def _cmd_rescan(self, item_id: int) -> dict[str, Any]:
        item = self.store.get(item_id)
        if item.state not in (State.HELD, State.REJECTED) or not item.content:
            return {
                "ok": False,
                "error": f"item {item_id} is {item.state.value}"
                f"{'' if item.content else ' without content'}: nothing to rescan",
            }
        item = self.store.transition(
            item_id,
            State.RECEIVED,
            verdict=None,
            report=None,
            hold_until=None,
            reason="rescan requested",
        )
        self._enqueue(item_id)
        self._pump()
        return {"ok": True, "item": item.to_json()}

    def _cmd_convert(self, item_id: int) -> dict[str, Any]:
        """Start making a safe copy of an item (see convert.py); it arrives as a new item."""
        from zionwm.quarantine.convert import kind_of  # noqa: PLC0415

        item = self.store.get(item_id)
        if item.state not in (State.HELD, State.REJECTED) or not item.content:
            return {
                "ok": False,
                "error": f"item {item_id} is {item.state.value}: nothing to convert",
            }
        try:
            fd = os.open(
                str(item_id), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.store.items_fd
            )
        except OSError as e:
            return {"ok": False, "error": f"item {item_id}: {e.strerror}"}
        if kind_of(os.pread(fd, 8192, 0)) is None:
            os.close(fd)
            return {"ok": False, "error": f"item {item_id}: only PDFs and images can be converted"}
        fut = self.pool.submit(_convert_job, item_id, fd)
        fut.add_done_callback(self._audit_done)
        return {"ok": True, "converting": item_id}

    def _on_converted(self, res: _ConvertResult) -> None:
        from zionwm.quarantine.convert import safe_name  # noqa: PLC0415

        item = self.store.get(res.item_id)
        if res.error is not None or res.pdf is None:
            log.warning("item %d: no safe copy: %s", item.id, res.error)
            self._emit("convert-failed", dataclasses.replace(item, reason=res.error))
            return
        out = os.open(
            ".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=self.store.items_fd
        )
        try:
            view = memoryview(res.pdf)
            while view:
                view = view[os.write(out, view) :]
            if item.origin_url:
                os.setxattr(out, "user.xdg.origin.url", item.origin_url.encode())
            st = os.fstat(out)
            new_id = self.store.begin_take(
                kind=Kind.SEND,
                source=item.source,
                dest=item.dest,
                subdir=item.subdir,
                name=safe_name(item.name),
                size=st.st_size,
                dev=st.st_dev,
                ino=st.st_ino,
                inbox_name=None,
                origin_url=item.origin_url,
                referrer_url=item.referrer_url,
            )
            os.link(f"/proc/self/fd/{out}", str(new_id), dst_dir_fd=self.store.items_fd)
        finally:
            os.close(out)
        copy = self.store.transition(
            new_id,
            State.RECEIVED,
            content=True,
            reason=f"{SAFE_COPY} {item.id} ({item.name}): {res.pages} pages rendered to "
            f"pixels and rebuilt as a plain PDF in {res.seconds:.1f} s; the original stays "
            "in quarantine",
        )
        log.info("item %d: safe copy is item %d (%d pages)", item.id, new_id, res.pages)
        self._emit("received", copy)
        self._enqueue(new_id)

    def _cmd_send(self, source: str, dest: str, rels: list[str]) -> dict[str, Any]:
        for name in (source, dest):
            if name not in self.config.desktops:
                return {"ok": False, "error": f"unknown desktop {name!r}"}
        if source == dest:
            return {"ok": False, "error": "source and destination are the same desktop"}
        results: list[dict[str, Any]] = []
        ok = True
        for rel in rels:
            try:
                res = take_copy(
                    self.store,
                    source=source,
                    home=paths.desktop_home(source),
                    rel=rel,
                    dest=dest,
                    subdir=("home", "Incoming", source),
                )
            except OSError as e:  # UnsafeEntry included
                ok = False
                results.append({"path": rel, "ok": False, "error": e.strerror or str(e)})
                continue
            assert res.item_id is not None
            item = self.store.get(res.item_id)
            self._emit("received", item)
            self._enqueue(item.id)
            results.append({"path": rel, "ok": True, "id": item.id})
        self._pump()
        return {
            "ok": ok,
            "results": results,
            **({} if ok else {"error": "some files were refused"}),
        }

    # -- the loop ----------------------------------------------------------------------------

    def _on_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wake_r, 4096):
                pass
        while True:
            try:
                res = self.results.get_nowait()
            except queue.Empty:
                break
            if isinstance(res, _ConvertResult):
                self._on_converted(res)
            else:
                self._on_audit_result(res)

    def _rewatch(self, lost: list[InboxSpec]) -> None:
        for spec in lost:
            # The directory was deleted or moved away (a desktop reset?): watch the path
            # again, recreating it, and take whatever is already there.
            log.warning("inbox %s (%s) went away: watching it again", spec.source, spec.kind)
            try:
                self.inboxes.add(spec)
            except OSError as e:
                log.error("inbox %s: cannot watch %s again: %s", spec.source, spec.path, e)
                continue
            self._scan(spec)

    def _on_inotify(self) -> None:
        events, overflow, lost = self.inboxes.read()
        self._rewatch(lost)
        if overflow:
            log.warning("inotify queue overflowed: rescanning every inbox")
            for spec in self.inboxes.specs:
                self._scan(spec)
        rescan: set[InboxSpec] = set()
        for spec, name, from_create in events:
            if is_partial_name(name):
                # a partial download was renamed, finished or abandoned: placeholders and
                # empty files deferred while it ran may be due now
                rescan.add(spec)
                continue
            self._take(spec, self.inboxes.dir_fds[spec], name, from_create)
        for spec in rescan:
            self._scan(spec)

    def run_once(self, timeout: float | None) -> None:
        t = self._timeout()
        if timeout is not None:
            t = timeout if t is None else min(t, timeout)
        for key, mask in self.sel.select(t):
            self._guard(self._dispatch, key, mask)
        self._guard(self._run_timers)
        self._guard(self._pump)
        if self.reload_requested:
            self.reload_requested = False
            self._guard(self.reload)

    def _dispatch(self, key: selectors.SelectorKey, mask: int) -> None:
        tag = key.data
        if tag == "listen":
            self._accept()
        elif tag == "inotify":
            self._on_inotify()
        elif tag == "wake":
            self._on_wake()
        elif tag == "conn":
            assert isinstance(key.fileobj, socket.socket)
            self._on_conn(key.fileobj, mask)

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        # Every transition is its own commit, so an unexpected error leaves the store
        # consistent: log it and keep serving rather than die and crash-loop on the same
        # input (a restart would meet it again at the rescan).
        try:
            fn(*args)
        except Exception:
            log.exception("unexpected error in %s", getattr(fn, "__name__", fn))

    def run(self) -> None:
        while not self.stopping:
            self.run_once(None)

    def close(self) -> None:
        # Let running audits finish (each is bounded by the worker's timeout) and record
        # their verdicts: abandoning them could leave a sandbox stuck in its start-up if
        # it is cut off from its parent there. Queued ones resume at the next start.
        self.queue.clear()
        self.queued.clear()
        for source, count in self.refusals.suppressed.items():
            if count:
                log.warning(
                    "inbox %s: %d refused entries removed without a record since %.0f s ago",
                    source,
                    count,
                    time.time() - (self.refusals.window_end(source) - REFUSAL_WINDOW),
                )
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.audits.close()
        self._guard(self._on_wake)
        for conn in list(self.conns.values()):
            self._close(conn)
        with contextlib.suppress(OSError):
            socket_path().unlink()
        self.listener.close()
        self.inboxes.close()
        self.sel.close()
        self.store.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        os.close(self._lock_fd)


def _summary(item: Item) -> dict[str, Any]:
    d = item.to_json()
    d.pop("report", None)
    return d


# -- entry point -----------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="zionwm-quarantined", description="zionwm's download quarantine service"
    )
    p.add_argument(
        "--policy-file",
        type=Path,
        required=True,
        help="JSON written by the compositor: desktops and their downloads policy",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=max(1, min(4, os.cpu_count() or 1)),
        help="audits run at once",
    )
    p.add_argument(
        "--ready-fd",
        type=int,
        default=None,
        help="write 'READY\\n' to this fd once the socket accepts requests",
    )
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s zionwm-quarantined %(levelname)s %(message)s",
    )
    try:
        config = load_policy_file(args.policy_file)
        service = Service(config, workers=args.workers, policy_file=args.policy_file)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        log.error("cannot start: %s", e)
        return 1

    def on_stop(_sig: int, _frame: object) -> None:
        service.stopping = True

    def on_hup(_sig: int, _frame: object) -> None:
        service.reload_requested = True

    signal.set_wakeup_fd(service.wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    try:
        service.start()
        if args.ready_fd is not None:
            try:
                os.write(args.ready_fd, b"READY\n")
            except BrokenPipeError:
                # whoever started us is already gone (the compositor quit while we started):
                # nothing is waiting for us, so stop cleanly instead of running orphaned
                log.info("the supervisor went away before we were ready: stopping")
                service.stopping = True
            os.close(args.ready_fd)
        if not service.stopping:
            service.run()
    finally:
        service.close()
    return 0


__all__ = [
    "Decision",
    "Service",
    "ServiceConfig",
    "decide",
    "load_policy_file",
    "main",
    "policy_from_json",
    "policy_to_json",
    "release_refusal",
    "socket_path",
]

if __name__ == "__main__":
    raise SystemExit(main())
