"""Pure cgroup decisions: layout from /proc text, status from probe facts, limits to writes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import cast

from zionwm.isolation.cgroups.desktop import DesktopCgroup
from zionwm.isolation.cgroups.freezer import FreezeOp
from zionwm.isolation.cgroups.fs import parse_keyed
from zionwm.isolation.cgroups.layout import UNIFIED, detect_layout
from zionwm.isolation.cgroups.limits import (
    Write,
    format_cpus,
    limit_writes,
    parse_cpus,
    validate_limits,
)
from zionwm.isolation.cgroups.status import DELEGATE_HINT, DirFacts, summarize
from zionwm.isolation.spec import Limits

# A systemd desktop (Fedora / Ubuntu 22.04+ / Debian 12 with systemd): pure cgroup v2.
V2_CGROUP = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/zionwm.scope\n"
V2_MOUNTINFO = """\
22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
26 23 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 \
rw,nsdelegate,memory_recursiveprot
28 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
"""

# This machine kind: v1 controllers each on its own hierarchy, cgroup2 without controllers.
HYBRID_CGROUP = """\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/537d13daf32a8613b33872223f070d60
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
"""
HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

# systemd "legacy" mode (e.g. CentOS 7): v1 only, cpu and cpuacct co-mounted.
V1_CGROUP = """\
11:name=systemd:/user.slice/user-1000.slice/session-2.scope
4:cpu,cpuacct:/user.slice
3:memory:/user.slice
2:freezer:/
1:pids:/user.slice/user-1000.slice/session-2.scope
"""
V1_MOUNTINFO = """\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/freezer rw,nosuid - cgroup cgroup rw,freezer
32 25 0:29 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
"""

# A container without a cgroup namespace: its own group is bind-mounted read-only.
RO_CGROUP = "0::/system.slice/docker-abc.scope\n"
RO_MOUNTINFO = (
    "700 690 0:30 /system.slice/docker-abc.scope /sys/fs/cgroup ro,nosuid,nodev,noexec "
    "- cgroup2 cgroup ro\n"
)


def test_pure_v2_systemd() -> None:
    layout = detect_layout(V2_CGROUP, V2_MOUNTINFO)
    assert layout.kind == "v2"
    assert layout.v1 == ()
    assert layout.unified is not None
    assert layout.unified.own_dir == Path(
        "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/zionwm.scope"
    )
    assert not layout.unified.read_only


def test_hybrid_like_this_machine() -> None:
    layout = detect_layout(HYBRID_CGROUP, HYBRID_MOUNTINFO)
    assert layout.kind == "hybrid"
    assert layout.unified is not None
    assert layout.unified.own_dir == Path("/sys/fs/cgroup/unified")
    keys = {h.key for h in layout.v1}
    # devices, blkio and the named systemd hierarchy carry nothing we use.
    assert keys == {"cpu", "cpuacct", "cpuset", "memory", "freezer", "pids"}
    mem = layout.v1_for("memory")
    assert mem is not None
    assert mem.own_dir == Path("/sys/fs/cgroup/memory/process_api/537d13daf32a8613b33872223f070d60")
    cpu = layout.v1_for("cpu")
    assert cpu is not None and cpu.own_dir == Path("/sys/fs/cgroup/cpu")


def test_v1_only_with_comounted_cpu_cpuacct() -> None:
    layout = detect_layout(V1_CGROUP, V1_MOUNTINFO)
    assert layout.kind == "v1"
    assert layout.unified is None
    cpu = layout.v1_for("cpu")
    assert cpu is not None and cpu is layout.v1_for("cpuacct")
    assert cpu.key == "cpu,cpuacct"
    assert cpu.own_dir == Path("/sys/fs/cgroup/cpu,cpuacct/user.slice")
    pids = layout.v1_for("pids")
    assert pids is not None
    assert pids.own_dir == Path("/sys/fs/cgroup/pids/user.slice/user-1000.slice/session-2.scope")


def test_read_only_bind_mounted_group() -> None:
    layout = detect_layout(RO_CGROUP, RO_MOUNTINFO)
    assert layout.kind == "v2"
    assert layout.unified is not None
    assert layout.unified.read_only
    # The mount's root is our own group, so our directory is the mount point itself.
    assert layout.unified.own_dir == Path("/sys/fs/cgroup")


def test_own_group_outside_the_mount_is_unreachable() -> None:
    layout = detect_layout(
        "0::/other.slice/x.scope\n",
        "700 690 0:30 /system.slice /sys/fs/cgroup rw - cgroup2 cgroup rw\n",
    )
    assert layout.unified is not None
    assert layout.unified.own_dir is None


def test_escaped_mount_point() -> None:
    layout = detect_layout("0::/\n", "41 31 0:38 / /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n")
    assert layout.unified is not None
    assert layout.unified.mount_point == "/mnt/cg two"


def test_no_cgroup_filesystem() -> None:
    layout = detect_layout("0::/\n", "28 1 259:2 / / rw - ext4 /dev/sda1 rw\n")
    assert layout.kind == "none"
    assert layout.unified is None
    assert any("not mounted" in n for n in layout.notes)
    st = summarize(layout, {}, uid=1000)
    assert not st.can_limit and not st.can_freeze and not st.can_kill
    assert any("no cgroup filesystem" in p for p in st.problems)


# --- summarize: capabilities and the problems shown to the user ---------------------------

ALL_FILES = frozenset({"cgroup.procs", "cgroup.freeze", "cgroup.kill", "cpu.stat"})


def _hybrid_facts(*, v1_usable: bool) -> dict[str, DirFacts]:
    layout = detect_layout(HYBRID_CGROUP, HYBRID_MOUNTINFO)
    facts = {UNIFIED: DirFacts(own_dir="/sys/fs/cgroup/unified", usable=True, files=ALL_FILES)}
    for h in layout.v1:
        facts[h.key] = DirFacts(
            own_dir=str(h.own_dir),
            usable=v1_usable,
            error=None if v1_usable else f"{h.own_dir} not writable",
        )
    return facts


def test_hybrid_as_root_limits_from_v1_freeze_from_cgroup2() -> None:
    layout = detect_layout(HYBRID_CGROUP, HYBRID_MOUNTINFO)
    st = summarize(layout, _hybrid_facts(v1_usable=True), uid=0)
    assert st.can_limit == {"cpu", "memory", "pids", "cpuset"}
    assert st.freeze_method == "cgroup2"
    assert st.kill_method == "cgroup.kill"
    assert st.membership == UNIFIED
    assert not st.can_reclaim
    assert len(st.problems) == 1 and "memory.reclaim" in st.problems[0]
    assert "hybrid" in st.describe()


def test_hybrid_delegated_to_a_user_freezes_but_cannot_limit() -> None:
    layout = detect_layout(HYBRID_CGROUP, HYBRID_MOUNTINFO)
    st = summarize(layout, _hybrid_facts(v1_usable=False), uid=1000)
    assert st.can_limit == set()
    assert st.can_freeze and st.can_kill
    problem = next(p for p in st.problems if "v1 controllers" in p)
    assert "uid 1000" in problem
    assert "cpu, memory, pids, cpuset" in problem


def test_nothing_writable_says_what_is_missing_and_how() -> None:
    layout = detect_layout(RO_CGROUP, RO_MOUNTINFO)
    facts = {UNIFIED: DirFacts(own_dir="/sys/fs/cgroup", usable=False, error="read-only")}
    st = summarize(layout, facts, uid=1000)
    assert st.can_limit == set()
    assert not st.can_freeze and not st.can_kill and not st.can_reclaim
    assert st.membership is None
    assert st.base_paths == {}
    text = "\n".join(st.problems)
    assert DELEGATE_HINT in text
    assert "/system.slice/docker-abc.scope" in text
    assert "freezing hidden desktops is disabled" in text


def test_pure_v2_delegated_without_cpuset() -> None:
    layout = detect_layout(V2_CGROUP, V2_MOUNTINFO)
    facts = {
        UNIFIED: DirFacts(
            own_dir="/sys/fs/cgroup/x",
            usable=True,
            enabled=frozenset({"cpu", "memory", "pids"}),
            files=ALL_FILES | {"memory.reclaim"},
        )
    }
    st = summarize(layout, facts, uid=1000)
    assert st.can_limit == {"cpu", "memory", "pids"}
    assert st.can_reclaim and st.can_freeze
    assert st.kill_method == "cgroup.kill"
    assert len(st.problems) == 1
    assert "cpuset" in st.problems[0] and "Delegate=" in st.problems[0]


def test_v1_only_uses_the_v1_freezer_and_sweeps_to_kill() -> None:
    layout = detect_layout(V1_CGROUP, V1_MOUNTINFO)
    facts = {h.key: DirFacts(own_dir=str(h.own_dir), usable=True) for h in layout.v1}
    st = summarize(layout, facts, uid=0)
    assert st.freeze_method == "v1-freezer"
    assert st.kill_method == "frozen-sweep"
    assert st.membership == "freezer"
    assert st.can_limit == {"cpu", "memory", "pids"}  # no cpuset hierarchy is mounted there


def test_status_json_is_plain_data() -> None:
    layout = detect_layout(HYBRID_CGROUP, HYBRID_MOUNTINFO)
    js = summarize(layout, _hybrid_facts(v1_usable=True), uid=0).to_json()
    assert js["can_limit"] == ["cpu", "cpuset", "memory", "pids"]
    assert js["layout"] == "hybrid"


# --- limits -> writes ---------------------------------------------------------------------


def _as_map(writes: list[Write]) -> dict[str, str]:
    return {w.file: w.value for w in writes}


FULL = Limits(
    cpu_weight=50,
    cpu_max=0.2,
    memory_high=48 << 20,
    memory_max=64 << 20,
    pids_max=32,
    cpuset=(1,),
)


def test_limits_on_v2() -> None:
    versions = dict.fromkeys(("cpu", "memory", "pids", "cpuset"), 2)
    writes, warnings = limit_writes(FULL, versions, parent_cpus={0, 1})
    assert warnings == []
    assert _as_map(writes) == {
        "cpu.weight": "50",
        "cpu.max": "20000 100000",
        "memory.high": str(48 << 20),
        "memory.max": str(64 << 20),
        "pids.max": "32",
        "cpuset.cpus": "1",
    }


def test_limits_on_v1() -> None:
    versions = dict.fromkeys(("cpu", "memory", "pids", "cpuset"), 1)
    writes, warnings = limit_writes(FULL, versions, parent_cpus={0, 1})
    m = _as_map(writes)
    assert m["cpu.shares"] == "512"  # 50 * 1024 / 100
    assert m["cpu.cfs_quota_us"] == "20000" and m["cpu.cfs_period_us"] == "100000"
    assert m["memory.limit_in_bytes"] == str(64 << 20)
    assert m["memory.soft_limit_in_bytes"] == str(48 << 20)
    assert m["pids.max"] == "32" and m["cpuset.cpus"] == "1"
    assert any("soft_limit" in w for w in warnings)
    # The period is written before the quota, so a quota above the old period is accepted.
    files = [w.file for w in writes]
    assert files.index("cpu.cfs_period_us") < files.index("cpu.cfs_quota_us")


def test_unset_limits_reset_to_unlimited() -> None:
    writes, _ = limit_writes(
        Limits(), dict.fromkeys(("cpu", "memory", "pids", "cpuset"), 2), {0, 1}
    )
    assert _as_map(writes) == {
        "cpu.weight": "100",
        "cpu.max": "max 100000",
        "memory.high": "max",
        "memory.max": "max",
        "pids.max": "max",
        "cpuset.cpus": "",
    }
    writes, _ = limit_writes(
        Limits(), dict.fromkeys(("cpu", "memory", "pids", "cpuset"), 1), {0, 1}
    )
    m = _as_map(writes)
    assert m["cpu.cfs_quota_us"] == "-1" and m["memory.limit_in_bytes"] == "-1"
    assert m["cpuset.cpus"] == "0-1" and m["cpu.shares"] == "1024"


def test_missing_controllers_warn_instead_of_failing() -> None:
    writes, warnings = limit_writes(FULL, {"pids": 1})
    assert _as_map(writes) == {"pids.max": "32"}
    for name in ("cpu_weight", "cpu_max", "memory_high", "memory_max", "cpuset"):
        assert any(w.startswith(name + " not applied") for w in warnings), name


def test_cpuset_cpus_outside_the_parent_are_ignored() -> None:
    writes, warnings = limit_writes(Limits(cpuset=(1, 3, 4)), {"cpuset": 2}, parent_cpus={0, 1})
    assert _as_map(writes) == {"cpuset.cpus": "1"}
    assert "3-4" in warnings[0] and "available: 0-1" in warnings[0]
    writes, warnings = limit_writes(Limits(cpuset=(3,)), {"cpuset": 1}, parent_cpus={0, 1})
    assert writes == []
    assert any("none of its CPUs" in w for w in warnings)


def test_invalid_fields_are_ignored_one_by_one() -> None:
    bad = Limits(cpu_weight=0, cpu_max=0.001, memory_max=10, pids_max=0, cpuset=())
    assert len(validate_limits(bad)) == 5
    assert validate_limits(FULL) == []
    versions = {"cpu": 2, "memory": 2, "pids": 2, "cpuset": 2}
    writes, warnings = limit_writes(replace(bad, memory_max=None, memory_high=1 << 30), versions)
    assert len(warnings) == 4 and all(w.endswith("ignored") for w in warnings)
    m = _as_map(writes)
    # The valid field applies; the invalid ones fall back to "no limit".
    assert m["memory.high"] == str(1 << 30)
    assert m["cpu.weight"] == "100" and m["cpu.max"] == "max 100000" and m["pids.max"] == "max"


def test_cpu_lists() -> None:
    assert format_cpus([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"
    assert format_cpus([3]) == "3"
    assert parse_cpus("0-2,5,7-8\n") == {0, 1, 2, 5, 7, 8}
    assert parse_cpus("") == set()


def test_keyed_files() -> None:
    assert parse_keyed("populated 1\nfrozen 0\n") == {"populated": 1, "frozen": 0}
    assert parse_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")["oom_kill"] == 2


def test_freeze_polls_every_millisecond_then_backs_off() -> None:
    """A freeze is polled soon (most finish within a millisecond) and a hung one rarely;
    no v1 group is touched: only the schedule is asked for."""
    op = FreezeOp(cast(DesktopCgroup, None), "v1", timeout=2.0)
    delays = [op.next_poll_ms() for _ in range(24)]
    assert delays[:16] == [1] * 16
    assert delays[16:] == [2, 4, 8, 16, 20, 20, 20, 20]
    assert FreezeOp.poll_interval * 1000 == 20
