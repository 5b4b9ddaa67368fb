"""The pure network-policy core and the DNS filter, without root.

netpolicy: names, address allocation, name matching, nftables text. dnsfilter: the
parser against hostile bytes, and the forwarder end to end on loopback against a real
upstream server thread.
"""

from __future__ import annotations

import ipaddress
import json
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from zionwm.isolation.network import dnshelper, dnswire
from zionwm.isolation.network import policy as netpolicy
from zionwm.isolation.network.dnsfilter import DnsForwarder
from zionwm.isolation.network.dnswire import DnsError, Question
from zionwm.isolation.network.policy import DesktopRules, PolicyError
from zionwm.isolation.spec import AllowRule, NetMode, NetworkPolicy

DOC_RANGES = [
    ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
]

# ---------------------------------------------------------------------------------------------
# names


def test_default_names() -> None:
    assert netpolicy.netns_name("zionwm", "web") == "zionwm-web"
    assert netpolicy.veth_names("zionwm", "web") == ("zw-web", "eth0")
    assert netpolicy.table_name("zionwm") == "zionwm"


def test_veth_names_fit_and_stay_distinct() -> None:
    names = set()
    for desktop in ("personal-banking", "personal-banking2", "a" * 32, "a" * 31 + "b", "x"):
        for prefix in ("zionwm", "zwt123abc"):
            host, _ = netpolicy.veth_names(prefix, desktop)
            assert len(host) <= 15
            assert host.startswith(netpolicy.veth_tag(prefix))
            names.add(host)
    assert len(names) == 10
    # Another prefix never shares a name with the default one.
    assert netpolicy.veth_names("zwt1", "web")[0] != netpolicy.veth_names("zionwm", "web")[0]


@pytest.mark.parametrize("bad", ["", "Web", "../x", "a b", "a" * 33, "web;rm"])
def test_bad_desktop_names_are_refused(bad: str) -> None:
    with pytest.raises(PolicyError):
        netpolicy.netns_name("zionwm", bad)


@pytest.mark.parametrize("bad", ["", "Zionwm", "1abc", "zw-x", "a" * 17])
def test_bad_prefixes_are_refused(bad: str) -> None:
    with pytest.raises(PolicyError):
        netpolicy.check_prefix(bad)


def test_alias_owner_only_for_own_prefix() -> None:
    alias = netpolicy.link_alias("zwt1", "web")
    assert netpolicy.alias_owner(alias, "zwt1") == "web"
    assert netpolicy.alias_owner(alias, "zwt") is None
    assert netpolicy.alias_owner(alias, "zionwm") is None
    assert netpolicy.alias_owner(None, "zwt1") is None
    assert netpolicy.alias_owner("zwt1:../etc", "zwt1") is None


def test_other_runs_desktop_is_another_prefix_only() -> None:
    alias = netpolicy.link_alias("zwt2", "web")
    assert netpolicy.other_runs_desktop(alias, "zwt1")
    assert not netpolicy.other_runs_desktop(alias, "zwt2")
    assert not netpolicy.other_runs_desktop(None, "zwt1")
    assert not netpolicy.other_runs_desktop("uplink to the office", "zwt1")
    assert not netpolicy.other_runs_desktop("zwt2:../etc", "zwt1")


def test_chain_names_are_injective() -> None:
    desktops = ["a-b", "a_b", "a_mb", "a__b", "a-_b", "a_-b", "ab"]
    chains = {netpolicy.chain_names(d) for d in desktops}
    assert len(chains) == len(desktops)
    for names in chains:
        for c in names:
            assert c.replace("_", "").isalnum()


# ---------------------------------------------------------------------------------------------
# address plan


def test_allocate_skips_used_networks_but_not_the_default_route() -> None:
    avoid = [
        ipaddress.IPv4Network("0.0.0.0/0"),
        ipaddress.IPv4Network("10.213.0.0/30"),
        ipaddress.IPv4Network("10.213.0.5/32"),
    ]
    plan = netpolicy.allocate_subnet(avoid)
    assert plan.subnet == ipaddress.IPv4Network("10.213.0.8/30")
    assert (str(plan.host), str(plan.peer)) == ("10.213.0.9", "10.213.0.10")


