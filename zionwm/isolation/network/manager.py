"""Per-desktop network namespaces and their policies: none, full, filtered.

Owns every kernel object a desktop's network needs, and their removal:

- **Privileged path** (root, with the ``nft`` command): one named namespace per desktop,
  ``/run/netns/<prefix>-<desktop>``, created over netlink (in the network-ops process) and
  shared by all the desktop's sandboxes (the launcher setns()es into `netns_path()` before
  starting bwrap). `none` leaves it with only ``lo`` up. `full` and `filtered` add a veth
  pair (host side ``zw-<desktop>``, namespace side ``eth0``) on a /30 allocated from a
  private pool clear of every host route, a default route via the host side, and host-side
  forwarding + masquerade in the ``inet <prefix>`` nftables table. `filtered` adds an
  allow-list (nft rules and per-rule address sets, default reject) and a DNS forwarder
  (`dnsfilter`, in a child process started by `forwarder`) on the host side of the veth that
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
the pure `policy` module, where it is unit-tested; only `rootops` and `pasta` run it.

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

Root-only operations are a narrow set of verbs; nothing else touches the kernel's network
configuration. The netlink ones (`rootops.RootOps`, pyroute2) run in a process of their own,
the network-ops process (`opsd`), which `opsclient.RootOpsClient` starts at the first of
them: pyroute2 never loads into the compositor, and a run that never builds a desktop
network never starts that process. The ``nft`` ones (`nftcmd`) run here. The unprivileged
path is `pasta.PastaPath`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import shlex
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zionwm import paths
from zionwm.isolation.network import policy as netpolicy
from zionwm.isolation.network.caps import ETC_NETNS, NETNS_DIR, Capabilities, probe
from zionwm.isolation.network.children import stop_process
from zionwm.isolation.network.forwarder import host_nameservers, start_forwarder
from zionwm.isolation.network.model import DesktopNet, NetworkError
from zionwm.isolation.network.nsutil import alloc_lock, read_sysctl, write_sysctl
from zionwm.isolation.network.opsclient import RootOpsClient
from zionwm.isolation.network.pasta import PastaPath
from zionwm.isolation.network.policy import DesktopRules
from zionwm.isolation.spec import NetMode, NetworkPolicy

log = logging.getLogger(__name__)

# Host-wide (all runs): the values sysctls had before any zionwm changed them. The last run
# whose desktops need a setting puts it back. /run is emptied at boot, like the sysctls.
SYSCTL_RECORD = Path("/run/zionwm-net/sysctl-originals.json")


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _host_link_aliases() -> list[str]:
    """The ifalias of every host interface, read from sysfs (no netlink)."""
    out: list[str] = []
    for path in Path("/sys/class/net").glob("*/ifalias"):
        try:
            out.append(path.read_text().strip())
        except OSError:
            continue
    return out


def _other_runs_visible(prefix: str) -> bool:
    """A desktop link of another zionwm run (another prefix) is on the host."""
    return any(netpolicy.other_runs_desktop(a, prefix) for a in _host_link_aliases())


def _save_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


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
        # the netlink verbs run in the network-ops process, started at the first one
        self._root = RootOpsClient(self.caps.nft or "nft") if self.privileged else None
        self._unprivileged = PastaPath(self.caps, self.pasta_args)
        self._state_dir = state_dir
        self._desktops: dict[str, DesktopNet] = {}
        self._table_ready = False
        self._lock = threading.RLock()
        # Deterministic per prefix, so a restarted run finds a crashed run's rules; drawn
        # from 2^28 numbers, so two live instances practically never share one (clean-up
        # flushes the whole table).
        self.route_table = 0x10000000 + int(netpolicy._short_hash(prefix, 7), 16)
        self._uplink_source: str | None = None
        self._cleanup_due = False
        # desktop -> the socket its DNS forwarder reports refused names into (set by the owner)
        self.refusal_reporter: Callable[[str], int] | None = None

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
                            self._unprivileged.change(current, policy)
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
                stop_process(net._pasta)
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
                else self._unprivileged.ensure(desktop, policy)
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
                    self._unprivileged.apply_guard(net)
                elif on and net.policy.mode is NetMode.FULL:
                    self._unprivileged.change(net, net.policy)  # pasta was stopped: attach
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
            if desktop is None and self._root is not None:
                self._root.close()  # the ops process; a later network starts a new one

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
        """A namespace, an /etc/netns directory, a host link (by its ifalias in sysfs) or the
        nftables table of this prefix, or recorded sysctls with no run left to own them:
        anything `cleanup_stale` removes apart from policy rules. A crash leaves those only
        beside the namespace and link they route (seen here); one left alone, by a crash in
        the middle of a clean-up, matches no interface and is removed before this run's
        first desktop network.

        The sysctl record is host-wide: while another run's desktops (another prefix, their
        links seen in sysfs) route through those settings it is theirs, the last of them
        out restores it, and this run's start has nothing to clean."""
        mine = self.prefix + "-"
        for d in (NETNS_DIR, ETC_NETNS):
            if d.exists() and any(n.startswith(mine) for n in os.listdir(d)):
                return True
        aliases = _host_link_aliases()
        if any(netpolicy.alias_owner(a, self.prefix) for a in aliases):
            return True
        other_runs = any(netpolicy.other_runs_desktop(a, self.prefix) for a in aliases)
        if not other_runs and _load_json(SYSCTL_RECORD):
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
        with alloc_lock():
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
        with alloc_lock():
            try:
                old = read_sysctl(key)
            except OSError as exc:
                raise NetworkError(f"cannot read sysctl {key}: {exc}") from exc
            if old == value:
                return
            if record:
                originals = _load_json(SYSCTL_RECORD)
                originals.setdefault(key, old)
                _save_json(SYSCTL_RECORD, originals)
            write_sysctl(key, value)

    def _restore_sysctls(self) -> dict[str, str]:
        """Put recorded sysctls back unless another run's desktops still route through that
        interface (the last run out restores it). Returns what was restored."""
        assert self._root is not None
        restored: dict[str, str] = {}
        with alloc_lock():
            originals = _load_json(SYSCTL_RECORD)
            if not originals:
                return restored
            # sysfs first: with no other run's link there, no netlink (nor pyroute2) is needed
            others = (
                self._root.foreign_desktop_links(self.prefix)
                if _other_runs_visible(self.prefix)
                else []
            )
            busy = self._root.egress_of(others) if others else set()
            for key, value in list(originals.items()):
                parts = key.split(".")
                if len(parts) == 5 and parts[3] in busy:
                    log.info("leaving %s on: other zionwm desktops use %s", key, parts[3])
                    continue
                try:
                    write_sysctl(key, str(value))
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
            if read_sysctl(key) == "1":
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
        start_forwarder(
            net,
            upstreams=self._upstreams(),
            loopback_dns=self.loopback_dns,
            prefix=self.prefix,
            nft=self.caps.nft or "nft",
            min_ttl=self.min_ttl,
            source=self._uplink_source if self.uplink else None,
            refusal_fd=self.refusal_reporter(net.desktop) if self.refusal_reporter else None,
        )

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
            stop_process(proc)
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
        stop_process(net._forwarder)
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
            stop_process(proc)
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
