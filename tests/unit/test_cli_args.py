"""`zionwm`'s command line: the session's options are parsed without argparse, and every
such command line means exactly what argparse makes of it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zionwm import cli

SESSION_LINES = [
    [],
    ["--headless"],
    ["--headless", "--outputs", "2", "--size", "800x600", "--socket", "wayland-zt"],
    ["--config", "/tmp/x.py", "--log-level", "debug"],
    ["--size=1920X1080", "--outputs=3", "--vnc", "5909"],
    ["--vnc", "0.0.0.0:5910", "--vnc", "127.0.0.1:5911"],  # the last one wins
    ["--outputs=-1"],
]


def _argparse_args(argv: list[str]) -> dict[str, object]:
    """What argparse alone makes of `argv` (the quick parser switched off)."""
    saved = cli._quick_parse
    cli._quick_parse = lambda argv: None  # type: ignore[assignment]
    try:
        return vars(cli.parse_args(argv))
    finally:
        cli._quick_parse = saved  # type: ignore[assignment]


@pytest.mark.parametrize("argv", SESSION_LINES)
def test_session_options_parse_without_argparse_as_argparse_would(argv: list[str]) -> None:
    quick = cli._quick_parse(argv)
    assert quick is not None
    assert vars(quick) == _argparse_args(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["--check-config"],
        ["--check-config", "/tmp/c.py"],
        ["--head"],  # an abbreviation
        ["--size", "big"],
        ["--outputs", "-1"],  # a value that looks like an option
        ["--socket"],
        ["--help"],
        ["--version"],
        ["stray"],
    ],
)
def test_anything_else_is_left_to_argparse(argv: list[str]) -> None:
    assert cli._quick_parse(argv) is None


def test_a_bad_value_gets_argparses_error() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "zionwm.cli", "--size", "big"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "size must look like 1280x720, not 'big'" in r.stderr


def test_the_session_path_imports_no_argparse() -> None:
    code = (
        "import sys; from zionwm import cli; cli.parse_args(['--headless', '--size', '640x480']);"
        "print('argparse' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr
