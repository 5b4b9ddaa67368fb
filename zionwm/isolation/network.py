"""Per-desktop network namespaces and their policies: none, full, filtered.

Owns every kernel object a desktop's network needs, and their removal:

- **Privileged path** (root, with the ``nft`` command):
  one named namespace per desktop, ``/run/netns/<prefix>-<desktop>``, created with pyroute2
  and shared by all the desktop's sandboxes (the launcher setns()es into `netns_path()`
  before starting bwrap). `none` leaves it with only ``lo`` up. `full` and `filtered` add a
  veth pair (host side ``zw-<desktop>``, namespace side ``eth0``) on a /30 allocated from a
  private pool clear of every host route, a default route via the host side, and host-side
  forwarding + masquerade in the ``inet <prefix>`` nftables table. `filtered` adds an
  allow-list (nft rules and per-rule address sets, default reject) and a DNS forwarder
  (`zionwm.isolation.dnsfilter`, a child process) on the host side of the veth that
  answers allowed names only and adds their addresses to the sets with the record's TTL.
  `full` desktops get the same forwarder without the filter, so name resolution works even
  when the host's resolver listens on its own loopback.
- **Unprivileged path**: `none` is bwrap's own ``--unshare-net`` (`netns_path()` is None);
  `full` is a user+network namespace held by a small process with ``pasta`` (Debian's passt)
  attached to it; the launcher must enter `userns_path()` before `netns_path()` (setns into
  a namespace owned by a child user namespace needs that; `nsenter_prefix()` shows the
  equivalent command). pasta maps nothing to the host's loopback (``--no-map-gw``) and
  forwards nothing inbound. `block_lan` and `off` are an nftables table inside the
  desktop's namespace, written as root of its user namespace (the sandboxes, in user
  namespaces nested below, cannot change it); without ``nft`` `block_lan` fails closed.
  `filtered` cannot be enforced without nftables on the host side, so it fails closed to
  `none`, says so in `state()` and logs a warning; it never falls back to `full`.

Why the ``nft`` command rather than pyroute2's nftables module: pyroute2's module builds raw
netlink expressions one by one (no parser, no sets/maps helpers worth the name), while
``nft -f`` applies a readable ruleset text as one atomic transaction. The text comes from
the pure `netpolicy` module, where it is unit-tested; only this file runs it.

Live control: `set_enabled(desktop, False)` rewrites the desktop's chains to reject
everything (TCP reset, so an open connection's next request fails at once) and
`set_enabled(..., True)` restores them; programs keep running either way. `ensure()` with a
new policy applies it at once in the same namespace, on both paths: running programs get
the new policy (connections it does not allow are cut), a desktop switched off stays off,
and a change that fails half-way leaves the desktop cut, never on the old policy.

Everything created carries the manager's *prefix* (namespace names, the nft table, the
veths' names and ifalias, the policy-routing table number), so `cleanup_stale()` removes what
a crashed run with the same prefix left and never touches another run's objects; the
compositor's prefix is per user and per instance (`zionwm.isolation.instance`).

Root-only operations live in `_RootOps`, a narrow set of verbs; nothing else here touches
the kernel's network configuration.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import ipaddress
import json
import logging
import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from zionwm import paths
from zionwm.isolation import netpolicy
from zionwm.isolation.netpolicy import AddressPlan, DesktopRules
from zionwm.isolation.spec import NetMode, NetworkPolicy

log = logging.getLogger(__name__)

NETNS_DIR = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")
ALLOC_LOCK = Path("/run/lock/zionwm-net.lock")
# Host-wide (all runs): the values sysctls had before any zionwm changed them. The last run
# whose desktops need a setting puts it back. /run is emptied at boot, like the sysctls.
SYSCTL_RECORD = Path("/run/zionwm-net/sysctl-originals.json")
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
RULE_PRIORITY = 100  # policy rules sending desktops' traffic to the uplink table
_T = TypeVar("_T")


# ---------------------------------------------------------------------------------------------
# What this machine can do


@dataclass(frozen=True)
class Capabilities:
    root: bool
    nft: str | None
    pasta: str | None
    nsenter: str | None
    netns_dir_writable: bool

    @property
    def privileged(self) -> bool:
        """Named namespaces, veths and nftables: the path that supports every mode."""
        return self.root and self.nft is not None and self.netns_dir_writable

    @property
    def unprivileged_full(self) -> bool:
        return self.pasta is not None and self.nsenter is not None

    def describe(self) -> str:
        if self.privileged:
            return "privileged: netns + veth + nftables (none/full/filtered)"
        parts = ["unprivileged: none via bwrap --unshare-net"]
        parts.append("full via pasta" if self.unprivileged_full else "no pasta: full unavailable")
        parts.append("filtered unavailable (needs root and nft): fails closed to none")
        return "; ".join(parts)


def probe() -> Capabilities:
    root = os.geteuid() == 0
    writable = False
    if root:
        try:
            NETNS_DIR.mkdir(parents=True, exist_ok=True)
            writable = os.access(NETNS_DIR, os.W_OK)
        except OSError:
            writable = False
    return Capabilities(
        root=root,
        nft=shutil.which("nft") or _sbin("nft"),
        pasta=shutil.which("pasta"),
        nsenter=shutil.which("nsenter"),
        netns_dir_writable=writable,
    )


def _sbin(name: str) -> str | None:
    for d in ("/usr/sbin", "/sbin"):
        p = Path(d) / name
        if p.exists():
            return str(p)
    return None


# ---------------------------------------------------------------------------------------------
# Root-only verbs


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _in_netns(path: Path, fn: Callable[[], _T]) -> _T:
    """Run `fn` in a throw-away thread that setns()ed into `path` (only that thread moves)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc().setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err), str(path))
                box["value"] = fn()
            finally:
                os.close(fd)
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=run, name="zionwm-setns")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _iproute() -> Any:
    """A netlink socket of pyroute2. pyroute2 is imported here, not at the top: its package
    loads every netlink family it knows (about 17 MiB resident), and only a desktop that
    has a network of its own needs it; a session without one never loads it."""
    from pyroute2 import IPRoute  # noqa: PLC0415

    return IPRoute()


def _netns() -> Any:
    from pyroute2 import netns  # noqa: PLC0415

    return netns


