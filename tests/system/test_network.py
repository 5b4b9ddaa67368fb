"""Per-desktop network policies against real namespaces, veths and nftables.

The test builds its own "internet": a namespace (unique per run) holding HTTP, UDP and DNS
servers on documentation-range addresses (plus one "LAN" address for block_lan), joined to
the host by a veth the test creates. The manager is given that veth as its *uplink*, so its
policy-routing table sends the desktops' traffic (and the DNS forwarder's upstream queries)
there and nowhere else; the inet namespace itself has no route beyond its link. Every test
asserts the route before sending. Probes run inside the desktop namespaces.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute, netns

from tests.harness import wait_for
from zionwm.isolation.network import policy as netpolicy
from zionwm.isolation.network.caps import probe
from zionwm.isolation.network.manager import NetworkManager
from zionwm.isolation.spec import AllowRule, DesktopSpec, NetMode, NetworkPolicy

PY = sys.executable
REPO = Path(__file__).resolve().parents[2]

GOOD = "198.51.100.10"  # good.zw.test; HTTP on 80 and 8080, UDP echo on 7
BAD = "198.51.100.11"  # bad.zw.test; HTTP on 80
MOVE_A = "198.51.100.20"  # moving.zw.test, before the change
MOVE_B = "198.51.100.21"  # moving.zw.test, after it
CIDR_HOST = "203.0.113.10"  # allowed by CIDR in the filtered policy; HTTP on 8080
DNS = "198.51.100.53"
LAN = "192.168.77.10"  # the "local network" (inside the test's own namespace)
SERVER_ADDRS = (GOOD, BAD, MOVE_A, MOVE_B, CIDR_HOST, DNS, LAN)


def _facility_missing() -> str | None:
    caps = probe()
    if not caps.root:
        return "needs root (network namespaces, veths, nftables)"
    if caps.nft is None:
        return "needs the nft command (Debian package nftables)"
    if not caps.netns_dir_writable:
        return "/run/netns is not writable"
    if shutil.which("ip") is None:
        return "needs the ip command (iproute2)"
    return None


pytestmark = pytest.mark.root
needs_privileged = pytest.mark.skipif(
    _facility_missing() is not None, reason=str(_facility_missing())
)


def _pasta_missing() -> str | None:
    for tool in ("pasta", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian packages passt, util-linux)"
    probe_ns = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--net", "true"], capture_output=True, check=False
    )
    if probe_ns.returncode != 0:
        return "user namespaces are disabled: " + probe_ns.stderr.decode(errors="replace")
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun (pasta's tap device)"
    return None


needs_pasta = pytest.mark.skipif(_pasta_missing() is not None, reason=str(_pasta_missing()))


SERVER = textwrap.dedent(
    r"""
    import http.server, json, socket, socketserver, struct, sys, threading
    cfg = json.loads(sys.argv[1])

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_GET(self):
            body = ("hello from %s:%d" % self.server.server_address[:2]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass

    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    for addr, port in cfg["http"]:
        threading.Thread(target=S((addr, port), H).serve_forever, daemon=True).start()

    def udp_echo(addr, port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, port))
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(b"echo:" + data, peer)

    for addr, port in cfg["udp"]:
        threading.Thread(target=udp_echo, args=(addr, port), daemon=True).start()

    def dns():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((cfg["dns"], 53))
        while True:
            q, peer = s.recvfrom(2048)
            ident, flags = struct.unpack("!HH", q[:4])
            pos, labels = 12, []
            while q[pos]:
                labels.append(q[pos + 1 : pos + 1 + q[pos]].decode().lower())
                pos += 1 + q[pos]
            qtype = struct.unpack("!H", q[pos + 1 : pos + 3])[0]
            question = q[12 : pos + 5]
            with open(cfg["zone"]) as fh:
                zone = json.load(fh)
            rec = zone.get(".".join(labels))
            rd = flags & 0x0100
            if rec is None:
                s.sendto(struct.pack("!HHHHHH", ident, 0x8403 | rd, 1, 0, 0, 0) + question, peer)
                continue
            answer = b""
            if qtype == 1:
                addr, ttl = rec
                answer = struct.pack("!HHHIH", 0xC00C, 1, 1, ttl, 4) + socket.inet_aton(addr)
            head = struct.pack("!HHHHHH", ident, 0x8400 | rd, 1, 1 if answer else 0, 0, 0)
            s.sendto(head + question + answer, peer)

    threading.Thread(target=dns, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()
    """
)

PROBE = textwrap.dedent(
    r"""
    import json, socket, struct, sys
    def http(host, port, sock=None):
        s = sock or socket.create_connection((host, int(port)), timeout=3)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lines = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")]
        n = int(lines[0].split(b":")[1])
        while len(body) < n:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed")
            body += chunk
        return body.decode()
    def run(cmd, args, state):
        if cmd == "http":
            return http(*args)
        if cmd == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            s.sendto(b"ping", (args[0], int(args[1])))
            return s.recvfrom(2048)[0].decode()
        if cmd == "dns":
            return sorted(socket.gethostbyname_ex(args[0])[2])
        if cmd == "dnsat":  # a raw query to a resolver of our choice: rcode, addresses
            q = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
            q += b"".join(bytes([len(l)]) + l.encode() for l in args[1].split(".")) + b"\0"
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(3)
            s.sendto(q + struct.pack("!HH", 1, 1), (args[0], 53))
            r = s.recv(4096)
            rcode, an = struct.unpack("!H", r[2:4])[0] & 0xF, struct.unpack("!H", r[6:8])[0]
            spots = range(len(q) + 4, len(r) - 15, 16)  # our test server's A records
            addrs = [socket.inet_ntoa(r[i + 12 : i + 16]) for i in spots]
            return [rcode, an, addrs if an else []]
        if cmd == "open":
            state["s"] = socket.create_connection((args[0], int(args[1])), timeout=3)
            return "open"
        if cmd == "get":
            return http(None, None, state["s"])
        raise ValueError(cmd)
    def one(line, state):
        cmd, *args = line.split()
        try:
            return {"ok": True, "value": run(cmd, args, state)}
        except Exception as exc:
            return {"ok": False, "error": type(exc).__name__ + ": " + str(exc)}
    if sys.argv[1] == "session":
        state = {}
        for line in sys.stdin:
            print(json.dumps(one(line, state)), flush=True)
    else:
        print(json.dumps(one(" ".join(sys.argv[1:]), {})))
    """
)


@dataclass
class Lab:
    prefix: str
    inet_ns: str
    uplink: str
    uplink_gw: str
    zone: Path
    probe_py: Path
    tmp: Path

    def set_zone(self, records: dict[str, tuple[str, int]]) -> None:
        tmp = self.zone.with_suffix(".new")
        tmp.write_text(json.dumps(records))
        tmp.replace(self.zone)

    def manager(self, **kw: object) -> NetworkManager:
        kw.setdefault("uplink", self.uplink)
        kw.setdefault("uplink_gateway", self.uplink_gw)
        kw.setdefault("upstream_dns", [DNS])
        kw.setdefault("min_ttl", 1)
        kw.setdefault("loopback_dns", ["127.0.0.53"])
        kw.setdefault("state_dir", self.tmp / "state")
        return NetworkManager(self.prefix, **kw)  # type: ignore[arg-type]

    def probe(self, ns: str, *args: str) -> dict[str, object]:
        res = subprocess.run(
            ["ip", "netns", "exec", ns, PY, str(self.probe_py), *args],
            capture_output=True,
            timeout=20,
            check=True,
        )
        return json.loads(res.stdout)


def _run_prefix() -> str:
    return "zwt" + secrets.token_hex(3)


def _ns_exists(name: str) -> bool:
    return (Path("/run/netns") / name).exists()


def _link_exists(name: str) -> bool:
    with IPRoute() as ip:
        return bool(ip.link_lookup(ifname=name))


def _nft_table_exists(table: str) -> bool:
    return (
        subprocess.run(
            ["nft", "list", "table", "inet", table], capture_output=True, check=False
        ).returncode
        == 0
    )


def _rules_for(table: int) -> list[str]:
    out = subprocess.run(["ip", "rule", "show"], capture_output=True, text=True, check=True)
    return [
        line for line in out.stdout.splitlines() if f"lookup {table}" in line or hex(table) in line
    ]


def _stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("netlab")
    prefix = _run_prefix()
    inet_ns = prefix + "inet"  # no "-": the manager's cleanup never matches it
    uplink = prefix + "up"
    k = 32 + secrets.randbelow(32)  # a /30 in 203.0.113.128/25, away from the servers
    host_addr, inet_addr = f"203.0.113.{4 * k + 1}", f"203.0.113.{4 * k + 2}"
    zone = tmp / "zone.json"
    server_py = tmp / "server.py"
    server_py.write_text(SERVER)
    probe_py = tmp / "probe.py"
    probe_py.write_text(PROBE)
    lab = Lab(prefix, inet_ns, uplink, inet_addr, zone, probe_py, tmp)
    lab.set_zone({"good.zw.test": (GOOD, 300), "bad.zw.test": (BAD, 300), "evil.test": (BAD, 300)})
    server: subprocess.Popen[bytes] | None = None
    netns.create(inet_ns)
    try:
        with IPRoute() as ip:
            ip.link(
                "add", ifname=uplink, kind="veth", peer={"ifname": "eth0", "net_ns_fd": inet_ns}
            )
            idx = ip.link_lookup(ifname=uplink)[0]
            ip.addr("add", index=idx, address=host_addr, prefixlen=30)
            ip.link("set", index=idx, state="up")
        with IPRoute(netns=inet_ns) as ip:
            ip.link("set", index=ip.link_lookup(ifname="lo")[0], state="up")
            eth = ip.link_lookup(ifname="eth0")[0]
            ip.addr("add", index=eth, address=inet_addr, prefixlen=30)
            ip.link("set", index=eth, state="up")
            lo = ip.link_lookup(ifname="lo")[0]
            for addr in SERVER_ADDRS:
                ip.addr("add", index=lo, address=addr, prefixlen=32)
        cfg = {
            "http": [
                *([GOOD, 80], [GOOD, 8080], [BAD, 80], [MOVE_A, 80], [MOVE_B, 80]),
                *([CIDR_HOST, 8080], [LAN, 80]),
            ],
            "udp": [[GOOD, 7]],
            "dns": DNS,
            "zone": str(zone),
        }
        server = subprocess.Popen(
            ["ip", "netns", "exec", inet_ns, PY, str(server_py), json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert server.stdout is not None
        assert server.stdout.readline().strip() == b"ready"
        yield lab
    finally:
        if server is not None:
            _stop(server)
        with IPRoute() as ip:
            found = ip.link_lookup(ifname=uplink)
            if found:
                ip.link("del", index=found[0])
        netns.remove(inet_ns)


@pytest.fixture
def mgr(lab: Lab) -> Iterator[NetworkManager]:
    m = lab.manager()
    m.cleanup_stale()
    try:
        yield m
    finally:
        m.close()
    assert not _nft_table_exists(lab.prefix)


def _assert_routed_to_lab(lab: Lab, m: NetworkManager, desktop: str, dst: str) -> None:
    """Before sending: the desktop's packets for `dst` leave through the lab's uplink only."""
    net = m.get(desktop)
    assert net is not None and net.plan is not None and net.ns_name is not None
    inside = subprocess.run(
        ["ip", "-n", net.ns_name, "-j", "route", "get", dst],
        capture_output=True,
        check=True,
    )
    route = json.loads(inside.stdout)[0]
    assert route["dev"] == "eth0" and route["gateway"] == str(net.plan.host)
    outside = subprocess.run(
        ["ip", "-j", "route", "get", dst, "from", str(net.plan.peer), "iif", str(net.host_if)],
        capture_output=True,
        check=True,
    )
    hop = json.loads(outside.stdout)[0]
    assert hop["dev"] == lab.uplink, hop
    assert hop.get("gateway") == lab.uplink_gw, hop
    # The forwarder's upstream queries leave from the uplink's address: same table.
    with IPRoute() as ip:
        idx = ip.link_lookup(ifname=lab.uplink)[0]
        source = ip.get_addr(family=2, index=idx)[0].get("IFA_LOCAL")
    upstream = subprocess.run(
        ["ip", "-j", "route", "get", DNS, "from", str(source)], capture_output=True, check=True
    )
    assert json.loads(upstream.stdout)[0]["dev"] == lab.uplink


@pytest.mark.security
@needs_privileged
def test_none_reaches_nothing(lab: Lab, mgr: NetworkManager) -> None:
    net = mgr.ensure("off", NetworkPolicy(NetMode.NONE))
    assert net.netns_path() == Path("/run/netns") / f"{lab.prefix}-off"
    assert net.netns_path().exists()  # type: ignore[union-attr]
    ns = str(net.ns_name)
    links = subprocess.run(["ip", "-n", ns, "-j", "link"], capture_output=True, check=True)
    assert [link["ifname"] for link in json.loads(links.stdout)] == ["lo"]
    routes = subprocess.run(["ip", "-n", ns, "-j", "route"], capture_output=True, check=True)
    assert json.loads(routes.stdout) == []  # no route: nothing can leave, checked before sending
    for args in (("http", GOOD, "80"), ("http", LAN, "80"), ("udp", GOOD, "7")):
        r = lab.probe(ns, *args)
        assert r["ok"] is False, (args, r)
    assert lab.probe(ns, "dns", "good.zw.test")["ok"] is False
    assert mgr.state()["off"]["effective"] == "none"


@needs_privileged
def test_full_reaches_everything(lab: Lab, mgr: NetworkManager) -> None:
    net = mgr.ensure("work", NetworkPolicy(NetMode.FULL))
    ns = str(net.ns_name)
    for dst in (GOOD, BAD, CIDR_HOST, LAN):
        _assert_routed_to_lab(lab, mgr, "work", dst)
    assert lab.probe(ns, "http", GOOD, "80") == {"ok": True, "value": f"hello from {GOOD}:80"}
    assert lab.probe(ns, "http", BAD, "80")["ok"] is True
    assert lab.probe(ns, "http", CIDR_HOST, "8080")["ok"] is True
    assert lab.probe(ns, "http", LAN, "80")["ok"] is True  # no block_lan: the LAN is there
    assert lab.probe(ns, "udp", GOOD, "7") == {"ok": True, "value": "echo:ping"}
    assert lab.probe(ns, "dns", "bad.zw.test") == {"ok": True, "value": [BAD]}
    assert lab.probe(ns, "dns", "evil.test") == {"ok": True, "value": [BAD]}
    # systemd-resolved's address inside the desktop reaches its forwarder too.
    assert lab.probe(ns, "dnsat", "127.0.0.53", "evil.test") == {
        "ok": True,
        "value": [0, 1, [BAD]],
    }
    # The host's own services are not part of "what the host reaches".
    with IPRoute() as ip:
        idx = ip.link_lookup(ifname=lab.uplink)[0]
        host_addr = str(ip.get_addr(family=2, index=idx)[0].get("IFA_LOCAL"))
    listener = socket.socket()
    try:
        listener.bind((host_addr, 0))
        listener.listen(4)
        port = str(listener.getsockname()[1])
        with socket.create_connection((host_addr, int(port)), timeout=3):
            pass  # it is there, from the host
        assert lab.probe(ns, "http", host_addr, port)["ok"] is False
        assert lab.probe(ns, "http", str(net.plan.host), port)["ok"] is False  # type: ignore[union-attr]
    finally:
        listener.close()
    state = mgr.state()["work"]
    assert state["effective"] == "full" and state["enabled"] is True
    assert state["gateway"] == str(net.plan.host)  # type: ignore[union-attr]


@pytest.mark.security
@needs_privileged
def test_filtered_allows_only_the_list_and_follows_dns(lab: Lab, mgr: NetworkManager) -> None:
    lab.set_zone(
        {
            "good.zw.test": (GOOD, 300),
            "bad.zw.test": (BAD, 300),
            "evil.test": (BAD, 300),
            "moving.zw.test": (MOVE_A, 2),
        }
    )
    policy = NetworkPolicy(
        NetMode.FILTERED,
        allow=(
            AllowRule("good.zw.test", ports=(80,)),
            AllowRule("*.zw.test", ports=(81,)),  # matches moving too, on another port
            AllowRule("moving.zw.test", ports=(80,)),
            AllowRule(f"{CIDR_HOST}/32", ports=(8080,)),
            AllowRule(GOOD, ports=(7,), proto="udp"),
        ),
    )
    net = mgr.ensure("web", policy)
    ns = str(net.ns_name)
    for dst in (GOOD, BAD, MOVE_A, MOVE_B, CIDR_HOST):
        _assert_routed_to_lab(lab, mgr, "web", dst)
    # A name-based address is closed until the desktop resolves the name.
    assert lab.probe(ns, "http", GOOD, "80")["ok"] is False
    assert lab.probe(ns, "dns", "good.zw.test") == {"ok": True, "value": [GOOD]}
    assert lab.probe(ns, "http", GOOD, "80") == {"ok": True, "value": f"hello from {GOOD}:80"}
    assert lab.probe(ns, "http", GOOD, "8080")["ok"] is False  # port not in the rule
    # A name that is not allowed does not resolve (it exists upstream: see the full test).
    assert lab.probe(ns, "dns", "evil.test")["ok"] is False
    # Every DNS query is answered by the filter, whatever server the program asks.
    assert lab.probe(ns, "dnsat", "203.0.113.53", "evil.test") == {"ok": True, "value": [3, 0, []]}
    assert lab.probe(ns, "dnsat", "127.0.0.53", "evil.test") == {"ok": True, "value": [3, 0, []]}
    assert lab.probe(ns, "dnsat", "203.0.113.53", "good.zw.test") == {
        "ok": True,
        "value": [0, 1, [GOOD]],
    }
    # A wildcard rule resolves its names but opens only its own port.
    assert lab.probe(ns, "dns", "bad.zw.test") == {"ok": True, "value": [BAD]}
    assert lab.probe(ns, "http", BAD, "80")["ok"] is False
    assert lab.probe(ns, "http", LAN, "80")["ok"] is False
    # CIDR and UDP rules.
    assert lab.probe(ns, "http", CIDR_HOST, "8080")["ok"] is True
    assert lab.probe(ns, "udp", GOOD, "7") == {"ok": True, "value": "echo:ping"}
    # DNS change: the new address opens, the old one closes when its TTL runs out.
    assert lab.probe(ns, "dns", "moving.zw.test") == {"ok": True, "value": [MOVE_A]}
    assert lab.probe(ns, "http", MOVE_A, "80")["ok"] is True
    lab.set_zone(
        {"good.zw.test": (GOOD, 300), "evil.test": (BAD, 300), "moving.zw.test": (MOVE_B, 300)}
    )
    assert lab.probe(ns, "http", MOVE_B, "80")["ok"] is False
    assert lab.probe(ns, "dns", "moving.zw.test") == {"ok": True, "value": [MOVE_B]}
    assert lab.probe(ns, "http", MOVE_B, "80")["ok"] is True
    wait_for(
        lambda: lab.probe(ns, "http", MOVE_A, "80")["ok"] is False, 15, "old address to expire"
    )
    assert lab.probe(ns, "http", MOVE_B, "80")["ok"] is True
    assert mgr.state()["web"]["effective"] == "filtered"


@pytest.mark.security
@needs_privileged
def test_block_lan_denies_lan_allows_internet(lab: Lab, mgr: NetworkManager) -> None:
    net = mgr.ensure("kiosk", NetworkPolicy(NetMode.FULL, block_lan=True))
    ns = str(net.ns_name)
    _assert_routed_to_lab(lab, mgr, "kiosk", LAN)
    _assert_routed_to_lab(lab, mgr, "kiosk", GOOD)
    assert lab.probe(ns, "http", LAN, "80")["ok"] is False
    assert lab.probe(ns, "http", GOOD, "80")["ok"] is True
    assert lab.probe(ns, "dns", "good.zw.test")["ok"] is True  # its own forwarder is not "LAN"


@pytest.mark.security
@needs_privileged
def test_live_off_cuts_established_connection_and_on_restores(
    lab: Lab, mgr: NetworkManager
) -> None:
    net = mgr.ensure("web", NetworkPolicy(NetMode.FULL))
    ns = str(net.ns_name)
    _assert_routed_to_lab(lab, mgr, "web", GOOD)
    client = Session(lab, ns)
    ask = client.ask
    try:
        assert ask(f"open {GOOD} 80")["ok"] is True
        assert ask("get")["ok"] is True
        assert ask("get")["ok"] is True  # the same keep-alive connection
        mgr.set_enabled("web", False)
        assert mgr.state()["web"]["enabled"] is False
        assert ask("get")["ok"] is False  # established connection: its next request fails
        assert ask(f"open {GOOD} 80")["ok"] is False
        net.set_enabled(True)
        assert ask(f"open {GOOD} 80")["ok"] is True  # same program, network back
        assert ask("get")["ok"] is True
        assert client.proc.poll() is None
    finally:
        client.close()


class Session:
    """A long-lived program in a desktop namespace, driven line by line (see PROBE)."""

    def __init__(self, lab: Lab, ns: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, PY, str(lab.probe_py), "session"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, line: str) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        _stop(self.proc)


@pytest.mark.security
@needs_privileged
def test_policy_change_applies_live_in_the_same_namespace(lab: Lab, mgr: NetworkManager) -> None:
    net = mgr.ensure("web", NetworkPolicy(NetMode.FULL))
    ns = str(net.ns_name)
    inode = os.stat(str(net.netns_path())).st_ino
    _assert_routed_to_lab(lab, mgr, "web", BAD)
    client = Session(lab, ns)
    try:
        assert client.ask(f"open {BAD} 80")["ok"] is True
        assert client.ask("get")["ok"] is True
        # Tighten: the open connection to a destination no longer allowed is cut.
        filtered = NetworkPolicy(NetMode.FILTERED, allow=(AllowRule(f"{GOOD}/32", ports=(80,)),))
        assert mgr.ensure("web", filtered) is net
        assert os.stat(str(net.netns_path())).st_ino == inode  # same namespace
        assert client.ask("get")["ok"] is False
        assert client.ask(f"open {GOOD} 80")["ok"] is True
        assert client.ask("get")["ok"] is True
        # To none: the veth goes, nothing is reachable; back to full: reachable again,
        # for the same program.
        mgr.ensure("web", NetworkPolicy(NetMode.NONE))
        assert mgr.state()["web"]["effective"] == "none"
        assert client.ask(f"open {GOOD} 80")["ok"] is False
        mgr.ensure("web", NetworkPolicy(NetMode.FULL))
        _assert_routed_to_lab(lab, mgr, "web", BAD)
        assert client.ask(f"open {BAD} 80")["ok"] is True
        assert client.ask("get")["ok"] is True
        assert client.proc.poll() is None
    finally:
        client.close()


@needs_privileged
def test_dead_forwarder_is_reported_and_restarted(lab: Lab, mgr: NetworkManager) -> None:
    policy = NetworkPolicy(NetMode.FILTERED, allow=(AllowRule("good.zw.test", ports=(80,)),))
    net = mgr.ensure("web", policy)
    ns = str(net.ns_name)
    assert lab.probe(ns, "dns", "good.zw.test") == {"ok": True, "value": [GOOD]}
    pid = net.forwarder_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: net.forwarder_pid() is None, 10, "the forwarder to die")
    assert "not running" in str(mgr.state()["web"]["warning"])
    assert lab.probe(ns, "dns", "good.zw.test")["ok"] is False  # fails closed
    assert mgr.ensure("web", policy) is net  # what a launch does: revives it
    assert net.forwarder_pid() not in (None, pid)
    assert mgr.state()["web"]["warning"] is None
    assert lab.probe(ns, "dns", "good.zw.test") == {"ok": True, "value": [GOOD]}


@pytest.mark.security
@needs_privileged
def test_losing_the_uplink_never_falls_back_to_the_main_table(lab: Lab, tmp_path: Path) -> None:
    prefix = _run_prefix()
    uplink, far_ns = prefix + "up", prefix + "far"
    netns.create(far_ns)
    try:
        with IPRoute() as ip:
            ip.link("add", ifname=uplink, kind="veth", peer={"ifname": "eth0", "net_ns_fd": far_ns})
            idx = ip.link_lookup(ifname=uplink)[0]
            ip.addr("add", index=idx, address="198.51.100.249", prefixlen=30)
            ip.link("set", index=idx, state="up")
        with NetworkManager(
            prefix,
            uplink=uplink,
            uplink_gateway="198.51.100.250",
            upstream_dns=[DNS],
            state_dir=tmp_path,
        ) as m:
            net = m.ensure("web", NetworkPolicy(NetMode.FULL))
            assert net.plan is not None
            hop = ["ip", "-j", "route", "get", GOOD, "from", str(net.plan.peer), "iif"]
            routed = subprocess.run([*hop, str(net.host_if)], capture_output=True, check=True)
            assert json.loads(routed.stdout)[0]["dev"] == uplink
            with IPRoute() as ip:
                ip.link("del", index=ip.link_lookup(ifname=uplink)[0])
            gone = subprocess.run([*hop, str(net.host_if)], capture_output=True, check=False)
            # The unreachable default of our table answers, not main's default route.
            assert gone.returncode != 0 and b"no route to host" in gone.stderr.lower()
            assert lab.probe(str(net.ns_name), "http", GOOD, "80")["ok"] is False
    finally:
        with IPRoute() as ip:
            found = ip.link_lookup(ifname=uplink)
            if found:
                ip.link("del", index=found[0])
        netns.remove(far_ns)


def _leftovers(prefix: str, table: int) -> list[str]:
    found = [f"netns {n}" for n in os.listdir("/run/netns") if n.startswith(prefix + "-")]
    with IPRoute() as ip:
        for link in ip.get_links():
            if netpolicy.alias_owner(link.get("ifalias"), prefix) is not None:
                found.append(f"link {link.get('ifname')}")
    if _nft_table_exists(prefix):
        found.append(f"nft table {prefix}")
    found += [f"rule {r}" for r in _rules_for(table)]
    tag = netpolicy.veth_tag(prefix)
    rules = subprocess.run(["ip", "rule", "show"], capture_output=True, text=True, check=True)
    found += [f"rule {r}" for r in rules.stdout.splitlines() if f"iif {tag}" in r]
    if Path("/etc/netns").exists():
        found += [f"etc {n}" for n in os.listdir("/etc/netns") if n.startswith(prefix + "-")]
    return found


@needs_privileged
def test_teardown_leaves_nothing(lab: Lab) -> None:
    m = lab.manager()
    m.cleanup_stale()
    forwarding = f"net.ipv4.conf.{lab.uplink}.forwarding"
    before = Path("/proc/sys/net/ipv4/conf", lab.uplink, "forwarding").read_text()
    m.ensure("a", NetworkPolicy(NetMode.NONE))
    m.ensure("b", NetworkPolicy(NetMode.FULL))
    m.ensure("c", NetworkPolicy(NetMode.FILTERED, allow=(AllowRule("good.zw.test"),)))
    assert len(_leftovers(lab.prefix, m.route_table)) >= 6, "objects were not created"
    m.teardown("b")
    assert not _ns_exists(f"{lab.prefix}-b")
    assert _ns_exists(f"{lab.prefix}-c")
    m.close()
    assert _leftovers(lab.prefix, m.route_table) == []
    after = Path("/proc/sys/net/ipv4/conf", lab.uplink, "forwarding").read_text()
    assert after == before, forwarding


@needs_privileged
def test_shared_uplink_forwarding_is_restored_by_the_last_run_out(lab: Lab) -> None:
    knob = Path("/proc/sys/net/ipv4/conf", lab.uplink, "forwarding")
    with lab.manager() as probe_mgr:  # the lab's own prefix: ends with nothing up
        probe_mgr.cleanup_stale()
    assert knob.read_text().strip() == "0", "the lab uplink starts with forwarding off"
    first = lab.manager()
    second = NetworkManager(
        _run_prefix(),
        uplink=lab.uplink,
        uplink_gateway=lab.uplink_gw,
        upstream_dns=[DNS],
        state_dir=lab.tmp / "second",
    )
    try:
        first.ensure("a", NetworkPolicy(NetMode.FULL))
        assert knob.read_text().strip() == "1"
        b = second.ensure("b", NetworkPolicy(NetMode.FULL))
        first.close()
        assert knob.read_text().strip() == "1"  # the other run still routes through it
        assert lab.probe(str(b.ns_name), "http", GOOD, "80")["ok"] is True
        second.close()
        assert knob.read_text().strip() == "0"  # the last one out put it back
    finally:
        first.close()
        second.close()


KILLED_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from zionwm.isolation.network.manager import NetworkManager
    from zionwm.isolation.spec import AllowRule, DesktopSpec, NetMode, NetworkPolicy
    m = NetworkManager({prefix!r}, uplink={uplink!r}, uplink_gateway={gw!r},
                       upstream_dns=["{dns}"], state_dir=Path({state!r}))
    m.cleanup_stale()
    m.ensure("x", NetworkPolicy(NetMode.FULL))
    m.ensure("y", NetworkPolicy(NetMode.FILTERED, allow=(AllowRule("good.zw.test"),)))
    m.ensure("z", NetworkPolicy(NetMode.NONE))
    print("ready", flush=True)
    sys.stdin.read()
    """
)


