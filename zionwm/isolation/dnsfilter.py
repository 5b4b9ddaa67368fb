"""The DNS forwarder of a desktop with a network: answers only what its policy allows.

One forwarder serves one desktop, listening on the host side of its veth (the only resolver
its sandboxes are given). For a `filtered` desktop it answers allowed names only, NXDOMAIN
for the rest, and before relaying an answer it hands the answered IPv4 addresses, with their
TTL, to a `learn` callback (the manager's: "add them to the nft sets of the rules that
allowed the name"), so the allowed addresses follow DNS instead of being resolved once.
For a `full` desktop it forwards everything and learns nothing.

Queries come from untrusted programs, answers from a network we do not control: the parser
below is deliberately minimal and bounded (single question, label and name length limits,
compression pointers only backwards and at most a handful of jumps, every read checked), and
whatever fails to parse is answered FORMERR or dropped, never raised out of the loop.
Upstream queries go out with a fresh random ID from a fresh random port and the answer must
echo our question, which is what keeps a blind spoofer out.

DNS over TCP (for answers too large for UDP) is served by a thread per connection, at most
16 at once, each forwarding over TCP.

Runs as a thread (tests) or as a child process: ``python -m zionwm.isolation.dnsfilter
CONFIG_JSON`` (the manager's way, so parsing hostile bytes never shares the compositor's
process). Started as root, the child splits in two: the side that parses DNS runs as
"nobody" with no capabilities (no_new_privs), and a root helper only accepts strictly
checked "open these IPv4 addresses for these rules" requests from it and runs nft.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import logging
import os
import pwd
import secrets
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from zionwm.isolation import netpolicy
from zionwm.isolation.spec import AllowRule, NetMode, NetworkPolicy

log = logging.getLogger(__name__)

TYPE_A = 1
TYPE_CNAME = 5
CLASS_IN = 1
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_REFUSED = 5
HEADER = struct.Struct("!HHHHHH")
MAX_UDP = 4096  # largest query we take from a program
MAX_ANSWER = 65535  # an upstream answer is read whole: a cut datagram would not parse
MAX_JUMPS = 16
MAX_NAME = 255
MAX_RECORDS = 64  # answer records looked at; a longer answer is truncated, never trusted more
MAX_CHAIN = 8  # CNAME hops followed from the question name
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38


class DnsError(ValueError):
    """Bytes that are not a DNS message we are willing to handle."""


@dataclass(frozen=True)
class Question:
    name: str  # lower case, no trailing dot; "" for the root
    qtype: int
    qclass: int


@dataclass(frozen=True)
class Record:
    name: str
    rtype: int
    rclass: int
    ttl: int
    data: str | None  # dotted address for A, target for CNAME, None otherwise


@dataclass(frozen=True)
class Message:
    ident: int
    flags: int
    question: Question
    answers: tuple[Record, ...]

    @property
    def is_response(self) -> bool:
        return bool(self.flags & 0x8000)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def rcode(self) -> int:
        return self.flags & 0xF


def read_name(buf: bytes, off: int) -> tuple[str, int]:
    """Decode a possibly compressed name at `off`: (name, offset after it in the record)."""
    labels: list[str] = []
    total = 0
    jumps = 0
    end: int | None = None
    pos = off
    while True:
        if pos >= len(buf):
            raise DnsError("name runs past the message")
        length = buf[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(buf):
                raise DnsError("truncated compression pointer")
            target = ((length & 0x3F) << 8) | buf[pos + 1]
            # Only backwards, and not many: a pointer loop or a forward chain is hostile.
            if target >= pos or jumps >= MAX_JUMPS:
                raise DnsError("bad compression pointer")
            if end is None:
                end = pos + 2
            jumps += 1
            pos = target
            continue
        if length & 0xC0:
            raise DnsError("unsupported label type")
        if length == 0:
            break
        if pos + 1 + length > len(buf):
            raise DnsError("label runs past the message")
        raw = buf[pos + 1 : pos + 1 + length]
        total += length + 1
        if total > MAX_NAME:
            raise DnsError("name too long")
        try:
            label = raw.decode("ascii").lower()
        except UnicodeDecodeError as exc:
            raise DnsError("non-ASCII label") from exc
        if "." in label:
            raise DnsError("dot inside a label")
        labels.append(label)
        pos += 1 + length
    return ".".join(labels), (end if end is not None else pos + 1)


def encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.rstrip(".").split("."):
        if not label:
            continue
        raw = label.encode("ascii")
        if len(raw) > 63:
            raise DnsError("label too long")
        out += bytes([len(raw)]) + raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise DnsError("name too long")
    return bytes(out)


def parse_message(buf: bytes) -> Message:
    """Header, the single question and the answer section (authority/additional ignored)."""
    if len(buf) < HEADER.size:
        raise DnsError("shorter than a header")
    ident, flags, qd, an, _ns, _ar = HEADER.unpack_from(buf)
    if qd != 1:
        raise DnsError("exactly one question is supported")
    name, off = read_name(buf, HEADER.size)
    if off + 4 > len(buf):
        raise DnsError("truncated question")
    qtype, qclass = struct.unpack_from("!HH", buf, off)
    off += 4
    answers: list[Record] = []
    for _ in range(min(an, MAX_RECORDS)):
        rname, off = read_name(buf, off)
        if off + 10 > len(buf):
            raise DnsError("truncated record")
        rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", buf, off)
        off += 10
        if off + rdlen > len(buf):
            raise DnsError("record data runs past the message")
        data: str | None = None
        if rtype == TYPE_A and rclass == CLASS_IN:
            if rdlen != 4:
                raise DnsError("A record of the wrong size")
            data = str(ipaddress.IPv4Address(buf[off : off + 4]))
        elif rtype == TYPE_CNAME and rclass == CLASS_IN:
            data, _ = read_name(buf, off)
        answers.append(Record(rname, rtype, rclass, min(ttl, 0x7FFFFFFF), data))
        off += rdlen
    return Message(ident, flags, Question(name, qtype, qclass), tuple(answers))


def build_query(ident: int, question: Question, rd: bool = True) -> bytes:
    flags = 0x0100 if rd else 0
    return (
        HEADER.pack(ident, flags, 1, 0, 0, 0)
        + encode_name(question.name)
        + struct.pack("!HH", question.qtype, question.qclass)
    )


def build_error(ident: int, question: Question | None, rcode: int, rd: bool = True) -> bytes:
    """A response with no records: NXDOMAIN for a refused name, SERVFAIL, FORMERR."""
    flags = 0x8000 | 0x0080 | (0x0100 if rd else 0) | (rcode & 0xF)
    if question is None:
        return HEADER.pack(ident, flags, 0, 0, 0, 0)
    return (
        HEADER.pack(ident, flags, 1, 0, 0, 0)
        + encode_name(question.name)
        + struct.pack("!HH", question.qtype, question.qclass)
    )


def learned_addresses(msg: Message, min_ttl: int, max_ttl: int) -> list[tuple[str, int]]:
    """IPv4 addresses the answer gives for its question name, following CNAMEs from it.

    Records about other names are ignored (an upstream cannot smuggle an address in for a
    name the desktop did not ask about). Each address's TTL is the smallest along its chain,
    clamped to [min_ttl, max_ttl].
    """
    owners = {msg.question.name: 0x7FFFFFFF}
    for _ in range(MAX_CHAIN):
        grew = False
        for rec in msg.answers:
            if rec.rtype == TYPE_CNAME and rec.name in owners and rec.data is not None:
                ttl = min(owners[rec.name], rec.ttl)
                if owners.get(rec.data, -1) < ttl:
                    owners[rec.data] = ttl
                    grew = True
        if not grew:
            break
    out: dict[str, int] = {}
    for rec in msg.answers:
        if rec.rtype == TYPE_A and rec.name in owners and rec.data is not None:
            ttl = max(min_ttl, min(max_ttl, rec.ttl, owners[rec.name]))
            out[rec.data] = max(out.get(rec.data, 0), ttl)
    return sorted(out.items())


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


# ---------------------------------------------------------------------------------------------
# Child-process entry point (the manager's way of running it)


def _config_policy(cfg: dict[str, Any]) -> NetworkPolicy:
    return NetworkPolicy(
        mode=NetMode(str(cfg["mode"])),
        allow=tuple(
            AllowRule(host=str(r["host"]), ports=tuple(r["ports"]), proto=str(r["proto"]))
            for r in cfg.get("allow", [])
        ),
    )


def _decider(policy: NetworkPolicy) -> Decide:
    if policy.mode is NetMode.FULL:
        return lambda _name: ()

    def decide(name: str) -> tuple[int, ...] | None:
        return netpolicy.name_rules(policy, name) or None

    return decide


def _nft_learner(prefix: str, desktop: str, nft: str) -> Learn:
    def learn(rules: tuple[int, ...], addrs: list[tuple[str, int]]) -> None:
        text = "".join(
            netpolicy.learned_elements(prefix, desktop, rules, [a], ttl) for a, ttl in addrs
        )
        if text:
            subprocess.run([nft, "-f", "-"], input=text.encode(), check=True, capture_output=True)

    return learn


# -- privilege separation -------------------------------------------------------------------
#
# Started as root (it needs its sockets on port 53 and nft to open the firewall), the
# process splits: the child that parses DNS drops to "nobody" with no capabilities and no
# way to regain any; the root parent only reads "open these addresses for these rules"
# requests from it, checks every field, and runs nft.

MAX_LEARN_ADDRS = 64


class _LearnClient:
    """The unprivileged side's `learn`: one request at a time over a socket pair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.lock = threading.Lock()

    def __call__(self, rules: tuple[int, ...], addrs: list[tuple[str, int]]) -> None:
        line = json.dumps({"rules": list(rules), "addrs": addrs[:MAX_LEARN_ADDRS]}) + "\n"
        with self.lock:
            self.sock.sendall(line.encode())
            reply = self.reader.readline()
        if reply.strip() != b"ok":
            raise RuntimeError("the firewall helper refused or failed")


