"""Freezing a desktop without blocking the compositor.

`FreezeOp` is one freeze in progress: `DesktopCgroup.start_freeze` writes the request and
returns it at once, and the event loop polls it (through ``fileno()`` where the kernel can
notify, otherwise on a timer) until the kernel reports the group frozen; a freeze that
cannot finish in time is rolled back and reported with the tasks that held it up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from zionwm.isolation.cgroups.fs import parse_keyed, read_file, task_state, write_file

log = logging.getLogger(__name__)


class FreezeTarget(Protocol):
    """What a freeze needs of a desktop's groups (`desktop.DesktopCgroup`)."""

    name: str
    unified_dir: Path | None
    freezer_dir: Path | None

    def pids(self) -> list[int]: ...

    def write_thaw(self) -> None: ...


FreezeState = Literal["frozen", "pending", "failed"]


# ---------------------------------------------------------------------------------------
# Freezing
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreezeResult:
    state: FreezeState
    elapsed: float  # seconds from start_freeze to the final state
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "frozen"


class FreezeOp:
    """One freeze in progress: poll it from the event loop; it never blocks.

    On cgroup v2, ``fileno()`` is an fd on cgroup.events that signals POLLPRI|POLLERR when
    the state changes; call ``poll()`` then, and from a timer at the deadline so a freeze that
    never completes is rolled back. Watch it for errors only, never for readability (a
    cgroup file is always readable, so EPOLLIN would spin): epoll with an empty event mask,
    or ``wl_event_loop_add_fd(loop, fd, 0, ...)``, whose callback then gets
    WL_EVENT_ERROR on each change. ``poll()`` re-reads the file, which re-arms it.
    On v1 there is no fd: poll on a timer (``poll_interval``). When ``poll()``
    returns a final state the fd stays open until ``close()``, so the caller can remove it
    from its event loop first.
    """

    poll_interval = 0.02  # seconds: the longest pause between polls (`next_poll_ms`)

    def __init__(self, cg: FreezeTarget, method: str, timeout: float) -> None:
        self._cg = cg
        self.method = method
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.state: FreezeState = "pending"
        self.reason = ""
        self.finished: float | None = None
        self._fd: int | None = None
        self._retries = 0
        self._last_attempt = self.started
        self._polls = 0
        # Set by a caller that must not write from the thread that polls (the compositor:
        # a thaw costs the kernel time per task): a failed freeze is then not rolled back
        # here but flagged in `needs_rollback`, and the caller thaws elsewhere.
        self.defer_rollback = False
        self.needs_rollback = False
        if method == "cgroup2":
            events = cg.unified_dir / "cgroup.events" if cg.unified_dir else None
            if events is not None:
                try:
                    self._fd = os.open(events, os.O_RDONLY | os.O_CLOEXEC)
                    os.pread(self._fd, 4096, 0)  # arm: kernfs notifies changes after a read
                except OSError:
                    self._fd = None

    def fileno(self) -> int | None:
        return self._fd

    def next_poll_ms(self) -> int:
        """When to poll next, in ms: every millisecond for the first 16 polls, then
        doubling up to `poll_interval`.

        A freeze takes from well under a millisecond (an idle desktop) to several (a
        thousand processes on two CPUs); a poll is one pread of cgroup.events. A fixed
        20 ms timer made every freeze look 20 ms long, and a doubling one rounds a 5 ms
        freeze up to 8. The fd's notification is no substitute: the kernel delivers it
        from a work queue, seen here to arrive about 15 ms after the group had frozen on a
        loaded machine. A freeze that hangs costs 16 polls, then one per `poll_interval`.
        """
        self._polls += 1
        if self._polls <= 16:
            return 1
        return min(int(self.poll_interval * 1000), 2 ** (self._polls - 16))

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def poll(self) -> FreezeState:
        if self.state != "pending":
            return self.state
        try:
            if self.method == "cgroup2":
                self._poll_v2()
            else:
                self._poll_v1()
        except OSError as e:
            self._fail(f"cgroup went away or refused: {e}")
        return self.state

    def _poll_v2(self) -> None:
        assert self._cg.unified_dir is not None
        if self._fd is not None:
            text = os.pread(self._fd, 4096, 0).decode()
        else:
            text = (self._cg.unified_dir / "cgroup.events").read_text()
        if parse_keyed(text).get("frozen") == 1:
            self._done()
        elif (read_file(self._cg.unified_dir / "cgroup.freeze") or "").strip() == "0":
            self._fail("thawed before the freeze completed", rollback=False)
        elif time.monotonic() >= self.deadline:
            self._fail(self._stuck_reason())

    def _poll_v1(self) -> None:
        d = self._cg.freezer_dir
        assert d is not None
        state = (read_file(d / "freezer.state") or "").strip()
        now = time.monotonic()
        if state == "FROZEN":
            self._done()
        elif state == "THAWED":
            self._fail("thawed before the freeze completed", rollback=False)
        elif now >= self.deadline:
            self._fail(self._stuck_reason())
        elif now - self._last_attempt >= min(0.5, 0.01 * 2**self._retries):
            # A v1 freeze can stall on a task forking while it freezes; thawing and
            # freezing again lets it through (the retry runc does).
            self._retries += 1
            self._last_attempt = now
            write_file(d / "freezer.state", "THAWED")
            write_file(d / "freezer.state", "FROZEN")

    def _stuck_reason(self) -> str:
        stuck = []
        for pid in self._cg.pids():
            state, comm = task_state(pid)
            if state in ("D", "R"):
                wchan = (read_file(Path(f"/proc/{pid}/wchan")) or "").strip()
                stuck.append(f"{pid} ({comm}) state {state}" + (f" in {wchan}" if wchan else ""))
        detail = "; ".join(stuck[:10]) or "no task in D/R state seen"
        if len(stuck) > 10:
            detail += f"; and {len(stuck) - 10} more"
        return f"not frozen after {self.elapsed:.2f}s, rolled back: {detail}"

    def _done(self) -> None:
        self.state = "frozen"
        self.finished = time.monotonic()
        log.info("desktop %s frozen in %.1f ms", self._cg.name, self.elapsed * 1000)

    def _fail(self, reason: str, *, rollback: bool = True) -> None:
        if rollback and self.defer_rollback:
            self.needs_rollback = True
        elif rollback:
            self._cg.write_thaw()
        self.state = "failed"
        self.reason = reason
        self.finished = time.monotonic()
        log.warning("freezing desktop %s failed: %s", self._cg.name, reason)

    def cancel(self, reason: str = "thawed before the freeze completed") -> None:
        if self.state == "pending":
            self.state = "failed"
            self.reason = reason
            self.finished = time.monotonic()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def wait(self, timeout: float | None = None) -> FreezeResult:
        """Block until a final state (for the CLI and tests; never for the compositor)."""
        end = self.deadline if timeout is None else min(self.deadline, time.monotonic() + timeout)
        poller = None
        if self._fd is not None:
            poller = select.poll()
            poller.register(self._fd, select.POLLPRI | select.POLLERR)
        while self.poll() == "pending":
            wait = max(0.0, min(self.next_poll_ms() / 1000, end + 0.001 - time.monotonic()))
            if poller is not None:
                poller.poll(wait * 1000)
            else:
                time.sleep(wait)
        self.close()
        return FreezeResult(self.state, self.elapsed, self.reason)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
