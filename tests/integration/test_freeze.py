"""Hidden desktops freeze and come back instantly; limits hold for sandboxed programs.
Real cgroups, real sandboxes, real clients."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Compositor, colour_near, processes_with, require, wait_for
from tests.integration.test_core import VirtualPointer

CONFIG = """\
from zionwm.config import desktop, Limits
desktop("personal", colour="#3b82f6", freeze_after=None)
desktop("work", colour="#22c55e", freeze_after=1)
desktop("tight", colour="#ef4444", limits=Limits(memory_max="64M", pids_max=32))
"""


def _cg(comp: Compositor, desktop: str) -> dict[str, Any]:
    d = comp.desktops()[desktop]
    if not d.get("cgroup"):
        pytest.skip(
            "no writable cgroups on this machine: "
            + "; ".join(comp.zjson("status")["cgroups"].get("problems", []))
        )
    return dict(d["cgroup"])


def _frame_visible(comp: Compositor, win: dict[str, Any], colour: str) -> bool:
    img = comp.screenshot()
    return colour_near(img.getpixel((win["x"] - 1, win["y"] + 20)), colour)


def test_hidden_desktop_freezes_and_switching_back_is_instant(make_compositor: Any) -> None:
    require("weston-simple-shm")
    comp = make_compositor(CONFIG)
    comp.zionctl("switch", "work")
    comp.zionctl("launch", "work", "--", "weston-simple-shm")
    comp.zionctl("launch", "work", "--", "sh", "-c", "while :; do :; done")
    (win,) = comp.wait_window("work")
    wait_for(lambda: (_cg(comp, "work")["pids"] or 0) >= 2, 10, "both programs running")
    comp.zionctl("switch", "personal")
    wait_for(lambda: comp.desktops()["work"]["frozen"], 6, "work to freeze after 1 s hidden")
    # frozen: the busy loop gets no CPU at all (watched for a bounded window)
    start = _cg(comp, "work")["cpu_usec"]
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert _cg(comp, "work")["cpu_usec"] == start, "a frozen desktop used CPU"
        time.sleep(0.05)
    # the very first screenshot after switching back shows the window (its last frame was
    # kept), and the desktop runs again
    comp.zionctl("switch", "work")
    assert _frame_visible(comp, win, "#22c55e")
    assert not comp.desktops()["work"]["frozen"]
    wait_for(lambda: _cg(comp, "work")["cpu_usec"] > start, 5, "work to run again")


def _cgroup2_dir(pid: int) -> Path | None:
    """The cgroup2 directory a process is in, wherever cgroup2 is mounted (pure or hybrid)."""
    rel = next(
        (ln[3:] for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if ln[:3] == "0::"),
        None,
    )
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ")
        if rel is not None and len(fields) == 2 and fields[1].split()[0] == "cgroup2":
            return Path(fields[0].split()[4]) / rel.lstrip("/")
    return None


def _host_pid(comm: str, inner_pid: str) -> int | None:
    for pid in processes_with(comm):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(ln.split(":", 1) for ln in status.splitlines() if ":" in ln)
        if fields["Name"].strip() == comm and fields["NSpid"].split()[-1] == inner_pid:
            return pid
    return None


def _really_frozen(pid: int) -> bool:
    """What the kernel says about the process's group: cgroup.events (cgroup2) or, where
    desktops freeze through the v1 freezer, freezer.state."""
    d = _cgroup2_dir(pid)
    if d is not None and (d / "cgroup.events").exists():
        events = dict(ln.split() for ln in (d / "cgroup.events").read_text().splitlines())
        if events.get("frozen") == "1":
            return True
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, rel = line.split(":", 2)
        if "freezer" in controllers.split(","):
            state = Path("/sys/fs/cgroup/freezer") / rel.lstrip("/") / "freezer.state"
            return state.exists() and state.read_text().strip() == "FROZEN"
    return False


@pytest.mark.security
@pytest.mark.slow
def test_frozen_sandboxed_victim_gets_none_of_an_input_flood_elsewhere(
    make_compositor: Any,
) -> None:
    """A program of a hidden, really frozen desktop, sandboxed as a user's program is, while
    the shown desktop is flooded with keys and pointer motion: the compositor keeps
    answering, and the victim gets none of that input, then or after thawing (it was never
    addressed to it); what is typed to it after the switch back reaches it, and only that."""
    require("foot")
    comp = make_compositor(CONFIG)
    work_home = comp.desktop_home("work")
    personal_home = comp.desktop_home("personal")
    comp.zionctl("switch", "work")
    comp.zionctl(
        "launch", "work", "--", "foot", "--app-id", "victim", "sh", "-c",
        "echo $$ > ~/victim.pid; exec cat > ~/victim-keys.txt",
    )  # fmt: skip
    (win,) = comp.wait_window("work", "victim")
    inner = wait_for(lambda: (work_home / "victim.pid").read_text().strip(), 10, "the victim")
    # The victim's host pid: the `cat` whose own (innermost) pid namespace calls it `inner`.
    victim = wait_for(lambda: _host_pid("cat", inner), 10, "the victim's host pid")
    assert _cg(comp, "work")["pids"] >= 2  # the victim is counted in work's cgroup
    comp.zionctl("switch", "personal")
    wait_for(lambda: comp.desktops()["work"]["frozen"], 6, "work to freeze")
    wait_for(lambda: _really_frozen(victim), 5, "the kernel to report the victim's group frozen")
    comp.zionctl("launch", "personal", "--", "foot", "sh", "-c", "exec cat > ~/flood.txt")
    comp.wait_window("personal", "foot")
    # the flood, on the shown desktop
    comp.type_keys("x" * 1000 + "\n")
    vp = VirtualPointer(comp)
    for i in range(3000):
        vp.move(100 + i % 800, 100 + i % 500)
    vp.c.roundtrip()
    # the compositor answered throughout and the shown desktop got every key
    wait_for(
        lambda: (personal_home / "flood.txt").read_text() == "x" * 1000 + "\n",
        30,
        "the shown desktop's terminal to receive the whole flood",
    )
    assert _really_frozen(victim), "the victim ran during the flood"
    comp.zionctl("switch", "work")
    wait_for(lambda: not _really_frozen(victim), 5, "the victim to thaw")
    assert [w for w in comp.windows("work") if w["id"] == win["id"]]
    comp.type_keys("after thaw\n")
    keys = work_home / "victim-keys.txt"
    wait_for(
        lambda: keys.exists() and keys.read_text().endswith("after thaw\n"),
        15,
        "the thawed victim to receive what is typed to it",
    )
    assert keys.read_text() == "after thaw\n", "flood input reached the hidden desktop"
    assert comp.alive()


def test_freeze_thaw_and_kill_by_hand(make_compositor: Any) -> None:
    comp = make_compositor(CONFIG)
    comp.zionctl("launch", "personal", "--", "sleep", "300")
    # a process that escapes the launcher's tree (new session, double fork)
    comp.zionctl(
        "launch", "personal", "--", "sh", "-c", "setsid sh -c 'sleep 301 & exit 0'; sleep 302"
    )
    wait_for(lambda: (_cg(comp, "personal")["pids"] or 0) >= 3, 10, "three processes")
    r = comp.zionctl("freeze", "personal", check=False)
    assert r.returncode == 0 and "shown" in r.stdout  # the visible desktop is not frozen
    comp.zionctl("switch", "work")
    comp.zionctl("freeze", "personal")
    wait_for(lambda: comp.desktops()["personal"]["frozen"], 5, "personal to freeze")
    comp.zionctl("thaw", "personal")
    assert not comp.desktops()["personal"]["frozen"]
    comp.zionctl("kill", "personal")
    wait_for(lambda: _cg(comp, "personal")["pids"] == 0, 10, "every process to be gone")


@pytest.mark.security
def test_memory_limit_kills_the_hog_not_the_compositor(make_compositor: Any) -> None:
    comp = make_compositor(CONFIG)
    _cg(comp, "tight")
    comp.zionctl("launch", "personal", "--", "sleep", "300")
    # the sandbox's own processes (bwrap outside and inside) count too
    bystanders = wait_for(lambda: _cg(comp, "personal")["pids"], 10, "the bystander")
    comp.zionctl(
        "launch",
        "tight",
        "--",
        "/usr/bin/python3",
        "-c",
        "b = bytearray(256 * 1024 * 1024); import time; time.sleep(30)",
    )
    wait_for(lambda: (_cg(comp, "tight")["oom_kills"] or 0) >= 1, 20, "the OOM kill")
    assert comp.alive()
    assert _cg(comp, "personal")["pids"] == bystanders, "a program on another desktop was hurt"
    wait_for(
        lambda: any("out of memory" in n for n in comp.zjson("status")["notifications"]),
        10,
        "the user to be told",
    )


BOMB = """
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.005)
"""


@pytest.mark.security
def test_fork_bomb_stops_at_the_pids_limit(make_compositor: Any) -> None:
    comp = make_compositor(CONFIG)
    _cg(comp, "tight")
    comp.zionctl("launch", "tight", "--", "/usr/bin/python3", "-c", BOMB)
    wait_for(lambda: (_cg(comp, "tight")["pids"] or 0) >= 30, 20, "the bomb to hit the limit")
    peak = max(_cg(comp, "tight")["pids"] or 0 for _ in range(20))
    assert peak <= 32, peak
    assert comp.alive()
    assert comp.zionctl("desktops").returncode == 0  # and the host can still fork
    comp.zionctl("kill", "tight")
    wait_for(lambda: _cg(comp, "tight")["pids"] == 0, 10, "the bomb to be cleared")


def test_reloaded_limits_apply_to_a_running_desktop(make_compositor: Any) -> None:
    """Raising tight's memory limit from 64M to 96M by reload reaches the kernel: an
    allocation of 70 MB that the old limit kills now completes."""
    comp = make_compositor(CONFIG)
    assert _cg(comp, "tight")["limits"]["memory_max"] == 64 * 2**20
    assert comp.config_path is not None
    comp.config_path.write_text(CONFIG.replace('memory_max="64M"', 'memory_max="96M"'))
    comp.zionctl("reload")
    assert _cg(comp, "tight")["limits"]["memory_max"] == 96 * 2**20
    done = comp.desktop_home("tight") / "allocated"
    comp.zionctl(
        "launch", "tight", "--", "/usr/bin/python3", "-c",
        "import os; b = bytearray(70 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); "
        "open(os.path.expanduser('~/allocated'), 'w').write('ok')",
    )  # fmt: skip
    wait_for(done.exists, 20, "the 70 MB allocation to complete under the raised limit")
    assert _cg(comp, "tight")["oom_kills"] == 0
