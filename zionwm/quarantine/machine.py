"""The quarantine's state machine, pure: what happens to an item on each event.

The service (service.py) does the I/O (inotify, sockets, the store, moving files) and asks
these functions what an event means for an item: an audit's verdict under the desktop's
policy (`decide`, `after_audit`), the end of a hold (`at_hold_end`), the report of a scan
again at the end of a hold (`after_rescan`), a user's release (`release_refusal`). Each
takes plain values and returns a plain answer, so tests call them directly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from zionwm import paths
from zionwm.isolation.spec import DownloadsPolicy, VerdictAction
from zionwm.quarantine.release import Destination
from zionwm.quarantine.report import Verdict, severity
from zionwm.quarantine.store import SHARED_DEST, Item, State

SAFE_COPY = "safe copy of item"  # how a converted copy's record begins


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
        how = {
            "required": 'waits for an antivirus scan (antivirus="required")',
            "off": 'the antivirus is turned off (antivirus="off"); released after the hold',
        }.get(antivirus, 'released after the hold (antivirus="if-available")')
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


def after_audit(
    verdict: Verdict,
    policy: DownloadsPolicy,
    now: float,
    antivirus: str,
    prior_reason: str | None,
) -> Decision:
    """What an item in audit becomes when its report arrives: `decide`, with what the item
    is (a safe copy) kept at the head of its reason through the audit."""
    decision = decide(verdict, policy, now, antivirus)
    if prior_reason and prior_reason.startswith(SAFE_COPY):
        reason = "; ".join(r for r in (prior_reason, decision.reason) if r)
        return Decision(decision.state, decision.hold_until, decision.delete_content, reason)
    return decision


class HoldEnd(enum.Enum):
    WAIT_FOR_ANTIVIRUS = "wait-for-antivirus"  # look again later (antivirus="required")
    RESCAN = "rescan"  # signatures or rules changed since its audit: scan it again
    RESCAN_RUNNING = "rescan-running"  # its rescan is under way; its result decides
    RELEASE = "release"


def at_hold_end(
    verdict: Verdict | None,
    antivirus: str,
    antivirus_available: bool,
    changed: list[str],
    audit_running: bool,
) -> HoldEnd:
    """What the end of an item's hold means: wait for an antivirus when one is required and
    none looked; scan again when what could change its verdict changed (`changed`, from
    `engines.changes`); otherwise release."""
    if verdict is Verdict.NO_ANTIVIRUS and antivirus == "required" and not antivirus_available:
        return HoldEnd.WAIT_FOR_ANTIVIRUS
    if audit_running:
        return HoldEnd.RESCAN_RUNNING
    if changed:
        return HoldEnd.RESCAN
    return HoldEnd.RELEASE


class RescanOutcome(enum.Enum):
    CHANGED_IN_STORE = "changed-in-store"  # the stored bytes are not the audited ones: keep
    WAIT_FOR_ANTIVIRUS = "wait-for-antivirus"
    KEEP = "keep"  # the new verdict is worse and the policy keeps it
    RELEASE = "release"


@dataclass(frozen=True)
class RescanStep:
    outcome: RescanOutcome
    verdict: Verdict  # what the item's record says from now on
    reason: str | None = None


def after_rescan(
    old: Verdict | None,
    new: Verdict,
    same_content: bool,
    policy: DownloadsPolicy,
    antivirus: str,
    why: tuple[str, ...],
    now: float,
) -> RescanStep:
    """What the report of a scan again at the end of a hold means: a worse verdict the
    policy would not release keeps the item; otherwise it is released under the worse of
    the two verdicts (a rescan never makes a verdict better)."""
    old = old or Verdict.CANNOT_INSPECT
    if not same_content:
        return RescanStep(
            RescanOutcome.CHANGED_IN_STORE,
            old,
            "its content changed in quarantine since its audit",
        )
    if new is Verdict.NO_ANTIVIRUS and antivirus == "required":
        return RescanStep(RescanOutcome.WAIT_FOR_ANTIVIRUS, old)
    decision = decide(new, policy, now, antivirus)
    if severity(new) > severity(old) and decision.state is State.REJECTED:
        return RescanStep(
            RescanOutcome.KEEP,
            new,
            f"scanned again when its hold ended ({'; '.join(why)}): now {new.value}, "
            f"was {old.value}; kept in quarantine",
        )
    return RescanStep(RescanOutcome.RELEASE, new if severity(new) > severity(old) else old)
