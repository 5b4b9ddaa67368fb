"""What of the host's /proc a sandbox must not read, and the still stand-ins it reads instead.

Owns the /proc part of the sandbox policy: which host-wide files are masked, which are
replaced by fixed content, and the mounts that do it (`mask_proc`, used by `bwrap`), and who
makes those mounts (`masks_inside`: the placement helper inside the sandbox, where it is
built, as bwrap 0.8 reads the whole mount table again for each of them). Pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from zionwm.isolation.sandbox_plan import (
    FdSlot,
    HostFacts,
    InsideMasks,
    Mount,
    MountKind,
    SandboxPlan,
    SlotKind,
)

MASKER_SLOT = "masker"

PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger")

# Host-wide /proc files that count or list what the whole machine does, masked with an empty
# file in every sandbox. Counters that move with another desktop's activity are timing side
# channels (interrupts and softirqs tick with every key press; the disk, memory and scheduler
# counters with every save, page fault and wake-up); the rest lists host secrets or layout
# (keys, kernel symbols and modules, slab and vmalloc layout, file locks of every process).
# Kept readable on purpose, because programs need them and they move slowly or not at all:
# meminfo, cpuinfo, uptime, version, filesystems, mounts (the sandbox's own).
PROC_MASKED_FILES = (
    "/proc/interrupts",
    "/proc/softirqs",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/schedstat",
    "/proc/latency_stats",
    "/proc/keys",
    "/proc/key-users",
    "/proc/kallsyms",
    "/proc/modules",
    "/proc/vmstat",
    "/proc/diskstats",
    "/proc/locks",
    "/proc/slabinfo",
    "/proc/zoneinfo",
    "/proc/buddyinfo",
    "/proc/pagetypeinfo",
    "/proc/vmallocinfo",
    "/proc/iomem",
    "/proc/ioports",
    # Host-wide open-file and inode counts: they move with every file another desktop opens.
    "/proc/sys/fs/file-nr",
    "/proc/sys/fs/inode-nr",
    "/proc/sys/fs/inode-state",
    "/proc/sys/fs/dentry-state",
)
# Whole directories covered by an empty read-only tmpfs: per-IRQ counters (irq/N/spurious),
# host-wide pressure-stall totals in microseconds, and the host's input and PCI device lists.
PROC_MASKED_DIRS = ("/proc/irq", "/proc/pressure", "/proc/bus")
# /proc/stat is replaced rather than emptied: ps and psutil need its btime, and top and many
# libraries parse its cpu lines. The stand-in has the host's boot time and CPU count (both
# visible anyway, through uptime and sysfs) and counters that never move.
PROC_STAT = "/proc/stat"
# Fixed stand-ins for files programs parse but whose host values move with host activity:
# loadavg's running-task count changes the moment any process on the machine wakes up (a
# sampling loop sees another desktop react to a key); entropy_avail counted interrupt
# entropy before Linux 5.18 (it says 256 since).
PROC_STAND_INS: Mapping[str, bytes] = {
    "/proc/loadavg": b"0.00 0.00 0.00 1/1 1\n",
    "/proc/sys/kernel/random/entropy_avail": b"256\n",
}


def proc_stat_stand_in(cpus: int, boot_time: int) -> bytes:
    """A /proc/stat whose counters never move, in the kernel's layout."""
    zeros = " ".join(["0"] * 10)
    lines = [f"cpu  {zeros}"] + [f"cpu{n} {zeros}" for n in range(max(1, cpus))]
    lines += [
        "intr 0",
        "ctxt 0",
        f"btime {boot_time}",
        "processes 0",
        "procs_running 1",
        "procs_blocked 0",
        "softirq 0 0 0 0 0 0 0 0 0 0 0",
    ]
    return ("\n".join(lines) + "\n").encode()


def mask_proc(host: HostFacts, mounts: list[Mount], slot: Callable[[FdSlot], str]) -> None:
    """Cover the host-wide /proc files (see PROC_MASKED_FILES) and put in the stand-ins; only
    where the host has the file, as bwrap cannot create a mount point inside procfs."""
    for path in PROC_MASKED_FILES:
        if path in host.proc_masked:
            name = "mask" + path.replace("/", "-")
            mounts.append(
                Mount(
                    MountKind.RO_BIND_DATA,
                    path,
                    slot=slot(FdSlot(name, SlotKind.DATA, data=b"")),
                    perms=0o444,
                )
            )
    for path in PROC_MASKED_DIRS:
        if path in host.proc_masked:
            mounts.append(Mount(MountKind.TMPFS, path, perms=0o555))
    stand_ins = {PROC_STAT: proc_stat_stand_in(host.cpus, host.boot_time)}
    stand_ins.update((p, d) for p, d in PROC_STAND_INS.items() if p in host.proc_masked)
    for path, data in stand_ins.items():
        mounts.append(
            Mount(
                MountKind.RO_BIND_DATA,
                path,
                slot=slot(FdSlot("stand-in" + path.replace("/", "-"), SlotKind.DATA, data=data)),
                perms=0o444,
            )
        )


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def masks_inside(plan: SandboxPlan) -> SandboxPlan:
    """The same plan with its /proc masks made by the placement helper inside the sandbox
    (`zionwm-enter --mask-proc`, run by bwrap before the program) instead of by bwrap: the
    read-only binds of PROC_READ_ONLY, the empty files and the stand-ins, made on an empty
    tmpfs that covers one of PROC_MASKED_DIRS anyway, and the other covered directories
    (read-only there, where bwrap's tmpfs stays writable to its owner, the program). The
    empty files need no fd slot there (the helper makes one empty file), the helper's
    executable gets one. The plan is returned unchanged when it has no covered /proc
    directory to work on, or when bwrap would mount something else inside a directory the
    helper binds read-only (which a bind made afterwards would hide)."""
    data_of = {s.name: s for s in plan.slots}
    scratch: Mount | None = None
    dirs: list[str] = []
    read_only: list[str] = []
    empty: list[Mount] = []
    stand_ins: list[Mount] = []
    kept: list[Mount] = []
    for m in plan.mounts:
        if m.kind is MountKind.RO_BIND_TRY and m.dest in PROC_READ_ONLY and m.source == m.dest:
            read_only.append(m.dest)
        elif (
            m.kind is MountKind.RO_BIND_DATA
            and m.dest.startswith("/proc/")
            and m.perms == 0o444
            and data_of[m.slot].kind is SlotKind.DATA
        ):
            (stand_ins if data_of[m.slot].data else empty).append(m)
        elif m.kind is MountKind.TMPFS and m.dest in PROC_MASKED_DIRS and m.perms == 0o555:
            if scratch is None:
                scratch = m
            else:
                dirs.append(m.dest)
        else:
            kept.append(m)
    if scratch is None or any(_under(m.dest, ro) for m in kept for ro in read_only):
        return plan
    dropped = {m.slot for m in empty}
    slots = [s for s in plan.slots if s.name not in dropped]
    slots.append(FdSlot(MASKER_SLOT, SlotKind.MASKER))
    masks = InsideMasks(
        scratch=scratch.dest,
        read_only=tuple(read_only),
        empty=tuple(m.dest for m in empty),
        data=tuple((m.slot, m.dest) for m in stand_ins),
        dirs=tuple(dirs),
    )
    return dataclasses.replace(plan, mounts=tuple(kept), slots=tuple(slots), proc_masks=masks)
