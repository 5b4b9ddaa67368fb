"""Both IPC servers behind one `emit()`: what the compositor holds."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from zionwm.compositor.ipc.control import ControlServer
from zionwm.compositor.ipc.interfaces import Controller, Reactor
from zionwm.compositor.ipc.sway import SwayIpcServer
from zionwm.compositor.ipc.transport import DEFAULT_MAX_PENDING

log = logging.getLogger(__name__)


class IpcHub:
    """What the compositor holds: both servers, one `emit()`, one `close()`."""

    def __init__(
        self,
        controller: Controller,
        reactor: Reactor,
        *,
        control_path: Path | None = None,
        sway_path: Path | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.control = ControlServer(controller, reactor, control_path, max_pending=max_pending)
        self.sway = SwayIpcServer(controller, reactor, sway_path, max_pending=max_pending)

    def start(self) -> None:
        self.control.start()
        try:
            self.sway.start()
        except BaseException:
            self.control.close()
            raise

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        """Fan an event out to subscribers of both sockets. Never raises."""
        for server in (self.control, self.sway):
            try:
                server.emit(event, payload)
            except Exception:
                log.exception("%s: cannot deliver event %r", server.kind, event)

    def close(self) -> None:
        for server in (self.sway, self.control):
            try:
                server.close()
            except Exception:
                log.exception("%s: error while closing", server.kind)

    def environ(self) -> dict[str, str]:
        """Variables for programs the compositor starts on the host (never in a sandbox)."""
        return {"ZIONWM_SOCK": str(self.control.path), "SWAYSOCK": str(self.sway.path)}
