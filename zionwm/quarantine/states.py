"""An item's states and the names others use without the store: no sqlite3 here, so the
compositor (the indicator's pending count, the policy it writes) imports only this."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    TAKING = "taking"  # intent: a copy of an inbox file is being placed as items/<id>
    RECEIVED = "received"  # content in items/, waiting for the audit
    AUDITING = "auditing"
    HELD = "held"  # audited and allowed; released when hold_until passes
    RELEASING = "releasing"  # intent: content is being moved to its destination
    RELEASED = "released"
    REJECTED = "rejected"  # not released: a verdict, a hostile entry, or a failure
    DELETING = "deleting"  # intent: the user deletes the content
    DELETED = "deleted"


# Items in these states still move through the pipeline: the indicator's pending count.
PENDING_STATES = frozenset(
    {State.TAKING, State.RECEIVED, State.AUDITING, State.HELD, State.RELEASING}
)

SHARED_DEST = "@shared"  # `dest` of outbox items: the host's Shared directory
