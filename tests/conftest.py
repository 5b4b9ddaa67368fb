"""Shared fixtures: a real headless zionwm per test (or per module where stated)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Compositor


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