@needs_privileged
def test_sigkill_then_cleanup_stale_leaves_nothing(lab: Lab) -> None:
    prefix = _run_prefix()  # its own prefix: the lab's must not be touched by this cleanup
    script = KILLED_CHILD.format(
        repo=str(REPO),
        prefix=prefix,
        uplink=lab.uplink,
        gw=lab.uplink_gw,
        dns=DNS,
        state=str(lab.tmp / "killed-state"),
    )
    child = subprocess.Popen(
        [PY, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    survivor = lab.manager()
    try:
        survivor.ensure("keep", NetworkPolicy(NetMode.FULL))
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGKILL)
        child.wait()
        m = NetworkManager(
            prefix,
            uplink=lab.uplink,
            uplink_gateway=lab.uplink_gw,
            upstream_dns=[DNS],
            state_dir=lab.tmp / "killed-state",
        )
        stale = _leftovers(prefix, m.route_table)
        assert any(s.startswith("netns") for s in stale) and any("link" in s for s in stale)
        assert f"nft table {prefix}" in stale
        # The forwarders died with their parent (PDEATHSIG), freeing their port.
        wait_for(lambda: not _procs_mentioning(prefix), 10, "forwarders to exit")
        removed = m.cleanup_stale()
        assert removed
        assert _leftovers(prefix, m.route_table) == []
        # Another run's objects are untouched.
        keep = survivor.get("keep")
        assert keep is not None and _ns_exists(str(keep.ns_name))
        assert _link_exists(str(keep.host_if)) and _nft_table_exists(lab.prefix)
        assert lab.probe(str(keep.ns_name), "http", GOOD, "80")["ok"] is True
    finally:
        _stop(child)
        survivor.close()
        NetworkManager(prefix, uplink=lab.uplink, state_dir=lab.tmp / "k2").cleanup_stale()


@needs_privileged
def test_cleanup_at_start_sees_a_killed_runs_leftovers_without_netlink(lab: Lab) -> None:
    """A run's start finds what a SIGKILLed run of its prefix left (namespace, link, nft
    table) and removes it at once, as `cleanup_stale` does."""
    prefix = _run_prefix()
    script = KILLED_CHILD.format(
        repo=str(REPO),
        prefix=prefix,
        uplink=lab.uplink,
        gw=lab.uplink_gw,
        dns=DNS,
        state=str(lab.tmp / "killed-start"),
    )
    child = subprocess.Popen(
        [PY, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGKILL)
        child.wait()
        m = NetworkManager(
            prefix, uplink=lab.uplink, uplink_gateway=lab.uplink_gw, upstream_dns=[DNS]
        )
        assert _leftovers(prefix, m.route_table)
        wait_for(lambda: not _procs_mentioning(prefix), 10, "forwarders to exit")
        assert m.cleanup_stale_at_start()
        assert _leftovers(prefix, m.route_table) == []
    finally:
        _stop(child)
        NetworkManager(prefix, uplink=lab.uplink, state_dir=lab.tmp / "k3").cleanup_stale()


NO_NETLINK_CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {repo!r})
    from pathlib import Path
    from zionwm.isolation.network.manager import NetworkManager
    from zionwm.isolation.spec import NetMode, NetworkPolicy

    def ops():
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = Path(f"/proc/{{pid}}/stat").read_text()
                cmd = Path(f"/proc/{{pid}}/cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == os.getpid() and b"zionwm.isolation.network.opsd" in cmd:
                found.append(pid)
        return len(found)

    m = NetworkManager({prefix!r}, uplink={uplink!r}, uplink_gateway={gw!r},
                       upstream_dns=[{dns!r}], state_dir=Path({state!r}))
    print(m.cleanup_stale_at_start(), "pyroute2" in sys.modules, ops())
    m.ensure("web", NetworkPolicy(NetMode.FULL))
    print("pyroute2" in sys.modules, "_sqlite3" in sys.modules, ops(), m.get("web").ns_name)
    m.close()
    print(ops())
    """
)


@needs_privileged
def test_a_run_without_desktop_networks_never_loads_pyroute2(lab: Lab) -> None:
    """Nothing left over: the start needs no netlink (no pyroute2, no network-ops process);
    the first desktop network starts the ops process, which alone loads pyroute2 (about
    17 MiB, with asyncio, ssl and sqlite3), is built as before, and the ops process ends
    with the manager's close."""
    prefix = _run_prefix()
    script = NO_NETLINK_CHILD.format(
        repo=str(REPO),
        prefix=prefix,
        uplink=lab.uplink,
        gw=lab.uplink_gw,
        dns=DNS,
        state=str(lab.tmp / "lazy-state"),
    )
    try:
        out = subprocess.run(
            [PY, "-c", script], capture_output=True, text=True, timeout=120, check=True
        ).stdout.splitlines()
        assert out[0] == "[] False 0", out
        pyroute2, sqlite, ops, ns = out[1].split()
        assert (pyroute2, sqlite, ops) == ("False", "False", "1"), out
        assert ns.startswith(prefix + "-"), out
        assert out[2] == "0", out
        assert _leftovers(prefix, NetworkManager(prefix).route_table) == []
    finally:
        NetworkManager(prefix, uplink=lab.uplink, state_dir=lab.tmp / "k4").cleanup_stale()


def _procs_mentioning(text: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path("/proc", pid, "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmd and b"dnsfilter" in cmd:
            out.append(int(pid))
    return out


@needs_privileged
def test_allocation_avoids_host_routes(lab: Lab, mgr: NetworkManager) -> None:
    a = mgr.ensure("a", NetworkPolicy(NetMode.FULL))
    b = mgr.ensure("b", NetworkPolicy(NetMode.FULL))
    assert a.plan is not None and b.plan is not None
    assert not a.plan.subnet.overlaps(b.plan.subnet)
    uplink_net = ipaddress.IPv4Network(f"{lab.uplink_gw}/30", strict=False)
    assert not a.plan.subnet.overlaps(uplink_net)


@pytest.mark.security
@needs_privileged
def test_sandbox_from_the_real_launcher_joins_the_desktop_network(
    lab: Lab, mgr: NetworkManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zionwm.isolation import launcher as launcher_mod

    if shutil.which("bwrap") is None:
        pytest.skip("needs bwrap (Debian package bubblewrap)")
    for var in ("XDG_RUNTIME_DIR", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        d = tmp_path / var.lower()
        d.mkdir(mode=0o700)
        monkeypatch.setenv(var, str(d))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    policy = NetworkPolicy(
        NetMode.FILTERED,
        allow=(AllowRule("good.zw.test", ports=(80,)), AllowRule(CIDR_HOST, ports=(8080,))),
    )
    net = mgr.ensure("web", policy)
    _assert_routed_to_lab(lab, mgr, "web", GOOD)
    _assert_routed_to_lab(lab, mgr, "web", CIDR_HOST)
    spec = DesktopSpec(name="web", colour=(1.0, 0.0, 0.0, 1.0), network=policy)
    launcher = launcher_mod.Launcher(netns_path=mgr.netns_path)
    commands = tmp_path / "commands"
    commands.write_text(
        "\n".join(
            [
                f"http {CIDR_HOST} 8080",
                f"http {BAD} 80",
                f"http {GOOD} 80",
                "dnsat 203.0.113.53 evil.test",
                "dnsat 203.0.113.53 good.zw.test",
                f"http {GOOD} 80",
            ]
        )
        + "\n"
    )
    out = tmp_path / "out"
    with open(commands, "rb") as cin, open(out, "wb") as cout:
        sandbox = launcher.launch(
            spec,
            ["python3", "-c", PROBE, "session"],
            stdin=cin.fileno(),
            stdout=cout.fileno(),
        )
        assert sandbox.wait(timeout=30) == 0
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["ok"] for r in results] == [True, False, False, True, True, True], results
    assert results[3]["value"] == [3, 0, []]
    assert results[4]["value"] == [0, 1, [GOOD]]
    assert net.netns_path() is not None


# ---------------------------------------------------------------------------------------------
# The unprivileged path. pasta is told to bind its outbound sockets to 127.0.0.1: the test
# traffic reaches only the host's own addresses (loopback, or a veth the test adds).

PASTA_GW = "203.0.113.1"
PASTA_TEST_ARGS = ["-a", "203.0.113.2", "-n", "24", "-g", PASTA_GW, "--outbound", "127.0.0.1"]


def _pasta_manager(tmp_path: Path) -> NetworkManager:
    # As root pasta would switch to "nobody", which cannot open a root-owned namespace; a
    # real unprivileged user runs it as itself. Everything else is the unprivileged code.
    runas = ["--runas", "0"] if os.geteuid() == 0 else []
    return NetworkManager(
        _run_prefix(),
        privileged=False,
        state_dir=tmp_path / "state",
        pasta_args=[*runas, *PASTA_TEST_ARGS],
    )


@pytest.mark.security
def test_unprivileged_none_and_filtered_fail_closed(tmp_path: Path) -> None:
    with NetworkManager(_run_prefix(), privileged=False, state_dir=tmp_path) as m:
        none = m.ensure("a", NetworkPolicy(NetMode.NONE))
        assert none.netns_path() is None and none.backend == "bwrap-unshare"
        filtered = m.ensure(
            "b", NetworkPolicy(NetMode.FILTERED, allow=(AllowRule("good.zw.test"),))
        )
        assert filtered.netns_path() is None  # the sandbox gets an empty namespace
        state = m.state()["b"]
        assert state["policy"] == "filtered" and state["effective"] == "none"
        assert "fail closed" in str(state["warning"])


@pytest.mark.security
@needs_pasta
def test_unprivileged_full_through_pasta(tmp_path: Path) -> None:
    """Through pasta a desktop reaches what the host reaches (here an address on a veth of
    the test's own), never the host's loopback through the gateway address; off and on."""

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"hi")

        def log_message(self, *args: object) -> None:
            pass

    tag = _run_prefix()
    addr = f"198.51.100.{100 + secrets.randbelow(100)}"
    with IPRoute() as ip:
        ip.link("add", ifname=tag + "h", kind="veth", peer={"ifname": tag + "p"})
        idx = ip.link_lookup(ifname=tag + "h")[0]
        ip.addr("add", index=idx, address=addr, prefixlen=32)
        ip.link("set", index=idx, state="up")
    servers = [http.server.HTTPServer((a, 0), Hello) for a in (addr, "127.0.0.1")]
    threads = [threading.Thread(target=srv.serve_forever, daemon=True) for srv in servers]
    for t in threads:
        t.start()
    port, lo_port = (str(srv.server_address[1]) for srv in servers)
    probe_py = tmp_path / "probe.py"
    probe_py.write_text(PROBE)
    m = _pasta_manager(tmp_path)
    try:
        net = m.ensure("web", NetworkPolicy(NetMode.FULL))
        assert net.backend == "pasta" and net.effective is NetMode.FULL
        pre = net.nsenter_prefix()
        route = subprocess.run(
            [*pre, "ip", "-j", "route", "show", "default"], capture_output=True, check=True
        )
        assert json.loads(route.stdout)[0]["gateway"] == PASTA_GW  # checked before sending

        def get(host: str, p: str) -> dict[str, object]:
            res = subprocess.run(
                [*pre, PY, str(probe_py), "http", host, p],
                capture_output=True,
                check=True,
                timeout=20,
            )
            return json.loads(res.stdout)

        assert get(addr, port) == {"ok": True, "value": "hi"}
        assert get(PASTA_GW, lo_port)["ok"] is False  # the host's loopback is not mapped
        m.set_enabled("web", False)
        assert get(addr, port)["ok"] is False
        m.set_enabled("web", True)
        assert get(addr, port) == {"ok": True, "value": "hi"}
        pids = [p.pid for p in (net._holder, net._pasta) if p is not None]
        assert len(pids) == 2
    finally:
        m.close()
        for srv in servers:
            srv.shutdown()
            srv.server_close()
        with IPRoute() as ip:
            found = ip.link_lookup(ifname=tag + "h")
            if found:
                ip.link("del", index=found[0])
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()


# ---------------------------------------------------------------------------------------------
# Attacks from inside: a program started with `zionctl launch` in a real sandbox of a real
# desktop of a running compositor. It writes what it reached into its own home, which the
# test reads from outside.

ATTACKER = textwrap.dedent(
    r"""
    import json, os, socket, sys, time
    HOME = os.path.expanduser("~")

    def attempt(p):
        kind, host, port = p[0], p[1], int(p[2])
        expect = p[3].encode() if len(p) > 3 else b""
        try:
            if kind in ("tcp", "tcp6", "http"):
                fam = socket.AF_INET6 if kind == "tcp6" else socket.AF_INET
                s = socket.socket(fam, socket.SOCK_STREAM)
                s.settimeout(3)
                s.connect((host, port))
                if kind == "http":
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while expect not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                s.close()
            else:
                fam = socket.AF_INET6 if kind == "udp6" else socket.AF_INET
                s = socket.socket(fam, socket.SOCK_DGRAM)
                s.settimeout(2)
                s.sendto(b"ping", (host, port))
                data = s.recvfrom(4096)[0]
            return {"probe": p, "ok": expect in data, "got": data[:80].decode(errors="replace")}
        except Exception as exc:
            return {"probe": p, "ok": False, "error": type(exc).__name__ + ": " + str(exc)}

    def phase():
        try:
            with open(os.path.join(HOME, "phase")) as fh:
                return fh.read().strip()
        except OSError:
            return ""

    mode, name, probes = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if mode == "once":
        out = [attempt(p) for p in probes]
        with open(os.path.join(HOME, name + ".tmp"), "w") as fh:
            json.dump(out, fh)
        os.rename(os.path.join(HOME, name + ".tmp"), os.path.join(HOME, name))
    else:
        with open(os.path.join(HOME, name), "a") as fh:
            while True:
                tag = phase()
                for p in probes:
                    fh.write(json.dumps({"phase": tag, **attempt(p)}) + "\n")
                fh.flush()
                time.sleep(0.1)
    """
)


def _home(comp: Any, desktop: str) -> Path:
    return comp.data / "zionwm" / "desktops" / desktop / "home"


def _attack_once(comp: Any, desktop: str, probes: list[list[object]], name: str) -> list[Any]:
    """Run the probes in a new sandbox of `desktop`; one result per probe."""
    out = _home(comp, desktop) / name
    out.unlink(missing_ok=True)
    comp.zionctl(
        "launch", desktop, "--", "python3", "-c", ATTACKER, "once", name, json.dumps(probes)
    )
    wait_for(out.exists, 60, f"{name} from {desktop}")
    return list(json.loads(out.read_text()))


class _Loop:
    """A long-running attacker in a desktop: keeps trying its probes, tagged by phase."""

    def __init__(self, comp: Any, desktop: str, probes: list[list[object]], name: str) -> None:
        self.comp, self.home, self.name = comp, _home(comp, desktop), name
        self.set_phase("start")
        comp.zionctl(
            "launch", desktop, "--", "python3", "-c", ATTACKER, "loop", name, json.dumps(probes)
        )

    def set_phase(self, tag: str) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.home / "phase.tmp"
        tmp.write_text(tag)
        tmp.replace(self.home / "phase")

    def results(self, tag: str) -> list[dict[str, Any]]:
        path = self.home / self.name
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        out = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line being written
            if rec["phase"] == tag:
                out.append(rec)
        return out

    def wait(self, tag: str, n: int = 3) -> dict[str, list[bool]]:
        """At least `n` rounds of every probe begun in phase `tag`: outcomes per target."""

        def enough() -> dict[str, list[bool]] | None:
            by: dict[str, list[bool]] = {}
            for rec in self.results(tag):
                by.setdefault(f"{rec['probe'][1]}:{rec['probe'][2]}", []).append(rec["ok"])
            return by if by and min(len(v) for v in by.values()) >= n else None

        return wait_for(enough, 60, f"{n} rounds of probes in phase {tag}", interval=0.1)


def _lab_env(lab: Lab) -> dict[str, str]:
    return {
        "ZIONWM_NET_UPLINK": f"{lab.uplink}@{lab.uplink_gw}",
        "ZIONWM_NET_DNS": DNS,
        "ZIONWM_NO_QUARANTINE": "1",
    }


def _web_config(network: str) -> str:
    return textwrap.dedent(
        f"""
        from zionwm.config import Allow, Network, desktop
        desktop("web", colour="#ef4444", network={network})
        desktop("work", colour="#22c55e")
        """
    )


def _reload(comp: Any, network: str) -> None:
    assert comp.config_path is not None
    comp.config_path.write_text(_web_config(network))
    comp.zionctl("reload")


@pytest.mark.security
@needs_privileged
def test_reload_tightens_the_network_of_running_programs_at_once(lab: Lab, tmp_path: Path) -> None:
    """A program in `web` keeps trying GOOD and BAD; each reload's policy holds for its
    very next attempts, `net off` survives a policy change, and a program started after
    `none` has no network at all."""
    from tests.harness import Compositor

    lab.set_zone({"good.zw.test": (GOOD, 300), "bad.zw.test": (BAD, 300)})
    comp = Compositor(tmp_path, _web_config("Network.full()"), extra_env=_lab_env(lab)).start()
    try:
        probes: list[list[object]] = [["http", GOOD, 80, "hello"], ["http", BAD, 80, "hello"]]
        loop = _Loop(comp, "web", probes, "loop.jsonl")
        start = loop.wait("start")
        assert all(start[f"{GOOD}:80"]) and all(start[f"{BAD}:80"]), start

        _reload(comp, f'Network.filtered([Allow("{GOOD}", ports=[80])])')
        loop.set_phase("narrow")
        narrow = loop.wait("narrow")
        assert all(narrow[f"{GOOD}:80"]), narrow
        assert not any(narrow[f"{BAD}:80"]), narrow

        _reload(comp, "Network.none()")
        loop.set_phase("none")
        none = loop.wait("none")
        assert not any(none[f"{GOOD}:80"]) and not any(none[f"{BAD}:80"]), none
        fresh = _attack_once(comp, "web", probes, "after-none.json")
        assert not any(r["ok"] for r in fresh), fresh

        _reload(comp, "Network.full()")
        loop.set_phase("full-again")
        again = loop.wait("full-again")
        assert all(again[f"{GOOD}:80"][-2:]), again  # back, for the same running program

        comp.zionctl("net", "web", "off")
        loop.set_phase("off")
        assert not any(loop.wait("off")[f"{GOOD}:80"])
        _reload(comp, f'Network.filtered([Allow("{GOOD}", ports=[80])])')
        loop.set_phase("off-changed")
        changed = loop.wait("off-changed")
        assert not any(changed[f"{GOOD}:80"]), changed  # the change kept it off
        fresh = _attack_once(comp, "web", probes, "after-off.json")
        assert not any(r["ok"] for r in fresh), fresh
        assert comp.zjson("desktops")  # still serving
    finally:
        comp.stop()


def _attacker_pids(name: str) -> list[int]:
    """The attacker itself (bwrap's own command line names it too)."""
    from tests.harness import processes_with

    return [
        pid
        for pid in processes_with(name, "loop")
        if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"python3\0")
    ]


def _cgroup_dirs_of(pid: int) -> list[str]:
    return [ln.split(":", 2)[2] for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]


@pytest.mark.security
@needs_privileged
def test_two_compositors_with_a_desktop_of_the_same_name_keep_their_own_objects(
    lab: Lab, tmp_path: Path
) -> None:
    """Two instances (as two sessions of one machine run them: no ZIONWM_INSTANCE), both
    with a desktop `web` on the network: both work, the second one's start and stop leave
    the first one's namespace, veth, rules and cgroup alone."""
    from tests.harness import Compositor

    def start(name: str) -> Compositor:
        comp = Compositor(tmp_path / name, _web_config("Network.full()"), extra_env=_lab_env(lab))
        comp.env.pop("ZIONWM_INSTANCE")
        return comp.start()

    probes: list[list[object]] = [["http", GOOD, 80, "hello"]]
    a = start("a")
    b: Any = None
    try:
        loop_a = _Loop(a, "web", probes, "a.jsonl")
        assert all(loop_a.wait("start")[f"{GOOD}:80"])
        b = start("b")
        loop_b = _Loop(b, "web", probes, "b.jsonl")
        assert all(loop_b.wait("start")[f"{GOOD}:80"])
        loop_a.set_phase("both")
        assert all(loop_a.wait("both")[f"{GOOD}:80"])

        ia, ib = a.zjson("status")["instance"], b.zjson("status")["instance"]
        assert ia["net_prefix"] != ib["net_prefix"], (ia, ib)
        assert ia["cgroup_root"] != ib["cgroup_root"], (ia, ib)
        ns_a = Path("/run/netns") / f"{ia['net_prefix']}-web"
        assert ns_a.exists() and (Path("/run/netns") / f"{ib['net_prefix']}-web").exists()
        (pid_a,) = _attacker_pids("a.jsonl")
        (pid_b,) = _attacker_pids("b.jsonl")
        assert os.readlink(f"/proc/{pid_a}/ns/net") != os.readlink(f"/proc/{pid_b}/ns/net")
        web_a = [p for p in _cgroup_dirs_of(pid_a) if f"/{ia['cgroup_root']}/web" in p]
        assert web_a, _cgroup_dirs_of(pid_a)
        assert not [p for p in _cgroup_dirs_of(pid_b) if f"/{ia['cgroup_root']}/" in p]

        b.stop()
        b = None
        loop_a.set_phase("after-b")
        assert all(loop_a.wait("after-b")[f"{GOOD}:80"])
        assert ns_a.exists()
        assert _nft_table_exists(ia["net_prefix"])
        assert _cgroup_dirs_of(pid_a) == _cgroup_dirs_of(pid_a)  # still alive, same groups
        assert [p for p in _cgroup_dirs_of(pid_a) if f"/{ia['cgroup_root']}/web" in p] == web_a
        fresh = _attack_once(a, "web", probes, "fresh.json")
        assert fresh[0]["ok"], fresh  # new programs still join a working namespace
    finally:
        if b is not None:
            b.stop()
        a.stop()


@pytest.mark.security
@needs_privileged
def test_a_desktop_cannot_reach_the_sessions_vnc_server(lab: Lab, tmp_path: Path) -> None:
    """`zionwm --headless --vnc 127.0.0.1:PORT` (a headless `make run`): another local
    account is turned away, and a program in a desktop with full network tries the host
    through its gateway and its own loopback."""
    from tests.harness import Compositor, require

    require("wayvnc")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    comp = Compositor(
        tmp_path,
        _web_config("Network.full()"),
        extra_env=_lab_env(lab),
        args=("--vnc", f"127.0.0.1:{port}"),
    ).start()
    try:
        banner = wait_for(
            lambda: socket.create_connection(("127.0.0.1", port), timeout=2).recv(12),
            30,
            "wayvnc to serve on loopback",
        )
        assert banner.startswith(b"RFB "), banner  # the session's own user (root here)
        other = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
             "/usr/bin/python3", "-c", "import socket, sys; s = socket.create_connection("
             "('127.0.0.1', int(sys.argv[1])), 5); s.settimeout(5); print(s.recv(12))",
             str(port)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert other.stdout.strip() == "b''", other  # another local account: turned away
        first = _attack_once(comp, "web", [["http", GOOD, 80, "hello"]], "net.json")
        assert first[0]["ok"], first  # the desktop does have a network
        gateway = comp.desktops()["web"]["net"]["gateway"]
        assert gateway
        probes: list[list[object]] = [
            ["tcp", gateway, port, "RFB"],
            ["tcp", "127.0.0.1", port, "RFB"],
            ["tcp6", "::1", port, "RFB"],
            ["tcp", lab.uplink_gw, port, "RFB"],
        ]
        # Host services on every address and on loopback, TCP and UDP, through the gateway.
        services = _host_services()
        probes += [
            ["tcp", gateway, services.tcp_any, "HOST"],
            ["tcp", gateway, services.tcp_lo, "HOST"],
            ["udp", gateway, services.udp_any, "HOST"],
            ["udp", gateway, services.udp_lo, "HOST"],
        ]
        got = _attack_once(comp, "web", probes, "vnc.json")
        services.close()
        assert not any(r["ok"] for r in got), got
    finally:
        comp.stop()


@dataclass
class _HostServices:
    tcp_any: int
    tcp_lo: int
    udp_any: int
    udp_lo: int
    socks: list[socket.socket]

    def close(self) -> None:
        for s in self.socks:
            s.close()


def _host_services() -> _HostServices:
    """Listeners on the host answering "HOST": TCP and UDP, on every address and on
    loopback (what CUPS, a database or a development server look like)."""
    socks: list[socket.socket] = []
    ports: list[int] = []
    for kind, addr in (("tcp", "0.0.0.0"), ("tcp", "127.0.0.1"), ("udp", "0.0.0.0"),
                       ("udp", "127.0.0.1")):  # fmt: skip
        s = socket.socket(
            socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
        )
        s.bind((addr, 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
        if kind == "tcp":
            s.listen(8)

            def serve_tcp(ls: socket.socket = s) -> None:
                while True:
                    try:
                        c, _ = ls.accept()
                    except OSError:
                        return
                    with c:
                        c.sendall(b"HOST\n")

            threading.Thread(target=serve_tcp, daemon=True).start()
        else:

            def serve_udp(us: socket.socket = s) -> None:
                while True:
                    try:
                        _, peer = us.recvfrom(2048)
                        us.sendto(b"HOST", peer)
                    except OSError:
                        return

            threading.Thread(target=serve_udp, daemon=True).start()
    return _HostServices(ports[0], ports[1], ports[2], ports[3], socks)


@pytest.mark.security
def test_vnc_without_authentication_is_refused_off_loopback(tmp_path: Path) -> None:
    from tests.harness import VENV_BIN
    from zionwm.cli import vnc_refusal

    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(run),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "WLR_BACKENDS": "headless",
        "WLR_RENDERER": "pixman",
    }
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run(
        [str(VENV_BIN / "zionwm"), "--headless", "--vnc", f"0.0.0.0:{port}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "refusing to serve the session without authentication" in done.stderr
    with pytest.raises(ConnectionRefusedError):  # nothing was started on that port
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert vnc_refusal("127.0.0.1", None) is None
    assert vnc_refusal("::1", None) is None
    assert vnc_refusal("192.0.2.7", "enable_auth=false\npassword=x\n") is not None
    assert vnc_refusal("192.0.2.7", "enable_auth=true\nusername=u\npassword=p\n") is None


LISTENER = textwrap.dedent(
    r"""
    import os, socket, sys, threading
    port, home = int(sys.argv[1]), os.path.expanduser("~")
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("0.0.0.0", port))
    t.listen(8)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", port))
    def udp():
        while True:
            _, peer = u.recvfrom(2048)
            u.sendto(b"DESK", peer)
    threading.Thread(target=udp, daemon=True).start()
    open(os.path.join(home, "listening"), "w").close()
    while True:
        c, _ = t.accept()
        c.sendall(b"DESK\n")
        c.close()
    """
)


def _listen_in(comp: Any, desktop: str, port: int) -> None:
    """A program of `desktop` serving TCP and UDP on every address of its namespace."""
    ready = _home(comp, desktop) / "listening"
    ready.unlink(missing_ok=True)
    comp.zionctl("launch", desktop, "--", "python3", "-c", LISTENER, str(port))
    wait_for(ready.exists, 60, f"the listener in {desktop}")


@pytest.mark.security
@needs_privileged
def test_a_desktop_cannot_reach_another_desktops_programs(lab: Lab, tmp_path: Path) -> None:
    from tests.harness import Compositor

    config = textwrap.dedent(
        """
        from zionwm.config import Network, desktop
        desktop("web", colour="#ef4444", network=Network.full())
        desktop("work", colour="#22c55e", network=Network.full())
        """
    )
    port = 20000 + secrets.randbelow(20000)
    comp = Compositor(tmp_path, config, extra_env=_lab_env(lab)).start()
    try:
        _listen_in(comp, "work", port)
        own = _attack_once(comp, "work", [["tcp", "127.0.0.1", port, "DESK"]], "own.json")
        assert own[0]["ok"], own  # the listener answers inside its own desktop
        work = comp.desktops()["work"]["net"]
        first = _attack_once(comp, "web", [["http", GOOD, 80, "hello"]], "net.json")
        assert first[0]["ok"], first  # web does have a network
        web = comp.desktops()["web"]["net"]
        work_addr = str(work["address"]).split("/")[0]
        probes: list[list[object]] = [
            ["tcp", work_addr, port, "DESK"],
            ["udp", work_addr, port, "DESK"],
            ["tcp", str(work["gateway"]), port, "DESK"],
            ["tcp", str(web["gateway"]), port, "DESK"],
            ["tcp", "127.0.0.1", port, "DESK"],
        ]
        got = _attack_once(comp, "web", probes, "desk.json")
        assert not any(r["ok"] for r in got), got
    finally:
        comp.stop()
