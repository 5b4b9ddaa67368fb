"""`make bench`: every benchmark in one run, zionwm and its peer alternating, results to
benchmarks/results/latest.json, latest.md and PNG plots, and a printed summary.

    .venv/bin/python -m benchmarks.run [--quick] [--only switch,pointer,...]

The subsystem benchmarks (freeze, sandbox_spawn, quarantine, audit, templates, network) run as
their own processes with the arguments below and their JSON is kept as they print it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import idle, keypath, pointer, readme, switch
from .common import ZIONWM_LOG_LEVEL, budget_check, now_utc
from .idle import FEW_WINDOWS

log = logging.getLogger(__name__)

RESULTS = Path(__file__).resolve().parent / "results"
FRAME_60HZ_MS = 1000 / 60
# the switch table's methods (benchmarks/README.md, Methods)
METHOD_LABELS = {
    "external_ms": "external",
    "internal_ms": "internal",
    "internal_own_ms": "internal, own",
}

# name -> (module, full-run args, quick args)
EXTERNAL: dict[str, tuple[str, list[str], list[str]]] = {
    "freeze": ("benchmarks.freeze", ["--reps", "300"], ["--reps", "5", "--counts", "1,100"]),
    "overview": (
        "benchmarks.overview",
        ["--reps", "100", "--windows", "1,10", "--json"],
        ["--reps", "20", "--windows", "1", "--json"],
    ),
    "sandbox_spawn": (
        "benchmarks.sandbox_spawn",
        ["--runs", "100", "--frames", "10"],
        ["--runs", "10", "--frames", "2"],
    ),
    "quarantine": (
        "benchmarks.quarantine",
        ["--count-small", "1000", "--count-large", "40", "--json"],
        ["--count-small", "20", "--count-large", "2", "--json"],
    ),
    "audit": ("benchmarks.audit", ["--reps", "10"], ["--reps", "2"]),
    "convert": (
        "benchmarks.convert",
        ["--pages", "20", "--reps", "3", "--json"],
        ["--pages", "5", "--reps", "1", "--json"],
    ),
    "templates": ("benchmarks.templates", ["--runs", "20"], ["--runs", "3"]),
    "network": (
        "benchmarks.network",
        ["--reps", "10", "--seconds", "2"],
        ["--reps", "2", "--seconds", "1"],
    ),
}


def run_external(name: str, quick: bool) -> dict[str, Any]:
    module, full, short = EXTERNAL[name]
    t0 = time.monotonic()
    try:
        r = subprocess.run(
            [sys.executable, "-m", module, *(short if quick else full)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=Path(__file__).resolve().parent.parent,
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 300 s"}
    took = round(time.monotonic() - t0, 1)
    if r.returncode != 0:
        return {"error": f"exit {r.returncode}: {r.stderr[-1500:]}", "seconds": took}
    try:
        return {"result": json.loads(r.stdout), "seconds": took}
    except json.JSONDecodeError:
        return {"error": "no JSON on stdout", "stdout": r.stdout[-1500:], "seconds": took}


def _dig(d: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(d, dict):
            d = d.get(k)
        elif isinstance(d, list) and isinstance(k, int) and k < len(d):
            d = d[k]
        else:
            return None
    return d


def _series(results: dict[str, Any], comp: str, count: int, frozen: bool) -> Any:
    for row in _dig(results, "switch", "series") or []:
        if (
            row.get("compositor") == comp
            and row.get("key_path", "probe") == "probe"
            and row.get("windows_per_desktop") == count
            and bool(row.get("frozen_target")) == frozen
            and "error" not in row
        ):
            return row
    return None


def _memory_rows(results: dict[str, Any], kind: str) -> dict[str, Any]:
    """The idle benchmark's memory row of `kind`: RSS/PSS by window count ("windows_N")."""
    rows = _dig(results, "idle", "memory") or []
    return next((r for r in rows if r.get("compositor") == kind and "error" not in r), {})


