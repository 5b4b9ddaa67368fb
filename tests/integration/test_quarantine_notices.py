"""The compositor tells the user of what the quarantine kept while it was not listening.

A file kept by the quarantine service before the compositor subscribed to its events (kept
in an earlier session, or while the service restarted) sent its event to nobody. Each
subscription now asks for the items held or kept and tells what was not told yet: once, not
again when the service restarts, nor when the compositor does.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Compositor, wait_for
from tests.system.test_quarantine import QService, browser_save, policy, wait_terminal
from zionwm import paths

CONFIG = """\
from zionwm.config import desktop, Downloads, settings
desktop("personal", colour="#3b82f6")
desktop("web", colour="#ef4444", downloads=Downloads(release_to="personal", hold=0))
settings(antivirus="if-available")
"""


def _told(comp: Compositor, name: str) -> list[str]:
    return [n for n in comp.zjson("status")["notifications"] if name in n]


def _running_with_new_pid(comp: Compositor, old: int) -> bool:
    q = comp.zjson("status")["quarantine"]
    return bool(q["running"]) and q["pid"] not in (None, old)


def test_a_file_kept_before_the_compositor_listened_is_told_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_compositor: Any
) -> None:
    root = tmp_path / "z"
    # the compositor's own XDG tree (see tests.harness.Compositor), used first by a service
    # of an earlier session that kept a file while no compositor listened
    for var, sub in (
        ("XDG_RUNTIME_DIR", "run"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_STATE_HOME", "state"),
    ):
        (root / sub).mkdir(parents=True, mode=0o700, exist_ok=True)
        monkeypatch.setenv(var, str(root / sub))
    earlier = QService(root, policy())
    earlier.start()
    try:
        browser_save(paths.desktop_inbox("web"), "invoice.pdf", Path("/bin/true").read_bytes())
        (kept,) = wait_terminal(earlier, 1, 60)
        assert kept["state"] == "rejected" and kept["content"], kept
    finally:
        earlier.stop()

    comp = make_compositor(CONFIG, sub="z")
    wait_for(lambda: _told(comp, "invoice.pdf"), 30, "the user to be told of the kept file")
    (text,) = _told(comp, "invoice.pdf")
    assert text.startswith("Quarantine kept invoice.pdf from web")

    # the service restarts: the compositor subscribes again and asks again, and says nothing
    # it already said
    pid = comp.zjson("status")["quarantine"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: _running_with_new_pid(comp, pid), 30, "the service back and subscribed")
    assert len(_told(comp, "invoice.pdf")) == 1, comp.zjson("status")["notifications"]

    # nor does a new compositor (the notice was remembered)
    comp.stop()
    again = Compositor(root, config_text=CONFIG).start()
    try:
        wait_for(lambda: again.zjson("status")["quarantine"]["running"], 30, "the service")
        assert not _told(again, "invoice.pdf"), again.zjson("status")["notifications"]
        # and a file kept from now on is told as it happens
        browser_save(paths.desktop_inbox("web"), "other.pdf", Path("/bin/true").read_bytes())
        wait_for(lambda: _told(again, "other.pdf"), 60, "the new kept file to be told")
        assert len(_told(again, "other.pdf")) == 1
    finally:
        again.stop()
