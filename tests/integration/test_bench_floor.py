"""The memory floor the benchmarks compare zionwm with (benchmarks/floor.py) is a working
compositor, not an empty process: a real client connects, maps a window and is sent frames."""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import wait_for

ROOT = Path(__file__).resolve().parents[2]
FRAME_ASKED = re.compile(r"-> wl_surface@\d+\.frame\(")


@pytest.mark.skipif(shutil.which("weston-simple-shm") is None, reason="lacks weston-simple-shm")
def test_the_floor_compositor_serves_a_real_client_its_frames(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(runtime),
        "WLR_BACKENDS": "headless",
        "WLR_RENDERER": "pixman",
        "WLR_LIBINPUT_NO_DEVICES": "1",
    }
    floor = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.floor"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
        text=True,
    )
    client = None
    try:
        assert floor.stdout is not None
        assert select.select([floor.stdout], [], [], 30)[0], "the floor compositor did not start"
        line = floor.stdout.readline().split()
        assert line[:1] == ["ready"], line
        log = tmp_path / "client.log"
        with log.open("w") as out:
            client = subprocess.Popen(
                ["weston-simple-shm"],
                env={**env, "WAYLAND_DISPLAY": line[1], "WAYLAND_DEBUG": "client"},
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        # weston-simple-shm asks for its next frame callback only once the last one was
        # done: a fourth request means the compositor has sent three frames
        wait_for(
            lambda: len(FRAME_ASKED.findall(log.read_text(errors="replace"))) >= 4,
            20,
            "three frames sent to the client",
        )
        assert client.poll() is None, "the client died"
        assert "xdg_toplevel" in log.read_text(errors="replace")
    finally:
        for p in (client, floor):
            if p is not None:
                p.terminate()
                p.wait(10)
