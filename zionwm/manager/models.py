"""The desktops as the manager shows them: one `DesktopRow` per desktop, its live usage and
a short history of it, and the orders the list can be sorted in. Pure: fed with what the
control socket says (`desktops`, `desktop show`, events), it decides every word on screen.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from zionwm.cli_table import size_text

HISTORY = 60  # samples kept per desktop: one minute at the compositor's 1 Hz
SORT_KEYS = ("order", "name", "state", "cpu", "memory", "disk")


@dataclass
class DesktopRow:
    name: str
    index: int = 0
    colour: str = "#888888"
    active: bool = False
    frozen: bool = False
    windows: int = 0
    network: str = "none"
    ephemeral: bool = False
    origin: str = "config.py"
    settings: dict[str, str] = field(default_factory=dict)
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    pids: int | None = None
    cpu_history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    memory_history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    pending_downloads: int = 0
    home_bytes: int | None = None  # disk use of its home, measured off the UI thread
    home_complete: bool = True  # False: the measure ran out of time ("at least")
    refusals: int = 0  # things its programs were refused that a setting could grant

    @property
    def state(self) -> str:
        if self.frozen:
            return "frozen"
        if (self.pids or 0) > 0 or self.windows > 0:
            return "running"
        return "no programs"

    @property
    def state_rank(self) -> int:
        return {"running": 0, "frozen": 1, "no programs": 2}[self.state]

    def update(self, info: dict[str, Any]) -> None:
        """From one entry of the `desktops` reply."""
        self.index = int(info.get("index", self.index))
        self.colour = str(info.get("colour", self.colour))
        self.active = bool(info.get("active", self.active))
        self.frozen = bool(info.get("frozen", self.frozen))
        self.windows = int(info.get("windows", self.windows) or 0)
        self.network = str(info.get("network", self.network))
        self.ephemeral = bool(info.get("ephemeral", self.ephemeral))
        if "origin" in info:
            self.origin = str(info["origin"])

    def sample(self, usage: dict[str, Any]) -> None:
        """One `usage` sample for this desktop."""
        cpu = usage.get("cpu_percent")
        mem = usage.get("memory_bytes")
        self.cpu_percent = float(cpu) if cpu is not None else None
        self.memory_bytes = int(mem) if mem is not None else None
        pids = usage.get("pids")
        self.pids = int(pids) if pids is not None else None
        if "frozen" in usage:
            self.frozen = bool(usage["frozen"])
        self.cpu_history.append(self.cpu_percent or 0.0)
        self.memory_history.append(float(self.memory_bytes or 0))

    @property
    def network_text(self) -> str:
        net = self.settings.get("network", self.network)
        if net.startswith("filtered:"):
            hosts = [h for h in net[len("filtered:") :].split(",") if h]
            return f"filtered ({len(hosts)} host{'s' if len(hosts) != 1 else ''})"
        return {"none": "no network", "full": "full network"}.get(net, net)

    @property
    def usage_text(self) -> str:
        if self.cpu_percent is None and self.memory_bytes is None:
            return "no usage yet"
        cpu = "-" if self.cpu_percent is None else f"{self.cpu_percent:.0f} % CPU"
        pids = "" if self.pids is None else f" · {self.pids} processes"
        return f"{cpu} · {size_text(self.memory_bytes)}{pids}"

    @property
    def summary(self) -> str:
        """The subtitle of its row: everything at a glance, in words."""
        parts = ["on screen"] if self.active else []
        parts.append(self.state)
        parts.append(f"{self.windows} window{'s' if self.windows != 1 else ''}")
        parts.append(self.network_text)
        if self.pending_downloads:
            n = self.pending_downloads
            parts.append(f"{n} download{'s' if n != 1 else ''} pending")
        if self.ephemeral:
            parts.append("forgets its home")
        if self.home_bytes is not None:
            at_least = "" if self.home_complete else "at least "
            parts.append(f"home {at_least}{size_text(self.home_bytes)}")
        if self.refusals:
            parts.append(f"{self.refusals} refusal{'s' if self.refusals != 1 else ''}")
        return " · ".join(parts)


class DesktopList:
    """Every desktop the compositor has, kept current by replies and events."""

    def __init__(self) -> None:
        self.rows: dict[str, DesktopRow] = {}

    def load(self, desktops: Iterable[dict[str, Any]]) -> None:
        seen = set()
        for info in desktops:
            name = str(info["name"])
            seen.add(name)
            self.rows.setdefault(name, DesktopRow(name)).update(info)
        for gone in set(self.rows) - seen:
            del self.rows[gone]

    def on_event(self, event: dict[str, Any]) -> bool:
        """Apply one control-socket event; True when the list must be redrawn."""
        kind = event.get("event")
        payload = event.get("payload") or {}
        if kind == "usage":
            for name, usage in (payload.get("desktops") or {}).items():
                row = self.rows.get(name)
                if row is not None and isinstance(usage, dict):
                    row.sample(usage)
            return True
        name = payload.get("desktop") or payload.get("name")
        if kind in ("freeze", "thaw") and name in self.rows:
            self.rows[name].frozen = kind == "freeze"
            return True
        if kind in ("desktop-created", "desktop-changed") and name:
            row = self.rows.setdefault(name, DesktopRow(name))
            row.colour = str(payload.get("colour", row.colour))
            row.origin = str(payload.get("origin", row.origin))
            settings = payload.get("settings")
            if isinstance(settings, dict):
                row.settings = {str(k): str(v) for k, v in settings.items()}
                row.network = row.settings.get("network", row.network)
                row.ephemeral = row.settings.get("ephemeral", "no") == "yes"
            return True
        if kind == "desktop-deleted" and name in self.rows:
            del self.rows[name]
            return True
        if kind == "switch":
            for row in self.rows.values():
                row.active = row.name == payload.get("new")
            return True
        return kind in ("map", "unmap", "desktops")

    def set_pending(self, counts: dict[str, int]) -> None:
        for row in self.rows.values():
            row.pending_downloads = int(counts.get(row.name, 0))

    def sorted(self, key: str = "order", descending: bool = False) -> list[DesktopRow]:
        if key not in SORT_KEYS:
            raise ValueError(f"cannot sort by {key!r} (by: {', '.join(SORT_KEYS)})")
        rows = list(self.rows.values())
        by: dict[str, Any] = {
            "order": lambda r: (r.index, r.name),
            "name": lambda r: r.name,
            "state": lambda r: (r.state_rank, r.index),
            "cpu": lambda r: (r.cpu_percent or 0.0, r.name),
            "memory": lambda r: (r.memory_bytes or 0, r.name),
            "disk": lambda r: (r.home_bytes or 0, r.name),
        }
        return sorted(rows, key=by[key], reverse=descending)


def pending_by_source(items: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Quarantine items not yet out, counted per desktop that downloaded them."""
    counts: dict[str, int] = {}
    for it in items:
        if it.get("state") not in ("released", "rejected", "deleted"):
            src = str(it.get("source", ""))
            counts[src] = counts.get(src, 0) + 1
    return counts
