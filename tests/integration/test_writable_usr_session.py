"""A desktop with a writable /usr in a running zionwm: its /usr keeper starts with the
desktop, its programs share the layer, and the keeper stops with the compositor."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.harness import processes_with, require_overlay, wait_for
from tests.inside import run_inside

CONFIG = """\
from zionwm.config import desktop
desktop("personal", colour="#3b82f6")
desktop("dev", colour="#22c55e", writable_usr=True)
"""


@pytest.fixture(autouse=True)
def _fuse() -> None:
    require_overlay()


def _daemons(layer: Path) -> list[int]:
    out = []
    for pid in processes_with("fuse-overlayfs", str(layer)):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "fuse-overlayfs":
                out.append(pid)
        except OSError:
            pass
    return out


def test_the_usr_keeper_lives_with_its_desktop(make_compositor: Any) -> None:
    comp = make_compositor(CONFIG)
    layer = comp.data / "zionwm" / "desktops" / "dev" / "layer"
    # started with the desktop, before any program of it
    (daemon,) = wait_for(lambda: _daemons(layer), 30, "the dev desktop's overlay daemon")
    install = (
        "printf '#!/bin/sh\\necho tool-of-$ZIONWM_DESKTOP\\n' > /usr/bin/zionwm-test-tool"
        " && chmod 755 /usr/bin/zionwm-test-tool"
    )
    r = run_inside(comp, "dev", ["sh", "-c", install])
    assert r.rc == 0, r.err
    r = run_inside(comp, "dev", ["zionwm-test-tool"])
    assert (r.rc, r.out.strip()) == (0, "tool-of-dev"), r.err
    assert _daemons(layer) == [daemon]  # the same daemon served both programs
    r = run_inside(comp, "personal", ["sh", "-c", "command -v zionwm-test-tool || echo none"])
    assert r.out.strip() == "none"
    comp.stop()
    wait_for(lambda: not _daemons(layer), 30, "the overlay daemon to stop with zionwm")


def test_a_desktop_made_at_run_time_gets_and_gives_up_its_keeper(make_compositor: Any) -> None:
    comp = make_compositor(CONFIG)
    comp.zionctl("desktop", "create", "lab", "--colour", "#ec4899", "--writable-usr")
    layer = comp.data / "zionwm" / "desktops" / "lab" / "layer"
    wait_for(lambda: _daemons(layer), 30, "the new desktop's overlay daemon")
    if comp.desktops()["lab"].get("cgroup"):
        # its keeper runs in its cgroups, and is not counted as a program of it
        assert comp.desktops()["lab"]["cgroup"]["pids"] >= 2
    r = comp.zionctl("desktop", "delete", "lab", check=False)
    assert r.returncode == 0, r.stderr  # no program runs there: no --stop needed
    wait_for(lambda: not _daemons(layer), 30, "the deleted desktop's overlay daemon to stop")


def _keepers(layer: Path) -> list[int]:
    return [
        pid
        for pid in processes_with("--keep-usr", str(layer))
        if Path(f"/proc/{pid}/exe").resolve().name == "zionwm-enter"
    ]


def test_a_killed_keeper_is_told_and_replaced_at_once_on_the_same_layer(
    make_compositor: Any,
) -> None:
    comp = make_compositor(CONFIG)
    layer = comp.data / "zionwm" / "desktops" / "dev" / "layer"
    (daemon,) = wait_for(lambda: _daemons(layer), 30, "the dev desktop's overlay daemon")
    install = "printf 'kept across keepers\\n' > /usr/share/zionwm-test-note"
    r = run_inside(comp, "dev", ["sh", "-c", install])
    assert r.rc == 0, r.err
    (keeper,) = _keepers(layer)
    os.kill(keeper, signal.SIGKILL)
    # told without any launch, and a new keeper with its daemon serves the layer already
    notice = wait_for(
        lambda: next(
            (n for n in comp.zjson("status")["notifications"] if "keeper died" in n), None
        ),
        30,
        "a notification that dev's /usr keeper died",
    )
    assert notice.startswith("dev: ") and "killed by signal 9" in notice, notice
    assert "a new one serves the same /usr layer" in notice, notice
    (new_keeper,) = wait_for(
        lambda: [p for p in _keepers(layer) if p != keeper], 30, "a new /usr keeper of dev"
    )
    daemons = wait_for(
        lambda: [p for p in _daemons(layer) if p != daemon], 30, "its overlay daemon"
    )
    # never two daemons over one upper dir: the old one (told to stop when its keeper
    # died) was gone before the new keeper started its own
    assert daemon not in daemons, daemons
    assert "/usr keeper (pid" in comp.log() and "died" in comp.log()
    r = run_inside(comp, "dev", ["cat", "/usr/share/zionwm-test-note"])
    assert (r.rc, r.out) == (0, "kept across keepers\n"), r.err
    assert _keepers(layer) == [new_keeper]  # the launch used it, and started no other
