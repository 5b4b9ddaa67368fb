"""The compositor as the IPC servers' Controller: a thin adapter over Server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .ipc import CommandOutcome, CommandResult, Deferred

if TYPE_CHECKING:
    from .server import Server


class ServerController:
    def __init__(self, server: Server) -> None:
        self.server = server

    def desktops(self) -> list[dict[str, Any]]:
        return self.server.describe_desktops()

    def windows(self) -> list[dict[str, Any]]:
        return self.server.describe_windows()

    def outputs(self) -> list[dict[str, Any]]:
        return self.server.describe_outputs()

    def run_command(self, argv: list[str]) -> CommandOutcome | Deferred[CommandOutcome]:
        r = self.server.run_command_text(list(argv))
        if isinstance(r, Deferred):
            return r.map(_result)
        return _result(r)

    def status(self) -> dict[str, Any]:
        return self.server.status()


def _result(r: dict[str, Any]) -> CommandOutcome:
    return CommandResult(bool(r["ok"]), str(r.get("message", "")), r.get("data"))


class IpcFanout:
    """Both IPC servers behind one `emit`, closed together at shutdown."""

    def __init__(self, *servers: Any) -> None:
        self.servers = servers

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        for s in self.servers:
            s.emit(event, payload)

    def close(self) -> None:
        for s in self.servers:
            s.close()
