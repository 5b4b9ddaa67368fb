"""From a desktop's `Limits` to cgroup interface-file writes (pure): `validate_limits` for
the config, `limit_writes` for the kernel, on v2 or v1 files, with a warning for each
limit nothing here can enforce.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from zionwm.isolation.spec import Limits

log = logging.getLogger(__name__)


CPU_PERIOD_USEC = 100_000
MIN_CPU_QUOTA_USEC = 1_000
MIN_MEMORY = 4096  # one page: the kernel rounds to pages anyway


# ---------------------------------------------------------------------------------------
# Pure core: limits -> interface-file writes
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    controller: str
    file: str
    value: str


def format_cpus(cpus: Iterable[int]) -> str:
    """(0, 1, 2, 5) -> "0-2,5": the cpuset list format."""
    out: list[str] = []
    run: list[int] = []
    for c in sorted(set(cpus)):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def parse_cpus(text: str) -> set[int]:
    """ "0-2,5" -> {0, 1, 2, 5}."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            cpus.update(range(int(a), int(b) + 1))
        else:
            cpus.add(int(part))
    return cpus


def _limit_errors(limits: Limits) -> dict[str, str]:
    errors: dict[str, str] = {}
    if limits.cpu_weight is not None and not 1 <= limits.cpu_weight <= 10000:
        errors["cpu_weight"] = f"cpu_weight must be 1..10000, got {limits.cpu_weight}"
    if limits.cpu_max is not None and not limits.cpu_max * CPU_PERIOD_USEC >= MIN_CPU_QUOTA_USEC:
        errors["cpu_max"] = f"cpu_max must be at least 0.01 (1% of a CPU), got {limits.cpu_max}"
    for name in ("memory_high", "memory_max"):
        v = getattr(limits, name)
        if v is not None and v < MIN_MEMORY:
            errors[name] = f"{name} must be at least {MIN_MEMORY} bytes, got {v}"
    if limits.pids_max is not None and limits.pids_max < 1:
        errors["pids_max"] = f"pids_max must be at least 1, got {limits.pids_max}"
    if limits.cpuset is not None and (not limits.cpuset or min(limits.cpuset) < 0):
        errors["cpuset"] = f"cpuset must be a non-empty tuple of CPU numbers, got {limits.cpuset}"
    return errors


def validate_limits(limits: Limits) -> list[str]:
    """Errors in a Limits value (for config validation; empty list = valid)."""
    return list(_limit_errors(limits).values())


def limit_writes(
    limits: Limits,
    versions: Mapping[str, int],
    parent_cpus: set[int] | None = None,
) -> tuple[list[Write], list[str]]:
    """The writes that make a desktop's group match ``limits`` (unset fields are reset).

    ``versions`` maps each usable limit controller to 1 or 2; a controller missing there
    yields a warning for any limit that needs it. ``parent_cpus`` is the CPU set the
    desktop may use (the parent's effective cpuset): CPUs outside it are ignored, with a
    warning. An invalid field is ignored (treated as unset) with a warning; the others apply.
    """
    writes: list[Write] = []
    errors = _limit_errors(limits)
    warnings = [f"{e}: ignored" for e in errors.values()]
    if errors:
        limits = replace(limits, **dict.fromkeys(errors))

    def missing(what: str, controller: str) -> None:
        warnings.append(f"{what} not applied: the {controller} controller is not available")

    cpu = versions.get("cpu")
    if cpu == 2:
        weight = limits.cpu_weight if limits.cpu_weight is not None else 100
        writes.append(Write("cpu", "cpu.weight", str(weight)))
        if limits.cpu_max is None:
            writes.append(Write("cpu", "cpu.max", f"max {CPU_PERIOD_USEC}"))
        else:
            quota = max(MIN_CPU_QUOTA_USEC, round(limits.cpu_max * CPU_PERIOD_USEC))
            writes.append(Write("cpu", "cpu.max", f"{quota} {CPU_PERIOD_USEC}"))
    elif cpu == 1:
        weight = limits.cpu_weight if limits.cpu_weight is not None else 100
        shares = max(2, min(262144, weight * 1024 // 100))
        writes.append(Write("cpu", "cpu.shares", str(shares)))
        writes.append(Write("cpu", "cpu.cfs_period_us", str(CPU_PERIOD_USEC)))
        if limits.cpu_max is None:
            writes.append(Write("cpu", "cpu.cfs_quota_us", "-1"))
        else:
            quota = max(MIN_CPU_QUOTA_USEC, round(limits.cpu_max * CPU_PERIOD_USEC))
            writes.append(Write("cpu", "cpu.cfs_quota_us", str(quota)))
    else:
        if limits.cpu_weight is not None:
            missing("cpu_weight", "cpu")
        if limits.cpu_max is not None:
            missing("cpu_max", "cpu")

    mem = versions.get("memory")
    if mem == 2:
        writes.append(Write("memory", "memory.high", _max_or(limits.memory_high)))
        writes.append(Write("memory", "memory.max", _max_or(limits.memory_max)))
    elif mem == 1:
        # v1 has no throttling equivalent of memory.high: the soft limit only acts under
        # global memory pressure. memory.limit_in_bytes, like v2's memory.max, leaves swap
        # (memory.memsw.*) alone.
        if limits.memory_high is not None:
            warnings.append(
                "memory_high on cgroup v1 maps to memory.soft_limit_in_bytes, which only "
                "reclaims under system-wide memory pressure (no throttling)"
            )
        writes.append(Write("memory", "memory.soft_limit_in_bytes", _v1_bytes(limits.memory_high)))
        writes.append(Write("memory", "memory.limit_in_bytes", _v1_bytes(limits.memory_max)))
    else:
        if limits.memory_high is not None:
            missing("memory_high", "memory")
        if limits.memory_max is not None:
            missing("memory_max", "memory")

    if versions.get("pids") in (1, 2):
        writes.append(Write("pids", "pids.max", _max_or(limits.pids_max)))
    elif limits.pids_max is not None:
        missing("pids_max", "pids")

    cs = versions.get("cpuset")
    if cs in (1, 2):
        if limits.cpuset is not None:
            wanted = set(limits.cpuset)
            if parent_cpus is not None and not wanted <= parent_cpus:
                warnings.append(
                    f"cpuset: CPUs {format_cpus(wanted - parent_cpus)} are not available here "
                    f"(available: {format_cpus(parent_cpus)}); ignored"
                )
                wanted &= parent_cpus
            if wanted:
                writes.append(Write("cpuset", "cpuset.cpus", format_cpus(wanted)))
            else:
                warnings.append("cpuset not applied: none of its CPUs is available")
        elif cs == 2:
            writes.append(Write("cpuset", "cpuset.cpus", ""))  # empty: inherit the parent's
        elif parent_cpus is not None:
            writes.append(Write("cpuset", "cpuset.cpus", format_cpus(parent_cpus)))
    elif limits.cpuset is not None:
        missing("cpuset", "cpuset")
    return writes, warnings


def _max_or(v: int | None) -> str:
    return "max" if v is None else str(v)


def _v1_bytes(v: int | None) -> str:
    return "-1" if v is None else str(v)
