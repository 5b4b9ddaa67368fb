"""Child processes of the compositor, each watched through its pidfd and reaped by pid.

Only adopted: every program is started by the sandbox launcher, never here.

Never `waitpid(-1)`: wlroots and libraries reap their own children.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .loop import FdHandle, Loop

log = logging.getLogger(__name__)

# How long a program must run to count as started: an exec that fails inside the sandbox
# ends it within milliseconds, a handler that finds nothing to run within a few hundred. A
# failure before this is told as one "right after starting" (actions.py), and a launch
# notice says "started" after it (launch_notices.py): one window for both.
SETTLE_S = 1.5


@dataclass
class Child:
    pid: int
    argv: list[str]
    desktop: str | None
    poll: Callable[[], int | None]
    kill: Callable[[], None]
    watch: FdHandle | None = None
    returncode: int | None = None
    started_at: float = field(default_factory=time.monotonic)

    def ended_right_after_start(self) -> bool:
        """It ended before it counted as started (SETTLE_S)."""
        return time.monotonic() - self.started_at < SETTLE_S

    extra: dict[str, Any] = field(default_factory=dict)
    # a helper of the compositor's own (the lock's password check) is told of its end here,
    # instead of the handler for programs (their notices, hooks and "exit" event)
    on_exit: Callable[[Child], None] | None = None


class Children:
    def __init__(self, loop: Loop, on_exit: Callable[[Child], None]) -> None:
        self._loop = loop
        self._on_exit = on_exit
        self.running: dict[int, Child] = {}

    def adopt(
        self,
        pid: int,
        argv: list[str],
        desktop: str | None,
        poll: Callable[[], int | None],
        kill: Callable[[], None],
        pidfd: int | None = None,
        on_exit: Callable[[Child], None] | None = None,
    ) -> Child:
        child = Child(pid, argv, desktop, poll, kill, on_exit=on_exit)
        fd = pidfd if pidfd is not None else os.pidfd_open(pid)
        child.extra["pidfd"] = fd
        child.watch = self._loop.add_reader(fd, lambda: self._reap(child), f"child {pid}")
        self.running[pid] = child
        log.info("started %s (pid %d) on %s", argv[0], pid, desktop or "host")
        return child

    def _reap(self, child: Child) -> None:
        code = child.poll()
        if code is None:
            return
        child.returncode = code
        self._forget(child)
        log.info(
            "%s (pid %d, %s) exited with %s",
            child.argv[0],
            child.pid,
            child.desktop or "host",
            code,
        )
        (child.on_exit or self._on_exit)(child)

    def _forget(self, child: Child) -> None:
        if child.watch is not None:
            child.watch.remove()
            child.watch = None
        fd = child.extra.pop("pidfd", None)
        if fd is not None:
            os.close(fd)
        self.running.pop(child.pid, None)

    def kill_all(self) -> None:
        for child in list(self.running.values()):
            try:
                child.kill()
                child.poll()
            except Exception:
                log.exception("could not kill pid %d", child.pid)
            self._forget(child)
