"""The wire of the network-ops process: length-prefixed JSON frames on a stream socket, and
the typed values its verbs take and return.

A frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON, at most
`MAX_FRAME`. A request is ``{"verb": NAME, "args": {...}}``; an answer is
``{"ok": VALUE}`` or ``{"error": MESSAGE, "type": "NetworkError" | "OSError" | ...,
"errno": N}``. Pure but for `send_frame` and `recv_frame`. The process answers requests one
at a time, in order, and may leave when idle (`IDLE_EXIT`).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
from typing import Any

from zionwm.isolation.network.policy import AddressPlan

MAX_FRAME = 64 << 20  # a host with a full routing table answers used_networks in MiBs
# The ops process's exit status when it left idle, before reading anything more: a request
# sent meanwhile was never read, so it is safe to send again to a new process.
IDLE_EXIT = 3
_LEN = struct.Struct("!I")


class WireError(Exception):
    """A frame that is not one: truncated, too long, or not a JSON object."""


def encode(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise WireError(f"frame of {len(body)} bytes is over the limit of {MAX_FRAME}")
    return _LEN.pack(len(body)) + body


def send_frame(sock: socket.socket, obj: dict[str, Any]) -> None:
    sock.sendall(encode(obj))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> dict[str, Any] | None:
    """The next frame, or None at a clean end of the stream (between frames)."""
    head = _recv_exact(sock, _LEN.size)
    if not head:
        return None
    if len(head) < _LEN.size:
        raise WireError("stream ended inside a frame's length")
    (size,) = _LEN.unpack(head)
    if size > MAX_FRAME:
        raise WireError(f"frame of {size} bytes is over the limit of {MAX_FRAME}")
    body = _recv_exact(sock, size)
    if len(body) < size:
        raise WireError("stream ended inside a frame")
    try:
        obj = json.loads(body)
    except ValueError as exc:
        raise WireError(f"frame is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError("frame is not a JSON object")
    return obj


def plan_to_wire(plan: AddressPlan | None) -> list[str] | None:
    if plan is None:
        return None
    return [str(plan.subnet), str(plan.host), str(plan.peer)]


def plan_from_wire(value: Any) -> AddressPlan | None:
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)):
        raise WireError(f"not an address plan: {value!r}")
    try:
        return AddressPlan(
            ipaddress.IPv4Network(value[0]),
            ipaddress.IPv4Address(value[1]),
            ipaddress.IPv4Address(value[2]),
        )
    except ValueError as exc:
        raise WireError(f"not an address plan: {exc}") from None


def nets_to_wire(nets: Any) -> list[str]:
    return [str(n) for n in nets]


def nets_from_wire(value: Any) -> list[ipaddress.IPv4Network]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WireError(f"not a list of networks: {value!r}")
    try:
        return [ipaddress.IPv4Network(v) for v in value]
    except ValueError as exc:
        raise WireError(f"not a network: {exc}") from None