def test_allocate_falls_back_to_the_next_pool() -> None:
    plan = netpolicy.allocate_subnet([ipaddress.IPv4Network("10.0.0.0/8")])
    assert plan.subnet == ipaddress.IPv4Network("172.29.0.0/30")


def test_allocate_refuses_when_pools_are_full() -> None:
    pool = ipaddress.IPv4Network("10.9.0.0/29")
    with pytest.raises(PolicyError):
        netpolicy.allocate_subnet([pool], pools=[pool])
    # Half taken: the other half is used, never an overlap.
    plan = netpolicy.allocate_subnet([ipaddress.IPv4Network("10.9.0.0/30")], pools=[pool])
    assert plan.subnet == ipaddress.IPv4Network("10.9.0.4/30")


def test_plan_for_31() -> None:
    plan = netpolicy.plan_for(ipaddress.IPv4Network("10.9.0.0/31"))
    assert (str(plan.host), str(plan.peer)) == ("10.9.0.0", "10.9.0.1")


# ---------------------------------------------------------------------------------------------
# names allowed by a policy


@pytest.mark.parametrize(
    ("pattern", "name", "ok"),
    [
        ("example.org", "example.org", True),
        ("example.org", "EXAMPLE.org.", True),
        ("example.org", "www.example.org", False),
        ("*.example.org", "www.example.org", True),
        ("*.example.org", "a.b.example.org", True),
        ("*.example.org", "example.org", False),
        ("*.example.org", "badexample.org", False),
        ("*.example.org", "www.example.org.evil", False),
    ],
)
def test_name_matches(pattern: str, name: str, ok: bool) -> None:
    assert netpolicy.name_matches(pattern, name) is ok


def test_name_rules() -> None:
    policy = NetworkPolicy(
        NetMode.FILTERED,
        allow=(
            AllowRule("198.51.100.0/24"),
            AllowRule("a.test", ports=(443,)),
            AllowRule("*.a.test"),
            AllowRule("a.test", ports=(80,)),
        ),
    )
    assert netpolicy.name_rules(policy, "a.test") == (1, 3)
    assert netpolicy.name_rules(policy, "x.a.test") == (2,)
    assert netpolicy.name_rules(policy, "b.test") == ()
    assert netpolicy.name_rules(policy, "198.51.100.7") == ()  # CIDR rules never match names
    full = NetworkPolicy(NetMode.FULL, allow=policy.allow)
    assert netpolicy.name_rules(full, "a.test") == ()


@pytest.mark.parametrize(
    "rule",
    [
        AllowRule("a.test", proto="icmp"),
        AllowRule("a.test", ports=(0,)),
        AllowRule("a.test", ports=(70000,)),
        AllowRule("a test"),
        AllowRule("a.test; drop"),
        AllowRule('a.test" }'),
    ],
)
def test_validate_refuses_rules_that_would_inject(rule: AllowRule) -> None:
    with pytest.raises(PolicyError):
        netpolicy.validate_policy(NetworkPolicy(NetMode.FILTERED, allow=(rule,)))


# ---------------------------------------------------------------------------------------------
# nftables text

PLAN = netpolicy.plan_for(ipaddress.IPv4Network("10.213.0.4/30"))


def _rules(policy: NetworkPolicy, enabled: bool = True) -> DesktopRules:
    return DesktopRules("web", policy, "zw-web", PLAN, enabled)


def _chain_rules(text: str, chain: str) -> list[str]:
    head = f"add rule inet zionwm {chain} "
    return [line[len(head) :] for line in text.splitlines() if line.startswith(head)]


def test_base_ruleset_replaces_the_table_and_masquerades() -> None:
    text = netpolicy.base_ruleset("zionwm", None)
    assert text.startswith("add table inet zionwm\ndelete table inet zionwm\n")
    assert "oifname != @desktop_ifs masquerade" in text
    pinned = netpolicy.base_ruleset("zionwm", "wg0")
    assert 'oifname "wg0" masquerade' in pinned


