"""The audit report: what every scanner found about one file, and the resulting verdict.

Contract between the scanners (audit/), the sandboxed worker (worker.py) and the store.
Serialises to JSON so the worker can hand it back across the sandbox boundary.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    """What the audit concluded about a file (each finding implies one; the worst wins)."""

    CLEAN = "clean"
    # every scanner ran and found nothing, but no antivirus looked at it: never "clean"
    NO_ANTIVIRUS = "no-antivirus-scan"
    SUSPICIOUS = "suspicious"
    MALICIOUS = "malicious"
    CANNOT_INSPECT = "cannot-inspect"


_SEVERITY = {
    Verdict.CLEAN: 0,
    Verdict.NO_ANTIVIRUS: 1,
    Verdict.CANNOT_INSPECT: 2,
    Verdict.SUSPICIOUS: 3,
    Verdict.MALICIOUS: 4,
}


def severity(verdict: Verdict) -> int:
    """Order of verdicts from clean (0) to malicious: a rescan keeps an item whose verdict
    got worse."""
    return _SEVERITY[verdict]


@dataclass(frozen=True)
class Finding:
    scanner: str  # "magic", "yara", "clamd", "office", "pdf", "archive", "worker"
    rule: str  # short machine-readable id, e.g. "elf-named-as-pdf", "Eicar-Test-Signature"
    detail: str  # one sentence a person can read
    verdict: Verdict  # what this finding alone implies


@dataclass(frozen=True)
class AuditReport:
    findings: tuple[Finding, ...] = ()
    scanners: tuple[str, ...] = ()  # scanners that ran to completion
    durations: dict[str, float] = field(default_factory=dict)  # scanner -> seconds
    # what looked at the file: scanner -> {"version", "signatures", "signatures_date", ...}
    engines: dict[str, Any] = field(default_factory=dict)
    # set when the file was scanned again at the end of its hold: why, and what it was before
    rescan: dict[str, Any] | None = None

    @property
    def verdict(self) -> Verdict:
        """The worst verdict of any finding; clean only if every scanner ran and found nothing."""
        worst = Verdict.CLEAN
        for f in self.findings:
            if _SEVERITY[f.verdict] > _SEVERITY[worst]:
                worst = f.verdict
        return worst

    def to_json(self) -> dict[str, Any]:
        # by hand, not dataclasses.asdict: the store writes this at every transition, and
        # asdict's deep copy of `engines` was most of the service's own time per file
        return {
            "findings": [
                {
                    "scanner": f.scanner,
                    "rule": f.rule,
                    "detail": f.detail,
                    "verdict": f.verdict.value,
                }
                for f in self.findings
            ],
            "scanners": list(self.scanners),
            "durations": dict(self.durations),
            "engines": self.engines,
            "rescan": self.rescan,
            "verdict": self.verdict.value,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AuditReport:
        return cls(
            findings=tuple(
                Finding(f["scanner"], f["rule"], f["detail"], Verdict(f["verdict"]))
                for f in d.get("findings", ())
            ),
            scanners=tuple(d.get("scanners", ())),
            durations=dict(d.get("durations", {})),
            engines=dict(d.get("engines") or {}),
            rescan=dict(d["rescan"]) if d.get("rescan") else None,
        )


def hides_or_reorders(c: str) -> bool:
    """Characters a desktop could use to fake what trusted text shows: controls (C0, DEL,
    C1), format characters (bidirectional embeddings, overrides and isolates, direction
    marks, zero-width spaces and joiners, the BOM), private-use, surrogate and unassigned
    code points, and line/paragraph separators: every Unicode category C, plus Zl and Zp."""
    cat = unicodedata.category(c)
    return cat[0] == "C" or cat in ("Zl", "Zp")


def printable(text: str, limit: int = 300) -> str:
    """`text` (a name or URL a desktop chose) made safe to show in trusted UI and logs.

    Every character `hides_or_reorders` names is escaped (`\\xNN`, `\\uNNNN`), so a name
    cannot add a line to a notification, reorder or hide what is shown around it, or forge
    a log line; the result is cut at `limit` characters.
    """
    out = []
    for c in text:
        o = ord(c)
        if not hides_or_reorders(c):
            out.append(c)
        elif o < 0x100:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    shown = "".join(out)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
