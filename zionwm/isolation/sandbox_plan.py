"""The sandbox plan's data: what `bwrap.plan_sandbox` produces and `bwrap_argv` consumes.

Owns the vocabulary shared by the policy, the launcher and the argv builder: mounts, fd slots,
ephemeral-home seed entries, the host facts the launcher probes, and the plan itself. Pure
data, no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class MountKind(StrEnum):
    BIND = "--bind"
    RO_BIND = "--ro-bind"
    RO_BIND_TRY = "--ro-bind-try"
    DEV_BIND = "--dev-bind"
    BIND_FD = "--bind-fd"
    RO_BIND_FD = "--ro-bind-fd"
    RO_BIND_DATA = "--ro-bind-data"
    FILE = "--file"
    TMPFS = "--tmpfs"
    DIR = "--dir"
    SYMLINK = "--symlink"
    PROC = "--proc"
    DEV = "--dev"


@dataclass(frozen=True)
class Mount:
    """One bwrap filesystem operation, applied in plan order."""

    kind: MountKind
    dest: str
    source: str = ""  # host path (path binds) or link target (SYMLINK)
    slot: str = ""  # fd slot name (fd binds, data files)
    perms: int | None = None  # --perms for DIR, TMPFS, FILE, RO_BIND_DATA


class SlotKind(StrEnum):
    STORAGE = "storage"  # a data directory opened O_PATH without following symlinks
    DATA = "data"  # bytes the launcher puts in a memfd
    SEED = "seed"  # a file of the ephemeral seed, already opened by the launcher's scan
    SECCOMP = "seccomp"  # the compiled seccomp program
    STATUS = "status"  # write end of the pipe bwrap reports the sandbox's pids on
    MASKER = "masker"  # the placement helper (O_PATH), run first inside to mask /proc


@dataclass(frozen=True)
class FdSlot:
    name: str
    kind: SlotKind
    storage: str = ""  # STORAGE: "home" | "outbox" | "inbox" | "shared"
    data: bytes = b""  # DATA


class SeedKind(StrEnum):
    DIR = "dir"
    FILE = "file"
    SYMLINK = "symlink"


@dataclass(frozen=True)
class SeedEntry:
    """One entry of an ephemeral home's template, relative to the template root."""

    relpath: str
    kind: SeedKind
    mode: int = 0o700
    target: str = ""  # SYMLINK
    slot: str = ""  # FILE: the slot holding its open fd


@dataclass(frozen=True)
class GpuSysfs:
    """The sysfs a program needs to identify one render node, as probed on the host."""

    node: str  # /dev/dri/renderD128
    char_link: str  # /sys/dev/char/226:128
    char_target: str  # that link's target (relative, as sysfs writes it)
    device_dir: str  # resolved /sys/devices/... dir of the GPU itself (its `device`)
    hidden: tuple[str, ...] = ()  # dirs under device_dir to cover: card* (connectors, EDID)


@dataclass(frozen=True)
class HostFacts:
    """What the launcher probed on the host; everything plan_sandbox may depend on."""

    uid: int
    gid: int
    user: str
    system_files: frozenset[str] = frozenset()  # which SYSTEM_CANDIDATES exist
    root_links: tuple[tuple[str, str | None], ...] = ()  # (path, symlink target or None: dir)
    dri_nodes: tuple[str, ...] = ()
    video_nodes: tuple[str, ...] = ()
    pipewire_socket: str | None = None
    pulse_socket: str | None = None
    has_cpu_sysfs: bool = True
    gpu_sysfs: tuple[GpuSysfs, ...] = ()  # for each render node in dri_nodes
    proc_masked: frozenset[str] = frozenset()  # which PROC_MASKED_FILES/DIRS exist here
    boot_time: int = 0  # /proc/stat's btime
    cpus: int = 1  # how many cpuN lines the stand-in /proc/stat has
    bwrap: str = "/usr/bin/bwrap"
    font_dirs: tuple[str, ...] = ()  # which HOST_FONT_CANDIDATES exist


@dataclass(frozen=True)
class SessionBus:
    """A desktop's session bus as its sandboxes get it: `socket` (a host path) is bound as
    $XDG_RUNTIME_DIR/bus; `system_socket` only when the desktop's config hands it the host's
    buses; `programs` (name, script) are bound executable into BUS_BIN_DIR, first on PATH."""

    socket: str
    system_socket: str | None = None
    programs: tuple[tuple[str, bytes], ...] = ()
    # read-only data files (absolute path under /run/zionwm, content) and variables that go
    # with them, e.g. the desktop entry that makes GLib's `gio open` use the xdg-open above
    files: tuple[tuple[str, bytes], ...] = ()
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TemplateFacts:
    """A desktop's view of its template, as prepared by the launcher (host paths)."""

    name: str
    lower: str  # the template's current tree (read-only lower layer)
    upper: str  # the desktop's layer (inside `scratch` for an ephemeral one)
    work: str
    merged: str  # where the helper mounts the merged view; bwrap binds from here
    scratch: str | None  # ephemeral: tmpfs mount point holding upper and work
    top: tuple[tuple[str, str | None], ...]  # TEMPLATE_DIRS present: (name, link target | None)


@dataclass(frozen=True)
class EtcTree:
    """A desktop's prepared /etc (see etc_tree): bound as /etc in one mount."""

    path: str  # host directory
    files: frozenset[str]  # /etc paths it holds as copies (no bind of their own needed)
    binds: frozenset[str]  # /etc paths it holds an empty mount point for (bound on top)


@dataclass(frozen=True)
class InsideMasks:
    """The /proc masks as the placement helper makes them inside the sandbox, before the
    program (`zionwm-enter --mask-proc`, see `procmask.masks_inside`), instead of bwrap."""

    scratch: str  # a covered /proc directory: the empty tmpfs the files are made on
    read_only: tuple[str, ...]  # bound read-only onto themselves, where they exist
    empty: tuple[str, ...]  # covered by an empty read-only file
    data: tuple[tuple[str, str], ...]  # (DATA slot, path): covered by a read-only stand-in
    dirs: tuple[str, ...] = ()  # the other covered directories: an empty read-only tmpfs


@dataclass(frozen=True)
class SandboxPlan:
    desktop: str
    argv: tuple[str, ...]
    uid: int
    gid: int
    home: str  # inside path
    runtime_dir: str  # inside path
    ephemeral: bool
    share_net: bool  # True: stay in the netns the launcher joined; False: --unshare-net
    mounts: tuple[Mount, ...]
    slots: tuple[FdSlot, ...]
    env: Mapping[str, str]
    cwd: str
    hostname: str
    bwrap: str = "/usr/bin/bwrap"
    writable_usr: bool = False
    template: TemplateFacts | None = None
    notes: tuple[str, ...] = ()  # what the policy could not enforce, for the log
    nested_sandbox: bool = False  # user namespaces allowed inside; the seccomp variant too
    proc_masks: InsideMasks | None = None  # None: bwrap makes the /proc masks itself
    fds: Mapping[str, int] = field(default_factory=dict)

    def with_fds(self, fds: Mapping[str, int]) -> SandboxPlan:
        return dataclasses.replace(self, fds=dict(fds))

    def slot_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.slots)


class PlanError(ValueError):
    """The spec or argv cannot be turned into a sandbox."""
