"""What this machine can do for the desktops' networks (`probe`), and where named
network namespaces live.

`Capabilities.privileged` (root, the ``nft`` command, a writable /run/netns) decides
between the two paths of `manager.NetworkManager`: named namespaces with veths and
nftables (`rootops`), or the unprivileged one (`pasta`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")


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
