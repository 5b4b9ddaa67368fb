"""Frozen policy specs: what a desktop is allowed, as validated from the user's config.

These are the contract between the config loader (which builds them), the compositor
(which owns desktops) and the isolation/quarantine layers (which enforce them). Pure data:
no I/O, no validation logic beyond types (validation lives in zionwm.config).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class Limits:
    """cgroup limits for one desktop; None means "no limit"."""

    cpu_weight: int | None = None  # 1..10000, cgroup v2 cpu.weight semantics (100 = default)
    cpu_max: float | None = None  # CPUs' worth of time, e.g. 0.2 = 20% of one core, 2.0 = two cores
    memory_high: int | None = None  # bytes: throttle and reclaim above this
    memory_max: int | None = None  # bytes: OOM-kill above this
    pids_max: int | None = None
    cpuset: tuple[int, ...] | None = None  # dedicated CPU numbers

    def is_empty(self) -> bool:
        return all(getattr(self, f) is None for f in self.__dataclass_fields__)


@dataclass(frozen=True)
class Devices:
    """Device grants. Everything defaults to denied."""

    gpu: bool = False  # /dev/dri
    audio: bool = False  # playback: PipeWire / PulseAudio sockets
    microphone: bool = False  # capture, where the sound server can separate it
    camera: bool = False  # /dev/video*


class NetMode(StrEnum):
    NONE = "none"  # empty namespace: loopback only
    FULL = "full"  # NAT through the desktop's own namespace (can be cut live)
    FILTERED = "filtered"  # allow-list of destinations


@dataclass(frozen=True)
class AllowRule:
    """One allowed destination: a host name (DNS-tracked) or a CIDR, optional ports."""

    host: str  # "example.org", "*.example.org", "192.0.2.0/24" or "192.0.2.7"
    ports: tuple[int, ...] = ()  # empty: every port
    proto: str = "tcp"  # "tcp", "udp" or "any"


@dataclass(frozen=True)
class NetworkPolicy:
    mode: NetMode = NetMode.NONE
    allow: tuple[AllowRule, ...] = ()  # only for FILTERED
    block_lan: bool = False  # deny RFC 1918, link-local, CGNAT, mDNS, ULA destinations


class VerdictAction(StrEnum):
    """What a desktop's downloads policy does with an item the audit did not find clean
    (the verdicts themselves are the quarantine's: `zionwm.quarantine.report.Verdict`)."""

    RELEASE = "release"  # release after the hold period
    KEEP = "keep"  # keep in quarantine with a report (user may force-release)
    DELETE = "delete"  # delete the content, keep the record and report


@dataclass(frozen=True)
class DownloadsPolicy:
    """The desktop's ~/Downloads is a quarantine inbox; audited files go to `release_to`."""

    release_to: str  # destination desktop name
    hold: float = 600.0  # seconds a clean item is held before release (0 allowed)
    on_suspicious: VerdictAction = VerdictAction.KEEP
    on_malicious: VerdictAction = VerdictAction.KEEP
    on_cannot_inspect: VerdictAction = VerdictAction.KEEP
    # a kept PDF or image gets a safe copy (pixels rebuilt as a plain PDF), released as a
    # new item; the original stays kept
    safe_copy: bool = False


@dataclass(frozen=True)
class Autostart:
    argv: tuple[str, ...]
    at_start: bool = False  # False: when the desktop first becomes active


@dataclass(frozen=True)
class DesktopSpec:
    """One compartment, fully resolved from the config."""

    name: str  # [a-z0-9_-]{1,32}; used in paths and socket names
    colour: tuple[float, float, float, float]  # RGBA 0..1, the trust colour
    limits: Limits = field(default_factory=Limits)
    devices: Devices = field(default_factory=Devices)
    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    freeze_after: float | None = None  # seconds hidden before freezing; None = never
    reclaim_when_frozen: bool = False
    ephemeral: bool = False
    downloads: DownloadsPolicy | None = None
    fonts: tuple[str, ...] = ()  # extra font directories bound in (host paths)
    app_dirs: tuple[str, ...] = ()  # extra application directories bound read-only
    writable_usr: bool = False  # copy-on-write layer over /usr, per desktop
    template: str | None = None  # root-filesystem template name
    env: tuple[str, ...] = ()  # host variables granted (e.g. "SSH_AUTH_SOCK")
    allow_fullscreen: bool = False  # true fullscreen hides the trust indicator
    x11: bool = False  # own Xwayland on demand
    layout: str = "float"  # "float" or "tile" (master and stack); see zionwm/layout.py
    nested_sandbox: bool = False  # programs may build sandboxes of their own (Chromium's)
    autostart: tuple[Autostart, ...] = ()
    # D-Bus: "desktop" (a private, filtered session bus), "none", or "host" (the host's own
    # session and system buses: everything else on them becomes reachable)
    dbus: str = "desktop"
    open_links_in: str | None = None  # where http(s) links go; None: this desktop
    browser: tuple[str, ...] = ("chromium",)  # what opens a link here (the URL is appended)
    notify_when_frozen: str = "queue"  # "queue" until thaw, or "show" at once
    source_line: int = 0  # line in the config file that declared it (for messages)

    @property
    def colour_hex(self) -> str:
        r, g, b, _ = self.colour
        return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
