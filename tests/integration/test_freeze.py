"""Hidden desktops freeze and come back instantly; limits hold for sandboxed programs.
Real cgroups, real sandboxes, real clients."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.harness import Compositor, colour_near, require, wait_for
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


@pytest.mark.security
@pytest.mark.slow
def test_frozen_client_survives_an_input_flood_elsewhere(make_compositor: Any) -> None:
    require("weston-simple-shm")
    require("foot")
    comp = make_compositor(CONFIG)
    comp.zionctl("switch", "work")
    victim = comp.client(["weston-simple-shm"], desktop="work")
    (win,) = comp.wait_window("work")
    comp.zionctl("switch", "personal")
    wait_for(lambda: comp.desktops()["work"]["frozen"], 6, "work to freeze")
    comp.zionctl("launch", "personal", "--", "foot", "sh", "-c", "cat > /dev/null")
    comp.wait_window("personal", "foot")
    # a flood of keys and pointer motion on the visible desktop
    comp.type_keys("x" * 1000)
    vp = VirtualPointer(comp)
    for i in range(3000):
        vp.move(100 + i % 800, 100 + i % 500)
    vp.c.roundtrip()
    comp.zionctl("switch", "work")
    assert victim.poll() is None, "the frozen client died"
    assert [w for w in comp.windows("work") if w["id"] == win["id"]]
    before = comp.screenshot().crop((win["x"], win["y"], win["x"] + 50, win["y"] + 50))
    wait_for(
        lambda: (
            comp.screenshot().crop((win["x"], win["y"], win["x"] + 50, win["y"] + 50)).tobytes()
            != before.tobytes()
        ),
        10,
        "the thawed client to draw new frames",
    )


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
    done = comp.data / "zionwm" / "desktops" / "tight" / "home" / "allocated"
    comp.zionctl(
        "launch", "tight", "--", "/usr/bin/python3", "-c",
        "import os; b = bytearray(70 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); "
        "open(os.path.expanduser('~/allocated'), 'w').write('ok')",
    )  # fmt: skip
    wait_for(done.exists, 20, "the 70 MB allocation to complete under the raised limit")
    assert _cg(comp, "tight")["oom_kills"] == 0
