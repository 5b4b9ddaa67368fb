"""What a desktop's own session bus costs: the extra start time of a desktop's first program
(starting the desktop's dbus-daemon and xdg-dbus-proxy and connecting zionwm's services) and
the memory the bus keeps per desktop.

    .venv/bin/python benchmarks/desktop_bus.py [--runs 30]

Measures, over N runs:
- first_program_extra: desktopbus.bus.start() + DesktopService.connect(), i.e. what the
  launcher waits for before the first program of a desktop starts (later programs wait for
  nothing: the bus is running); and the same with the daemon and proxy not confined by
  their bwrap (first_program_extra_unconfined), interleaved run by run;
- launch_with_bus / launch_without_bus: Launcher.launch() of /bin/true to reaped, with the
  bus already running (the planner's extra mounts) and without a bus;
- memory: RSS and PSS (smaps_rollup) of the daemon and the proxy of one idle desktop,
  with the bwrap processes that confine them.
Prints one JSON document (milliseconds, KiB).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import summarize_ms
from zionwm.desktopbus import bus as dbus_bus
from zionwm.desktopbus import shim
from zionwm.desktopbus.service import DesktopService
from zionwm.isolation.bwrap import SessionBus
from zionwm.isolation.launcher import Launcher
from zionwm.isolation.spec import DesktopSpec


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="zionwm-bench-bus-") as tmp:
        os.chmod(tmp, 0o700)
        os.environ["XDG_RUNTIME_DIR"] = tmp
        os.environ["XDG_DATA_HOME"] = os.path.join(tmp, "data")
        first: list[float] = []
        first_bare: list[float] = []
        for _ in range(args.runs):
            # interleaved, so both see the same load
            for samples, confine in ((first, True), (first_bare, False)):
                t0 = time.perf_counter()
                b = dbus_bus.start("bench", confine=confine)
                svc = DesktopService("bench")
                svc.connect(str(b.daemon_socket))
                samples.append(time.perf_counter() - t0)
                svc.close()
                b.stop()
        b = dbus_bus.start("bench")
        svc = DesktopService("bench")
        svc.connect(str(b.daemon_socket))
        time.sleep(0.2)  # let both settle before reading their memory
        memory = {"rss_kib": b.memory_kib("Rss"), "pss_kib": b.memory_kib("Pss")}
        spec = DesktopSpec(name="bench", colour=(0.2, 0.4, 1.0, 1.0))
        launcher = Launcher()
        with_bus: list[float] = []
        without: list[float] = []
        grant = SessionBus(socket=str(b.proxy_socket), programs=shim.PROGRAMS)
        for _ in range(args.runs):
            for samples, hook in ((without, None), (with_bus, lambda s: grant)):
                launcher.session_bus = hook
                t0 = time.perf_counter()
                launcher.launch(spec, ["/bin/true"]).wait(30)
                samples.append(time.perf_counter() - t0)
        svc.close()
        b.stop()
    print(
        json.dumps(
            {
                "runs": args.runs,
                "first_program_extra": summarize_ms(first),
                "first_program_extra_unconfined": summarize_ms(first_bare),
                "launch_without_bus": summarize_ms(without),
                "launch_with_bus": summarize_ms(with_bus),
                "memory_per_desktop": memory,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
