"""DNS wire format, as much as the desktops' DNS forwarder needs, and no more.

Queries come from untrusted programs, answers from a network we do not control: the parser
is deliberately minimal and bounded (single question, label and name length limits,
compression pointers only backwards and at most a handful of jumps, every read checked);
whatever fails raises `DnsError`, which the forwarder answers FORMERR or drops. Pure
functions on bytes: `read_name`, `parse_message`, `build_query`, `build_error`, and
`learned_addresses` (which IPv4 addresses of an answer a filtered desktop may reach, and
for how long).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

TYPE_A = 1
TYPE_CNAME = 5
CLASS_IN = 1
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_REFUSED = 5
HEADER = struct.Struct("!HHHHHH")
MAX_JUMPS = 16
MAX_NAME = 255
MAX_RECORDS = 64  # answer records looked at; a longer answer is truncated, never trusted more
MAX_CHAIN = 8  # CNAME hops followed from the question name


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
