"""The manager's side of the control socket: the shared blocking client for requests, and a
non-blocking event stream that a GUI main loop can watch through `fileno()`.

Two connections, so an event never has to be told apart from the reply to a request the
user is waiting for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zionwm.control_client import ControlClient, ControlError, connect_unix, default_socket

__all__ = ["Control", "ControlError", "EventStream", "control_socket"]

Control = ControlClient
control_socket = default_socket


class EventStream:
    """A subscription: register `fileno()` for reading, then call `read()`."""

    def __init__(self, events: Sequence[str], path: Path | None = None) -> None:
        self._sock = connect_unix(path or default_socket(), 5.0)
        self._buf = b""
        self.closed = False
        self._send({"type": "subscribe", "events": list(events)})
        self._sock.setblocking(False)

    def fileno(self) -> int:
        return self._sock.fileno()

    def _send(self, msg: dict[str, Any]) -> None:
        try:
            self._sock.sendall((json.dumps(msg) + "\n").encode())
        except OSError:
            self.closed = True

    def subscribe(self, events: Sequence[str]) -> None:
        self._send({"type": "subscribe", "events": list(events)})

    def unsubscribe(self, events: Sequence[str]) -> None:
        self._send({"type": "unsubscribe", "events": list(events)})

    def read(self) -> list[dict[str, Any]]:
        """Every complete event that has arrived; replies to (un)subscribe are dropped."""
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    self.closed = True
                    break
                self._buf += data
        except BlockingIOError:
            pass
        except OSError:
            self.closed = True
        out = []
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and "event" in msg and "ok" not in msg:
                out.append(msg)
        return out

    def close(self) -> None:
        self._sock.close()
