"""The pure statistics and the small helpers every benchmark script shares.

Light on purpose (standard library only): the subsystem benchmarks import it without the
Wayland clients and compositor sessions of `benchmarks.common`, which re-exports it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolating linearly between closest ranks (the
    'linear' method of numpy and of statistics.quantiles(method='inclusive'))."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(samples: Sequence[float], digits: int = 3) -> dict[str, float | int]:
    """n, median, p95, p99, min, max and mean of `samples` (in their own unit)."""
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "median": round(percentile(samples, 50), digits),
        "p95": round(percentile(samples, 95), digits),
        "p99": round(percentile(samples, 99), digits),
        "min": round(min(samples), digits),
        "max": round(max(samples), digits),
        "mean": round(sum(samples) / len(samples), digits),
    }


def ratio(value: float | None, peer: float | None, digits: int = 2) -> float | None:
    """value / peer, or None when either is missing or the peer is not positive."""
    if value is None or peer is None or peer <= 0:
        return None
    return round(value / peer, digits)


def cpu_percent(cpu_seconds: float, wall_seconds: float) -> float:
    """CPU time as a percentage of one CPU over the wall time."""
    if wall_seconds <= 0:
        raise ValueError("wall time must be positive")
    return 100.0 * cpu_seconds / wall_seconds


def parse_stat_ticks(stat: str) -> int:
    """utime + stime (clock ticks) from the text of /proc/PID/stat. The command name may
    contain spaces and parentheses, so fields are counted after its last ')'."""
    rest = stat[stat.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15
    return int(rest[11]) + int(rest[12])


def parse_kib(text: str, key: str) -> int | None:
    """The value of a `Key:   N kB` line (/proc/PID/status, smaps_rollup), in KiB."""
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def budget_check(value: float | None, limit: float) -> str:
    """'pass' / 'miss' / 'n/a' for a budget line whose figure must be at most `limit`."""
    if value is None:
        return "n/a"
    return "pass" if value <= limit else "miss"


def summarize_ms(samples_s: Sequence[float]) -> dict[str, float | int]:
    """Durations in seconds as the subsystem benchmarks report them: runs and milliseconds."""
    if not samples_s:
        return {"runs": 0}
    return {
        "runs": len(samples_s),
        "median_ms": round(percentile(samples_s, 50) * 1000, 2),
        "p95_ms": round(percentile(samples_s, 95) * 1000, 2),
        "min_ms": round(min(samples_s) * 1000, 2),
    }


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    """Wall time of `runs` calls of `fn`, in seconds, after one untimed warm-up call (page
    cache, compiled seccomp program, a desktop's first-start directories)."""
    fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def rss_kib_of(pid: int) -> int | None:
    """A process's resident memory in KiB, or None if it is gone."""
    try:
        return parse_kib(Path(f"/proc/{pid}/status").read_text(), "VmRSS")
    except OSError:
        return None


def emit_json(report: dict[str, Any], out: Path | None) -> None:
    """A benchmark's result: to `out` when given, else to stdout (what `benchmarks.run` reads)."""
    text = json.dumps(report, indent=2)
    if out is not None:
        out.write_text(text + "\n")
    else:
        print(text)