def parse_learn_request(
    line: bytes, allowed_rules: frozenset[int], max_ttl: int
) -> tuple[tuple[int, ...], list[tuple[str, int]]]:
    """Validate one request from the unprivileged side; raise ValueError if anything is off."""
    doc = json.loads(line)
    if not isinstance(doc, dict) or set(doc) != {"rules", "addrs"}:
        raise ValueError("bad request shape")
    rules = doc["rules"]
    addrs = doc["addrs"]
    if not isinstance(rules, list) or not isinstance(addrs, list):
        raise ValueError("bad request shape")
    if not rules or not all(type(r) is int and r in allowed_rules for r in rules):
        raise ValueError("rule index not a host-name rule of this desktop")
    if not 0 < len(addrs) <= MAX_LEARN_ADDRS:
        raise ValueError("bad number of addresses")
    out: list[tuple[str, int]] = []
    for item in addrs:
        if not (isinstance(item, list) and len(item) == 2 and type(item[1]) is int):
            raise ValueError("bad address entry")
        addr = str(ipaddress.IPv4Address(item[0]))
        out.append((addr, max(1, min(max_ttl, item[1]))))
    return tuple(sorted(set(rules))), out


def _refusal_reporter(fd: object, desktop: str) -> Callable[[str], None] | None:
    """One datagram per refused name into the compositor's socket; never waits (a full
    queue drops the report: the name is refused all the same)."""
    if not isinstance(fd, int):
        return None
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)

    def report(name: str) -> None:
        msg = {"desktop": desktop, "kind": "host", "what": name[:300]}
        with contextlib.suppress(OSError):
            sock.send(json.dumps(msg).encode())

    return report


