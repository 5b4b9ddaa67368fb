"""What zionwm does when a safety layer is missing or the user's config is broken: it closes,
never opens. A broken config runs the default desktops with nothing granted, and says so;
a compositor without its sandbox launcher starts nothing at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import Compositor, wait_for

BROKEN = 'from zionwm.config import desktop\ndesktop("mine", colour="blue")\n'


@pytest.mark.security
def test_broken_config_runs_the_default_desktops_locked_down_and_says_so(
    tmp_path: Path,
) -> None:
    comp = Compositor(tmp_path, config_text=BROKEN).start()
    try:
        # From inside personal (the default grants it the network, GPU and sound): its
        # interfaces, devices and runtime dir as its programs see them.
        out = comp.desktop_home("personal") / "seen"
        script = (
            "{ cat /proc/net/dev; echo ==; ls /dev; echo ==; ls -A $XDG_RUNTIME_DIR; } "
            "> ~/seen.part; mv ~/seen.part ~/seen"
        )
        comp.zionctl("launch", "personal", "--", "/bin/sh", "-c", script)
        wait_for(out.exists, 20, "the program on personal to report")
        netdev, devs, runtime = out.read_text().split("==\n")
        interfaces = {ln.split(":")[0].strip() for ln in netdev.splitlines()[2:]}
        assert interfaces == {"lo"}, netdev
        assert "dri" not in devs.split() and "snd" not in devs.split(), devs
        assert runtime.split() == ["wayland-0"], runtime
        desktops = comp.desktops()
        assert list(desktops) == ["personal", "work", "gaming", "web"]
        assert {d["network"] for d in desktops.values()} == {"none"}
        notices = "\n".join(comp.zjson("status")["notifications"])
        assert "LOCKED DOWN" in notices and "bad colour 'blue'" in notices, notices
    finally:
        comp.stop()


NO_HOOK = """
import os, sys, time
from pathlib import Path
from zionwm import config as cfgmod
from zionwm.compositor.server import Options, Server

marker = Path(sys.argv[1])
server = Server(cfgmod.load_default(), Options(headless=True, socket_name="wayland-nohook"))
try:
    said = server.launch("personal", ["/bin/sh", "-c", f"touch {marker}"])
except RuntimeError as exc:
    said = f"refused: {exc}"
deadline = time.monotonic() + 10
while not said.startswith("refused") and not marker.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"said": said, "notices": server.notifications.history}))
sys.stdout.flush()
os._exit(0)
"""


@pytest.mark.security
def test_without_the_sandbox_launcher_nothing_starts(tmp_path: Path) -> None:
    """A real headless server with no launcher attached (as when the isolation layer is not
    running) refuses a launch, on screen, instead of starting the program unsandboxed."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    marker = tmp_path / "started-unsandboxed"
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "WLR_BACKENDS": "headless",
        "WLR_RENDERER": "pixman",
        "WLR_LIBINPUT_NO_DEVICES": "1",
    }
    for k in ("WAYLAND_DISPLAY", "DISPLAY", "ZIONWM_SOCK", "SWAYSOCK"):
        env.pop(k, None)
    r = subprocess.run(
        [sys.executable, "-c", "import json\n" + NO_HOOK, str(marker)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["said"].startswith("refused: "), doc
    assert "sandbox launcher is not running" in doc["said"]
    assert any("Not starting /bin/sh on personal" in n for n in doc["notices"]), doc
    assert not marker.exists()
