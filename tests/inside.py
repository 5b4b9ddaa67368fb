"""Run a program inside a desktop's real sandbox of a running zionwm, the way a user's
program runs there: `zionctl launch DESKTOP -- argv`.

Attack tests use this so that the attacker is what the test says it is: a program of desktop
X, with X's Wayland socket, X's home and X's namespaces, and nothing the test process has.
The program runs in a fresh directory of the desktop's (persistent) home; the test puts the
attacker's files there first and reads back its stdout, stderr and exit status from there.
"""

from __future__ import annotations

import itertools
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness import Compositor, wait_for

ATTACKERS = Path(__file__).with_name("attackers")
WIRE = Path(__file__).with_name("wire.py")
_ids = itertools.count()

# sh runs the program from its directory and leaves its status where the test looks; the
# status file is renamed into place so a reader never sees it half-written
_WRAPPER = 'cd "$HOME/.zionwm-test/$0" || exit 99; "$@" >out 2>err; echo $? >rc.part; mv rc.part rc'


@dataclass
class Inside:
    comp: Compositor
    desktop: str
    name: str
    dir: Path  # the program's directory, seen from the host
    pid: int

    def done(self) -> bool:
        return (self.dir / "rc").exists()

    def wait(self, timeout: float = 60) -> Inside:
        wait_for(self.done, timeout, f"the program in {self.desktop} to finish ({self.name})")
        return self

    def ready(self, timeout: float = 30) -> Inside:
        """Wait for the attacker to say it is in position (it writes `ready`)."""

        def ok() -> bool:
            if self.done():
                raise AssertionError(f"attacker exited early: {self.err}")
            return (self.dir / "ready").exists()

        wait_for(ok, timeout, f"the attacker in {self.desktop} to be ready")
        return self

    def stop(self, timeout: float = 30) -> Inside:
        (self.dir / "stop").write_text("1")
        return self.wait(timeout)

    @property
    def rc(self) -> int:
        return int((self.dir / "rc").read_text())

    @property
    def out(self) -> str:
        return (self.dir / "out").read_text(errors="replace")

    @property
    def err(self) -> str:
        try:
            return (self.dir / "err").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def json(self) -> Any:
        assert self.rc == 0, f"attacker failed ({self.rc}): {self.err}"
        return json.loads(self.out)


def launch_inside(
    comp: Compositor, desktop: str, argv: list[str], files: tuple[Path, ...] = ()
) -> Inside:
    """Start `argv` in `desktop`'s sandbox with `files` beside it; returns at once."""
    name = f"{next(_ids)}-{uuid.uuid4().hex[:8]}"
    home = comp.desktop_home(desktop)
    where = home / ".zionwm-test" / name
    where.mkdir(parents=True, mode=0o700)
    for f in files:
        shutil.copy(f, where / f.name)
    r = comp.zionctl("launch", desktop, "--", "sh", "-c", _WRAPPER, name, *argv)
    pid = int(r.stdout.rsplit("pid ", 1)[1].split(")")[0]) if "pid " in r.stdout else 0
    return Inside(comp, desktop, name, where, pid)


def run_inside(comp: Compositor, desktop: str, argv: list[str], timeout: float = 60) -> Inside:
    return launch_inside(comp, desktop, argv).wait(timeout)


def attacker(comp: Compositor, desktop: str, attack: str, **args: Any) -> Inside:
    """Start the hostile Wayland client (attackers/wayland_attacker.py) in `desktop`."""
    return launch_inside(
        comp,
        desktop,
        ["python3", "wayland_attacker.py", attack, json.dumps(args)],
        files=(ATTACKERS / "wayland_attacker.py", WIRE),
    )
