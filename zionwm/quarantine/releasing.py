"""Releasing items in batches: the intents of the releases due at once (releasing, with the
first name each will try) share one commit before any file moves, their outcomes another
after (`Store.batch`). A release that fails is retried with a growing delay; content that
is not what was audited is kept. The loop, its timers and the events are the service's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from zionwm.quarantine import recovery
from zionwm.quarantine.machine import destination
from zionwm.quarantine.release import (
    ORIGIN_XATTRS,
    ContentChanged,
    audit_stamp,
    release_file,
    safe_name,
)
from zionwm.quarantine.report import AuditReport, Finding, Verdict
from zionwm.quarantine.store import Item, State, Store, StoreError

log = logging.getLogger(__name__)

_RETRY_FIRST = 2.0
_RETRY_MAX = 60.0


class Releases:
    def __init__(
        self,
        store: Store,
        schedule: Callable[[float, str, int], None],
        emit: Callable[[str, Item], None],
    ) -> None:
        self.store = store
        self.schedule = schedule  # a timer of the loop: (when, what, item id)
        self.emit = emit
        self.retry_delay: dict[int, float] = {}

    def release(
        self, item_id: int, forced: bool = False, fields: dict[str, Any] | None = None
    ) -> Item:
        """Release one item (refused with StoreError if its state does not allow it)."""
        return self.release_many([(item_id, forced, fields)], strict=True)[0]

    def release_many(
        self, requests: list[tuple[int, bool, dict[str, Any] | None]], strict: bool = False
    ) -> list[Item]:
        """Release several items: their intents (releasing, with the first name each will
        try) in one commit before any file moves, their outcomes in one commit after.
        `strict`: a refused transition raises instead of being logged and skipped."""
        if self.store.in_batch:
            # the intents would not be committed before the files move
            raise RuntimeError("a release cannot join an open batch of the store")
        started: list[Item] = []
        seen: set[int] = set()
        with self.store.batch():
            for item_id, forced, fields in requests:
                if item_id in seen:  # two timers of one item due at once
                    continue
                seen.add(item_id)
                try:
                    item = self.store.get(item_id)
                    try:
                        first: str | None = safe_name(item.name)
                    except (ValueError, UnicodeError):
                        first = None
                    started.append(
                        self.store.transition(
                            item_id,
                            State.RELEASING,
                            release_name=first,
                            forced=forced or item.forced,
                            **(fields or {}),
                        )
                    )
                except StoreError as e:
                    if strict:
                        raise
                    log.error("item %d: cannot release it: %s", item_id, e)
        moved: list[tuple[Item, str]] = []
        out: list[Item] = []
        for item in started:
            try:
                final = self._move_out(item)
            except OSError as e:
                out.append(self._release_failed(item, e))
                continue
            except Exception:
                log.exception("item %d: its release failed", item.id)
                continue
            if isinstance(final, Item):
                out.append(final)  # kept: the content changed after its audit
            else:
                moved.append((item, final))
        now = time.time()
        with self.store.batch():
            for releasing, final in moved:
                self.retry_delay.pop(releasing.id, None)
                item = self.store.transition(
                    releasing.id,
                    State.RELEASED,
                    release_name=final,
                    released_at=now,
                    content=False,
                )
                log.info("item %d released to %s as %r", item.id, item.dest, final)
                self.emit("released", item)
                out.append(item)
        return out

    def _move_out(self, item: Item) -> str | Item:
        """Move one releasing item's content to its destination: its final name, or the
        item kept because its content is not what was audited. Raises OSError."""
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
        recorded = item.release_name

        def on_attempt(cand: str) -> None:
            # the first name's intent was committed with the releasing state
            if cand != recorded:
                self.store.set_release_name(item.id, cand)

        try:
            return release_file(
                self.store.items_fd,
                src_name=str(item.id),
                dest=destination(item),
                name=item.name,
                stamp=stamp,
                on_attempt=on_attempt,
                expect_sha256=item.sha256,
            )
        except ContentChanged as e:
            return self._changed_after_audit(item, str(e))

    def _release_failed(self, item: Item, e: OSError) -> Item:
        item = self.store.get(item.id)
        if recovery.at_destination(item):
            # it did land: only the store's name was left
            recovery.unlink_content(self.store, item.id)
            self.retry_delay.pop(item.id, None)
            item = self.store.transition(
                item.id,
                State.RELEASED,
                release_name=item.release_name or item.name,
                released_at=time.time(),
                content=False,
            )
            log.info("item %d released to %s as %r", item.id, item.dest, item.release_name)
            self.emit("released", item)
            return item
        delay = min(self.retry_delay.get(item.id, _RETRY_FIRST / 2) * 2, _RETRY_MAX)
        self.retry_delay[item.id] = delay
        log.warning("item %d: release failed (%s); retrying in %.0f s", item.id, e, delay)
        item = self.store.transition(item.id, State.HELD, reason=f"release failed: {e}")
        self.schedule(time.time() + delay, "release", item.id)
        self.emit("release-failed", item)
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
        self.emit("rejected", item)
        return item
