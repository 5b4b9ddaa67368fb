"""The network-ops process's wire (zionwm.isolation.network.opswire): frames and values."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from zionwm.isolation.network import opswire
from zionwm.isolation.network.policy import plan_for


def test_frames_round_trip_and_a_clean_end_is_none() -> None:
    a, b = socket.socketpair()
    with a, b:
        opswire.send_frame(a, {"verb": "used_networks", "args": {}})
        opswire.send_frame(a, {"ok": ["10.0.0.0/8"]})
        a.shutdown(socket.SHUT_WR)
        assert opswire.recv_frame(b) == {"verb": "used_networks", "args": {}}
        assert opswire.recv_frame(b) == {"ok": ["10.0.0.0/8"]}
        assert opswire.recv_frame(b) is None


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"\x00\x00", "inside a frame's length"),
        (struct.pack("!I", 10) + b"{}", "inside a frame"),
        (struct.pack("!I", opswire.MAX_FRAME + 1), "over the limit"),
        (struct.pack("!I", 3) + b"{{{", "not JSON"),
        (struct.pack("!I", 2) + b"[]", "not a JSON object"),
    ],
)
def test_what_is_not_a_frame_is_an_error(raw: bytes, error: str) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(raw)
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(opswire.WireError, match=error):
            opswire.recv_frame(b)


def test_plans_and_networks_survive_the_wire_and_nothing_else_passes() -> None:
    plan = plan_for(ipaddress.IPv4Network("10.213.0.4/30"))
    assert opswire.plan_from_wire(opswire.plan_to_wire(plan)) == plan
    assert opswire.plan_from_wire(None) is None
    nets = [ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("192.0.2.0/24")]
    assert opswire.nets_from_wire(opswire.nets_to_wire(nets)) == nets
    for bad in (["10.0.0.0/30", "10.0.0.1"], ["x", "10.0.0.1", "10.0.0.2"], "10.0.0.0/30", 3):
        with pytest.raises(opswire.WireError):
            opswire.plan_from_wire(bad)
    for bad_nets in (["10.0.0.1/8"], "10.0.0.0/8", [8]):
        with pytest.raises(opswire.WireError):
            opswire.nets_from_wire(bad_nets)
