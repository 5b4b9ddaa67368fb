"""Killing a frozen desktop's programs leaves the desktop able to run the next one.

The group's own freeze setting outlives its tasks: a kill that left cgroup.freeze=1 (or a
v1 FROZEN state) made the next program started on that desktop start frozen.
"""

from __future__ import annotations

import sys

import pytest

# the fixtures of the cgroup tests: the layout found here, and (on hybrid hosts) v1's paths
from tests.system.test_cgroups import (  # noqa: F401 (fixtures pytest finds by name)
    BUSY,
    SLEEP,
    Procs,
    _cgroup_facility,
    _poll_until,
    any_mgr,
    procs,
)
from zionwm.isolation.cgroups.manager import CgroupManager
from zionwm.isolation.spec import Limits

pytestmark = pytest.mark.skipif(_cgroup_facility() is not None, reason=str(_cgroup_facility()))


def test_a_program_started_after_killing_a_frozen_desktop_runs(
    any_mgr: CgroupManager,  # noqa: F811 (the imported fixtures)
    procs: Procs,  # noqa: F811
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
