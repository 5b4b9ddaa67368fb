"""Pointer-motion cost: compositor CPU time under a 1 kHz virtual-pointer flood, zionwm
against sway.

    .venv/bin/python -m benchmarks.pointer [--seconds 10] [--rate 1000] [--windows 10]
                                           [--profile FILE]

Each compositor shows `--windows` static windows (placed the same way in both); a trusted
host client sends absolute motion + frame through zwlr_virtual_pointer_v1 at `--rate` Hz
along a path that crosses them, for `--seconds`. The figure is the compositor process's
CPU time (its process CPU-time clock, to the nanosecond: a run's flood costs about 0.1 s,
which /proc/PID/stat's 10 ms ticks blurred by 10 %) over the flood, and over an equal quiet
period before it (the baseline). With --profile, zionwm's flood is sampled by py-spy and the
collapsed stacks written to FILE.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import (
    CPU_CLOCK,
    OUTPUT,
    Drainer,
    Marker,
    Probe,
    cpu_percent,
    cpu_seconds,
    loaded_libraries,
    ratio,
    session,
    wait_for,
)

log = logging.getLogger(__name__)


def static_windows(s: Any, count: int) -> list[Marker]:
    out = []
    for i in range(count):
        m = Marker(s.desktop_socket(1), f"bench-static-{i}", 0xFF404040 + i * 0x101010)
        app_id = f"bench-static-{i}"
        wait_for(lambda a=app_id: s.window_rect(a), 10, f"static window {i}")  # type: ignore[misc]
        if hasattr(s, "place_like_zionwm"):
            s.place_like_zionwm(1)
        out.append(m)
    return out


def _cpu_over(pid: int, seconds: float, during: Any = None) -> tuple[float, float]:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    if during is None:
        end = t0 + seconds
        while time.monotonic() < end:
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))
    else:
        during()
    return cpu_seconds(pid) - c0, time.monotonic() - t0


def flood(probe: Probe, seconds: float, rate: int) -> int:
    """Send `rate` motions per second for `seconds`, on a schedule (not as fast as possible);
    returns how many were sent."""
    w, h = OUTPUT
    period = 1.0 / rate
    start = time.monotonic()
    n = 0
    while True:
        t = time.monotonic() - start
        if t >= seconds:
            return n
        due = int(t / period) + 1
        while n < due:
            a = n * 0.004
            x = int(w / 2 + 0.45 * w * math.sin(a))
            y = int(h / 2 + 0.45 * h * math.sin(1.7 * a))
            probe.pointer_to(x, y, w, h)
            n += 1
        left = start + due * period - time.monotonic()
        if left > 0:
            time.sleep(left)


def top_frames(collapsed: str, n: int = 12) -> dict[str, list[tuple[str, float]]]:
    """Self and inclusive shares (%) of the busiest frames in py-spy's raw (collapsed)
    output: one `frame;frame;...;leaf count` line per distinct stack."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        total += k
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + k
        for f in set(frames):
            incl[f] = incl.get(f, 0) + k
    if total == 0:
        return {"self": [], "inclusive": []}

    def top(d: dict[str, int]) -> list[tuple[str, float]]:
        best = sorted(d.items(), key=lambda kv: -kv[1])[:n]
        return [(f, round(100 * c / total, 1)) for f, c in best]

    return {"self": top(own), "inclusive": top(incl)}


