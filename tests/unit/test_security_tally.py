"""The suite's own rule on skipped attacks, checked on a small real pytest run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import security

PROJECT_ROOT = Path(__file__).resolve().parents[2]

SAMPLE = """
import pytest
from tests.security import lacks

@pytest.mark.security
def test_held():
    pass

@pytest.mark.security
@pytest.mark.parametrize("n", [1, 2])
def test_held_twice(n):
    pass

@pytest.mark.security
def test_broke():
    assert False, "the attack got through"

@pytest.mark.security
def test_no_gpu():
    lacks("gpu", "no /dev/dri/renderD* here")

@pytest.mark.security
def test_no_tool():
    pytest.skip("grim is not installed on this machine")

def test_not_an_attack():
    pytest.skip("whatever")
"""


def _run(tmp_path: Path, ci: str | None, *select: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    if ci is not None:
        env["CI"] = ci
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs"]
    argv += ["-c", os.devnull, "--rootdir", str(tmp_path)]
    argv += [str(tmp_path / "test_sample.py"), *select]
    return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_summary_counts_runs_holds_and_skips_with_their_reasons(tmp_path: Path) -> None:
    done = _run(tmp_path, None)
    assert done.returncode == 1, done.stdout  # test_broke fails
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("security:"))
    assert line == (
        "security: 4 attacks run, 3 held, 2 skipped: "
        "grim is not installed on this machine (1); lacks gpu (1)"
    )


def test_ci_fails_a_run_whose_attacks_skipped_without_a_lacked_facility(tmp_path: Path) -> None:
    # Without CI the unexcused skip is reported, not fatal.
    done = _run(tmp_path, None, "-k", "held or no_tool or not_an_attack")
    assert done.returncode == 0, done.stdout
    done = _run(tmp_path, "true", "-k", "held or no_tool or not_an_attack")
    assert done.returncode == 1, done.stdout
    assert "test_no_tool: grim is not installed on this machine" in done.stdout
    # A facility the machine lacks is excused, and a skipped non-attack never counts.
    done = _run(tmp_path, "true", "-k", "held or no_gpu or not_an_attack")
    assert done.returncode == 0, done.stdout
    assert "security: 3 attacks run, 3 held, 1 skipped: lacks gpu (1)" in done.stdout


def test_lacks_takes_only_listed_facilities() -> None:
    with pytest.raises(ValueError, match="not a facility"):
        security.lacks("grim")
    assert security.lacked_facility("lacks fuse: /dev/fuse is mode 0600") == "fuse"
    assert security.lacked_facility("bwrap lacks nothing; not installed") is None
    assert security.lacked_facility("it lacks gpus") is None
