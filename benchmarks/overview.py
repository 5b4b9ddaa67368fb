"""Overview open latency, beside the desktop switch latency, in one zionwm run.

    .venv/bin/python -m benchmarks.overview [--reps 100] [--windows 1,10] [--json]

Four desktops; desktops 1 and 2 get N weston-simple-shm windows each (launched the
production way, sandboxed). A trusted host client (`common.Probe`) presses the overview's
key through zwp_virtual_keyboard_v1 after a random 0-17 ms pause, and reads frames with
zwlr_screencopy copy_with_damage until one shows the overview's backdrop. Two figures:

- external: from the key leaving the probe to the commit time of the first frame showing
  the overview (the compositor's CLOCK_MONOTONIC timestamp of that frame);
- internal: the compositor's own record (`status` -> overview.open_latency_ms), from
  handling the key to the return of the scene commit of the next output frame.

The overview is bound to Super+9 here (the probe types Super+digit); the default config
binds Super+Escape. The same key closes it again before the next repetition. Then, in the
same compositor run with the same windows, `switch.run_series` times as many desktop switches, so
the two latencies are measured side by side.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import switch
from .common import (
    Compositor,
    ControlClient,
    Probe,
    ZionwmSession,
    populate,
    summarize,
    zionwm_config,
)

log = logging.getLogger(__name__)

BACKDROP = (13, 13, 18)  # compositor/overview.py's BACKDROP as 8-bit RGB
PROBE_POINT = (12, 40)  # below the strip, left of every cell: black unless the overview is open
OVERVIEW_DIGIT = 9


def _is_backdrop(px: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 3 for a, b in zip(px, BACKDROP, strict=True))


class OverviewSession(ZionwmSession):
    """ZionwmSession with four desktops and the overview bound to Super+9."""

    def __init__(self, root: Path) -> None:
        # Super+1..8 switch (as zionwm_config binds them), Super+9 opens the overview
        config = zionwm_config(4).replace("range(1, 10)", f"range(1, {OVERVIEW_DIGIT})")
        config += f'bind("Super+{OVERVIEW_DIGIT}", "overview")\n'
        self.comp = Compositor(root, config_text=config, extra_env={"ZIONWM_LOG": "warning"})
        self.comp.start()
        self.ctl = ControlClient(self.comp.runtime / "zionwm" / "ipc.sock")
        self._names = [f"d{i + 1}" for i in range(4)]

    def overview_samples(self) -> list[float]:
        return list(self.ctl.call("status")["overview"]["open_latency_ms"]["samples"])


def time_overview(s: OverviewSession, reps: int, seed: int) -> dict[str, Any]:
    probe = Probe(s.wayland_socket)
    rng = random.Random(seed)
    external: list[float] = []
    missed = 0
    before = len(s.overview_samples())
    try:
        s.show(1)
        for _ in range(reps):
            time.sleep(rng.uniform(0, 0.017))
            frame = probe.arm()
            t0 = probe.super_digit(OVERVIEW_DIGIT)
            end = time.monotonic() + 3
            while True:
                f = probe.collect(frame, max(0.01, end - time.monotonic()))
                if _is_backdrop(f.pixel(*PROBE_POINT)):
                    external.append((f.when_ns - t0) / 1e6)
                    break
                if time.monotonic() > end:
                    missed += 1
                    break
                frame = probe.arm()
            # close it and wait until a frame shows the desktop again (not measured)
            frame = probe.arm()
            probe.super_digit(OVERVIEW_DIGIT)
            end = time.monotonic() + 3
            while time.monotonic() < end:
                f = probe.collect(frame, max(0.01, end - time.monotonic()))
                if not _is_backdrop(f.pixel(*PROBE_POINT)):
                    break
                frame = probe.arm()
    finally:
        probe.close()
    internal = s.overview_samples()[before:]
    return {
        "reps": reps,
        "missed": missed,
        "external_ms": summarize(external),
        "internal_ms": summarize(internal),
        "raw_external_ms": [round(x, 3) for x in external],
        "raw_internal_ms": [round(x, 3) for x in internal],
    }


def measure(reps: int, counts: list[int]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for count in counts:
        root = Path(tempfile.mkdtemp(prefix="zbench-overview-"))
        s = OverviewSession(root)
        try:
            for d in (1, 2):
                populate(s, d, count, switch.CLIENT)
            row = {"windows_per_desktop": count, "overview": time_overview(s, reps, count)}
            sw = switch.run_series(s, 0, reps, False, seed=count)
            row["switch"] = {k: sw[k] for k in ("external_ms", "internal_ms", "missed")}
            rows.append(row)
        finally:
            s.stop()
            shutil.rmtree(root, ignore_errors=True)
    return {"series": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--windows", default="1,10")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    result = measure(args.reps, [int(x) for x in args.windows.split(",")])
    if args.json:
        print(json.dumps(result))
    else:
        for row in result["series"]:
            print(
                f"{row['windows_per_desktop']} windows/desktop: "
                f"overview open p50 {row['overview']['external_ms'].get('median')} ms "
                f"p99 {row['overview']['external_ms'].get('p99')} ms "
                f"(internal p50 {row['overview']['internal_ms'].get('median')}); "
                f"switch p50 {row['switch']['external_ms'].get('median')} ms "
                f"p99 {row['switch']['external_ms'].get('p99')} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
