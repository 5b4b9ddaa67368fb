"""The quarantine service's control socket, as I/O only: listening (0600, one service per
socket), accepting peers of our own uid (SO_PEERCRED), reading newline-delimited JSON
requests, writing replies, and the event stream to subscribers with a bounded backlog.

What a request means is the service's (`Service.handle`); this module never looks inside.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_REQUEST = 1 << 20
MAX_SUBSCRIBER_BACKLOG = 4 << 20

Handler = Callable[[dict[str, Any], "Conn"], dict[str, Any]]


class Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.outbuf = b""
        self.subscriber = False


def listen(path: Path) -> socket.socket:
    """A listening socket at `path`, born 0600; a stale socket file is replaced, a live one
    (another service answers there) is an error."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()
        else:
            probe.close()
            raise RuntimeError(f"{path} is in use by a running service")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)  # the socket is born 0600: no window with wider access
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    sock.listen(64)
    sock.setblocking(False)
    return sock


class ControlSocket:
    """The listening socket and its connections, driven by the service's selector (tags
    "listen" and "conn")."""

    def __init__(self, path: Path, sel: selectors.BaseSelector, handler: Handler) -> None:
        self.path = path
        self.sel = sel
        self.handler = handler
        self.listener = listen(path)
        self.conns: dict[int, Conn] = {}

    def start(self) -> None:
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")

    def has_subscribers(self) -> bool:
        return any(c.subscriber for c in self.conns.values())

    def broadcast(self, data: bytes) -> None:
        for conn in list(self.conns.values()):
            if conn.subscriber:
                self.send(conn, data)

    def send(self, conn: Conn, data: bytes) -> None:
        conn.outbuf += data
        if len(conn.outbuf) > MAX_SUBSCRIBER_BACKLOG:
            log.warning("dropping a client that does not read its events")
            self.close(conn)
            return
        self.flush(conn)

    def flush(self, conn: Conn) -> None:
        try:
            while conn.outbuf:
                n = conn.sock.send(conn.outbuf)
                conn.outbuf = conn.outbuf[n:]
        except BlockingIOError:
            pass
        except OSError:
            self.close(conn)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbuf else 0)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(conn.sock, events, "conn")

    def close(self, conn: Conn) -> None:
        fd = conn.sock.fileno()
        if self.conns.pop(fd, None) is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        conn.sock.close()

    def accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if uid != os.getuid():
            log.warning("refused a control connection from uid %d", uid)
            sock.close()
            return
        sock.setblocking(False)
        conn = Conn(sock)
        self.conns[sock.fileno()] = conn
        self.sel.register(sock, selectors.EVENT_READ, "conn")

    def on_conn(self, sock: socket.socket, mask: int) -> None:
        conn = self.conns.get(sock.fileno())
        if conn is None:
            return
        if mask & selectors.EVENT_WRITE:
            self.flush(conn)
        if not mask & selectors.EVENT_READ:
            return
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close(conn)
            return
        conn.inbuf += data
        if len(conn.inbuf) > MAX_REQUEST:
            self.close(conn)
            return
        while b"\n" in conn.inbuf and conn.sock.fileno() in self.conns:
            line, conn.inbuf = conn.inbuf.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                req = json.loads(line)
                if not isinstance(req, dict):
                    raise ValueError("a request is a JSON object")
                reply = self.handler(req, conn)
            except (ValueError, KeyError, TypeError) as e:
                reply = {"ok": False, "error": f"bad request: {e}"}
            self.send(conn, (json.dumps(reply) + "\n").encode())

    def close_all(self) -> None:
        for conn in list(self.conns.values()):
            self.close(conn)
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.listener.close()
