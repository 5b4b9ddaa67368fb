"""Cost of a desktop's own Xwayland: start time of the first X11 program, and memory.

    .venv/bin/python benchmarks/x11.py [--runs 5] [--rootful]

A headless zionwm (the test harness's) with `runs` desktops that allow X11. For each desktop
in turn: `zionctl launch DESKTOP -- xeyes` and the time until xeyes is listed by `zionctl
windows` (cold: that desktop's Xwayland is started by this very connection, in the
desktop's sandbox, and its window manager attached), then a second xeyes in the same desktop
(warm). Memory: RSS and PSS (smaps_rollup) of one Xwayland serving one xeyes. `--rootful`
measures the fallback (one rootful Xwayland window per desktop) the same way; there the
first "window" is Xwayland's root, listed before xeyes draws in it. Prints one JSON
document (milliseconds, KiB).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import summarize_ms
from tests.harness import Compositor, wait_for


def _config(n: int) -> str:
    lines = ["from zionwm.config import desktop"]
    for i in range(n):
        lines.append(f'desktop("x{i}", colour="#22c55e", x11=True, freeze_after=None)')
    return "\n".join(lines) + "\n"


def _launch_until_listed(comp: Compositor, desktop: str, before: int) -> float:
    t0 = time.perf_counter()
    comp.zionctl("launch", desktop, "--", "xeyes")
    wait_for(lambda: len(comp.windows(desktop)) > before, 60, f"xeyes on {desktop}", 0.005)
    return time.perf_counter() - t0


def _xwayland_pid(comp: Compositor, desktop: str) -> int:
    m = re.search(r"\(pid (\d+)\)", str(comp.zjson("status")["x11"][desktop]))
    assert m
    todo = [int(m.group(1))]
    while todo:
        pid = todo.pop()
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "Xwayland":
                return pid
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    raise RuntimeError("no Xwayland")


def _memory(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if parts[0] in ("Rss:", "Pss:"):
            fields[parts[0].rstrip(":").lower() + "_kib"] = int(parts[1])
    return fields


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rootful", action="store_true")
    args = ap.parse_args()
    if args.rootful:
        os.environ["ZIONWM_X11_ROOTFUL"] = "1"
    root = Path(tempfile.mkdtemp(prefix="zionwm-x11-bench-"))
    comp = Compositor(root, config_text=_config(args.runs)).start()
    cold: list[float] = []
    warm: list[float] = []
    memory: list[dict[str, int]] = []
    try:
        for i in range(args.runs):
            d = f"x{i}"
            comp.zionctl("switch", d)
            cold.append(_launch_until_listed(comp, d, 0))
            if not args.rootful:
                warm.append(_launch_until_listed(comp, d, 1))
            time.sleep(1)  # let xeyes draw before reading the server's memory
            memory.append(_memory(_xwayland_pid(comp, d)))
        ready = [float(m.group(1)) for m in re.finditer(r"Xwayland ready in (\d+) ms", comp.log())]
    finally:
        comp.stop(check=False)
    out: dict[str, Any] = {
        "mode": "rootful" if args.rootful else "rootless",
        "first_x11_program_listed_ms": summarize_ms(cold),
        "xwayland_ready_ms": summarize_ms([r / 1000 for r in ready]) if ready else None,
        "second_x11_program_listed_ms": summarize_ms(warm) if warm else None,
        "xwayland_memory_kib": memory,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
