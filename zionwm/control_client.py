"""The client side of the control socket, for every program outside the compositor
(`zionctl`, `zionwm-manager`, tests and benchmarks): one JSON object a line each way.

A blocking `ControlClient` sends one request at a time and waits for its answer; events of
a subscription made on the same connection are kept for `events()`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from zionwm import paths


def default_socket() -> Path:
    """$ZIONWM_SOCK, else the default place under $XDG_RUNTIME_DIR."""
    env = os.environ.get("ZIONWM_SOCK")
    if env:
        return Path(env)
    try:
        return paths.ipc_socket()
    except RuntimeError as exc:
        raise ConnectError(f"cannot find the zionwm socket: {exc}") from None


def connect_unix(path: str | os.PathLike[str], timeout: float | None) -> socket.socket:
    """A connected socket, or ConnectError saying which socket and why."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise ConnectError(
            f"cannot connect to zionwm (is zionwm running? socket {path}): {exc.strerror or exc}"
        ) from None
    return sock


class ControlError(Exception):
    """The compositor is not there or refused a request; the message is for the user."""


class ConnectError(ControlError):
    """No compositor answers on the socket."""


class CompositorError(ControlError):
    """The compositor answered with an error."""


REQUEST_TIMEOUT = 15.0


class ControlClient:
    """A blocking client of the control socket, for tools (and tests) outside the compositor."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, timeout: float | None = REQUEST_TIMEOUT
    ):
        self.path = str(path if path is not None else default_socket())
        self._sock = connect_unix(self.path, timeout)
        self._reader = self._sock.makefile("rb")
        self._next_id = 1
        self._early_events: list[dict[str, Any]] = []

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()
        self._sock.close()

    def request(self, kind: str, **fields: Any) -> Any:
        """Send one request; return its "result" or raise CompositorError."""
        rid = self._next_id
        self._next_id += 1
        self._send({"id": rid, "type": kind, **fields})
        while True:
            msg = self._receive()
            if msg is None:
                raise CompositorError("zionwm closed the connection without answering")
            if "event" in msg and "ok" not in msg:
                # For a subscription made earlier on this connection: keep it for events().
                self._early_events.append(msg)
                continue
            if msg.get("id") not in (rid, None):
                continue
            if not msg.get("ok"):
                raise CompositorError(str(msg.get("error") or "request failed"))
            return msg.get("result")

    def command(self, argv: Sequence[str]) -> dict[str, Any]:
        result = self.request("command", argv=list(argv))
        return result if isinstance(result, dict) else {"message": "", "data": result}

    def events(self, names: Sequence[str] = ("*",)) -> Iterator[dict[str, Any]]:
        """Subscribe, then yield events until the compositor closes the connection."""
        self.request("subscribe", events=list(names))
        self._sock.settimeout(None)
        while self._early_events:
            yield self._early_events.pop(0)
        while True:
            msg = self._receive()
            if msg is None:
                return
            if "event" in msg:
                yield msg

    def _send(self, msg: dict[str, Any]) -> None:
        try:
            self._sock.sendall((json.dumps(msg) + "\n").encode())
        except OSError as exc:
            raise CompositorError(f"cannot send to zionwm: {exc}") from None

    def _receive(self) -> dict[str, Any] | None:
        try:
            line = self._reader.readline()
        except TimeoutError:
            raise CompositorError("zionwm did not answer in time") from None
        except OSError as exc:
            raise CompositorError(f"connection to zionwm failed: {exc}") from None
        if not line:
            return None
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            raise CompositorError(f"zionwm sent something that is not JSON: {line!r}") from None
        if not isinstance(msg, dict):
            raise CompositorError(f"zionwm sent an unexpected message: {line!r}")
        return msg
