"""Audit cost: per-scanner time and sandboxed end-to-end throughput for 4 KiB and 1 MiB files,
and clamd's resident memory.

Usage:

    python -m benchmarks.audit [--reps 20] [--no-clamd] [--out FILE]

Per-scanner times come from `worker.audit_source` (the scanners in this process, as the
worker runs them). End to end is `worker.run_audit`: sandbox start, interpreter start,
imports, every scanner, JSON back; files/s and MB/s are per worker, one file at a time.
clamd is the one the tests use (Debian's clamd with a one-signature database built at
start), so its RSS is the daemon's floor, not what it needs with the full ClamAV database
(about 1 GB or more with main+daily). Results are JSON (stdout by default).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks.stats import emit_json, rss_kib_of
from zionwm.quarantine.audit.common import AuditSettings
from zionwm.quarantine.worker import audit_source, run_audit

SIZES = {"4KiB": 4 << 10, "1MiB": 1 << 20}
WORDS = ["the", "quarantine", "holds", "every", "download", "until", "its", "audit", "is", "clean"]


def _text(size: int) -> bytes:
    rng = random.Random(size)
    out = bytearray()
    while len(out) < size:
        out += (" ".join(rng.choices(WORDS, k=12)) + "\n").encode()
    return bytes(out[:size])


def _zip(size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(8):
            zf.writestr(f"doc/part{i}.txt", _text(size // 8))
    return buf.getvalue()


KINDS: dict[str, tuple[str, Callable[[int], bytes]]] = {
    "random": ("blob.bin", os.urandom),
    "text": ("notes.txt", _text),
    "zip": ("docs.zip", _zip),
}


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


def bench_file(path: Path, settings: AuditSettings, reps: int) -> dict[str, Any]:
    per_scanner: dict[str, list[float]] = {}
    for _ in range(reps):
        report = audit_source(str(path), path.name, settings)
        for scanner, seconds in report.durations.items():
            per_scanner.setdefault(scanner, []).append(seconds)
    end_to_end: list[float] = []
    verdict = ""
    for _ in range(max(3, reps // 4)):
        fd = os.open(path, os.O_RDONLY)
        try:
            t0 = time.perf_counter()
            verdict = run_audit(fd, path.name, settings).verdict.value
            end_to_end.append(time.perf_counter() - t0)
        finally:
            os.close(fd)
    e2e = statistics.median(end_to_end)
    size = path.stat().st_size
    return {
        "bytes": size,
        "verdict": verdict,
        "scanner_ms": {k: _median_ms(v) for k, v in per_scanner.items()},
        "scanners_total_ms": round(sum(_median_ms(v) for v in per_scanner.values()), 3),
        "sandboxed_ms": round(e2e * 1000, 1),
        "files_per_s": round(1 / e2e, 2),
        "mb_per_s": round(size / e2e / 1e6, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.audit")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--no-clamd", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "host": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "reps": args.reps,
        "files": {},
    }
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="zionwm-bench-")))
        settings = AuditSettings(timeout=60)
        clamd_pid = None
        if not args.no_clamd:
            from tests.system.clamd_fixture import missing_programs, running_clamd  # noqa: PLC0415

            if not missing_programs():
                c = stack.enter_context(running_clamd(work / "clamd", stream_max=64 << 20))
                clamd_pid = c.pid
                settings = AuditSettings(clamd_socket=c.socket_path, timeout=60)
                result["clamd_rss_kib_idle"] = rss_kib_of(c.pid)
            else:
                result["clamd"] = f"not run: {', '.join(missing_programs())} missing"
        for label, size in SIZES.items():
            for kind, (name, make) in KINDS.items():
                path = work / f"{label}-{name}"
                path.write_bytes(make(size))
                result["files"][f"{label}/{kind}"] = bench_file(path, settings, args.reps)
                print(f"{label}/{kind} done", file=sys.stderr)
        if clamd_pid is not None:
            result["clamd_rss_kib_after"] = rss_kib_of(clamd_pid)
    emit_json(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
