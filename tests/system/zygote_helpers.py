"""What the tests of the warm audit sandboxes share (test_audit_zygote.py for the Python
zygotes, test_audit_native.py for the native one): auditing a file through a pool, the
files they audit, the processes under a zygote, and the checks both kinds must pass."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zionwm.quarantine.report import AuditReport, Verdict
from zionwm.quarantine.worker import AuditSettings
from zionwm.quarantine.zygote import ZygotePool, flavor_for


def audit(
    pool: ZygotePool,
    path: Path,
    settings: AuditSettings,
    source: str = "web",
    flavor: str | None = None,
) -> AuditReport:
    """Audit `path` through `pool`, in the sandbox the service would pick unless `flavor`."""
    if flavor is None:
        flavor = flavor_for(path.read_bytes()[:8192])  # as the service picks
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return pool.audit(fd, path.name, settings, source, flavor=flavor)
    finally:
        os.close(fd)


def notes(directory: Path) -> Path:
    """A small plain text file, clean."""
    path = directory / "notes.txt"
    path.write_bytes(b"meeting at noon\n")
    return path


def descendants(pid: int) -> list[int]:
    """Every process under `pid`, level by level (the deepest last)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop(0)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids = [int(c) for c in f.read().split()]
                out += kids
                todo += kids
        except OSError:
            continue
    return out


def assert_sandboxed(seen: dict[str, Any], hidden: Sequence[str], memory_max: int) -> None:
    """What a scanning child's probe must have seen: no network, none of `hidden`, its file
    read-only, nowhere to write, no identity or capability, seccomp, not dumpable, its
    memory limit, no descriptor beyond its own."""
    assert seen["net_ns"] != os.readlink("/proc/self/ns/net")
    assert seen["interfaces"] == ["lo"]
    assert "unreachable" in seen["network"].lower()
    assert seen["visible"] == dict.fromkeys(hidden, False)
    assert seen["fd_readable"] and not seen["fd_writable"]
    assert not seen["tmp_writable"]  # nowhere to leave anything for the next file
    assert seen["uid"] == 65534 and seen["cap_eff"] == "0000000000000000"
    assert seen["seccomp"] == 2
    assert seen["dumpable"] == 0  # siblings cannot read its memory, nor it theirs
    assert seen["rlimit_as"] == memory_max
    # stdin/out/err (/dev/null), its file, its result pipe, and the fd listing itself
    extra = set(seen["fds"]) - {0, 1, 2, seen["file_fd"], seen["result_fd"]}
    assert len(extra) <= 1, seen["fds"]
    assert seen["pid"] > 2  # a child of the zygote, in the sandbox's pid namespace


def assert_over_time_then_clean(pool: ZygotePool, directory: Path) -> None:
    """A file the child cannot finish in time is cannot-inspect; the next file is right."""
    big = directory / "big.txt"  # reading and matching 48 MiB takes far more than 50 ms
    with open(big, "wb") as f:
        f.write(b"lorem ipsum " * (4 << 20))
    text = notes(directory)
    report = audit(pool, big, AuditSettings(timeout=0.05))
    assert [f.rule for f in report.findings] == ["worker-timeout"], report.findings
    assert report.verdict is Verdict.CANNOT_INSPECT
    assert audit(pool, text, AuditSettings(timeout=30)).verdict is Verdict.CLEAN


def assert_only_the_big_file_crashed(
    batch: Sequence[Path], reports: Sequence[AuditReport], big: Path, elf: Path
) -> None:
    """A batch audited together: `big` crashed its child, `elf` is malicious, the rest
    clean (a crash costs only its own file)."""
    for path, report in zip(batch, reports, strict=True):
        if path is big:
            assert report.verdict is Verdict.CANNOT_INSPECT, report.findings
            assert [f.rule for f in report.findings] == ["worker-crashed"], report.findings
        elif path is elf:
            assert report.verdict is Verdict.MALICIOUS, report.findings
        else:
            assert report.verdict is Verdict.CLEAN, report.findings
