"""The thin shell over the cgroup filesystem: read and write one interface file, list a
group's processes, look at a task's state, remove a tree of groups.

Only the cgroups package writes under /sys/fs/cgroup, and only through `write`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def parse_keyed(text: str) -> dict[str, int]:
    """ "key value" lines (cgroup.events, cpu.stat, memory.events) -> dict."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                out[parts[0]] = int(parts[1])
    return out


# ---------------------------------------------------------------------------------------
# Shell: small file helpers
# ---------------------------------------------------------------------------------------


def read_file(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def write_file(path: Path, value: str) -> None:
    # One write() call per value: cgroup files take one value per write.
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode() if value else b"\n")
    finally:
        os.close(fd)


def procs(directory: Path, *, recursive: bool = True) -> list[int]:
    pids: list[int] = []
    text = read_file(directory / "cgroup.procs")
    if text:
        pids.extend(int(p) for p in text.split())
    if recursive:
        with contextlib.suppress(OSError):
            for child in directory.iterdir():
                if child.is_dir():
                    pids.extend(procs(child))
    return pids


def task_state(pid: int) -> tuple[str, str]:
    """(state letter, comm) of a process, ("?", "") when it is gone."""
    stat = read_file(Path(f"/proc/{pid}/stat"))
    if not stat:
        return "?", ""
    comm = stat[stat.find("(") + 1 : stat.rfind(")")]
    rest = stat[stat.rfind(")") + 2 :].split()
    return (rest[0] if rest else "?"), comm


def alive(pid: int) -> bool:
    return task_state(pid)[0] not in ("?", "Z", "X")


def writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def rmdir_tree(path: Path) -> list[str]:
    """rmdir a cgroup and its children, deepest first; returns errors (busy groups)."""
    errors: list[str] = []
    if not path.is_dir():
        return errors
    with contextlib.suppress(OSError):
        for child in path.iterdir():
            if child.is_dir():
                errors += rmdir_tree(child)
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError as e:
        errors.append(f"{path}: {e.strerror}")
    return errors
