"""Audit work is charged to the desktop that caused it (an attack from inside).

A program in a CPU-limited desktop, started the way a user's program is, drops files into
its Downloads: every one of them costs the quarantine an audit. That work must land in the
desktop's own audit cgroup, with the desktop's CPU limit, and not in the compositor's
unlimited one (where it would let the desktop push the host past its limit).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.harness import wait_for
from zionwm.quarantine.engines import DEFAULT_CLAMD_SOCKET

CONFIG = """\
from zionwm.config import desktop, Downloads, Limits, settings
desktop("personal", colour="#3b82f6")
desktop("web", colour="#ef4444", limits=Limits(cpu_max="20%"),
        downloads=Downloads(release_to="personal", hold=0))
settings(antivirus="if-available")
"""
FILES = 40


def _groups(root_name: str, leaf: str) -> list[Path]:
    """Every directory `<root_name>/<leaf>` in every cgroup hierarchy mounted here."""
    found = []
    for top in Path("/sys/fs/cgroup").iterdir():
        for dirpath, dirnames, _ in os.walk(top):
            if Path(dirpath).name == root_name:
                if leaf in dirnames:
                    found.append(Path(dirpath) / leaf)
                dirnames[:] = []
            elif dirpath.count("/") - str(top).count("/") > 5:
                dirnames[:] = []
    return found


def _cpu_usage_ns(group: Path) -> int | None:
    if (group / "cpuacct.usage").exists():
        return int((group / "cpuacct.usage").read_text())
    if (group / "cpu.stat").exists():
        for line in (group / "cpu.stat").read_text().splitlines():
            if line.startswith("usage_usec"):
                return int(line.split()[1]) * 1000
    return None


def _cpu_limit(group: Path) -> str | None:
    if (group / "cpu.cfs_quota_us").exists():
        quota = (group / "cpu.cfs_quota_us").read_text().strip()
        return f"{quota}/{(group / 'cpu.cfs_period_us').read_text().strip()}"
    if (group / "cpu.max").exists():
        return "/".join((group / "cpu.max").read_text().split())
    return None


@pytest.mark.security
def test_files_dropped_by_a_limited_desktop_are_audited_on_its_budget(
    make_compositor: Any,
) -> None:
    comp = make_compositor(CONFIG)
    root_name = comp.zjson("status")["instance"]["cgroup_root"]  # per user and instance
    # the attacker: a program of the web desktop, in its sandbox, writing files
    comp.zionctl(
        "launch",
        "web",
        "--",
        "sh",
        "-c",
        f'for i in $(seq 1 {FILES}); do echo "page $i" > ~/Downloads/f$i.txt; done',
    )
    released = comp.desktop_home("personal") / "Downloads"
    wait_for(
        lambda: released.is_dir() and len(os.listdir(released)) >= FILES,
        120,
        f"{FILES} files audited and released",
    )
    # and `zionctl status` says whether an antivirus scanned them (the one at the usual
    # place is used when it runs; the config names none)
    status = comp.zionctl("status").stdout
    expected = "active" if os.path.exists(DEFAULT_CLAMD_SOCKET) else "not active"
    assert f"antivirus: {expected}" in status, status
    audit_groups = _groups(root_name, "web.audit")
    assert audit_groups, f"no audit cgroup web.audit under {root_name}"
    web_groups = {g.parent.parent: g for g in _groups(root_name, "web")}
    charged = [g for g in audit_groups if (_cpu_usage_ns(g) or 0) > 0]
    assert charged, f"no CPU time charged to {audit_groups}"
    limited = [g for g in audit_groups if _cpu_limit(g) is not None]
    assert limited, "the audit group has no CPU controller"
    for g in limited:
        web = web_groups.get(g.parent.parent)
        assert web is not None
        # the same CPU limit as the desktop itself
        assert _cpu_limit(g) == _cpu_limit(web), (_cpu_limit(g), _cpu_limit(web))
