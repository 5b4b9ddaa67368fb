"""zionwm's own connection to one desktop's bus: it owns org.freedesktop.Notifications,
org.zionwm.Open and org.freedesktop.portal.Desktop (desktopbus/portal.py) there and turns
their method calls into events for the compositor.

The connection goes to the desktop's daemon directly, not through the proxy, so it can own
names the proxy forbids to programs. Setting up (authentication, Hello, RequestName) is a
few blocking round trips on a fresh local daemon; after that the socket is non-blocking and
driven by the caller's event loop: `on_readable()` returns what arrived, `flush()` sends
what is pending (`wants_write` says when the socket should be watched for writing).

Which desktop a call came from is `self.desktop`, fixed when zionwm made the connection:
nothing a program sends can change it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from jeepney import HeaderFields, MatchRule, Message, MessageType
from jeepney.auth import BEGIN, Authenticator
from jeepney.bus_messages import message_bus
from jeepney.low_level import Parser
from jeepney.wrappers import new_error, new_method_return

from . import policy
from .events import Event, OpenFileRequest, OpenRequest, Refused
from .policy import Notice
from .portal import PORTAL_NAME, Portal, is_portal_call

log = logging.getLogger(__name__)

SERVER_INFO = ("zionwm", "zionwm", "0.1", "1.2")
READ_CHUNK = 65536
# Read at most this much per wake-up: a flooding desktop costs the compositor bounded work
# per event loop turn, and the rest waits in the socket.
READ_BUDGET = 4 * READ_CHUNK
OUT_MAX = 1 << 20
DBUS_NAME_FLAG_DO_NOT_QUEUE = 4
PRIMARY_OWNER = 1

ERR_UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"
ERR_INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
ERR_REFUSED = "org.zionwm.Error.Refused"
ERR_LIMITED = "org.zionwm.Error.LimitsExceeded"


class BusError(RuntimeError):
    """The connection could not be set up; nothing of it is left open."""


GONE_RULE = MatchRule(
    type="signal",
    sender="org.freedesktop.DBus",
    interface="org.freedesktop.DBus",
    member="NameOwnerChanged",
)
GONE_RULE.add_arg_condition(2, "")  # a name that lost its owner
# unix fds taken per read: the kernel's limit for one send (SCM_MAX_FD), so none is ever cut
# off (a cut would leave a message without its fds and end the connection); a read never
# spans two sends that carry fds. Only OpenURI.OpenFile keeps one; the rest are closed.
MAX_FDS = 253


class DesktopService:
    """One desktop's notification and link service on its private bus."""

    def __init__(
        self,
        desktop: str,
        rate: policy.RateLimit | None = None,
        appearance: Any = None,
    ) -> None:
        self.desktop = desktop
        self.rate = rate or policy.RateLimit()
        self.sock: socket.socket | None = None
        self._parser = Parser()
        self._out = bytearray()
        self._serial = 0
        self._next_id = 0
        self.portal = Portal(desktop, self._queue, appearance)
        self.link_rate = self.portal.link_rate

    # ---- setup (blocking, bounded) ----

    def connect(self, path: str, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
            # unix fds: OpenURI.OpenFile hands over the file it means as an fd
            auth = Authenticator(enable_fds=True)
            for line in auth:
                sock.sendall(line)
                auth.feed(sock.recv(1024))
            sock.sendall(BEGIN)
            self.sock = sock
            self._call_blocking(message_bus.Hello(), deadline)
            # a program that leaves with a request open (a chooser on screen) ends it
            self._call_blocking(message_bus.AddMatch(GONE_RULE), deadline)
            for name in (policy.NOTIFICATIONS_NAME, policy.OPEN_NAME, PORTAL_NAME):
                reply = self._call_blocking(
                    message_bus.RequestName(name, DBUS_NAME_FLAG_DO_NOT_QUEUE), deadline
                )
                if reply.body != (PRIMARY_OWNER,):
                    raise BusError(f"could not own {name} on {self.desktop}'s bus: {reply.body}")
            sock.setblocking(False)
        except (OSError, ValueError, BusError) as exc:
            sock.close()
            self.sock = None
            if isinstance(exc, BusError):
                raise
            raise BusError(f"cannot connect to {self.desktop}'s bus at {path}: {exc}") from exc

    def _call_blocking(self, msg: Message, deadline: float) -> Message:
        assert self.sock is not None
        serial = self._send(msg)
        self.sock.sendall(self._out)
        self._out.clear()
        while True:
            m = self._parser.get_next_message()
            while m is not None:
                if m.header.fields.get(HeaderFields.reply_serial) == serial:
                    if m.header.message_type is MessageType.error:
                        raise BusError(f"{self.desktop}'s bus refused setup: {m.body}")
                    return m
                m = self._parser.get_next_message()
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(READ_CHUNK)
            if not data:
                raise BusError(f"{self.desktop}'s bus closed the connection during setup")
            self._parser.add_data(data)

    # ---- running (non-blocking) ----

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    @property
    def wants_write(self) -> bool:
        return bool(self._out)

    def on_readable(self) -> tuple[list[Event], bool]:
        """Read and handle what arrived. Returns the events and whether the bus is gone."""
        if self.sock is None:
            return [], True
        events: list[Event] = []
        budget = READ_BUDGET
        closed = False
        while budget > 0:
            try:
                data, fds, _flags, _addr = socket.recv_fds(
                    self.sock, READ_CHUNK, MAX_FDS, socket.MSG_CMSG_CLOEXEC
                )
            except BlockingIOError:
                break
            except OSError as exc:
                log.warning("desktop %s: bus connection failed: %s", self.desktop, exc)
                closed = True
                break
            if not data:
                closed = True
                break
            budget -= len(data)
            try:
                self._parser.add_data(data, fds)
                while True:
                    waiting = list(self._parser.fds)
                    msg = self._parser.get_next_message()
                    if msg is None:
                        break
                    used = waiting[: msg.header.fields.get(HeaderFields.unix_fds, 0)]
                    try:
                        ev = self.handle(msg, used)
                    finally:
                        # what a handler keeps it has dup()ed
                        for fd in used:
                            os.close(fd)
                    if ev is not None:
                        events.append(ev)
            except (ValueError, KeyError, IndexError) as exc:
                # the daemon only forwards well-formed messages: this is a broken bus
                log.warning("desktop %s: unreadable bus data: %s", self.desktop, exc)
                closed = True
                break
        self.flush()
        return events, closed

    def flush(self) -> None:
        if self.sock is None or not self._out:
            return
        try:
            sent = self.sock.send(self._out)
        except BlockingIOError:
            return
        except OSError:
            self._out.clear()
            return
        del self._out[:sent]

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        for fd in self._parser.fds:
            os.close(fd)
        self._parser.fds = []

    # ---- dispatch (pure apart from queueing replies) ----

    def handle(self, msg: Message, fds: list[int] | None = None) -> Event | None:
        hdr = msg.header
        if hdr.message_type is MessageType.signal:
            return self._signal(msg)
        if hdr.message_type is not MessageType.method_call:
            return None
        if is_portal_call(msg):
            ev: Event | None = self.portal.handle(msg, fds)
            if isinstance(ev, Notice) and not self.rate.allow():
                return None
            if isinstance(ev, OpenFileRequest) and not self.portal.file_rate.allow():
                self.respond(ev.handle, 2, {})
                if ev.fd >= 0:
                    os.close(ev.fd)
                return None
            return ev
        fields = hdr.fields
        iface = fields.get(HeaderFields.interface)
        member = fields.get(HeaderFields.member)
        path = fields.get(HeaderFields.path)
        if path == policy.NOTIFICATIONS_PATH and iface in (None, policy.NOTIFICATIONS_NAME):
            return self._notifications(msg, member)
        if path == policy.OPEN_PATH and iface in (None, policy.OPEN_INTERFACE):
            return self._open(msg, member)
        if iface == "org.freedesktop.DBus.Peer" and member == "Ping":
            self._reply(msg, None, ())
            return None
        self._error(msg, ERR_UNKNOWN_METHOD, f"no method {iface}.{member} at {path}")
        return None

    def _signal(self, msg: Message) -> Event | None:
        f = msg.header.fields
        if (
            f.get(HeaderFields.sender) == "org.freedesktop.DBus"
            and f.get(HeaderFields.member) == "NameOwnerChanged"
            and f.get(HeaderFields.signature) == "sss"
        ):
            name, _old, new = msg.body
            if new == "" and name.startswith(":"):
                # only a chooser's request stays open (one per desktop at a time)
                gone = self.portal.forget_sender(name)
                return gone[0] if gone else None
        return None

    def _notifications(self, msg: Message, member: Any) -> Event | None:
        if member == "GetCapabilities":
            self._reply(msg, "as", (["body"],))
        elif member == "GetServerInformation":
            self._reply(msg, "ssss", SERVER_INFO)
        elif member == "CloseNotification":
            self._reply(msg, None, ())
        elif member == "Notify":
            body = msg.body
            if len(body) != 8 or msg.header.fields.get(HeaderFields.signature) != "susssasa{sv}i":
                self._error(msg, ERR_INVALID_ARGS, "Notify takes (susssasa{sv}i)")
                return None
            self._next_id = self._next_id % 0xFFFFFFFF + 1
            self._reply(msg, "u", (self._next_id,))
            if not self.rate.allow():
                return None
            app, _replaces, _icon, summary, text, _actions, hints, _timeout = body
            return policy.make_notice(self.desktop, app, summary, text, hints)
        else:
            self._error(msg, ERR_UNKNOWN_METHOD, f"no method {member}")
        return None

    def _open(self, msg: Message, member: Any) -> Event | None:
        if member == "OpenFile" and msg.header.fields.get(HeaderFields.signature) == "s":
            # `xdg-open FILE`: the path as the sandbox names it; checked by the compositor
            (path,) = msg.body
            if not self.portal.file_rate.allow():
                self._error(msg, ERR_LIMITED, "too many files at once")
                return None
            self._reply(msg, None, ())
            sender = str(msg.header.fields.get(HeaderFields.sender, ""))
            return OpenFileRequest(self.desktop, sender, "", path)
        if member != "OpenURI":
            self._error(msg, ERR_UNKNOWN_METHOD, f"no method {member}")
            return None
        if msg.header.fields.get(HeaderFields.signature) != "s":
            self._error(msg, ERR_INVALID_ARGS, "OpenURI takes (s)")
            return None
        (url,) = msg.body
        if not self.link_rate.allow():
            self._error(msg, ERR_LIMITED, "too many links at once")
            # told once per burst of refusals, not once per link
            if self.link_rate.dropped % 20 == 1:
                shown = policy.short(url if isinstance(url, str) else "")
                return Refused(self.desktop, shown, "too many links at once")
            return None
        try:
            checked = policy.check_url(url)
        except policy.RefusedLink as exc:
            self._error(msg, ERR_REFUSED, f"link refused: {exc}")
            return Refused(
                self.desktop, policy.short(url if isinstance(url, str) else ""), str(exc)
            )
        self._reply(msg, None, ())
        return OpenRequest(self.desktop, checked)

    def _reply(self, parent: Message, signature: str | None, body: tuple[Any, ...]) -> None:
        self._send(new_method_return(parent, signature, body))

    def _error(self, parent: Message, name: str, text: str) -> None:
        self._send(new_error(parent, name, "s", (text,)))

    def _queue(self, msg: Message) -> None:
        self._send(msg)

    def respond(self, handle: str, code: int, results: dict[str, tuple[str, Any]]) -> None:
        """Answer a portal request (Request.Response to its caller) and send it now."""
        self.portal.respond(handle, code, results)
        self.flush()

    def _send(self, msg: Message) -> int:
        if len(self._out) > OUT_MAX:
            # the peer stopped reading (a frozen desktop): replies are dropped, not piled up
            return 0
        self._serial = self._serial % 0x7FFFFFFF + 1
        self._out += msg.serialise(serial=self._serial)
        return self._serial