def test_filtered_ruleset() -> None:
    policy = NetworkPolicy(
        NetMode.FILTERED,
        allow=(
            AllowRule("a.test", ports=(443, 80)),
            AllowRule("198.51.100.0/24"),
            AllowRule("203.0.113.9", ports=(53,), proto="udp"),
            AllowRule("b.test", proto="any", ports=(5000,)),
            AllowRule("2001:db8::/32"),
        ),
    )
    text = netpolicy.desktop_ruleset("zionwm", _rules(policy), "up0")
    out, ret, inp, dns = netpolicy.chain_names("web")
    assert "add set inet zionwm d_web_h0 { type ipv4_addr; flags timeout; }" in text
    assert "d_web_h3" in text and "d_web_h1" not in text
    rules = _chain_rules(text, out)
    assert rules[:3] == [
        "meta nfproto ipv6 drop",
        'oifname != "up0" drop',
        "oifname @desktop_ifs drop",
    ]
    assert "ip daddr @d_web_h0 meta l4proto tcp th dport { 80, 443 } ct mark set 1 accept" in rules
    assert "ip daddr 198.51.100.0/24 meta l4proto tcp ct mark set 1 accept" in rules
    assert "ip daddr 203.0.113.9/32 meta l4proto udp th dport { 53 } ct mark set 1 accept" in rules
    assert (
        "ip daddr @d_web_h3 meta l4proto { tcp, udp } th dport { 5000 } ct mark set 1 accept"
        in rules
    )
    assert rules[-2:] == [
        "meta l4proto tcp reject with tcp reset",
        "reject with icmpx admin-prohibited",
    ]
    assert "ct state established,related ct mark 1 accept" in rules
    assert not any("2001:db8" in r for r in rules)
    # A new policy generation: old connections must pass the new allow-list again.
    again = netpolicy.desktop_ruleset(
        "zionwm", DesktopRules("web", policy, "zw-web", PLAN, generation=2), "up0"
    )
    assert "ct state established,related ct mark 2 accept" in _chain_rules(again, out)
    assert _chain_rules(text, ret) == ["ct state established,related accept", "drop"]
    assert f"ip daddr {PLAN.host} meta l4proto {{ tcp, udp }} th dport 53 accept" in (
        _chain_rules(text, inp)
    )
    assert _chain_rules(text, inp)[-1] == "reject with icmpx admin-prohibited"
    assert 'add element inet zionwm from_desktop { "zw-web" : jump d_web_out }' in text
    assert _chain_rules(text, dns) == [
        f"meta l4proto {{ tcp, udp }} th dport 53 dnat ip to {PLAN.host}:53"
    ]


def test_full_and_block_lan_ruleset() -> None:
    text = netpolicy.desktop_ruleset("zionwm", _rules(NetworkPolicy(NetMode.FULL)), None)
    rules = _chain_rules(text, "d_web_out")
    assert rules[-1] == "accept" and not any("10.0.0.0/8" in r for r in rules)
    assert _chain_rules(text, "d_web_dns") == []  # a full desktop's DNS goes where it asks
    assert not any("oifname !=" in r for r in rules)
    blocked = netpolicy.desktop_ruleset(
        "zionwm", _rules(NetworkPolicy(NetMode.FULL, block_lan=True)), None
    )
    lan = [r for r in _chain_rules(blocked, "d_web_out") if "10.0.0.0/8" in r]
    assert len(lan) == 2 and "192.168.0.0/16" in lan[0] and "169.254.0.0/16" in lan[0]
    assert lan[0].endswith("meta l4proto tcp reject with tcp reset")
    assert lan[1].endswith("} reject with icmpx admin-prohibited")
    # LAN blocking comes before the accept, so it holds for full desktops too.
    rules = _chain_rules(blocked, "d_web_out")
    assert rules.index(lan[1]) < rules.index("accept")


