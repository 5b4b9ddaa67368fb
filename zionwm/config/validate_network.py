"""A desktop's network: `Network.none()`, `.full()` or `.filtered([...])` and its `Allow`
rules, to `spec.NetworkPolicy`."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from zionwm.config.api import Allow, Network, _Decl
from zionwm.config.units import _HOSTNAME, _bool
from zionwm.config.validate_report import Fields
from zionwm.isolation import spec


def allow_rule(value: object) -> spec.AllowRule:
    if isinstance(value, str):
        value = Allow(value)
    if not isinstance(value, Allow):
        raise ValueError(f"allow entries are Allow(...) or host strings, not {value!r}")
    v = value._values
    host = v["host"]
    if not isinstance(host, str) or not host:
        raise ValueError(f"Allow host must be a non-empty string, not {host!r}")
    host = host.strip().lower()
    if "/" in host or ":" in host or host.replace(".", "").isdigit():
        try:
            host = str(ipaddress.ip_network(host, strict=True))
        except ValueError as exc:
            raise ValueError(f"Allow host {v['host']!r} is not a valid address: {exc}") from None
        if host.endswith(("/32", "/128")):
            host = host.rsplit("/", 1)[0]
    elif len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise ValueError(
            f"Allow host {v['host']!r} is not a host name ('example.org', '*.example.org'), "
            "an address or a CIDR"
        )
    ports_raw = v["ports"]
    ports_seq = (ports_raw,) if isinstance(ports_raw, int) else ports_raw
    if not isinstance(ports_seq, Sequence) or isinstance(ports_seq, str):
        raise ValueError(f"Allow ports must be a port or a list of ports, not {ports_raw!r}")
    ports = []
    for p in ports_seq:
        if not isinstance(p, int) or isinstance(p, bool) or not 1 <= p <= 65535:
            raise ValueError(f"Allow ports are 1..65535, not {p!r}")
        ports.append(p)
    proto = v["proto"]
    if proto not in ("tcp", "udp", "any"):
        raise ValueError(f"Allow proto must be 'tcp', 'udp' or 'any', not {proto!r}")
    return spec.AllowRule(host=host, ports=tuple(sorted(set(ports))), proto=str(proto))


def network_policy(decl: object, f: Fields) -> spec.NetworkPolicy:
    if decl is None:
        return spec.NetworkPolicy()
    if isinstance(decl, str):
        decl = Network(decl)
    if not isinstance(decl, Network):
        f.error(f"network must be Network.none(), .full() or .filtered(...), not {decl!r}")
        return spec.NetworkPolicy()
    f.unknown(decl, "Network()")
    line = decl._line or f.line
    v = decl._values
    try:
        mode = spec.NetMode(v["mode"])  # type: ignore[arg-type]  # checked below
    except ValueError:
        f.error(f"network: mode must be 'none', 'full' or 'filtered', not {v['mode']!r}", line)
        return spec.NetworkPolicy()
    block_lan = f.get("network: block_lan", _bool, v["block_lan"], False)
    allow_raw = v["allow"]
    rules: list[spec.AllowRule] = []
    if isinstance(allow_raw, str) or not isinstance(allow_raw, Sequence):
        f.error(f"network: allow must be a list of Allow(...) or host strings, not {allow_raw!r}")
        allow_raw = ()
    for item in allow_raw:
        try:
            rules.append(allow_rule(item))
        except ValueError as exc:
            item_line = item._line if isinstance(item, _Decl) and item._line else line
            f.error(f"network: {exc}", item_line)
        if isinstance(item, Allow):
            f.unknown(item, "Allow()")
    if rules and mode is not spec.NetMode.FILTERED:
        f.error(f"network: allow rules only apply to Network.filtered(), not {mode.value!r}", line)
    if mode is spec.NetMode.FILTERED and not allow_raw:
        f.warn("network: filtered with an empty allow list reaches nothing (as none())", line)
    return spec.NetworkPolicy(mode=mode, allow=tuple(rules), block_lan=block_lan)
