"""`CgroupManager`: finds where zionwm may create ``<our cgroup>/<root_name>/<desktop>``
groups, prepares them (controllers enabled, the compositor stepped aside into its own leaf
on cgroup v2, stale groups of a crashed run removed), creates the desktops' groups, and
says plainly what is missing when nothing is writable.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from zionwm.isolation.cgroups.desktop import DesktopCgroup
from zionwm.isolation.cgroups.fs import procs, read_file, rmdir_tree, writable, write_file
from zionwm.isolation.cgroups.layout import (
    LIMIT_CONTROLLERS,
    UNIFIED,
    V1_CONTROLLERS,
    Hierarchy,
    Layout,
    detect_layout,
)
from zionwm.isolation.cgroups.status import (
    CgroupStatus,
    DirFacts,
    limit_controller_source,
    summarize,
)
from zionwm.isolation.spec import Limits

log = logging.getLogger(__name__)


# The compositor's own leaf on cgroup v2: a cgroup with controllers enabled for its children
# may not hold processes itself ("no internal processes"), so we step aside into it.
LEAF_NAME = "compositor"


DESKTOP_NAME_RE = re.compile(r"^[a-z0-9_-]{1,32}$")


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
                        rmdir_tree(made)
                    return None
                continue
            dirs[key] = d
        controller_dirs: dict[str, tuple[int, Path]] = {}
        for c in LIMIT_CONTROLLERS:
            src = limit_controller_source(self.layout, self._facts, c)
            if src is not None and src in dirs:
                controller_dirs[c] = (2 if src == UNIFIED else 1, dirs[src])
        return DesktopCgroup(self, name, dirs, controller_dirs)

    def forget(self, cg: DesktopCgroup) -> None:
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
                    if stale and not rmdir_tree(child):
                        log.info("removed stale desktop cgroup %s", child)


def _copy_cpuset(parent: Path, child: Path) -> None:
    """A v1 cpuset group takes no tasks until cpus and mems are set: inherit the parent's."""
    for name in ("cpuset.mems", "cpuset.cpus"):
        if not (read_file(child / name) or "").strip():
            write_file(child / name, (read_file(parent / name) or "").strip())


def _prepare_v1(h: Hierarchy, root_name: str) -> DirFacts:
    own = h.own_dir
    if own is None:
        return DirFacts(own_dir=None, usable=False, error="our cgroup is outside the mount")
    if h.read_only:
        return DirFacts(own_dir=str(own), usable=False, error=f"{h.mount_point} is read-only")
    root = own / root_name
    try:
        if not root.is_dir():
            if not (writable(own) and writable(own / "cgroup.procs")):
                return DirFacts(own_dir=str(own), usable=False, error=f"{own} not writable")
            root.mkdir()
        if "cpuset" in h.controllers:
            _copy_cpuset(own, root)
        if not writable(root / "cgroup.procs"):
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
    if not (writable(base) and writable(base / "cgroup.procs")):
        return DirFacts(own_dir=str(base), usable=False, error=f"{base} is not delegated to us")
    available = frozenset((read_file(base / "cgroup.controllers") or "").split())
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
        if not is_root and not writable(base / "cgroup.subtree_control"):
            problems.append("cgroup.subtree_control not writable")
        else:
            if not is_root:
                _move_into_leaf(base)
            _enable(base, wanted)
            _enable(root, wanted)
            enabled = frozenset((read_file(root / "cgroup.controllers") or "").split()) & wanted
            sub = frozenset((read_file(root / "cgroup.subtree_control") or "").split())
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
            write_file(directory / "cgroup.subtree_control", f"+{c}")
        except OSError as e:
            log.warning("cannot enable %s in %s: %s", c, directory, e.strerror)


def _move_into_leaf(base: Path) -> None:
    """Move every process of ``base`` into ``base/compositor`` (no internal processes)."""
    leaf = base / LEAF_NAME
    leaf.mkdir(exist_ok=True)
    for _ in range(10):
        pids = procs(base, recursive=False)
        if not pids:
            return
        for pid in pids:
            try:
                write_file(leaf / "cgroup.procs", str(pid))
            except OSError as e:
                if e.errno != errno.ESRCH:
                    log.warning("cannot move pid %d into %s: %s", pid, leaf, e.strerror)
    log.warning("processes keep appearing in %s; controllers may not be enabled", base)
