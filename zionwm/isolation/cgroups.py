"""Per-desktop cgroups: layout detection, limits, freeze/thaw, reclaim and kill.

This module is the only writer of /sys/fs/cgroup. It owns:

* the pure layout decision (``detect_layout`` over the text of /proc/self/cgroup and
  /proc/self/mountinfo, ``summarize`` over what the probe saw, ``limit_writes`` from
  ``Limits`` to interface-file writes);
* ``CgroupManager``: finds where we may create ``<our cgroup>/<root_name>/<desktop>``
  groups, prepares them, and says plainly what is missing when nothing is writable;
* ``DesktopCgroup``: one desktop's set of directories (one per cgroup v1 hierarchy we use
  plus one in the unified tree), with limits, usage, freezing, reclaim and kill.

Layouts: "v2" (pure cgroup v2, what systemd desktops have: controllers delegated to
user@UID.service), "hybrid" (v1 controllers plus a cgroup2 mount without controllers, where
``cgroup.freeze`` and ``cgroup.kill`` still work), "v1" (no cgroup2 at all) and "none".

Nothing here blocks the compositor: ``start_freeze`` returns at once with an operation the
event loop polls (through ``fileno()`` where the kernel can notify, otherwise on a timer),
and a freeze that cannot finish in time is rolled back and reported.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import select
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

from zionwm.isolation.spec import Limits

log = logging.getLogger(__name__)

UNIFIED = "unified"
# The compositor's own leaf on cgroup v2: a cgroup with controllers enabled for its children
# may not hold processes itself ("no internal processes"), so we step aside into it.
LEAF_NAME = "compositor"
LIMIT_CONTROLLERS = ("cpu", "memory", "pids", "cpuset")
# v1 hierarchies a desktop joins: the limit controllers plus accounting and the freezer.
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "freezer")
CPU_PERIOD_USEC = 100_000
MIN_CPU_QUOTA_USEC = 1_000
MIN_MEMORY = 4096  # one page: the kernel rounds to pages anyway
DESKTOP_NAME_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
DELEGATE_HINT = "run zionwm in a delegated scope: systemd-run --user --scope -p Delegate=yes zionwm"

FreezeState = Literal["frozen", "pending", "failed"]
LAYOUT_NAMES = {
    "v2": "pure cgroup v2",
    "hybrid": "hybrid (cgroup v1 controllers, cgroup2 without controllers)",
    "v1": "cgroup v1 only",
    "none": "no cgroup filesystem",
}


# ---------------------------------------------------------------------------------------
# Pure core: layout
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy and where our own cgroup sits in it."""

    version: int  # 1 or 2
    controllers: frozenset[str]  # v1: controllers bound to it; v2: empty (read at probe time)
    mount_point: str
    mount_root: str  # the hierarchy path mounted at mount_point ("/" unless bind-mounted)
    own_path: str  # our cgroup in this hierarchy, from /proc/self/cgroup
    read_only: bool = False

    @property
    def key(self) -> str:
        return UNIFIED if self.version == 2 else ",".join(sorted(self.controllers))

    @property
    def own_dir(self) -> Path | None:
        """Our cgroup's directory, or None when it is outside what is mounted here."""
        root = self.mount_root.rstrip("/")
        if self.own_path in (self.mount_root, root):
            rel = ""
        elif self.own_path.startswith(root + "/"):
            rel = self.own_path[len(root) + 1 :]
        else:
            return None
        return Path(self.mount_point) / rel if rel else Path(self.mount_point)


@dataclass(frozen=True)
class Layout:
    kind: str  # "v2" | "hybrid" | "v1" | "none"
    unified: Hierarchy | None
    v1: tuple[Hierarchy, ...] = ()
    notes: tuple[str, ...] = ()

    def v1_for(self, controller: str) -> Hierarchy | None:
        for h in self.v1:
            if controller in h.controllers:
                return h
        return None