def _drop_privileges(parent: int) -> None:
    try:
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
    except KeyError:
        uid = gid = 65534
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    # Cleared by the uid change above, so set here: die with the root helper. If it died
    # before this line, nothing would signal us: check we still have it.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise RuntimeError("could not drop root")


def _serve_helper(
    sock: socket.socket, child: int, learn: Learn, allowed: frozenset[int], max_ttl: int
) -> int:
    def on_term(*_: object) -> None:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    reader = sock.makefile("rb")
    for line in reader:
        try:
            rules, addrs = parse_learn_request(line[:16384], allowed, max_ttl)
            learn(rules, addrs)
        except Exception as exc:
            log.warning("firewall request refused: %s", exc)
            sock.sendall(b"err\n")
            continue
        sock.sendall(b"ok\n")
    # The DNS side is gone: end too, so the manager sees it and restarts both.
    try:
        os.kill(child, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status)


def main(argv: list[str] | None = None) -> int:
    """Child-process entry: one JSON argument (see NetworkManager._start_forwarder).

    The listening sockets are normally inherited already bound (``fd``, ``tcp_fd``), so the
    parent never waits for this interpreter to start: early queries wait in the socket's
    buffer.
    """
    args = sys.argv[1:] if argv is None else argv
    cfg: dict[str, Any] = json.loads(args[0])
    logging.basicConfig(level=logging.INFO, format="zionwm-dns[%(process)d] %(message)s")
    listen: tuple[str, int] | socket.socket = (str(cfg.get("listen")), int(cfg.get("port", 53)))
    if cfg.get("fd") is not None:
        listen = socket.socket(fileno=int(cfg["fd"]))
    tcp = socket.socket(fileno=int(cfg["tcp_fd"])) if cfg.get("tcp_fd") is not None else None
    extra_udp = [socket.socket(fileno=int(fd)) for fd in cfg.get("extra_udp_fds", [])]
    extra_tcp = [socket.socket(fileno=int(fd)) for fd in cfg.get("extra_tcp_fds", [])]
    policy = _config_policy(cfg)
    max_ttl = int(cfg.get("max_ttl", 86400))
    learn = _nft_learner(str(cfg["prefix"]), str(cfg["desktop"]), str(cfg.get("nft", "nft")))
    separate = os.geteuid() == 0 and cfg.get("separate", True)
    if separate:
        allowed = frozenset(
            i for i, r in enumerate(policy.allow) if netpolicy.rule_network(r) is None
        )
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        helper = os.getpid()
        child = os.fork()
        if child != 0:
            theirs.close()
            for sock in (listen, tcp, *extra_udp, *extra_tcp):
                if isinstance(sock, socket.socket):
                    sock.close()
            return _serve_helper(ours, child, learn, allowed, max_ttl)
        ours.close()
        _drop_privileges(helper)
        learn = _LearnClient(theirs)
    refuse = _refusal_reporter(cfg.get("refusal_fd"), str(cfg["desktop"]))
    fwd = DnsForwarder(
        listen,
        [(str(h), int(p)) for h, p in cfg["upstreams"]],
        _decider(policy),
        learn,
        min_ttl=int(cfg.get("min_ttl", 60)),
        max_ttl=max_ttl,
        source=cfg.get("source"),
        tcp=tcp,
        extra_udp=extra_udp,
        extra_tcp=extra_tcp,
        on_refuse=refuse,
    )
    signal.signal(signal.SIGTERM, lambda *_: fwd.stop())
    fwd.serve_forever()
    if separate:
        os._exit(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
