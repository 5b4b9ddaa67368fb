"""Autostart: the programs each desktop's config lists, started in that desktop's sandbox.

Owns when autostart entries run and what happens when one fails. An entry with
`at_start=True` runs when zionwm starts (or, for a desktop added by a config reload, at that
reload); the others run the first time their desktop is shown, once per zionwm run. The
desktop shown at start counts as shown then. Launches go through `Server.launch`, the same
path as `zionctl launch` and key bindings, so they get the same sandbox, cgroup and network.

Failures never stop the compositor or the other entries: a launch that cannot start, or a
program that exits with an error within `FAILED_WITHIN` seconds, is reported with a
notification.
"""

from __future__ import annotations

import functools
import logging
import shlex
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zionwm.isolation.spec import Autostart, DesktopSpec

from .children import Child
from .ipc import Deferred

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)

FAILED_WITHIN = 10.0  # seconds: a non-zero exit sooner than this is a failed autostart


def due_entries(spec: DesktopSpec, *, at_start: bool) -> list[Autostart]:
    """The entries of `spec` that run at start (at_start=True) or on first show (False)."""
    return [a for a in spec.autostart if a.at_start == at_start and a.argv]


def failure_text(desktop: str, argv: Sequence[str], returncode: int) -> str:
    how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with {returncode}"
    return f"Autostart on {desktop}: {shlex.join(argv)} {how} (see the log)"


@dataclass
class Started:
    desktop: str
    argv: tuple[str, ...]
    at: float


class Autostarter:
    """A server extension (hooks: `before_show`, `child_exited`, `reload`, `status`)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.known: set[str] = set(server.desktops)  # desktops whose at_start entries ran
        self.shown: set[str] = set()  # desktops whose on-first-show entries ran
        self.watching: dict[int, Started] = {}  # pid -> entry, until FAILED_WITHIN passes
        self.launched = 0
        self.failed = 0
        # On the first loop turn: the compositor is fully up and accepting clients by then.
        server.loop.call_later(1, self._on_start, "autostart")

    def _on_start(self) -> None:
        for name, runtime in list(self.server.desktops.items()):
            self._run(name, due_entries(runtime.spec, at_start=True))
        self._first_show(self.server.model.active)

    def _first_show(self, desktop: str) -> None:
        if desktop in self.shown or desktop not in self.server.desktops:
            return
        self.shown.add(desktop)
        self._run(desktop, due_entries(self.server.desktops[desktop].spec, at_start=False))

    def _run(self, desktop: str, entries: Iterable[Autostart]) -> None:
        for entry in entries:
            argv = list(entry.argv)
            before = set(self.server.children.running)
            try:
                started = self.server.launch(desktop, argv)
            except Exception as e:  # one bad entry must not stop the others
                self._failed(desktop, argv, e)
                continue
            if isinstance(started, Deferred):  # waiting for the desktop's network
                started.then(
                    functools.partial(self._started_later, desktop, argv, before),
                    functools.partial(self._failed, desktop, argv),
                )
            else:
                self._started(desktop, argv, before)

    def _started_later(
        self, desktop: str, argv: list[str], before: set[int], _message: str
    ) -> None:
        self._started(desktop, argv, before)

    def _started(self, desktop: str, argv: list[str], before: set[int]) -> None:
        self.launched += 1
        now = time.monotonic()
        running = self.server.children.running
        for pid in set(running) - before:
            child = running[pid]
            if child.desktop == desktop and list(child.argv) == argv:
                self.watching[pid] = Started(desktop, tuple(argv), now)

    def _failed(self, desktop: str, argv: list[str], e: Exception) -> None:
        self.failed += 1
        log.warning("autostart on %s: %r failed: %s", desktop, argv, e)
        self.server.notify(
            f"Autostart on {desktop}: could not start {shlex.join(argv)}: {e}", urgent=True
        )

    # ---- server extension hooks ----

    def before_show(self, desktop: str) -> None:
        if desktop not in self.shown:
            # After the switch has been drawn: starting sandboxes must not delay it.
            self.server.loop.call_later(1, lambda: self._first_show(desktop), "autostart")

    def child_exited(self, child: Child) -> None:
        started = self.watching.pop(child.pid, None)
        self._forget_old()
        if started is None or self.server.shutting_down:
            return
        code = child.returncode if child.returncode is not None else 0
        if code != 0 and time.monotonic() - started.at < FAILED_WITHIN:
            self.failed += 1
            if not child.extra.get("exit_notified"):  # the server may have said it already
                self.server.notify(failure_text(started.desktop, started.argv, code), urgent=True)

    def _forget_old(self) -> None:
        limit = time.monotonic() - FAILED_WITHIN
        for pid in [p for p, s in self.watching.items() if s.at < limit]:
            del self.watching[pid]

    def reload(self) -> None:
        for name, runtime in list(self.server.desktops.items()):
            if name not in self.known:
                self.known.add(name)
                self._run(name, due_entries(runtime.spec, at_start=True))

    def status(self) -> dict[str, Any]:
        return {"autostart": {"launched": self.launched, "failed": self.failed}}

    def close(self) -> None:
        self.watching.clear()  # exits during shutdown are not autostart failures
