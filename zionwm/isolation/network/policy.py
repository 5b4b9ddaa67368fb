"""Pure network-policy core: names, address plan and nftables text for desktop namespaces.

Everything here is a plain function on data (no I/O), so the privileged shell in
of `zionwm.isolation.network` stays thin and these decisions are unit-tested directly:

- the names of a desktop's kernel objects (namespace, host-side veth, nft chains and sets),
  all derived from a per-run *prefix* so that two managers never touch each other's objects;
- the /30 allocated to a desktop's veth pair, chosen to avoid every route the host has;
- which allow rules a DNS name matches (the DNS filter's decision);
- the nftables ruleset text: one ``inet <prefix>`` table holding shared base chains that
  dispatch, through verdict maps keyed by interface name, to per-desktop chains.

The ruleset is written for the ``nft`` command (see `manager` for why not pyroute2's
nftables module).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zionwm.isolation.instance import sha256_hex
from zionwm.isolation.spec import AllowRule, NetMode, NetworkPolicy

DEFAULT_PREFIX = "zionwm"
IFNAMSIZ = 15  # usable characters of a Linux interface name
DESKTOP_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
HOSTNAME_RE = re.compile(r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_-]{1,63}\.?$")

# Destinations a desktop with block_lan must not reach (RFC 1918, CGNAT, link-local,
# multicast incl. mDNS, broadcast; IPv6 ULA and link-local). The documentation ranges stay
# reachable on purpose: they stand for "the internet" in tests.
LAN_BLOCK_V4: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "255.255.255.255/32",
)
LAN_BLOCK_V6: tuple[str, ...] = ("fe80::/10", "fc00::/7", "ff00::/8")

# Pools the desktops' point-to-point links are carved from, in order, when the caller gives
# none: a host routing all of 10/8 (a corporate VPN) still leaves the others.
DEFAULT_POOLS: tuple[ipaddress.IPv4Network, ...] = (
    ipaddress.IPv4Network("10.213.0.0/16"),
    ipaddress.IPv4Network("172.29.0.0/16"),
    ipaddress.IPv4Network("192.168.213.0/24"),
)
DEFAULT_POOL = DEFAULT_POOLS[0]


class PolicyError(ValueError):
    """A name or policy that cannot be turned into kernel objects safely."""


def check_prefix(prefix: str) -> str:
    if not PREFIX_RE.match(prefix):
        raise PolicyError(f"network prefix {prefix!r} must match {PREFIX_RE.pattern}")
    return prefix


def check_desktop(desktop: str) -> str:
    if not DESKTOP_RE.match(desktop):
        raise PolicyError(f"desktop name {desktop!r} must match {DESKTOP_RE.pattern}")
    return desktop


def _short_hash(text: str, n: int) -> str:
    return sha256_hex(text)[:n]


def netns_name(prefix: str, desktop: str) -> str:
    """Namespace name, visible as /run/netns/<name>: ``zionwm-web`` for the default prefix."""
    return f"{check_prefix(prefix)}-{check_desktop(desktop)}"


def veth_names(prefix: str, desktop: str) -> tuple[str, str]:
    """(host side, namespace side) interface names.

    The host side is ``zw-<desktop>`` for the default prefix and ``zw<hash4>-<desktop>`` for
    others, so concurrent runs never collide. Names longer than 15 characters keep their
    head and end in a hash of the full name, so two long desktop names stay distinct.
    """
    check_desktop(desktop)
    name = veth_tag(prefix) + desktop
    if len(name) > IFNAMSIZ:
        name = name[: IFNAMSIZ - 5] + "-" + _short_hash(f"{prefix}/{desktop}", 4)
    return name, "eth0"


def veth_tag(prefix: str) -> str:
    """The start every host-side veth name of this prefix has (kept when truncating)."""
    check_prefix(prefix)
    return "zw-" if prefix == DEFAULT_PREFIX else "zw" + _short_hash(prefix, 4) + "-"


def link_alias(prefix: str, desktop: str) -> str:
    """The ifalias marking a host-side veth as ours; cleanup finds stale links by it."""
    return f"{prefix}:{desktop}"


def alias_owner(alias: str | None, prefix: str) -> str | None:
    """The desktop named by an ifalias written by `link_alias` for this prefix, else None."""
    if not alias or not alias.startswith(prefix + ":"):
        return None
    desktop = alias[len(prefix) + 1 :]
    return desktop if DESKTOP_RE.match(desktop) else None


def other_runs_desktop(alias: str | None, prefix: str) -> bool:
    """Whether an ifalias marks a desktop's veth of another zionwm run (another prefix)."""
    if not alias or ":" not in alias:
        return False
    other, _, desktop = alias.partition(":")
    return other != prefix and bool(PREFIX_RE.match(other)) and bool(DESKTOP_RE.match(desktop))


