"""Desktop switch latency, zionwm against sway's workspace switch.

    .venv/bin/python -m benchmarks.switch [--switches 200] [--counts 1,10,50] [--json]

Each desktop (sway: workspace) gets N weston-simple-shm windows and one static marker
window of its own colour, mapped last so it is on top. A trusted host client then presses
Super+1 / Super+2 alternately through zwp_virtual_keyboard_v1 (what wtype does), after a
random 0-17 ms pause so key presses do not lock to the 60 Hz frame clock.

Two figures per switch:
- external (both compositors): from the key leaving the probe to the first output frame
  whose pixels show the target desktop's marker. Before each key the probe asks for the
  next damaged frame with zwlr_screencopy copy_with_damage; each frame carries the
  compositor's CLOCK_MONOTONIC commit time, so the figure is not quantised by how often
  we look, only by the compositor's own frame clock.
- internal (zionwm only): the compositor's own record, from handling the key binding to
  the return of the scene commit of the next output frame (`status` IPC, raw samples).
  Sway has no such record. The same record says how much of each sample the switch,
  handled, spent waiting for the output's next frame event (`frame_wait_samples`: the
  time until that event less the CPU time the compositor's thread used meanwhile): that
  wait is the display's clock, up to a whole frame period wherever a key falls in it (the
  headless backend's frame timer: 16 ms after the previous frame). `internal_own_ms` is
  the sample without it: the switch's handling, whatever else the compositor ran before
  the frame event, and the frame's drawing and commit, which is the compositor's own share.

zionwm is also measured with the target desktop frozen (cgroup freezer) before every
switch, so the thaw is on the measured path. And, with 1 window per desktop, both
compositors are switched 40 more times through the real `wtype` (a new process and a new
virtual keyboard per key, as a user's script would): the external figure then includes
wtype's start-up, the internal one does not.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import time
from typing import Any

from .common import (
    Marker,
    Probe,
    ZionwmSession,
    populate,
    ratio,
    session,
    summarize,
    wait_for,
)

log = logging.getLogger(__name__)

CLIENT = ["weston-simple-shm"]
MARKERS = {1: (0xFFE0_2020, (0xE0, 0x20, 0x20)), 2: (0xFF20_E0E0, (0x20, 0xE0, 0xE0))}


def _near(px: tuple[int, int, int], want: tuple[int, int, int], tol: int = 24) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(px, want, strict=True))


def _centre(s: Any, app_id: str) -> tuple[int, int]:
    rect = s.window_rect(app_id)
    if rect is None:
        raise RuntimeError(f"{s.name}: marker {app_id} is not mapped")
    x, y, w, h = rect
    return x + w // 2, y + h // 2


def _shows(frame: Any, centre: tuple[int, int], desktop: int) -> bool:
    return _near(frame.pixel(*centre), MARKERS[desktop][1])


def _wtype(s: Any, digit: int) -> int:
    """Super+digit through the real wtype on the compositor's host socket; returns
    CLOCK_MONOTONIC ns before wtype was started (so its start-up is in the figure)."""
    sock = s.wayland_socket
    env = {**os.environ, "XDG_RUNTIME_DIR": str(sock.parent), "WAYLAND_DISPLAY": sock.name}
    t0 = time.monotonic_ns()
    subprocess.run(
        ["wtype", "-M", "logo", str(digit), "-m", "logo"],
        env=env,
        check=True,
        capture_output=True,
        timeout=10,
    )
    return t0


def run_series(
    s: Any, count: int, switches: int, frozen: bool, seed: int, key_path: str = "probe"
) -> dict[str, Any]:
    """Populate desktops 1 and 2 with `count` clients each, then time `switches` switches.
    `key_path`: "probe" (virtual keyboard from the measuring client) or "wtype"."""
    for d in (1, 2):
        populate(s, d, count, CLIENT)
    markers: dict[int, Marker] = {}
    for d in (1, 2):
        markers[d] = Marker(s.desktop_socket(d), f"bench-marker-{d}", MARKERS[d][0])
        # mapped before sway is shown another workspace, or it would land there
        app_id = f"bench-marker-{d}"
        wait_for(lambda a=app_id: s.window_rect(a), 10, f"marker {d} to map")  # type: ignore[misc]
        if hasattr(s, "place_like_zionwm"):
            s.place_like_zionwm(d)
    probe = Probe(s.wayland_socket)
    rng = random.Random(seed)
    external: list[float] = []
    received: list[float] = []
    missed = 0
    try:
        s.show(1)
        for m in markers.values():
            m.pump(0.2)
        centres = {d: _centre(s, f"bench-marker-{d}") for d in (1, 2)}

        def settled() -> bool:
            for m in markers.values():
                m.pump()
            return _shows(probe.collect(probe.arm(), 2.0), centres[1], 1)

        deadline = time.monotonic() + 10
        while not settled():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{s.name}: desktop 1's marker never showed")
        before = len(s.switch_samples()) if isinstance(s, ZionwmSession) else 0
        current = 1
        for _ in range(switches):
            target = 3 - current
            if frozen:
                s.freeze(target)
                _wait_frozen(s, target)
            time.sleep(rng.uniform(0, 0.017))  # de-phase the key from the frame clock
            frame = probe.arm()
            t0 = _wtype(s, target) if key_path == "wtype" else probe.super_digit(target)
            end = time.monotonic() + 3
            while True:
                f = probe.collect(frame, max(0.01, end - time.monotonic()))
                if _shows(f, centres[target], target):
                    external.append((f.when_ns - t0) / 1e6)
                    received.append((f.received_ns - t0) / 1e6)
                    break
                if time.monotonic() > end:
                    missed += 1
                    break
                frame = probe.arm()
            current = target
            for m in markers.values():
                m.pump()
        windows_at_end = s.window_count(1) + s.window_count(2)  # markers included
        internal: list[float] = []
        waits: list[float] = []
        if isinstance(s, ZionwmSession):
            samples = s.switch_samples()
            all_waits = s.switch_frame_waits()
            mine = (
                slice(before, None) if len(samples) - before == switches else slice(-switches, None)
            )
            internal, waits = samples[mine], all_waits[mine]
    finally:
        probe.close()
        for m in markers.values():
            m.close()
    # a compositor without the wait in its record (an older one) gives no own figure
    own = (
        [t - w for t, w in zip(internal, waits, strict=True)] if len(waits) == len(internal) else []
    )
    return {
        "clients_crashed_at_start": getattr(s, "crashed", 0),
        "windows_at_end": windows_at_end,
        "compositor": s.name,
        "key_path": key_path,
        "windows_per_desktop": count,
        "frozen_target": frozen,
        "switches": switches,
        "missed": missed,
        "external_ms": summarize(external),
        "frame_received_ms": summarize(received),
        "internal_ms": summarize(internal) if internal else None,
        "internal_own_ms": summarize(own) if own else None,
        "frame_wait_ms": summarize(waits) if waits else None,
        "raw_external_ms": [round(x, 3) for x in external],
        "raw_internal_ms": [round(x, 3) for x in internal],
        "raw_frame_wait_ms": [round(x, 3) for x in waits],
    }


def _wait_frozen(s: ZionwmSession, desktop: int) -> None:
    deadline = time.monotonic() + 5
    while not s.frozen(desktop):
        if time.monotonic() > deadline:
            raise RuntimeError(f"desktop {desktop} did not freeze")
        time.sleep(0.002)


def measure(counts: list[int], switches: int, wtype_switches: int = 40) -> dict[str, Any]:
    """Alternate the compositors: zionwm first for one count, sway first for the next."""
    series: list[dict[str, Any]] = []
    for i, count in enumerate(counts):
        order = ["zionwm", "sway"] if i % 2 == 0 else ["sway", "zionwm"]
        for kind in order:
            log.info("switch: %s, %d windows per desktop", kind, count)
            try:
                with session(kind) as s:
                    series.append(run_series(s, count, switches, False, seed=count))
                    if wtype_switches and i == 0:
                        # the same switch through the real wtype, fewer times (it forks)
                        row = run_series(s, 0, wtype_switches, False, 7, key_path="wtype")
                        row["windows_per_desktop"] = count
                        series.append(row)
                    if kind == "zionwm":
                        row = run_series(s, 0, switches, True, seed=count + 1)
                        row["windows_per_desktop"] = count
                        series.append(row)
            except Exception as e:  # one failed series must not lose the others
                log.exception("switch series %s/%d failed", kind, count)
                series.append(
                    {
                        "compositor": kind,
                        "windows_per_desktop": count,
                        "error": f"{type(e).__name__}: {e}",
                    }
                )
    for row in series:
        if row.get("compositor") != "zionwm" or "error" in row:
            continue
        peer = next(
            (
                p
                for p in series
                if p.get("compositor") == "sway"
                and p.get("windows_per_desktop") == row["windows_per_desktop"]
                and p.get("key_path") == row.get("key_path")
                and "error" not in p
            ),
            None,
        )
        if peer is not None:
            row["ratio_external_p50"] = ratio(
                row["external_ms"]["median"], peer["external_ms"]["median"]
            )
            row["ratio_external_p99"] = ratio(row["external_ms"]["p99"], peer["external_ms"]["p99"])
    return {"series": series}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--switches", type=int, default=200)
    ap.add_argument("--counts", default="1,10,50")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = measure([int(c) for c in args.counts.split(",")], args.switches)
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
