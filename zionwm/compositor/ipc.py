"""The compositor's two IPC servers: the zionwm control socket and a sway/i3-compatible socket.

This module owns both listening sockets, their wire formats and their per-client state:

- `ControlServer`: newline-delimited JSON on `paths.ipc_socket()`, spoken by `zionctl`.
- `SwayIpcServer`: the i3/sway binary protocol (`i3-ipc` magic, u32 length, u32 type, native
  endian) on `paths.sway_ipc_socket()`, exported to host tools as `SWAYSOCK`, so that
  `swaymsg`, the `i3ipc` library and status bars see desktops as workspaces.
- `IpcHub`: both servers behind one `emit()`, which is what the compositor calls.

It never touches wlroots: the compositor hands in a `Reactor` (its event loop) and a
`Controller` (its state and command dispatch). Everything here is non-blocking and must never
raise into the event loop: a client that misbehaves (bad framing, oversize requests, not
reading its events) is answered with an error or disconnected, and the compositor goes on.

Both sockets are reachable only by our own uid and root: the runtime directory is 0700, the
sockets are 0600, and every accepted peer is checked again with SO_PEERCRED. They are host
sockets: the launcher must never bind them into a sandbox nor pass SWAYSOCK/ZIONWM_SOCK to it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import stat
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from zionwm import __version__, paths

log = logging.getLogger(__name__)

# A client that stops reading while events keep coming is cut off past this many queued bytes;
# the compositor must never hold unbounded memory, nor block, for a slow reader.
DEFAULT_MAX_PENDING = 1 << 20
# Longest request accepted (one JSON line, or one i3 payload).
MAX_REQUEST = 1 << 20
# Bytes read from one client per wake-up, so one chatty client cannot starve the compositor
# (the reactor is level-triggered and calls again while data is left).
READ_BUDGET = 256 * 1024
MAX_CLIENTS = 128

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


# --------------------------------------------------------------------------------------------
# What the compositor provides


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


# --------------------------------------------------------------------------------------------
# A stdlib reactor, for tests and for tools that run the servers without a compositor


class SelectorReactor:
    """A level-triggered reactor on `selectors`. `run()` in one thread; `call_soon()` and
    `stop()` are the only methods safe to call from other threads."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._callbacks: dict[int, list[Callable[[], None] | None]] = {}
        self._pending: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stopping = False
        self.add_reader(self._wake_r, self._drain_wakeups)

    def add_reader(self, fd: int, callback: Callable[[], None]) -> object:
        return self._add(fd, 0, callback)

    def add_writer(self, fd: int, callback: Callable[[], None]) -> object:
        return self._add(fd, 1, callback)

    def remove(self, handle: object) -> None:
        assert isinstance(handle, tuple)
        fd: int = handle[0]
        slot: int = handle[1]
        cbs = self._callbacks.get(fd)
        if cbs is None:
            return
        cbs[slot] = None
        self._update(fd)

    def call_soon(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._pending.append(fn)
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def run(self) -> None:
        while not self._stopping:
            self.run_once(None)

    def run_once(self, timeout: float | None) -> None:
        for key, mask in self._sel.select(timeout):
            fd = key.fd
            if mask & selectors.EVENT_READ:
                cbs = self._callbacks.get(fd)
                if cbs is not None and cbs[0] is not None:
                    cbs[0]()
            if mask & selectors.EVENT_WRITE:
                cbs = self._callbacks.get(fd)
                if cbs is not None and cbs[1] is not None:
                    cbs[1]()

    def close(self) -> None:
        self._sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _add(self, fd: int, slot: int, callback: Callable[[], None]) -> object:
        cbs = self._callbacks.setdefault(fd, [None, None])
        cbs[slot] = callback
        self._update(fd)
        return (fd, slot)

    def _update(self, fd: int) -> None:
        cbs = self._callbacks[fd]
        mask = (selectors.EVENT_READ if cbs[0] else 0) | (selectors.EVENT_WRITE if cbs[1] else 0)
        registered = fd in self._sel.get_map()
        if not mask:
            del self._callbacks[fd]
            if registered:
                self._sel.unregister(fd)
        elif registered:
            self._sel.modify(fd, mask)
        else:
            self._sel.register(fd, mask)

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        with self._lock:
            pending, self._pending = self._pending, []
        for fn in pending:
            try:
                fn()
            except Exception:
                log.exception("callback scheduled on the reactor failed")


# --------------------------------------------------------------------------------------------
# Sockets: creation, stale files, peer credentials


class SocketInUseError(RuntimeError):
    """Another process answers on the socket path: probably another zionwm."""


def ensure_private_dir(path: Path) -> None:
    """Create `path` 0700, or check that an existing one is ours and tighten it to 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to uid {st.st_uid}, not to us ({os.getuid()})")
    if stat.S_IMODE(st.st_mode) != 0o700:
        log.warning("tightening %s from %o to 0700", path, stat.S_IMODE(st.st_mode))
        path.chmod(0o700)


def remove_stale_socket(path: Path) -> None:
    """Unlink a socket file left by a dead process; refuse if someone still answers on it."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(f"{path} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing stale socket %s", path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    except OSError as exc:
        raise SocketInUseError(f"cannot probe {path}: {exc}") from exc
    finally:
        probe.close()
    raise SocketInUseError(f"{path} is in use by another process (is zionwm already running?)")


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def peer_allowed(uid: int, own_uid: int) -> bool:
    return uid in (own_uid, 0)


def _listen(path: Path) -> socket.socket:
    ensure_private_dir(path.parent)
    remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(str(path))
        # The directory is 0700, so the short window before chmod exposes nothing.
        path.chmod(0o600)
        sock.listen(64)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


# --------------------------------------------------------------------------------------------
# One connected client: buffered, non-blocking, bounded


class _Client:
    def __init__(self, server: _ServerBase, sock: socket.socket, max_pending: int) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.max_pending = max_pending
        self.closed = False
        self.closing = False  # stop reading; close once the output is flushed
        self.subscriptions: set[str] = set()
        self.read_handle: object | None = server.reactor.add_reader(self.fd, self.on_readable)
        self.write_handle: object | None = None

    def on_readable(self) -> None:
        try:
            budget = READ_BUDGET
            while budget > 0 and not self.closed and not self.closing:
                try:
                    chunk = self.sock.recv(min(65536, budget))
                except (BlockingIOError, InterruptedError):
                    break
                if not chunk:
                    # The peer may only have shut down its writing side: answer what it
                    # asked before going away.
                    self.close_after_flush()
                    return
                budget -= len(chunk)
                self.inbuf += chunk
                self.server.handle_input(self)
        except OSError as exc:
            log.debug("IPC client fd %d: %s", self.fd, exc)
            self.close()
        except Exception:
            log.exception("IPC client fd %d: unexpected error; disconnecting it", self.fd)
            self.close()

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if len(self.outbuf) > self.max_pending:
            log.warning(
                "IPC client fd %d does not read (%d bytes queued); disconnecting it",
                self.fd,
                len(self.outbuf),
            )
            self.close()
            return
        self.outbuf += data
        self.flush()

    def flush(self) -> None:
        try:
            while self.outbuf and not self.closed:
                try:
                    # MSG_NOSIGNAL: a peer gone away must be an error here, not a SIGPIPE
                    # for the whole compositor.
                    n = self.sock.send(self.outbuf, socket.MSG_NOSIGNAL)
                except (BlockingIOError, InterruptedError):
                    break
                del self.outbuf[:n]
        except OSError as exc:
            log.debug("IPC client fd %d: %s", self.fd, exc)
            self.close()
            return
        if self.closed:
            return
        if self.outbuf and self.write_handle is None:
            self.write_handle = self.server.reactor.add_writer(self.fd, self.on_writable)
        elif not self.outbuf:
            if self.write_handle is not None:
                self.server.reactor.remove(self.write_handle)
                self.write_handle = None
            if self.closing:
                self.close()

    def on_writable(self) -> None:
        try:
            self.flush()
        except Exception:
            log.exception("IPC client fd %d: unexpected error; disconnecting it", self.fd)
            self.close()

    def close_after_flush(self) -> None:
        self.closing = True
        if self.read_handle is not None:
            self.server.reactor.remove(self.read_handle)
            self.read_handle = None
        self.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        reactor = self.server.reactor
        for handle in (self.read_handle, self.write_handle):
            if handle is not None:
                with contextlib.suppress(Exception):
                    reactor.remove(handle)
        self.read_handle = self.write_handle = None
        self.server.clients.discard(self)
        if self.subscriptions:
            self.server.subscriptions_changed()
        with contextlib.suppress(OSError):
            self.sock.close()


class _ServerBase:
    """Listening socket, accept loop and peer check shared by both servers."""

    kind = "ipc"
    default_path: Callable[[], Path]  # where the socket lives unless a path is given

    def __init__(
        self,
        controller: Controller,
        reactor: Reactor,
        path: Path | None = None,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.controller = controller
        self.reactor = reactor
        self.path = path or self.default_path()
        self.max_pending = max_pending
        self.clients: set[_Client] = set()
        self._listener: socket.socket | None = None
        self._listen_handle: object | None = None
        self._own_uid = os.getuid()

    def start(self) -> None:
        self._listener = _listen(self.path)
        self._listen_handle = self.reactor.add_reader(self._listener.fileno(), self._on_accept)
        log.info("%s socket listening on %s", self.kind, self.path)

    def close(self) -> None:
        for client in list(self.clients):
            client.close()
        if self._listen_handle is not None:
            self.reactor.remove(self._listen_handle)
            self._listen_handle = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _on_accept(self) -> None:
        if self._listener is None:
            return
        for _ in range(32):
            try:
                sock, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # EMFILE and friends: leave the connection in the backlog, do not spin.
                log.warning("%s: accept failed: %s", self.kind, exc)
                return
            try:
                self._admit(sock)
            except Exception:
                log.exception("%s: cannot set up a new client", self.kind)
                sock.close()

    def _admit(self, sock: socket.socket) -> None:
        uid = peer_uid(sock)
        if not peer_allowed(uid, self._own_uid):
            log.warning("%s: refused a connection from uid %d", self.kind, uid)
            sock.close()
            return
        if len(self.clients) >= MAX_CLIENTS:
            log.warning("%s: too many clients (%d); refusing one", self.kind, MAX_CLIENTS)
            sock.close()
            return
        sock.setblocking(False)
        self.clients.add(_Client(self, sock, self.max_pending))

    def handle_input(self, client: _Client) -> None:
        raise NotImplementedError

    def subscriptions_changed(self) -> None:
        """A client subscribed, unsubscribed or went away."""


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)


# --------------------------------------------------------------------------------------------
# The zionwm control protocol: one JSON object per line, both ways


class ControlServer(_ServerBase):
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
        line = (_dumps({"event": event, "payload": payload, "time": time.time()}) + "\n").encode()
        for client in targets:
            client.send(line)

    def handle_input(self, client: _Client) -> None:
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

    def _handle_line(self, client: _Client, line: bytes) -> None:
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
        self._reply(client, rid, result=result)

    def _reply(
        self, client: _Client, rid: object, *, result: object = None, error: str | None = None
    ) -> None:
        msg: dict[str, Any] = {"id": rid, "ok": error is None}
        if error is None:
            msg["result"] = result
        else:
            msg["error"] = error
        client.send((_dumps(msg) + "\n").encode())

    # One handler per request type; each returns the "result" or raises _RequestError.

    def _req_ping(self, client: _Client, request: dict[str, Any]) -> object:
        return {"name": "zionwm", "version": __version__, "pid": os.getpid()}

    def _req_desktops(self, client: _Client, request: dict[str, Any]) -> object:
        return self.controller.desktops()

    def _req_windows(self, client: _Client, request: dict[str, Any]) -> object:
        return self.controller.windows()

    def _req_outputs(self, client: _Client, request: dict[str, Any]) -> object:
        return self.controller.outputs()

    def _req_status(self, client: _Client, request: dict[str, Any]) -> object:
        return self.controller.status()

    def _req_command(self, client: _Client, request: dict[str, Any]) -> object:
        argv = request.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise _RequestError('"argv" must be a non-empty list of strings')
        outcome = self.controller.run_command(list(argv))
        if not outcome.ok:
            raise _RequestError(outcome.message or "command failed")
        return {"message": outcome.message, "data": outcome.data}

    def _req_subscribe(self, client: _Client, request: dict[str, Any]) -> object:
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

    def _req_unsubscribe(self, client: _Client, request: dict[str, Any]) -> object:
        events = request.get("events")
        if events is None:
            client.subscriptions.clear()
        elif isinstance(events, list):
            client.subscriptions.difference_update(e for e in events if isinstance(e, str))
        else:
            raise _RequestError('"events" must be a list of event names')
        self.subscriptions_changed()
        return {"events": sorted(client.subscriptions)}

    def _req_capture(self, client: _Client, request: dict[str, Any]) -> object:
        desktop = request.get("desktop")
        if self.capture is None:
            raise _RequestError("capture is not available in this compositor")
        if not isinstance(desktop, str):
            raise _RequestError('"desktop" must be a desktop name')
        try:
            return self.capture(desktop)
        except RuntimeError as exc:
            raise _RequestError(str(exc)) from None

    _handlers: dict[str, Callable[[ControlServer, _Client, dict[str, Any]], object]] = {
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


# --------------------------------------------------------------------------------------------
# The sway/i3 protocol: pure translation from zionwm state to i3 JSON


I3_MAGIC = b"i3-ipc"
I3_HEADER = struct.Struct("=6sII")

RUN_COMMAND = 0
GET_WORKSPACES = 1
SUBSCRIBE = 2
GET_OUTPUTS = 3
GET_TREE = 4
GET_MARKS = 5
GET_BAR_CONFIG = 6
GET_VERSION = 7
GET_BINDING_MODES = 8
GET_CONFIG = 9
SEND_TICK = 10
SYNC = 11
GET_BINDING_STATE = 12
GET_INPUTS = 100
GET_SEATS = 101

EVENT_BIT = 0x80000000
I3_EVENTS = {
    "workspace": 0,
    "output": 1,
    "mode": 2,
    "window": 3,
    "barconfig_update": 4,
    "binding": 5,
    "shutdown": 6,
    "tick": 7,
    "bar_state_update": 0x14,
    "input": 0x15,
}

# Container ids: windows keep the compositor's ids (assumed below 2**30); the synthetic
# containers live above, so `[con_id=N]` never confuses a desktop with a window.
ROOT_ID = 1 << 30
OUTPUT_ID_BASE = ROOT_ID + 1
WORKSPACE_ID_BASE = ROOT_ID + 4096


# sway answers a successful SUBSCRIBE with this literal text, and some clients (waybar 0.9)
# compare the reply byte for byte instead of parsing it
SUBSCRIBE_OK = b'{"success": true}'


def i3_frame(msg_type: int, payload: object) -> bytes:
    if msg_type == SUBSCRIBE and payload == {"success": True}:
        body = SUBSCRIBE_OK
    else:
        body = _dumps(payload).encode()
    return I3_HEADER.pack(I3_MAGIC, len(body), msg_type) + body


def _rect(x: object = 0, y: object = 0, width: object = 0, height: object = 0) -> dict[str, int]:
    return {"x": _int(x), "y": _int(y), "width": _int(width), "height": _int(height)}


def _int(v: object) -> int:
    try:
        return int(v)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def window_con_id(window: dict[str, Any]) -> int:
    wid = window.get("id")
    if isinstance(wid, int) and 0 <= wid < ROOT_ID:
        return wid
    return zlib.crc32(str(wid).encode()) % ROOT_ID


def _base_node(cid: int, ntype: str, name: str | None, rect: dict[str, int]) -> dict[str, Any]:
    zero = _rect()
    return {
        "id": cid,
        "type": ntype,
        "orientation": "horizontal" if ntype in ("root", "workspace") else "none",
        "percent": None,
        "urgent": False,
        "marks": [],
        "focused": False,
        "layout": {"root": "splith", "output": "output", "workspace": "splith"}.get(ntype, "none"),
        "border": "none",
        "current_border_width": 0,
        "rect": rect,
        "deco_rect": zero,
        "window_rect": dict(zero),
        "geometry": dict(zero),
        "name": name,
        "window": None,
        "nodes": [],
        "floating_nodes": [],
        "focus": [],
        "fullscreen_mode": 0,
        "sticky": False,
    }


def window_node(window: dict[str, Any], visible: bool = True) -> dict[str, Any]:
    width, height = _int(window.get("width")), _int(window.get("height"))
    node = _base_node(
        window_con_id(window),
        "con",
        str(window.get("title") or ""),
        _rect(window.get("x"), window.get("y"), width, height),
    )
    node.update(
        {
            "focused": bool(window.get("focused")),
            "urgent": bool(window.get("urgent")),
            "window_rect": _rect(0, 0, width, height),
            "geometry": _rect(0, 0, width, height),
            "fullscreen_mode": 1 if window.get("fullscreen") else 0,
            "floating": "auto_off",
            "scratchpad_state": "none",
            "pid": window.get("pid"),
            "app_id": window.get("app_id"),
            "shell": window.get("shell") or "xdg_shell",
            "visible": visible,
            "inhibit_idle": False,
            "idle_inhibitors": {"user": "none", "application": "none"},
            "max_render_time": 0,
            "zionwm": {"desktop": window.get("desktop")},
        }
    )
    return node


@dataclass(frozen=True)
class _Layout:
    """One consistent snapshot of the compositor state, in i3 terms."""

    desktops: list[dict[str, Any]]
    windows: list[dict[str, Any]]
    outputs: list[dict[str, Any]]

    def output_of(self, desktop: dict[str, Any]) -> dict[str, Any] | None:
        wanted = desktop.get("output")
        for out in self.outputs:
            if wanted is not None and out.get("name") == wanted:
                return out
        for out in self.outputs:
            if out.get("desktop") == desktop.get("name"):
                return out
        return self.outputs[0] if self.outputs else None

    def workspace(
        self, position: int, desktop: dict[str, Any], in_tree: bool = True
    ) -> dict[str, Any]:
        """The desktop as an i3 workspace. In a tree (and in events) only one container is
        focused, as i3 has it: the focused window of the active desktop, else the desktop
        itself; in GET_WORKSPACES "focused" means "the desktop that has the focus"."""
        out = self.output_of(desktop)
        rect = _rect(*(out.get(k) for k in ("x", "y", "width", "height"))) if out else _rect()
        name = str(desktop.get("name"))
        node = _base_node(WORKSPACE_ID_BASE + position, "workspace", name, rect)
        active = bool(desktop.get("active"))
        visible = bool(desktop.get("visible", active))
        windows = [w for w in self.windows if w.get("desktop") == name]
        focus_order = sorted(windows, key=lambda w: not w.get("focused"))
        has_focused_window = any(w.get("focused") for w in windows)
        # GET_WORKSPACES drops the children anyway: do not build them there.
        children = [window_node(w, visible) for w in windows] if in_tree else []
        for child in children:
            child["focused"] = child["focused"] and active
        node.update(
            {
                "num": position + 1,
                "output": out.get("name") if out else None,
                "focused": active and not (in_tree and has_focused_window),
                "visible": visible,
                "urgent": bool(desktop.get("urgent")),
                "representation": f"zionwm[{name}]",
                "nodes": children,
                "focus": [window_con_id(w) for w in focus_order],
                "zionwm": desktop,
            }
        )
        return node

    def workspaces(self, with_nodes: bool = False) -> list[dict[str, Any]]:
        result = []
        for pos, d in enumerate(self.desktops):
            ws = self.workspace(pos, d, in_tree=with_nodes)
            if not with_nodes:
                for key in ("nodes", "floating_nodes"):
                    ws.pop(key)
            result.append(ws)
        return result

    def workspace_named(self, name: str | None) -> dict[str, Any] | None:
        for pos, d in enumerate(self.desktops):
            if d.get("name") == name:
                return self.workspace(pos, d)
        return None

    def i3_outputs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        active = next((d.get("name") for d in self.desktops if d.get("active")), None)
        for out in self.outputs:
            width, height = _int(out.get("width")), _int(out.get("height"))
            refresh = _int(out.get("refresh") or 60000)
            mode = {"width": width, "height": height, "refresh": refresh}
            result.append(
                {
                    "id": OUTPUT_ID_BASE + len(result),
                    "type": "output",
                    "name": out.get("name"),
                    "make": out.get("make") or "zionwm",
                    "model": out.get("model") or "unknown",
                    "serial": out.get("serial") or "unknown",
                    "active": bool(out.get("active", True)),
                    "dpms": True,
                    "power": True,
                    "primary": False,
                    "non_desktop": False,
                    "focused": bool(out.get("focused", out.get("desktop") == active)),
                    "scale": float(out.get("scale") or 1.0),
                    "scale_filter": "nearest",
                    "subpixel_hinting": "unknown",
                    "transform": out.get("transform") or "normal",
                    "adaptive_sync_status": "disabled",
                    "allow_tearing": False,
                    "max_render_time": 0,
                    "current_workspace": out.get("desktop"),
                    "modes": [mode],
                    "current_mode": dict(mode),
                    "rect": _rect(out.get("x"), out.get("y"), width, height),
                }
            )
        return result

    def tree(self) -> dict[str, Any]:
        outs = self.i3_outputs()
        right = max((o["rect"]["x"] + o["rect"]["width"] for o in outs), default=0)
        bottom = max((o["rect"]["y"] + o["rect"]["height"] for o in outs), default=0)
        root = _base_node(ROOT_ID, "root", "root", _rect(0, 0, right, bottom))
        workspaces = self.workspaces(with_nodes=True)
        for out in outs:
            node = _base_node(out["id"], "output", out["name"], out["rect"])
            for key in ("active", "primary", "make", "model", "serial", "scale", "transform"):
                node[key] = out[key]
            node["current_workspace"] = out["current_workspace"]
            node["nodes"] = [ws for ws in workspaces if ws["output"] == out["name"]]
            focused_first = sorted(node["nodes"], key=lambda w: not w["focused"])
            node["focus"] = [ws["id"] for ws in focused_first]
            root["nodes"].append(node)
        root["focus"] = [o["id"] for o in sorted(root["nodes"], key=lambda o: not _has_focus(o))]
        return root


def _has_focus(node: dict[str, Any]) -> bool:
    return bool(node.get("focused")) or any(_has_focus(n) for n in node.get("nodes", ()))


def split_sway_commands(text: str) -> list[list[str]]:
    """Split a sway command string into commands (at `;` and `,` outside quotes) and words.

    Quotes group words as in sway; a leading `[criteria]` block stays one word."""
    commands: list[list[str]] = []
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
                word.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
            else:
                word.append(ch)
        elif ch in "\"'":
            quote = ch
            in_word = True
        elif ch == "[" and not in_word:
            end = text.find("]", i)
            end = len(text) - 1 if end < 0 else end
            word.append(text[i : end + 1])
            in_word = True
            i = end
        elif ch.isspace() or ch in ";,":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            if ch in ";," and words:
                commands.append(words)
                words = []
        else:
            word.append(ch)
            in_word = True
        i += 1
    if in_word:
        words.append("".join(word))
    if words:
        commands.append(words)
    return commands


def resolve_workspace_command(
    args: Sequence[str], desktops: Sequence[dict[str, Any]]
) -> list[str] | str:
    """Translate the arguments of sway's `workspace` command into zionwm argv.

    Returns the argv to run (possibly empty: already there) or an error message."""
    words = [a for a in args if a not in ("--no-auto-back-and-forth",)]
    names = [str(d.get("name")) for d in desktops]
    active = next((str(d.get("name")) for d in desktops if d.get("active")), None)
    if not words:
        return "workspace: expected a desktop name"
    if words[0] == "number":
        if len(words) < 2:
            return "workspace number: expected a number"
        digits = ""
        for ch in words[1]:
            if not ch.isdigit():
                break
            digits += ch
        if not digits or not 1 <= int(digits) <= len(names):
            return f"workspace number: no desktop number {words[1]!r} (there are {len(names)})"
        target = names[int(digits) - 1]
    elif words[0] == "back_and_forth" and len(words) == 1:
        return ["switch-prev"]
    elif words[0] in ("next", "prev", "next_on_output", "prev_on_output") and len(words) == 1:
        if active is None or active not in names:
            return f"workspace {words[0]}: no active desktop"
        step = 1 if words[0].startswith("next") else -1
        target = names[(names.index(active) + step) % len(names)]
    else:
        name = " ".join(words)
        if name in names:
            target = name
        elif name.isdigit() and 1 <= int(name) <= len(names):
            # Old status bars switch with `workspace "<num>"`.
            target = names[int(name) - 1]
        else:
            return (
                f"workspace: no desktop named {name!r}; zionwm desktops come from its config "
                f"({', '.join(names)})"
            )
    if target == active:
        return []
    return ["switch", target]


class SwayIpcServer(_ServerBase):
    """The i3/sway IPC protocol on `paths.sway_ipc_socket()`: desktops appear as workspaces."""

    kind = "sway-ipc"
    default_path = staticmethod(paths.sway_ipc_socket)
    # desktops last announced, for workspace init/empty events (only ever reassigned)
    _known_desktops: list[str] | None = None

    def start(self) -> None:
        super().start()
        with contextlib.suppress(Exception):
            self._known_desktops = [str(d.get("name")) for d in self.controller.desktops()]

    def close(self) -> None:
        self._broadcast("shutdown", {"change": "exit"})
        for client in list(self.clients):
            # Best effort: the shutdown event goes out if the socket buffer has room now.
            client.flush()
        super().close()

    def layout(self) -> _Layout:
        c = self.controller
        return _Layout(c.desktops(), c.windows(), c.outputs())

    # Events from the compositor, translated to i3 events.

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        """Translate a zionwm event into i3 events for the subscribers. Never raises: the
        compositor calls this from its handlers, and a failing controller query (say, in
        the middle of a teardown) must not become the handler's failure."""
        try:
            self._emit(event, payload)
        except Exception:
            log.exception("sway-ipc: cannot deliver event %r", event)

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        if event == "switch":
            old, new = _name(payload.get("old")), _name(payload.get("new"))
            if self._has_subscribers("workspace"):
                layout = self.layout()
                self._broadcast(
                    "workspace",
                    {
                        "change": "focus",
                        "current": layout.workspace_named(new),
                        "old": layout.workspace_named(old),
                    },
                )
        elif event in ("map", "unmap", "focus", "title"):
            change = {"map": "new", "unmap": "close"}.get(event, event)
            if self._has_subscribers("window"):
                self._broadcast("window", {"change": change, "container": window_node(payload)})
        elif event in ("desktops", "config"):
            self._desktops_changed(event)

    def _desktops_changed(self, event: str) -> None:
        layout = self.layout() if self._has_subscribers("workspace") else None
        names = [
            str(d.get("name")) for d in (layout.desktops if layout else self.controller.desktops())
        ]
        known = self._known_desktops or []
        self._known_desktops = names
        if layout is None:
            return
        for name in names:
            if name not in known:
                current = layout.workspace_named(name)
                self._broadcast("workspace", {"change": "init", "current": current, "old": None})
        for name in known:
            if name not in names:
                gone = _base_node(WORKSPACE_ID_BASE, "workspace", name, _rect())
                self._broadcast("workspace", {"change": "empty", "current": gone, "old": None})
        if event == "config":
            self._broadcast("workspace", {"change": "reload", "current": None, "old": None})

    def _has_subscribers(self, i3_event: str) -> bool:
        return any(i3_event in c.subscriptions for c in self.clients)

    def _broadcast(self, i3_event: str, payload: dict[str, Any]) -> None:
        targets = [c for c in self.clients if i3_event in c.subscriptions]
        if targets:
            frame = i3_frame(EVENT_BIT | I3_EVENTS[i3_event], payload)
            for client in targets:
                client.send(frame)

    # Requests.

    def handle_input(self, client: _Client) -> None:
        buf = client.inbuf
        while not client.closed and not client.closing and len(buf) >= I3_HEADER.size:
            magic, length, msg_type = I3_HEADER.unpack_from(buf)
            if magic != I3_MAGIC:
                log.warning("sway-ipc client fd %d: bad magic; disconnecting it", client.fd)
                client.close()
                return
            if length > MAX_REQUEST:
                log.warning("sway-ipc client fd %d: %d-byte payload refused", client.fd, length)
                client.close()
                return
            end = I3_HEADER.size + length
            if len(buf) < end:
                return
            payload = bytes(buf[I3_HEADER.size : end])
            del buf[:end]
            try:
                text = payload.decode()
                reply = self._handle(client, msg_type, text)
            except UnicodeDecodeError:
                reply = {"success": False, "error": "payload is not UTF-8"}
            except Exception as exc:
                log.exception("sway-ipc request type %d failed", msg_type)
                reply = {"success": False, "error": f"internal error: {exc}"}
            client.send(i3_frame(msg_type, reply))
            if msg_type == SUBSCRIBE and "tick" in client.subscriptions and _ok(reply):
                client.send(i3_frame(EVENT_BIT | I3_EVENTS["tick"], {"first": True, "payload": ""}))

    def _handle(self, client: _Client, msg_type: int, text: str) -> object:
        if msg_type == RUN_COMMAND:
            return self.run_command(text)
        if msg_type == GET_WORKSPACES:
            return self.layout().workspaces()
        if msg_type == SUBSCRIBE:
            return self._subscribe(client, text)
        if msg_type == GET_OUTPUTS:
            return self.layout().i3_outputs()
        if msg_type == GET_TREE:
            return self.layout().tree()
        if msg_type in (GET_MARKS, GET_INPUTS, GET_SEATS):
            return []
        if msg_type == GET_BAR_CONFIG:
            if text.strip():
                return {"success": False, "error": f"no bar with id {text.strip()!r}"}
            return []
        if msg_type == GET_VERSION:
            return self._version()
        if msg_type == GET_BINDING_MODES:
            return ["default"]
        if msg_type == GET_BINDING_STATE:
            return {"name": "default"}
        if msg_type == GET_CONFIG:
            return {"config": "# zionwm is configured in Python; see `zionctl status`\n"}
        if msg_type == SEND_TICK:
            self._broadcast("tick", {"first": False, "payload": text})
            return {"success": True}
        if msg_type == SYNC:
            return {"success": False}
        return {"success": False, "error": f"unsupported message type {msg_type}"}

    def _version(self) -> dict[str, Any]:
        parts = [_int(p) for p in [*__version__.split("."), "0", "0", "0"][:3]]
        return {
            "human_readable": f"zionwm {__version__} (sway IPC compatible)",
            "variant": "zionwm",
            "major": parts[0],
            "minor": parts[1],
            "patch": parts[2],
            "loaded_config_file_name": "",
        }

    def _subscribe(self, client: _Client, text: str) -> dict[str, Any]:
        try:
            events = json.loads(text)
        except json.JSONDecodeError:
            return {"success": False, "error": "SUBSCRIBE payload is not JSON"}
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            return {"success": False, "error": "SUBSCRIBE payload is a list of event names"}
        unknown = [e for e in events if e not in I3_EVENTS]
        if unknown:
            return {"success": False, "error": f"unknown events: {', '.join(unknown)}"}
        client.subscriptions.update(events)
        return {"success": True}

    def run_command(self, text: str) -> list[dict[str, Any]]:
        """Run a sway command string; one result per command, as sway replies."""
        results: list[dict[str, Any]] = []
        commands = split_sway_commands(text)
        if not commands:
            return [{"success": False, "parse_error": True, "error": "empty command"}]
        for words in commands:
            results.append(self._run_one(words))
        return results

    def _run_one(self, words: list[str]) -> dict[str, Any]:
        if words[0].startswith("["):
            return _fail("criteria ([...]) are not supported by zionwm")
        if words[0] == "nop":
            return {"success": True}
        if words[0] == "workspace":
            resolved = resolve_workspace_command(words[1:], self.controller.desktops())
            if isinstance(resolved, str):
                return _fail(resolved)
            if not resolved:
                return {"success": True}
            argv = resolved
        elif words[:3] == ["move", "workspace", "to"] or words[:2] == ["move", "workspace"]:
            return self._move_workspace(words)
        else:
            argv = words
        outcome = self.controller.run_command(argv)
        if outcome.ok:
            return {"success": True}
        return _fail(outcome.message or "command failed")

    def _move_workspace(self, words: list[str]) -> dict[str, Any]:
        # Status bars ask for this with persistent workspaces. A desktop's output is the
        # compositor's decision, so only the no-op case succeeds.
        target = words[-1]
        layout = self.layout()
        active = next((d for d in layout.desktops if d.get("active")), None)
        out = layout.output_of(active) if active else None
        if out is not None and out.get("name") == target:
            return {"success": True}
        return _fail("moving desktops between outputs is not supported")


def _fail(message: str) -> dict[str, Any]:
    return {"success": False, "parse_error": False, "error": message}


def _ok(reply: object) -> bool:
    return isinstance(reply, dict) and bool(reply.get("success"))


def _name(value: object) -> str | None:
    if isinstance(value, dict):
        value = value.get("name")
    return None if value is None else str(value)


# --------------------------------------------------------------------------------------------
# Both servers behind one emit()


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