def test_lan_block_spares_the_documentation_ranges() -> None:
    for net in netpolicy.LAN_BLOCK_V4:
        assert not any(ipaddress.IPv4Network(net).overlaps(doc) for doc in DOC_RANGES)


def test_disabled_ruleset_accepts_nothing() -> None:
    policy = NetworkPolicy(NetMode.FILTERED, allow=(AllowRule("198.51.100.0/24"),))
    text = netpolicy.desktop_ruleset("zionwm", _rules(policy, enabled=False), None)
    out = _chain_rules(text, "d_web_out")
    assert out == ["meta l4proto tcp reject with tcp reset", "reject with icmpx admin-prohibited"]
    assert _chain_rules(text, "d_web_ret") == ["drop"]
    assert not any("accept" in r for r in _chain_rules(text, "d_web_in"))
    # Chains are flushed before refilling, in the same transaction.
    assert text.index("flush chain inet zionwm d_web_out") < text.index("add rule")


def test_none_mode_has_no_ruleset() -> None:
    with pytest.raises(PolicyError):
        netpolicy.desktop_ruleset("zionwm", _rules(NetworkPolicy(NetMode.NONE)), None)


def test_remove_and_learned_elements() -> None:
    text = netpolicy.remove_desktop_ruleset("zionwm", "web", "zw-web", [0, 2])
    lines = text.splitlines()
    assert lines[0].startswith("delete element inet zionwm from_desktop")
    assert lines[-2:] == ["delete set inet zionwm d_web_h0", "delete set inet zionwm d_web_h2"]
    learned = netpolicy.learned_elements("zionwm", "web", (0, 2), ["198.51.100.7"], 0)
    assert learned == (
        "add element inet zionwm d_web_h0 { 198.51.100.7 timeout 1s }\n"
        "add element inet zionwm d_web_h2 { 198.51.100.7 timeout 1s }\n"
    )
    with pytest.raises(ValueError):
        netpolicy.learned_elements("zionwm", "web", (0,), ["198.51.100.7 }; flush ruleset"], 5)
    assert netpolicy.learned_elements("zionwm", "web", (0,), [], 5) == ""


def test_resolv_conf() -> None:
    assert f"nameserver {PLAN.host}" in netpolicy.resolv_conf(PLAN)
    assert "nameserver" not in netpolicy.resolv_conf(None)


# ---------------------------------------------------------------------------------------------
# DNS parser


def _name(*labels: bytes) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def _answer(
    ident: int, qname: str, records: list[tuple[bytes, int, int, bytes]], flags: int = 0x8180
) -> bytes:
    q = dnswire.encode_name(qname) + struct.pack("!HH", 1, 1)
    body = b""
    for owner, rtype, ttl, rdata in records:
        body += owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata
    return struct.pack("!HHHHHH", ident, flags, 1, len(records), 0, 0) + q + body


def test_read_name_plain_and_compressed() -> None:
    buf = b"\0" * 12 + _name(b"www", b"Example", b"org") + b"\x03abc\xc0\x10"
    assert dnswire.read_name(buf, 12) == ("www.example.org", 29)
    assert dnswire.read_name(buf, 29) == ("abc.example.org", 35)


@pytest.mark.parametrize(
    "tail",
    [
        b"\xc0\x0c",  # points at itself
        b"\xc0\x20",  # points forward
        b"\x05ab",  # label runs past the end
        b"\x03abc",  # no terminating zero
        b"\x40abc\0",  # reserved label type
        b"\xc0",  # half a pointer
        b"\x03a.b\0",  # dot inside a label
        b"\x02\xff\xfe\0",  # not ASCII
    ],
)
def test_read_name_refuses_hostile_names(tail: bytes) -> None:
    with pytest.raises(DnsError):
        dnswire.read_name(b"\0" * 12 + tail, 12)


