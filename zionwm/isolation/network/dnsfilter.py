"""The DNS forwarder of a desktop with a network: answers only what its policy allows.

One forwarder serves one desktop, listening on the host side of its veth (the only resolver
its sandboxes are given). For a `filtered` desktop it answers allowed names only, NXDOMAIN
for the rest, and before relaying an answer it hands the answered IPv4 addresses, with their
TTL, to a `learn` callback (the manager's: "add them to the nft sets of the rules that
allowed the name"), so the allowed addresses follow DNS instead of being resolved once.
For a `full` desktop it forwards everything and learns nothing.

This module is the server loop; the message format is `dnswire`'s, and whatever fails to
parse is answered FORMERR or dropped, never raised out of the loop. Upstream queries go out
with a fresh random ID from a fresh random port and the answer must echo our question,
which is what keeps a blind spoofer out.

DNS over TCP (for answers too large for UDP) is served by a thread per connection, at most
16 at once, each forwarding over TCP.

Runs as a thread (tests) or in the child process of `dnshelper` (the manager's way, so
parsing hostile bytes never shares the compositor's process).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zionwm.isolation.network.dnswire import (
    HEADER,
    RCODE_FORMERR,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    RCODE_SERVFAIL,
    DnsError,
    Message,
    Question,
    build_error,
    learned_addresses,
    parse_message,
)

log = logging.getLogger(__name__)

MAX_UDP = 4096  # largest query we take from a program
MAX_ANSWER = 65535  # an upstream answer is read whole: a cut datagram would not parse


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _recv_frame(conn: socket.socket) -> bytes | None:
    """One length-prefixed DNS message from a TCP stream; None at end of stream."""
    head = _recv_exact(conn, 2)
    if head is None:
        return None
    (length,) = struct.unpack("!H", head)
    if length < HEADER.size:
        return None
    return _recv_exact(conn, length)


Decide = Callable[[str], "tuple[int, ...] | None"]
Learn = Callable[["tuple[int, ...]", "list[tuple[str, int]]"], None]


@dataclass
class _Pending:
    client: tuple[str, int]
    ident: int
    rd: bool
    question: Question
    rules: tuple[int, ...]
    upstream_id: int
    deadline: float
    attempt: int
    raw: bytes  # the client's query: forwarded as is (EDNS options kept), with our own ID
    via: socket.socket  # the listening socket it came in on, which answers it


class DnsForwarder:
    """A UDP forwarder on one thread (one socket per query upstream), plus DNS over TCP.

    `decide(name)` returns the indices of the rules allowing the name (may be empty, e.g.
    for a `full` desktop) or None to refuse it. `learn(rules, [(addr, ttl)])` is called with
    the answer's addresses before the answer is relayed, so the firewall is open by the time
    the program connects.
    """

    def __init__(
        self,
        listen: tuple[str, int] | socket.socket,
        upstreams: Sequence[tuple[str, int]],
        decide: Decide,
        learn: Learn | None = None,
        *,
        timeout: float = 2.0,
        min_ttl: int = 60,
        max_ttl: int = 86400,
        source: str | None = None,
        max_pending: int = 256,
        tcp: socket.socket | None = None,
        max_tcp: int = 16,
        extra_udp: Sequence[socket.socket] = (),
        extra_tcp: Sequence[socket.socket] = (),
        on_refuse: Callable[[str], None] | None = None,
    ) -> None:
        if not upstreams:
            raise ValueError("a DNS forwarder needs at least one upstream")
        self.upstreams = list(upstreams)
        self.decide = decide
        self.learn = learn
        self.on_refuse = on_refuse  # told each refused name (the compositor lists them)
        self.timeout = timeout
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.source = source  # upstream queries leave from this address (the uplink's)
        self.max_pending = max_pending
        self.max_tcp = max_tcp
        if isinstance(listen, socket.socket):
            self.sock = listen  # bound by the parent: queries queue up before we run
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(listen)
        self.sock.setblocking(False)
        self._sel = selectors.DefaultSelector()
        # Extra listeners: e.g. 127.0.0.53 inside the desktop's own namespace, for programs
        # whose resolv.conf names a host-local resolver (systemd-resolved).
        self.udp_socks = [self.sock, *extra_udp]
        for u in self.udp_socks:
            u.setblocking(False)
            self._sel.register(u, selectors.EVENT_READ, ("udp", u))
        self._pending: dict[socket.socket, _Pending] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._stopping = False
        self.tcp_socks = [t for t in (tcp, *extra_tcp) if t is not None]
        self._tcp_threads: set[threading.Thread] = set()
        for t in self.tcp_socks:
            t.setblocking(False)
            self._sel.register(t, selectors.EVENT_READ, ("tcp", t))

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    # -- client side ---------------------------------------------------------------------

    def _check_query(self, data: bytes) -> tuple[Message | None, bytes | None, tuple[int, ...]]:
        """(query, None, rules) to forward, or (None, reply, ()) to answer at once.

        An empty reply means "drop": too short to even carry an ID.
        """
        if len(data) < 2:
            return None, b"", ()
        ident = struct.unpack_from("!H", data)[0]
        try:
            msg = parse_message(data)
        except DnsError as exc:
            log.debug("malformed query: %s", exc)
            return None, build_error(ident, None, RCODE_FORMERR), ()
        rd = bool(msg.flags & 0x0100)
        if msg.is_response or msg.opcode != 0:
            return None, build_error(ident, msg.question, RCODE_REFUSED, rd), ()
        rules = self.decide(msg.question.name)
        if rules is None:
            log.info("refused DNS name %r", msg.question.name)
            if self.on_refuse is not None:
                self.on_refuse(msg.question.name)
            return None, build_error(ident, msg.question, RCODE_NXDOMAIN, rd), ()
        return msg, None, rules

    def _check_answer(self, data: bytes, upstream_id: int, question: Question) -> Message | None:
        """The upstream answer if it answers our query (ID, response bit, same question)."""
        try:
            msg = parse_message(data)
        except DnsError as exc:
            log.debug("malformed upstream answer: %s", exc)
            return None
        if msg.ident != upstream_id or not msg.is_response or msg.question != question:
            return None
        return msg

    def _learn(self, rules: tuple[int, ...], msg: Message) -> bool:
        """Open the firewall for the answer's addresses; False if that failed."""
        if not rules or msg.rcode != 0 or self.learn is None:
            return True
        learned = learned_addresses(msg, self.min_ttl, self.max_ttl)
        if not learned:
            return True
        try:
            self.learn(rules, learned)
        except Exception:
            log.exception("could not open the firewall for %s", msg.question.name)
            return False
        return True

    def _on_query(self, data: bytes, client: tuple[str, int], via: socket.socket) -> None:
        msg, reply, rules = self._check_query(data)
        if msg is None:
            if reply:
                self._reply(reply, client, via)
            return
        rd = bool(msg.flags & 0x0100)
        if len(self._pending) >= self.max_pending:
            self._reply(build_error(msg.ident, msg.question, RCODE_SERVFAIL, rd), client, via)
            return
        self._send_upstream(
            _Pending(client, msg.ident, rd, msg.question, rules, 0, 0.0, 0, data, via)
        )

    def _send_upstream(self, p: _Pending) -> None:
        upstream = self.upstreams[p.attempt % len(self.upstreams)]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if self.source is not None and not _is_loopback(upstream[0]):
                s.bind((self.source, 0))
            s.setblocking(False)
            s.connect(upstream)
            p.upstream_id = secrets.randbelow(0x10000)
            p.deadline = time.monotonic() + self.timeout
            s.send(struct.pack("!H", p.upstream_id) + p.raw[2:])
        except OSError as exc:
            log.warning("cannot query upstream %s: %s", upstream, exc)
            s.close()
            self._reply(build_error(p.ident, p.question, RCODE_SERVFAIL, p.rd), p.client, p.via)
            return
        self._sel.register(s, selectors.EVENT_READ, "upstream")
        self._pending[s] = p

    def _reply(self, data: bytes, client: tuple[str, int], via: socket.socket) -> None:
        try:
            via.sendto(data, client)
        except OSError as exc:
            log.debug("cannot answer %s: %s", client, exc)

    # -- upstream side -------------------------------------------------------------------

    def _drop(self, s: socket.socket) -> _Pending | None:
        p = self._pending.pop(s, None)
        try:
            self._sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()
        return p

    def _on_answer(self, s: socket.socket) -> None:
        try:
            data = s.recv(MAX_ANSWER)
        except OSError as exc:
            # ICMP port unreachable surfaces here as ECONNREFUSED: try the next upstream.
            p = self._drop(s)
            if p is not None:
                log.debug("upstream error: %s", exc)
                self._retry_or_fail(p)
            return
        p = self._pending[s]
        msg = self._check_answer(data, p.upstream_id, p.question)
        if msg is None:
            return  # keep waiting: a forged packet must not cancel the real answer
        self._drop(s)
        if not self._learn(p.rules, msg):
            self._reply(build_error(p.ident, p.question, RCODE_SERVFAIL, p.rd), p.client, p.via)
            return
        self._reply(struct.pack("!H", p.ident) + data[2:], p.client, p.via)

    def _retry_or_fail(self, p: _Pending) -> None:
        if p.attempt + 1 < max(2, len(self.upstreams)):
            p.attempt += 1
            self._send_upstream(p)
        else:
            self._reply(build_error(p.ident, p.question, RCODE_SERVFAIL, p.rd), p.client, p.via)

    def _expire(self) -> None:
        now = time.monotonic()
        for s, p in list(self._pending.items()):
            if p.deadline <= now:
                self._drop(s)
                self._retry_or_fail(p)

    # -- loop ----------------------------------------------------------------------------

    def serve_forever(self) -> None:
        while not self._stopping:
            wait = 0.5
            if self._pending:
                wait = max(0.0, min(p.deadline for p in self._pending.values()) - time.monotonic())
            for key, _ in self._sel.select(timeout=wait):
                try:
                    if key.data == "wake":
                        os.read(self._wake_r, 64)
                    elif isinstance(key.data, tuple) and key.data[0] == "udp":
                        self._drain_clients(key.data[1])
                    elif isinstance(key.data, tuple) and key.data[0] == "tcp":
                        self._on_tcp_connection(key.data[1])
                    else:
                        self._on_answer(key.fileobj)  # type: ignore[arg-type]
                except Exception:
                    log.exception("DNS forwarder error (continuing)")
            self._expire()
        self._close()

    # -- DNS over TCP (answers too large for UDP): a thread per connection, bounded -------

    def _on_tcp_connection(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        self._tcp_threads = {t for t in self._tcp_threads if t.is_alive()}
        if len(self._tcp_threads) >= self.max_tcp:
            conn.close()
            return
        t = threading.Thread(target=self._serve_tcp, args=(conn,), daemon=True)
        self._tcp_threads.add(t)
        t.start()

    def _serve_tcp(self, conn: socket.socket) -> None:
        with conn:
            conn.setblocking(True)
            conn.settimeout(self.timeout * 3)
            try:
                while not self._stopping:
                    data = _recv_frame(conn)
                    if data is None:
                        return
                    reply = self._answer_tcp(data)
                    if not reply:
                        return
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError as exc:
                log.debug("DNS over TCP client: %s", exc)
            except Exception:
                log.exception("DNS over TCP error (connection dropped)")

    def _answer_tcp(self, data: bytes) -> bytes:
        msg, reply, rules = self._check_query(data)
        if msg is None:
            return reply or b""
        rd = bool(msg.flags & 0x0100)
        for attempt in range(max(2, len(self.upstreams))):
            upstream = self.upstreams[attempt % len(self.upstreams)]
            upstream_id = secrets.randbelow(0x10000)
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as up:
                    if self.source is not None and not _is_loopback(upstream[0]):
                        up.bind((self.source, 0))
                    up.settimeout(self.timeout)
                    up.connect(upstream)
                    query = struct.pack("!H", upstream_id) + data[2:]
                    up.sendall(struct.pack("!H", len(query)) + query)
                    answer_raw = _recv_frame(up)
            except OSError as exc:
                log.debug("upstream %s over TCP: %s", upstream, exc)
                continue
            if answer_raw is None:
                continue
            answer = self._check_answer(answer_raw, upstream_id, msg.question)
            if answer is None:
                continue
            if not self._learn(rules, answer):
                break
            return struct.pack("!H", msg.ident) + answer_raw[2:]
        return build_error(msg.ident, msg.question, RCODE_SERVFAIL, rd)

    def _drain_clients(self, sock: socket.socket) -> None:
        for _ in range(64):
            try:
                data, client = sock.recvfrom(MAX_UDP)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("recvfrom: %s", exc)
                return
            self._on_query(data, client, sock)

    def stop(self) -> None:
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _close(self) -> None:
        for s in list(self._pending):
            self._drop(s)
        self._sel.close()
        for sock in (*self.udp_socks, *self.tcp_socks):
            sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def start_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name="zionwm-dns", daemon=True)
        t.start()
        return t