def _write_sysctl(key: str, value: str) -> None:
    Path("/proc/sys", *key.split(".")).write_text(value)


def _read_sysctl(key: str) -> str:
    return Path("/proc/sys", *key.split(".")).read_text().strip()


class _RootOps:
    """The only code that changes the kernel's network configuration (needs root)."""

    def __init__(self, nft: str) -> None:
        self.nft = nft

    def nft_apply(self, text: str) -> None:
        if not text:
            return
        res = subprocess.run(
            [self.nft, "-f", "-"], input=text.encode(), check=False, capture_output=True
        )
        if res.returncode != 0:
            raise NetworkError(f"nft failed: {res.stderr.decode(errors='replace').strip()}")

    def nft_table_exists(self, table: str) -> bool:
        res = subprocess.run(
            [self.nft, "list", "table", "inet", table], check=False, capture_output=True
        )
        return res.returncode == 0

    def nft_delete_table(self, table: str) -> None:
        self.nft_apply(f"add table inet {table}\ndelete table inet {table}\n")

    def create_netns(self, name: str) -> Path:
        path = NETNS_DIR / name
        if not path.exists():
            _netns().create(name)
        return path

    def remove_netns(self, name: str) -> None:
        if (NETNS_DIR / name).exists():
            _netns().remove(name)
        shutil.rmtree(ETC_NETNS / name, ignore_errors=True)

    def configure_inside(self, ns: str, ns_if: str | None, plan: AddressPlan | None) -> None:
        """Inside the namespace: lo up, no IPv6, and the veth's address and default route.

        Done from a thread that entered the namespace, so the netlink socket is opened there
        directly (pyroute2's netns= forks a helper per socket: ~25 ms each).
        """

        def work() -> None:
            # No IPv6 anywhere in a desktop: the host side has no IPv6 policy to enforce.
            _write_sysctl("net.ipv6.conf.all.disable_ipv6", "1")
            _write_sysctl("net.ipv6.conf.default.disable_ipv6", "1")
            with _iproute() as ip:
                ip.link("set", index=ip.link_lookup(ifname="lo")[0], state="up")
                if ns_if is None or plan is None:
                    return
                idx = ip.link_lookup(ifname=ns_if)[0]
                ip.addr("add", index=idx, address=str(plan.peer), prefixlen=plan.prefixlen)
                ip.link("set", index=idx, state="up")
                ip.route("add", dst="0.0.0.0/0", gateway=str(plan.host))

        _in_netns(NETNS_DIR / ns, work)

    def create_veth(self, ns: str, host_if: str, ns_if: str, alias: str, plan: AddressPlan) -> None:
        """The pair, host side addressed and up; the namespace side is moved in, unconfigured."""
        with _iproute() as ip:
            found = ip.link_lookup(ifname=host_if)
            if found:
                # Ours from a crashed run: replace it. Anyone else's: never touch it.
                owner = ip.get_links(found[0])[0].get("ifalias")
                if owner != alias:
                    raise NetworkError(
                        f"interface {host_if} exists and is not this instance's ({owner!r})"
                    )
                ip.link("del", index=found[0])
            ip.link("add", ifname=host_if, kind="veth", peer={"ifname": ns_if, "net_ns_fd": ns})
            idx = ip.link_lookup(ifname=host_if)[0]
            ip.link("set", index=idx, ifalias=alias)
            ip.addr("add", index=idx, address=str(plan.host), prefixlen=plan.prefixlen)
            ip.link("set", index=idx, state="up")

    def delete_link(self, ifname: str) -> None:
        with _iproute() as ip:
            found = ip.link_lookup(ifname=ifname)
            if found:
                ip.link("del", index=found[0])

    def links_with_alias_prefix(self, prefix: str) -> list[tuple[str, str]]:
        """(ifname, desktop) of host links whose ifalias marks them as this prefix's."""
        out: list[tuple[str, str]] = []
        with _iproute() as ip:
            for link in ip.get_links():
                desktop = netpolicy.alias_owner(link.get("ifalias"), prefix)
                if desktop is not None:
                    out.append((str(link.get("ifname")), desktop))
        return out

    def foreign_desktop_links(self, prefix: str) -> list[str]:
        """Host veths another zionwm run (another prefix) made for its desktops."""
        out: list[str] = []
        with _iproute() as ip:
            for link in ip.get_links():
                alias = link.get("ifalias")
                if not alias or ":" not in alias:
                    continue
                other, _, desktop = alias.partition(":")
                if (
                    other != prefix
                    and netpolicy.PREFIX_RE.match(other)
                    and netpolicy.DESKTOP_RE.match(desktop)
                ):
                    out.append(str(link.get("ifname")))
        return out

    def egress_of(self, ifnames: list[str]) -> set[str]:
        """Interfaces the traffic of these veths leaves through (uplink tables or main)."""
        out: set[str] = set()
        with _iproute() as ip:
            tables = {
                r.get("FRA_TABLE") or r.get("table")
                for r in ip.get_rules(family=2)
                if r.get("FRA_IIFNAME") in ifnames
            }
            tables.discard(None)
            tables.discard(0)
            for table in tables or {254}:
                for r in ip.get_default_routes(family=2, table=table):
                    oif = r.get("RTA_OIF")
                    links = ip.get_links(oif) if oif else []
                    if links:
                        out.add(str(links[0].get("ifname")))
            if tables:  # veths without rules of their own use the main table too
                for r in ip.get_default_routes(family=2, table=254):
                    oif = r.get("RTA_OIF")
                    links = ip.get_links(oif) if oif else []
                    if links:
                        out.add(str(links[0].get("ifname")))
        return out

    def used_networks(self) -> list[ipaddress.IPv4Network]:
        """Every IPv4 destination and address the host has, in any table, to allocate around."""
        nets: list[ipaddress.IPv4Network] = []
        with _iproute() as ip:
            for r in ip.get_routes(family=2, table=0):
                dst = r.get("dst") or r.get("RTA_DST")
                if dst:
                    nets.append(ipaddress.IPv4Network(f"{dst}/{r['dst_len']}", strict=False))
            for a in ip.get_addr(family=2):
                addr = a.get("address") or a.get("IFA_ADDRESS")
                if addr:
                    nets.append(ipaddress.IPv4Network(f"{addr}/{a['prefixlen']}", strict=False))
        return nets

    def add_uplink_routing(
        self,
        table: int,
        uplink: str,
        gateway: str | None,
        source: str | None,
        desktop_nets: Sequence[ipaddress.IPv4Network],
    ) -> None:
        """Table `table` routes only through `uplink`; traffic from `source` (the uplink's
        address: the DNS forwarder's upstream queries) uses it too, except towards the
        desktops' own links (`desktop_nets`), which go back to the main table: the host's
        answers to a desktop (an ICMP reject, say) must reach it, not the uplink."""
        with _iproute() as ip:
            found = ip.link_lookup(ifname=uplink)
            if not found:
                raise NetworkError(f"uplink interface {uplink!r} does not exist")
            ip.flush_routes(table=table)
            if gateway:
                ip.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=found[0], table=table)
            else:
                ip.route("replace", dst="0.0.0.0/0", oif=found[0], table=table)
            # When the uplink goes away its route goes with it: this one then ends the
            # lookup with "unreachable" instead of letting it fall through to `main`.
            ip.route(
                "replace", dst="0.0.0.0/0", type="unreachable", table=table, priority=0xFFFFFFFF
            )
            for net in desktop_nets:
                ip.route("replace", dst=str(net), type="throw", table=table)
            if source:
                self._rule(ip, "add", table=table, priority=RULE_PRIORITY, src=source, src_len=32)

    def add_desktop_rule(self, table: int, host_if: str) -> None:
        with _iproute() as ip:
            self._rule(ip, "add", table=table, priority=RULE_PRIORITY, iifname=host_if)

    def delete_rules(self, table: int, ifnames: set[str] | None, if_tag: str = "") -> None:
        """Rules on `ifnames`; with None, every rule of ours (pointing at `table`, or on an
        interface whose name starts with `if_tag`) and the table's routes."""
        with _iproute() as ip:
            for r in ip.get_rules(family=2):
                prio = r.get("priority") or r.get("FRA_PRIORITY")
                if prio not in (RULE_PRIORITY, RULE_PRIORITY + 1):
                    continue
                iif = r.get("FRA_IIFNAME")
                tbl = r.get("FRA_TABLE") or r.get("table")
                if ifnames is not None:
                    ours = iif is not None and iif in ifnames and tbl == table
                else:
                    ours = tbl == table or bool(
                        if_tag and iif is not None and str(iif).startswith(if_tag)
                    )
                if ours:
                    try:
                        ip.rule("del", **self._rule_key(r))
                    except Exception as exc:
                        log.debug("rule already gone: %s", exc)
            if ifnames is None:
                try:
                    ip.flush_routes(table=table)
                except Exception as exc:
                    log.debug("flushing table %d: %s", table, exc)

    @staticmethod
    def _rule(ip: Any, cmd: str, **kw: Any) -> None:
        try:
            ip.rule(cmd, **kw)
        except Exception as exc:
            if getattr(exc, "code", None) != errno.EEXIST:
                raise

    @staticmethod
    def _rule_key(r: Any) -> dict[str, Any]:
        key: dict[str, Any] = {"priority": r.get("FRA_PRIORITY") or r.get("priority")}
        if r.get("FRA_IIFNAME"):
            key["iifname"] = r.get("FRA_IIFNAME")
        if r.get("FRA_SRC"):
            key["src"] = r.get("FRA_SRC")
            key["src_len"] = r.get("src_len")
        tbl = r.get("FRA_TABLE") or r.get("table")
        if r.get("action") == 7:
            key["action"] = "FR_ACT_UNREACHABLE"
        elif tbl:
            key["table"] = tbl
        return key

    def first_address(self, ifname: str) -> str | None:
        with _iproute() as ip:
            found = ip.link_lookup(ifname=ifname)
            if not found:
                return None
            for a in ip.get_addr(family=2, index=found[0]):
                addr = a.get("IFA_LOCAL") or a.get("IFA_ADDRESS")
                if addr:
                    return str(addr)
        return None

    def interfaces_of_default_routes(self) -> list[str]:
        names: list[str] = []
        with _iproute() as ip:
            for r in ip.get_default_routes(family=2, table=254):
                oif = r.get("RTA_OIF")
                if oif:
                    links = ip.get_links(oif)
                    if links:
                        names.append(str(links[0].get("ifname")))
        return names


