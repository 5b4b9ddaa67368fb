"""How long the compositor's thread stalls while a desktop's network is built by a launch.

Usage (root, the privileged network path):

    python -m benchmarks.net_stall [--runs 5] [--base TREE] [--out FILE]

Each run starts a headless zionwm with three `full` desktops. A thread sends `ping`
requests back to back on a control connection of its own while, in turn:
`launch d1 -- true` builds d1's network (the first build of the session, so the
network-ops process starts too) and starts the program; `launch d1 -- true` again (network
built: the sandbox's start alone); `net d2 on` builds d2's network (the ops process
running; no program); `launch d2 -- true` (the first start in d2, its network built);
`launch d3 -- true` builds d3's network and starts the program. A ping's
round trip is at least as long as any stall of the compositor's thread during it (no frame
is drawn then either): the longest round trip between a command's request and its answer
is the figure, next to the command's own answer time.

With `--base TREE` (another checkout with its own `.venv`), runs alternate between that
tree and this one (base first), in the same sitting. Results are JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.stats import emit_json

HERE = Path(__file__).resolve().parents[1]

# Run in the tree measured, by its own interpreter: everything it imports is that tree's.
MEASURE = r"""
import json, shutil, statistics, tempfile, threading, time
from pathlib import Path
from benchmarks.common import ControlClient, ZionwmSession

root = Path(tempfile.mkdtemp(prefix="zw-netstall-"))
s = ZionwmSession(root, desktops=3, network="full")
out = {}
try:
    pinger = ControlClient(s.comp.runtime / "zionwm" / "ipc.sock")
    phases = (
        ("launch_first_build", ["launch", "d1", "--", "true"]),
        ("launch_built", ["launch", "d1", "--", "true"]),
        ("net_on_build", ["net", "d2", "on"]),
        ("launch_first_built", ["launch", "d2", "--", "true"]),
        ("launch_build", ["launch", "d3", "--", "true"]),
    )
    for label, command in phases:
        samples = []
        stop = threading.Event()

        def ping():
            while not stop.is_set():
                t = time.monotonic()
                pinger.call("ping")
                samples.append((t, time.monotonic() - t))

        th = threading.Thread(target=ping)
        th.start()
        while len(samples) < 50:  # quiet pings before the launch
            time.sleep(0.005)
        t0 = time.monotonic()
        s.ctl.call("command", argv=command)
        t1 = time.monotonic()
        after = len(samples)
        while len(samples) < after + 20:  # and after it
            time.sleep(0.005)
        stop.set()
        th.join()
        during = [lat for t, lat in samples if t + lat >= t0 and t <= t1]
        quiet = [lat for t, lat in samples if t + lat < t0]
        out[label] = {
            "answer_ms": round((t1 - t0) * 1000, 2),
            "longest_ping_ms": round(max(during) * 1000, 2),
            "pings_during": len(during),
            "quiet_ping_median_ms": round(statistics.median(quiet) * 1000, 3),
        }
    pinger.close()
finally:
    s.stop()
    shutil.rmtree(root, ignore_errors=True)
print(json.dumps(out))
"""


def measure(tree: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run(
        [str(tree / ".venv" / "bin" / "python"), "-c", MEASURE],
        check=False,
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode != 0:
        raise RuntimeError(f"measuring {tree} failed: {r.stderr[-2000:]}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for phase in runs[0]:
        for key in ("longest_ping_ms", "answer_ms"):
            values = sorted(r[phase][key] for r in runs)
            out[f"{phase}.{key}"] = {
                "median": round(statistics.median(values), 2),
                "min": values[0],
                "max": values[-1],
            }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--base", type=Path, help="another checkout to compare with")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    trees = {"this": HERE} if args.base is None else {"base": args.base, "this": HERE}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for _ in range(args.runs):
        for name, tree in trees.items():  # interleaved: base, this, base, this...
            runs[name].append(measure(tree))
    result = {
        "runs": runs,
        "summary": {name: summary(r) for name, r in runs.items()},
        "python": sys.version.split()[0],
    }
    emit_json(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
