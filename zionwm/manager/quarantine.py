"""Quarantine items as the manager shows them: what each one is, how long it is still held,
and whether releasing it needs a second, explicit confirmation. Pure."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from zionwm.manager.models import human_size

# What the service calls a state, in the user's words: a rejected item whose content is
# still there is kept for the user to decide.
STATE_WORDS = {
    "taking": "arriving",
    "received": "waiting for the audit",
    "auditing": "being audited",
    "held": "held",
    "releasing": "being released",
    "rejected": "kept, not released",
}


@dataclass(frozen=True)
class QItem:
    id: int
    name: str
    state: str
    verdict: str | None
    source: str
    dest: str
    size: int | None
    origin_url: str | None
    hold_until: float | None
    findings: tuple[str, ...]
    reason: str | None

    @classmethod
    def from_json(cls, it: dict[str, Any]) -> QItem:
        report = it.get("report") or {}
        findings = tuple(
            f"[{f.get('verdict')}] {f.get('scanner')}/{f.get('rule')}: {f.get('detail')}"
            for f in report.get("findings", [])
        )
        return cls(
            id=int(it["id"]),
            name=str(it.get("name", "")),
            state=str(it.get("state", "")),
            verdict=it.get("verdict"),
            source=str(it.get("source", "")),
            dest=str(it.get("dest", "")),
            size=it.get("size"),
            origin_url=it.get("origin_url"),
            hold_until=it.get("hold_until"),
            findings=findings,
            reason=it.get("reason"),
        )

    @property
    def clean(self) -> bool:
        return self.verdict == "clean"

    @property
    def needs_confirmation(self) -> bool:
        """Anything not audited clean is released only after a second, explicit yes."""
        return not self.clean

    def time_left(self, now: float | None = None) -> str:
        if self.state != "held" or not self.hold_until:
            return ""
        left = max(0, int(self.hold_until - (time.time() if now is None else now)))
        m, s = divmod(left, 60)
        return f"{m} min {s:02d} s left" if m else f"{s} s left"

    def subtitle(self, now: float | None = None) -> str:
        parts = [
            f"from {self.source}",
            f"to {self.dest}",
            human_size(self.size),
            self.verdict or "not audited yet",
            STATE_WORDS.get(self.state, self.state),
        ]
        left = self.time_left(now)
        if left:
            parts.append(left)
        return " · ".join(parts)
