"""Per-desktop cgroups against the real kernel: limits, freeze/thaw, kill, delegation.

Processes join a desktop the way the launcher's child does: a preexec writing "0" to every
file in ``procs_files()``. Every test uses its own root group name, so tests running at the
same time (here or in other suites) never see each other's groups, and the fixture removes
everything it made.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import readable_package
from zionwm.isolation.cgroups.desktop import DesktopCgroup
from zionwm.isolation.cgroups.fs import rmdir_tree, task_state
from zionwm.isolation.cgroups.layout import UNIFIED, detect_layout
from zionwm.isolation.cgroups.manager import LEAF_NAME, CgroupManager, _move_into_leaf
from zionwm.isolation.spec import Limits

NOBODY = 65534


def _cgroup_facility() -> str | None:
    """Why this machine cannot run these tests, or None when it can."""
    if os.geteuid() != 0:
        return "not root: creating cgroups for the tests needs root"
    if not Path("/proc/self/cgroup").exists():
        return "no /proc/self/cgroup: the kernel has no cgroup support"
    layout = detect_layout(
        Path("/proc/self/cgroup").read_text(), Path("/proc/self/mountinfo").read_text()
    )
    if layout.kind == "none":
        return "no cgroup filesystem mounted"
    return None


pytestmark = pytest.mark.skipif(_cgroup_facility() is not None, reason=str(_cgroup_facility()))


def _poll_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


REAPER = textwrap.dedent(
    """
    import ctypes, os, subprocess, sys
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    sep = sys.argv.index("--")
    files, argv = sys.argv[1:sep], sys.argv[sep + 1 :]
    def join():
        for f in files:
            with open(f, "w") as fh:
                fh.write("0")
    subprocess.Popen(argv, preexec_fn=join)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    """
)


class Procs:
    """Processes a test started; all are killed and reaped at teardown."""

    def __init__(self) -> None:
        self.popen: list[subprocess.Popen[bytes]] = []

    def start(self, cg: DesktopCgroup, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        files = [str(f) for f in cg.procs_files()]

        def join() -> None:
            for f in files:
                with open(f, "w") as fh:
                    fh.write("0")

        p: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            argv,
            preexec_fn=join,  # noqa: PLW1509  (the tests start no threads)
            **kw,
        )
        self.popen.append(p)
        return p

    def start_reaped(
        self, cg: DesktopCgroup, argv: list[str], **kw: object
    ) -> subprocess.Popen[bytes]:
        """Start argv in the desktop under a subreaper outside it that reaps every orphan
        (this VM's PID 1 does not, and zombies keep their pids.max charge)."""
        files = [str(f) for f in cg.procs_files()]
        return self.start_outside([sys.executable, "-c", REAPER, *files, "--", *argv], **kw)

    def start_outside(self, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        p: subprocess.Popen[bytes] = subprocess.Popen(argv, **kw)  # type: ignore[call-overload]
        self.popen.append(p)
        return p

    def reap(self) -> None:
        for p in self.popen:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)


def _new_manager(*, ignore_unified: bool = False) -> CgroupManager:
    name = f"zionwm-test-{uuid.uuid4().hex[:8]}"
    return CgroupManager.probe(root_name=name, ignore_unified=ignore_unified)


def _teardown(mgr: CgroupManager, procs: Procs) -> None:
    for cg in mgr.desktops.values():
        cg.thaw()
        cg.kill()
    procs.reap()
    mgr.cleanup()
    leftovers = [p for p in mgr.status.base_paths.values() if (Path(p) / mgr.root_name).exists()]
    assert leftovers == [], f"cgroups left behind under {leftovers}"


@pytest.fixture
def procs() -> Iterator[Procs]:
    p = Procs()
    yield p
    p.reap()


@pytest.fixture
def mgr(procs: Procs) -> Iterator[CgroupManager]:
    m = _new_manager()
    if m.status.membership is None:
        pytest.skip("no writable cgroup hierarchy: " + "; ".join(m.status.problems))
    yield m
    _teardown(m, procs)


@pytest.fixture(params=["default", "v1"])
def any_mgr(request: pytest.FixtureRequest, procs: Procs) -> Iterator[CgroupManager]:
    """The layout found here, and (on hybrid hosts) the v1-only paths of the same kernel."""
    m = _new_manager(ignore_unified=request.param == "v1")
    if request.param == "v1" and m.status.layout != "v1":
        m.cleanup()
        pytest.skip("no cgroup v1 freezer hierarchy on this machine (pure cgroup v2)")
    if not m.status.can_freeze:
        m.cleanup()
        pytest.skip("no writable freezer: " + "; ".join(m.status.problems))
    yield m
    _teardown(m, procs)


def _need(mgr: CgroupManager, controller: str) -> None:
    if controller not in mgr.status.can_limit:
        pytest.skip(f"the {controller} controller is not available: {mgr.status.problems}")


BUSY = [sys.executable, "-c", "while True: pass"]
SLEEP = ["sleep", "300"]


# --- probe ------------------------------------------------------------------------------


def test_probe_reports_the_layout_found(mgr: CgroupManager) -> None:
    layout = detect_layout(
        Path("/proc/self/cgroup").read_text(), Path("/proc/self/mountinfo").read_text()
    )
    assert mgr.status.layout == layout.kind
    assert mgr.status.describe().startswith("cgroups: ")
    for key, base in mgr.status.base_paths.items():
        assert (Path(base) / mgr.root_name).is_dir(), key
    if layout.kind == "hybrid":
        # PLATFORM.md: cgroup.freeze and cgroup.kill work in the controller-less cgroup2.
        assert mgr.status.freeze_method == "cgroup2"
        assert mgr.status.membership == UNIFIED
        assert not mgr.status.can_reclaim
        assert any("memory.reclaim" in p for p in mgr.status.problems)


def test_desktop_groups_and_procs_files(mgr: CgroupManager, procs: Procs) -> None:
    cg = mgr.desktop("work", Limits())
    assert cg is not None
    assert mgr.desktop("work", Limits(pids_max=50)) is cg  # updates, does not recreate
    files = cg.procs_files()
    assert len(files) == len(mgr.status.base_paths)
    p = procs.start(cg, SLEEP)
    _poll_until(lambda: p.pid in cg.pids(), 5, "the process to show up in the group")
    for f in files:
        assert str(p.pid) in f.read_text().split(), f
    usage = cg.usage()
    assert usage["pids"] == 1 and usage["frozen"] is False
    assert json.loads(json.dumps(usage))["limits"]["pids_max"] == 50  # zionctl --json
    if "pids" in mgr.status.can_limit:
        pids_max = cg.controller_dirs["pids"][1] / "pids.max"
        assert pids_max.read_text().strip() == "50"
        mgr.desktop("work", Limits())
        assert pids_max.read_text().strip() == "max"
    assert mgr.desktop("Bad Name", Limits()) is None


def test_probe_removes_stale_empty_groups_and_keeps_busy_ones(procs: Procs) -> None:
    first = _new_manager()
    if first.status.membership is None:
        pytest.skip("no writable cgroup hierarchy: " + "; ".join(first.status.problems))
    try:
        busy = first.desktop("busy", Limits())
        idle = first.desktop("idle", Limits())
        assert busy is not None and idle is not None
        p = procs.start(busy, SLEEP)
        _poll_until(lambda: p.pid in busy.pids(), 5, "the join")
        # A crashed zionwm leaves its groups; the next start sweeps the empty ones.
        second = CgroupManager.probe(root_name=first.root_name)
        assert all(not d.exists() for d in idle.dirs.values())
        assert all(d.is_dir() for d in busy.dirs.values())
        second.cleanup()  # must not raise on the busy group it does not own
        assert busy.kill() == 1
    finally:
        _teardown(first, procs)


def test_reclaim_where_available(mgr: CgroupManager, procs: Procs) -> None:
    cg = mgr.desktop("reclaimable", Limits())
    assert cg is not None
    if not mgr.status.can_reclaim:
        assert cg.reclaim() is None  # and status.problems says why
        assert any("memory.reclaim" in p for p in mgr.status.problems)
        return
    hog = "import signal\nb = b'x' * (64 << 20)\nsignal.pause()\n"
    procs.start(cg, [sys.executable, "-c", hog])
    _poll_until(lambda: (cg.memory_bytes() or 0) > 64 << 20, 10, "64 MiB charged")
    assert cg.freeze().ok
    freed = cg.reclaim()
    assert freed is not None and freed > 0
    cg.thaw()


# --- limits -----------------------------------------------------------------------------


@pytest.mark.security
def test_memory_max_oom_kills_inside_only(mgr: CgroupManager, procs: Procs) -> None:
    _need(mgr, "memory")
    small = mgr.desktop("small", Limits(memory_max=64 << 20))
    other = mgr.desktop("other", Limits())
    assert small is not None and other is not None
    bystander = procs.start(other, SLEEP)
    # b"x" * n writes every page, so the memory is really charged (bytes(n) would not be).
    hog = procs.start(small, [sys.executable, "-c", "b = b'x' * (256 << 20); print(len(b))"])
    assert hog.wait(timeout=60) == -signal.SIGKILL
    assert (small.oom_kills() or 0) >= 1
    assert bystander.poll() is None
    assert other.oom_kills() == 0


def test_cpu_quota_holds_a_busy_loop_near_20_percent(mgr: CgroupManager, procs: Procs) -> None:
    _need(mgr, "cpu")
    cg = mgr.desktop("capped", Limits(cpu_max=0.2))
    assert cg is not None
    procs.start(cg, BUSY)
    _poll_until(lambda: (cg.cpu_usec() or 0) > 20_000, 5, "the loop to start")
    u0, t0 = cg.cpu_usec() or 0, time.monotonic()
    # Watch until the loop has had 0.6 s of CPU: about 3 s at 20 %, 0.6 s if unlimited.
    _poll_until(lambda: (cg.cpu_usec() or 0) - u0 >= 600_000, 20, "0.6 s of CPU in the group")
    rate = ((cg.cpu_usec() or 0) - u0) / 1e6 / (time.monotonic() - t0)
    assert rate <= 0.25, f"busy loop got {rate:.0%} of a core"


@pytest.mark.security
def test_pids_max_stops_a_fork_bomb(mgr: CgroupManager, procs: Procs) -> None:
    _need(mgr, "pids")
    cg = mgr.desktop("bomb", Limits(pids_max=32))
    assert cg is not None
    counter = textwrap.dedent(
        """
        import os, sys
        r, w = os.pipe()
        n = 0
        for _ in range(200):
            try:
                pid = os.fork()
            except BlockingIOError:
                break
            if pid == 0:
                os.close(w)
                os.read(r, 1)
                os._exit(0)
            n += 1
        print(n, flush=True)
        sys.stdin.read()
        """
    )
    p = procs.start_reaped(
        cg, [sys.executable, "-c", counter], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert p.stdout is not None
    forked = int(p.stdout.readline())
    assert forked == 31  # 32 tasks: the counter itself and 31 children
    assert len(cg.live_pids()) == 32
    assert cg.kill() == 32
    p.wait(timeout=5)

    # A real fork bomb (every task forks forever): contained at the limit while the host
    # can still fork, and kill() ends it.
    pids_dir = cg.controller_dirs["pids"][1]

    def limit_hits() -> int:
        return int((pids_dir / "pids.events").read_text().split()[1])

    hits = limit_hits()
    bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    reaper = procs.start_reaped(cg, [sys.executable, "-c", bomb])
    _poll_until(lambda: limit_hits() > hits + 100, 10, "the fork bomb to hit pids.max")
    assert int((pids_dir / "pids.current").read_text()) <= 32
    assert subprocess.run(["true"], check=False).returncode == 0
    assert 1 < cg.kill(timeout=5) <= 32
    assert reaper.wait(timeout=5) == 0
    assert cg.live_pids() == []


def test_cpuset_pins_processes(mgr: CgroupManager, procs: Procs) -> None:
    _need(mgr, "cpuset")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("one CPU only: a dedicated cpuset cannot differ from the whole machine")
    cg = mgr.desktop("pinned", Limits(cpuset=(cpus[-1],)))
    assert cg is not None
    p = procs.start(cg, SLEEP)
    _poll_until(lambda: os.sched_getaffinity(p.pid) == {cpus[-1]}, 5, "the affinity to apply")
    assert cg.apply_limits(Limits()) == []
    _poll_until(lambda: os.sched_getaffinity(p.pid) == set(cpus), 5, "the affinity to reset")


# --- freeze / thaw ----------------------------------------------------------------------


def test_a_removed_desktop_group_is_forgotten(any_mgr: CgroupManager) -> None:
    """remove() takes the group off its manager: a later cleanup does not touch it again,
    and a new group of the same name is a fresh one."""
    cg = any_mgr.desktop("gone", Limits())
    assert cg is not None
    cg.remove()
    assert any_mgr.get("gone") is None and "gone" not in any_mgr.desktops
    again = any_mgr.desktop("gone", Limits())
    assert again is not None and again is not cg


def test_frozen_desktop_gets_no_cpu_and_thaw_resumes(any_mgr: CgroupManager, procs: Procs) -> None:
    frozen = any_mgr.desktop("hidden", Limits())
    control = any_mgr.desktop("shown", Limits())
    assert frozen is not None and control is not None
    procs.start(frozen, BUSY)
    procs.start(control, BUSY)
    _poll_until(lambda: (frozen.cpu_usec() or 0) > 50_000, 5, "the loop to run")

    result = frozen.freeze(timeout=2.0)
    assert result.ok, result.reason
    assert result.elapsed < 2.0
    assert frozen.frozen and frozen.usage()["frozen"] is True
    u0, c0 = frozen.cpu_usec() or 0, control.cpu_usec() or 0
    # While the control loop burns 0.3 s of CPU, the frozen one must get none.
    _poll_until(lambda: (control.cpu_usec() or 0) - c0 >= 300_000, 10, "the control loop")
    assert (frozen.cpu_usec() or 0) - u0 < 2_000

    t = time.monotonic()
    frozen.thaw()
    assert time.monotonic() - t < 0.05
    assert not frozen.frozen
    _poll_until(lambda: (frozen.cpu_usec() or 0) - u0 > 50_000, 5, "the thawed loop to run")


def test_start_freeze_is_non_blocking_with_an_fd_on_cgroup2(
    mgr: CgroupManager, procs: Procs
) -> None:
    if mgr.status.freeze_method != "cgroup2":
        pytest.skip(f"freezing here is {mgr.status.freeze_method}, not cgroup2's cgroup.freeze")
    cg = mgr.desktop("nb", Limits())
    assert cg is not None
    for _ in range(5):
        procs.start(cg, BUSY)
    _poll_until(lambda: len(cg.pids()) == 5, 5, "five members")
    op = cg.start_freeze(timeout=2.0)
    fd = op.fileno()
    assert fd is not None
    # The way the compositor's loop watches it: an empty mask, woken by EPOLLERR on change.
    ep = select.epoll()
    ep.register(fd, 0)
    try:
        while op.poll() == "pending":
            assert time.monotonic() < op.deadline + 0.5
            ep.poll(0.05)
        assert op.state == "frozen"
        assert ep.poll(0) == []  # poll() re-read the file: quiet until the next change
        cg.thaw()
        assert ep.poll(1.0) == [(fd, select.EPOLLERR)]
    finally:
        ep.close()
    op.close()
    assert not cg.frozen


def test_compositor_steps_into_a_leaf(procs: Procs) -> None:
    layout = detect_layout(
        Path("/proc/self/cgroup").read_text(), Path("/proc/self/mountinfo").read_text()
    )
    if layout.unified is None or layout.unified.own_dir is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    group = layout.unified.own_dir / f"zionwm-leaf-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        p = procs.start_outside(SLEEP, preexec_fn=lambda: (group / "cgroup.procs").write_text("0"))
        _poll_until(lambda: str(p.pid) in (group / "cgroup.procs").read_text(), 5, "the join")
        _move_into_leaf(group)
        assert (group / "cgroup.procs").read_text() == ""
        assert (group / LEAF_NAME / "cgroup.procs").read_text().split() == [str(p.pid)]
    finally:
        (group / "cgroup.kill").write_text("1")
        procs.reap()
        _poll_until(lambda: "populated 0" in (group / "cgroup.events").read_text(), 5, "empty")
        assert rmdir_tree(group) == []


VFORK_C = r"""
#include <unistd.h>
int main(void) {
    pid_t p = vfork();
    if (p == 0) { pause(); _exit(0); }  /* the parent stays blocked in vfork */
    return 0;
}
"""


def test_freeze_with_vfork_stopped_traced_and_100_tasks(
    any_mgr: CgroupManager, procs: Procs, tmp_path: Path
) -> None:
    mgr = any_mgr
    gcc, strace = shutil.which("gcc"), shutil.which("strace")
    if gcc is None or strace is None:
        pytest.skip("needs gcc (to build the vfork helper) and strace (to trace a task)")
    subprocess.run(
        [gcc, "-o", str(tmp_path / "vfork"), "-x", "c", "-"], input=VFORK_C.encode(), check=True
    )
    cg = mgr.desktop("crowd", Limits())
    assert cg is not None
    spawner = textwrap.dedent(
        """
        import os, signal
        for _ in range(100):
            if os.fork() == 0:
                break
        signal.pause()
        """
    )
    procs.start(cg, [sys.executable, "-c", spawner])
    vforker = procs.start(cg, [str(tmp_path / "vfork")])
    stopped = procs.start(cg, SLEEP)
    traced = procs.start(cg, SLEEP)
    _poll_until(lambda: len(cg.pids()) >= 105, 10, "105 members")
    # The vfork parent waits for its child in the kernel (state D) until the child execs.
    _poll_until(lambda: task_state(vforker.pid)[0] == "D", 5, "the vfork parent to wait")
    os.kill(stopped.pid, signal.SIGSTOP)
    _poll_until(lambda: task_state(stopped.pid)[0] == "T", 5, "the task to stop")
    tracer = procs.start_outside([strace, "-p", str(traced.pid), "-o", os.devnull])
    status = Path(f"/proc/{traced.pid}/status")
    _poll_until(lambda: "TracerPid:\t0" not in status.read_text(), 5, "strace to attach")

    result = cg.freeze(timeout=2.0)
    assert result.elapsed < 2.5
    if result.ok:
        assert cg.frozen
    else:
        assert result.reason and not cg.frozen
    cg.thaw()
    tracer.terminate()
    os.kill(stopped.pid, signal.SIGCONT)
    assert traced.poll() is None and stopped.poll() is None


def _fuse_stuck_task(tmp_path: Path) -> tuple[int, Path] | str:
    """A FUSE mount whose INIT is never answered: any access sleeps in D state until the
    device fd closes. Returns (device fd, mount point) or why it cannot be made here."""
    if not Path("/dev/fuse").exists():
        return "no /dev/fuse"
    libc = ctypes.CDLL(None, use_errno=True)
    mnt = tmp_path / "stuck"
    mnt.mkdir()
    fd = os.open("/dev/fuse", os.O_RDWR)
    opts = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
    if libc.mount(b"zionwm-test", str(mnt).encode(), b"fuse", 0, opts) != 0:
        os.close(fd)
        return f"mounting fuse failed: {os.strerror(ctypes.get_errno())}"
    return fd, mnt


# Seen once in six full runs: the kernel reported the cgroup frozen with the FUSE-blocked
# task inside (which of FUSE's waits it sat in is a race); a real regression fails all
# three tries.
@pytest.mark.flaky(reruns=2)
def test_freeze_blocked_by_a_d_state_task_is_rolled_back(
    any_mgr: CgroupManager, procs: Procs, tmp_path: Path
) -> None:
    made = _fuse_stuck_task(tmp_path)
    if isinstance(made, str):
        pytest.skip(made)
    fd, mnt = made
    try:
        cg = any_mgr.desktop("stuck", Limits())
        assert cg is not None
        p = procs.start(
            cg, ["stat", str(mnt / "x")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _poll_until(lambda: task_state(p.pid)[0] == "D", 5, "the task to block in D state")
        result = cg.freeze(timeout=1.0)
        assert result.elapsed < 1.5
        if any_mgr.status.freeze_method == "cgroup2":
            # cgroup2 freezes at the return to user space, which a D-state task never reaches.
            assert result.state == "failed"
            assert f"{p.pid} (stat) state D" in result.reason
            assert not cg.frozen
            assert cg.unified_dir is not None
            assert (cg.unified_dir / "cgroup.freeze").read_text().strip() == "0"
            # Switching to the desktop while a freeze is pending: thaw cancels it at once.
            op = cg.start_freeze(timeout=5.0)
            assert op.poll() == "pending"
            cg.thaw()
            assert op.poll() == "failed" and "thawed" in op.reason
            op.close()
        else:
            # The v1 freezer counts tasks in freezable kernel sleeps (FUSE's) as frozen.
            assert result.ok, result.reason
            cg.thaw()
    finally:
        os.close(fd)  # aborts the connection: the stuck stat returns ENOTCONN
        ctypes.CDLL(None).umount2(str(mnt).encode(), 2)
    assert p.wait(timeout=5) != 0


# --- kill -------------------------------------------------------------------------------


def test_kill_ends_processes_that_escaped_the_tree(
    any_mgr: CgroupManager, procs: Procs, tmp_path: Path
) -> None:
    cg = any_mgr.desktop("leaky", Limits())
    assert cg is not None
    pidfile = tmp_path / "escaped.pid"
    # The launched program double-forks a setsid'd sleeper and exits: it escapes its tree.
    escape = f'setsid sh -c "sleep 300 & echo \\$! > {pidfile}" &'
    reaper = procs.start_reaped(cg, ["sh", "-c", escape])
    _poll_until(lambda: pidfile.exists() and pidfile.read_text().strip() != "", 5, "the escape")
    escaped = int(pidfile.read_text())
    _poll_until(lambda: cg.live_pids() == [escaped], 5, "only the escaped sleeper to remain")
    assert task_state(escaped)[0] not in ("Z", "?")  # alive before the kill
    assert cg.kill(timeout=2.0) == 1
    assert cg.live_pids() == []
    assert reaper.wait(timeout=5) == 0  # it reaped the sleeper and had no children left
    assert not Path(f"/proc/{escaped}").exists()


# --- no cgroup access, and delegation to an unprivileged user ---------------------------

PROBE_AS_USER = textwrap.dedent(
    """
    import json, subprocess, sys
    from zionwm.isolation.cgroups.manager import CgroupManager
    from zionwm.isolation.spec import Limits
    mgr = CgroupManager.probe(root_name=sys.argv[1])
    out = {"status": mgr.status.to_json()}
    cg = mgr.desktop("d1", Limits(pids_max=10))
    out["desktop"] = cg is not None
    if cg is not None:
        files = [str(f) for f in cg.procs_files()]
        def join():
            for f in files:
                with open(f, "w") as fh:
                    fh.write("0")
        p = subprocess.Popen(["sleep", "300"], preexec_fn=join)
        out["member"] = p.pid in cg.pids()
        res = cg.freeze(timeout=2.0)
        out["freeze"] = res.state
        out["reason"] = res.reason
        out["frozen"] = cg.frozen
        cg.thaw()
        out["thawed"] = not cg.frozen
        out["killed"] = cg.kill()
        p.wait()
        mgr.cleanup()
    print(json.dumps(out))
    """
)


def _setpriv() -> str:
    tool = shutil.which("setpriv")
    if tool is None:
        pytest.skip("setpriv (util-linux) is missing: cannot run the probe as another user")
    return tool


def _run_as_nobody(root_name: str, preexec: Callable[[], None] | None = None) -> dict[str, Any]:
    cmd = [
        _setpriv(),
        "--reuid",
        str(NOBODY),
        "--regid",
        str(NOBODY),
        "--clear-groups",
        "--",
        sys.executable,
        "-c",
        PROBE_AS_USER,
        root_name,
    ]
    # the checkout may be in a home directory the other user cannot enter: import a copy
    copy = Path(tempfile.mkdtemp(prefix="zionwm-pkg-"))
    try:
        lib = readable_package(copy)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(lib)}
        done = subprocess.run(
            cmd, env=env, capture_output=True, timeout=60, preexec_fn=preexec, check=False
        )
    finally:
        shutil.rmtree(copy)
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_nothing_writable_disables_cleanly_with_the_reason() -> None:
    out = _run_as_nobody(f"zionwm-test-{uuid.uuid4().hex[:8]}")
    status = out["status"]
    assert status["can_limit"] == []
    assert status["can_freeze"] is False and status["can_kill"] is False
    assert out["desktop"] is False
    problems = "\n".join(status["problems"])
    assert f"uid {NOBODY}" in problems
    assert "systemd-run --user --scope -p Delegate=yes" in problems


@pytest.fixture
def delegated() -> Iterator[Path]:
    """A cgroup2 group handed to uid 65534 the way systemd delegates one."""
    layout = detect_layout(
        Path("/proc/self/cgroup").read_text(), Path("/proc/self/mountinfo").read_text()
    )
    if layout.unified is None or layout.unified.own_dir is None:
        pytest.skip("no cgroup2 hierarchy mounted: delegation is a cgroup2 feature")
    group = layout.unified.own_dir / f"zionwm-deleg-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        for p in (
            group,
            group / "cgroup.procs",
            group / "cgroup.threads",
            group / "cgroup.subtree_control",
        ):
            os.chown(p, NOBODY, NOBODY)
        yield group
    finally:
        if (group / "cgroup.kill").exists():
            (group / "cgroup.kill").write_text("1")
        _poll_until(
            lambda: "populated 0" in (group / "cgroup.events").read_text(), 5, "empty group"
        )
        assert rmdir_tree(group) == []


def test_user_delegated_group_is_found_writable_and_freezes(delegated: Path) -> None:
    def enter() -> None:
        (delegated / "cgroup.procs").write_text("0")

    out = _run_as_nobody("zionwm", preexec=enter)
    status = out["status"]
    assert status["base_paths"]["unified"] == str(delegated)
    assert status["can_freeze"] is True and status["freeze_method"] == "cgroup2"
    assert out["desktop"] is True and out["member"] is True
    assert out["freeze"] == "frozen", out["reason"]
    assert out["frozen"] is True and out["thawed"] is True
    assert out["killed"] == 1
    if status["layout"] == "hybrid":
        # v1 controllers stay root's: a user gets freezing but no limits there, and is told so.
        assert status["can_limit"] == []
        assert any("v1 controllers not writable" in p for p in status["problems"])
    assert not (delegated / "zionwm").exists()
