"""What the compositor provides the IPC servers: a `Reactor` (its event loop) and a
`Controller` (its state and command dispatch), and what a command returns. Nothing here
touches wlroots; the compositor's side is `zionwm.compositor.control`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class Reactor(Protocol):
    """The event loop the servers run on. It must be level-triggered (as wl_event_loop is):
    a callback that leaves data unread is called again."""

    def add_reader(self, fd: int, callback: Callable[[], None]) -> object: ...

    def add_writer(self, fd: int, callback: Callable[[], None]) -> object: ...

    def remove(self, handle: object) -> None: ...


class CommandOutcome(Protocol):
    """Anything with these attributes is a command result (`CommandResult` is one)."""

    @property
    def ok(self) -> bool: ...

    @property
    def message(self) -> str: ...

    @property
    def data(self) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class CommandResult:
    ok: bool
    message: str = ""
    data: dict[str, Any] | None = None


class Controller(Protocol):
    """The compositor's side. Every method is called on the event loop and must not block.

    desktops(): one dict per desktop, in config order (position + 1 is the i3 workspace
        number and the N of `switch N`): name, index, colour "#rrggbb", active, visible,
        frozen, windows (count), focused_window (id or None); optional output, urgent, and
        whatever later layers add (limits, usage, network) which is passed through.
    windows(): id (int), app_id, title, desktop, focused, x, y, width, height, fullscreen;
        optional pid, shell ("xdg_shell" or "xwayland"), urgent.
    outputs(): name, x, y, width, height, scale, active, desktop (the one shown); optional
        make, model, serial, refresh (mHz), transform, focused.
    run_command(argv): argv in the command language of `zionwm.commands`; a command whose
        result comes later (a launch waiting for its desktop's network) returns a
        `Deferred` of it.
    status(): a dict of whatever the compositor wants `zionctl status` to show.
    """

    def desktops(self) -> list[dict[str, Any]]: ...

    def windows(self) -> list[dict[str, Any]]: ...

    def outputs(self) -> list[dict[str, Any]]: ...

    def run_command(self, argv: list[str]) -> CommandOutcome | Deferred[CommandOutcome]: ...

    def status(self) -> dict[str, Any]: ...


T = TypeVar("T")
U = TypeVar("U")


class Deferred(Generic[T]):
    """A result known later (a launch waiting for its desktop's network): whoever has it
    calls `resolve(value)` or `fail(exc)` once, on the event loop; `then(on_done, on_error)`
    runs one of them then (at once if the result is already known). A request handler that
    returns one gets its reply sent when it is known; the requests after it are served
    meanwhile."""

    def __init__(self) -> None:
        self._outcome: tuple[bool, Any] | None = None
        self._waiters: list[tuple[Callable[[T], None], Callable[[Exception], None]]] = []

    @property
    def known(self) -> bool:
        return self._outcome is not None

    def resolve(self, value: T) -> None:
        self._settle((True, value))

    def fail(self, exc: Exception) -> None:
        self._settle((False, exc))

    def then(self, on_done: Callable[[T], None], on_error: Callable[[Exception], None]) -> None:
        if self._outcome is None:
            self._waiters.append((on_done, on_error))
        else:
            self._call(on_done, on_error)

    def map(self, fn: Callable[[T], U]) -> Deferred[U]:
        """A Deferred of `fn(value)`; a failure (of this one or of `fn`) passes through."""
        out: Deferred[U] = Deferred()

        def done(value: T) -> None:
            try:
                mapped = fn(value)
            except Exception as exc:
                out.fail(exc)
                return
            out.resolve(mapped)

        self.then(done, out.fail)
        return out

    def _settle(self, outcome: tuple[bool, Any]) -> None:
        if self._outcome is not None:
            return
        self._outcome = outcome
        waiters, self._waiters = self._waiters, []
        for on_done, on_error in waiters:
            self._call(on_done, on_error)

    def _call(self, on_done: Callable[[T], None], on_error: Callable[[Exception], None]) -> None:
        assert self._outcome is not None
        ok, value = self._outcome
        try:
            if ok:
                on_done(value)
            else:
                on_error(value)
        except Exception:  # one waiter's bug must not keep the others from their result
            log.exception("a deferred result's waiter failed")
