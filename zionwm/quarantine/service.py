"""`zionwm-quarantined`: the quarantine service process, its loop and its I/O.

The pipeline around the store: inboxes (downloads and outboxes, intake.py) -> audit in worker
threads (jobs.py: each hands the file to `zygote.ZygotePool`, which forks a fresh sandboxed
child per file from a warm sandbox of the source desktop; several audits are in flight per
CPU) -> verdict and policy -> hold timers -> release; the control socket (control.py for the
socket, commands.py for the requests) and the events sent to subscribers (the compositor's
notifications and pending badge). What each event means for an item is decided by the pure
state machine in machine.py; verdicts.py applies it to the audits' results, releasing.py
releases the items due, events.py queues and sends the events; this module composes them
with the loop, the audit slots and the timers.

One thread runs the loop (selectors + a heap of deadlines) and is the only one touching the
store; audit threads get an fd and hand back a report through a queue and a wake-up pipe.
Work that arrives together is done together: the files of one inotify wake-up are taken in
one batch, the audits started at once share a commit, the verdicts that came back meanwhile
are recorded in one transaction, and the releases due at once share their intent's commit
and their outcome's (`Store.batch`; a file never moves before its intent is committed).
Events are queued and sent once per turn of the loop (and before any reply to a request),
with the counts read once.
At start, after taking the store lock, recovery.py brings every unfinished item to a
consistent state, then every inbox is rescanned for files that arrived while it was down.

What the service audits and releases is its own copy of each file (see inbox.py); the
release checks the copy's digest against the audit's. Every way out of a desktop (its
downloads, its outbox, `send`) is held and judged under that desktop's downloads policy
(`machine.source_bound_policy`).

The compositor writes the policy file (`policy.policy_to_json(specs)`), starts this process
with `--policy-file PATH [--ready-fd N]` and supervises it; SIGHUP re-reads the policy file.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import heapq
import importlib.util
import logging
import os
import queue
import selectors
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from zionwm import paths
from zionwm.quarantine import recovery
from zionwm.quarantine.client import socket_path
from zionwm.quarantine.commands import Commands
from zionwm.quarantine.control import ControlSocket
from zionwm.quarantine.events import Events
from zionwm.quarantine.intake import Intake, inbox_specs
from zionwm.quarantine.jobs import (
    AuditResult,
    ConvertResult,
    audit_job,
)
from zionwm.quarantine.policy import (
    ServiceConfig,
    load_policy_file,
)
from zionwm.quarantine.releasing import Releases
from zionwm.quarantine.store import (
    Item,
    State,
    Store,
    StoreError,
)
from zionwm.quarantine.verdicts import Verdicts

log = logging.getLogger(__name__)

# A deleted inbox sends no inotify event while we hold its directory fd: look every so often.
_INBOX_CHECK = 2.0
AUDITS_PER_CPU = 4


# -- the service -----------------------------------------------------------------------------


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
        self.sel = selectors.DefaultSelector()
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="audit")
        from zionwm.quarantine.zygote import ZygotePool  # noqa: PLC0415 - service only

        # warm audit sandboxes, one per source desktop, accounted in its audit cgroup
        self.audits = ZygotePool(cgroups=lambda source: self.config.audit_cgroups.get(source, ()))
        self.rescans: dict[int, tuple[str, ...]] = {}  # held items due for a rescan: why
        self.workers = max(1, workers)
        self.results: queue.SimpleQueue[AuditResult | ConvertResult] = queue.SimpleQueue()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.queue: deque[int] = deque()  # received items waiting for a worker slot
        self.queued: set[int] = set()
        self.running_audits: set[int] = set()
        self.timers: list[tuple[float, int, str, int]] = []
        self._timer_seq = 0
        self.stopping = False
        self.reload_requested = False
        self.commands = Commands(self)
        self.verdicts = Verdicts(self)
        self.intake = Intake(self.store, self.schedule, self._on_taken, self._on_refused)
        self.control = ControlSocket(socket_path(), self.sel, self._handle)
        self.events = Events(self.control, self.store.counts)
        self.releases = Releases(self.store, self.schedule, self.events.emit)

    # -- set-up ------------------------------------------------------------------------------

    def start(self) -> None:
        if importlib.util.find_spec("zionwm.quarantine.worker") is None:
            log.error("the audit worker is not installed: every item will be kept unreleased")
        self.recover()
        self.intake.watch(inbox_specs(self.config))
        self.control.start()
        self.sel.register(self.intake.fileno(), selectors.EVENT_READ, "inotify")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.intake.scan_all()
        for item in self.store.list(frozenset({State.RECEIVED})):
            self.enqueue(item.id)
        for item in self.store.list(frozenset({State.HELD})):
            self.schedule(item.hold_until or 0.0, "release", item.id)
        self.schedule(time.time() + _INBOX_CHECK, "inbox-check", 0)
        self.pump()

    def reload(self) -> None:
        if self.policy_file is None:
            return
        try:
            config = load_policy_file(self.policy_file)
        except (OSError, ValueError, KeyError) as e:
            log.error("policy reload failed, keeping the previous policy: %s", e)
            return
        self.config = config
        for spec in self.intake.watch(inbox_specs(config)):
            self.intake.scan(spec)
        log.info("policy reloaded: %d inboxes", len(self.intake.inboxes.specs))

    def _on_taken(self, items: list[Item]) -> None:
        for item in items:
            self.emit("received", item)
            self.enqueue(item.id)
        # start them now while slots are free: a flood of arrivals read in batches must not
        # keep the audits waiting until the last of them is taken
        self.pump()

    def _on_refused(self, item: Item) -> None:
        self.emit("rejected", item)

    # -- recovery ----------------------------------------------------------------------------

    def unlink_content(self, item_id: int) -> None:
        recovery.unlink_content(self.store, item_id)

    def recover(self) -> None:
        recovery.recover(self.store)

    # -- the pipeline ------------------------------------------------------------------------

    def enqueue(self, item_id: int) -> None:
        if item_id not in self.queued and item_id not in self.running_audits:
            self.queue.append(item_id)
            self.queued.add(item_id)

    def dequeue(self, item_id: int) -> None:
        if item_id in self.queued:
            self.queue.remove(item_id)
            self.queued.discard(item_id)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a job in a worker thread; its result comes back through the loop."""
        self.pool.submit(fn, *args).add_done_callback(self.audit_done)

    def pump(self) -> None:
        """Start audits while worker slots are free (their start is one commit)."""
        starts: list[tuple[Item, int]] = []
        try:
            with self.store.batch():
                while self.queue and len(self.running_audits) < self.workers:
                    item_id = self.queue.popleft()
                    self.queued.discard(item_id)
                    started = self._start_one(item_id)
                    if started is not None:
                        starts.append(started)
                        self.running_audits.add(item_id)
        except BaseException:
            for item, fd in starts:
                os.close(fd)
                self.running_audits.discard(item.id)
            raise
        for item, fd in starts:
            fut = self.pool.submit(
                audit_job, item.id, fd, item.name, self.config.audit, self.audits, item.source
            )
            fut.add_done_callback(self.audit_done)

    def _start_one(self, item_id: int) -> tuple[Item, int] | None:
        try:
            item = self.store.get(item_id)
            rescan = self.rescans.pop(item_id, None)
            if rescan is not None and item.state is State.HELD:
                self._start_rescan(item, rescan)
                return None
            if item.state is not State.RECEIVED:
                return None
            fd = os.open(
                str(item_id),
                os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                dir_fd=self.store.items_fd,
            )
        except (OSError, StoreError) as e:
            log.error("item %d: cannot start its audit: %s", item_id, e)
            return None
        try:
            item = self.store.transition(item_id, State.AUDITING)
        except StoreError as e:
            os.close(fd)
            log.error("item %d: cannot start its audit: %s", item_id, e)
            return None
        return item, fd

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
            audit_job, item.id, fd, item.name, self.config.audit, self.audits, item.source, why
        )
        fut.add_done_callback(self.audit_done)

    def audit_done(self, fut: Any) -> None:
        # Runs in the worker thread: hand over to the loop, touch nothing else.
        if fut.cancelled():
            return  # shutting down: the item resumes as received at the next start
        self.results.put(fut.result())
        with contextlib.suppress(BlockingIOError):
            os.write(self.wake_w, b"a")

    def antivirus(self) -> str:
        return str(self.config.audit.get("antivirus", "required"))

    def finish_delete(self, item: Item) -> Item:
        return recovery.finish_delete(self.store, item)

    def release(
        self, item_id: int, forced: bool = False, fields: dict[str, Any] | None = None
    ) -> Item:
        return self.releases.release(item_id, forced, fields)

    # -- timers ------------------------------------------------------------------------------

    def schedule(self, when: float, what: str, item_id: int) -> None:
        self._timer_seq += 1
        heapq.heappush(self.timers, (when, self._timer_seq, what, item_id))

    def _run_timers(self) -> None:
        now = time.time()
        due: list[tuple[int, bool, dict[str, Any] | None]] = []
        try:
            self._pop_timers(now, due)
        finally:
            if due:
                self.releases.release_many(due)

    def _pop_timers(self, now: float, due: list[tuple[int, bool, dict[str, Any] | None]]) -> None:
        while self.timers and self.timers[0][0] <= now:
            _, _, what, item_id = heapq.heappop(self.timers)
            if what == "inbox-check":
                self.intake.check()
                self.audits.sweep()
                self.schedule(now + _INBOX_CHECK, "inbox-check", 0)
                continue
            if what == "refusals":
                self.intake.record_suppressed(now)
                continue
            if what == "settle":
                self.intake.settle()
                continue
            item = self.store.get(item_id)
            # Stale timers (rescanned, released by hand, re-held later) are dropped here.
            if (
                item.state is State.HELD
                and (item.hold_until or 0.0) <= now
                and self.verdicts.hold_ended(item)
            ):
                due.append((item.id, False, None))

    def _timeout(self) -> float | None:
        if not self.timers:
            return None
        return max(0.0, self.timers[0][0] - time.time())

    # -- events and control ------------------------------------------------------------------

    def emit(self, event: str, item: Item) -> None:
        self.events.emit(event, item)

    def _handle(self, req: dict[str, Any], conn: Any) -> dict[str, Any]:
        """A control request; the events it caused go out before its reply."""
        try:
            return self.commands.handle(req, conn)
        finally:
            self.events.flush()

    # -- the loop ----------------------------------------------------------------------------

    def _on_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wake_r, 4096):
                pass
        verdicts: list[AuditResult] = []
        try:
            while True:
                try:
                    res = self.results.get_nowait()
                except queue.Empty:
                    break
                if isinstance(res, ConvertResult):
                    self.commands.on_converted(res)
                elif res.rescan is not None:
                    # may release: never inside the batch (see releasing.py)
                    self.verdicts.on_audit_result(res)
                else:
                    verdicts.append(res)
        finally:
            if verdicts:
                self.verdicts.on_audit_results(verdicts)

    def run_once(self, timeout: float | None) -> None:
        t = self._timeout()
        if timeout is not None:
            t = timeout if t is None else min(t, timeout)
        for key, mask in self.sel.select(t):
            self._guard(self._dispatch, key, mask)
        self._guard(self._run_timers)
        self._guard(self.pump)
        if self.reload_requested:
            self.reload_requested = False
            self._guard(self.reload)
        self._guard(self.events.flush)

    def _dispatch(self, key: selectors.SelectorKey, mask: int) -> None:
        tag = key.data
        if tag == "listen":
            self.control.accept()
        elif tag == "inotify":
            self.intake.on_inotify()
        elif tag == "wake":
            self._on_wake()
        elif tag == "conn":
            assert isinstance(key.fileobj, socket.socket)
            self.control.on_conn(key.fileobj, mask)

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
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.audits.close()
        self._guard(self._on_wake)
        self._guard(self.events.flush)
        self.control.close_all()
        self.intake.close()
        self.sel.close()
        self.store.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        os.close(self._lock_fd)


# -- entry point -----------------------------------------------------------------------------


def default_workers(cpus: int | None = None) -> int:
    """How many audits to keep in flight: a few per CPU. An audit spends much of its time
    waiting (its child's fork and exit, clamd, the result's way back), so one per CPU
    leaves the CPUs idle between files; each is a fork of a warm sandbox, so more cost
    little memory."""
    return max(2, min(AUDITS_PER_CPU * (cpus or os.cpu_count() or 1), 16))


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
        default=default_workers(),
        help="audits in flight at once (default: %(default)s, a few per CPU)",
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


if __name__ == "__main__":
    raise SystemExit(main())
