"""What zionwm can do with the cgroups it found (pure): `summarize` judges the probe's
findings per hierarchy (`DirFacts`) into a `CgroupStatus`: which controllers can limit,
how to freeze and kill, where a desktop's membership is read, and what is missing, said
plainly for the log and ``zionctl``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from zionwm.isolation.cgroups.layout import LIMIT_CONTROLLERS, UNIFIED, Layout

log = logging.getLogger(__name__)


DELEGATE_HINT = "run zionwm in a delegated scope: systemd-run --user --scope -p Delegate=yes zionwm"


LAYOUT_NAMES = {
    "v2": "pure cgroup v2",
    "hybrid": "hybrid (cgroup v1 controllers, cgroup2 without controllers)",
    "v1": "cgroup v1 only",
    "none": "no cgroup filesystem",
}


# ---------------------------------------------------------------------------------------
# Pure core: what the probe saw -> status
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirFacts:
    """What the probe found for one hierarchy (gathered by the shell, judged by summarize)."""

    own_dir: str | None
    usable: bool  # our <root_name> directory exists there (created or found) and we may write
    error: str | None = None  # why not usable
    enabled: frozenset[str] = frozenset()  # v2: controllers our desktops get
    available: frozenset[str] = frozenset()  # v2: controllers in our cgroup.controllers
    files: frozenset[str] = frozenset()  # interface files in our <root_name> directory


@dataclass
class CgroupStatus:
    """What zionwm can do with cgroups here, and what is missing (for logs and zionctl)."""

    layout: str
    base_paths: dict[str, str] = field(default_factory=dict)  # hierarchy key -> our root dir
    can_limit: set[str] = field(default_factory=set)  # subset of LIMIT_CONTROLLERS
    can_freeze: bool = False
    can_kill: bool = False
    can_reclaim: bool = False
    freeze_method: str | None = None  # "cgroup2" | "v1-freezer"
    kill_method: str | None = None  # "cgroup.kill" | "frozen-sweep"
    membership: str | None = None  # hierarchy key whose cgroup.procs lists a desktop's pids
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "layout": self.layout,
            "base_paths": dict(self.base_paths),
            "can_limit": sorted(self.can_limit),
            "can_freeze": self.can_freeze,
            "can_kill": self.can_kill,
            "can_reclaim": self.can_reclaim,
            "freeze_method": self.freeze_method,
            "kill_method": self.kill_method,
            "membership": self.membership,
            "problems": list(self.problems),
        }

    def describe(self) -> str:
        limits = ", ".join(sorted(self.can_limit)) or "none"
        lines = [
            f"cgroups: {LAYOUT_NAMES.get(self.layout, self.layout)}; limits: {limits}; "
            f"freeze: {self.freeze_method or 'unavailable'}; "
            f"kill: {self.kill_method or 'unavailable'}; "
            f"reclaim: {'memory.reclaim' if self.can_reclaim else 'unavailable'}"
        ]
        lines += [f"  missing: {p}" for p in self.problems]
        return "\n".join(lines)


def limit_controller_source(
    layout: Layout, facts: Mapping[str, DirFacts], controller: str
) -> str | None:
    """Which hierarchy key enforces a controller: v2 where enabled there, else its v1 tree."""
    uf = facts.get(UNIFIED)
    if uf and uf.usable and controller in uf.enabled:
        return UNIFIED
    h = layout.v1_for(controller)
    if h is not None:
        f = facts.get(h.key)
        if f and f.usable:
            return h.key
    return None


def summarize(layout: Layout, facts: Mapping[str, DirFacts], uid: int) -> CgroupStatus:
    """Judge the probe's findings: capabilities, the hierarchy per job, and the problems."""
    st = CgroupStatus(layout=layout.kind)
    st.problems.extend(layout.notes)
    for key, f in facts.items():
        if f.usable and f.own_dir is not None:
            st.base_paths[key] = f.own_dir
    who = "root" if uid == 0 else f"uid {uid}"
    uf = facts.get(UNIFIED)

    if layout.kind == "none":
        st.problems.append(
            "no cgroup filesystem is mounted: limits, freezing and kill are disabled "
            "(mount cgroup2 on /sys/fs/cgroup, or run under systemd)"
        )
        return st

    for c in LIMIT_CONTROLLERS:
        if limit_controller_source(layout, facts, c) is not None:
            st.can_limit.add(c)

    # Freezing: cgroup2's cgroup.freeze (also on hybrid hosts), else the v1 freezer.
    if uf and uf.usable and "cgroup.freeze" in uf.files:
        st.can_freeze, st.freeze_method = True, "cgroup2"
    else:
        fh = layout.v1_for("freezer")
        ff = facts.get(fh.key) if fh else None
        if ff and ff.usable:
            st.can_freeze, st.freeze_method = True, "v1-freezer"

    if uf and uf.usable and "cgroup.kill" in uf.files:
        st.can_kill, st.kill_method = True, "cgroup.kill"
    elif st.can_freeze:
        st.can_kill, st.kill_method = True, "frozen-sweep"

    if uf and uf.usable and "memory.reclaim" in uf.files:
        st.can_reclaim = True

    if uf and uf.usable:
        st.membership = UNIFIED
    else:
        for c in ("freezer", "pids", "memory", "cpu", "cpuacct", "cpuset"):
            h = layout.v1_for(c)
            if h is not None and facts.get(h.key) and facts[h.key].usable:
                st.membership = h.key
                break

    # Say what is missing, and how to get it.
    if layout.unified is not None and not (uf and uf.usable):
        reason = uf.error if uf and uf.error else "not writable"
        own = layout.unified.own_path
        st.problems.append(
            f"our cgroup2 group {own} is not writable by {who} ({reason}): {DELEGATE_HINT}"
        )
    if layout.kind == "v2" and uf and uf.usable:
        missing = [c for c in LIMIT_CONTROLLERS if c not in uf.enabled]
        if missing:
            if "cpuset" in missing and len(missing) == 1:
                how = (
                    "systemd delegates cpu, memory and pids by default; for cpuset add a "
                    "drop-in /etc/systemd/system/user@.service.d/delegate.conf with "
                    "'[Service]\\nDelegate=cpu cpuset io memory pids'"
                )
            else:
                how = DELEGATE_HINT + " (and Delegate=cpu cpuset io memory pids on user@.service)"
            st.problems.append(
                f"cgroup v2 controllers not delegated to us: {', '.join(missing)}; {how}"
            )
    if layout.v1:
        needed = [c for c in LIMIT_CONTROLLERS if c not in st.can_limit and layout.v1_for(c)]
        if not st.can_freeze and layout.v1_for("freezer"):
            needed.append("freezer")
        if needed:
            reasons = sorted(
                {
                    facts[h.key].error or "not writable"
                    for h in layout.v1
                    if h.key in facts and not facts[h.key].usable
                }
            )
            st.problems.append(
                f"cgroup v1 controllers not writable by {who}: {', '.join(needed)} "
                f"({'; '.join(reasons) or 'not writable'}): on a hybrid host only root can "
                "set these limits; a pure cgroup v2 system with systemd delegation lets a "
                "user do it"
            )
    if not st.can_freeze:
        if uf and uf.usable:
            why = "this kernel's cgroup2 has no cgroup.freeze (needs Linux 5.2+)"
        else:
            why = "no writable freezer"
        st.problems.append(f"freezing hidden desktops is disabled: {why}")
    if not st.can_reclaim:
        st.problems.append(
            "memory.reclaim is unavailable (needs the cgroup v2 memory controller, Linux 5.19+): "
            "frozen desktops keep their memory"
        )
    return st
