"""The zionwm control protocol, spoken by `zionctl` and the manager: one JSON object per line,
both ways, on `paths.ipc_socket()` (docs/ipc.md).

A request type is one `_req_<type>` method and one entry in `ControlServer._handlers`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from zionwm import __version__, paths
from zionwm.compositor.ipc.interfaces import CommandOutcome, Deferred
from zionwm.compositor.ipc.transport import MAX_REQUEST, Client, ServerBase, dumps

log = logging.getLogger(__name__)

CONTROL_EVENTS = (
    "switch",
    "map",
    "unmap",
    "focus",
    "title",
    "config",
    "error",
    "freeze",
    "thaw",
    "desktops",
    "quarantine",
    "notification",
    "desktop-created",
    "desktop-changed",
    "desktop-deleted",
    "usage",  # sampled once a second, only while a client subscribes to it by name
)


class ControlServer(ServerBase):
    """Requests `{"id": ..., "type": ...}`; replies `{"id", "ok", "result"|"error"}`; events
    `{"event", "payload", "time"}` to clients that subscribed. See docs/ipc.md."""

    kind = "control"
    default_path = staticmethod(paths.ipc_socket)
    # Told when subscriptions change, so work done only for subscribers (usage samples)
    # starts and stops with them.
    on_subscriptions: Callable[[], None] | None = None
    # `capture`: one desktop's own windows as a PNG (compositor/capture.py sets it)
    capture: Callable[[str], dict[str, Any]] | None = None

    def subscribed(self, event: str) -> bool:
        """Whether a client asked for `event` by name ("*" does not count)."""
        return any(event in c.subscriptions for c in self.clients)

    def subscriptions_changed(self) -> None:
        if self.on_subscriptions is not None:
            try:
                self.on_subscriptions()
            except Exception:
                log.exception("control: subscription watcher failed")

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        """Send an event to the clients subscribed to it. Never raises."""
        try:
            self._emit(event, payload)
        except Exception:
            log.exception("control: cannot deliver event %r", event)

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        targets = [c for c in self.clients if event in c.subscriptions or "*" in c.subscriptions]
        if not targets:
            return
        line = (dumps({"event": event, "payload": payload, "time": time.time()}) + "\n").encode()
        for client in targets:
            client.send(line)

    def handle_input(self, client: Client) -> None:
        while not client.closed and not client.closing:
            nl = client.inbuf.find(b"\n")
            if nl < 0:
                if len(client.inbuf) > MAX_REQUEST:
                    self._reply(client, None, error=f"request longer than {MAX_REQUEST} bytes")
                    client.inbuf.clear()
                    client.close_after_flush()
                return
            line = bytes(client.inbuf[:nl])
            del client.inbuf[: nl + 1]
            if line.strip():
                self._handle_line(client, line)

    def _handle_line(self, client: Client, line: bytes) -> None:
        try:
            request = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._reply(client, None, error=f"malformed JSON: {exc}")
            return
        if not isinstance(request, dict):
            self._reply(client, None, error="a request is a JSON object")
            return
        rid = request.get("id")
        kind = request.get("type")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            known = ", ".join(sorted(self._handlers))
            self._reply(client, rid, error=f"unknown request type {kind!r} (known: {known})")
            return
        try:
            result = handler(self, client, request)
        except _RequestError as exc:
            self._reply(client, rid, error=str(exc))
            return
        except Exception as exc:
            log.exception("control request %r failed", kind)
            self._reply(client, rid, error=f"internal error: {type(exc).__name__}: {exc}")
            return
        if isinstance(result, Deferred):
            # answered when known; this client's later requests are served meanwhile (a
            # reply carries its request's id)
            result.then(
                lambda value: self._reply(client, rid, result=value),
                lambda exc: self._reply(client, rid, error=str(exc) or type(exc).__name__),
            )
            return
        self._reply(client, rid, result=result)

    def _reply(
        self, client: Client, rid: object, *, result: object = None, error: str | None = None
    ) -> None:
        msg: dict[str, Any] = {"id": rid, "ok": error is None}
        if error is None:
            msg["result"] = result
        else:
            msg["error"] = error
        client.send((dumps(msg) + "\n").encode())

    # One handler per request type; each returns the "result" or raises _RequestError.

    def _req_ping(self, client: Client, request: dict[str, Any]) -> object:
        return {"name": "zionwm", "version": __version__, "pid": os.getpid()}

    def _req_desktops(self, client: Client, request: dict[str, Any]) -> object:
        return self.controller.desktops()

    def _req_windows(self, client: Client, request: dict[str, Any]) -> object:
        return self.controller.windows()

    def _req_outputs(self, client: Client, request: dict[str, Any]) -> object:
        return self.controller.outputs()

    def _req_status(self, client: Client, request: dict[str, Any]) -> object:
        return self.controller.status()

    def _req_command(self, client: Client, request: dict[str, Any]) -> object:
        argv = request.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise _RequestError('"argv" must be a non-empty list of strings')
        outcome = self.controller.run_command(list(argv))
        if isinstance(outcome, Deferred):
            return outcome.map(_command_reply)
        return _command_reply(outcome)

    def _req_subscribe(self, client: Client, request: dict[str, Any]) -> object:
        events = request.get("events", ["*"])
        if (
            not isinstance(events, list)
            or not all(isinstance(e, str) and 0 < len(e) <= 64 for e in events)
            or len(events) > 64
        ):
            raise _RequestError('"events" must be a list of event names (or ["*"])')
        client.subscriptions.update(events or ["*"])
        self.subscriptions_changed()
        return {"events": sorted(client.subscriptions)}

    def _req_unsubscribe(self, client: Client, request: dict[str, Any]) -> object:
        events = request.get("events")
        if events is None:
            client.subscriptions.clear()
        elif isinstance(events, list):
            client.subscriptions.difference_update(e for e in events if isinstance(e, str))
        else:
            raise _RequestError('"events" must be a list of event names')
        self.subscriptions_changed()
        return {"events": sorted(client.subscriptions)}

    def _req_capture(self, client: Client, request: dict[str, Any]) -> object:
        desktop = request.get("desktop")
        if self.capture is None:
            raise _RequestError("capture is not available in this compositor")
        if not isinstance(desktop, str):
            raise _RequestError('"desktop" must be a desktop name')
        try:
            return self.capture(desktop)
        except RuntimeError as exc:
            raise _RequestError(str(exc)) from None

    _handlers: dict[str, Callable[[ControlServer, Client, dict[str, Any]], object]] = {
        "ping": _req_ping,
        "capture": _req_capture,
        "desktops": _req_desktops,
        "windows": _req_windows,
        "outputs": _req_outputs,
        "status": _req_status,
        "command": _req_command,
        "subscribe": _req_subscribe,
        "unsubscribe": _req_unsubscribe,
    }


class _RequestError(Exception):
    pass


def _command_reply(outcome: CommandOutcome) -> dict[str, Any]:
    if not outcome.ok:
        raise _RequestError(outcome.message or "command failed")
    return {"message": outcome.message, "data": outcome.data}