def test_read_name_bounds_jumps_and_length() -> None:
    # A chain of backward pointers longer than MAX_JUMPS.
    buf = bytearray(b"\x01a\0")
    for i in range(40):
        buf += struct.pack("!H", 0xC000 | (len(buf) - 2 if i else 0))
    with pytest.raises(DnsError):
        dnswire.read_name(bytes(buf), len(buf) - 2)
    long = b"".join(b"\x3f" + b"a" * 63 for _ in range(5)) + b"\0"
    with pytest.raises(DnsError):
        dnswire.read_name(long, 0)


def test_parse_and_learn_follow_the_cname_chain_only() -> None:
    q = dnswire.encode_name("www.a.test")
    msg = _answer(
        7,
        "www.a.test",
        [
            (b"\xc0\x0c", 5, 600, _name(b"cdn", b"b", b"test")),
            (_name(b"cdn", b"b", b"test"), 1, 30, bytes([198, 51, 100, 7])),
            (_name(b"cdn", b"b", b"test"), 1, 900, bytes([198, 51, 100, 8])),
            (_name(b"evil", b"test"), 1, 900, bytes([203, 0, 113, 66])),  # unrelated
        ],
    )
    parsed = dnswire.parse_message(msg)
    assert parsed.question == Question("www.a.test", 1, 1)
    assert parsed.is_response and parsed.rcode == 0
    assert parsed.answers[0].data == "cdn.b.test"
    learned = dnswire.learned_addresses(parsed, min_ttl=60, max_ttl=3600)
    # .7: TTL 30 raised to the floor; .8: capped by the CNAME's 600; .66 is not ours.
    assert learned == [("198.51.100.7", 60), ("198.51.100.8", 600)]
    assert len(q) == 12


def test_parse_refuses_bad_records() -> None:
    bad_a = _answer(1, "a.test", [(b"\xc0\x0c", 1, 5, b"\x01\x02\x03")])
    with pytest.raises(DnsError):
        dnswire.parse_message(bad_a)
    with pytest.raises(DnsError):
        dnswire.parse_message(bad_a[:-2])
    two_questions = bytearray(_answer(1, "a.test", []))
    two_questions[5] = 2
    with pytest.raises(DnsError):
        dnswire.parse_message(bytes(two_questions))


