"""Per-desktop program output (zionwm.isolation.outputlog): lines, escaping, rotation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zionwm.isolation import outputlog


def test_lines_are_prefixed_escaped_and_cut(tmp_path: Path) -> None:
    log = outputlog.DesktopLog("work", tmp_path / "logs" / "work.log")
    r, w = outputlog.output_pipe()
    out = outputlog.ProgramOutput(log, "foot[12]", r)
    os.write(w, b"hello\nred \x1b[31m\r\xe2\x80\xaeevil\nno newline yet")
    assert out.read() == 38
    assert out.read() == 0  # nothing there: not an end
    os.write(w, b" " + b"y" * (outputlog.MAX_LINE + 10))
    assert out.read() > 0
    os.close(w)
    assert out.read() == -1  # every writer gone
    out.close()
    lines = (tmp_path / "logs" / "work.log").read_text().splitlines()
    assert lines[0].endswith(" work foot[12]: hello")
    assert lines[1].endswith(" work foot[12]: red \\x1b[31m\\x0d\\u202eevil")
    assert len(lines) == 4  # the over-long partial line was cut, then its rest flushed
    assert all(" work foot[12]: " in ln for ln in lines)
    assert len(lines[2].split(": ", 1)[1]) == outputlog.MAX_LINE
    assert oct((tmp_path / "logs").stat().st_mode & 0o777) == "0o700"
    assert oct((tmp_path / "logs" / "work.log").stat().st_mode & 0o777) == "0o600"


def test_rotation_keeps_one_old_file_and_bounds_disk(tmp_path: Path) -> None:
    path = tmp_path / "web.log"
    log = outputlog.DesktopLog("web", path, max_bytes=1000)
    for i in range(100):
        log.write("p[1]", [f"line {i}".encode()])
    log.close()
    assert path.stat().st_size <= 1000 and Path(f"{path}.1").stat().st_size <= 1000
    assert "line 99" in path.read_text()
    assert not Path(f"{path}.2").exists()


def test_desktop_names_cannot_walk_out_of_the_logs_dir() -> None:
    for bad in ("../x", "a/b", "", "UPPER", "x" * 40):
        with pytest.raises(ValueError):
            outputlog.log_path(bad)


def test_budget_pauses_a_flood_and_refills() -> None:
    b = outputlog.Budget(rate=1000, burst=4000)
    assert b.charge(4000, now=10.0) == 0.0  # the burst
    assert b.charge(500, now=10.0) == pytest.approx(0.5)  # 500 bytes over: half a second
    assert b.charge(0, now=10.5) == 0.0  # refilled to zero by then
    assert b.charge(0, now=100.0) == 0.0 and b.charge(4000, now=100.0) == 0.0  # capped burst
