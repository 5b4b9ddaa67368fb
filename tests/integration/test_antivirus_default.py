"""The default config on a machine without an antivirus: a file a desktop's program saves
into ~/Downloads is not called clean, is not released, and the user is told why."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.harness import wait_for

DEFAULT_CLAMD_SOCKET = "/run/clamav/clamd.ctl"  # Debian's clamav-daemon
CONFIG = """\
from zionwm.config import desktop, Downloads
desktop("personal", colour="#3b82f6")
desktop("web", colour="#ef4444", downloads=Downloads(release_to="personal", hold=0))
"""


@pytest.mark.security
def test_without_an_antivirus_downloads_wait_and_the_user_is_told(make_compositor: Any) -> None:
    if os.path.exists(DEFAULT_CLAMD_SOCKET):
        pytest.skip(f"a clamd runs at {DEFAULT_CLAMD_SOCKET} here: the default config uses it")
    comp = make_compositor(CONFIG)
    comp.zionctl(
        "launch", "web", "--", "sh", "-c", "echo 'meeting at noon' > ~/Downloads/notes.txt"
    )

    def told() -> list[str]:
        notes = comp.zjson("status")["notifications"]
        return [n for n in notes if "notes.txt" in n and "no antivirus scan" in n]

    (note,) = wait_for(told, 60, "the user to be told the file waits for an antivirus")
    assert "waits for an antivirus" in note
    items = json.loads(comp.zionctl("quarantine", "--json", "list", "--all").stdout)
    items = items["items"] if isinstance(items, dict) else items
    (item,) = [i for i in items if i["name"] == "notes.txt"]
    assert item["state"] == "held" and item["verdict"] == "no-antivirus-scan"
    released = comp.desktop_home("personal") / "Downloads"
    assert not (released / "notes.txt").exists()
    shown = comp.zionctl("quarantine", "show", str(item["id"])).stdout
    assert "no antivirus looked at it" in shown, shown
