"""The network-ops process: the privileged path's netlink verbs (`rootops.RootOps`, pyroute2)
out of the compositor.

Started by the compositor's side (`opsclient.RootOpsClient`) at the first verb it needs, as
a plain child: the compositor's uid and capabilities, nothing more. It reads requests from
the socket it was given (`opswire`), runs the named verb and answers, one at a time, and
exits when that socket ends or its parent dies (PR_SET_PDEATHSIG), or, with ``--idle``, after
that many seconds without a request (status `IDLE_EXIT`, having read nothing more: the
client sends a request that crossed that exit again, to a new process). Only the verbs in
`VERBS` exist, each with its arguments checked; there is no way to run anything else.

    python -m zionwm.isolation.network.opsd --fd N --parent PID [--idle SECONDS]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import select
import signal
import socket
from collections.abc import Callable
from typing import Any

from zionwm.isolation.network.children import PR_SET_PDEATHSIG, libc
from zionwm.isolation.network.model import NetworkError
from zionwm.isolation.network.opswire import (
    IDLE_EXIT,
    WireError,
    nets_from_wire,
    nets_to_wire,
    plan_from_wire,
    recv_frame,
    send_frame,
)
from zionwm.isolation.network.rootops import RootOps

log = logging.getLogger("zionwm.netops")

# Names the verbs take: namespaces, interfaces, prefixes, aliases. Never a path: a name
# with a slash, or a dot name, would leave /run/netns.
_NAME = re.compile(r"^[^/\s\x00]{1,64}$")


def _name(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not _NAME.match(value) or value in (".", ".."):
        raise WireError(f"argument {key}: not a name: {value!r}")
    return value


def _opt_name(args: dict[str, Any], key: str) -> str | None:
    return None if args.get(key) is None else _name(args, key)


def _names(args: dict[str, Any], key: str) -> list[str]:
    value = args.get(key)
    if not isinstance(value, list):
        raise WireError(f"argument {key}: not a list of names: {value!r}")
    return [_name({key: v}, key) for v in value]


def _addr(args: dict[str, Any], key: str) -> str | None:
    value = args.get(key)
    if value is not None and not (isinstance(value, str) and re.match(r"^[0-9.]{7,15}$", value)):
        raise WireError(f"argument {key}: not an IPv4 address: {value!r}")
    return value


def _table(args: dict[str, Any]) -> int:
    value = args.get("table")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**32:
        raise WireError(f"argument table: not a routing table number: {value!r}")
    return value


def _plan(args: dict[str, Any]) -> Any:
    plan = plan_from_wire(args.get("plan"))
    if plan is None:
        raise WireError("argument plan is missing")
    return plan


def _delete_rules(ops: RootOps, a: dict[str, Any]) -> None:
    ifnames = None if a.get("ifnames") is None else set(_names(a, "ifnames"))
    tag = a.get("if_tag", "")
    if not isinstance(tag, str):
        raise WireError(f"argument if_tag: not a string: {tag!r}")
    ops.delete_rules(_table(a), ifnames, tag)


Verb = Callable[[RootOps, dict[str, Any]], Any]

VERBS: dict[str, Verb] = {
    "create_netns": lambda ops, a: str(ops.create_netns(_name(a, "name"))),
    "remove_netns": lambda ops, a: ops.remove_netns(_name(a, "name")),
    "configure_inside": lambda ops, a: ops.configure_inside(
        _name(a, "ns"), _opt_name(a, "ns_if"), plan_from_wire(a.get("plan"))
    ),
    "create_veth": lambda ops, a: ops.create_veth(
        _name(a, "ns"), _name(a, "host_if"), _name(a, "ns_if"), _name(a, "alias"), _plan(a)
    ),
    "delete_link": lambda ops, a: ops.delete_link(_name(a, "ifname")),
    "links_with_alias_prefix": lambda ops, a: [
        list(pair) for pair in ops.links_with_alias_prefix(_name(a, "prefix"))
    ],
    "foreign_desktop_links": lambda ops, a: ops.foreign_desktop_links(_name(a, "prefix")),
    "egress_of": lambda ops, a: sorted(ops.egress_of(_names(a, "ifnames"))),
    "used_networks": lambda ops, a: nets_to_wire(ops.used_networks()),
    "add_uplink_routing": lambda ops, a: ops.add_uplink_routing(
        _table(a),
        _name(a, "uplink"),
        _addr(a, "gateway"),
        _addr(a, "source"),
        nets_from_wire(a.get("desktop_nets")),
    ),
    "add_desktop_rule": lambda ops, a: ops.add_desktop_rule(_table(a), _name(a, "host_if")),
    "delete_rules": _delete_rules,
    "first_address": lambda ops, a: ops.first_address(_name(a, "ifname")),
    "interfaces_of_default_routes": lambda ops, a: ops.interfaces_of_default_routes(),
}


def handle(ops: RootOps, request: dict[str, Any]) -> dict[str, Any]:
    """One request's answer; a failing verb is an answer too, never the end of the process."""
    verb, args = request.get("verb"), request.get("args", {})
    fn = VERBS.get(verb) if isinstance(verb, str) else None
    if fn is None or not isinstance(args, dict):
        return {"error": f"no such verb: {verb!r}", "type": "WireError"}
    try:
        return {"ok": fn(ops, args)}
    except NetworkError as exc:
        return {"error": str(exc), "type": "NetworkError"}
    except WireError as exc:
        return {"error": f"{verb}: {exc}", "type": "WireError"}
    except OSError as exc:
        return {"error": str(exc), "type": "OSError", "errno": exc.errno}
    except Exception as exc:  # pyroute2's NetlinkError and the like: told, not fatal
        log.debug("%s failed", verb, exc_info=True)
        return {"error": f"{verb}: {type(exc).__name__}: {exc}", "type": type(exc).__name__}


def serve(sock: socket.socket, ops: RootOps, idle: float | None = None) -> int:
    """Answer requests until the stream ends (0), stops making sense (2), or nothing comes
    for `idle` seconds (`IDLE_EXIT`)."""
    while True:
        if idle is not None and not select.select([sock], [], [], idle)[0]:
            return IDLE_EXIT
        try:
            request = recv_frame(sock)
        except WireError as exc:
            log.error("bad request, stopping: %s", exc)
            return 2
        except OSError:
            return 0
        if request is None:
            return 0
        try:
            send_frame(sock, handle(ops, request))
        except OSError:
            return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="zionwm-netops", description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--fd", type=int, required=True, help="the socket to serve")
    ap.add_argument("--parent", type=int, required=True, help="the pid that started us")
    ap.add_argument("--idle", type=float, help="exit after this many seconds without a request")
    args = ap.parse_args(argv)
    # Gone with the compositor even on SIGKILL; a parent already gone never sends it.
    libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != args.parent:
        return 1
    # A Ctrl-C in the compositor's terminal is the compositor's to handle: it still needs
    # this process to take the desktops' networks down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    level = getattr(logging, os.environ.get("ZIONWM_LOG", "warning").upper(), logging.WARNING)
    logging.basicConfig(
        level=max(level, logging.INFO), format="%(levelname)s zionwm-netops: %(message)s"
    )
    os.set_inheritable(args.fd, False)  # for what pyroute2 may fork or exec
    with socket.socket(fileno=args.fd) as sock:
        return serve(sock, RootOps(), args.idle)


if __name__ == "__main__":
    raise SystemExit(main())
