"""One desktop's cgroup: a set of directories, one per hierarchy we use (`DesktopCgroup`).

Membership, limits, usage, freeze and thaw, memory reclaim, kill (``cgroup.kill``, or a
frozen sweep where there is none) and removal.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from dataclasses import fields
from pathlib import Path
from typing import Protocol

from zionwm.isolation.cgroups.freezer import FreezeOp, FreezeResult
from zionwm.isolation.cgroups.fs import alive, parse_keyed, procs, read_file, rmdir_tree, write_file
from zionwm.isolation.cgroups.layout import UNIFIED, Layout
from zionwm.isolation.cgroups.limits import limit_writes, parse_cpus
from zionwm.isolation.cgroups.status import CgroupStatus
from zionwm.isolation.spec import Limits

log = logging.getLogger(__name__)


class CgroupOwner(Protocol):
    """What a desktop's groups need of the manager that made them (`manager.CgroupManager`)."""

    status: CgroupStatus
    layout: Layout

    def forget(self, cg: DesktopCgroup) -> None: ...


# ---------------------------------------------------------------------------------------
# One desktop's cgroup
# ---------------------------------------------------------------------------------------


class DesktopCgroup:
    """A desktop's cgroup: a set of directories, one per hierarchy we use."""

    def __init__(
        self,
        manager: CgroupOwner,
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
            write_file(f, str(pid))

    def pids(self) -> list[int]:
        if self.member_dir is None:
            return []
        return sorted(set(procs(self.member_dir)))

    def live_pids(self) -> list[int]:
        """pids() without zombies (which hold no resources and cannot be signalled)."""
        return [p for p in self.pids() if alive(p)]

    # -- limits ---------------------------------------------------------------------------

    def _parent_cpus(self) -> set[int] | None:
        entry = self.controller_dirs.get("cpuset")
        if entry is None:
            return None
        version, d = entry
        name = "cpuset.cpus.effective" if version == 2 else "cpuset.cpus"
        text = read_file(d.parent / name)
        return parse_cpus(text) if text is not None else None

    def apply_limits(self, limits: Limits) -> list[str]:
        """Make the kernel's limits match ``limits``; returns warnings (never raises)."""
        versions = {c: v for c, (v, _) in self.controller_dirs.items()}
        writes, warnings = limit_writes(limits, versions, self._parent_cpus())
        for w in writes:
            _version, d = self.controller_dirs[w.controller]
            try:
                write_file(d / w.file, w.value)
            except OSError as e:
                warnings.append(f"{w.file}={w.value!r} failed: {e.strerror}")
        for msg in warnings:
            log.warning("desktop %s: %s", self.name, msg)
        self.limits = limits
        return warnings

    # -- usage ----------------------------------------------------------------------------

    def cpu_usec(self) -> int | None:
        if self.unified_dir is not None:
            stat = parse_keyed(read_file(self.unified_dir / "cpu.stat") or "")
            if "usage_usec" in stat:
                return stat["usage_usec"]
        h = self.manager.layout.v1_for("cpuacct")
        d = self.dirs.get(h.key) if h else None
        text = read_file(d / "cpuacct.usage") if d else None
        return int(text) // 1000 if text else None

    def memory_bytes(self) -> int | None:
        entry = self.controller_dirs.get("memory")
        if entry is None:
            return None
        version, d = entry
        text = read_file(d / ("memory.current" if version == 2 else "memory.usage_in_bytes"))
        return int(text) if text else None

    def oom_kills(self) -> int | None:
        entry = self.controller_dirs.get("memory")
        if entry is None:
            return None
        version, d = entry
        text = read_file(d / ("memory.events" if version == 2 else "memory.oom_control"))
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
            events = parse_keyed(read_file(self.unified_dir / "cgroup.events") or "")
            return events.get("frozen") == 1
        if self.freezer_dir is not None:
            return (read_file(self.freezer_dir / "freezer.state") or "").strip() == "FROZEN"
        return False

    def start_freeze(self, timeout: float = 2.0) -> FreezeOp:
        """Ask the kernel to freeze the desktop and return at once."""
        method = self.manager.status.freeze_method
        if self._op is not None and self._op.state == "pending":
            return self._op
        op = FreezeOp(self, method or "none", timeout)
        try:
            if method == "cgroup2" and self.unified_dir is not None:
                write_file(self.unified_dir / "cgroup.freeze", "1")
            elif method == "v1-freezer" and self.freezer_dir is not None:
                write_file(self.freezer_dir / "freezer.state", "FROZEN")
            else:
                op._fail("freezing is unavailable here (see cgroups status)", rollback=False)
        except OSError as e:
            op._fail(f"cannot start the freeze: {e.strerror}")
        self._op = op
        return op

    def freeze(self, timeout: float = 2.0) -> FreezeResult:
        """Blocking freeze with a bound (CLI and tests; the compositor uses start_freeze)."""
        return self.start_freeze(timeout).wait()

    def write_thaw(self, *, strict: bool = False) -> None:
        """One write that thaws the group; a failure is logged, or raised if `strict`."""
        try:
            if self.unified_dir is not None and self.manager.status.freeze_method == "cgroup2":
                write_file(self.unified_dir / "cgroup.freeze", "0")
            elif self.freezer_dir is not None:
                write_file(self.freezer_dir / "freezer.state", "THAWED")
        except OSError as e:
            if strict:
                raise
            log.warning("thawing desktop %s failed: %s", self.name, e)

    def thaw(self, *, strict: bool = False) -> None:
        """Thaw at once: one write, no waiting (the kernel wakes the tasks). A freeze still
        pending is called off first, so the next `start_freeze` writes again."""
        if self._op is not None:
            self._op.cancel()
        self.write_thaw(strict=strict)

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
            write_file(d / "memory.reclaim", str(ask))
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
                write_file(self.unified_dir / "cgroup.kill", "1")
            except OSError as e:
                log.warning("cgroup.kill on desktop %s failed: %s", self.name, e)
            # The group itself stays frozen when its tasks die: the next program started
            # in it would start frozen. (A v1-frozen task dies only once thawed, too.)
            self.thaw()
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
            errors += rmdir_tree(d)
        if errors:
            log.warning("desktop %s cgroup not removed: %s", self.name, "; ".join(errors))
        self.manager.forget(self)
