"""The compositor's side of the network-ops process: `RootOpsClient`, with the verbs of
`rootops.RootOps`, each one a request to the process (`opsd`) that runs it.

pyroute2 never comes into the caller's process. The ops process is started at the first
netlink verb, as a plain child (same uid, same capabilities), over a socketpair; it dies
with the caller (PR_SET_PDEATHSIG, and the end of its socket). Note that the kernel sends
that signal when the *thread* that started it ends: the manager's first netlink verb runs
on a thread that lives as long as the process (the compositor's main thread); if it did
not, the process would end with that thread and the next verb would start another.

It leaves by itself after `idle` seconds without a verb (its 30 MiB or so are then given
back; the next verb starts a new one, about 0.15 s, most of it pyroute2's import). A verb
that crosses that exit is sent again: the process left without reading it.

Failures are errors, never hangs: every answer is awaited at most `timeout` seconds; a
process that does not answer in time is killed, and one that dies (killed, crashed) is
replaced. A verb that was under way when that happened fails with a `NetworkError` that
says so (it may have been half done, as with any failed verb: the manager undoes what it
built); the next verb starts a fresh process. One found dead between verbs is replaced
before the verb is sent, which then runs as usual. Errors of the verbs themselves come back
as the same `NetworkError` (or `OSError`) with the same message. The ``nft`` verbs run
here (`nftcmd.NftCommand`): they need no netlink, and so no ops process.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zionwm.isolation.network.model import NetworkError
from zionwm.isolation.network.nftcmd import NftCommand
from zionwm.isolation.network.opswire import (
    IDLE_EXIT,
    WireError,
    nets_from_wire,
    nets_to_wire,
    plan_to_wire,
    recv_frame,
    send_frame,
)
from zionwm.isolation.network.policy import AddressPlan

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0  # seconds; a verb normally takes milliseconds
# Networks are built and removed in bursts (a session's start, a launch, a policy change);
# switching one on or off is nft, not netlink. Between bursts the process is not kept.
DEFAULT_IDLE = 60.0


class RootOpsClient(NftCommand):
    """`RootOps`' verbs, run in the network-ops process (started on first need)."""

    def __init__(
        self, nft: str, timeout: float = DEFAULT_TIMEOUT, idle: float | None = DEFAULT_IDLE
    ) -> None:
        super().__init__(nft)
        self.timeout = timeout
        self.idle = idle
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self.starts = 0  # how many ops processes this client started

    # -- the process ----------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The ops process's pid while one runs (or ran and is not yet replaced)."""
        return self._proc.pid if self._proc is not None else None

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
        argv = [sys.executable, "-m", "zionwm.isolation.network.opsd"]
        argv += ["--fd", str(theirs.fileno()), "--parent", str(os.getpid())]
        if self.idle is not None:
            argv += ["--idle", str(self.idle)]
        try:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, env=env, pass_fds=(theirs.fileno(),)
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours
        self.starts += 1
        log.info("network ops process started (pid %d)", self._proc.pid)

    def _stop(self, kill: bool = False) -> int | None:
        """End the process (if it still runs) and forget it; its exit status. `kill`: it
        does not answer, so it is not asked."""
        proc, sock = self._proc, self._sock
        self._proc = self._sock = None
        if sock is not None:
            sock.close()  # its end of stream: it exits by itself
        if proc is None:
            return None
        if kill:
            proc.kill()
        try:
            return proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def close(self) -> None:
        """Stop the ops process; the next verb starts a new one."""
        with self._lock:
            self._stop()

    def _call(self, verb: str, **args: Any) -> Any:
        with self._lock:
            reply = self._exchange(verb, args)
            if reply is None:  # it left idle without reading the request: a new one reads it
                reply = self._exchange(verb, args)
            if reply is None:
                raise NetworkError(f"network ops process left twice before reading {verb}")
        if "ok" in reply:
            return reply["ok"]
        message = str(reply.get("error", "no answer"))
        if reply.get("type") == "OSError" and isinstance(reply.get("errno"), int):
            raise OSError(reply["errno"], message)
        raise NetworkError(message)

    def _exchange(self, verb: str, args: dict[str, Any]) -> dict[str, Any] | None:
        """The answer to one request; None if the process had left idle before reading it."""
        if self._proc is not None and self._proc.poll() is not None:
            rc = self._proc.returncode
            if rc == IDLE_EXIT:
                log.debug("network ops process (pid %d) left idle", self._proc.pid)
            else:
                log.warning(
                    "network ops process (pid %d) exited with status %s; starting a new one",
                    self._proc.pid,
                    rc,
                )
            self._stop()
        if self._proc is None:
            self._start()
        assert self._proc is not None and self._sock is not None
        pid = self._proc.pid
        try:
            self._sock.settimeout(self.timeout)
            send_frame(self._sock, {"verb": verb, "args": args})
            reply = recv_frame(self._sock)
        except TimeoutError:
            self._stop(kill=True)
            raise NetworkError(
                f"network ops process (pid {pid}) did not answer {verb} within "
                f"{self.timeout:g} s: stopped; the next network change starts a new one"
            ) from None
        except (OSError, WireError) as exc:
            reply = None
            log.debug("network ops process: %s", exc)
        if reply is not None:
            return reply
        status = self._stop()
        if status == IDLE_EXIT:
            return None
        raise NetworkError(
            f"network ops process (pid {pid}) ended during {verb} (exit status "
            f"{status}); the next network change starts a new one"
        )

    # -- the verbs (see rootops.RootOps for what each does) -------------------------------

    def create_netns(self, name: str) -> Path:
        return Path(self._call("create_netns", name=name))

    def remove_netns(self, name: str) -> None:
        self._call("remove_netns", name=name)

    def configure_inside(self, ns: str, ns_if: str | None, plan: AddressPlan | None) -> None:
        self._call("configure_inside", ns=ns, ns_if=ns_if, plan=plan_to_wire(plan))

    def create_veth(self, ns: str, host_if: str, ns_if: str, alias: str, plan: AddressPlan) -> None:
        self._call(
            "create_veth", ns=ns, host_if=host_if, ns_if=ns_if, alias=alias, plan=plan_to_wire(plan)
        )

    def delete_link(self, ifname: str) -> None:
        self._call("delete_link", ifname=ifname)

    def links_with_alias_prefix(self, prefix: str) -> list[tuple[str, str]]:
        return [(str(a), str(b)) for a, b in self._call("links_with_alias_prefix", prefix=prefix)]

    def foreign_desktop_links(self, prefix: str) -> list[str]:
        return [str(n) for n in self._call("foreign_desktop_links", prefix=prefix)]

    def egress_of(self, ifnames: list[str]) -> set[str]:
        return {str(n) for n in self._call("egress_of", ifnames=list(ifnames))}

    def used_networks(self) -> list[ipaddress.IPv4Network]:
        return nets_from_wire(self._call("used_networks"))

    def add_uplink_routing(
        self,
        table: int,
        uplink: str,
        gateway: str | None,
        source: str | None,
        desktop_nets: Sequence[ipaddress.IPv4Network],
    ) -> None:
        self._call(
            "add_uplink_routing",
            table=table,
            uplink=uplink,
            gateway=gateway,
            source=source,
            desktop_nets=nets_to_wire(desktop_nets),
        )

    def add_desktop_rule(self, table: int, host_if: str) -> None:
        self._call("add_desktop_rule", table=table, host_if=host_if)

    def delete_rules(self, table: int, ifnames: set[str] | None, if_tag: str = "") -> None:
        names = None if ifnames is None else sorted(ifnames)
        self._call("delete_rules", table=table, ifnames=names, if_tag=if_tag)

    def first_address(self, ifname: str) -> str | None:
        found = self._call("first_address", ifname=ifname)
        return None if found is None else str(found)

    def interfaces_of_default_routes(self) -> list[str]:
        return [str(n) for n in self._call("interfaces_of_default_routes")]
