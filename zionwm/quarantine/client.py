"""Client of the quarantine service's control socket: requests, and the event stream.

Newline-delimited JSON both ways. `QuarantineClient.request` is blocking (for `zionctl` and
tests); `EventStream` is non-blocking, with a `fileno()` for the compositor's event loop, and
hands back parsed events (`received`, `held`, `released`, `rejected`, `deleted`,
`release-failed`, each with the item and the `counts` for the pending badge).

Requests (`{"cmd": ...}`) and their replies (`{"ok": true, ...}` or `{"ok": false,
"error": text}`): `ping`; `list` [`all`] -> `items`, `counts`; `show` `id` -> `item` (with
its report); `release` `id` [`i_understand`]; `delete` `id`; `rescan` `id` -> `item`;
`send` `from` `to` `paths` -> `results` [{path, ok, id | error}]; `subscribe` [`items`] ->
`counts` (and, with `items`, the items held or kept now), then events on the same
connection; `reload` (as SIGHUP).
"""

from __future__ import annotations

import json
import socket
import time
from collections import deque
from pathlib import Path
from typing import Any

from zionwm import paths

SOCKET_NAME = "quarantine.sock"


def socket_path() -> Path:
    return paths.runtime_dir() / SOCKET_NAME


class QuarantineError(Exception):
    """The service refused a request; the message is meant for the user."""


class QuarantineClient:
    def __init__(self, path: Path | None = None, timeout: float = 30.0) -> None:
        self.path = path or socket_path()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(self.path))
        except OSError:
            self.sock.close()
            raise
        self._buf = b""
        self._events: deque[dict[str, Any]] = deque()  # arrived while waiting for a reply

    def __enter__(self) -> QuarantineClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _readline(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the quarantine service closed the connection")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        msg = json.loads(line)
        if not isinstance(msg, dict):
            raise ValueError("the quarantine service sent something that is not an object")
        return msg

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send one request and return its reply as is (`ok` may be false)."""
        self.sock.sendall((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        while True:
            msg = self._readline()
            if "event" not in msg:
                return msg
            self._events.append(msg)  # a subscribed connection: events interleave replies

    def request(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Like `call`, raising QuarantineError when the service says no."""
        reply = self.call(cmd, **args)
        if not reply.get("ok"):
            raise QuarantineError(str(reply.get("error", "request failed")))
        return reply

    def send(self, source: str, dest: str, paths: list[str]) -> list[dict[str, Any]]:
        """`send`: one result per path, `{path, ok, id}` or `{path, ok: false, error}`;
        QuarantineError when the request as a whole is refused (an unknown desktop)."""
        reply = self.call("send", **{"from": source, "to": dest, "paths": paths})
        results = reply.get("results")
        if not isinstance(results, list):
            raise QuarantineError(str(reply.get("error", "send failed")))
        return [r for r in results if isinstance(r, dict)]

    def subscribe(self, items: bool = False) -> dict[str, Any]:
        """Turn this connection into an event stream; returns the current counts (and with
        `items`, the items held or kept now, as `list` gives them)."""
        return self.request("subscribe", **({"items": True} if items else {}))

    def next_event(self, timeout: float | None = None) -> dict[str, Any]:
        """Block for the next event (after `subscribe`); TimeoutError when none comes."""
        if self._events:
            return self._events.popleft()
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            return self._readline()
        finally:
            self.sock.settimeout(old)


def wait_for_service(path: Path | None = None, deadline: float = 10.0) -> QuarantineClient:
    """Connect once the service answers `ping`, retrying until `deadline` seconds pass."""
    end = time.monotonic() + deadline
    delay = 0.01
    while True:
        try:
            client = QuarantineClient(path)
            client.request("ping")
            return client
        except OSError:
            if time.monotonic() > end:
                raise
        time.sleep(delay)  # bounded back-off while the service starts
        delay = min(delay * 2, 0.2)


class EventStream:
    """Non-blocking subscription for an event loop: register `fileno()` for reading and
    call `read_events()` when it is readable. An empty list with `closed` set means the
    service went away (the supervisor restarts it; subscribe again). With `backlog`,
    `self.backlog` holds the items held or kept when the subscription started: what happened
    while nobody listened."""

    def __init__(self, path: Path | None = None, backlog: bool = False) -> None:
        client = QuarantineClient(path, timeout=5.0)
        reply = client.subscribe(items=backlog)
        self.counts: dict[str, int] = dict(reply.get("counts", {}))
        self.backlog: list[dict[str, Any]] = list(reply.get("items", []))
        self.sock = client.sock
        self._buf = client._buf  # events already read with the subscribe reply
        self.sock.setblocking(False)
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_events(self) -> list[dict[str, Any]]:
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    self.closed = True
                    break
                self._buf += data
        except BlockingIOError:
            pass
        events = []
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            msg = json.loads(line)
            if isinstance(msg, dict) and "event" in msg:
                events.append(msg)
                self.counts = dict(msg.get("counts", self.counts))
        return events

    def close(self) -> None:
        self.sock.close()
