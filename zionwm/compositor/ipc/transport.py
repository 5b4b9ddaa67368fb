"""What both IPC protocols share: the listening socket (private directory, stale files, peer
credentials), the accept loop, and each connected client's bounded, non-blocking buffers.

A protocol is a `ServerBase` subclass that parses `Client.inbuf` in `handle_input` and
answers with `Client.send`; the framing of its messages is its own. Nothing here may raise
into the event loop: a client that misbehaves (bad framing, oversize requests, not reading
its events) is answered with an error or disconnected, and the compositor goes on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
import struct
from collections.abc import Callable
from pathlib import Path

from zionwm.compositor.ipc.interfaces import Controller, Reactor

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


class Client:
    def __init__(self, server: ServerBase, sock: socket.socket, max_pending: int) -> None:
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


class ServerBase:
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
        self.clients: set[Client] = set()
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
        self.clients.add(Client(self, sock, self.max_pending))

    def handle_input(self, client: Client) -> None:
        raise NotImplementedError

    def subscriptions_changed(self) -> None:
        """A client subscribed, unsubscribed or went away."""


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)