class NetworkError(RuntimeError):
    """A desktop's network could not be set up as its policy asks."""


# ---------------------------------------------------------------------------------------------
# One desktop


@dataclass
class DesktopNet:
    """A desktop's network as built: what the launcher needs and what `zionctl` shows."""

    desktop: str
    policy: NetworkPolicy
    effective: NetMode  # what is enforced: may be NONE when the policy could not be honoured
    backend: str  # "netns", "bwrap-unshare" or "pasta"
    ns_name: str | None = None
    host_if: str | None = None
    plan: AddressPlan | None = None
    enabled: bool = True
    warning: str | None = None
    resolv_conf: Path | None = None
    generation: int = 1  # policy changes so far + 1 (see netpolicy.DesktopRules)
    _ns_path: Path | None = None
    _userns_path: Path | None = None
    _forwarder: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _holder: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _pasta: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _manager: NetworkManager | None = field(default=None, repr=False)

    def netns_path(self) -> Path | None:
        """The namespace to setns() into before bwrap; None: give the sandbox an empty one
        of its own (``bwrap --unshare-net``)."""
        return self._ns_path

    def userns_path(self) -> Path | None:
        """Unprivileged `full` only: the user namespace that owns `netns_path()`."""
        return self._userns_path

    def nsenter_prefix(self) -> list[str]:
        """argv prefix that runs a command inside this desktop's network (empty: none needed)."""
        if self._ns_path is None:
            return []
        argv = ["nsenter", f"--net={self._ns_path}"]
        if self._userns_path is not None:
            argv[1:1] = [f"--user={self._userns_path}", "--preserve-credentials"]
        return [*argv, "--"]

    def forwarder_pid(self) -> int | None:
        """The DNS forwarder's pid while it runs."""
        proc = self._forwarder
        return proc.pid if proc is not None and proc.poll() is None else None

    def set_enabled(self, on: bool) -> None:
        if self._manager is None:
            raise NetworkError(f"desktop {self.desktop!r} is no longer managed")
        self._manager.set_enabled(self.desktop, on)

    def state(self) -> dict[str, object]:
        return {
            "desktop": self.desktop,
            "policy": self.policy.mode.value,
            "effective": self.effective.value,
            "enabled": self.enabled,
            "backend": self.backend,
            "netns": str(self._ns_path) if self._ns_path else None,
            "host_if": self.host_if,
            "gateway": str(self.plan.host) if self.plan else None,
            "address": f"{self.plan.peer}/{self.plan.prefixlen}" if self.plan else None,
            "dns": str(self.plan.host) if self.plan and self._forwarder else None,
            "block_lan": self.policy.block_lan,
            "allow": [
                {"host": r.host, "ports": list(r.ports), "proto": r.proto}
                for r in self.policy.allow
            ],
            "warning": self.warning
            or (
                "DNS forwarder is not running: names do not resolve"
                if self._forwarder is not None and self._forwarder.poll() is not None
                else None
            ),
        }


