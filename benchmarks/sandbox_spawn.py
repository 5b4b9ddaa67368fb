"""Spawn overhead of zionwm's production sandbox, side by side with a bare fork/exec and firejail.

    .venv/bin/python benchmarks/sandbox_spawn.py [--runs 100] [--frames 10] [--only-sandbox]

Measures, over N runs each, wall time from "start" to "reaped" of /bin/true:
- bare: subprocess fork/exec of /bin/true;
- zionwm: Launcher.launch() of /bin/true with the full production policy (seccomp, synthesized
  /etc, fd-bound home/Shared/Outbox), then wait; the same placed into a cgroup of its own
  first, as the compositor does (when a cgroup2 hierarchy is writable here); and (N/5 runs)
  the same with a writable /usr: a program on a desktop whose /usr keeper runs already (the
  keeper's namespaces entered by the placement helper), and the first program of a desktop
  (its keeper started: namespaces, fuse-overlayfs, the mount);
- firejail: `firejail --quiet --noprofile /bin/true` (when installed);
- the minimal bwrap and the sandbox are measured alternately (one of each per round), so the
  sandbox's figure over the minimal bwrap (`zionwm_sandbox_over_minimal`: the median and
  quartiles of the per-round differences) compares the two under the same load;
and, when weston is installed, the time from launch to the first frame weston-simple-shm
sees presented (its first wl_callback.done after a commit) inside the sandbox vs. unsandboxed.
--only-sandbox measures just the minimal bwrap and the sandbox (for an A/B of a policy or
launcher change). Prints one JSON document (milliseconds).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import percentile, summarize_ms, timed
from zionwm import paths
from zionwm.isolation.launcher import Launcher
from zionwm.isolation.spec import DesktopSpec


def first_frame(
    start: Callable[[Path], subprocess.Popen[bytes] | object], log: Path, timeout: float = 20
) -> float:
    """Seconds from start() to the first presented frame reported in the client's log."""
    t0 = time.perf_counter()
    handle = start(log)
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        commit = text.find(".commit()")
        if commit >= 0 and "wl_callback@" in text[commit:] and ".done(" in text[commit:]:
            elapsed = time.perf_counter() - t0
            stop(handle)
            return elapsed
        time.sleep(0.001)
    stop(handle)
    raise TimeoutError("no frame presented")


