"""The benchmarks' pure helpers: percentiles, summaries, ratios, /proc parsing, budget
checks, and where zionwm places a window (which the sway peer copies)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.common import (
    budget_check,
    cpu_percent,
    cpu_seconds,
    parse_kib,
    parse_stat_ticks,
    percentile,
    ratio,
    summarize,
    zionwm_position,
)


def test_percentile_matches_the_inclusive_method_of_the_standard_library() -> None:
    data = [7.0, 1.0, 3.0, 12.5, 4.0, 4.0, 9.0, 0.5, 2.0, 30.0, 6.0]
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    for q in (1, 5, 25, 50, 75, 95, 99):
        assert percentile(data, q) == pytest.approx(cuts[q - 1])


def test_percentile_ends_and_interpolation() -> None:
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0], 0) == 1.0
    assert percentile([1.0, 2.0], 100) == 2.0
    assert percentile([0.0, 10.0], 25) == pytest.approx(2.5)
    assert percentile(list(range(101)), 99) == pytest.approx(99.0)


def test_percentile_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize() -> None:
    s = summarize([4.0, 1.0, 3.0, 2.0])
    assert s["n"] == 4
    assert s["median"] == 2.5
    assert s["min"] == 1.0
    assert s["max"] == 4.0
    assert s["mean"] == 2.5
    assert s["p95"] == pytest.approx(3.85)
    assert s["p99"] == pytest.approx(3.97)
    assert summarize([]) == {"n": 0}


def test_ratio() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 3.0) == 0.33
    assert ratio(None, 2.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None


def test_cpu_percent() -> None:
    assert cpu_percent(0.5, 10.0) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        cpu_percent(1.0, 0.0)


def test_parse_stat_ticks_survives_odd_command_names() -> None:
    # a command name with spaces and a ')' (anyone can name a process so)
    fields = ["S", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "111", "222", "0", "0"]
    stat = "4242 (evil) name ) x) " + " ".join(fields)
    assert parse_stat_ticks(stat) == 333


def test_parse_stat_ticks_of_this_process_agrees_with_os_times() -> None:
    sum(i * i for i in range(300_000))  # use some CPU first
    t = os.times()
    with open(f"/proc/{os.getpid()}/stat") as f:
        ticks = parse_stat_ticks(f.read())
    expected = (t.user + t.system) * os.sysconf("SC_CLK_TCK")
    assert abs(ticks - expected) <= 3


BURN_IN_A_THREAD = """
import threading, time
spent = []
def burn():
    end = time.thread_time() + 0.05
    while time.thread_time() < end:
        pass
    spent.append(time.thread_time())
