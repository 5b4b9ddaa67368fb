"""Which cgroup layout this machine has, decided from text alone (pure).

`detect_layout` reads /proc/self/cgroup and /proc/self/mountinfo (as strings) and says
where each hierarchy is mounted and where our own cgroup sits in it: "v2" (pure cgroup v2,
what systemd desktops have: controllers delegated to user@UID.service), "hybrid" (v1
controllers plus a cgroup2 mount without controllers, where ``cgroup.freeze`` and
``cgroup.kill`` still work), "v1" (no cgroup2 at all) or "none".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


UNIFIED = "unified"


LIMIT_CONTROLLERS = ("cpu", "memory", "pids", "cpuset")
# v1 hierarchies a desktop joins: the limit controllers plus accounting and the freezer.
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "freezer")


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
