"""Whose budget the audit of a file is charged to: the desktop the file came from.

A desktop that drops files makes the quarantine work; without accounting, that work would
run in the compositor's cgroup and a desktop limited to a fraction of a CPU could keep
both cores busy by writing files. Each source desktop's audit sandboxes run in a cgroup of
their own beside the desktop's (`<desktop>.audit`; beside and not inside, so that freezing
a hidden desktop does not stall audits the other desktops wait behind), whose limits are
derived from the desktop's here. The compositor creates it; the quarantine service moves
each audit sandbox into it before the sandbox runs its first instruction.
"""

from __future__ import annotations

from zionwm.isolation.spec import Limits

AUDIT_PIDS_MAX = 64  # a zygote, its children (one per file in flight) and bwrap's own
AUDIT_MEMORY_FLOOR = 256 << 20  # the scanners need this much to work at all


def audit_limits(desktop: Limits) -> Limits:
    """The audit cgroup's limits for a desktop with `desktop` limits (pure): no more CPU
    or memory than the desktop itself may use, the same CPU weight and CPUs."""
    memory_max = desktop.memory_max
    if memory_max is not None:
        memory_max = max(memory_max, AUDIT_MEMORY_FLOOR)
    return Limits(
        cpu_weight=desktop.cpu_weight,
        cpu_max=desktop.cpu_max,
        memory_high=None,
        memory_max=memory_max,
        pids_max=AUDIT_PIDS_MAX,
        cpuset=desktop.cpuset,
    )
