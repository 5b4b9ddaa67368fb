"""What a quarantine item means, in words a person who is not a security expert understands.

Pure functions over an item's JSON (as the service sends it): which checks looked at the
file, which versions and how old their signatures were, why it was kept or released, and
whether it was scanned again when its hold ended. `zionctl quarantine show`, the
notifications and `zionctl status` print these lines.
"""

from __future__ import annotations

import time
from typing import Any

from zionwm.quarantine.engines import age_words

SCANNER_WORDS = {
    "magic": "file type check",
    "yara": "pattern rules (YARA)",
    "clamd": "antivirus (ClamAV)",
    "office": "Office macro check",
    "pdf": "PDF script check",
    "archive": "archive check",
}

VERDICT_WORDS = {
    "clean": "Nothing harmful was found, and an antivirus checked it.",
    "no-antivirus-scan": (
        "Nothing harmful was found by zionwm's own checks, but no antivirus looked at it."
    ),
    "cannot-inspect": (
        "It could not be checked completely (it is encrypted, damaged, too large, or a "
        "checker failed on it), so zionwm cannot say it is safe."
    ),
    "suspicious": "It contains something that is often used in attacks; it may be harmless.",
    "malicious": "It is very likely harmful.",
}


def verdict_words(verdict: str | None) -> str:
    return VERDICT_WORDS.get(verdict or "", "It has not been checked yet.")


def scanner_lines(report: dict[str, Any] | None, now: float | None = None) -> list[str]:
    """One line per check: what it is, its version, how old its signatures were."""
    if not report:
        return []
    engines = report.get("engines") or {}
    ran = list(report.get("scanners") or [])
    lines = []
    for scanner in [*ran, *(["clamd"] if "clamd" not in ran else [])]:
        info = engines.get(scanner) or {}
        what = SCANNER_WORDS.get(scanner, scanner)
        if scanner == "clamd" and scanner not in ran:
            lines.append(f"{what}: not run ({info.get('why') or 'no antivirus available'})")
            continue
        parts = [p for p in (info.get("version"),) if p]
        if scanner in ("clamd", "yara") and (info.get("signatures") or info.get("signatures_date")):
            kind = "signatures" if scanner == "clamd" else "rules"
            parts.append(f"{kind} {age_words(info.get('signatures_date'), now)}")
        lines.append(what + (f": {', '.join(parts)}" if parts else ""))
    return lines


def why_kept(item: dict[str, Any]) -> list[str]:
    """The findings that decided the verdict, worst first, in the scanners' own sentences."""
    report = item.get("report") or {}
    order = ["malicious", "suspicious", "cannot-inspect", "no-antivirus-scan"]
    findings = [f for f in report.get("findings", []) if f.get("verdict") in order]
    findings.sort(key=lambda f: order.index(f["verdict"]))
    return [f"{SCANNER_WORDS.get(f['scanner'], f['scanner'])}: {f['detail']}" for f in findings]


def rescan_lines(report: dict[str, Any] | None) -> list[str]:
    rescan = (report or {}).get("rescan")
    if not rescan:
        return []
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(rescan.get("at", 0)))
    return [
        f"scanned again at {when}, when its hold ended, because "
        + "; ".join(rescan.get("why") or ["the signatures changed"])
        + f" (before: {rescan.get('previous_verdict', '?')})"
    ]


def antivirus_summary(engines: dict[str, Any], mode: str, now: float | None = None) -> str:
    """`zionctl status`'s line about antivirus scanning."""
    av = engines.get("clamd") or {}
    if av.get("available"):
        age = age_words(av.get("signatures_date"), now)
        return f"active: {av.get('engine', 'clamd')} at {av.get('socket')}, signatures {age}"
    if mode == "off":
        return (
            'off (antivirus="off"): downloads are released after their hold, marked '
            "'no antivirus scan'"
        )
    then = (
        "downloads wait in quarantine until one is available"
        if mode == "required"
        else "downloads are released after their hold, marked 'no antivirus scan'"
    )
    return f"not active ({av.get('why', 'no clamd')}); {then}"