def table_name(prefix: str) -> str:
    return check_prefix(prefix)


def _ident(desktop: str) -> str:
    # Injective mapping to an nft identifier: "_" doubles, "-" becomes "_m".
    return check_desktop(desktop).replace("_", "__").replace("-", "_m")


def chain_names(desktop: str) -> tuple[str, str, str, str]:
    """(outbound forward, inbound forward, input-to-host, DNS redirect) chains of a desktop."""
    ident = _ident(desktop)
    return f"d_{ident}_out", f"d_{ident}_ret", f"d_{ident}_in", f"d_{ident}_dns"


def set_name(desktop: str, rule_index: int) -> str:
    """The nft set holding the DNS-learned addresses of host-name rule `rule_index`."""
    return f"d_{_ident(desktop)}_h{rule_index}"


# ---------------------------------------------------------------------------------------------
# Address plan


@dataclass(frozen=True)
class AddressPlan:
    """A desktop's point-to-point link: host side is the gateway and DNS forwarder."""

    subnet: ipaddress.IPv4Network
    host: ipaddress.IPv4Address
    peer: ipaddress.IPv4Address

    @property
    def prefixlen(self) -> int:
        return self.subnet.prefixlen


def plan_for(subnet: ipaddress.IPv4Network) -> AddressPlan:
    hosts = list(subnet.hosts()) if subnet.prefixlen < 31 else list(subnet)
    if len(hosts) < 2:
        raise PolicyError(f"{subnet} is too small for a point-to-point link")
    return AddressPlan(subnet=subnet, host=hosts[0], peer=hosts[1])


def allocate_subnet(
    avoid: Iterable[ipaddress.IPv4Network],
    pools: Sequence[ipaddress.IPv4Network] = DEFAULT_POOLS,
    prefixlen: int = 30,
) -> AddressPlan:
    """The first /30 of `pools` that overlaps none of `avoid` (host routes, addresses, ours).

    A default route (0.0.0.0/0) in `avoid` is ignored: it overlaps everything by nature,
    and the desktop's connected route is more specific than it.
    """
    blocked = [n for n in avoid if n.prefixlen > 0]
    for pool in pools:
        for candidate in pool.subnets(new_prefix=prefixlen):
            if not any(candidate.overlaps(n) for n in blocked):
                return plan_for(candidate)
    raise PolicyError(f"no free /{prefixlen} left in {', '.join(map(str, pools))}")


# ---------------------------------------------------------------------------------------------
# Allow rules


def rule_network(rule: AllowRule) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The rule's destination as a network when it is an address or CIDR, else None."""
    try:
        return ipaddress.ip_network(rule.host, strict=False)
    except ValueError:
        return None


def normalise_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def name_matches(pattern: str, name: str) -> bool:
    """``*.example.org`` matches sub.example.org and a.b.example.org, not example.org."""
    pattern = normalise_name(pattern)
    name = normalise_name(name)
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return name == pattern