def _unescape_mount(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


@dataclass(frozen=True)
class _Mount:
    root: str
    point: str
    options: frozenset[str]
    fstype: str
    superoptions: frozenset[str]


def _parse_mountinfo(mountinfo: str) -> list[_Mount]:
    mounts = []
    for line in mountinfo.splitlines():
        parts = line.split()
        if " - " not in line or len(parts) < 7:
            continue
        sep = parts.index("-")
        if len(parts) < sep + 3:
            continue
        fstype = parts[sep + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        mounts.append(
            _Mount(
                root=_unescape_mount(parts[3]),
                point=_unescape_mount(parts[4]),
                options=frozenset(parts[5].split(",")),
                fstype=fstype,
                superoptions=frozenset(parts[sep + 3].split(","))
                if len(parts) > sep + 3
                else frozenset(),
            )
        )
    return mounts


def _best_mount(candidates: list[_Mount], own_path: str) -> _Mount | None:
    """Prefer a mount whose root contains our cgroup, then the conventional location."""

    def contains(m: _Mount) -> bool:
        root = m.root.rstrip("/")
        return own_path == m.root or own_path.startswith(root + "/") or m.root == "/"

    ranked = sorted(
        candidates,
        key=lambda m: (not contains(m), not m.point.startswith("/sys/fs/cgroup"), len(m.root)),
    )
    return ranked[0] if ranked else None


def detect_layout(proc_self_cgroup: str, mountinfo: str) -> Layout:
    """Which cgroup hierarchies are mounted and where our own cgroup is in each (pure)."""
    mounts = _parse_mountinfo(mountinfo)
    unified_path: str | None = None
    v1_lines: list[tuple[frozenset[str], str]] = []
    for line in proc_self_cgroup.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hid, ctrls, path = parts
        if hid == "0" and ctrls == "":
            unified_path = path
        elif ctrls and not ctrls.startswith("name="):
            v1_lines.append((frozenset(ctrls.split(",")), path))

    notes: list[str] = []
    unified: Hierarchy | None = None
    if unified_path is not None:
        m = _best_mount([m for m in mounts if m.fstype == "cgroup2"], unified_path)
        if m is None:
            notes.append("cgroup2 is in /proc/self/cgroup but not mounted")
        else:
            unified = Hierarchy(
                version=2,
                controllers=frozenset(),
                mount_point=m.point,
                mount_root=m.root,
                own_path=unified_path,
                read_only="ro" in m.options or "ro" in m.superoptions,
            )

    v1: list[Hierarchy] = []
    for names, path in v1_lines:
        if not names & set(V1_CONTROLLERS):
            continue
        cands = [m for m in mounts if m.fstype == "cgroup" and names <= m.superoptions]
        m = _best_mount(cands, path)
        if m is None:
            notes.append(f"cgroup v1 {','.join(sorted(names))} is not mounted")
            continue
        v1.append(
            Hierarchy(
                version=1,
                controllers=names,
                mount_point=m.point,
                mount_root=m.root,
                own_path=path,
                read_only="ro" in m.options or "ro" in m.superoptions,
            )
        )

    if unified and v1:
        kind = "hybrid"
    elif unified:
        kind = "v2"
    elif v1:
        kind = "v1"
    else:
        kind = "none"
    return Layout(kind=kind, unified=unified, v1=tuple(v1), notes=tuple(notes))


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


def _limit_controller_source(
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
        if _limit_controller_source(layout, facts, c) is not None:
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


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _write(path: Path, value: str) -> None:
    # One write() call per value: cgroup files take one value per write.
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode() if value else b"\n")
    finally:
        os.close(fd)


def _procs(directory: Path, *, recursive: bool = True) -> list[int]:
    pids: list[int] = []
    text = _read(directory / "cgroup.procs")
    if text:
        pids.extend(int(p) for p in text.split())
    if recursive:
        with contextlib.suppress(OSError):
            for child in directory.iterdir():
                if child.is_dir():
                    pids.extend(_procs(child))
    return pids


def _task_state(pid: int) -> tuple[str, str]:
    """(state letter, comm) of a process, ("?", "") when it is gone."""
    stat = _read(Path(f"/proc/{pid}/stat"))
    if not stat:
        return "?", ""
    comm = stat[stat.find("(") + 1 : stat.rfind(")")]
    rest = stat[stat.rfind(")") + 2 :].split()
    return (rest[0] if rest else "?"), comm


def _alive(pid: int) -> bool:
    return _task_state(pid)[0] not in ("?", "Z", "X")


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def _rmdir_tree(path: Path) -> list[str]:
    """rmdir a cgroup and its children, deepest first; returns errors (busy groups)."""
    errors: list[str] = []
    if not path.is_dir():
        return errors
    with contextlib.suppress(OSError):
        for child in path.iterdir():
            if child.is_dir():
                errors += _rmdir_tree(child)
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError as e:
        errors.append(f"{path}: {e.strerror}")
    return errors


# ---------------------------------------------------------------------------------------
# Freezing
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreezeResult:
    state: FreezeState
    elapsed: float  # seconds from start_freeze to the final state
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "frozen"


class FreezeOp:
    """One freeze in progress: poll it from the event loop; it never blocks.

    On cgroup v2, ``fileno()`` is an fd on cgroup.events that signals POLLPRI|POLLERR when
    the state changes; call ``poll()`` then, and from a timer at the deadline so a freeze that
    never completes is rolled back. Watch it for errors only, never for readability (a
    cgroup file is always readable, so EPOLLIN would spin): epoll with an empty event mask,
    or ``wl_event_loop_add_fd(loop, fd, 0, ...)``, whose callback then gets
    WL_EVENT_ERROR on each change. ``poll()`` re-reads the file, which re-arms it.
    On v1 there is no fd: poll on a timer (``poll_interval``). When ``poll()``
    returns a final state the fd stays open until ``close()``, so the caller can remove it
    from its event loop first.
    """

    poll_interval = 0.02  # seconds: the longest pause between polls (`next_poll_ms`)

    def __init__(self, cg: DesktopCgroup, method: str, timeout: float) -> None:
        self._cg = cg
        self.method = method
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.state: FreezeState = "pending"
        self.reason = ""
        self.finished: float | None = None
        self._fd: int | None = None
        self._retries = 0
        self._last_attempt = self.started
        self._polls = 0
        if method == "cgroup2":
            events = cg.unified_dir / "cgroup.events" if cg.unified_dir else None
            if events is not None:
                try:
                    self._fd = os.open(events, os.O_RDONLY | os.O_CLOEXEC)
                    os.pread(self._fd, 4096, 0)  # arm: kernfs notifies changes after a read
                except OSError:
                    self._fd = None

    def fileno(self) -> int | None:
        return self._fd

    def next_poll_ms(self) -> int:
        """When to poll next, in ms: every millisecond for the first 16 polls, then
        doubling up to `poll_interval`.

        A freeze takes from well under a millisecond (an idle desktop) to several (a
        thousand processes on two CPUs); a poll is one pread of cgroup.events. A fixed
        20 ms timer made every freeze look 20 ms long, and a doubling one rounds a 5 ms
        freeze up to 8. The fd's notification is no substitute: the kernel delivers it
        from a work queue, seen here to arrive about 15 ms after the group had frozen on a
        loaded machine. A freeze that hangs costs 16 polls, then one per `poll_interval`.
        """
        self._polls += 1
        if self._polls <= 16:
            return 1
        return min(int(self.poll_interval * 1000), 2 ** (self._polls - 16))

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def poll(self) -> FreezeState:
        if self.state != "pending":
            return self.state
        try:
            if self.method == "cgroup2":
                self._poll_v2()
            else:
                self._poll_v1()
        except OSError as e:
            self._fail(f"cgroup went away or refused: {e}")
        return self.state

    def _poll_v2(self) -> None:
        assert self._cg.unified_dir is not None
        if self._fd is not None:
            text = os.pread(self._fd, 4096, 0).decode()
        else:
            text = (self._cg.unified_dir / "cgroup.events").read_text()
        if parse_keyed(text).get("frozen") == 1:
            self._done()
        elif (_read(self._cg.unified_dir / "cgroup.freeze") or "").strip() == "0":
            self._fail("thawed before the freeze completed", rollback=False)
        elif time.monotonic() >= self.deadline:
            self._fail(self._stuck_reason())

    def _poll_v1(self) -> None:
        d = self._cg.freezer_dir
        assert d is not None
        state = (_read(d / "freezer.state") or "").strip()
        now = time.monotonic()
        if state == "FROZEN":
            self._done()
        elif state == "THAWED":
            self._fail("thawed before the freeze completed", rollback=False)
        elif now >= self.deadline:
            self._fail(self._stuck_reason())
        elif now - self._last_attempt >= min(0.5, 0.01 * 2**self._retries):
            # A v1 freeze can stall on a task forking while it freezes; thawing and
            # freezing again lets it through (the retry runc does).
            self._retries += 1
            self._last_attempt = now
            _write(d / "freezer.state", "THAWED")
            _write(d / "freezer.state", "FROZEN")

    def _stuck_reason(self) -> str:
        stuck = []
        for pid in self._cg.pids():
            state, comm = _task_state(pid)
            if state in ("D", "R"):
                wchan = (_read(Path(f"/proc/{pid}/wchan")) or "").strip()
                stuck.append(f"{pid} ({comm}) state {state}" + (f" in {wchan}" if wchan else ""))
        detail = "; ".join(stuck[:10]) or "no task in D/R state seen"
        if len(stuck) > 10:
            detail += f"; and {len(stuck) - 10} more"
        return f"not frozen after {self.elapsed:.2f}s, rolled back: {detail}"

    def _done(self) -> None:
        self.state = "frozen"
        self.finished = time.monotonic()
        log.info("desktop %s frozen in %.1f ms", self._cg.name, self.elapsed * 1000)

    def _fail(self, reason: str, *, rollback: bool = True) -> None:
        if rollback:
            self._cg._write_thaw()
        self.state = "failed"
        self.reason = reason
        self.finished = time.monotonic()
        log.warning("freezing desktop %s failed: %s", self._cg.name, reason)

    def cancel(self, reason: str = "thawed before the freeze completed") -> None:
        if self.state == "pending":
            self.state = "failed"
            self.reason = reason
            self.finished = time.monotonic()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def wait(self, timeout: float | None = None) -> FreezeResult:
        """Block until a final state (for the CLI and tests; never for the compositor)."""
        end = self.deadline if timeout is None else min(self.deadline, time.monotonic() + timeout)
        poller = None
        if self._fd is not None:
            poller = select.poll()
            poller.register(self._fd, select.POLLPRI | select.POLLERR)
        while self.poll() == "pending":
            wait = max(0.0, min(self.next_poll_ms() / 1000, end + 0.001 - time.monotonic()))
            if poller is not None:
                poller.poll(wait * 1000)
            else:
                time.sleep(wait)
        self.close()
        return FreezeResult(self.state, self.elapsed, self.reason)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


# ---------------------------------------------------------------------------------------
# One desktop's cgroup
# ---------------------------------------------------------------------------------------


class DesktopCgroup:
    """A desktop's cgroup: a set of directories, one per hierarchy we use."""

    def __init__(
        self,
        manager: CgroupManager,
        name: str,
        dirs: dict[str, Path],
        controller_dirs: dict[str, tuple[int, Path]],
    ) -> None:
        self.manager = manager
        self.name = name
        self.dirs = dirs  # hierarchy key -> directory
        self.controller_dirs = controller_dirs  # limit controller -> (version, directory)
        self.limits = Limits()
        self._op: FreezeOp | None = None
        st = manager.status
        self.unified_dir = dirs.get(UNIFIED)
        self.member_dir = dirs.get(st.membership) if st.membership else None
        self.freezer_dir: Path | None = None
        if st.freeze_method == "v1-freezer":
            fh = manager.layout.v1_for("freezer")
            self.freezer_dir = dirs.get(fh.key) if fh else None

    def __repr__(self) -> str:
        return f"DesktopCgroup({self.name!r}, {sorted(self.dirs)})"

    def procs_files(self) -> list[Path]:
        """Every cgroup.procs the launcher's child writes "0" to before it execs."""
        return [d / "cgroup.procs" for d in self.dirs.values()]

    def add_pid(self, pid: int) -> None:
        """Move a running process (all its threads) into this desktop, in every hierarchy."""
        for f in self.procs_files():
            _write(f, str(pid))

    def pids(self) -> list[int]:
        if self.member_dir is None:
            return []
        return sorted(set(_procs(self.member_dir)))

    def live_pids(self) -> list[int]:
        """pids() without zombies (which hold no resources and cannot be signalled)."""
        return [p for p in self.pids() if _alive(p)]

    # -- limits ---------------------------------------------------------------------------

    def _parent_cpus(self) -> set[int] | None:
        entry = self.controller_dirs.get("cpuset")
        if entry is None:
            return None
        version, d = entry
        name = "cpuset.cpus.effective" if version == 2 else "cpuset.cpus"
        text = _read(d.parent / name)
        return parse_cpus(text) if text is not None else None

    def apply_limits(self, limits: Limits) -> list[str]:
        """Make the kernel's limits match ``limits``; returns warnings (never raises)."""
        versions = {c: v for c, (v, _) in self.controller_dirs.items()}
        writes, warnings = limit_writes(limits, versions, self._parent_cpus())
        for w in writes:
            _version, d = self.controller_dirs[w.controller]
            try:
                _write(d / w.file, w.value)
            except OSError as e:
                warnings.append(f"{w.file}={w.value!r} failed: {e.strerror}")
        for msg in warnings:
            log.warning("desktop %s: %s", self.name, msg)
        self.limits = limits
        return warnings

    # -- usage ----------------------------------------------------------------------------

    def cpu_usec(self) -> int | None:
        if self.unified_dir is not None:
            stat = parse_keyed(_read(self.unified_dir / "cpu.stat") or "")
            if "usage_usec" in stat:
                return stat["usage_usec"]
        h = self.manager.layout.v1_for("cpuacct")
        d = self.dirs.get(h.key) if h else None
        text = _read(d / "cpuacct.usage") if d else None
        return int(text) // 1000 if text else None

    def memory_bytes(self) -> int | None:
        entry = self.controller_dirs.get("memory")
        if entry is None:
            return None
        version, d = entry
        text = _read(d / ("memory.current" if version == 2 else "memory.usage_in_bytes"))
        return int(text) if text else None

    def oom_kills(self) -> int | None:
        entry = self.controller_dirs.get("memory")
        if entry is None:
            return None
        version, d = entry
        text = _read(d / ("memory.events" if version == 2 else "memory.oom_control"))
        return parse_keyed(text or "").get("oom_kill")

    def usage(self) -> dict[str, object]:
        """Live usage next to the limits (for ``zionctl desktops --json``)."""
        return {
            "cpu_usec": self.cpu_usec(),
            "memory_bytes": self.memory_bytes(),
            "pids": len(self.live_pids()),
            "oom_kills": self.oom_kills(),
            "frozen": self.frozen,
            "freezing": self._op is not None and self._op.state == "pending",
            "limits": {f.name: getattr(self.limits, f.name) for f in fields(Limits)},
            "can_reclaim": self.manager.status.can_reclaim,
        }

    # -- freeze / thaw --------------------------------------------------------------------

    @property
    def frozen(self) -> bool:
        if self.unified_dir is not None and self.manager.status.freeze_method == "cgroup2":
            events = parse_keyed(_read(self.unified_dir / "cgroup.events") or "")
            return events.get("frozen") == 1
        if self.freezer_dir is not None:
            return (_read(self.freezer_dir / "freezer.state") or "").strip() == "FROZEN"
        return False

    def start_freeze(self, timeout: float = 2.0) -> FreezeOp:
        """Ask the kernel to freeze the desktop and return at once."""
        method = self.manager.status.freeze_method
        if self._op is not None and self._op.state == "pending":
            return self._op
        op = FreezeOp(self, method or "none", timeout)
        try:
            if method == "cgroup2" and self.unified_dir is not None:
                _write(self.unified_dir / "cgroup.freeze", "1")
            elif method == "v1-freezer" and self.freezer_dir is not None:
                _write(self.freezer_dir / "freezer.state", "FROZEN")
            else:
                op._fail("freezing is unavailable here (see cgroups status)", rollback=False)
        except OSError as e:
            op._fail(f"cannot start the freeze: {e.strerror}")
        self._op = op
        return op

    def freeze(self, timeout: float = 2.0) -> FreezeResult:
        """Blocking freeze with a bound (CLI and tests; the compositor uses start_freeze)."""
        return self.start_freeze(timeout).wait()

    def _write_thaw(self) -> None:
        try:
            if self.unified_dir is not None and self.manager.status.freeze_method == "cgroup2":
                _write(self.unified_dir / "cgroup.freeze", "0")
            elif self.freezer_dir is not None:
                _write(self.freezer_dir / "freezer.state", "THAWED")
        except OSError as e:
            log.warning("thawing desktop %s failed: %s", self.name, e)

    def thaw(self) -> None:
        """Thaw at once: one write, no waiting (the kernel wakes the tasks)."""
        if self._op is not None:
            self._op.cancel()
        self._write_thaw()

    # -- memory ---------------------------------------------------------------------------

    def reclaim(self, amount: int | None = None) -> int | None:
        """Push the desktop's memory out (memory.reclaim, cgroup v2); bytes freed, or None.

        ``amount`` defaults to everything the group holds; the kernel stops early when it
        cannot reclaim more (EAGAIN), which is normal.
        """
        entry = self.controller_dirs.get("memory")
        if entry is None or entry[0] != 2 or not (entry[1] / "memory.reclaim").exists():
            return None
        d = entry[1]
        before = self.memory_bytes() or 0
        ask = amount if amount is not None else before
        if ask <= 0:
            return 0
        try:
            _write(d / "memory.reclaim", str(ask))
        except OSError as e:
            if e.errno != errno.EAGAIN:
                log.warning("reclaim in desktop %s failed: %s", self.name, e)
                return None
        return max(0, before - (self.memory_bytes() or 0))

    # -- kill / remove --------------------------------------------------------------------

    def kill(self, timeout: float = 2.0) -> int:
        """SIGKILL every process of the desktop, escaped ones included; returns how many.

        Waits at most ``timeout`` for the group to empty.
        """
        deadline = time.monotonic() + timeout
        if self.manager.status.kill_method == "cgroup.kill" and self.unified_dir is not None:
            victims = set(self.live_pids())
            try:
                _write(self.unified_dir / "cgroup.kill", "1")
            except OSError as e:
                log.warning("cgroup.kill on desktop %s failed: %s", self.name, e)
            self._wait_empty(deadline)
            return len(victims)
        return self._sweep(deadline)

    def _sweep(self, deadline: float) -> int:
        """Freeze so nothing can fork, SIGKILL every member, thaw so they die; repeat."""
        killed: set[int] = set()
        while True:
            if self.manager.status.can_freeze:
                # Even a failed freeze has stopped most forks; kill what is there anyway.
                self.freeze(timeout=max(0.05, min(0.5, deadline - time.monotonic())))
            pids = self.live_pids()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            if self.manager.status.can_freeze:
                self.thaw()
            if self._wait_empty(min(deadline, time.monotonic() + 0.2)) or not pids:
                break
            if time.monotonic() >= deadline:
                log.warning("desktop %s still has processes after kill", self.name)
                break
        return len(killed)

    def _wait_empty(self, deadline: float) -> bool:
        while True:
            if not self.live_pids():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    def remove(self) -> None:
        """Remove the desktop's directories (they must be empty: kill() first)."""
        if self._op is not None:
            self._op.close()
        self.thaw()
        errors: list[str] = []
        for d in self.dirs.values():
            errors += _rmdir_tree(d)
        if errors:
            log.warning("desktop %s cgroup not removed: %s", self.name, "; ".join(errors))
        self.manager._forget(self)


# ---------------------------------------------------------------------------------------
# The manager
# ---------------------------------------------------------------------------------------


class CgroupManager:
    """Finds where zionwm may create desktop cgroups and creates them."""

    def __init__(
        self,
        layout: Layout,
        status: CgroupStatus,
        root_name: str,
        facts: Mapping[str, DirFacts] | None = None,
    ) -> None:
        self.layout = layout
        self.status = status
        self.root_name = root_name
        self._facts = dict(facts or {})
        self._desktops: dict[str, DesktopCgroup] = {}
        self._audit: dict[str, DesktopCgroup] = {}  # "<desktop>.audit": the quarantine's

    @classmethod
    def probe(
        cls,
        *,
        root_name: str,
        ignore_unified: bool = False,
        proc: Path = Path("/proc"),
    ) -> CgroupManager:
        """Detect the layout, prepare our root groups, and report; never raises.

        ``root_name`` is the caller's own directory (per user and per instance, see
        zionwm.isolation.instance): stale clean-up only ever looks inside it, so two
        compositors that share a parent cgroup never remove each other's groups.

        ``ignore_unified`` acts as if no cgroup2 were mounted: it exercises the v1-only
        paths (v1 freezer, frozen-sweep kill) on hybrid hosts.
        """
        try:
            return cls._probe(root_name, ignore_unified, proc)
        except Exception as e:
            log.exception("cgroup probe failed")
            st = CgroupStatus(layout="unknown", problems=[f"cgroup probe failed: {e}"])
            return cls(Layout(kind="none", unified=None), st, root_name)

    @classmethod
    def _probe(cls, root_name: str, ignore_unified: bool, proc: Path) -> CgroupManager:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", root_name) or root_name in (".", ".."):
            raise ValueError(f"bad cgroup root name {root_name!r}")
        layout = detect_layout(
            (proc / "self" / "cgroup").read_text(), (proc / "self" / "mountinfo").read_text()
        )
        if ignore_unified and layout.unified is not None:
            kind = "v1" if layout.v1 else "none"
            layout = Layout(kind=kind, unified=None, v1=layout.v1, notes=layout.notes)
        facts: dict[str, DirFacts] = {}
        if layout.unified is not None:
            facts[UNIFIED] = _prepare_unified(layout.unified, root_name)
        uf = facts.get(UNIFIED)
        unified_freezes = bool(uf and uf.usable and "cgroup.freeze" in uf.files)
        for h in layout.v1:
            wanted = h.controllers & set(V1_CONTROLLERS)
            if wanted == {"freezer"} and unified_freezes:
                continue
            if wanted == {"cpuacct"} and uf and uf.usable and "cpu.stat" in uf.files:
                continue
            if uf and uf.usable and wanted <= uf.enabled:
                continue
            facts[h.key] = _prepare_v1(h, root_name)
        st = summarize(layout, facts, os.geteuid())
        mgr = cls(layout, st, root_name, facts)
        mgr._remove_stale()
        log.info("%s", st.describe())
        return mgr

    # -- desktops -------------------------------------------------------------------------

    def _roots(self) -> dict[str, Path]:
        return {k: Path(p) / self.root_name for k, p in self.status.base_paths.items()}

    def desktop(self, name: str, limits: Limits | None = None) -> DesktopCgroup | None:
        """Create (or update) a desktop's cgroup with ``limits``; None where we cannot."""
        limits = limits or Limits()
        if not DESKTOP_NAME_RE.match(name):
            log.warning("bad desktop name for a cgroup: %r", name)
            return None
        if self.status.membership is None:
            return None
        cg = self._desktops.get(name)
        if cg is None:
            cg = self._create(name)
            if cg is None:
                return None
            self._desktops[name] = cg
        cg.apply_limits(limits)
        return cg

    def get(self, name: str) -> DesktopCgroup | None:
        return self._desktops.get(name)

    def audit_group(self, desktop: str, limits: Limits) -> DesktopCgroup | None:
        """The group a desktop's quarantine audits are charged to, beside its own (the dot
        keeps it apart from every desktop name); None where we cannot create groups."""
        if not DESKTOP_NAME_RE.match(desktop) or self.status.membership is None:
            return None
        name = f"{desktop}.audit"
        cg = self._audit.get(name)
        if cg is None:
            cg = self._create(name)
            if cg is None:
                return None
            self._audit[name] = cg
        cg.apply_limits(limits)
        return cg

    @property
    def desktops(self) -> dict[str, DesktopCgroup]:
        return dict(self._desktops)

    def _create(self, name: str) -> DesktopCgroup | None:
        dirs: dict[str, Path] = {}
        for key, root in self._roots().items():
            d = root / name
            try:
                d.mkdir(exist_ok=True)
                if key != UNIFIED and "cpuset" in key.split(","):
                    _copy_cpuset(root, d)
            except OSError as e:
                log.warning("cannot create %s: %s", d, e)
                if key == self.status.membership:
                    for made in dirs.values():
                        _rmdir_tree(made)
                    return None
                continue
            dirs[key] = d
        controller_dirs: dict[str, tuple[int, Path]] = {}
        for c in LIMIT_CONTROLLERS:
            src = _limit_controller_source(self.layout, self._facts, c)
            if src is not None and src in dirs:
                controller_dirs[c] = (2 if src == UNIFIED else 1, dirs[src])
        return DesktopCgroup(self, name, dirs, controller_dirs)

    def _forget(self, cg: DesktopCgroup) -> None:
        if self._desktops.get(cg.name) is cg:
            del self._desktops[cg.name]

    def cleanup(self) -> None:
        """Remove our empty desktop groups and root groups (busy ones are left, logged)."""
        for cg in [*self._desktops.values(), *self._audit.values()]:
            cg.remove()
        self._audit.clear()
        self._remove_stale()
        for root in self._roots().values():
            with contextlib.suppress(OSError):
                root.rmdir()

    def _remove_stale(self) -> None:
        for root in self._roots().values():
            with contextlib.suppress(OSError):
                for child in root.iterdir():
                    ours = child.name in self._desktops or child.name in self._audit
                    stale = child.is_dir() and not ours
                    if stale and not _rmdir_tree(child):
                        log.info("removed stale desktop cgroup %s", child)


def _copy_cpuset(parent: Path, child: Path) -> None:
    """A v1 cpuset group takes no tasks until cpus and mems are set: inherit the parent's."""
    for name in ("cpuset.mems", "cpuset.cpus"):
        if not (_read(child / name) or "").strip():
            _write(child / name, (_read(parent / name) or "").strip())


def _prepare_v1(h: Hierarchy, root_name: str) -> DirFacts:
    own = h.own_dir
    if own is None:
        return DirFacts(own_dir=None, usable=False, error="our cgroup is outside the mount")
    if h.read_only:
        return DirFacts(own_dir=str(own), usable=False, error=f"{h.mount_point} is read-only")
    root = own / root_name
    try:
        if not root.is_dir():
            if not (_writable(own) and _writable(own / "cgroup.procs")):
                return DirFacts(own_dir=str(own), usable=False, error=f"{own} not writable")
            root.mkdir()
        if "cpuset" in h.controllers:
            _copy_cpuset(own, root)
        if not _writable(root / "cgroup.procs"):
            return DirFacts(own_dir=str(own), usable=False, error=f"{root} not writable")
    except OSError as e:
        return DirFacts(own_dir=str(own), usable=False, error=f"{root}: {e.strerror}")
    files = frozenset(p.name for p in root.iterdir() if p.is_file())
    return DirFacts(own_dir=str(own), usable=True, files=files)


def _prepare_unified(h: Hierarchy, root_name: str) -> DirFacts:
    own = h.own_dir
    if own is None:
        return DirFacts(own_dir=None, usable=False, error="our cgroup is outside the mount")
    if h.read_only:
        return DirFacts(own_dir=str(own), usable=False, error=f"{h.mount_point} is read-only")
    base = own
    # Probed before in this process (or by a parent zionwm): we already sit in our leaf,
    # and its parent is the group that holds the desktops.
    if own.name == LEAF_NAME and own != Path(h.mount_point):
        base = own.parent
    if not (_writable(base) and _writable(base / "cgroup.procs")):
        return DirFacts(own_dir=str(base), usable=False, error=f"{base} is not delegated to us")
    available = frozenset((_read(base / "cgroup.controllers") or "").split())
    wanted = available & set(LIMIT_CONTROLLERS)
    # Only the true root group may hold processes while its children have controllers; a
    # cgroup namespace's root looks like "/" but is not exempt. The true root has no
    # cgroup.type file.
    is_root = not (base / "cgroup.type").exists()
    root = base / root_name
    problems: list[str] = []
    try:
        root.mkdir(exist_ok=True)
    except OSError as e:
        return DirFacts(own_dir=str(base), usable=False, error=f"{root}: {e.strerror}")
    enabled: frozenset[str] = frozenset()
    if wanted:
        if not is_root and not _writable(base / "cgroup.subtree_control"):
            problems.append("cgroup.subtree_control not writable")
        else:
            if not is_root:
                _move_into_leaf(base)
            _enable(base, wanted)
            _enable(root, wanted)
            enabled = frozenset((_read(root / "cgroup.controllers") or "").split()) & wanted
            sub = frozenset((_read(root / "cgroup.subtree_control") or "").split())
            enabled &= sub
    files = frozenset(p.name for p in root.iterdir() if p.is_file())
    return DirFacts(
        own_dir=str(base),
        usable=True,
        error="; ".join(problems) or None,
        enabled=enabled,
        available=available,
        files=files,
    )


def _enable(directory: Path, controllers: Iterable[str]) -> None:
    # One controller per write, so one refusal does not block the others.
    for c in sorted(controllers):
        try:
            _write(directory / "cgroup.subtree_control", f"+{c}")
        except OSError as e:
            log.warning("cannot enable %s in %s: %s", c, directory, e.strerror)


def _move_into_leaf(base: Path) -> None:
    """Move every process of ``base`` into ``base/compositor`` (no internal processes)."""
    leaf = base / LEAF_NAME
    leaf.mkdir(exist_ok=True)
    for _ in range(10):
        pids = _procs(base, recursive=False)
        if not pids:
            return
        for pid in pids:
            try:
                _write(leaf / "cgroup.procs", str(pid))
            except OSError as e:
                if e.errno != errno.ESRCH:
                    log.warning("cannot move pid %d into %s: %s", pid, leaf, e.strerror)
    log.warning("processes keep appearing in %s; controllers may not be enabled", base)
