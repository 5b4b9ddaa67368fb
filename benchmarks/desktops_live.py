"""Desktops changed while zionwm runs: how long a create, a limit change and a delete take
through the control socket (validation, fsynced write of the desktops file, live apply),
and what the usage samples cost the compositor while a client subscribes to them.

    .venv/bin/python -m benchmarks.desktops_live [--runs 20] [--idle 10] [--out FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import cpu_seconds
from benchmarks.stats import cpu_percent, emit_json, summarize_ms
from tests.harness import Compositor
from zionwm.ctl import ControlClient

CONFIG = """\
from zionwm.config import desktop
desktop("personal", colour="#3b82f6")
desktop("work", colour="#22c55e")
"""


def _idle_cpu(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return cpu_percent(cpu_seconds(pid) - c0, time.monotonic() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--idle", type=float, default=10.0, help="seconds of each idle window")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        comp = Compositor(
            Path(tmp), config_text=CONFIG, extra_env={"ZIONWM_NO_QUARANTINE": "1"}
        ).start()
        try:
            assert comp.proc is not None
            ctl = ControlClient(comp.runtime / "zionwm" / "ipc.sock")
            create, change, delete = [], [], []
            for n in range(args.runs + 1):
                name = f"b{n}"
                t0 = time.perf_counter()
                ctl.command(["desktop", "create", name, "memory_max=1G"])
                t1 = time.perf_counter()
                ctl.command(["desktop", "set", name, "memory_max=2G", "cpu_max=150%"])
                t2 = time.perf_counter()
                ctl.command(["desktop", "delete", name, "--erase"])
                t3 = time.perf_counter()
                if n:  # the first round warms caches up
                    create.append(t1 - t0)
                    change.append(t2 - t1)
                    delete.append(t3 - t2)
            idle = _idle_cpu(comp.proc.pid, args.idle)
            sub = ControlClient(comp.runtime / "zionwm" / "ipc.sock", timeout=None)
            samples: list[object] = []
            reader = threading.Thread(
                target=lambda: samples.extend(sub.events(["usage"])), daemon=True
            )
            reader.start()
            sampling = _idle_cpu(comp.proc.pid, args.idle)
            ctl.close()
        finally:
            comp.stop(check=False)
    emit_json(
        {
            "benchmark": "desktops_live",
            "desktops": 2,
            "create": summarize_ms(create),
            "set_limits": summarize_ms(change),
            "delete": summarize_ms(delete),
            "idle_cpu_percent": round(idle, 3),
            "idle_cpu_percent_with_usage_subscriber": round(sampling, 3),
            "usage_events_seen": len(samples),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
