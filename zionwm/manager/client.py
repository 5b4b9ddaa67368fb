"""The manager's side of the control socket: blocking requests and a non-blocking event
stream that a GUI main loop can watch through `fileno()`.

Two connections, so an event never has to be told apart from the reply to a request the
user is waiting for.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zionwm import paths

REQUEST_TIMEOUT = 15.0


class ControlError(Exception):
    """The compositor refused a request, or is not there; the message is for the user."""


def control_socket() -> Path:
    """$ZIONWM_SOCK, else the default place under $XDG_RUNTIME_DIR (as zionctl)."""
    env = os.environ.get("ZIONWM_SOCK")
    return Path(env) if env else paths.ipc_socket()


def _connect(path: Path, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise ControlError(
            f"cannot connect to zionwm (is it running? socket {path}): {exc.strerror or exc}"
        ) from None
    return sock


class Control:
    """Requests, one at a time, each answered before the next is sent."""

    def __init__(self, path: Path | None = None, timeout: float = REQUEST_TIMEOUT) -> None:
        self.path = path or control_socket()
        self._sock = _connect(self.path, timeout)
        self._reader = self._sock.makefile("rb")
        self._next = 1

    def close(self) -> None:
        self._reader.close()
        self._sock.close()

    def request(self, kind: str, **fields: Any) -> Any:
        rid = self._next
        self._next += 1
        try:
            self._sock.sendall((json.dumps({"id": rid, "type": kind, **fields}) + "\n").encode())
            while True:
                line = self._reader.readline()
                if not line:
                    raise ControlError("zionwm closed the connection")
                msg = json.loads(line)
                if isinstance(msg, dict) and "ok" in msg and msg.get("id") in (rid, None):
                    break
        except (OSError, ValueError) as exc:
            raise ControlError(f"talking to zionwm failed: {exc}") from None
        if not msg["ok"]:
            raise ControlError(str(msg.get("error") or "request failed"))
        return msg.get("result")

    def command(self, argv: Sequence[str]) -> dict[str, Any]:
        """A command of the command language; returns {"message", "data"}."""
        result = self.request("command", argv=list(argv))
        return result if isinstance(result, dict) else {"message": "", "data": result}


class EventStream:
    """A subscription: register `fileno()` for reading, then call `read()`."""

    def __init__(self, events: Sequence[str], path: Path | None = None) -> None:
        self._sock = _connect(path or control_socket(), 5.0)
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
