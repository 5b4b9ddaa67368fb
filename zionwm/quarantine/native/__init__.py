"""The native audit zygote (`audit_zygote.c`): where its program is, and whether it is
built from the present source."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "audit_zygote.c"
PROGRAM = HERE / "audit-zygote"


def program() -> str | None:
    """The built program, or None if it is missing or older than its source (then the
    Python zygote audits every file: slower, same verdicts)."""
    try:
        if PROGRAM.stat().st_mtime_ns >= SOURCE.stat().st_mtime_ns:
            return str(PROGRAM)
    except OSError:
        pass
    return None
