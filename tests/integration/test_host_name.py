"""A desktop may not be named "host": the compositor files its own trusted clients (those on
the host socket, like the manager) under that name, and a sandboxed desktop's windows filed
there were drawn on every desktop, in the host's grey instead of their own colour, above
trusted windows."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.harness import VENV_BIN

CONFIG = """
from zionwm.config import desktop
desktop("alpha", colour="#e11d48")
desktop("beta", colour="#0ea5e9")
"""


@pytest.mark.security
def test_no_desktop_can_be_named_host(make_compositor: Any, tmp_path: Any) -> None:
    comp = make_compositor(CONFIG)
    # at run time (zionctl, the manager): refused with the reason, nothing made
    r = comp.zionctl("desktop", "create", "host", "--colour", "#f59e0b", check=False)
    assert r.returncode == 1, r.stdout
    assert "reserved" in r.stderr
    assert "host" not in comp.desktops()
    r = comp.zionctl("desktop", "create", "x", check=False)
    assert r.returncode == 0
    comp.zionctl("desktop", "delete", "x")
    r = comp.zionctl("desktop", "restore", "x", "--as", "host", check=False)
    assert r.returncode == 1 and "host" not in comp.desktops()
    # in config.py: the file is refused with the line that says it
    bad = tmp_path / "bad.py"
    bad.write_text(CONFIG + 'desktop("host", colour="#f59e0b")\n')
    checked = subprocess.run(
        [str(VENV_BIN / "zionwm"), "--check-config", str(bad)], capture_output=True, text=True
    )
    assert checked.returncode != 0
    assert "'host' is reserved" in checked.stdout + checked.stderr
