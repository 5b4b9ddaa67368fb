"""The unprivileged path: a desktop's network without root.

`none` is bwrap's own ``--unshare-net`` (no namespace of ours). `full` is a user+network
namespace held by a small process with ``pasta`` (Debian's passt) attached to it; the
launcher enters `DesktopNet.userns_path()` before `netns_path()`. pasta maps nothing to the
host's loopback (``--no-map-gw``) and forwards nothing inbound. `block_lan` and off are an
nftables table inside the desktop's namespace (`policy.guard_ruleset`), written as root of
its user namespace; without ``nft`` `block_lan` fails closed. `filtered` cannot be
enforced here and fails closed to `none`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import select
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from zionwm.isolation.network import policy as netpolicy
from zionwm.isolation.network.caps import Capabilities
from zionwm.isolation.network.children import die_with, stop_process
from zionwm.isolation.network.forwarder import host_nameservers
from zionwm.isolation.network.model import DesktopNet, NetworkError
from zionwm.isolation.spec import NetMode, NetworkPolicy

log = logging.getLogger(__name__)


class PastaPath:
    """Builds, changes and switches the desktops' networks on the unprivileged path."""

    def __init__(self, caps: Capabilities, pasta_args: Sequence[str]) -> None:
        self.caps = caps
        self.pasta_args = list(pasta_args)
        self._saved_routes: dict[str, list[str]] = {}

    def ensure(self, desktop: str, policy: NetworkPolicy) -> DesktopNet:
        refused = self.refusal(policy)
        if policy.mode is NetMode.NONE or refused is not None:
            if refused is not None:
                log.warning("desktop %s: %s", desktop, refused)
            return DesktopNet(desktop, policy, NetMode.NONE, "bwrap-unshare", warning=refused)
        net = DesktopNet(desktop, policy, NetMode.NONE, "pasta")
        try:
            self._start_holder(net)
            self._attach_pasta(net)
            self.apply_guard(net)
            net.effective = NetMode.FULL
        except Exception:
            self.stop(net)
            raise
        return net

    def stop(self, net: DesktopNet) -> None:
        """Stop a desktop's pasta and namespace holder: its namespace goes with them."""
        for proc in (net._pasta, net._holder):
            stop_process(proc)
        net._pasta = net._holder = None
        net._ns_path = net._userns_path = None

    def refusal(self, policy: NetworkPolicy) -> str | None:
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

    def change(self, net: DesktopNet, policy: NetworkPolicy) -> None:
        """Apply a new policy to a pasta desktop in the namespace its programs already use.

        `none` (and what fails closed) stops pasta: its tap device goes with it, and every
        program of the desktop, running or started later, is left with loopback only. A
        `full` policy re-attaches pasta to the same namespace. The guard rules follow the
        new `block_lan`, and a desktop switched off stays off.
        """
        old = net.policy
        net.policy = policy
        refused = self.refusal(policy)
        net.warning = refused
        if policy.mode is NetMode.NONE or refused is not None:
            if refused is not None:
                log.warning("desktop %s: %s", net.desktop, refused)
            # Rules first: the window between them and pasta's exit lets nothing through.
            if self.caps.nft is not None:
                self._nft_inside(net, netpolicy.guard_ruleset(block_lan=True, enabled=False))
            stop_process(net._pasta)
            net._pasta = None
            net.host_if = None
            net.effective = NetMode.NONE
        else:
            self.apply_guard(net)
            if net._pasta is None or net._pasta.poll() is not None:
                stop_process(net._pasta)
                net._pasta = None
                self._attach_pasta(net)
                self.apply_guard(net)
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
            preexec_fn=functools.partial(die_with, os.getpid()),  # noqa: PLW1509 (prctl only)
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
            preexec_fn=functools.partial(die_with, os.getpid()),  # noqa: PLW1509 (prctl only)
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

    def apply_guard(self, net: DesktopNet) -> None:
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
