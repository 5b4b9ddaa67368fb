"""Notices that say what became of a launch the compositor made on a desktop's behalf (a
link opened in the desktop `open_links_in` names, a released file opened in its target),
told when it is known, one notice either way:

- the program started: the `done` text, once it still runs `SETTLE_MS` after its start, or
  when it exited with status 0 before that (a browser that hands the link to its running
  instance and leaves);
- it did not: the `failed` text with the reason, when the launch was refused (the
  desktop's network could not be built, the desktop is gone) or the program exited with
  an error right after it started (a command that does not exist: bwrap's exec fails and
  it exits at once);
- a start that waits for the desktop's network (compositor/netlanes.py) longer than
  `WAIT_TELL_MS` is announced meanwhile, and that notice is withdrawn when the result is
  told: a short wait, the usual case, shows nothing but the result.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zionwm.desktopbus import policy
from zionwm.isolation.launcher import LaunchError
from zionwm.isolation.storage import UnsafePathError

from .children import SETTLE_S
from .ipc import Deferred

if TYPE_CHECKING:
    from .children import Child
    from .loop import Timer
    from .server import Server
    from .ui import Notice

log = logging.getLogger(__name__)

# how long a program must run to count as started (children.SETTLE_S)
SETTLE_MS = int(SETTLE_S * 1000)
# a wait for the desktop's network shorter than this is not worth a notice of its own
WAIT_TELL_MS = 1000
WAITING_SECONDS = 120.0  # the announcement's lifetime, if no result comes to replace it


@dataclass(eq=False)
class _Launch:
    desktop: str
    argv: list[str]
    done: str
    failed: str
    waiting: str
    exit_reason: Callable[[int], str] | None = None
    told: bool = False
    wait_timer: Timer | None = None
    waiting_notice: Notice | None = None
    settle_timer: Timer | None = None
    child: Child | None = None


class LaunchNotices:
    """Launches whose outcome the user is told (see the module's docstring). The owner
    passes the compositor's `child_exited` hook on to `child_exited`."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._by_pid: dict[int, _Launch] = {}

    def launch(
        self,
        desktop: str,
        argv: list[str],
        *,
        done: str,
        failed: str,
        waiting: str,
        exit_reason: Callable[[int], str] | None = None,
    ) -> None:
        """Start `argv` in `desktop`; tell `done` once it runs, `failed: <why>` if it does
        not, and `waiting` if the start waits long for the desktop's network.
        `exit_reason(status)`: what an exit status right after the start means, when the
        program says (otherwise: it may not be installed)."""
        la = _Launch(desktop, list(argv), done, failed, waiting, exit_reason)
        try:
            started = self.server.start_child(desktop, la.argv)
        except (RuntimeError, LookupError, ValueError, OSError) as exc:
            self._refused(la, exc)
            return
        if isinstance(started, Deferred):
            la.wait_timer = self.server.loop.call_later(
                WAIT_TELL_MS, lambda: self._still_waiting(la), "launch notice"
            )
            started.then(lambda child: self._started(la, child), lambda exc: self._refused(la, exc))
        else:
            self._started(la, started)

    def child_exited(self, child: Child) -> None:
        la = self._by_pid.pop(child.pid, None)
        if la is None or la.told:
            return
        code = child.returncode
        if code == 0:
            self._tell(la, la.done)
            return
        if la.exit_reason is not None and code is not None and code > 0:
            why = f"{la.exit_reason(code)} (zionctl log {la.desktop})"
        else:
            prog = os.path.basename(la.argv[0])
            why = (
                f"{prog} exited with status {code} right after starting "
                f"(is it installed in {la.desktop}? zionctl log {la.desktop})"
            )
        self._tell(la, f"{la.failed}: {why}", urgent=True)

    # ---- steps ----

    def _started(self, la: _Launch, child: Child) -> None:
        """The sandbox runs: the program counts as started once it has run a little."""
        la.child = child
        # its failure right after starting is told here, with what it was for
        child.extra["quiet_exit"] = True
        self._by_pid[child.pid] = la
        la.settle_timer = self.server.loop.call_later(
            SETTLE_MS, lambda: self._settled(la), "launch notice"
        )

    def _settled(self, la: _Launch) -> None:
        la.settle_timer = None
        if la.child is not None:
            self._by_pid.pop(la.child.pid, None)
            # a failure after this is the program's own (actions: "exited right after
            # starting"), no longer the launch's
            la.child.extra.pop("quiet_exit", None)
        self._tell(la, la.done)

    def _refused(self, la: _Launch, exc: BaseException) -> None:
        if isinstance(exc.__cause__, LaunchError | UnsafePathError):
            # the sandbox could not be made: the launch itself told the user, with the
            # reason (integration.Isolation._start); a second notice would say it twice
            log.warning("%s: %s", la.failed, exc)
            self._tell(la, None)
            return
        self._tell(la, f"{la.failed}: {policy.clean_text(str(exc), 120)}", urgent=True)

    def _still_waiting(self, la: _Launch) -> None:
        la.wait_timer = None
        if not la.told and la.child is None:
            # as Server.notify does, but kept to be withdrawn when the result is told
            log.info("notification: %s", la.waiting)
            la.waiting_notice = self.server.notifications.show(la.waiting, WAITING_SECONDS)
            self.server.emit("notification", {"text": la.waiting, "urgent": False})

    def _tell(self, la: _Launch, text: str | None, urgent: bool = False) -> None:
        if la.told:
            return
        la.told = True
        for timer in (la.wait_timer, la.settle_timer):
            if timer is not None:
                timer.remove()
        la.wait_timer = la.settle_timer = None
        if la.waiting_notice is not None:
            self.server.notifications.withdraw(la.waiting_notice)
            la.waiting_notice = None
        if text is not None:
            self.server.notify(text, urgent=urgent)
