"""A desktop's network as built (`DesktopNet`), and the error its set-up raises.

Plain data the manager fills in and the launcher and ``zionctl`` read; the processes it
holds (DNS forwarder, namespace holder, pasta) are started and stopped by the manager.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from zionwm.isolation.network.policy import AddressPlan
from zionwm.isolation.spec import NetMode, NetworkPolicy


class NetworkError(RuntimeError):
    """A desktop's network could not be set up as its policy asks."""


class _Switch(Protocol):
    """What a `DesktopNet` needs of its manager: switching the desktop's network."""

    def set_enabled(self, desktop: str, on: bool) -> None: ...


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
    _manager: _Switch | None = field(default=None, repr=False)

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