# ---------------------------------------------------------------------------------------------
# The manager


def _pdeathsig(parent: int) -> None:
    # Children die with the manager, even on SIGKILL: no orphan forwarder keeps port 53.
    # (Runs between fork and exec; a manager already gone would never send the signal.)
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _dns_sockets(addr: str) -> tuple[socket.socket, socket.socket]:
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


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


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


class NetworkManager:
    """Builds, switches and removes the network of every desktop of one zionwm run.

    `prefix` marks every object this manager creates (tests pass a unique one). `uplink`
    pins the desktops' traffic (and the forwarder's upstream queries) to one interface
    through a policy-routing table of ours, e.g. a VPN, or the test's own "internet";
    None uses the host's main routing table. `upstream_dns` defaults to the host's
    resolv.conf. `privileged` overrides the probe (False forces the unprivileged path).
    """

    def __init__(
        self,
        prefix: str = netpolicy.DEFAULT_PREFIX,
        *,
        uplink: str | None = None,
        uplink_gateway: str | None = None,
        upstream_dns: Sequence[str] | None = None,
        pools: Sequence[ipaddress.IPv4Network] = netpolicy.DEFAULT_POOLS,
        min_ttl: int = 60,
        state_dir: Path | None = None,
        privileged: bool | None = None,
        pasta_args: Sequence[str] = (),
        loopback_dns: Sequence[str] | None = None,
    ) -> None:
        self.prefix = netpolicy.check_prefix(prefix)
        self.uplink = uplink
        self.uplink_gateway = uplink_gateway
        self.upstream_dns = list(upstream_dns) if upstream_dns is not None else None
        self.pools = tuple(pools)
        self.min_ttl = min_ttl
        self.pasta_args = list(pasta_args)
        self.loopback_dns = (
            list(loopback_dns)
            if loopback_dns is not None
            else [a for a in host_nameservers() if ipaddress.ip_address(a).is_loopback]
        )
        self.caps = probe()
        self.privileged = self.caps.privileged if privileged is None else privileged
        if self.privileged and not self.caps.privileged:
            raise NetworkError(f"privileged network path unavailable: {self.caps.describe()}")
        self._root = _RootOps(self.caps.nft or "nft") if self.privileged else None
        self._state_dir = state_dir
        self._desktops: dict[str, DesktopNet] = {}
        self._table_ready = False
        self._lock = threading.RLock()
        self._saved_routes: dict[str, list[str]] = {}
        # Deterministic per prefix, so a restarted run finds a crashed run's rules; drawn
        # from 2^28 numbers, so two live instances practically never share one (clean-up
        # flushes the whole table).
        self.route_table = 0x10000000 + int(netpolicy._short_hash(prefix, 7), 16)
        self._uplink_source: str | None = None
        self._cleanup_due = False
        # a datagram socket the DNS forwarders report refused names into (set by the owner)
        self.refusal_fd: int | None = None

    @classmethod
    def from_environ(cls, prefix: str, environ: Mapping[str, str]) -> NetworkManager:
        """A manager with the operator's settings from the environment, all optional:

        - ``ZIONWM_NET_UPLINK=IFNAME[@GATEWAY]``: pin every desktop's traffic to one
          interface (a VPN, or a test's own network), never the main routing table;
        - ``ZIONWM_NET_DNS=ADDR[,ADDR...]``: upstream resolvers of the DNS forwarders;
        - ``ZIONWM_PASTA_ARGS="..."``: extra pasta options on the unprivileged path (for
          example ``--outbound-if4 wg0``, or addresses for the desktops' side).
        """
        kw: dict[str, Any] = {}
        uplink = environ.get("ZIONWM_NET_UPLINK", "").strip()
        if uplink:
            name, _, gateway = uplink.partition("@")
            kw["uplink"] = name
            kw["uplink_gateway"] = gateway or None
        dns = environ.get("ZIONWM_NET_DNS", "").strip()
        if dns:
            kw["upstream_dns"] = [a.strip() for a in dns.split(",") if a.strip()]
        pasta = environ.get("ZIONWM_PASTA_ARGS", "").strip()
        if pasta:
            kw["pasta_args"] = shlex.split(pasta)
        return cls(prefix, **kw)

    # -- public API ----------------------------------------------------------------------

    def probe(self) -> Capabilities:
        return self.caps

    def __enter__(self) -> NetworkManager:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def state_dir(self) -> Path:
        if self._state_dir is None:
            self._state_dir = paths.runtime_dir() / "net"
        self._state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self._state_dir

    def get(self, desktop: str) -> DesktopNet | None:
        return self._desktops.get(desktop)

    def netns_path(self, desktop: str) -> Path | None:
        """The launcher's callable: the namespace a desktop's sandboxes join, if any."""
        net = self._desktops.get(desktop)
        return net.netns_path() if net else None

    def userns_path(self, desktop: str) -> Path | None:
        """Unprivileged `full` only: the user namespace to enter before `netns_path()`."""
        net = self._desktops.get(desktop)
        return net.userns_path() if net else None

    def ensure(self, desktop: str, policy: NetworkPolicy) -> DesktopNet:
        """Build the desktop's network, or rebuild it if its policy changed."""
        netpolicy.check_desktop(desktop)
        netpolicy.validate_policy(policy)
        with self._lock:
            current = self._desktops.get(desktop)
            if current is not None:
                if current.policy == policy:
                    self._revive(current)
                    return current
                if current.backend in ("netns", "pasta"):
                    try:
                        if current.backend == "netns":
                            self._change_policy(current, policy)
                        else:
                            self._change_unprivileged(current, policy)
                    except Exception:
                        self._cut_after_failure(current)
                        raise
                    return current
                # No namespace of ours yet (loopback-only sandboxes): build one; a desktop
                # switched off stays off.
                enabled = current.enabled
                self.teardown(desktop)
                net = self._build(desktop, policy)
                if not enabled:
                    self.set_enabled(desktop, False)
                return net
            return self._build(desktop, policy)

    def _cut_after_failure(self, net: DesktopNet) -> None:
        """A policy change that failed half-way must not leave the old, maybe looser,
        network on: the desktop is switched off (its link removed if even that fails)."""
        net.enabled = False
        net.warning = "a network policy change failed: network cut until it is switched on"
        log.error("desktop %s: %s", net.desktop, net.warning)
        try:
            if net.backend == "netns" and net.host_if is not None and net.plan is not None:
                assert self._root is not None
                try:
                    self._root.nft_apply(self._desktop_text(net))
                except Exception:
                    self._remove_uplinked(net)
                    net.effective = NetMode.NONE
            elif net.backend == "pasta":
                _stop_process(net._pasta)
                net._pasta = None
                net.host_if = None
                net.effective = NetMode.NONE
        except Exception:
            log.exception("desktop %s: could not cut the network", net.desktop)

    def _build(self, desktop: str, policy: NetworkPolicy) -> DesktopNet:
        with self._lock:
            if self._cleanup_due:
                self._cleanup_due = False
                self.cleanup_stale()
            net = (
                self._ensure_privileged(desktop, policy)
                if self.privileged
                else self._ensure_unprivileged(desktop, policy)
            )
            net._manager = self
            self._desktops[desktop] = net
            log.info(
                "desktop %s network: policy %s, enforced %s via %s",
                desktop,
                policy.mode.value,
                net.effective.value,
                net.backend,
            )
            return net

    def set_enabled(self, desktop: str, on: bool) -> None:
        """Cut (False) or restore (True) a desktop's network; its programs keep running."""
        with self._lock:
            net = self._desktops.get(desktop)
            if net is None:
                raise NetworkError(f"no network for desktop {desktop!r}")
            if net.enabled == on:
                return
            if net.backend == "netns" and net.plan is not None and net.host_if is not None:
                assert self._root is not None
                net.enabled = on
                self._root.nft_apply(self._desktop_text(net))
            elif net.backend == "pasta":
                net.enabled = on
                if net._pasta is not None and net._pasta.poll() is None:
                    self._apply_pasta_guard(net)
                elif on and net.policy.mode is NetMode.FULL:
                    self._change_unprivileged(net, net.policy)  # pasta was stopped: attach
            else:
                net.enabled = on  # nothing to cut: it has no network
            log.info("desktop %s network %s", desktop, "on" if on else "off")

    def state(self) -> dict[str, dict[str, object]]:
        return {name: net.state() for name, net in sorted(self._desktops.items())}

    def teardown(self, desktop: str | None = None) -> None:
        """Remove one desktop's network (or all of them, then the shared table and rules)."""
        with self._lock:
            names = [desktop] if desktop is not None else list(self._desktops)
            for name in names:
                net = self._desktops.pop(name, None)
                if net is not None:
                    self._teardown_one(net)
            if desktop is None or not self._desktops:
                self._teardown_shared()

    close = teardown

    def cleanup_stale_at_start(self) -> list[str]:
        """`cleanup_stale` for a run's start, without netlink when nothing is left over.

        What a crashed run leaves is visible without pyroute2 (see `_leftovers_visible`);
        when none of it is there, the full clean-up (which also lists policy rules over
        netlink) waits for the first desktop network this run builds, so a session that
        never builds one never loads pyroute2.
        """
        if not self.privileged:
            return []
        if self._leftovers_visible():
            return self.cleanup_stale()
        self._cleanup_due = True
        return []

    def _leftovers_visible(self) -> bool:
        """A namespace, an /etc/netns directory, a host link (by its ifalias in sysfs), the
        nftables table or recorded sysctls of this prefix: anything `cleanup_stale` removes
        apart from policy rules. A crash leaves those only beside the namespace and link
        they route (seen here); one left alone, by a crash in the middle of a clean-up,
        matches no interface and is removed before this run's first desktop network."""
        mine = self.prefix + "-"
        for d in (NETNS_DIR, ETC_NETNS):
            if d.exists() and any(n.startswith(mine) for n in os.listdir(d)):
                return True
        for alias in Path("/sys/class/net").glob("*/ifalias"):
            try:
                if netpolicy.alias_owner(alias.read_text().strip(), self.prefix):
                    return True
            except OSError:
                continue
        if _load_json(SYSCTL_RECORD):
            return True
        assert self._root is not None
        return self._root.nft_table_exists(netpolicy.table_name(self.prefix))

    def cleanup_stale(self) -> list[str]:
        """Remove what a crashed run with this prefix left; returns what was removed.

        Call before the first `ensure`. Objects of other prefixes are never touched.
        """
        removed: list[str] = []
        if not self.privileged:
            return removed
        assert self._root is not None
        with self._lock:
            for name in sorted(os.listdir(NETNS_DIR)) if NETNS_DIR.exists() else []:
                if name.startswith(self.prefix + "-") and name not in self._live_ns():
                    desktop = name[len(self.prefix) + 1 :]
                    if netpolicy.DESKTOP_RE.match(desktop):
                        self._root.remove_netns(name)
                        removed.append(f"netns {name}")
            live_ifs = {n.host_if for n in self._desktops.values()}
            for ifname, _desktop in self._root.links_with_alias_prefix(self.prefix):
                if ifname not in live_ifs:
                    self._root.delete_link(ifname)
                    removed.append(f"link {ifname}")
            table = netpolicy.table_name(self.prefix)
            if not self._desktops and self._root.nft_table_exists(table):
                self._root.nft_delete_table(table)
                removed.append(f"nft table inet {table}")
            if not self._desktops:
                self._root.delete_rules(self.route_table, None, netpolicy.veth_tag(self.prefix))
                removed += [f"sysctl {k}={v}" for k, v in self._restore_sysctls().items()]
            for name in sorted(os.listdir(ETC_NETNS)) if ETC_NETNS.exists() else []:
                if name.startswith(self.prefix + "-") and name not in self._live_ns():
                    shutil.rmtree(ETC_NETNS / name, ignore_errors=True)
            if removed:
                log.warning("removed stale network objects: %s", ", ".join(removed))
        return removed

    # -- privileged path -----------------------------------------------------------------

    def _live_ns(self) -> set[str]:
        return {n.ns_name for n in self._desktops.values() if n.ns_name}

    def _ensure_privileged(self, desktop: str, policy: NetworkPolicy) -> DesktopNet:
        assert self._root is not None
        ns = netpolicy.netns_name(self.prefix, desktop)
        net = DesktopNet(desktop, policy, NetMode.NONE, "netns", ns_name=ns)
        try:
            net._ns_path = self._root.create_netns(ns)
            if policy.mode is NetMode.NONE:
                self._root.configure_inside(ns, None, None)
            else:
                self._build_uplinked(net)
            self._write_resolv(net)
        except Exception:
            self._teardown_one(net)
            raise
        return net

    def _build_uplinked(self, net: DesktopNet) -> None:
        assert self._root is not None and net.ns_name is not None
        host_if, ns_if = netpolicy.veth_names(self.prefix, net.desktop)
        net.host_if = host_if
        with self._alloc_lock():
            taken = [n.plan.subnet for n in self._desktops.values() if n.plan]
            net.plan = netpolicy.allocate_subnet(
                [*self._root.used_networks(), *taken], pools=self.pools
            )
            self._root.create_veth(
                net.ns_name,
                host_if,
                ns_if,
                netpolicy.link_alias(self.prefix, net.desktop),
                net.plan,
            )
        self._root.configure_inside(net.ns_name, ns_if, net.plan)
        self._ensure_shared()
        if self.uplink:
            self._root.add_desktop_rule(self.route_table, host_if)
        self._set_sysctl(f"net.ipv4.conf.{host_if}.forwarding", "1", record=False)
        for iface in self._forwarding_ifaces():
            self._set_sysctl(f"net.ipv4.conf.{iface}.forwarding", "1")
        self._root.nft_apply(self._desktop_text(net))
        net.effective = net.policy.mode
        self._start_forwarder(net)

    def _forwarding_ifaces(self) -> list[str]:
        assert self._root is not None
        # Per interface, not the global ip_forward: the host only routes for our veths
        # and the uplink(s) their replies come back on.
        return [self.uplink] if self.uplink else self._root.interfaces_of_default_routes()

    def _set_sysctl(self, key: str, value: str, record: bool = True) -> None:
        """Set a sysctl, recording its original value host-wide (unless `record` is False:
        our own veths' settings go with them)."""
        with self._alloc_lock():
            try:
                old = _read_sysctl(key)
            except OSError as exc:
                raise NetworkError(f"cannot read sysctl {key}: {exc}") from exc
            if old == value:
                return
            if record:
                originals = _load_json(SYSCTL_RECORD)
                originals.setdefault(key, old)
                _save_json(SYSCTL_RECORD, originals)
            _write_sysctl(key, value)

    def _restore_sysctls(self) -> dict[str, str]:
        """Put recorded sysctls back unless another run's desktops still route through that
        interface (the last run out restores it). Returns what was restored."""
        assert self._root is not None
        restored: dict[str, str] = {}
        with self._alloc_lock():
            originals = _load_json(SYSCTL_RECORD)
            if not originals:
                return restored
            others = self._root.foreign_desktop_links(self.prefix)
            busy = self._root.egress_of(others) if others else set()
            for key, value in list(originals.items()):
                parts = key.split(".")
                if len(parts) == 5 and parts[3] in busy:
                    log.info("leaving %s on: other zionwm desktops use %s", key, parts[3])
                    continue
                try:
                    _write_sysctl(key, str(value))
                    restored[key] = str(value)
                except OSError:
                    pass  # the interface went away with its settings
                del originals[key]
            _save_json(SYSCTL_RECORD, originals)
        return restored

    def _ensure_shared(self) -> None:
        assert self._root is not None
        if self._table_ready:
            return
        if self.uplink:
            if self.uplink_gateway is None:
                log.info("uplink %s has no gateway: routing on-link", self.uplink)
            self._uplink_source = self._root.first_address(self.uplink)
            self._root.add_uplink_routing(
                self.route_table,
                self.uplink,
                self.uplink_gateway,
                self._uplink_source,
                self.pools,
            )
            key = f"net.ipv4.conf.{self.uplink}.rp_filter"
            if _read_sysctl(key) == "1":
                # Strict reverse-path checks consult `main`, which does not route the
                # answers' sources through the uplink: loose mode keeps the check.
                self._set_sysctl(key, "2")
        self._root.nft_apply(netpolicy.base_ruleset(self.prefix, self.uplink))
        self._table_ready = True

    def _desktop_text(self, net: DesktopNet) -> str:
        assert net.plan is not None and net.host_if is not None
        rules = DesktopRules(
            net.desktop, net.policy, net.host_if, net.plan, net.enabled, generation=net.generation
        )
        return netpolicy.desktop_ruleset(self.prefix, rules, self.uplink)

    def _upstreams(self) -> list[str]:
        if self.upstream_dns is not None:
            return self.upstream_dns
        return host_nameservers()

    def _start_forwarder(self, net: DesktopNet) -> None:
        assert net.plan is not None
        upstreams = self._upstreams()
        if not upstreams:
            net.warning = "no upstream DNS server: names do not resolve in this desktop"
            log.warning("desktop %s: %s", net.desktop, net.warning)
            return
        # Bound here, inherited by the child: no waiting for its interpreter to start.
        sock, tcp = _dns_sockets(str(net.plan.host))
        # Programs reading the host's resolv.conf ask a host-local resolver (systemd-resolved's
        # 127.0.0.53): the same forwarder answers there too, inside the desktop's namespace.
        inside: list[tuple[socket.socket, socket.socket]] = []
        assert net._ns_path is not None
        for addr in self.loopback_dns:
            try:
                inside.append(_in_netns(net._ns_path, functools.partial(_dns_sockets, addr)))
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
            "prefix": self.prefix,
            "desktop": net.desktop,
            "nft": self.caps.nft or "nft",
            "min_ttl": self.min_ttl,
            "source": self._uplink_source if self.uplink else None,
        }
        reporting: tuple[int, ...] = ()
        if self.refusal_fd is not None:  # refused names are told to the compositor
            cfg["refusal_fd"] = self.refusal_fd
            reporting = (self.refusal_fd,)
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
        try:
            net._forwarder = subprocess.Popen(
                [sys.executable, "-m", "zionwm.isolation.dnsfilter", json.dumps(cfg)],
                stdin=subprocess.DEVNULL,
                env=env,
                pass_fds=tuple(s.fileno() for s in (sock, tcp, *extra)) + reporting,
                preexec_fn=functools.partial(_pdeathsig, os.getpid()),  # noqa: PLW1509 (prctl only)
            )
        finally:
            for s in (sock, tcp, *extra):
                s.close()

    def _write_resolv(self, net: DesktopNet) -> None:
        text = netpolicy.resolv_conf(net.plan if net._forwarder else None)
        path = self.state_dir() / f"{net.desktop}.resolv.conf"
        path.write_text(text)
        net.resolv_conf = path
        if net.ns_name:
            # `ip netns exec` binds this one over /etc/resolv.conf: debugging sees what
            # the sandboxes see.
            etc = ETC_NETNS / net.ns_name
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text(text)

    def _teardown_one(self, net: DesktopNet) -> None:
        net._manager = None
        for proc in (net._forwarder, net._pasta, net._holder):
            _stop_process(proc)
        net._forwarder = net._pasta = net._holder = None
        if self._root is not None:
            self._remove_uplinked(net)
            if net.ns_name is not None:
                self._root.remove_netns(net.ns_name)
        if net.resolv_conf is not None:
            net.resolv_conf.unlink(missing_ok=True)
        net._ns_path = None

    def _indices(self, policy: NetworkPolicy) -> list[int]:
        return [i for i, r in enumerate(policy.allow) if netpolicy.rule_network(r) is None]

    def _remove_uplinked(self, net: DesktopNet) -> None:
        """Undo `_build_uplinked`: the desktop's chains and sets, its veth and rules."""
        if self._root is None or net.host_if is None:
            return
        if self._table_ready:
            try:
                self._root.nft_apply(
                    netpolicy.remove_desktop_ruleset(
                        self.prefix, net.desktop, net.host_if, self._indices(net.policy)
                    )
                )
            except NetworkError as exc:
                log.debug("desktop chains already gone: %s", exc)
        self._root.delete_link(net.host_if)
        if self.uplink:
            self._root.delete_rules(self.route_table, {net.host_if})
        net.host_if = None
        net.plan = None

    def _change_policy(self, net: DesktopNet, policy: NetworkPolicy) -> None:
        """Apply a new policy in the same namespace: running programs keep their network
        (as the new policy allows it), nothing is restarted.

        Learned addresses are dropped with their sets: rule numbers may mean other names now.
        """
        assert self._root is not None
        _stop_process(net._forwarder)
        net._forwarder = None
        old = net.policy
        net.generation += 1
        if net.host_if is not None and net.plan is not None:
            if policy.mode is NetMode.NONE:
                self._remove_uplinked(net)
                net.policy = policy
                net.effective = NetMode.NONE
            else:
                removal = netpolicy.remove_desktop_ruleset(
                    self.prefix, net.desktop, net.host_if, self._indices(old)
                )
                net.policy = policy
                self._root.nft_apply(removal + self._desktop_text(net))
                net.effective = policy.mode
                self._start_forwarder(net)
        else:
            net.policy = policy
            if policy.mode is not NetMode.NONE:
                self._build_uplinked(net)
        self._write_resolv(net)
        log.info(
            "desktop %s network policy %s -> %s (same namespace)",
            net.desktop,
            old.mode.value,
            policy.mode.value,
        )

    def _revive(self, net: DesktopNet) -> None:
        """Restart a desktop's DNS forwarder if it died (its name resolution would be gone)."""
        proc = net._forwarder
        if proc is not None and proc.poll() is not None:
            log.warning(
                "desktop %s: DNS forwarder exited (%s), restarting it", net.desktop, proc.returncode
            )
            _stop_process(proc)
            net._forwarder = None
            self._start_forwarder(net)

    def _teardown_shared(self) -> None:
        if self._root is None:
            return
        if self._table_ready or self._root.nft_table_exists(netpolicy.table_name(self.prefix)):
            self._root.nft_delete_table(netpolicy.table_name(self.prefix))
        self._table_ready = False
        if self.uplink:
            self._root.delete_rules(self.route_table, None, netpolicy.veth_tag(self.prefix))
        self._restore_sysctls()

    @contextmanager
    def _alloc_lock(self) -> Iterator[None]:
        # Two managers (two test runs) must not pick the same /30 between look and add.
        ALLOC_LOCK.parent.mkdir(parents=True, exist_ok=True)
        with open(ALLOC_LOCK, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- unprivileged path ---------------------------------------------------------------

    def _ensure_unprivileged(self, desktop: str, policy: NetworkPolicy) -> DesktopNet:
        refused = self._unprivileged_refusal(policy)
        if policy.mode is NetMode.NONE or refused is not None:
            if refused is not None:
                log.warning("desktop %s: %s", desktop, refused)
            return DesktopNet(desktop, policy, NetMode.NONE, "bwrap-unshare", warning=refused)
        net = DesktopNet(desktop, policy, NetMode.NONE, "pasta")
        try:
            self._start_holder(net)
            self._attach_pasta(net)
            self._apply_pasta_guard(net)
            net.effective = NetMode.FULL
        except Exception:
            self._teardown_one(net)
            raise
        return net

    def _unprivileged_refusal(self, policy: NetworkPolicy) -> str | None:
        """Why `policy` gets no network on this path (it fails closed), or None."""
        if policy.mode is NetMode.FILTERED:
            return (
                "filtered network needs the privileged path (root and nft): "
                "this desktop has no network (fail closed)"
            )
        if policy.mode is NetMode.FULL and not self.caps.unprivileged_full:
            return "full network needs pasta (Debian package passt) and nsenter: no network"
        if policy.mode is NetMode.FULL and policy.block_lan and self.caps.nft is None:
            return (
                "block_lan needs the nft command (Debian package nftables) to filter inside "
                "the desktop's namespace: this desktop has no network (fail closed)"
            )
        return None

    def _change_unprivileged(self, net: DesktopNet, policy: NetworkPolicy) -> None:
        """Apply a new policy to a pasta desktop in the namespace its programs already use.

        `none` (and what fails closed) stops pasta: its tap device goes with it, and every
        program of the desktop, running or started later, is left with loopback only. A
        `full` policy re-attaches pasta to the same namespace. The guard rules follow the
        new `block_lan`, and a desktop switched off stays off.
        """
        old = net.policy
        net.policy = policy
        refused = self._unprivileged_refusal(policy)
        net.warning = refused
        if policy.mode is NetMode.NONE or refused is not None:
            if refused is not None:
                log.warning("desktop %s: %s", net.desktop, refused)
            # Rules first: the window between them and pasta's exit lets nothing through.
            if self.caps.nft is not None:
                self._nft_inside(net, netpolicy.guard_ruleset(block_lan=True, enabled=False))
            _stop_process(net._pasta)
            net._pasta = None
            net.host_if = None
            net.effective = NetMode.NONE
        else:
            self._apply_pasta_guard(net)
            if net._pasta is None or net._pasta.poll() is not None:
                _stop_process(net._pasta)
                net._pasta = None
                self._attach_pasta(net)
                self._apply_pasta_guard(net)
            net.effective = NetMode.FULL
        log.info(
            "desktop %s network policy %s -> %s (same namespace, %s)",
            net.desktop,
            old.mode.value,
            policy.mode.value,
            "on" if net.enabled else "off",
        )

    def _start_holder(self, net: DesktopNet) -> None:
        # A holder process keeps a user+net namespace alive; pasta attaches to it. The
        # launcher joins both (see nsenter_prefix).
        holder = subprocess.Popen(
            [
                "unshare",
                "--user",
                "--map-root-user",
                "--net",
                "--",
                "sh",
                "-c",
                "echo ready; exec cat",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=functools.partial(_pdeathsig, os.getpid()),  # noqa: PLW1509 (prctl only)
        )
        net._holder = holder
        assert holder.stdout is not None
        ready, _, _ = select.select([holder.stdout], [], [], 5.0)
        if not ready or holder.stdout.readline().strip() != b"ready":
            raise NetworkError("could not create a user+network namespace (unshare)")
        net._ns_path = Path(f"/proc/{holder.pid}/ns/net")
        net._userns_path = Path(f"/proc/{holder.pid}/ns/user")

    def _attach_pasta(self, net: DesktopNet) -> None:
        assert net._ns_path is not None and net._userns_path is not None
        argv = [
            self.caps.pasta or "pasta",
            "--config-net",
            "--foreground",
            "--quiet",
            "--ipv4-only",
            # pasta's default turns connections to the gateway address into connections to
            # the host's own loopback: every service that listens only there (the VNC server
            # of this very session, CUPS, databases) would be a desktop's to use.
            "--no-map-gw",
            # Nothing from the host side reaches into a desktop: no inbound forwards.
            "-t",
            "none",
            "-u",
            "none",
            "-T",
            "none",
            "-U",
            "none",
            *self.pasta_args,
            "--userns",
            str(net._userns_path),
            "--netns",
            str(net._ns_path),
        ]
        net._pasta = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=functools.partial(_pdeathsig, os.getpid()),  # noqa: PLW1509 (prctl only)
        )
        self._wait_pasta_link(net)

    def _nft_inside(self, net: DesktopNet, text: str) -> None:
        """Apply a ruleset inside a pasta desktop's namespace, as root of its user namespace."""
        res = subprocess.run(
            [*net.nsenter_prefix(), self.caps.nft or "nft", "-f", "-"],
            input=text.encode(),
            capture_output=True,
            check=False,
        )
        if res.returncode != 0:
            raise NetworkError(
                f"desktop {net.desktop}: nft inside its namespace failed: "
                f"{res.stderr.decode(errors='replace').strip()}"
            )

    def _apply_pasta_guard(self, net: DesktopNet) -> None:
        """block_lan and on/off inside the namespace (atomic); without nft, off takes the
        interface down instead (block_lan never gets here without nft: it fails closed)."""
        if self.caps.nft is None:
            self._set_pasta_link(net, net.enabled)
            return
        text = netpolicy.guard_ruleset(
            block_lan=net.policy.block_lan,
            enabled=net.enabled,
            lan_dns=netpolicy.lan_resolvers(host_nameservers()),
        )
        self._nft_inside(net, text)

    def _pasta_link(self, net: DesktopNet) -> tuple[str, bool] | None:
        """(interface name, has a default route) inside a pasta desktop's namespace."""
        res = subprocess.run(
            [*net.nsenter_prefix(), "ip", "-j", "route", "show", "default"],
            check=False,
            capture_output=True,
        )
        if res.returncode != 0:
            return None
        try:
            routes = json.loads(res.stdout or b"[]")
        except ValueError:
            return None
        for r in routes:
            if r.get("dev"):
                return str(r["dev"]), True
        return None

    def _wait_pasta_link(self, net: DesktopNet) -> None:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            assert net._pasta is not None
            if net._pasta.poll() is not None:
                err = net._pasta.stderr.read().decode(errors="replace") if net._pasta.stderr else ""
                raise NetworkError(f"pasta exited: {err.strip()}")
            found = self._pasta_link(net)
            if found is not None:
                net.host_if = found[0]
                return
            time.sleep(0.05)
        raise NetworkError("pasta did not configure the namespace in time")

    def _set_pasta_link(self, net: DesktopNet, on: bool) -> None:
        # Without nft: the namespace is ours (its user namespace maps us to root): bringing
        # its interface down drops every packet; up restores addresses, and the route is
        # re-added.
        if net.host_if is None:
            return
        pre = net.nsenter_prefix()
        if on:
            subprocess.run([*pre, "ip", "link", "set", net.host_if, "up"], check=True)
            routes = self._saved_routes.pop(net.desktop, [])
            for r in routes:
                subprocess.run([*pre, "ip", "route", "replace", *r.split()], check=False)
        else:
            res = subprocess.run(
                [*pre, "ip", "route", "show", "default"], capture_output=True, check=True
            )
            self._saved_routes[net.desktop] = [
                line for line in res.stdout.decode().splitlines() if line.strip()
            ]
            subprocess.run([*pre, "ip", "link", "set", net.host_if, "down"], check=True)
