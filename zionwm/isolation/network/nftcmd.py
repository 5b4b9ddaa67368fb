"""The ``nft`` command, run wherever it is called: it is a process of its own already.

Both the compositor's side (`opsclient.RootOpsClient`) and the ops process (`rootops.RootOps`)
share these verbs; the compositor runs them itself, so the look for a crashed run's
nftables table at start (`NetworkManager.cleanup_stale_at_start`) starts no ops process.
"""

from __future__ import annotations

import subprocess

from zionwm.isolation.network.model import NetworkError


class NftCommand:
    """Rulesets applied as one atomic ``nft -f`` transaction, tables looked up and deleted."""

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
