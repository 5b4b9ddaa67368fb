"""Plain-text tables for the command-line tools (zionctl, its quarantine and template
commands) and the sizes and times in their cells: neutral, it imports nothing of zionwm,
so every layer's CLI may use it."""

from __future__ import annotations

from collections.abc import Sequence


def table(rows: Sequence[Sequence[str]]) -> str:
    """One line per row, the cells two spaces apart; every column but the last is padded to
    its widest cell, the last (often a free-form name) is printed as it is."""
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for r in rows:
        line = "  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]])
        lines.append(line if r[-1] else line.rstrip())
    return "\n".join(lines)


def size_text(n: float | None) -> str:
    """A byte count as people read it ("-" for none)."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def time_text(ts: float | None) -> str:
    """A time stamp as UTC date and time ("-" for none)."""
    if not ts:
        return "-"
    # imported here: the compositor uses this module's sizes, and datetime would stay in it
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
