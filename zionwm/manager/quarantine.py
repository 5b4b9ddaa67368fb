"""Quarantine items as the manager shows them: what each one is, how long it is still held,
and whether releasing it needs a second, explicit confirmation. Pure."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from zionwm.cli_table import size_text
from zionwm.quarantine.explain import verdict_words

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

# A verdict in a few words, for the line under the item's name and the question asked before
# releasing it: "no-antivirus-scan" is the service's word, not the user's.
VERDICT_SHORT = {
    "clean": "clean",
    "no-antivirus-scan": "not scanned by an antivirus",
    "cannot-inspect": "could not be checked",
    "suspicious": "suspicious",
    "malicious": "malicious",
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

    @property
    def verdict_short(self) -> str:
        if self.verdict is None:
            return "not audited yet"
        return VERDICT_SHORT.get(self.verdict, self.verdict)

    @property
    def meaning(self) -> str:
        """The verdict in a sentence; for a file no antivirus looked at, it says so."""
        return verdict_words(self.verdict)

    def release_question(self) -> tuple[str, str]:
        """The heading and body of the second confirmation a not-clean item's release asks."""
        if self.verdict == "no-antivirus-scan":
            heading = f"Release {self.name} without an antivirus scan?"
        else:
            heading = f"Release {self.name} although it is {self.verdict_short}?"
        body = (
            f"{self.meaning} Release it only if you know where it comes from. "
            f"It goes to {self.dest}."
        )
        return heading, body

    def time_left(self, now: float | None = None) -> str:
        if self.state != "held" or not self.hold_until:
            return ""
        left = max(0, int(self.hold_until - (time.time() if now is None else now)))
        if not left and self.verdict == "no-antivirus-scan":
            # still held after its hold: antivirus="required" keeps it until one scans it
            return "waits for an antivirus scan"
        m, s = divmod(left, 60)
        return f"{m} min {s:02d} s left" if m else f"{s} s left"

    def subtitle(self, now: float | None = None) -> str:
        parts = [
            f"from {self.source}",
            f"to {self.dest}",
            size_text(self.size),
            self.verdict_short,
            STATE_WORDS.get(self.state, self.state),
        ]
        left = self.time_left(now)
        if left:
            parts.append(left)
        return " · ".join(parts)
