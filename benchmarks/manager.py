"""zionwm-manager: time from launch to its first frame, its memory, and what its live
graphs cost the compositor (the `usage` samples it subscribes to while the list shows).

    .venv/bin/python -m benchmarks.manager [--runs 5] [--idle 15] [--out FILE]

Headless (pixman, GTK's cairo renderer on wl_shm), two desktops, one of them running a
busy program so the graphs move.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import cpu_seconds, rss_kib
from benchmarks.stats import cpu_percent, emit_json, summarize_ms
from tests.harness import VENV_BIN, Compositor, wait_for

CONFIG = """\
from zionwm.config import desktop
desktop("personal", colour="#3b82f6")
desktop("work", colour="#22c55e")
"""
FIRST_FRAME = re.compile(rb"first frame (\d+) ms after start")


def _cpu(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return cpu_percent(cpu_seconds(pid) - c0, time.monotonic() - t0)


def _start(comp: Compositor, log: Path) -> tuple[subprocess.Popen[bytes], float, float]:
    """Start the manager; wait for its first frame. Returns the process, the time from
    exec to first frame seen from outside, and the time the manager itself measured from
    its main() (imports of GTK excluded from neither: both include them)."""
    env = comp.host_env(ZIONWM_LOG="info", GSK_RENDERER="cairo")
    out = open(log, "wb")  # noqa: SIM115 - closed by the caller's process end
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(VENV_BIN / "zionwm-manager")], env=env, stdout=out, stderr=subprocess.STDOUT
    )
    m = wait_for(lambda: FIRST_FRAME.search(log.read_bytes()), 60, "the manager's first frame")
    outside = time.perf_counter() - t0
    return proc, outside, int(m.group(1)) / 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--idle", type=float, default=15.0, help="seconds of each CPU window")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        comp = Compositor(root, config_text=CONFIG, extra_env={"ZIONWM_NO_QUARANTINE": "1"})
        comp.start()
        try:
            assert comp.proc is not None
            # something for the graphs to show: a program that uses some CPU in "work"
            comp.zionctl("launch", "work", "--", "sh", "-c", "while :; do sleep 0.01; done")
            outside, inside = [], []
            for n in range(args.runs + 1):
                proc, o, i = _start(comp, root / f"manager-{n}.log")
                if n:  # the first run warms the page cache up
                    outside.append(o)
                    inside.append(i)
                if n < args.runs:
                    proc.terminate()
                    proc.wait(10)
            time.sleep(3)  # the window settled, a few usage samples drawn
            rss = rss_kib(proc.pid)
            with_graphs = _cpu(comp.proc.pid, args.idle)
            manager_cpu = _cpu(proc.pid, args.idle)
            proc.terminate()
            proc.wait(10)
            wait_for(lambda: not comp.zjson("status").get("usage_sampling"), 10, "sampling off")
            without = _cpu(comp.proc.pid, args.idle)
        finally:
            comp.stop(check=False)
    emit_json(
        {
            "benchmark": "manager",
            "launch_to_first_frame_outside": summarize_ms(outside),
            "main_to_first_frame_inside": summarize_ms(inside),
            "manager_rss_kib": rss,
            "compositor_cpu_percent_with_live_graphs": round(with_graphs, 3),
            "compositor_cpu_percent_without_manager": round(without, 3),
            "manager_cpu_percent_live_graphs": round(manager_cpu, 3),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
