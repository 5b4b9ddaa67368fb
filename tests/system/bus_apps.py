"""What the tests of the desktop bus (test_desktop_bus.py) and of its portal
(test_portal.py) share: the tools they need, the programs they put in the desktops (a probe
with its own copy of jeepney, and a stand-in browser), starting a probe in a desktop's real
sandbox and reading what it found, and the notifications the compositor showed."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import jeepney

from tests.harness import Compositor, wait_for

PYTHON = "/usr/bin/python3"
INSIDE = "/opt/zionwm/0"  # where the first of a desktop's app_dirs is inside its sandboxes
WORK_GREEN = "#22c55e"


def missing(*tools: str) -> str | None:
    """What this machine lacks for a desktop bus and a probe inside it, if anything."""
    for tool in ("bwrap", "dbus-daemon", "xdg-dbus-proxy", "dbus-send", *tools):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup-system.sh --with-tests)"
    if not os.path.exists(PYTHON):
        return f"{PYTHON} is missing: the probe needs it"
    return None


def apps_dir(root: Path, probe: Path, browser: str) -> Path:
    """A directory for the desktops' app_dirs: the probe, jeepney for it, and `browser` as
    an executable `standin-browser`."""
    apps = root / "apps"
    apps.mkdir()
    shutil.copy(probe, apps / probe.name)
    shutil.copytree(Path(jeepney.__file__).parent, apps / "jeepney")
    standin = apps / "standin-browser"
    standin.write_text(browser)
    standin.chmod(0o755)
    return apps


def start_probe(comp: Compositor, desktop: str, probe: str, *args: str) -> Path:
    """Launch `probe` (in the apps directory) in `desktop`; where it will write its
    findings (in the desktop's home), its last argument."""
    name = f"{Path(probe).stem}-{uuid.uuid4().hex}.json"
    comp.zionctl("launch", desktop, "--", PYTHON, f"{INSIDE}/{probe}", *args, name)
    return comp.desktop_home(desktop) / name


def findings(out: Path, timeout: float) -> dict[str, Any]:
    """What a probe started with start_probe wrote, once it has."""
    wait_for(out.exists, timeout, f"the probe's findings ({out.name})")
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def history(comp: Compositor) -> list[str]:
    """The notifications the compositor showed, oldest first."""
    return list(comp.zjson("status")["notifications"])


def notice_with(comp: Compositor, needle: str) -> str:
    """The first notification with `needle` in it, once there is one."""

    def find() -> str | None:
        return next((n for n in history(comp) if needle in n), None)

    return wait_for(find, 30, f"a notification with {needle!r}")
