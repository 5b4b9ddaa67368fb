"""Shared fixtures: a real headless zionwm per test (or per module where stated)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