def stop(handle: object) -> None:
    if isinstance(handle, subprocess.Popen):
        handle.terminate()
        handle.wait(10)
    else:
        handle.terminate()  # type: ignore[attr-defined]
        handle.wait(10)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument(
        "--only-sandbox", action="store_true", help="only the minimal bwrap and the sandbox"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the no-display note of each /bin/true launch
    root = Path(tempfile.mkdtemp(prefix="zionwm-bench-"))
    runtime = root / "run"
    runtime.mkdir(mode=0o700)
    os.environ.update(
        {
            "XDG_DATA_HOME": str(root / "data"),
            "XDG_RUNTIME_DIR": str(runtime),
            "HOME": str(root / "home"),
        }
    )
    result: dict[str, object] = {"host": os.uname().release, "uid": os.getuid()}
    launcher: Launcher | None = None
    try:
        launcher = Launcher()
        spec = DesktopSpec(name="bench", colour=(1.0, 1.0, 1.0, 1.0))
        devnull = subprocess.DEVNULL
        if not args.only_sandbox:
            result["bare_fork_exec"] = summarize_ms(
                timed(lambda: subprocess.run(["/bin/true"], check=True), args.runs)
            )

        # bubblewrap's own floor for the same binary, in the same run: the sandbox's figure
        # is read against it
        minimal = [
            "bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev",
            "--proc", "/proc", "--die-with-parent", "/bin/true",
        ]  # fmt: skip

        def sandboxed() -> None:
            rc = launcher.launch(spec, ["/bin/true"], stdout=devnull, stderr=devnull).wait(30)
            if rc != 0:
                raise RuntimeError(f"sandboxed /bin/true exited {rc}")

        floor, ours = alternately(lambda: subprocess.run(minimal, check=True), sandboxed, args.runs)
        result["minimal_bwrap"] = summarize_ms(floor)
        result["zionwm_sandbox"] = summarize_ms(ours)
        result["zionwm_sandbox_over_minimal"] = spread_ms(
            [b - a for a, b in zip(floor, ours, strict=True)]
        )
        if args.only_sandbox:
            _print(result)
            return
        group = _bench_cgroup()
        if group is not None:
            # the compositor's path: the sandbox placed into its desktop's cgroup before bwrap
            placed = Launcher(cgroup_procs=lambda desktop: [group / "cgroup.procs"])

            def in_cgroup() -> None:
                rc = placed.launch(spec, ["/bin/true"], stdout=devnull, stderr=devnull).wait(30)
                if rc != 0:
                    raise RuntimeError(f"sandboxed /bin/true in a cgroup exited {rc}")

            try:
                result["zionwm_sandbox_in_cgroup"] = summarize_ms(timed(in_cgroup, args.runs))
            finally:
                _remove_cgroup(group)
        else:
            result["zionwm_sandbox_in_cgroup"] = "no writable cgroup2 hierarchy"
        if shutil.which("fuse-overlayfs") and os.path.exists("/dev/fuse"):
            layered = DesktopSpec(name="benchlayer", colour=(1.0, 1.0, 1.0, 1.0), writable_usr=True)

            def with_layer() -> None:
                rc = launcher.launch(layered, ["/bin/true"], stdout=devnull, stderr=devnull).wait(
                    30
                )
                if rc != 0:
                    raise RuntimeError(f"sandboxed /bin/true with a writable /usr exited {rc}")

            result["zionwm_sandbox_writable_usr"] = summarize_ms(
                timed(with_layer, max(1, args.runs // 5))
            )
            firsts = iter(range(args.runs + 1))

            def first_of_desktop() -> None:
                # a new desktop each time: its first program starts its keeper
                fresh = DesktopSpec(
                    name=f"benchfirst{next(firsts)}", colour=(1.0, 1.0, 1.0, 1.0), writable_usr=True
                )
                rc = launcher.launch(fresh, ["/bin/true"], stdout=devnull, stderr=devnull).wait(30)
                if rc != 0:
                    raise RuntimeError(f"first /bin/true with a writable /usr exited {rc}")
                launcher.desktop_stopped(fresh.name)

            result["zionwm_sandbox_writable_usr_first"] = summarize_ms(
                timed(first_of_desktop, max(1, args.runs // 5))
            )
        if shutil.which("firejail"):
            fj = ["firejail", "--quiet", "--noprofile", "/bin/true"]
            result["firejail_noprofile"] = summarize_ms(
                timed(
                    lambda: subprocess.run(fj, check=True, stdout=devnull, stderr=devnull),
                    args.runs,
                )
            )
        else:
            result["firejail_noprofile"] = "firejail not installed"
        if shutil.which("weston") and shutil.which("weston-simple-shm") and args.frames > 0:
            result.update(frame_benchmark(root, launcher, spec, args.frames))
        else:
            result["first_frame"] = "weston / weston-simple-shm not installed"
    finally:
        if launcher is not None:
            launcher.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    _print(result)


def _print(result: dict[str, object]) -> None:
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


def alternately(
    a: Callable[[], object], b: Callable[[], object], runs: int
) -> tuple[list[float], list[float]]:
    """Wall times of `runs` calls each of a and b, in seconds, one of each per round (which
    goes first alternates), after one untimed warm-up call of each."""
    a()
    b()
    times: tuple[list[float], list[float]] = ([], [])
    for n in range(runs):
        order = ((0, a), (1, b)) if n % 2 == 0 else ((1, b), (0, a))
        for slot, fn in order:
            t0 = time.perf_counter()
            fn()
            times[slot].append(time.perf_counter() - t0)
    return times


def spread_ms(samples_s: list[float]) -> dict[str, float | int]:
    """Median and quartiles of durations (or differences) in seconds, in milliseconds."""
    if not samples_s:
        return {"runs": 0}
    return {
        "runs": len(samples_s),
        "median_ms": round(percentile(samples_s, 50) * 1000, 2),
        "p25_ms": round(percentile(samples_s, 25) * 1000, 2),
        "p75_ms": round(percentile(samples_s, 75) * 1000, 2),
    }


def _bench_cgroup() -> Path | None:
    """A fresh cgroup of our own on the cgroup2 hierarchy, when this user may make one."""
    with open("/proc/self/mountinfo") as f:
        roots = [line.split()[4] for line in f if " - cgroup2 " in line]
    for root in roots:
        group = Path(root) / f"zionwm-bench-{os.getpid()}"
        try:
            group.mkdir()
        except OSError:
            continue
        return group
    return None


def _remove_cgroup(group: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            group.rmdir()
            return
        except OSError:  # the last reaped sandbox may still be leaving it
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def frame_benchmark(
    root: Path, launcher: Launcher, spec: DesktopSpec, runs: int
) -> dict[str, object]:
    sock_dir = paths.desktop_socket_dir(spec.name)
    sock_dir.mkdir(parents=True, mode=0o700)
    weston = subprocess.Popen(
        [
            "weston",
            "--backend=headless-backend.so",
            "--socket=wayland-0",
            "--idle-time=0",
            f"--log={root / 'w.log'}",
        ],
        env={**os.environ, "XDG_RUNTIME_DIR": str(sock_dir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not (sock_dir / "wayland-0").exists():
            if time.monotonic() > deadline or weston.poll() is not None:
                return {"first_frame": "weston did not start"}
            time.sleep(0.01)

        def in_sandbox(log: Path) -> object:
            with open(log, "wb") as f:
                return launcher.launch(
                    spec,
                    ["weston-simple-shm"],
                    stderr=f.fileno(),
                    extra_env={"WAYLAND_DEBUG": "client"},
                )

        def bare(log: Path) -> subprocess.Popen[bytes]:
            with open(log, "wb") as f:
                return subprocess.Popen(
                    ["weston-simple-shm"],
                    stderr=f,
                    env={
                        "XDG_RUNTIME_DIR": str(sock_dir),
                        "WAYLAND_DISPLAY": "wayland-0",
                        "WAYLAND_DEBUG": "client",
                    },
                )

        sandboxed = [first_frame(in_sandbox, root / f"s{i}.log") for i in range(runs)]
        unsandboxed = [first_frame(bare, root / f"b{i}.log") for i in range(runs)]
        return {
            "first_frame_weston_simple_shm_sandboxed": summarize_ms(sandboxed),
            "first_frame_weston_simple_shm_bare": summarize_ms(unsandboxed),
        }
    finally:
        weston.terminate()
        weston.wait(10)


if __name__ == "__main__":
    main()
