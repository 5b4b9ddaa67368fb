"""The prepared /etc (isolation/etc_tree) is built on a worker of the compositor, not on its
thread: a desktop start does not stall the compositor, and a program started while the tree
is being built sees the whole /etc of its policy, never a tree half built.

The host's /etc gets a large piece for the test: a private mount namespace around the
compositor (as a host with a large /etc/xdg, e.g. many desktop entries, would have), where
/etc/xdg holds a copy of the host's plus a few thousand files. Copying that takes the build
long enough to be seen in progress; nothing in zionwm waits or sleeps for it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.harness import Compositor, require, wait_for
from tests.inside import run_inside
from tests.system.test_sandbox_etc import LIST_ETC

# The compositor's argv prefix: its own mount namespace, with the large /etc/xdg.
WRAP = r"""
set -e
mount --bind "$ZT_LARGE_XDG" /etc/xdg
exec "$@"
"""
MANY = 4000  # files in the large piece

CONFIG = """\
from zionwm.config import Autostart, desktop
desktop("work", colour="#22c55e", autostart=[
    Autostart(["/bin/sh", "-c", "/usr/bin/python3 ~/list_etc.py > ~/at-start.part && "
               "mv ~/at-start.part ~/at-start.json"], at_start=True),
])
"""

PREPARED = "prepared /etc at "


def _large_xdg(root: Path) -> Path:
    large = root / "large-xdg"
    shutil.copytree("/etc/xdg", large, symlinks=True)
    many = large / "zt-many"
    many.mkdir()
    for i in range(MANY):
        (many / f"entry-{i:05}.desktop").write_text(f"[Desktop Entry]\nName=entry {i}\n")
    return large


def _listing(text: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(text)
    return found


def test_a_program_started_with_its_desktop_sees_the_whole_etc_and_the_compositor_answers(
    tmp_path: Path,
) -> None:
    require("unshare")
    comp = Compositor(
        tmp_path,
        config_text=CONFIG,
        wrap=("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", WRAP, "sh"),
        extra_env={"ZT_LARGE_XDG": str(_large_xdg(tmp_path))},
    )
    home = comp.desktop_home("work")
    home.mkdir(parents=True, exist_ok=True)
    (home / "list_etc.py").write_text(LIST_ETC)
    comp.start()
    try:
        # the compositor answers while the tree is still being copied
        assert comp.zjson("status")
        assert PREPARED not in comp.log(), "the /etc tree was built before the compositor answered"
        wait_for(lambda: PREPARED in comp.log(), 120, "the /etc tree to be built")
        log = comp.log()
        started = log.find("/usr/bin/python3 ~/list_etc.py")
        assert 0 <= started < log.find(PREPARED), "the autostart did not start during the build"

        at_start = _listing(
            wait_for(
                lambda: (home / "at-start.json").exists() and (home / "at-start.json").read_text(),
                60,
                "the listing of the program started with the desktop",
            )
        )
        later = run_inside(comp, "work", ["/usr/bin/python3", "-c", LIST_ETC])
        assert later.rc == 0, later.err
    finally:
        comp.stop()
    after = _listing(later.out)
    many = [p for p in after if p.startswith("/etc/xdg/zt-many/")]
    assert len(many) == MANY  # the later program got the tree, with the whole piece
    # the program started during the build saw the same /etc, to the last file and mode
    assert at_start == after
