"""Key-to-frame latency of an ordinary key typed into a focused client, zionwm against sway.

    .venv/bin/python -m benchmarks.keypath [--keys 60] [--runs 3] [--counts 1,10,50]

A small client of our own (`typist`, run as its own process) maps one window of a single
colour on top of N animated weston-simple-shm windows (N = 1, 10, 50), takes the keyboard
focus, and on every key press attaches a buffer of the other of its two colours and commits
at once: the first output frame that shows the new colour is the frame that shows the key's
effect. The probe (`common.Probe`) asks for the next damaged frame (zwlr_screencopy
copy_with_damage) before each key, then reads frames until one shows the new colour at the
window's centre. Latency = that frame's commit time (the compositor's CLOCK_MONOTONIC) minus
the time the key left us.

Two key paths, both through zwp_virtual_keyboard_v1:
- `wtype`: the real `wtype a`, a new process and a new virtual keyboard per key, as a user's
  script does; t0 is taken before wtype is started, so its start-up is in the figure.
- `probe`: the probe's own virtual keyboard, made once; t0 is when the press left it.

Each key comes after a random 0-17 ms pause, so keys do not lock to the 60 Hz frame clock.
Runs alternate the compositors (the first one flips every run); each run is a fresh
compositor with its windows. Per compositor, window count and key path: min / median / p99 /
max over all keys of all runs, the number of runs and keys, and the per-run medians.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import select
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import Probe, populate, ratio, session, summarize, wait_for

log = logging.getLogger(__name__)

CLIENT = ["weston-simple-shm"]
APP_ID = "bench-typist"
SIZE = (200, 150)
COLOURS = ((0xF0, 0x90, 0x10), (0x10, 0x90, 0xF0))  # what the typist shows, by press parity
KEY_A = 30  # evdev code of "a": the probe's key, as wtype's


# ================================================================ the typist (own process)


def typist(socket_path: Path) -> int:
    """Map a window, wait for the keyboard, then flip colour on each key press.

    Prints "ready" on stdout once it has the keyboard and its first frame is drawn. Its two
    buffers are made up front and never written again, so a press costs one attach + damage
    + commit."""
    from tests.wire import WireClient, _string  # noqa: PLC0415 (the typist needs only this)

    c = WireClient(socket_path)
    shm, surface, xsurf, top = c.new_toplevel()
    c.send(top, 3, _string(APP_ID))  # set_app_id
    wm = surface - 1  # new_toplevel binds xdg_wm_base just before it creates the surface
    seat = c.bind("wl_seat", 1)
    # a seat without a keyboard ignores get_keyboard (wlroots 0.15): wait for one
    while not any(e.obj == seat and e.opcode == 0 and e.u32(0) & 2 for e in c.events):
        if not c.read(30):
            return 0
    c.events.clear()
    keyboard = c.new_id()
    c.send(seat, 1, struct.pack("=I", keyboard))  # get_keyboard
    w, h = SIZE
    buffers = [
        c.shm_buffer(shm, w, h, 0xFF00_0000 | (r << 16) | (g << 8) | b) for r, g, b in COLOURS
    ]
    c.send(surface, 6)  # commit: ask for the first configure
    shown = 0
    drawn = focused = announced = False

    def draw(which: int) -> None:
        c.send(surface, 1, struct.pack("=Iii", buffers[which], 0, 0))
        c.send(surface, 2, struct.pack("=iiii", 0, 0, w, h))
        c.send(surface, 6)

    while True:
        r, _, _ = select.select([c.sock], [], [], 30)
        if not r:
            continue
        if not c.read(0):
            return 0
        for e in c.events:
            if e.obj == keyboard and e.opcode == 3 and e.u32(3) == 1:  # key pressed
                shown ^= 1
                draw(shown)
            elif e.obj == keyboard and e.opcode == 1:  # enter
                focused = True
            elif e.obj == keyboard and e.opcode == 2:  # leave
                focused = False
            elif e.obj == xsurf and e.opcode == 0:  # configure: ack, keep our size
                c.send(xsurf, 4, struct.pack("=I", e.u32(0)))
                if not drawn:
                    draw(shown)
                    drawn = True
                else:
                    c.send(surface, 6)
            elif e.obj == wm and e.opcode == 0:  # ping
                c.send(wm, 3, struct.pack("=I", e.u32(0)))
        c.events.clear()
        if drawn and focused and not announced:
            announced = True
            sys.stdout.write(f"ready {shown}\n")
            sys.stdout.flush()


# ================================================================ the measurement


def _wtype(sock: Path) -> int:
    """`wtype a` on the compositor's host socket; CLOCK_MONOTONIC ns before it started."""
    env = {**os.environ, "XDG_RUNTIME_DIR": str(sock.parent), "WAYLAND_DISPLAY": sock.name}
    t0 = time.monotonic_ns()
    subprocess.run(["wtype", "a"], env=env, check=True, capture_output=True, timeout=10)
    return t0


