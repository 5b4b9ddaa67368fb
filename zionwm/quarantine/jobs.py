"""The service's audit and conversion jobs: what runs in its worker threads.

A job gets an open fd of a stored file and hands back a plain result (the loop applies it):
`audit_job` hashes the file, settles which audit settings and engines are in force
(`effective_audit`, `engines_now`), audits it in a fresh child of a warm sandbox
(`zygote.ZygotePool`) and records what looked at it (`with_engines`); `convert_job` makes a
safe copy (convert.py). Jobs never raise: a failure is a cannot-inspect report or an error.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from zionwm.quarantine.audit.common import AuditSettings
from zionwm.quarantine.engines import engine_state, resolve_clamd_socket
from zionwm.quarantine.report import AuditReport, Finding, Verdict
from zionwm.quarantine.zygote import flavor_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditResult:
    item_id: int
    sha256: str
    size: int
    report: AuditReport
    rescan: tuple[str, ...] | None = None  # why it was scanned again at the end of its hold


def _failed(detail: str) -> AuditReport:
    return AuditReport(
        findings=(Finding("worker", "audit-failed", detail, Verdict.CANNOT_INSPECT),)
    )


def effective_audit(audit: dict[str, Any]) -> dict[str, Any]:
    """The audit settings in force now: a clamd at the usual place is used unconfigured."""
    out = dict(audit)
    out["clamd_socket"] = resolve_clamd_socket(
        audit.get("clamd_socket"), str(audit.get("antivirus", "required"))
    )
    return out


_ENGINES_TTL = 1.0  # asking clamd and hashing the rules for every file would cost more than
_engines_cache: dict[str, tuple[float, dict[str, Any]]] = {}  # the audit itself
_engines_lock = threading.Lock()


def engines_now(audit: dict[str, Any], fresh: bool = False) -> dict[str, Any]:
    """Antivirus and rule state, at most `_ENGINES_TTL` old (`fresh`: asked now). The
    engines' own answer, not the files: a reload of clamd's database counts from when
    clamd says it has it."""
    off = audit.get("antivirus") == "off"
    key = json.dumps(
        [
            audit.get("clamd_socket"),
            audit.get("clamd_database_dir"),
            audit.get("yara_rule_dirs"),
            off,
        ]
    )
    now = time.monotonic()
    with _engines_lock:
        hit = _engines_cache.get(key)
        if hit is not None and not fresh and now - hit[0] < _ENGINES_TTL:
            return hit[1]
        state = engine_state(
            audit.get("clamd_socket"),
            audit.get("clamd_database_dir"),
            tuple(str(d) for d in audit.get("yara_rule_dirs", ())),
            off,
        )
        _engines_cache[key] = (now, state)
        return state


def with_engines(
    report: AuditReport, engines: dict[str, Any], versions: dict[str, Any]
) -> AuditReport:
    """The report with what looked at the file, and an honest word when no antivirus did."""
    av = engines.get("clamd") or {}
    recorded: dict[str, Any] = {
        s: {"version": v} for s, v in versions.items() if s in ("magic", "office", "pdf")
    }
    recorded["yara"] = {"version": versions.get("yara"), **(engines.get("yara") or {})}
    recorded["clamd"] = {**av, "version": av.get("engine")}
    recorded["checked_at"] = engines.get("checked_at")
    if versions.get("native"):
        recorded["native"] = True  # judged by a child of the native audit zygote
    findings = report.findings
    if not av.get("available") and "clamd" not in report.scanners:
        findings += (
            Finding(
                "clamd",
                "no-antivirus",
                f"No antivirus looked at this file: {av.get('why', 'no clamd')}.",
                Verdict.NO_ANTIVIRUS,
            ),
        )
    return AuditReport(findings, report.scanners, report.durations, recorded, report.rescan)


def audit_job(
    item_id: int,
    fd: int,
    name: str,
    audit: dict[str, Any],
    pool: Any,
    source: str = "",
    rescan: tuple[str, ...] | None = None,
) -> AuditResult:
    """Hash and audit one stored file. Never raises: a failure is a cannot-inspect report."""
    import hashlib  # noqa: PLC0415 - OpenSSL (3 MiB) loaded when first hashing

    digest = hashlib.sha256()
    offset = 0
    head = b""
    try:
        while chunk := os.pread(fd, 1 << 20, offset):
            digest.update(chunk)
            if not offset:
                head = chunk[:8192]
            offset += len(chunk)
        configured = audit.get("clamd_socket")  # None: look at the usual place
        audit = effective_audit(audit)
        engines = engines_now(audit)
        if not configured and not engines["clamd"]["available"]:
            # a socket at the usual place that does not answer: as good as none (a
            # configured one that does not answer is the clamd scanner's cannot-inspect)
            audit["clamd_socket"] = None
        settings = AuditSettings.from_json(audit)
        report = pool.audit(
            fd, name, settings, source, engines["yara"]["signatures"], flavor_for(head)
        )
        versions = {**pool.versions(), **report.engines.get("versions", {})}
        report = with_engines(report, engines, versions)
    except Exception as e:
        log.exception("audit of item %d failed", item_id)
        report = _failed(f"the audit failed: {type(e).__name__}: {e}")
    finally:
        os.close(fd)
    return AuditResult(item_id, digest.hexdigest(), offset, report, rescan)


@dataclass(frozen=True)
class ConvertResult:
    item_id: int
    pdf: bytes | None
    pages: int = 0
    seconds: float = 0.0
    error: str | None = None


def convert_job(item_id: int, fd: int) -> ConvertResult:
    """Make a safe copy of one stored file in two sandboxes. Never raises."""
    from zionwm.quarantine.convert import ConvertError, convert  # noqa: PLC0415

    try:
        done = convert(fd)
        return ConvertResult(item_id, done.pdf, done.pages, done.seconds)
    except (ConvertError, OSError, ValueError) as e:
        return ConvertResult(item_id, None, error=str(e))
    finally:
        os.close(fd)
