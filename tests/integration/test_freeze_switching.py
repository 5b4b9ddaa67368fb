"""Freezes and thaws run on the compositor's workers, in each desktop's own order: a desktop
switched to is never left frozen however quickly the user goes back and forth, and a
desktop whose programs were killed while it was frozen runs the next one.

Real compositor, real sandboxes, real cgroups; the desktop being frozen holds a few
hundred processes, so its freeze and thaw writes take the kernel a while (the window in
which a switch back could once be overtaken).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness import Compositor, wait_for
from zionwm.ctl import ControlClient

CONFIG = """\
from zionwm.config import desktop
desktop("personal", colour="#3b82f6", freeze_after=None)
desktop("work", colour="#22c55e", freeze_after=0)
"""
QUIET = {"ZIONWM_NO_QUARANTINE": "1"}

# counts as fast as it can, and says how far it got every 20,000 steps
COUNTER = (
    "import os\n"
    "path, i = os.path.expanduser('~/count'), 0\n"
    "while True:\n"
    "    i += 1\n"
    "    if i % 20000 == 0:\n"
    "        with open(path + '.new', 'w') as f: f.write(str(i))\n"
    "        os.replace(path + '.new', path)\n"
)
SLEEPERS = "for i in $(seq 300); do sleep 600 & done; wait"


def _cgroup(comp: Compositor, desktop: str) -> dict[str, Any]:
    d = comp.desktops()[desktop]
    if not d.get("cgroup"):
        pytest.skip(
            "no writable cgroups on this machine: "
            + "; ".join(comp.zjson("status")["cgroups"].get("problems", []))
        )
    if not comp.zjson("status")["cgroups"].get("can_freeze", True):
        pytest.skip("cgroups here cannot freeze")
    return dict(d["cgroup"])


def _count(home: Path) -> int:
    return int((home / "count").read_text())


def _busy_desktop(comp: Compositor) -> Path:
    _cgroup(comp, "work")
    home = comp.desktop_home("work")
    comp.zionctl("launch", "work", "--", "/usr/bin/python3", "-c", COUNTER)
    comp.zionctl("launch", "work", "--", "sh", "-c", SLEEPERS)
    wait_for(lambda: _cgroup(comp, "work")["pids"] >= 300, 30, "300 processes on work")
    wait_for(lambda: _count(home) > 0, 20, "the counter to count")
    return home


def _progresses(home: Path) -> None:
    seen = _count(home)
    wait_for(lambda: _count(home) > seen, 15, "the program on the shown desktop to progress")


def test_switching_away_and_back_quickly_never_leaves_the_shown_desktop_frozen(
    make_compositor: Any,
) -> None:
    comp = make_compositor(CONFIG, extra_env=QUIET)
    comp.zionctl("switch", "work")
    home = _busy_desktop(comp)
    comp.zionctl("switch", "personal")
    wait_for(lambda: comp.desktops()["work"]["frozen"], 10, "work to freeze once hidden")
    with ControlClient(comp.runtime / "zionwm" / "ipc.sock") as c:
        for i in range(60):
            c.command(["switch", "work"])
            assert comp.desktops()["work"]["frozen"] is False
            if i % 3 == 0:
                # let a freeze get as far as its write now and then
                c.command(["freeze", "personal"])  # refused: shown desktops never freeze
            c.command(["switch", "personal"])
        c.command(["switch", "work"])
    desktops = comp.desktops()
    assert desktops["work"]["frozen"] is False
    # what the kernel says: the group thaws (its last thaw write follows every freeze
    # written before it), and stays thawed, and the program runs
    wait_for(lambda: _cgroup(comp, "work")["frozen"] is False, 10, "work's cgroup to thaw")
    _progresses(home)
    assert _cgroup(comp, "work")["frozen"] is False
    assert _cgroup(comp, "work")["freezing"] is False
    assert comp.alive()


def test_a_program_started_after_killing_a_frozen_desktop_runs(make_compositor: Any) -> None:
    comp = make_compositor(CONFIG, extra_env=QUIET)
    comp.zionctl("switch", "work")
    home = _busy_desktop(comp)
    comp.zionctl("switch", "personal")
    wait_for(lambda: _cgroup(comp, "work")["frozen"], 10, "work's cgroup to freeze")
    comp.zionctl("kill", "work")
    wait_for(lambda: _cgroup(comp, "work")["pids"] == 0, 15, "every process of work to end")
    (home / "count").unlink()
    # started while work is hidden (the kill does not thaw it by switching to it)
    comp.zionctl("launch", "work", "--", "/usr/bin/python3", "-c", COUNTER)
    wait_for(lambda: _count(home) > 0, 20, "the new program on work to run")
    _progresses(home)


# 48 MiB of page cache charged to the desktop (see test_hibernate.py): memory for the
# kernel to walk and push out, in a write that takes it a while
FILL = (
    "head -c 48M /dev/zero > ~/cache.bin && sync && cat ~/cache.bin > /dev/null && "
    "touch ~/filled && exec sleep 600"
)


def test_pushing_a_frozen_desktops_memory_out_does_not_hold_up_the_answer(
    make_compositor: Any,
) -> None:
    """The answer to `desktop hibernate` comes before the result of its memory.reclaim
    write: that write runs on a worker. (Made on the compositor's thread, the result was
    out, as an event, before the answer.)"""
    comp = make_compositor(CONFIG, extra_env=QUIET)
    _cgroup(comp, "work")
    if not comp.zjson("desktop", "hibernate", "work", "--estimate")["estimate"]["can_reclaim"]:
        pytest.skip("the kernel cannot push a desktop's memory out here (no memory controller)")
    comp.zionctl("launch", "work", "--", "sh", "-c", FILL)
    filled = comp.desktop_home("work") / "filled"
    wait_for(filled.exists, 30, "48 MiB of page cache on work")
    comp.zionctl("freeze", "work")
    wait_for(lambda: comp.desktops()["work"]["frozen"], 10, "work to freeze")
    with ControlClient(comp.runtime / "zionwm" / "ipc.sock") as c:
        c.request("subscribe", events=["hibernate"])
        answer = c.command(["desktop", "hibernate", "work"])
        early = list(c._early_events)  # events that arrived before the answer
        assert early == [], f"the reclaim's result came before the answer: {early}"
        assert "hibernating work" in answer["message"]
        c._sock.settimeout(30)
        while (msg := c._receive()) is not None and msg.get("event") != "hibernate":
            pass
    assert msg is not None, "no hibernate event after the answer"
    assert msg["payload"]["desktop"] == "work" and "error" not in msg["payload"]
    assert msg["payload"]["freed_bytes"] is not None
    assert comp.desktops()["work"]["frozen"] is True