def test_parser_never_raises_anything_but_dns_error() -> None:
    rng = random.Random(6)
    seed = _answer(
        9,
        "www.a.test",
        [
            (b"\xc0\x0c", 5, 60, b"\x03cdn\xc0\x10"),
            (b"\x03cdn\xc0\x10", 1, 60, bytes([198, 51, 100, 1])),
        ],
    )
    for i in range(4000):
        if i % 2:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        else:
            mutated = bytearray(seed)
            for _ in range(rng.randrange(1, 6)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            data = bytes(mutated[: rng.randrange(len(mutated) + 1)])
        try:
            msg = dnswire.parse_message(data)
        except DnsError:
            continue
        dnswire.learned_addresses(msg, 1, 10)


# ---------------------------------------------------------------------------------------------
# Forwarder on loopback, against a real upstream server thread


class Upstream:
    """A tiny authoritative server on 127.0.0.1: a.test -> 198.51.100.7 (TTL 120)."""

    def __init__(self, answer: bool = True, spoof_first: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.answer = answer
        self.spoof_first = spoof_first
        self.seen: list[str] = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(self.addr)  # same port as UDP, as a real server
        self.tcp.listen(4)
        self.tcp.settimeout(0.2)
        self.tcp_thread = threading.Thread(target=self.run_tcp, daemon=True)
        self.tcp_thread.start()

    def respond(self, data: bytes) -> bytes:
        q = dnswire.parse_message(data)
        if q.question.name == "a.test":
            rec = [(b"\xc0\x0c", 1, 120, bytes([198, 51, 100, 7]))]
            return _answer(q.ident, "a.test", rec)
        if q.question.name == "big.test":  # 300 A records: too large for UDP
            rec = [(b"\xc0\x0c", 1, 60, bytes([198, 51, 100, i % 250])) for i in range(300)]
            return _answer(q.ident, "big.test", rec)
        return _answer(q.ident, q.question.name, [], flags=0x8183)

    def run_tcp(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                n = struct.unpack("!H", conn.recv(2))[0]
                data = b""
                while len(data) < n:
                    data += conn.recv(n - len(data))
                self.seen.append("tcp:" + dnswire.parse_message(data).question.name)
                reply = self.respond(data)
                conn.sendall(struct.pack("!H", len(reply)) + reply)

    @property
    def addr(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return host, port

    def run(self) -> None:
        while not self.stop:
            try:
                data, peer = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            q = dnswire.parse_message(data)
            self.seen.append(q.question.name)
            if not self.answer:
                continue
            if self.spoof_first:
                self.sock.sendto(_answer(q.ident ^ 1, q.question.name, []), peer)
            self.sock.sendto(self.respond(data), peer)

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        self.tcp_thread.join()
        self.sock.close()
        self.tcp.close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.close()


class Served:
    def __init__(self, up: Upstream, timeout: float = 2.0) -> None:
        self.learned: list[tuple[tuple[int, ...], list[tuple[str, int]], float]] = []
        allowed = {"a.test": (0,), "missing.test": (1,), "big.test": (2,)}
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(4)
        self.fwd = DnsForwarder(
            ("127.0.0.1", 0),
            [up.addr],
            allowed.get,
            lambda rules, addrs: self.learned.append((rules, addrs, time.monotonic())),
            timeout=timeout,
            min_ttl=5,
            tcp=self.tcp,
        )
        self.thread = self.fwd.start_thread()
        self.client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.client.settimeout(5)

    def ask(self, name: str, ident: int = 0x1234) -> tuple[dnswire.Message, float]:
        self.client.sendto(dnswire.build_query(ident, Question(name, 1, 1)), self.fwd.address)
        data = self.client.recv(4096)
        return dnswire.parse_message(data), time.monotonic()

    def ask_tcp(self, name: str, ident: int = 0x4321) -> dnswire.Message:
        query = dnswire.build_query(ident, Question(name, 1, 1))
        with socket.create_connection(self.tcp.getsockname(), timeout=5) as c:
            c.sendall(struct.pack("!H", len(query)) + query)
            n = struct.unpack("!H", c.recv(2))[0]
            data = b""
            while len(data) < n:
                data += c.recv(n - len(data))
        return dnswire.parse_message(data)

    def close(self) -> None:
        self.fwd.stop()
        self.thread.join(timeout=5)
        self.client.close()


def test_forwarder_answers_allowed_and_learns_first(upstream: Upstream) -> None:
    s = Served(upstream)
    try:
        msg, answered = s.ask("A.TEST", ident=0xBEEF)
        assert msg.ident == 0xBEEF and msg.rcode == 0
        assert [r.data for r in msg.answers] == ["198.51.100.7"]
        assert len(s.learned) == 1
        rules, addrs, when = s.learned[0]
        assert rules == (0,) and addrs == [("198.51.100.7", 120)]
        assert when <= answered  # the firewall opens before the program gets the address
        msg, _ = s.ask("missing.test")  # allowed, but NXDOMAIN upstream: nothing learned
        assert msg.rcode == dnswire.RCODE_NXDOMAIN and len(s.learned) == 1
    finally:
        s.close()


def test_forwarder_refuses_names_without_asking_upstream(upstream: Upstream) -> None:
    s = Served(upstream)
    try:
        msg, _ = s.ask("evil.test")
        assert msg.rcode == dnswire.RCODE_NXDOMAIN and msg.answers == ()
        assert upstream.seen == [] and s.learned == []
    finally:
        s.close()


def test_forwarder_survives_garbage_and_ignores_spoofed_answers() -> None:
    up = Upstream(spoof_first=True)
    s = Served(up)
    try:
        for junk in (b"", b"\x00", b"\x12\x34\x01", b"\xff" * 12 + b"\xc0\x0c", b"\x00" * 600):
            s.client.sendto(junk, s.fwd.address)
        # Answers to the junk (FORMERR) may arrive; then a real query still works.
        s.client.settimeout(0.2)
        formerr = 0
        while True:
            try:
                reply = s.client.recv(4096)
            except TimeoutError:
                break
            assert struct.unpack("!H", reply[2:4])[0] & 0xF == dnswire.RCODE_FORMERR
            formerr += 1
        assert formerr >= 3
        s.client.settimeout(5)
        msg, _ = s.ask("a.test")
        assert msg.rcode == 0 and [r.data for r in msg.answers] == ["198.51.100.7"]
    finally:
        s.close()
        up.close()


def test_forwarder_servfail_when_upstream_is_silent() -> None:
    up = Upstream(answer=False)
    s = Served(up, timeout=0.3)
    try:
        msg, _ = s.ask("a.test")
        assert msg.rcode == dnswire.RCODE_SERVFAIL
        assert up.seen == ["a.test", "a.test"]  # one retry, then fail
    finally:
        s.close()
        up.close()


def test_forwarder_over_tcp(upstream: Upstream) -> None:
    s = Served(upstream)
    try:
        msg = s.ask_tcp("big.test")
        assert msg.ident == 0x4321 and msg.rcode == 0
        assert len(msg.answers) == dnswire.MAX_RECORDS  # parsed up to our bound
        assert "tcp:big.test" in upstream.seen
        assert s.learned and s.learned[0][0] == (2,)
        assert s.ask_tcp("evil.test").rcode == dnswire.RCODE_NXDOMAIN
        assert "tcp:evil.test" not in upstream.seen
        # A frame too short for a header: the connection is closed without an answer.
        with socket.create_connection(s.tcp.getsockname(), timeout=5) as c:
            c.sendall(b"\x00\x05hello")
            try:
                assert c.recv(100) == b""
            except ConnectionResetError:
                pass
        # A header with no question: FORMERR, and the connection stays usable.
        with socket.create_connection(s.tcp.getsockname(), timeout=5) as c:
            c.sendall(b"\x00\x0c" + struct.pack("!HHHHHH", 0x0707, 0x0100, 0, 0, 0, 0))
            reply = c.recv(100)
            assert struct.unpack("!HHH", reply[:6]) == (12, 0x0707, 0x8181)
        assert s.ask_tcp("a.test").rcode == 0
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# The root helper's check of what the unprivileged DNS side asks for


def test_learn_request_accepted() -> None:
    line = json.dumps({"rules": [2, 0, 2], "addrs": [["198.51.100.7", 90], ["203.0.113.1", 0]]})
    rules, addrs = dnshelper.parse_learn_request(line.encode(), frozenset({0, 2}), 3600)
    assert rules == (0, 2)
    assert addrs == [("198.51.100.7", 90), ("203.0.113.1", 1)]


@pytest.mark.parametrize(
    "doc",
    [
        {"rules": [1], "addrs": [["198.51.100.7", 9]]},  # not a host-name rule
        {"rules": [], "addrs": [["198.51.100.7", 9]]},
        {"rules": [0], "addrs": []},
        {"rules": [0], "addrs": [["2001:db8::1", 9]]},
        {"rules": [0], "addrs": [["198.51.100.7 } ; flush ruleset", 9]]},
        {"rules": [0], "addrs": [["198.51.100.7", "9"]]},
        {"rules": [True], "addrs": [["198.51.100.7", 9]]},
        {"rules": [0], "addrs": [["198.51.100.7", 9]], "extra": 1},
        {"rules": [0], "addrs": [["198.51.100.7", 9]] * 65},
        ["rules", "addrs"],
    ],
)
def test_learn_request_refused(doc: object) -> None:
    with pytest.raises(ValueError):
        dnshelper.parse_learn_request(json.dumps(doc).encode(), frozenset({0, 2}), 3600)
    with pytest.raises(ValueError):
        dnshelper.parse_learn_request(b"{not json", frozenset({0}), 3600)
