"""The verdicts of the quarantine service: the audits that came back together are recorded
in one transaction (`Store.batch`), and what follows from them (holds, deletions, safe
copies) after it; a rescan at the end of a hold keeps or releases its item; the end of a
hold decides between a rescan, a wait for an antivirus and the release. What each outcome
means is decided by the pure state machine in machine.py; this module applies it through
the small `Pipeline` interface below (the service's store, timers, events and releases).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Protocol

from zionwm.isolation.spec import DownloadsPolicy
from zionwm.quarantine.commands import Commands
from zionwm.quarantine.engines import changes
from zionwm.quarantine.jobs import AuditResult, effective_audit, engines_now
from zionwm.quarantine.machine import (
    SAFE_COPY,
    Decision,
    HoldEnd,
    RescanOutcome,
    after_audit,
    after_rescan,
    at_hold_end,
    source_bound_policy,
)
from zionwm.quarantine.policy import ServiceConfig
from zionwm.quarantine.report import Verdict
from zionwm.quarantine.store import Item, Kind, State, Store

log = logging.getLogger(__name__)

# How often an item that waits for an antivirus (antivirus="required") looks for one.
_AV_WAIT = 30.0


class Pipeline(Protocol):
    """What the verdicts need of the service."""

    store: Store
    config: ServiceConfig
    commands: Commands
    running_audits: set[int]  # items whose audit is in flight
    rescans: dict[int, tuple[str, ...]]  # held items due for a rescan: why

    def antivirus(self) -> str: ...
    def emit(self, event: str, item: Item) -> None: ...
    def enqueue(self, item_id: int) -> None: ...
    def schedule(self, when: float, what: str, item_id: int) -> None: ...
    def release(
        self, item_id: int, forced: bool = False, fields: dict[str, Any] | None = None
    ) -> Item: ...
    def unlink_content(self, item_id: int) -> None: ...
    def finish_delete(self, item: Item) -> Item: ...


class Verdicts:
    def __init__(self, svc: Pipeline) -> None:
        self.svc = svc

    def _policy_for(self, item: Item) -> DownloadsPolicy:
        own = self.svc.config.downloads.get(item.source)
        if item.kind is Kind.OUTBOX:
            return source_bound_policy(self.svc.config.outbox, own)
        if item.kind is Kind.SEND:
            return source_bound_policy(self.svc.config.send, own)
        policy = own
        if policy is None:  # the desktop lost its downloads policy: strictest defaults
            return DownloadsPolicy(release_to=item.dest)
        return policy

    def hold_ended(self, item: Item) -> bool:
        """At the end of a hold: scan again if the signatures or rules changed since the
        audit; wait for an antivirus if one is required; otherwise release (True: the
        caller releases it, with the others due at the same time)."""
        audit = effective_audit(self.svc.config.audit)
        # at most a second old: asking clamd and hashing the rules for every release of a
        # flood would make the releases the slowest stage
        now_engines = engines_now(audit)
        av = now_engines["clamd"]
        why = changes(item.report.engines if item.report else None, now_engines)
        step = at_hold_end(
            item.verdict,
            self.svc.antivirus(),
            bool(av.get("available")),
            why,
            item.id in self.svc.running_audits,
        )
        if step is HoldEnd.WAIT_FOR_ANTIVIRUS:
            log.info("item %d waits for an antivirus scan (%s)", item.id, av.get("why"))
            self.svc.schedule(time.time() + _AV_WAIT, "release", item.id)
        elif step is HoldEnd.RESCAN:
            self.svc.rescans[item.id] = tuple(why)
            self.svc.enqueue(item.id)
        return step is HoldEnd.RELEASE

    def _on_rescan_result(self, item: Item, res: AuditResult) -> None:
        assert res.rescan is not None and item.report is not None
        old = item.verdict or Verdict.CANNOT_INSPECT
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
        step = after_rescan(
            item.verdict,
            res.report.verdict,
            res.sha256 == item.sha256,
            self._policy_for(item),
            self.svc.antivirus(),
            res.rescan,
            time.time(),
        )
        if step.outcome is RescanOutcome.CHANGED_IN_STORE:
            # the stored bytes are not the audited bytes: never release them
            self.svc.store.transition(
                item.id, State.REJECTED, content=True, report=report, reason=step.reason
            )
        elif step.outcome is RescanOutcome.WAIT_FOR_ANTIVIRUS:
            log.info("item %d: rescan found no antivirus; it keeps waiting", item.id)
            self.svc.schedule(time.time() + _AV_WAIT, "release", item.id)
        elif step.outcome is RescanOutcome.KEEP:
            item = self.svc.store.transition(
                item.id,
                State.REJECTED,
                content=True,
                verdict=step.verdict,
                report=report,
                reason=step.reason,
            )
            log.info("item %d kept after its rescan: %s -> %s", item.id, old.value, step.verdict)
            self.svc.emit("rejected", item)
        else:
            self.svc.release(item.id, fields={"verdict": step.verdict, "report": report})

    def on_audit_results(self, results: list[AuditResult]) -> None:
        """Record the verdicts that came back together, in one transaction; what follows
        from them (deletions, safe copies, releases) after it."""
        after: list[tuple[Item, Decision]] = []
        with self.svc.store.batch():
            for res in results:
                try:
                    done = self.on_audit_result(res)
                except Exception:  # one item's error must not undo the others' verdicts
                    log.exception("item %d: its verdict could not be recorded", res.item_id)
                    continue
                if done is not None:
                    after.append(done)
        for item, decision in after:
            if decision.state is State.HELD:
                self.svc.emit("held", item)
                self.svc.schedule(decision.hold_until or 0.0, "release", item.id)
            elif decision.delete_content:
                # the intent (deleting) is committed: the content goes now
                self.svc.unlink_content(item.id)
                self.svc.emit("rejected", self.svc.finish_delete(item))
            else:
                self.svc.emit("rejected", item)
                self._safe_copy_if_asked(item)
            log.info(
                "item %d %r: %s -> %s",
                item.id,
                item.name,
                item.verdict.value if item.verdict else "-",
                item.state.value,
            )

    def on_audit_result(self, res: AuditResult) -> tuple[Item, Decision] | None:
        self.svc.running_audits.discard(res.item_id)
        item = self.svc.store.get(res.item_id)
        if res.rescan is not None:
            if item.state is State.HELD:
                self._on_rescan_result(item, res)
            return None
        if item.state is not State.AUDITING:
            log.warning("item %d changed to %s during its audit", item.id, item.state.value)
            return None
        verdict = res.report.verdict
        decision = after_audit(
            verdict, self._policy_for(item), time.time(), self.svc.antivirus(), item.reason
        )
        fields: dict[str, Any] = {
            "sha256": res.sha256,
            "size": res.size,
            "verdict": verdict,
            "report": res.report,
            "reason": decision.reason,
        }
        if decision.state is State.HELD:
            item = self.svc.store.transition(
                item.id, State.HELD, hold_until=decision.hold_until, **fields
            )
        elif decision.delete_content:
            item = self.svc.store.transition(
                item.id, State.DELETING, then_state="rejected", **fields
            )
        else:
            item = self.svc.store.transition(item.id, State.REJECTED, content=True, **fields)
        return item, decision

    def _safe_copy_if_asked(self, item: Item) -> None:
        """A kept PDF or image from a desktop whose policy asks for it gets a safe copy."""
        if item.kind is not Kind.DOWNLOAD or (item.reason or "").startswith(SAFE_COPY):
            return
        policy = self.svc.config.downloads.get(item.source)
        if policy is None or not policy.safe_copy:
            return
        reply = self.svc.commands.convert(item.id)
        if not reply["ok"]:
            log.info("item %d: no safe copy: %s", item.id, reply["error"])
