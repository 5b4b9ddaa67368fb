"""The DNS forwarder's child process: ``python -m zionwm.isolation.network.dnshelper
CONFIG_JSON``, started by the manager (`forwarder.start_forwarder`).

Started as root (it needs its sockets on port 53 and nft to open the firewall), the process
splits in two: the side that parses DNS (`dnsfilter.DnsForwarder`) runs as "nobody" with no
capabilities (no_new_privs), and a root helper only accepts strictly checked "open these
IPv4 addresses for these rules" requests from it (`parse_learn_request`) and runs nft.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import logging
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from zionwm.isolation.network import policy as netpolicy
from zionwm.isolation.network.dnsfilter import Decide, DnsForwarder, Learn
from zionwm.isolation.spec import AllowRule, NetMode, NetworkPolicy

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38


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


def _refusal_reporter(fd: object, desktop: str) -> Callable[[str], None] | None:
    """One datagram per refused name into the compositor's socket; never waits (a full
    queue drops the report: the name is refused all the same)."""
    if not isinstance(fd, int):
        return None
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)

    def report(name: str) -> None:
        # the compositor knows the desktop from the socket; the name is for logs
        msg = {"desktop": desktop, "kind": "host", "what": name[:300]}
        with contextlib.suppress(OSError):
            sock.send(json.dumps(msg).encode())

    return report


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
