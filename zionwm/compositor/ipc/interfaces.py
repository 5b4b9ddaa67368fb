"""What the compositor provides the IPC servers: a `Reactor` (its event loop) and a
`Controller` (its state and command dispatch), and what a command returns. Nothing here
touches wlroots; the compositor's side is `zionwm.compositor.control`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


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
    run_command(argv): argv in the command language of `zionwm.commands`.
    status(): a dict of whatever the compositor wants `zionctl status` to show.
    """

    def desktops(self) -> list[dict[str, Any]]: ...

    def windows(self) -> list[dict[str, Any]]: ...

    def outputs(self) -> list[dict[str, Any]]: ...

    def run_command(self, argv: list[str]) -> CommandOutcome: ...

    def status(self) -> dict[str, Any]: ...
