"""The report a native audit child's facts stand for (pure).

The native child (`native/audit_zygote.c`) reads its file and runs libmagic, the bundled
YARA rules and clamd's INSTREAM over it, and sends back only what they said: libmagic's
MIME type and description, the runnable kind the head's bytes reveal (`head_kind`), the
rules that matched with their meta, and clamd's answer line. The verdicts are drawn here,
by the same functions the Python scanners use (`magic_type.classify_kind`,
`yara_scan.verdict_of`, `clamd.interpret`), so both paths judge a file alike. Every fact
comes from a process that read hostile bytes: anything malformed is "worker-garbage",
cannot-inspect, never clean.

The child only serves files no Python-only scanner looks at (the head is not an Office
document, a PDF or an archive: `zygote.flavor_for` says LIGHT, and the child checks the
same itself); for those the office, pdf and archive scanners return nothing, so they count
as run. A child that finds the head needs them answers `{"python": true}` and the file is
audited by the Python zygote instead.
"""

from __future__ import annotations

from typing import Any

from zionwm.quarantine.audit import clamd, magic_type
from zionwm.quarantine.audit.common import AuditSettings
from zionwm.quarantine.report import AuditReport, Finding, Verdict

# the scanners whose verdicts the native child's facts give; the others return nothing
# for the files it is given (see the docstring)
NATIVE_SCANNERS = ("magic", "yara", "clamd")
NOTHING_TO_SEE = ("office", "pdf", "archive")
HEAD_KINDS = frozenset({"elf", "appimage", "script", "pe", "macho", "desktop"})  # head_kind's


class Garbage(ValueError):
    """The facts are not what a native child writes."""


def _text(d: dict[str, Any], key: str, limit: int = 4096) -> str | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Garbage(f"{key} is not text")
    return value[:limit]


def needs_python(facts: dict[str, Any]) -> bool:
    return facts.get("python") is True


def report_from_facts(
    facts: dict[str, Any], name: str, mode: int | None, settings: AuditSettings
) -> AuditReport:
    """The findings for one file from its native child's facts; raises `Garbage`."""
    if not isinstance(facts, dict):
        raise Garbage("not a JSON object")
    findings: list[Finding] = []
    ran: list[str] = []
    mime, description = _text(facts, "mime"), _text(facts, "description")
    if mime is None or description is None:
        why = _text(facts, "magic_error") or "no answer"
        findings.append(_scanner_failed("magic", f"libmagic failed: {why}"))
    else:
        byte_kind = _text(facts, "head_kind", 32)
        if byte_kind is not None and byte_kind not in HEAD_KINDS:
            raise Garbage(f"unknown kind {byte_kind!r}")
        kind = magic_type.kind_from(byte_kind, description)
        findings += magic_type.classify_kind(kind, name, mode, mime, description)
        ran.append("magic")

    matches = facts.get("yara")
    if not isinstance(matches, list):
        raise Garbage("no list of YARA matches")
    yara_error = _text(facts, "yara_error")
    if yara_error is not None:
        findings.append(_scanner_failed("yara", f"YARA failed: {yara_error}"))
    else:
        from zionwm.quarantine.audit.yara_scan import verdict_of  # noqa: PLC0415

        for m in matches[:1000]:
            if not isinstance(m, dict):
                raise Garbage("a YARA match is not an object")
            rule = _text(m, "rule", 128)
            if not rule:
                raise Garbage("a YARA match without a rule")
            meta = {k: v for k in ("description", "verdict") if (v := _text(m, k)) is not None}
            described = meta.get("description", "matched")
            findings.append(
                Finding("yara", rule, f"{name!r}: {described} (bundled)", verdict_of(meta))
            )
        ran.append("yara")

    if settings.clamd_socket is not None:
        reply, error = _text(facts, "clamd"), _text(facts, "clamd_error", 500)
        if reply is not None:
            findings += clamd.interpret(reply.strip(), name)
            ran.append("clamd")
        else:
            why = error or "the audit child did not ask clamd"
            findings.append(Finding("clamd", "clamd-unavailable", why, Verdict.CANNOT_INSPECT))
            ran.append("clamd")  # as the Python scanner: it ran, and could not reach clamd
    ran += NOTHING_TO_SEE

    durations: dict[str, float] = {}
    raw = facts.get("durations")
    if isinstance(raw, dict):
        for k, v in raw.items():
            if k in NATIVE_SCANNERS and isinstance(v, int | float):
                durations[k] = float(v)
    return AuditReport(tuple(findings), tuple(ran), durations)


def _scanner_failed(scanner: str, detail: str) -> Finding:
    return Finding(scanner, "scanner-failed", detail[:500], Verdict.CANNOT_INSPECT)
