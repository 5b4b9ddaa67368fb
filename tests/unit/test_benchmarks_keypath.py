"""The key-to-frame benchmark's report: its budget lines take the worst ratio to sway over
window counts and key paths, and say where it was."""

from __future__ import annotations

from typing import Any

from benchmarks.keypath import budget_lines, markdown_lines, summary_text, worst_ratio


def _row(kind: str, windows: int, path: str, median: float, p99: float, **ratios: float) -> Any:
    return {
        "compositor": kind,
        "windows": windows,
        "key_path": path,
        "runs": 3,
        "keys": 120,
        "ms": {"min": 1.0, "median": median, "p99": p99, "max": p99 + 1},
        "run_medians_ms": [median, median],
        **ratios,
    }


RESULTS = {
    "keys_per_run": 40,
    "series": [
        _row("sway", 1, "wtype", 15.0, 25.0),
        _row("zionwm", 1, "wtype", 14.0, 24.0, ratio_p50=0.93, ratio_p99=0.96),
        _row("sway", 50, "probe", 10.0, 20.0),
        _row("zionwm", 50, "probe", 12.0, 22.0, ratio_p50=1.2, ratio_p99=1.1),
    ],
    "errors": [],
}


def test_the_worst_ratio_and_where_it_was() -> None:
    assert worst_ratio(RESULTS, "ratio_p50") == (1.2, "50 windows, probe")
    assert worst_ratio(RESULTS, "ratio_p99") == (1.1, "50 windows, probe")
    assert worst_ratio({"series": []}, "ratio_p50") is None


def test_budget_lines_name_figure_and_limit_for_p50_and_p99() -> None:
    p50, p99 = budget_lines(RESULTS)
    assert p50["figure"] == 1.2 and p50["limit"] == 1.1 and p50["status"] == "miss"
    assert p99["figure"] == 1.1 and p99["limit"] == 1.2 and p99["status"] == "pass"
    assert "p50" in p50["line"] and "p99" in p99["line"] and "1/50 windows" in p50["line"]
    assert [b["status"] for b in budget_lines(None)] == ["n/a", "n/a"]


def test_the_table_and_the_sentence_come_from_the_rows() -> None:
    table = "\n".join(markdown_lines(RESULTS))
    assert (
        "| zionwm | 50 | probe | 3 | 120 | 1.0 | 12.0 | 22.0 | 23.0 | 12.0, 12.0 | 1.2 / 1.1 |"
        in table
    )
    text = summary_text(RESULTS)
    assert "50 windows, probe: p50 12.0 ms (sway 10.0), p99 22.0 ms (sway 20.0)" in text
    assert summary_text(None) == "not measured"