def _memory_at(results: dict[str, Any], kind: str, windows: int) -> int | None:
    got = _memory_rows(results, kind).get(f"windows_{windows}") or {}
    rss = got.get("rss_kib")
    return int(rss) if rss else None


def budget(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The published budget lines, each with the measured figure and pass/miss."""
    lines: list[dict[str, Any]] = []
    z50 = _series(results, "zionwm", 50, False)
    s50 = _series(results, "sway", 50, False)
    # the compositor's own time: its record of key to frame, less the wait of the handled
    # switch for the output's next frame event (the display's clock, not the compositor's:
    # up to a whole period wherever the key falls; see benchmarks/README.md, Methods)
    z_int = _dig(z50, "internal_own_ms", "p99")
    z_ext = _dig(z50, "external_ms", "p99")
    s_ext = _dig(s50, "external_ms", "p99")
    lines.append(
        {
            "line": "switch p99 at 50 windows within one 60 Hz frame (internal, the "
            "compositor's own time: without the wait for the output's next frame)",
            "figure": z_int,
            "unit": "ms",
            "limit": round(FRAME_60HZ_MS, 2),
            "status": budget_check(z_int, FRAME_60HZ_MS),
        }
    )
    r = round(z_ext / s_ext, 2) if z_ext and s_ext else None
    lines.append(
        {
            "line": "switch p99 at 50 windows no more than 1.5x sway (external)",
            "figure": r,
            "unit": "x sway",
            "limit": 1.5,
            "status": budget_check(r, 1.5),
        }
    )
    lines += keypath.budget_lines(results.get("keypath"))
    pointer_runs = _dig(results, "pointer", "runs")
    pr = _dig(results, "pointer", "ratio_cpu_per_event")
    lines.append(
        {
            "line": f"pointer CPU per motion event no more than 1.3x sway (median of "
            f"{pointer_runs} paired rounds: both running, 1 s floods alternating)",
            "figure": pr,
            "unit": "x sway",
            "limit": 1.3,
            "status": budget_check(pr, 1.3),
        }
    )
    idle_runs = _dig(results, "idle", "runs")
    ic = _dig(results, "idle", "summary", "zionwm", "cpu_percent", "median")
    lines.append(
        {
            "line": f"idle CPU under 1% with 10 windows (median of {idle_runs} runs)",
            "figure": ic,
            "unit": "%",
            "limit": 1.0,
            "status": budget_check(ic, 1.0),
        }
    )
    zr = _dig(results, "idle", "summary", "zionwm", "rss_start_kib", "median")
    sr = _dig(results, "idle", "summary", "sway", "rss_start_kib", "median")
    rr = round(zr / sr, 2) if zr and sr else None
    lines.append(
        {
            "line": f"RSS at start no more than 1.5x sway (median of {idle_runs} runs each)",
            "figure": rr,
            "unit": "x sway",
            "limit": 1.5,
            "status": budget_check(rr, 1.5),
        }
    )
    few = _memory_at(results, "zionwm", FEW_WINDOWS), _memory_at(results, "sway", FEW_WINDOWS)
    rf = round(few[0] / few[1], 2) if few[0] and few[1] else None
    lines.append(
        {
            "line": f"RSS with {FEW_WINDOWS} windows no more than 1.5x sway (one run each)",
            "figure": rf,
            "unit": "x sway",
            "limit": 1.5,
            "status": budget_check(rf, 1.5),
        }
    )
    sp = _dig(results, "sandbox_spawn", "result")
    over = wu = None
    if isinstance(sp, dict):
        a, b = _dig(sp, "zionwm_sandbox", "median_ms"), _dig(sp, "minimal_bwrap", "median_ms")
        over = round(a - b, 2) if a is not None and b is not None else None
        wu = _dig(sp, "zionwm_sandbox_writable_usr", "median_ms")
    lines.append(
        {
            "line": "sandbox start no more than 2 ms over a minimal bwrap of /bin/true "
            "(median, same run)",
            "figure": over,
            "unit": "ms",
            "limit": 2.0,
            "status": budget_check(over, 2.0),
        }
    )
    lines.append(
        {
            "line": "sandbox start with a writable /usr under 20 ms (median)",
            "figure": wu,
            "unit": "ms",
            "limit": 20.0,
            "status": budget_check(wu, 20.0),
        }
    )
    worst: tuple[float, int, Any] | None = None
    for row in _dig(results, "freeze", "result", "results") or []:
        p99 = _dig(row, "freeze_ms", "p99")
        if p99 is not None and row.get("processes", 0) >= 10 and (worst is None or p99 > worst[0]):
            worst = (p99, row["processes"], _dig(row, "freeze_call_ms", "p50"))
    # the kernel's own cost at that count: the one write to cgroup.freeze, in which it
    # visits and wakes every task (the floor under the latency)
    floor = f"; the write to cgroup.freeze alone: p50 {worst[2]} ms" if worst and worst[2] else ""
    lines.append(
        {
            "line": "freeze p99 under 5 ms at 10, 100 and 1000 processes (the worst: "
            f"{worst[1] if worst else '?'} processes{floor})",
            "figure": worst[0] if worst else None,
            "unit": "ms",
            "limit": 5.0,
            "status": budget_check(worst[0] if worst else None, 5.0),
        }
    )
    return lines


def overload_note(results: dict[str, Any]) -> list[str]:
    """A warning when the 1-minute load average exceeded the CPU count at start. The load at
    the end is not a sign of other work: it averages over the run's own last stage (the
    quarantine, audit and conversion stages keep every CPU busy), so it is shown only."""
    cpus = os.cpu_count() or 1
    load = (results.get("loadavg_start") or [0])[0]
    if load <= cpus:
        return []
    return [
        f"**This run was made on an overloaded machine** (1-minute load average "
        f"{load} on {cpus} CPUs at its start, from other work): absolute figures are inflated and "
        "the ratios to sway noisier than usual.",
        "",
    ]


def libraries_lines(results: dict[str, Any]) -> list[str]:
    """What each compositor loaded, read from its /proc/PID/maps during the run."""
    out = []
    for kind in ("zionwm", "sway"):
        libs = _dig(results, "pointer", "summary", kind, "libraries") or _dig(
            results, "idle", "summary", kind, "libraries"
        )
        if not libs:
            continue
        parts = [
            f"{name} {v.get('file')} ({v.get('package')} {v.get('version')})"
            for name, v in sorted(libs.items())
        ]
        out.append(f"- {kind} loaded: " + "; ".join(parts))
    return out or ["- libraries loaded: not recorded (pointer/idle not run)"]


def markdown(results: dict[str, Any]) -> str:
    out = [
        f"# zionwm benchmarks, {results['date']}",
        "",
        f"Machine: {results['machine']}. Peer: sway {results.get('sway_version', '?')} "
        "(headless, pixman renderer, unprivileged user). "
        "Methods: benchmarks/README.md.",
        "",
        f"Load average (1/5/15 min) at start {results.get('loadavg_start')}, at end "
        f"{results.get('loadavg_end')}.",
        "",
        f"zionwm's log level: {results.get('zionwm_log_level')} (its default).",
        "",
        *overload_note(results),
        *libraries_lines(results),
        "",
        "## Budget",
        "",
        "| line | figure | limit | status |",
        "|---|---|---|---|",
    ]
    for b in results["budget"]:
        out.append(
            f"| {b['line']} | {b['figure']} {b['unit']} | {b['limit']} | **{b['status']}** |"
        )
    out += [
        "",
        "## Desktop switch latency (ms; key to the first frame showing the target)",
        "",
        "| compositor | windows/desktop | target frozen | N | method | median | p95 "
        "| p99 | ratio p50/p99 to sway |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in _dig(results, "switch", "series") or []:
        if "error" in row:
            out.append(
                f"| {row['compositor']} | {row['windows_per_desktop']} | | | error: "
                f"{row['error'][:80]} | | | | |"
            )
            continue
        wt = " (wtype)" if row.get("key_path") == "wtype" else ""
        for method in ("external_ms", "internal_ms", "internal_own_ms"):
            st = row.get(method)
            if not st:
                continue
            rat = ""
            if method == "external_ms" and "ratio_external_p50" in row:
                rat = f"{row['ratio_external_p50']} / {row['ratio_external_p99']}"
            out.append(
                f"| {row['compositor']} | {row['windows_per_desktop']} | "
                f"{'yes' if row.get('frozen_target') else 'no'} | {st['n']} | "
                f"{METHOD_LABELS[method]}{wt} | {st['median']} | {st['p95']} | {st['p99']} "
                f"| {rat} |"
            )
    if "keypath" in results:
        out += ["", *keypath.markdown_lines(results["keypath"])]
    p = results.get("pointer") or {}
    out += [
        "",
        f"## Pointer motion ({p.get('rate_hz')} Hz for {p.get('seconds')} s, "
        f"{p.get('runs')} rounds; {p.get('method', 'runs per compositor, alternating')})",
        "",
        "| compositor | runs | CPU µs/event min / median / max | CPU % min / median / max |",
        "|---|---|---|---|",
    ]
    for kind in ("zionwm", "sway"):
        sm = _dig(p, "summary", kind) or {}
        ev, pc = sm.get("cpu_us_per_event") or {}, sm.get("flood_cpu_percent") or {}
        out.append(
            f"| {kind} | {ev.get('runs')} | {ev.get('min')} / {ev.get('median')} / "
            f"{ev.get('max')} | {pc.get('min')} / {pc.get('median')} / {pc.get('max')} |"
        )
    errors = [r for r in p.get("rows", []) if "error" in r]
    for row in errors:
        out.append(f"\nRun {row.get('run')} of {row['compositor']} failed: {row['error'][:120]}")
    pr = p.get("paired_ratio") or {}
    if pr:
        out.append(
            f"\nPaired ratio zionwm/sway per event, over {pr.get('rounds')} rounds: median "
            f"{pr.get('median')} (p25 {pr.get('p25')}, p75 {pr.get('p75')})."
        )
    out.append(
        f"\nRatio zionwm/sway: per event {p.get('ratio_cpu_per_event')}, "
        f"CPU of the medians {p.get('ratio_flood_cpu')}."
    )
    i = results.get("idle") or {}
    out += [
        "",
        f"## Idle CPU and memory ({i.get('runs')} runs per compositor, alternating)",
        "",
        "| compositor | runs | idle CPU % min / median / max | RSS at start KiB "
        f"min / median / max | RSS {FEW_WINDOWS} win (KiB, 1 run) | RSS many win (KiB, 1 run) "
        "| PSS many win (KiB, 1 run) |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("zionwm", "sway"):
        sm = _dig(i, "summary", kind) or {}
        ic, rs = sm.get("cpu_percent") or {}, sm.get("rss_start_kib") or {}
        mem = _memory_rows(results, kind)
        counts = [int(k.split("_")[1]) for k in mem if k.startswith("windows_")]
        many: dict[str, Any] = mem.get(f"windows_{max(counts)}", {}) if counts else {}
        out.append(
            f"| {kind} | {ic.get('runs')} | {ic.get('min')} / {ic.get('median')} / "
            f"{ic.get('max')} | {rs.get('min')} / {rs.get('median')} / {rs.get('max')} | "
            f"{_memory_at(results, kind, FEW_WINDOWS)} | {many.get('rss_kib')} | "
            f"{many.get('pss_kib')} |"
        )
    fl = _dig(i, "summary", "floor", "rss_start_kib") or {}
    out.append(
        f"| floor (benchmarks/floor.py: Python and pywlroots, nothing of zionwm) | "
        f"{fl.get('runs')} | - | {fl.get('min')} / {fl.get('median')} / {fl.get('max')} | - | - "
        "| - |"
    )
    pdk = i.get("per_desktop") or {}
    out.append(
        f"\nPer desktop in use (compositor RSS + helpers' PSS + cgroup memory, "
        f"10 vs 2 desktops): {pdk.get('per_desktop_kib')} KiB; Qubes qube "
        f"(literature): {pdk.get('qubes_qube_mib_literature')} MiB."
    )
    out += ["", "## Subsystem benchmarks (their JSON in latest.json)", ""]
    for name in EXTERNAL:
        r = results.get(name) or {}
        out.append(
            f"- **{name}** ({r.get('seconds', '?')} s): "
            + (
                "error: " + str(r["error"])[:200]
                if "error" in r
                else _external_summary(name, r.get("result"))
            )
        )
    return "\n".join(out) + "\n"


def _external_summary(name: str, res: Any) -> str:
    if name == "freeze":
        return "; ".join(
            f"{r['processes']} proc: freeze p50 {r['freeze_ms']['p50']} / p99 "
            f"{r['freeze_ms']['p99']} ms, thaw p50 {r['thaw_ms']['p50']} ms"
            for r in _dig(res, "results") or []
        )
    if name == "sandbox_spawn":
        parts = []
        for k, v in (res or {}).items():
            if isinstance(v, dict) and "median_ms" in v:
                # the paired gap over minimal bwrap carries its quartiles, the rest a p95
                spread = (
                    f"p95 {v['p95_ms']}"
                    if "p95_ms" in v
                    else f"p25-p75 {v.get('p25_ms')}-{v.get('p75_ms')}"
                )
                parts.append(f"{k} median {v['median_ms']} / {spread} ms")
        return "; ".join(parts) + "; flatpak (published): 253 ms"
    if name == "overview":
        return "; ".join(
            f"{r['windows_per_desktop']} win: overview open p50 "
            f"{r['overview']['external_ms'].get('median')} / p99 "
            f"{r['overview']['external_ms'].get('p99')} ms, switch p50 "
            f"{r['switch']['external_ms'].get('median')} / p99 "
            f"{r['switch']['external_ms'].get('p99')} ms"
            for r in _dig(res, "series") or []
        )
    if name == "quarantine" and isinstance(res, dict):
        parts = []
        for key in ("small_4KiB", "large_1MiB"):
            r = res.get(key) or {}
            if r:
                parts.append(
                    f"{key}: {r.get('files')} files, {r.get('files_per_s')} files/s, "
                    f"{r.get('mb_per_s')} MB/s, {r.get('released')} released"
                )
        return "; ".join(parts) + f"; clamd: {res.get('clamd')}, workers {res.get('workers')}"
    if name == "network" and isinstance(res, dict):
        ens = res.get("ensure") or {}
        tp = res.get("throughput_gbit_s") or {}
        return (
            "network set-up median "
            + ", ".join(f"{k} {_dig(v, 'median_ms')} ms" for k, v in ens.items())
            + f"; launch into a desktop's network adds {_dig(res, 'launch', 'added_median_ms')}"
            " ms (median); throughput " + ", ".join(f"{k} {v} Gbit/s" for k, v in tp.items())
        )
    return json.dumps(res)[:400]


def plots(results: dict[str, Any], out: Path) -> list[str]:
    try:
        import matplotlib  # noqa: PLC0415  (optional: the `bench` extra)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        log.warning("matplotlib is not installed: no plots")
        return []
    written = []
    rows = [r for r in _dig(results, "switch", "series") or [] if "error" not in r]
    if rows:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        labels, data = [], []
        for r in rows:
            tag = (
                f"{r['compositor']}{' frozen' if r.get('frozen_target') else ''}\n"
                f"{r['windows_per_desktop']} win"
                f"{' wtype' if r.get('key_path') == 'wtype' else ''}"
            )
            labels.append(tag)
            data.append(r["raw_external_ms"] or [0])
        ax.boxplot(data, whis=(1, 99), showfliers=False)
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7)
        ax.axhline(FRAME_60HZ_MS, color="grey", linestyle="--", linewidth=0.8)
        ax.set_ylabel("key to first frame showing the target (ms)")
        ax.set_xlabel("boxes: quartiles and median; whiskers: p1 and p99; dashed: 1/60 s")
        ax.set_title(f"Desktop switch latency, external method ({results['date']})")
        fig.tight_layout()
        path = out / "switch.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path.name)
    prow = [r for r in _dig(results, "pointer", "rows") or [] if "error" not in r]
    irow = [r for r in _dig(results, "idle", "memory") or [] if "error" not in r]
    if prow or irow:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.5))
        kinds = sorted({r["compositor"] for r in prow})
        a1.bar(
            kinds,
            [
                statistics.median(r["flood_cpu_percent"] for r in prow if r["compositor"] == k)
                for k in kinds
            ],
        )
        a1.set_ylabel("CPU % during 1 kHz pointer flood")
        names = [r["compositor"] for r in irow]
        a2.bar([n + "\n0 win" for n in names], [r["windows_0"]["rss_kib"] / 1024 for r in irow])
        a2.bar(
            [n + "\nmany" for n in names],
            [
                r[max((k for k in r if k.startswith("windows_")), key=lambda k: int(k[8:]))][
                    "rss_kib"
                ]
                / 1024
                for r in irow
            ],
        )
        a2.set_ylabel("RSS (MiB)")
        fig.tight_layout()
        path = out / "cost.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path.name)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small N everywhere (a smoke run)")
    ap.add_argument("--only", default="switch,keypath,pointer,idle," + ",".join(EXTERNAL))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if os.geteuid() != 0:
        print(
            "benchmarks need root (cgroups, namespaces, a throw-away user for sway)",
            file=sys.stderr,
        )
        return 2
    only = set(args.only.split(","))
    t0 = time.monotonic()
    sway_v = subprocess.run(["sway", "--version"], capture_output=True, text=True, check=False)
    results: dict[str, Any] = {
        "date": now_utc(),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Linux {platform.release()}",
        "sway_version": sway_v.stdout.strip().split()[-1] if sway_v.returncode == 0 else None,
        "quick": args.quick,
        # other work on the machine skews every figure: say how busy it was
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "zionwm_log_level": ZIONWM_LOG_LEVEL,
    }
    if "switch" in only:
        results["switch"] = switch.measure(
            [1, 10] if args.quick else [1, 10, 50],
            20 if args.quick else 200,
            10 if args.quick else 40,
        )
    if "keypath" in only:
        results["keypath"] = keypath.measure(
            [1, 10] if args.quick else [1, 10, 50],
            10 if args.quick else 40,
            2 if args.quick else 3,
        )
    if "pointer" in only:
        args.out.mkdir(parents=True, exist_ok=True)
        try:
            results["pointer"] = pointer.measure_paired(
                1.0,
                rounds=6 if args.quick else 40,
                profile=args.out / "pointer-zionwm.pyspy.txt",
            )
        except Exception as e:
            log.exception("pointer benchmark failed")
            results["pointer"] = {"error": f"{type(e).__name__}: {e}"}
    if "idle" in only:
        results["idle"] = idle.measure(
            5 if args.quick else 15, 10, 10 if args.quick else 50, runs=2 if args.quick else 3
        )
    for name in EXTERNAL:
        if name in only:
            log.info("running %s", name)
            results[name] = run_external(name, args.quick)
    results["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["budget"] = budget(results)
    results["seconds"] = round(time.monotonic() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    results["plots"] = plots(results, args.out)
    (args.out / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
    md = markdown(results)
    (args.out / "latest.md").write_text(md)
    if only >= {"switch", "keypath", "pointer", "idle", *EXTERNAL} and args.out == RESULTS:
        readme.update(results)  # the README's figures: this full run's, nothing else
    else:
        log.info("a partial run: README.md left as it was")
    print(md)
    print(f"({results['seconds']} s; written to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
