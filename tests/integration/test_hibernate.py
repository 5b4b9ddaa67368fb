"""`zionctl desktop hibernate`: a real desktop's programs hold page cache in its real cgroup;
hibernating freezes them and the kernel's memory.reclaim pushes that cache out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness import Compositor, wait_for

CONFIG = """\
from zionwm.config import desktop, Network
desktop("personal", colour="#3b82f6")
desktop("work", colour="#22c55e", network=Network.none())
"""
QUIET = {"ZIONWM_NO_QUARANTINE": "1", "PYTHONFAULTHANDLER": "1"}
MiB = 1 << 20
# 48 MiB of a file written (and synced) in the desktop's home, then read: page cache
# charged to the desktop's cgroup, which can leave memory with or without swap.
FILL = (
    "head -c 48M /dev/zero > ~/cache.bin && sync && cat ~/cache.bin > /dev/null && "
    "touch ~/filled && exec sleep 600"
)


def _memory_dir(comp: Compositor, desktop: str) -> Path:
    info = comp.desktops()[desktop]
    if not info.get("cgroup"):
        pytest.skip(
            "no writable cgroups on this machine: "
            + "; ".join(comp.zjson("status")["cgroups"].get("problems", []))
        )
    out = comp.zionctl("launch", desktop, "--", "sh", "-c", FILL).stdout
    pid = int(out.rsplit("pid ", 1)[1].rstrip(")\n"))
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):  # a cgroup v1 memory controller
            return Path(f"/sys/fs/cgroup/memory{path}")
        d = Path(f"/sys/fs/cgroup{path}")
        if controllers == "" and (d / "memory.reclaim").exists():
            return d
    pytest.skip("the desktop has no memory controller (v1, or v2 with memory.reclaim: Linux 5.19+)")


def test_hibernate_says_what_it_will_free_then_freezes_and_frees_the_page_cache(
    make_compositor: Any,
) -> None:
    comp = make_compositor(CONFIG, extra_env=QUIET)
    d = _memory_dir(comp, "work")
    wait_for(lambda: _file_kib(d) > 40 * 1024, 30, "48 MiB of page cache in the cgroup")

    est = comp.zjson("desktop", "hibernate", "work", "--estimate")["estimate"]
    assert est["can_reclaim"] is True
    assert est["file_bytes"] > 40 * MiB
    assert est["freeable_bytes"] >= est["file_bytes"]
    assert "of file cache" in comp.zionctl("desktop", "hibernate", "work", "--estimate").stdout
    assert comp.desktops()["work"]["frozen"] is False, "--estimate changed something"

    current = (
        d / "memory.current" if (d / "memory.current").exists() else d / "memory.usage_in_bytes"
    )
    before = int(current.read_text())
    r = comp.zionctl("desktop", "hibernate", "work")
    assert "hibernated work: freed" in r.stdout, r.stdout
    assert comp.desktops()["work"]["frozen"] is True
    after = int(current.read_text())
    assert before - after > 32 * MiB, (before, after)
    assert _file_kib(d) < 16 * 1024

    # hibernating it again, already frozen, pushes out what is left (little by now)
    again = comp.zionctl("desktop", "hibernate", "work")
    assert "hibernated work: freed" in again.stdout, again.stdout
    assert comp.desktops()["work"]["frozen"] is True


def test_hibernate_refuses_the_shown_desktop_and_unknown_names(make_compositor: Any) -> None:
    comp = make_compositor(CONFIG, extra_env=QUIET)
    _memory_dir(comp, "personal")
    r = comp.zionctl("desktop", "hibernate", "personal", check=False)
    assert r.returncode == 1 and "is shown" in r.stderr
    r = comp.zionctl("desktop", "hibernate", "nosuch", check=False)
    assert r.returncode == 1 and "no desktop named 'nosuch'" in r.stderr
    assert comp.desktops()["personal"]["frozen"] is False


def _file_kib(d: Path) -> int:
    for line in (d / "memory.stat").read_text().splitlines():
        key, value = line.split()
        if key in ("file", "cache"):  # v2, v1
            return int(value) // 1024
    return 0