def name_rules(policy: NetworkPolicy, name: str) -> tuple[int, ...]:
    """Indices of the policy's host-name rules that allow `name` (empty: refuse to resolve)."""
    if policy.mode is not NetMode.FILTERED:
        return ()
    return tuple(
        i
        for i, rule in enumerate(policy.allow)
        if rule_network(rule) is None and name_matches(rule.host, name)
    )


def validate_policy(policy: NetworkPolicy) -> None:
    """Reject allow rules that would render to a wrong or ambiguous nft rule."""
    for rule in policy.allow:
        if rule.proto not in ("tcp", "udp", "any"):
            raise PolicyError(f"allow rule {rule.host!r}: proto must be tcp, udp or any")
        if any(not 0 < p < 65536 for p in rule.ports):
            raise PolicyError(f"allow rule {rule.host!r}: ports must be 1..65535")
        if rule_network(rule) is None and not HOSTNAME_RE.match(normalise_name(rule.host)):
            raise PolicyError(f"allow rule {rule.host!r} is neither a CIDR nor a host name")


# ---------------------------------------------------------------------------------------------
# nftables text


@dataclass(frozen=True)
class DesktopRules:
    """What the ruleset needs to know about one desktop with a veth."""

    desktop: str
    policy: NetworkPolicy
    host_if: str
    plan: AddressPlan
    enabled: bool = True
    dns_port: int = 53
    # Bumped on every policy change: connections the old policy let through carry an older
    # conntrack mark and are judged again by the new allow-list instead of riding on
    # "established".
    generation: int = 1


def _q(ifname: str) -> str:
    if not re.match(r"^[A-Za-z0-9_.-]{1,15}$", ifname):
        raise PolicyError(f"bad interface name {ifname!r}")
    return f'"{ifname}"'


def base_ruleset(prefix: str, uplink: str | None) -> str:
    """The shared table, replacing any previous one of this prefix in one transaction.

    Packets from and to a desktop's veth are dispatched through verdict maps keyed by
    interface name, so adding or removing a desktop never rewrites the shared chains.
    Priority -5 runs before a distribution's own filter chains at 0; a drop here is final.
    """
    t = table_name(prefix)
    masq = (
        f"iifname @desktop_ifs oifname {_q(uplink)} masquerade"
        if uplink
        else "iifname @desktop_ifs oifname != @desktop_ifs masquerade"
    )
    return f"""add table inet {t}
delete table inet {t}
table inet {t} {{
    set desktop_ifs {{ type ifname; }}
    map from_desktop {{ type ifname : verdict; }}
    map to_desktop {{ type ifname : verdict; }}
    map input_from_desktop {{ type ifname : verdict; }}
    map dns_from_desktop {{ type ifname : verdict; }}
    chain forward {{
        type filter hook forward priority -5; policy accept;
        iifname vmap @from_desktop
        oifname vmap @to_desktop
    }}
    chain input {{
        type filter hook input priority -5; policy accept;
        iifname vmap @input_from_desktop
    }}
    chain prerouting {{
        type nat hook prerouting priority -100; policy accept;
        iifname vmap @dns_from_desktop
    }}
    chain postrouting {{
        type nat hook postrouting priority 95; policy accept;
        {masq}
    }}
}}
"""


def _ports(rule: AllowRule) -> str:
    if not rule.ports:
        return ""
    ports = ", ".join(str(p) for p in sorted(set(rule.ports)))
    return f" th dport {{ {ports} }}"


def _proto(rule: AllowRule) -> str:
    if rule.proto == "any":
        return " meta l4proto { tcp, udp }" if rule.ports else ""
    return f" meta l4proto {rule.proto}"


def _allow_lines(d: DesktopRules) -> list[str]:
    lines: list[str] = []
    for i, rule in enumerate(d.policy.allow):
        net = rule_network(rule)
        match = _proto(rule) + _ports(rule)
        verdict = f"ct mark set {d.generation} accept"
        if net is None:
            lines.append(f"ip daddr @{set_name(d.desktop, i)}{match} {verdict}")
        elif net.version == 4:
            lines.append(f"ip daddr {net}{match} {verdict}")
        # IPv6 CIDRs are accepted by the config but the desktops have no IPv6 path.
    return lines


