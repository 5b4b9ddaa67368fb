"""The quarantine's scanners, one module each, and the order the worker runs them in.

Each module has `SCANNER` (its name in reports) and
`scan(src: Source, name: str, settings: AuditSettings | None) -> list[Finding]`, where `src`
is an open fd, a path or bytes. The scanner modules load libmagic, yara and oletools, so
they are imported only when `SCANNERS` is first asked for (by the sandboxed worker, tests and
benchmarks); `audit.common` (the settings and the readers) stays light for the service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zionwm.quarantine.audit.common import AuditSettings, Source
from zionwm.quarantine.report import Finding

ScanFunction = Callable[[Source, str, "AuditSettings | None"], list[Finding]]


def _scanners() -> tuple[tuple[str, ScanFunction], ...]:
    from zionwm.quarantine.audit import (  # noqa: PLC0415 - heavy: see the docstring
        archive,
        clamd,
        magic_type,
        office,
        pdf,
        yara_scan,
    )

    # Cheap, decisive scanners first; archive last, it re-runs the others on members.
    return (
        (magic_type.SCANNER, magic_type.scan),
        (yara_scan.SCANNER, yara_scan.scan),
        (clamd.SCANNER, clamd.scan),
        (office.SCANNER, office.scan),
        (pdf.SCANNER, pdf.scan),
        (archive.SCANNER, archive.scan),
    )


def __getattr__(name: str) -> Any:
    if name == "SCANNERS":
        scanners = _scanners()
        globals()["SCANNERS"] = scanners  # asked once; a plain attribute from then on
        return scanners
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SCANNERS", "AuditSettings", "ScanFunction", "Source"]
