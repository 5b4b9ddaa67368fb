"""Hibernating a desktop: how much memory pushing it out would free, and the push itself.

The estimate is pure (`estimate` over the numbers of memory.stat and of the swap); the
shell around it reads the cgroup's files and writes memory.reclaim through
`DesktopCgroup.reclaim`. What can leave memory depends on what it is:

* page cache of files (memory.stat `file` less `shmem`): the kernel drops clean pages and
  writes dirty ones back, so it can go even without swap;
* anonymous memory and shared memory (`anon`, `shmem`): only into swap, so without swap
  (or with the desktop's `memory.swap.max` at 0) it stays where it is.

The push is memory.reclaim on cgroup v2 (Linux 5.19+), memory.force_empty where the memory
controller is a cgroup v1 one (hybrid hosts); both leave the programs in their group.

The kernel decides in the end (pages in use by the kernel itself, locked pages and a
working set it refuses to push stay), so the estimate is an upper bound and the answer of
`push_out` is what really left.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zionwm.cli_table import size_text

from .cgroups.desktop import DesktopCgroup
from .cgroups.fs import parse_keyed

log = logging.getLogger(__name__)

MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class Estimate:
    """What hibernating would free, in bytes, and why not more."""

    memory_bytes: int  # in use now (memory.current)
    file_bytes: int  # page cache that can go without swap
    swap_only_bytes: int  # anonymous and shared memory: only into swap
    swap_room_bytes: int  # swap this desktop may still fill
    can_reclaim: bool  # memory.reclaim is there (cgroup v2, Linux 5.19+)
    reason: str = ""  # why nothing can be pushed out, when can_reclaim is False

    @property
    def freeable_bytes(self) -> int:
        if not self.can_reclaim:
            return 0
        return self.file_bytes + min(self.swap_only_bytes, self.swap_room_bytes)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "freeable_bytes": self.freeable_bytes, "text": self.text()}

    def text(self) -> str:
        if not self.can_reclaim:
            return f"nothing can be pushed out: {self.reason}"
        out = f"up to {size_text(self.freeable_bytes)} of {size_text(self.memory_bytes)}"
        parts = [f"{size_text(self.file_bytes)} of file cache"]
        if self.swap_only_bytes:
            if self.swap_room_bytes <= 0:
                parts.append(
                    f"not the {size_text(self.swap_only_bytes)} of program memory: "
                    "there is no swap to put it in"
                )
            elif self.swap_room_bytes < self.swap_only_bytes:
                parts.append(
                    f"{size_text(self.swap_room_bytes)} of its "
                    f"{size_text(self.swap_only_bytes)} of program memory into swap "
                    "(no room for more)"
                )
            else:
                parts.append(f"{size_text(self.swap_only_bytes)} of program memory into swap")
        return f"{out} ({'; '.join(parts)})"


def estimate(
    stat: dict[str, int],
    current: int,
    swap_free: int,
    swap_room: int | None,
    can_reclaim: bool,
    reason: str = "",
) -> Estimate:
    """Pure: from memory.stat's fields, memory.current, the host's free swap and the room
    the desktop's own swap limit leaves (None: no limit of its own)."""
    shmem = max(0, stat.get("shmem", 0))
    file = max(0, stat.get("file", 0) - shmem)
    swap_only = max(0, stat.get("anon", 0)) + shmem
    room = swap_free if swap_room is None else min(swap_free, swap_room)
    return Estimate(
        memory_bytes=max(0, current),
        file_bytes=file,
        swap_only_bytes=swap_only,
        swap_room_bytes=max(0, room),
        can_reclaim=can_reclaim,
        reason=reason,
    )


# ---------------------------------------------------------------------------------------
# Shell
# ---------------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def host_swap_free(meminfo: Path = MEMINFO) -> int:
    """Free swap of the machine, in bytes (0 without swap)."""
    for line in (_read(meminfo) or "").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "SwapFree:" and parts[1].isdigit():
            return int(parts[1]) * 1024  # meminfo counts kB
    return 0


def read_estimate(cg: DesktopCgroup) -> Estimate:
    """The estimate for one desktop, from its cgroup's files."""
    entry = cg.controller_dirs.get("memory")
    current = cg.memory_bytes() or 0
    if entry is None:
        return estimate({}, current, 0, None, False, "no memory controller for this desktop")
    version, d = entry
    stat = parse_keyed(_read(d / "memory.stat") or "")
    if version == 1:
        # cgroup v1 names them differently; memory.force_empty does the reclaim there
        v1 = {
            "file": stat.get("cache", 0),
            "anon": stat.get("rss", 0),
            "shmem": stat.get("shmem", 0),
        }
        can = (d / "memory.force_empty").exists()
        reason = "" if can else "memory.force_empty is missing in this cgroup v1 memory controller"
        return estimate(v1, current, host_swap_free(), None, can, reason)
    room: int | None = None
    limit = (_read(d / "memory.swap.max") or "").strip()
    if limit and limit != "max":
        used = (_read(d / "memory.swap.current") or "0").strip()
        room = max(0, int(limit) - int(used or 0))
    can = (d / "memory.reclaim").exists()
    reason = "" if can else "memory.reclaim is missing (it needs Linux 5.19 or later)"
    return estimate(stat, current, host_swap_free(), room, can, reason)


def push_out(cg: DesktopCgroup, est: Estimate) -> int | None:
    """Ask the kernel to push out what the estimate says can go; bytes freed, or None
    where memory.reclaim is missing. Asking for more than can go would only make the
    kernel scan longer before giving up."""
    if not est.can_reclaim:
        return None
    ask = est.freeable_bytes
    if ask <= 0:
        return 0
    entry = cg.controller_dirs.get("memory")
    if entry is not None and entry[0] == 1:
        return _force_empty(cg, entry[1])
    return cg.reclaim(ask)


def _force_empty(cg: DesktopCgroup, d: Path) -> int | None:
    """cgroup v1: the kernel reclaims what it can of the group (its tasks stay in it)."""
    before = cg.memory_bytes() or 0
    try:
        fd = os.open(d / "memory.force_empty", os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    except OSError as exc:
        # EBUSY: what is left cannot go (no swap for it); what went is still gone
        if exc.errno != errno.EBUSY:
            log.warning("memory.force_empty in desktop %s failed: %s", cg.name, exc)
            return None
    return max(0, before - (cg.memory_bytes() or 0))