def desktop_ruleset(prefix: str, d: DesktopRules, uplink: str | None) -> str:
    """(Re)write one desktop's chains and sets atomically; learned set elements survive.

    Outbound: cut when disabled (TCP reset, ICMP admin-prohibited for the rest, so an open
    connection fails on its next request instead of hanging), only through the uplink, never
    to another desktop, no IPv6, LAN blocked if asked, then the mode's verdict.
    Inbound: replies only. To the host itself: DNS to the forwarder and ping, nothing else.
    A filtered desktop's DNS, to any server, is redirected to its forwarder.
    """
    if d.policy.mode is NetMode.NONE:
        raise PolicyError("a 'none' desktop has no veth and no rules")
    validate_policy(d.policy)
    t = table_name(prefix)
    out, ret, inp, dns = chain_names(d.desktop)
    ifq = _q(d.host_if)
    lines: list[str] = []
    for chain in (out, ret, inp, dns):
        lines.append(f"add chain inet {t} {chain}")
        lines.append(f"flush chain inet {t} {chain}")
    for i, rule in enumerate(d.policy.allow):
        if rule_network(rule) is None:
            lines.append(
                f"add set inet {t} {set_name(d.desktop, i)} {{ type ipv4_addr; flags timeout; }}"
            )

    def add(chain: str, text: str) -> None:
        lines.append(f"add rule inet {t} {chain} {text}")

    def refuse(chain: str, match: str = "") -> None:
        # TCP gets a reset: an open connection fails on its next write, a new one at once
        # (Linux takes ICMP errors on an established connection as soft, and retries).
        head = f"{match} " if match else ""
        add(chain, f"{head}meta l4proto tcp reject with tcp reset")
        add(chain, f"{head}reject with icmpx admin-prohibited")

    if not d.enabled:
        refuse(out)
        add(ret, "drop")
        refuse(inp)
    else:
        add(out, "meta nfproto ipv6 drop")
        if uplink:
            add(out, f"oifname != {_q(uplink)} drop")
        add(out, "oifname @desktop_ifs drop")
        if d.policy.block_lan:
            refuse(out, "ip daddr { " + ", ".join(LAN_BLOCK_V4) + " }")
        if d.policy.mode is NetMode.FULL:
            add(out, "accept")
        else:
            add(out, f"ct state established,related ct mark {d.generation} accept")
            for text in _allow_lines(d):
                add(out, text)
            refuse(out)
        add(ret, "ct state established,related accept")
        add(ret, "drop")
        add(inp, "ct state established,related accept")
        host = d.plan.host
        add(inp, f"ip daddr {host} meta l4proto {{ tcp, udp }} th dport {d.dns_port} accept")
        add(inp, f"ip daddr {host} icmp type echo-request accept")
        refuse(inp)
    if d.policy.mode is NetMode.FILTERED:
        # Every DNS query goes to the filter, whatever resolver the program was told of
        # (the host's resolv.conf, a hard-coded public one): filtered names stay filtered.
        add(dns, f"meta l4proto {{ tcp, udp }} th dport 53 dnat ip to {d.plan.host}:{d.dns_port}")
    lines.append(f"add element inet {t} desktop_ifs {{ {ifq} }}")
    lines.append(f"add element inet {t} from_desktop {{ {ifq} : jump {out} }}")
    lines.append(f"add element inet {t} to_desktop {{ {ifq} : jump {ret} }}")
    lines.append(f"add element inet {t} input_from_desktop {{ {ifq} : jump {inp} }}")
    lines.append(f"add element inet {t} dns_from_desktop {{ {ifq} : jump {dns} }}")
    return "\n".join(lines) + "\n"