def _near(px: tuple[int, int, int], want: tuple[int, int, int], tol: int = 24) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(px, want, strict=True))


def run_once(s: Any, count: int, keys: int, seed: int) -> dict[str, list[float]]:
    """One compositor session: `count` animated windows, the typist on top, then `keys`
    keys through each key path (alternating wtype and probe key by key)."""
    populate(s, 1, count, CLIENT)
    s.show(1)
    sock = s.desktop_socket(1)
    # the probe's virtual keyboard first: the seat has a keyboard before the typist asks
    probe = Probe(s.wayland_socket)
    probe.keyboard()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.keypath", "--typist", str(sock)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
        text=True,
    )
    out: dict[str, list[float]] = {"wtype": [], "probe": []}
    missed = 0
    try:
        assert proc.stdout is not None
        r, _, _ = select.select([proc.stdout], [], [], 20)
        line = proc.stdout.readline() if r else ""
        if not line.startswith("ready"):
            raise RuntimeError(f"{s.name}: the typist never got the keyboard ({line!r})")
        shown = int(line.split()[1])
        wait_for(lambda: s.window_rect(APP_ID), 10, "the typist to map")
        if hasattr(s, "place_like_zionwm"):
            s.place_like_zionwm(1)
        rng = random.Random(seed)

        def centre() -> tuple[int, int]:
            x, y, w, h = s.window_rect(APP_ID)
            return x + w // 2, y + h // 2

        c = centre()
        # settle: the typist's colour is on screen (sway moved it after mapping)
        wait_for(
            lambda: _near(probe.collect(probe.arm(), 2.0).pixel(*c), COLOURS[shown]) or None,
            10,
            "the typist's first frame",
            interval=0,
        )
        for i in range(2 * keys):
            path = "wtype" if i % 2 == 0 else "probe"
            time.sleep(rng.uniform(0, 0.017))
            frame = probe.arm()
            t0 = _wtype(s.wayland_socket) if path == "wtype" else probe.tap(KEY_A)
            shown ^= 1
            end = time.monotonic() + 3
            while True:
                f = probe.collect(frame, max(0.01, end - time.monotonic()))
                if _near(f.pixel(*c), COLOURS[shown]):
                    out[path].append((f.when_ns - t0) / 1e6)
                    break
                if time.monotonic() > end:
                    missed += 1
                    # resynchronise on what is shown now
                    now = probe.collect(probe.arm(), 2.0).pixel(*c)
                    shown = 0 if _near(now, COLOURS[0]) else 1
                    break
                frame = probe.arm()
    finally:
        probe.close()
        proc.kill()
        proc.wait()
    if missed:
        log.warning("%s, %d windows: %d keys showed no frame within 3 s", s.name, count, missed)
    return out


