"""The quarantine's scanners, one module each, and the order the worker runs them in.

Each module has `SCANNER` (its name in reports) and
`scan(src: Source, name: str, settings: AuditSettings | None) -> list[Finding]`, where `src`
is an open fd, a path or bytes. Importing this package loads libmagic, yara and oletools:
only the sandboxed worker (and tests, benchmarks) should.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from zionwm.quarantine.audit import archive, clamd, magic_type, office, pdf, yara_scan
from zionwm.quarantine.audit.common import Source
from zionwm.quarantine.report import Finding

if TYPE_CHECKING:
    from zionwm.quarantine.worker import AuditSettings

ScanFunction = Callable[[Source, str, "AuditSettings | None"], list[Finding]]

# Cheap, decisive scanners first; archive last, it re-runs the others on members.
SCANNERS: tuple[tuple[str, ScanFunction], ...] = (
    (magic_type.SCANNER, magic_type.scan),
    (yara_scan.SCANNER, yara_scan.scan),
    (clamd.SCANNER, clamd.scan),
    (office.SCANNER, office.scan),
    (pdf.SCANNER, pdf.scan),
    (archive.SCANNER, archive.scan),
)

__all__ = ["SCANNERS", "ScanFunction", "Source"]