def remove_desktop_ruleset(
    prefix: str, desktop: str, host_if: str, set_indices: Iterable[int]
) -> str:
    """Unhook and delete one desktop's chains and sets (map elements first: chains in use)."""
    t = table_name(prefix)
    ifq = _q(host_if)
    lines = [
        f"delete element inet {t} from_desktop {{ {ifq} }}",
        f"delete element inet {t} to_desktop {{ {ifq} }}",
        f"delete element inet {t} input_from_desktop {{ {ifq} }}",
        f"delete element inet {t} dns_from_desktop {{ {ifq} }}",
        f"delete element inet {t} desktop_ifs {{ {ifq} }}",
    ]
    for chain in chain_names(desktop):
        lines.append(f"delete chain inet {t} {chain}")
    for i in set_indices:
        lines.append(f"delete set inet {t} {set_name(desktop, i)}")
    return "\n".join(lines) + "\n"


def learned_elements(
    prefix: str, desktop: str, rule_indices: Iterable[int], addrs: Iterable[str], ttl: int
) -> str:
    """Add (or refresh) DNS-learned addresses in the sets of the rules that allowed them."""
    t = table_name(prefix)
    v4 = sorted({str(ipaddress.IPv4Address(a)) for a in addrs})
    if not v4:
        return ""
    elems = ", ".join(f"{a} timeout {max(1, int(ttl))}s" for a in v4)
    return "".join(
        f"add element inet {t} {set_name(desktop, i)} {{ {elems} }}\n" for i in rule_indices
    )


def resolv_conf(plan: AddressPlan | None) -> str:
    """The resolv.conf a desktop's sandboxes see: its own forwarder, or nothing at all."""
    if plan is None:
        return "# zionwm: this desktop has no network\n"
    return f"# zionwm: the desktop's DNS forwarder\nnameserver {plan.host}\noptions edns0\n"


# ---------------------------------------------------------------------------------------------
# Unprivileged path: rules inside the desktop's own namespace

GUARD_TABLE = "zionwm_guard"


def guard_ruleset(
    *, block_lan: bool, enabled: bool, lan_dns: Iterable[str] = (), dns_port: int = 53
) -> str:
    """The output filter inside a pasta desktop's namespace, replacing any earlier one.

    It is written by zionwm as root of the namespace's user namespace; the sandboxes sit in
    user namespaces nested below it and hold no capability over this network namespace, so
    they cannot change it. `lan_dns`: resolvers on the LAN that a `block_lan` desktop may
    still ask (the host's own, from its resolv.conf); nothing else on the LAN.
    """
    t = GUARD_TABLE
    lines = [
        f"add table inet {t}",
        f"delete table inet {t}",
        f"add table inet {t}",
        f"add chain inet {t} output {{ type filter hook output priority -5; policy accept; }}",
    ]

    def add(text: str) -> None:
        lines.append(f"add rule inet {t} output {text}")

    def refuse(match: str = "") -> None:
        head = f"{match} " if match else ""
        add(f"{head}meta l4proto tcp reject with tcp reset")
        add(f"{head}reject with icmpx admin-prohibited")

    add('oifname "lo" accept')
    if not enabled:
        refuse()
    else:
        add("meta nfproto ipv6 drop")  # the namespace has no IPv6 path; keep it that way
        if block_lan:
            v4 = sorted({str(ipaddress.IPv4Address(a)) for a in lan_dns})
            if v4:
                add(
                    f"ip daddr {{ {', '.join(v4)} }} meta l4proto {{ tcp, udp }} "
                    f"th dport {dns_port} accept"
                )
            refuse("ip daddr { " + ", ".join(LAN_BLOCK_V4) + " }")
    return "\n".join(lines) + "\n"


def lan_resolvers(nameservers: Iterable[str]) -> list[str]:
    """The IPv4 resolvers among `nameservers` that `block_lan` would otherwise cut off."""
    nets = [ipaddress.IPv4Network(n) for n in LAN_BLOCK_V4]
    out = []
    for ns in nameservers:
        try:
            addr = ipaddress.ip_address(ns)
        except ValueError:
            continue
        if addr.version == 4 and any(addr in n for n in nets):
            out.append(str(addr))
    return out
