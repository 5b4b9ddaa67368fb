"""What sandboxed programs print: one log file per desktop, written by zionwm only.

Owns the output channel of every program started in a desktop. A program never inherits the
compositor's own stdout and stderr (reopened through /proc/self/fd they would let it read the
compositor's log and other desktops' output, plant fake lines, or truncate the file): each
launch gets a pipe of its own, the compositor's event loop reads it (`ProgramOutput`), and
every line lands in its desktop's file under zionwm's state dir (`DesktopLog`), prefixed with
the time, the desktop and the program. A program can reach only its own pipe: reopening its
fd 1 gives it that pipe again, and reading from it only takes its own lines.

Reading is bounded too: each desktop has a byte budget (`Budget`, `RATE` per second after a
`BURST`); once it is spent the compositor stops reading that desktop's pipes until the budget
refills, so a program that floods its output blocks on its own full pipe (nothing is lost)
instead of costing the compositor CPU.

Files are bounded: at `MAX_BYTES` the file is moved to `<desktop>.log.1` (the previous one is
dropped) and a new one started, so each desktop holds at most twice that on disk. Lines are
cut at `MAX_LINE` bytes, and control, format and direction characters are shown escaped
(`zionwm.untrusted`), so a program cannot rewrite what a terminal shows of earlier lines.

`zionctl log DESKTOP` prints a desktop's log (`add_parser`, a zionctl plugin).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zionwm import paths
from zionwm.ratelimit import Limiter
from zionwm.untrusted import printable

if TYPE_CHECKING:
    import argparse  # zionctl's parser; the compositor imports this module without it

log = logging.getLogger(__name__)

MAX_BYTES = 1 << 20
RATE = 256 << 10  # bytes per second a desktop's programs may have logged, on average
BURST = 1 << 20
MAX_LINE = 4096
READ_CHUNK = 1 << 16
_NAME = re.compile(r"[a-z0-9_-]{1,32}")


def logs_dir() -> Path:
    return paths.state_home() / "logs"


def log_path(desktop: str) -> Path:
    if not _NAME.fullmatch(desktop):
        raise ValueError(f"{desktop!r} is not a desktop name")
    return logs_dir() / f"{desktop}.log"


def clean(raw: bytes) -> str:
    """One line as it is stored: decoded, and escaped by the untrusted-text rule (tabs kept)."""
    return printable(raw.decode("utf-8", errors="replace"), None, keep="\t")


class Budget(Limiter):
    """A token bucket of bytes: `charge(nbytes, now)` says how long to stop reading (0: go on)."""

    def __init__(self, rate: float = RATE, burst: float = BURST) -> None:
        super().__init__(burst, per_second=rate)


class DesktopLog:
    """Appends lines to one desktop's log file; rotates it at `max_bytes`."""

    def __init__(self, desktop: str, path: Path | None = None, max_bytes: int = MAX_BYTES):
        self.desktop = desktop
        self.path = path or log_path(desktop)
        self.max_bytes = max_bytes
        self.budget = Budget()
        self._fd = -1
        self._size = 0

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(
            self.path,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
            0o600,
        )
        self._size = os.fstat(self._fd).st_size

    def write(self, program: str, lines: list[bytes]) -> None:
        if not lines:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        data = "".join(
            f"{stamp} {self.desktop} {program}: {clean(line)}\n" for line in lines
        ).encode()
        try:
            if self._fd < 0:
                self._open()
            elif self._size + len(data) > self.max_bytes and self._size > 0:
                self._rotate()
            os.write(self._fd, data)
            self._size += len(data)
        except OSError as exc:
            # A full disk or a removed state dir costs the log, never the compositor.
            log.warning("desktop %s: cannot write its log %s: %s", self.desktop, self.path, exc)
            self.close()

    def _rotate(self) -> None:
        self.close()
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._open()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class ProgramOutput:
    """The read end of one program's pipe: whole lines go to its desktop's log."""

    def __init__(self, desktop_log: DesktopLog, program: str, read_fd: int) -> None:
        self.log = desktop_log
        self.program = program
        self.fd = read_fd
        os.set_blocking(read_fd, False)
        self._partial = b""

    def read(self) -> int:
        """Take what is there (one chunk, so a flooding program cannot hold the event loop):
        how many bytes, or -1 once every writer has closed the pipe (then stop watching the
        fd and close)."""
        try:
            chunk = os.read(self.fd, READ_CHUNK)
        except BlockingIOError:
            return 0
        except OSError as exc:
            if exc.errno == errno.EINTR:
                return 0
            chunk = b""
        if not chunk:
            return -1
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        while len(self._partial) >= MAX_LINE:
            lines.append(self._partial[:MAX_LINE])
            self._partial = self._partial[MAX_LINE:]
        self.log.write(self.program, [ln[:MAX_LINE] for ln in lines])
        return len(chunk)

    def close(self) -> None:
        if self._partial:
            self.log.write(self.program, [self._partial])
            self._partial = b""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def output_pipe() -> tuple[int, int]:
    """(read end, write end) for one program; both close-on-exec (the write end is handed to
    the program as its stdout and stderr, which clears that flag in the child only)."""
    return os.pipe2(os.O_CLOEXEC)


# ---- zionctl log -------------------------------------------------------------------------


def tail(path: Path, lines: int) -> list[str]:
    with open(path, errors="replace") as f:
        return list(deque(f, maxlen=lines))


def cmd_log(args: argparse.Namespace) -> int:
    try:
        path = log_path(args.desktop)
    except ValueError as exc:
        print(f"zionctl log: {exc}", file=sys.stderr)
        return 2
    files = [p for p in (path.with_name(path.name + ".1"), path) if p.exists()]
    if not files:
        print(f"zionctl log: no output logged for desktop {args.desktop} ({path})", file=sys.stderr)
        return 1
    out: list[str] = []
    for p in files:
        out += tail(p, args.lines)
    sys.stdout.write("".join(out[-args.lines :]))
    return 0


def add_parser(sub: Any) -> None:
    """Add `log` to zionctl's subcommands."""
    p = sub.add_parser(
        "log",
        help="show what a desktop's programs printed",
        description="Show the last lines a desktop's programs printed (kept per desktop "
        "under zionwm's state dir; each desktop sees only its own).",
    )
    p.add_argument("desktop")
    p.add_argument("-n", "--lines", type=int, default=200, help="how many lines (default 200)")
    p.set_defaults(func=cmd_log)
