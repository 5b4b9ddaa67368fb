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
  with the bwrap processes that confine them;
- portal: the portal (org.freedesktop.portal.Desktop) is served on zionwm's own connection,
  so it adds no process and nothing to start; what it adds to the first program's start is
  owning one more name (portal_name_request: one RequestName round trip, included in
  first_program_extra), and portal_call is a Settings.ReadAll from a client through the
  proxy, answered by zionwm's service (the round trip a toolkit pays at start-up).
Prints one JSON document (milliseconds, KiB).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jeepney import DBusAddress, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

from benchmarks.stats import summarize_ms
from zionwm.desktopbus import bus as dbus_bus
from zionwm.desktopbus import shim
from zionwm.desktopbus.portal import PORTAL_NAME, PORTAL_PATH, SETTINGS
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
        name_ms: list[float] = []
        for i in range(args.runs):
            t0 = time.perf_counter()
            svc._call_blocking(
                message_bus.RequestName(f"org.zionwm.app.bench{i}", 4), time.monotonic() + 5
            )
            name_ms.append(time.perf_counter() - t0)
        svc.sock.setblocking(False)  # type: ignore[union-attr]
        portal_ms = _portal_calls(svc, str(b.proxy_socket), args.runs)
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
                "portal_name_request": summarize_ms(name_ms),
                "portal_call": summarize_ms(portal_ms),
            },
            indent=2,
        )
    )
    return 0


def _portal_calls(svc: DesktopService, proxy: str, runs: int) -> list[float]:
    """Settings.ReadAll through the proxy, with zionwm's side served by a thread as the
    compositor's event loop would."""
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([svc.fileno()], [], [], 0.05)
            if ready:
                svc.on_readable()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    out: list[float] = []
    conn = open_dbus_connection(f"unix:path={proxy}")
    addr = DBusAddress(PORTAL_PATH, bus_name=PORTAL_NAME, interface=SETTINGS)
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            conn.send_and_get_reply(new_method_call(addr, "ReadAll", "as", ([],)), timeout=10)
            out.append(time.perf_counter() - t0)
    finally:
        conn.close()
        stop.set()
        t.join()
    return out


if __name__ == "__main__":
    raise SystemExit(main())
