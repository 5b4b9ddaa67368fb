"""Shared fixtures: a real headless zionwm per test (or per module where stated)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import security
from tests.harness import Compositor

_tally = security.Tally()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "security: an attack from inside a sandbox; its skips are counted, and under CI=true "
        "fail the run unless they name a facility the machine lacks (tests/security.py)",
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _tally.record(report)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not (_tally.run or _tally.skipped):
        return
    terminalreporter.write_sep("-", "security")
    terminalreporter.write_line(_tally.summary())
    bad = _tally.unexcused()
    if bad and security.in_ci():
        terminalreporter.write_line(
            "FAILED under CI=true: attack tests skipped for reasons other than a facility "
            f"this machine lacks ({', '.join(sorted(security.FACILITIES))}):"
        )
        for nodeid, reason in sorted(bad.items()):
            terminalreporter.write_line(f"  {nodeid}: {reason}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if security.in_ci() and _tally.unexcused() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def compositor(tmp_path: Path) -> Iterator[Compositor]:
    comp = Compositor(tmp_path).start()
    try:
        yield comp
    finally:
        comp.stop()


@pytest.fixture
def make_compositor(tmp_path: Path) -> Iterator[object]:
    """Start compositors with a custom config; each is stopped and checked at teardown."""
    started: list[Compositor] = []

    def make(config_text: str | None = None, sub: str = "z", **kw: object) -> Compositor:
        root = tmp_path / sub
        root.mkdir(exist_ok=True)
        comp = Compositor(root, config_text=config_text, **kw).start()  # type: ignore[arg-type]
        started.append(comp)
        return comp

    yield make
    for comp in started:
        comp.stop()


@pytest.fixture
def i3connect() -> Iterator[Callable[[str], Any]]:
    """i3ipc connections, closed at the end (i3ipc itself never closes its sockets)."""
    i3ipc = pytest.importorskip("i3ipc")
    conns: list[Any] = []

    def connect(path: str) -> Any:
        conns.append(i3ipc.Connection(socket_path=path))
        return conns[-1]

    yield connect
    for conn in conns:
        conn._cmd_socket.close()
