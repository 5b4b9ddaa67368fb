"""Autostart against a real compositor and real sandboxes: entries marked at_start run when
zionwm starts, the others the first time their desktop is shown (once), and a failing entry
is reported with a notification without stopping anything else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import Compositor, wait_for
from zionwm.compositor.autostart import due_entries, failure_text
from zionwm.isolation.spec import Autostart, DesktopSpec

# Each entry appends one line to a file in its desktop's home: the line count is the number
# of times it ran.
CONFIG = """\
from zionwm.config import Autostart, desktop
desktop(
    "personal",
    colour="#3b82f6",
    autostart=[
        Autostart(["sh", "-c", "echo run >> ~/at-start.txt"], at_start=True),
        "sh -c 'echo run >> ~/first-show.txt'",
    ],
)
desktop("work", colour="#22c55e", autostart=[["sh", "-c", "echo run >> ~/lazy.txt"]])
desktop(
    "broken",
    colour="#ef4444",
    autostart=[
        Autostart(["zionwm-no-such-program", "--flag"], at_start=True),
        Autostart(["sh", "-c", "echo run >> ~/after-broken.txt"], at_start=True),
    ],
)
"""


def test_due_entries_split_by_when() -> None:
    now = Autostart(("a",), at_start=True)
    later = Autostart(("b",))
    spec = DesktopSpec("d", (0, 0, 0, 1), autostart=(now, later, Autostart(())))
    assert due_entries(spec, at_start=True) == [now]
    assert due_entries(spec, at_start=False) == [later]  # an empty argv is never run


def test_failure_text_names_the_command_and_how_it_ended() -> None:
    assert failure_text("web", ["foo", "a b"], 127) == (
        "Autostart on web: foo 'a b' exited with 127 (see the log)"
    )
    assert "killed by signal 9" in failure_text("web", ["foo"], -9)


@pytest.fixture(scope="module")
def comp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compositor]:
    c = Compositor(tmp_path_factory.mktemp("autostart"), config_text=CONFIG).start()
    try:
        yield c
    finally:
        c.stop()


def _runs(comp: Compositor, desktop: str, name: str) -> int:
    try:
        return (comp.desktop_home(desktop) / name).read_text().count("run\n")
    except FileNotFoundError:
        return 0


def _autostart(comp: Compositor) -> dict[str, Any]:
    return dict(comp.zjson("status")["autostart"])


def _exited(comp: Compositor) -> None:
    """Every autostarted program has exited (they are all one-line scripts)."""
    wait_for(lambda: not comp.zjson("status").get("sandboxes"), 15, "autostart programs to exit")


def test_at_start_entries_and_the_shown_desktops_entries_run_once_at_start(
    comp: Compositor,
) -> None:
    wait_for(lambda: _runs(comp, "personal", "at-start.txt") == 1, 15, "the at_start entry")
    wait_for(
        lambda: _runs(comp, "personal", "first-show.txt") == 1, 15, "the shown desktop's entry"
    )
    _exited(comp)
    # three at_start entries, plus personal's on-first-show entry (personal is shown)
    assert _autostart(comp)["launched"] == 4
    assert _runs(comp, "work", "lazy.txt") == 0  # work was never shown


def test_lazy_entry_runs_on_first_switch_only(comp: Compositor) -> None:
    _exited(comp)
    before = _autostart(comp)["launched"]
    comp.zionctl("switch", "work")
    wait_for(lambda: _runs(comp, "work", "lazy.txt") == 1, 15, "work's entry on first show")
    comp.zionctl("switch", "personal")
    comp.zionctl("switch", "work")
    comp.zionctl("switch", "personal")
    _exited(comp)
    assert _autostart(comp)["launched"] == before + 1
    assert _runs(comp, "work", "lazy.txt") == 1
    assert _runs(comp, "personal", "first-show.txt") == 1


def test_failing_entry_is_notified_and_the_rest_still_run(comp: Compositor) -> None:
    def notified() -> list[str]:
        return [
            n
            for n in comp.zjson("status")["notifications"]
            if "zionwm-no-such-program --flag" in n and "broken" in n
        ]

    (text,) = wait_for(notified, 15, "a notification about the failed autostart entry")
    assert "exited with" in text
    wait_for(lambda: _runs(comp, "broken", "after-broken.txt") == 1, 15, "the next entry")
    assert _autostart(comp)["failed"] >= 1
    assert comp.alive()