def measure(counts: list[int], keys: int, runs: int) -> dict[str, Any]:
    """`runs` runs per compositor and window count, alternating zionwm and sway run by run
    (the first one flips every run)."""
    raw: dict[tuple[str, int, str], list[list[float]]] = {}
    errors: list[dict[str, Any]] = []
    for count in counts:
        for run in range(runs):
            order = ["zionwm", "sway"] if (run + count) % 2 == 0 else ["sway", "zionwm"]
            for kind in order:
                log.info("keypath: %s, %d windows, run %d", kind, count, run + 1)
                try:
                    with session(kind) as s:
                        got = run_once(s, count, keys, seed=1000 * count + run)
                except Exception as e:  # one failed run must not lose the others
                    log.exception("keypath %s/%d run %d failed", kind, count, run + 1)
                    errors.append(
                        {"compositor": kind, "windows": count, "error": f"{type(e).__name__}: {e}"}
                    )
                    continue
                for path, values in got.items():
                    raw.setdefault((kind, count, path), []).append(values)
    series: list[dict[str, Any]] = []
    for (kind, count, path), per_run in sorted(raw.items()):
        allv = [v for run in per_run for v in run]
        series.append(
            {
                "compositor": kind,
                "windows": count,
                "key_path": path,
                "runs": len(per_run),
                "keys": len(allv),
                "ms": summarize(allv),
                "run_medians_ms": [summarize(r).get("median") for r in per_run],
                "raw_ms": [[round(v, 3) for v in r] for r in per_run],
            }
        )
    for row in series:
        if row["compositor"] != "zionwm":
            continue
        peer = next(
            (
                p
                for p in series
                if p["compositor"] == "sway"
                and p["windows"] == row["windows"]
                and p["key_path"] == row["key_path"]
            ),
            None,
        )
        if peer is not None:
            row["ratio_p50"] = ratio(row["ms"]["median"], peer["ms"]["median"])
            row["ratio_p99"] = ratio(row["ms"]["p99"], peer["ms"]["p99"])
    return {"keys_per_run": keys, "series": series, "errors": errors}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=60, help="keys per key path per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--counts", default="1,10,50")
    ap.add_argument("--typist", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.typist is not None:
        return typist(args.typist)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = measure([int(c) for c in args.counts.split(",")], args.keys, args.runs)
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ================================================================ the report (pure)

P50_LIMIT = 1.1
P99_LIMIT = 1.2


def worst_ratio(res: dict[str, Any] | None, key: str) -> tuple[float, str] | None:
    """The largest zionwm/sway ratio `key` ("ratio_p50" or "ratio_p99") over window counts
    and key paths, with where it was (e.g. "50 windows, wtype")."""
    worst: tuple[float, str] | None = None
    for row in (res or {}).get("series", []):
        r = row.get(key)
        if row.get("compositor") == "zionwm" and r is not None and (worst is None or r > worst[0]):
            worst = (r, f"{row['windows']} windows, {row['key_path']}")
    return worst


def budget_lines(res: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The two published key-path lines: p50 and p99 of the worst window count and key path."""
    from .stats import budget_check  # noqa: PLC0415

    counts = sorted({row["windows"] for row in (res or {}).get("series", [])})
    where = "/".join(str(c) for c in counts) or "1/10/50"
    out = []
    for key, limit in (("ratio_p50", P50_LIMIT), ("ratio_p99", P99_LIMIT)):
        w = worst_ratio(res, key)
        out.append(
            {
                "line": f"key to frame {key[-3:]} no more than {limit}x sway (virtual keyboard, "
                f"the worst of {where} windows and both key paths"
                + (f": {w[1]}" if w else "")
                + ")",
                "figure": w[0] if w else None,
                "unit": "x sway",
                "limit": limit,
                "status": budget_check(w[0] if w else None, limit),
            }
        )
    return out


def markdown_lines(res: dict[str, Any] | None) -> list[str]:
    """The key-to-frame table of the report."""
    res = res or {}
    out = [
        f"## Key to frame (ms; a key typed into a focused client to the first frame showing "
        f"it; {res.get('keys_per_run')} keys per key path per run, runs alternating)",
        "",
        "| compositor | windows | key path | runs | keys | min | median | p99 | max "
        "| run medians | ratio p50/p99 to sway |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in res.get("series", []):
        ms = row["ms"]
        rat = f"{row['ratio_p50']} / {row['ratio_p99']}" if "ratio_p50" in row else ""
        medians = ", ".join(str(m) for m in row.get("run_medians_ms", []))
        out.append(
            f"| {row['compositor']} | {row['windows']} | {row['key_path']} | {row['runs']} | "
            f"{row['keys']} | {ms.get('min')} | {ms.get('median')} | {ms.get('p99')} | "
            f"{ms.get('max')} | {medians} | {rat} |"
        )
    for e in res.get("errors", []):
        out.append(
            f"\nA run of {e['compositor']} with {e['windows']} windows failed: {e['error'][:120]}"
        )
    return out


def summary_text(res: dict[str, Any] | None) -> str:
    """One sentence for the project README: zionwm's p50/p99 next to sway's, per window
    count and key path."""
    rows = {
        (r["compositor"], r["windows"], r["key_path"]): r for r in (res or {}).get("series", [])
    }
    parts = []
    for (kind, count, path), row in sorted(rows.items()):
        peer = rows.get(("sway", count, path))
        if kind != "zionwm" or peer is None:
            continue
        z, s = row["ms"], peer["ms"]
        parts.append(
            f"{count} windows, {path}: p50 {z.get('median')} ms (sway {s.get('median')}), "
            f"p99 {z.get('p99')} ms (sway {s.get('p99')}), {row['runs']} runs, "
            f"{row['keys']} keys"
        )
    return "; ".join(parts) or "not measured"
