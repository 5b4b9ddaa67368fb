"""The quarantine's inboxes, as I/O: watching each desktop's Downloads and Outbox with
inotify, taking complete files into the store (inbox.py's `take`), rescanning after an
overflow or a lost directory, and recording refused entries at a bounded rate per desktop.

The service owns the loop and the timers; it hands this a way to schedule ("refusals",
"settle") and what to do with the items taken together and with a refused item. Every file
an inotify wake-up (or a rescan) finds is taken in one batch (`inbox.TakeBatch`), at most
`BATCH_MAX` at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from zionwm import paths
from zionwm.quarantine.inbox import (
    EMPTY_SETTLE,
    InboxSpec,
    InboxWatcher,
    Outcome,
    RefusalLimiter,
    TakeBatch,
    TakeResult,
    is_partial_name,
)
from zionwm.quarantine.policy import ServiceConfig, window
from zionwm.quarantine.store import SHARED_DEST, Item, Kind, Store

log = logging.getLogger(__name__)

# Refused inbox entries recorded per desktop per window; the rest are summed up in one row.
REFUSALS_PER_WINDOW = 10
REFUSAL_WINDOW = 60.0
# Files copied before their batch is committed: bounds the open descriptors and how long the
# first file of a flood waits for its record.
BATCH_MAX = 128


def inbox_specs(config: ServiceConfig) -> list[InboxSpec]:
    """Every inbox the policy asks to watch: each downloads policy's inbox, every outbox."""
    specs = []
    for source in config.downloads:
        specs.append(
            InboxSpec(
                source,
                paths.desktop_inbox(source),
                Kind.DOWNLOAD,
                config.downloads[source].release_to,
                ("home", "Downloads"),
            )
        )
    for source in config.desktops:
        specs.append(
            InboxSpec(source, paths.desktop_outbox(source), Kind.OUTBOX, SHARED_DEST, ("shared",))
        )
    return specs


class Intake:
    def __init__(
        self,
        store: Store,
        schedule: Callable[[float, str, int], None],
        on_taken: Callable[[list[Item]], None],
        on_refused: Callable[[Item], None],
    ) -> None:
        self.store = store
        self.schedule = schedule
        self.on_taken = on_taken
        self.on_refused = on_refused
        self.inboxes = InboxWatcher()
        self.refusal_window = window(REFUSAL_WINDOW)
        self.refusals = RefusalLimiter(REFUSALS_PER_WINDOW, self.refusal_window)
        self.settle_pending = False
        self.batch = TakeBatch(store)
        self._batch_specs: list[InboxSpec] = []

    def fileno(self) -> int:
        return self.inboxes.fileno()

    def watch(self, specs: list[InboxSpec]) -> list[InboxSpec]:
        """Watch the inboxes of `specs` not watched yet; the ones added."""
        known = {(s.source, s.kind) for s in self.inboxes.specs}
        added = [spec for spec in specs if (spec.source, spec.kind) not in known]
        for spec in added:
            self.inboxes.add(spec)
        return added

    def scan_all(self) -> None:
        for spec in self.inboxes.specs:
            self.scan(spec)

    def settle(self) -> None:
        self.settle_pending = False
        self.scan_all()

    def check(self) -> None:
        """A deleted inbox sends no event while its directory fd is held: look."""
        self.rewatch(self.inboxes.gone())

    def scan(self, spec: InboxSpec) -> None:
        dir_fd = self.inboxes.dir_fds[spec]
        for name in self.inboxes.scan(spec):
            self.take(spec, dir_fd, name, False)
        self.commit()

    def take(self, spec: InboxSpec, dir_fd: int, name: str, from_create: bool) -> None:
        """Look at one entry; a complete file joins the batch (`commit` takes it)."""
        try:
            result = self.batch.add(spec, dir_fd, name, from_create, self.refusals)
        except OSError as e:
            log.warning("inbox %s: could not take %r: %s", spec.source, name, e)
            return
        if result is None:
            self._batch_specs.append(spec)
            if len(self.batch) >= BATCH_MAX:
                self.commit()
            return
        self._on_result(spec, result, [])

    def commit(self) -> None:
        """Take every file of the batch; hand the items over together."""
        if not len(self.batch):
            return
        specs, self._batch_specs = self._batch_specs, []
        try:
            results = self.batch.commit()
        except OSError as e:
            log.warning("inbox: could not take %d files: %s", len(specs), e)
            return
        taken: list[Item] = []
        for spec, result in zip(specs, results, strict=True):
            self._on_result(spec, result, taken)
        if taken:
            self.on_taken(taken)

    def _on_result(self, spec: InboxSpec, result: TakeResult, taken: list[Item]) -> None:
        if result.outcome is Outcome.REFUSED and result.item_id is None:
            # over the rate limit: summed up in one row when the desktop's window ends
            if self.refusals.suppressed.get(spec.source) == 1:
                self.schedule(self.refusals.window_end(spec.source), "refusals", 0)
            return
        if result.outcome is Outcome.SETTLING and not self.settle_pending:
            self.settle_pending = True
            self.schedule(time.time() + EMPTY_SETTLE + 0.05, "settle", 0)
        if result.item_id is None:
            return
        item = self.store.get(result.item_id)
        if result.outcome is Outcome.TAKEN:
            taken.append(item)
        elif result.outcome is Outcome.REFUSED:
            self.on_refused(item)

    def record_suppressed(self, now: float) -> None:
        for source, count in self.refusals.due(now):
            spec = next((s for s in self.inboxes.specs if s.source == source), None)
            reason = (
                f"{count} more refused entries (symbolic links, hard links or special files)"
                f" in {self.refusal_window:.0f} s: removed from the inbox without a record each"
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
            self.on_refused(self.store.get(item_id))

    def rewatch(self, lost: list[InboxSpec]) -> None:
        for spec in lost:
            # The directory was deleted or moved away (a desktop reset?): watch the path
            # again, recreating it, and take whatever is already there.
            log.warning("inbox %s (%s) went away: watching it again", spec.source, spec.kind)
            try:
                self.inboxes.add(spec)
            except OSError as e:
                log.error("inbox %s: cannot watch %s again: %s", spec.source, spec.path, e)
                continue
            self.scan(spec)

    def on_inotify(self) -> None:
        events, overflow, lost = self.inboxes.read()
        self.rewatch(lost)
        if overflow:
            log.warning("inotify queue overflowed: rescanning every inbox")
            for spec in self.inboxes.specs:
                self.scan(spec)
        rescan: set[InboxSpec] = set()
        for spec, name, from_create in events:
            if is_partial_name(name):
                # a partial download was renamed, finished or abandoned: placeholders and
                # empty files deferred while it ran may be due now
                rescan.add(spec)
                continue
            self.take(spec, self.inboxes.dir_fds[spec], name, from_create)
        self.commit()
        for spec in rescan:
            self.scan(spec)

    def close(self) -> None:
        self.batch.abandon()
        for source, count in self.refusals.suppressed.items():
            if count:
                log.warning(
                    "inbox %s: %d refused entries removed without a record since %.0f s ago",
                    source,
                    count,
                    time.time() - (self.refusals.window_end(source) - self.refusal_window),
                )
        self.inboxes.close()
