"""The manager's side of a desktop's DNS forwarder: its sockets, bound here and inherited by
the child (`dnshelper`), the child's start, and the host's own resolvers.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from zionwm.isolation.network.children import die_with
from zionwm.isolation.network.model import DesktopNet
from zionwm.isolation.network.nsutil import in_netns

log = logging.getLogger(__name__)


def dns_sockets(addr: str) -> tuple[socket.socket, socket.socket]:
    """UDP and listening TCP sockets on addr:53, in the calling thread's namespace."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        for s in (udp, tcp):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, 53))
        tcp.listen(16)
    except OSError:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


def host_nameservers(resolv: Path = Path("/etc/resolv.conf")) -> list[str]:
    try:
        lines = resolv.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                if ipaddress.ip_address(parts[1]).version == 4:
                    out.append(parts[1])
            except ValueError:
                continue
    return out


def start_forwarder(
    net: DesktopNet,
    *,
    upstreams: Sequence[str],
    loopback_dns: Sequence[str],
    prefix: str,
    nft: str,
    min_ttl: int,
    source: str | None,
    refusal_fd: int | None = None,
) -> None:
    """Start the desktop's DNS forwarder (`dnshelper`, a child process) on the host side of
    its veth, and on `loopback_dns` inside its namespace; a warning on `net` when there is
    no upstream resolver."""
    assert net.plan is not None
    if not upstreams:
        net.warning = "no upstream DNS server: names do not resolve in this desktop"
        log.warning("desktop %s: %s", net.desktop, net.warning)
        return
    # Bound here, inherited by the child: no waiting for its interpreter to start.
    sock, tcp = dns_sockets(str(net.plan.host))
    # Programs reading the host's resolv.conf ask a host-local resolver (systemd-resolved's
    # 127.0.0.53): the same forwarder answers there too, inside the desktop's namespace.
    inside: list[tuple[socket.socket, socket.socket]] = []
    assert net._ns_path is not None
    for addr in loopback_dns:
        try:
            inside.append(in_netns(net._ns_path, functools.partial(dns_sockets, addr)))
        except OSError as exc:
            log.warning("desktop %s: no DNS listener on %s: %s", net.desktop, addr, exc)
    extra = [s for pair in inside for s in pair]
    cfg = {
        "fd": sock.fileno(),
        "tcp_fd": tcp.fileno(),
        "extra_udp_fds": [u.fileno() for u, _ in inside],
        "extra_tcp_fds": [t.fileno() for _, t in inside],
        "upstreams": [[u, 53] for u in upstreams],
        "mode": net.policy.mode.value,
        "allow": [
            {"host": r.host, "ports": list(r.ports), "proto": r.proto} for r in net.policy.allow
        ],
        "prefix": prefix,
        "desktop": net.desktop,
        "nft": nft,
        "min_ttl": min_ttl,
        "source": source,
    }
    reporting: tuple[int, ...] = ()
    if refusal_fd is not None:  # refused names are told to the compositor
        cfg["refusal_fd"] = refusal_fd
        reporting = (refusal_fd,)
    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
    try:
        net._forwarder = subprocess.Popen(
            [sys.executable, "-m", "zionwm.isolation.network.dnshelper", json.dumps(cfg)],
            stdin=subprocess.DEVNULL,
            env=env,
            pass_fds=tuple(s.fileno() for s in (sock, tcp, *extra)) + reporting,
            preexec_fn=functools.partial(die_with, os.getpid()),  # noqa: PLW1509 (prctl only)
        )
    finally:
        for s in (sock, tcp, *extra):
            s.close()
