"""Killing a frozen desktop's programs leaves the desktop able to run the next one.

The group's own freeze setting outlives its tasks: a kill that left cgroup.freeze=1 (or a
v1 FROZEN state) made the next program started on that desktop start frozen.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.system.test_cgroups import (
    BUSY,
    SLEEP,
    Procs,
    _cgroup_facility,
    _new_manager,
    _poll_until,
    _teardown,
)
from zionwm.isolation.cgroups.manager import CgroupManager
from zionwm.isolation.spec import Limits

pytestmark = pytest.mark.skipif(_cgroup_facility() is not None, reason=str(_cgroup_facility()))


@pytest.fixture
def procs() -> Iterator[Procs]:
    p = Procs()
    yield p
    p.reap()


@pytest.fixture(params=["default", "v1"])
def any_mgr(request: pytest.FixtureRequest, procs: Procs) -> Iterator[CgroupManager]:
    """The layout found here, and (on hybrid hosts) the v1-only paths of the same kernel."""
    m = _new_manager(ignore_unified=request.param == "v1")
    if request.param == "v1" and m.status.layout != "v1":
        m.cleanup()
        pytest.skip("no cgroup v1 freezer hierarchy on this machine (pure cgroup v2)")
    if not m.status.can_freeze:
        m.cleanup()
        pytest.skip("no writable freezer: " + "; ".join(m.status.problems))
    yield m
    _teardown(m, procs)


def test_a_program_started_after_killing_a_frozen_desktop_runs(
    any_mgr: CgroupManager, procs: Procs
) -> None:
    cg = any_mgr.desktop("killed", Limits())
    assert cg is not None
    procs.start(cg, SLEEP)
    procs.start(cg, BUSY)
    _poll_until(lambda: len(cg.live_pids()) == 2, 5, "both programs in the desktop")
    result = cg.freeze(timeout=2.0)
    assert result.ok, result.reason

    assert cg.kill(timeout=5.0) == 2
    assert cg.live_pids() == []
    assert not cg.frozen, "the kill left the desktop frozen"

    # the next program on that desktop runs: it uses CPU and finishes on its own
    before = cg.cpu_usec() or 0
    p = procs.start(cg, [sys.executable, "-c", "sum(range(3_000_000))"])
    assert p.wait(timeout=30) == 0
    assert (cg.cpu_usec() or 0) > before