t = threading.Thread(target=burn)
t.start()
t.join()
print(spent[0], flush=True)
time.sleep(60)
"""


def test_cpu_seconds_counts_threads_that_have_exited_to_the_nanosecond() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", BURN_IN_A_THREAD], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        burned = float(child.stdout.readline())
        # the thread is gone: its CPU must still be counted, and finer than a clock tick
        seconds = cpu_seconds(child.pid)
        with open(f"/proc/{child.pid}/stat") as f:
            ticks = parse_stat_ticks(f.read()) / os.sysconf("SC_CLK_TCK")
    finally:
        child.kill()
        child.wait()
    assert seconds >= burned
    assert abs(seconds - ticks) < 0.03
    assert round(seconds * 1e9) % 10_000_000 != 0


def test_parse_kib() -> None:
    text = "Name:\tx\nVmPeak:\t  2000 kB\nVmRSS:\t  1234 kB\n"
    assert parse_kib(text, "VmRSS") == 1234
    assert parse_kib(text, "VmSwap") is None
    assert parse_kib("Rss: 10 kB\nPss: 7 kB\n", "Pss") == 7


def test_budget_check() -> None:
    assert budget_check(1.0, 1.5) == "pass"
    assert budget_check(1.5, 1.5) == "pass"
    assert budget_check(1.6, 1.5) == "miss"
    assert budget_check(None, 1.5) == "n/a"


def test_zionwm_position_centres_then_cascades() -> None:
    x0, y0 = zionwm_position(0, 250, 250)
    assert (x0, y0) == ((1280 - 250) // 2, 24 + (720 - 24 - 250) // 2)
    assert zionwm_position(1, 250, 250) == (x0 + 32, y0 + 32)
    # the 8th would leave the area at the bottom: back to its top-left corner, then on
    assert zionwm_position(6, 250, 250) == (x0 + 6 * 32, y0 + 6 * 32)
    assert zionwm_position(7, 250, 250) == (3, 27)
    assert zionwm_position(8, 250, 250) == (35, 59)
    assert zionwm_position(7 + 14, 250, 250) == (3, 27)  # 14 fit from the corner
    # a window larger than the output is kept inside by the frame width
    assert zionwm_position(0, 2000, 2000) == (3, 27)


def test_placement_constants_are_the_compositors() -> None:
    from benchmarks import common
    from zionwm.compositor.ui import STRIP_HEIGHT
    from zionwm.compositor.views import BORDER

    assert (common.STRIP, common.BORDER) == (STRIP_HEIGHT, BORDER)


def test_top_frames_of_collapsed_stacks() -> None:
    from benchmarks.pointer import top_frames

    text = "main;run;commit 6\nmain;run;motion;node_at 3\nmain;idle 1\nnot a stack line\n"
    t = top_frames(text, n=3)
    assert t["self"] == [("commit", 60.0), ("node_at", 30.0), ("idle", 10.0)]
    assert t["inclusive"][0] == ("main", 100.0)
    assert ("run", 90.0) in t["inclusive"]
    assert top_frames("") == {"self": [], "inclusive": []}


def test_frame_pixel_reads_xrgb_little_endian_and_honours_y_invert() -> None:
    from benchmarks.common import Frame

    # 2x2 XRGB8888: bytes are B, G, R, X per pixel
    rows = [bytes([1, 2, 3, 0, 4, 5, 6, 0]), bytes([7, 8, 9, 0, 10, 11, 12, 0])]
    f = Frame(0, 0, 2, 2, 8, False, b"".join(rows))
    assert f.pixel(0, 0) == (3, 2, 1)
    assert f.pixel(1, 1) == (12, 11, 10)
    flipped = Frame(0, 0, 2, 2, 8, True, b"".join(rows))
    assert flipped.pixel(0, 0) == (9, 8, 7)


def test_benchmark_config_is_valid_for_zionwm(tmp_path: Path) -> None:
    from benchmarks.common import zionwm_config
    from zionwm.config import load_config

    path = tmp_path / "config.py"
    path.write_text(zionwm_config(desktops=3, network="full"))
    config, problems = load_config(path)
    assert config is not None, [str(p) for p in problems]
    assert [d.name for d in config.desktops] == ["d1", "d2", "d3"]
    commands = {b.command for b in config.bindings}
    assert {"switch 1", "switch 2", "switch 9"} <= commands


def test_subsystem_summaries_are_in_milliseconds() -> None:
    from benchmarks.stats import summarize_ms

    got = summarize_ms([0.001, 0.002, 0.003, 0.004, 0.100])
    assert got == {"runs": 5, "median_ms": 3.0, "p95_ms": 80.8, "min_ms": 1.0}
    assert summarize_ms([]) == {"runs": 0}


def test_timed_warms_up_once_then_times_each_run() -> None:
    from benchmarks.stats import timed

    calls: list[int] = []
    samples = timed(lambda: calls.append(1), 4)
    assert len(calls) == 5 and len(samples) == 4 and all(s >= 0 for s in samples)


def test_rss_of_a_live_and_a_gone_process(tmp_path: Path) -> None:
    import json
    import os
    import subprocess

    from benchmarks.stats import emit_json, rss_kib_of

    assert (rss_kib_of(os.getpid()) or 0) > 1000
    p = subprocess.Popen(["true"])
    p.wait()
    assert rss_kib_of(p.pid) is None
    emit_json({"a": 1}, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == {"a": 1}


def test_mapped_libraries_reads_the_files_a_process_mapped() -> None:
    from benchmarks.common import mapped_libraries

    maps = (
        "7f00-7f10 r--p 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libwlroots.so.10\n"
        "7f10-7f20 r-xp 00010000 08:01 1 /usr/lib/x86_64-linux-gnu/libwlroots.so.10\n"
        "7f20-7f30 r--p 00000000 08:01 2 /usr/lib/x86_64-linux-gnu/libwayland-server.so.0.21.0\n"
        "7f30-7f40 r--p 00000000 08:01 3 /usr/lib/x86_64-linux-gnu/libwayland-client.so.0\n"
        "7f40-7f50 rw-p 00000000 00:00 0 \n"
        "7f50-7f60 r--p 00000000 08:01 4 /opt/x/libpixman-1.so.0.42.2\n"
    )
    assert mapped_libraries(maps) == {
        "libwlroots": "/usr/lib/x86_64-linux-gnu/libwlroots.so.10",
        "libwayland-server": "/usr/lib/x86_64-linux-gnu/libwayland-server.so.0.21.0",
        "libpixman-1": "/opt/x/libpixman-1.so.0.42.2",
    }


def test_readme_block_is_replaced_between_its_markers_only() -> None:
    from benchmarks.readme import BEGIN, END, replace_block

    text = f"intro\n{BEGIN}\nold figures\n{END}\nafter\n"
    want = f"intro\n{BEGIN}\n\nnew figures\n\n{END}\nafter\n"
    assert replace_block(text, "new figures\n") == want
    with pytest.raises(ValueError, match="markers"):
        replace_block("no markers here", "x")


def _spread(lo: int, mid: int, hi: int) -> dict[str, int]:
    return {"runs": 3, "min": lo, "median": mid, "max": hi}


def test_the_project_readme_block_is_built_from_the_results_alone() -> None:
    from benchmarks.readme import top_block

    results = {
        "date": "2026-12-04T16:00:00Z",
        "machine": "vm x86_64, 2 CPUs",
        "loadavg_start": [1.0, 1.0, 1.0],
        "loadavg_end": [2.0, 2.0, 2.0],
        "zionwm_log_level": "info",
        "sway_version": "1.7",
        "budget": [
            {"line": "some limit", "figure": 1.25, "unit": "x sway", "limit": 1.3, "status": "pass"}
        ],
        "idle": {
            "summary": {
                "zionwm": {"rss_start_kib": _spread(51200, 52224, 53248)},
                "sway": {"rss_start_kib": _spread(20480, 21504, 22528)},
            },
            "per_desktop": {"per_desktop_kib": 13000.0},
            "memory": [
                {
                    "compositor": "zionwm",
                    "windows_0": {"rss_kib": 51200},
                    "windows_5": {"rss_kib": 54272},
                    "windows_50": {"rss_kib": 71680},
                },
                {
                    "compositor": "sway",
                    "windows_0": {"rss_kib": 20480},
                    "windows_5": {"rss_kib": 25600},
                    "windows_50": {"rss_kib": 51200},
                },
            ],
        },
    }
    text = top_block(results)
    assert "| some limit | 1.25 x sway | 1.3 | pass |" in text
    assert "RSS at start 51.0 MiB (min 50.0, max 52.0, 3 runs), sway 21.0 MiB" in text
    # the few and the many windows, in that order, each with its ratio
    assert (
        "With 5 windows: zionwm 53.0 MiB, sway 25.0 MiB (2.12x); "
        "50 windows: zionwm 70.0 MiB, sway 50.0 MiB (1.4x) (one run each)." in text
    )
    assert "2026-12-04T16:00:00Z" in text and "log level info" in text


def test_the_overload_warning_judges_the_load_at_the_start_only() -> None:
    from benchmarks.run import overload_note

    cpus = os.cpu_count() or 1
    # the run's own last stages load every CPU: a high load at the end alone is no warning
    assert overload_note({"loadavg_start": [0.1, 0, 0], "loadavg_end": [cpus + 1.0, 0, 0]}) == []
    (warning, _) = overload_note({"loadavg_start": [cpus + 0.5, 0, 0], "loadavg_end": [0, 0, 0]})
    assert "overloaded" in warning and f"{cpus + 0.5} on {cpus} CPUs at its start" in warning


def test_the_memory_budget_has_a_line_with_a_few_windows() -> None:
    from benchmarks.idle import FEW_WINDOWS
    from benchmarks.run import budget

    results = {
        "idle": {
            "memory": [
                {"compositor": "zionwm", f"windows_{FEW_WINDOWS}": {"rss_kib": 3000}},
                {"compositor": "sway", f"windows_{FEW_WINDOWS}": {"rss_kib": 2000}},
            ]
        }
    }
    line = next(b for b in budget(results) if f"with {FEW_WINDOWS} windows" in b["line"])
    assert (line["figure"], line["limit"], line["status"]) == (1.5, 1.5, "pass")
    results["idle"]["memory"][0][f"windows_{FEW_WINDOWS}"]["rss_kib"] = 3100
    line = next(b for b in budget(results) if f"with {FEW_WINDOWS} windows" in b["line"])
    assert line["status"] == "miss"
