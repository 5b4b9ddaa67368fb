"""Idle cost and memory: compositor CPU over an idle period with 10 windows, resident
memory with 0 and 50 windows, and zionwm's per-desktop overhead.

    .venv/bin/python -m benchmarks.idle [--seconds 30] [--windows 10] [--many 50]

- Idle CPU: `--windows` static windows (placed alike in both compositors), no input, no
  animation; utime+stime of the compositor over `--seconds`.
- RSS/PSS of the compositor process at start (0 windows) and with 5 and `--many`
  weston-simple-shm windows on one desktop.
- Per desktop (zionwm): the compositor's RSS plus the PSS of its helper processes and the
  desktops' cgroup memory, with 2 and with 10 desktops whose network is `full` (each such
  desktop has a network namespace and helpers); the difference divided by 8. The peer
  figure is from the literature: a Qubes qube starts at about 400 MB.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import (
    CPU_CLOCK,
    Drainer,
    ZionwmSession,
    cpu_percent,
    cpu_seconds,
    loaded_libraries,
    populate,
    pss_kib,
    ratio,
    rss_kib,
    session,
    wait_for,
)
from .pointer import spread, static_windows

log = logging.getLogger(__name__)

QUBES_QUBE_MIB = 400  # Qubes OS documentation: minimum memory of a qube
FEW_WINDOWS = 5  # the memory budget's "with a few clients" point


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(k) for k in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            continue
        out.extend(kids)
        todo.extend(kids)
    return out


def _cgroup_memory_kib(instance_root: str) -> int:
    """Sum of memory.current (v2) or memory.usage_in_bytes (v1) of zionwm's cgroups whose
    path contains `instance_root`."""
    total = 0
    for base, name in (
        (Path("/sys/fs/cgroup"), "memory.current"),
        (Path("/sys/fs/cgroup/memory"), "memory.usage_in_bytes"),
    ):
        if not base.is_dir():
            continue
        for f in base.rglob(name):
            if f.parent.parent.name == f"zionwm-{instance_root}":
                try:
                    total += int(f.read_text()) // 1024
                except (OSError, ValueError):
                    pass
    return total


def idle_cpu(kind: str, seconds: float, windows: int) -> dict[str, Any]:
    """Idle CPU with `windows` static windows; RSS/PSS at start (no window yet)."""
    with session(kind) as s:
        s.show(1)
        rss0, pss0 = rss_kib(s.pid), pss_kib(s.pid)
        libraries = loaded_libraries(s.pid)
        markers = static_windows(s, windows)
        drainer = Drainer([m.c.sock for m in markers])
        try:
            c0, t0 = cpu_seconds(s.pid), time.monotonic()
            end = t0 + seconds
            while time.monotonic() < end:
                time.sleep(min(0.5, max(0.0, end - time.monotonic())))
            cpu, wall = cpu_seconds(s.pid) - c0, time.monotonic() - t0
        finally:
            drainer.stop()
            for m in markers:
                m.close()
    return {
        "compositor": kind,
        "windows": windows,
        "seconds": round(wall, 2),
        "cpu_s": round(cpu, 3),
        "cpu_percent": round(cpu_percent(cpu, wall), 3),
        "cpu_measured_by": CPU_CLOCK,
        "rss_start_kib": rss0,
        "pss_start_kib": pss0,
        "libraries": libraries,
    }


def floor_memory() -> dict[str, Any]:
    """RSS/PSS of benchmarks/floor.py (the smallest compositor of zionwm's own stack: Python,
    pywlroots, pywayland, xkbcommon) once its output shows its first frame, run the way the
    benchmarks run zionwm (headless, pixman, 1280x720)."""
    runtime = Path(tempfile.mkdtemp(prefix="zbench-floor-"))
    runtime.chmod(0o700)
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(runtime),
        "WLR_BACKENDS": "headless",
        "WLR_RENDERER": "pixman",
        "WLR_LIBINPUT_NO_DEVICES": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.floor"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("ready"):
            raise RuntimeError(f"the floor compositor did not start (exit {proc.poll()})")
        return {
            "compositor": "floor",
            "rss_start_kib": rss_kib(proc.pid),
            "pss_start_kib": pss_kib(proc.pid),
        }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(runtime, ignore_errors=True)


def memory(kind: str, many: int, few: int = FEW_WINDOWS) -> dict[str, Any]:
    """RSS/PSS with 0, `few` and `many` weston-simple-shm windows on one desktop."""
    out: dict[str, Any] = {"compositor": kind}
    with session(kind) as s:
        s.show(1)
        shown = 0
        for count in sorted({0, few, many}):
            populate(s, 1, count - shown, ["weston-simple-shm"], timeout=120)
            shown = count
            out[f"windows_{count}"] = {"rss_kib": rss_kib(s.pid), "pss_kib": pss_kib(s.pid)}
    return out


def per_desktop() -> dict[str, Any]:
    totals = {}
    for n in (2, 10):
        with session("zionwm", desktops=n, network="full") as s:
            assert isinstance(s, ZionwmSession)
            s.show(1)
            # cgroups and network namespaces come with a desktop's first program: start
            # one small program in each, so the figure is a desktop in use
            for i in range(1, n + 1):
                s.launch(i, ["sleep", "600"])
            want = 2 * n
            pid = s.pid
            wait_for(lambda: len(_descendants(pid)) >= want, 30, "a sandbox per desktop")  # noqa: B023
            helpers = _descendants(s.pid)
            helper_pss = sum(_safe(pss_kib, p) for p in helpers)
            cg = _cgroup_memory_kib(s.comp.env["ZIONWM_INSTANCE"])
            totals[n] = {
                "compositor_rss_kib": rss_kib(s.pid),
                "helpers": len(helpers),
                "helpers_pss_kib": helper_pss,
                "cgroup_kib": cg,
                "total_kib": rss_kib(s.pid) + helper_pss + cg,
            }
    per = (totals[10]["total_kib"] - totals[2]["total_kib"]) / 8
    return {
        "desktops_2": totals[2],
        "desktops_10": totals[10],
        "per_desktop_kib": round(per, 1),
        "qubes_qube_mib_literature": QUBES_QUBE_MIB,
        "ratio_to_qubes": ratio(per / 1024, QUBES_QUBE_MIB, 4),
    }


def _safe(fn: Any, pid: int) -> int:
    try:
        return int(fn(pid))
    except OSError:
        return 0


def measure(
    seconds: float = 30, windows: int = 10, many: int = 50, runs: int = 3
) -> dict[str, Any]:
    """Idle CPU and memory at start, `runs` times per compositor, alternating run by run
    (the first compositor flips every run), and the floor of zionwm's stack
    (benchmarks/floor.py) once a run; memory with `many` windows once each."""
    out: dict[str, Any] = {"idle": [], "memory": [], "floor": [], "runs": runs}
    for i in range(runs):
        for kind in ("zionwm", "sway") if i % 2 == 0 else ("sway", "zionwm"):
            log.info("idle: %s, run %d/%d", kind, i + 1, runs)
            try:
                row = idle_cpu(kind, seconds, windows)
            except Exception as e:
                log.exception("idle on %s failed", kind)
                row = {"compositor": kind, "error": f"{type(e).__name__}: {e}"}
            row["run"] = i + 1
            out["idle"].append(row)
        try:
            out["floor"].append(floor_memory())
        except Exception as e:
            log.exception("floor compositor failed")
            out["floor"].append({"compositor": "floor", "error": f"{type(e).__name__}: {e}"})
    for kind in ("sway", "zionwm"):
        log.info("memory: %s", kind)
        try:
            out["memory"].append(memory(kind, many))
        except Exception as e:
            log.exception("memory on %s failed", kind)
            out["memory"].append({"compositor": kind, "error": f"{type(e).__name__}: {e}"})
    out["summary"] = {}
    for kind in ("sway", "zionwm"):
        ok = [r for r in out["idle"] if r["compositor"] == kind and "error" not in r]
        out["summary"][kind] = {
            "cpu_percent": spread([r["cpu_percent"] for r in ok]),
            "rss_start_kib": spread([r["rss_start_kib"] for r in ok]),
            "pss_start_kib": spread([r["pss_start_kib"] for r in ok]),
            "libraries": ok[0].get("libraries") if ok else None,
        }
    floor = [r for r in out["floor"] if "error" not in r]
    out["summary"]["floor"] = {
        "rss_start_kib": spread([r["rss_start_kib"] for r in floor]),
        "pss_start_kib": spread([r["pss_start_kib"] for r in floor]),
    }
    try:
        out["per_desktop"] = per_desktop()
    except Exception as e:
        log.exception("per-desktop overhead failed")
        out["per_desktop"] = {"error": f"{type(e).__name__}: {e}"}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--windows", type=int, default=10)
    ap.add_argument("--many", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    json.dump(measure(args.seconds, args.windows, args.many, args.runs), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