def run_one(
    kind: str, seconds: float, rate: int, windows: int, profile: Path | None
) -> dict[str, Any]:
    with session(kind) as s:
        s.show(1)
        markers = static_windows(s, windows)
        libraries = loaded_libraries(s.pid)
        probe = Probe(s.wayland_socket)
        probe.pointer_to(1, 1, *OUTPUT)
        probe.c.roundtrip()
        drainer = Drainer([m.c.sock for m in markers] + [probe.c.sock])
        try:
            base_cpu, base_wall = _cpu_over(s.pid, seconds)
            spy = None
            pyspy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
            if profile is not None and kind == "zionwm" and pyspy:
                spy = subprocess.Popen(
                    [
                        pyspy,
                        "record",
                        "--pid",
                        str(s.pid),
                        "-d",
                        str(int(seconds)),
                        "-r",
                        "200",
                        "-f",
                        "raw",
                        "-o",
                        str(profile),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            sent: list[int] = []
            cpu, wall = _cpu_over(s.pid, seconds, lambda: sent.append(flood(probe, seconds, rate)))
            if spy is not None:
                _, err = spy.communicate(timeout=seconds + 30)
                if spy.returncode != 0:
                    log.warning("py-spy failed: %s", err.decode(errors="replace")[-500:])
        finally:
            drainer.stop()
            probe.close()
            for m in markers:
                m.close()
        errors = s.callback_errors()
    prof = None
    if profile is not None and kind == "zionwm" and profile.exists():
        prof = top_frames(profile.read_text())
    return {
        "profile": prof,
        "compositor": kind,
        "windows": windows,
        "events_sent": sent[0],
        "rate_hz": round(sent[0] / wall, 1),
        "flood_cpu_s": round(cpu, 4),
        "cpu_measured_by": CPU_CLOCK,
        "flood_cpu_percent": round(cpu_percent(cpu, wall), 2),
        "baseline_cpu_percent": round(cpu_percent(base_cpu, base_wall), 2),
        "cpu_us_per_event": round(1e6 * (cpu - base_cpu * wall / base_wall) / max(1, sent[0]), 2),
        "callback_errors": errors[:5],
        "libraries": libraries,
    }


class _Side:
    """One compositor of a paired run: its static windows, a probe that moves its pointer,
    and what each of its slices measured."""

    def __init__(self, s: Any, windows: int) -> None:
        self.s = s
        self.name: str = s.name
        s.show(1)
        self.markers = static_windows(s, windows)
        self.libraries = loaded_libraries(s.pid)
        self.probe = Probe(s.wayland_socket)
        self.probe.pointer_to(1, 1, *OUTPUT)
        self.probe.c.roundtrip()
        self.drainer = Drainer([m.c.sock for m in self.markers] + [self.probe.c.sock])
        # CPU while the other compositor had the flood: this one's quiet baseline
        self.idle_cpu = 0.0
        self.idle_wall = 0.0

    def close(self) -> None:
        self.drainer.stop()
        self.probe.close()
        for m in self.markers:
            m.close()


def _slice(active: _Side, quiet: _Side, seconds: float, rate: int) -> dict[str, Any]:
    """Flood `active` for `seconds` while `quiet` idles; both CPU clocks read around it."""
    a0, q0, t0 = cpu_seconds(active.s.pid), cpu_seconds(quiet.s.pid), time.monotonic()
    sent = flood(active.probe, seconds, rate)
    a1, q1, t1 = cpu_seconds(active.s.pid), cpu_seconds(quiet.s.pid), time.monotonic()
    quiet.idle_cpu += q1 - q0
    quiet.idle_wall += t1 - t0
    return {"compositor": active.name, "events_sent": sent, "cpu_s": a1 - a0, "wall_s": t1 - t0}


def measure_paired(
    seconds: float = 1.0,
    rate: int = 1000,
    windows: int = 10,
    rounds: int = 20,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Both compositors running side by side, each with `windows` static windows; in each of
    `rounds` rounds one gets a `seconds` flood and then the other (the first flips every
    round). The machine's state (other tenants of a shared host, caches, frequency) moves
    over seconds to minutes, and moved one compositor's figure by 2x between runs made a
    minute apart; two floods a second apart see the same machine, so each round gives a
    paired ratio, and the figure is the median of those ratios. Each compositor's CPU during
    the other's flood is its quiet baseline, subtracted per event."""
    with session("sway") as sw, session("zionwm") as zw:
        sides = [_Side(sw, windows), _Side(zw, windows)]
        try:
            rows = []
            for i in range(rounds):
                order = sides if i % 2 == 0 else sides[::-1]
                for k, active in enumerate(order):
                    row = _slice(active, order[1 - k], seconds, rate)
                    row["round"] = i + 1
                    rows.append(row)
            prof = None
            if profile is not None:
                prof = _profile(zw.pid, sides[1], seconds=10, rate=rate, out=profile)
            errors = {side.name: side.s.callback_errors() for side in sides}
        finally:
            for side in sides:
                side.close()
    idle_rate = {
        side.name: side.idle_cpu / side.idle_wall if side.idle_wall > 0 else 0.0 for side in sides
    }
    for row in rows:
        base = idle_rate[row["compositor"]] * row["wall_s"]
        row["cpu_us_per_event"] = round(1e6 * (row["cpu_s"] - base) / max(1, row["events_sent"]), 2)
        row["flood_cpu_percent"] = round(cpu_percent(row["cpu_s"], row["wall_s"]), 2)
        row["cpu_s"] = round(row["cpu_s"], 5)
        row["wall_s"] = round(row["wall_s"], 3)
    by_round: dict[int, dict[str, float]] = {}
    for row in rows:
        by_round.setdefault(row["round"], {})[row["compositor"]] = row["cpu_us_per_event"]
    paired = [
        r["zionwm"] / r["sway"] for r in by_round.values() if r.get("sway", 0) > 0 and "zionwm" in r
    ]
    summary: dict[str, Any] = {}
    for side in sides:
        mine = [r for r in rows if r["compositor"] == side.name]
        summary[side.name] = {
            "cpu_us_per_event": spread([r["cpu_us_per_event"] for r in mine]),
            "flood_cpu_percent": spread([r["flood_cpu_percent"] for r in mine]),
            "baseline_cpu_percent": round(100 * idle_rate[side.name], 3),
            "libraries": side.libraries,
        }

    def med(kind: str, key: str) -> float | None:
        v = summary[kind][key].get("median")
        return float(v) if v is not None else None

    q = statistics.quantiles(paired, n=4) if len(paired) >= 2 else [None, None, None]
    return {
        "method": "paired: both running, floods alternating round by round",
        "seconds": seconds,
        "rate_hz": rate,
        "windows": windows,
        "runs": rounds,
        "cpu_measured_by": CPU_CLOCK,
        "rows": rows,
        "summary": summary,
        "paired_ratio": {
            "rounds": len(paired),
            "p25": round(q[0], 3) if q[0] is not None else None,
            "median": round(statistics.median(paired), 3) if paired else None,
            "p75": round(q[2], 3) if q[2] is not None else None,
        },
        "ratio_cpu_per_event": round(statistics.median(paired), 2) if paired else None,
        "ratio_flood_cpu": ratio(
            med("zionwm", "flood_cpu_percent"), med("sway", "flood_cpu_percent")
        ),
        "callback_errors": {k: v[:5] for k, v in errors.items()},
        "profile": prof,
    }


def _profile(pid: int, side: _Side, seconds: float, rate: int, out: Path) -> Any:
    """py-spy's view of one more flood of zionwm, not counted in the figures (py-spy slows
    what it samples)."""
    pyspy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not pyspy:
        return None
    spy = subprocess.Popen(
        [pyspy, "record", "--pid", str(pid), "-d", str(int(seconds)), "-r", "200",
         "-f", "raw", "-o", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    flood(side.probe, seconds, rate)
    _, err = spy.communicate(timeout=seconds + 30)
    if spy.returncode != 0:
        log.warning("py-spy failed: %s", err.decode(errors="replace")[-500:])
        return None
    return top_frames(out.read_text()) if out.exists() else None


def spread(values: list[float]) -> dict[str, float | int]:
    """min / median / max over runs, and how many runs."""
    if not values:
        return {"runs": 0}
    return {
        "runs": len(values),
        "min": round(min(values), 2),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


def measure(
    seconds: float = 10,
    rate: int = 1000,
    windows: int = 10,
    profile: Path | None = None,
    runs: int = 3,
) -> dict[str, Any]:
    """`runs` floods per compositor, alternating run by run (the first compositor flips
    every run, as the switch benchmark does), each with its spread over the runs."""
    rows = []
    for i in range(runs):
        order = ("sway", "zionwm") if i % 2 == 0 else ("zionwm", "sway")
        for kind in order:
            log.info("pointer: %s, run %d/%d", kind, i + 1, runs)
            try:
                # py-spy slows what it samples: only the last zionwm run is profiled
                row = run_one(kind, seconds, rate, windows, profile if i == runs - 1 else None)
            except Exception as e:
                log.exception("pointer benchmark on %s failed", kind)
                row = {"compositor": kind, "error": f"{type(e).__name__}: {e}"}
            row["run"] = i + 1
            rows.append(row)
    summary: dict[str, Any] = {}
    for kind in ("sway", "zionwm"):
        ok = [r for r in rows if r["compositor"] == kind and "error" not in r]
        summary[kind] = {
            "cpu_us_per_event": spread([r["cpu_us_per_event"] for r in ok]),
            "flood_cpu_percent": spread([r["flood_cpu_percent"] for r in ok]),
            "libraries": ok[0].get("libraries") if ok else None,
        }

    def med(kind: str, key: str) -> float | None:
        v = summary[kind][key].get("median")
        return float(v) if v is not None else None

    return {
        "seconds": seconds,
        "rate_hz": rate,
        "runs": runs,
        "rows": rows,
        "summary": summary,
        "ratio_flood_cpu": ratio(
            med("zionwm", "flood_cpu_percent"), med("sway", "flood_cpu_percent")
        ),
        "ratio_cpu_per_event": ratio(
            med("zionwm", "cpu_us_per_event"), med("sway", "cpu_us_per_event")
        ),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--windows", type=int, default=10)
    ap.add_argument("--profile", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--paired",
        type=int,
        metavar="ROUNDS",
        help="both compositors at once, ROUNDS rounds of alternating floods of --seconds",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.paired:
        res = measure_paired(args.seconds, args.rate, args.windows, args.paired, args.profile)
    else:
        res = measure(args.seconds, args.rate, args.windows, args.profile, args.runs)
    json.dump(res, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
