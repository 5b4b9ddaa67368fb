"""Namespace, veth and routing plumbing over netlink (pyroute2): root only, and only ever in
the network-ops process (`opsd`), never in the compositor.

`RootOps` is the narrow set of netlink verbs through which the privileged path changes the
kernel's network configuration; the compositor reaches them through `opsclient`, whose
protocol offers these verbs and nothing else. The ``nft`` verbs are `nftcmd.NftCommand`.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zionwm.isolation.network import policy as netpolicy
from zionwm.isolation.network.caps import ETC_NETNS, NETNS_DIR
from zionwm.isolation.network.model import NetworkError
from zionwm.isolation.network.nsutil import in_netns, write_sysctl
from zionwm.isolation.network.policy import AddressPlan

log = logging.getLogger(__name__)

RULE_PRIORITY = 100  # policy rules sending desktops' traffic to the uplink table


def _iproute() -> Any:
    """A netlink socket of pyroute2, imported at the first verb that needs one: its package
    loads every netlink family it knows, asyncio and ssl (about 17 MiB resident), and only
    the ops process, started for a desktop that has a network of its own, ever loads it."""
    from pyroute2 import IPRoute  # noqa: PLC0415

    return IPRoute()


def _netns() -> Any:
    from pyroute2 import netns  # noqa: PLC0415

    return netns


class RootOps:
    """The netlink verbs of the privileged path (root; in the ops process only)."""

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
            write_sysctl("net.ipv6.conf.all.disable_ipv6", "1")
            write_sysctl("net.ipv6.conf.default.disable_ipv6", "1")
            with _iproute() as ip:
                ip.link("set", index=ip.link_lookup(ifname="lo")[0], state="up")
                if ns_if is None or plan is None:
                    return
                idx = ip.link_lookup(ifname=ns_if)[0]
                ip.addr("add", index=idx, address=str(plan.peer), prefixlen=plan.prefixlen)
                ip.link("set", index=idx, state="up")
                ip.route("add", dst="0.0.0.0/0", gateway=str(plan.host))

        in_netns(NETNS_DIR / ns, work)

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
                if netpolicy.other_runs_desktop(link.get("ifalias"), prefix):
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
