"""The bubblewrap command line for one sandboxed program: policy resolution and argv building.

Owns the shape of every sandbox. Two pure steps, no I/O in either:

- `plan_sandbox(spec, argv, host, ...)` resolves a `DesktopSpec` plus what was probed on the host
  (`HostFacts`) into a frozen `SandboxPlan`: every mount, device, environment variable and fd
  the sandbox needs.
- `build_argv(plan)` turns the plan into bwrap's argv.

Things only the caller can produce (directories opened safely, memfds holding synthesized
files, the seccomp program) appear in the plan as named fd *slots*; the launcher opens them and
fills `plan.fds` (`with_fds`) before `build_argv` runs, so the argv carries real fd numbers
while both steps stay pure.

Layout inside every sandbox (uid/gid are the invoking user's, mapped 1:1 in a new user
namespace, all capabilities dropped, no further user namespaces allowed):

    /usr (host, read-only, or the desktop's writable layer)   /bin /lib ... symlinks as on host
    /etc  only the pieces programs need; passwd/group synthesized for the one user
    /home/<user>            the desktop's home (or a tmpfs seeded from a template)
    /home/<user>/Shared     Shared, read-only      /home/<user>/Outbox    the desktop's outbox
    /home/<user>/Downloads  the quarantine inbox, when the desktop has a downloads policy
    /run/user/<uid>/wayland-0   the desktop's own Wayland socket, nothing else of the runtime dir
    /run/zionwm/fonts/<n>   extra font dirs (+ /run/zionwm/fonts.conf)   /opt/zionwm/<n>  app dirs
    /proc (new, own pid namespace; /proc/sys read-only; host-wide counters and key lists
          masked, /proc/stat a still stand-in: see PROC_MASKED_FILES)
    /dev (minimal + granted nodes: a GPU is its render nodes, plus their own sysfs only)
    /tmp, /var/tmp (tmpfs)
    /tmp/.X11-unix          the desktop's own X server socket dir (x11 desktops only)

Fonts go under /run/zionwm/fonts rather than /usr/local/share/fonts: /usr is a read-only
bind, and bwrap cannot create mount points inside it. FONTCONFIG_FILE points fontconfig at
a generated file that includes the host's configuration plus those directories.

A desktop on a root-filesystem template (`spec.template`, see `templates`) gets /usr, /etc,
/var and /bin, /sbin, /lib* from the template's merged view instead (`TemplateFacts.merged`,
mounted by the template helper: the template under the desktop's own copy-on-write layer),
with only the host's resolv.conf and hosts bound over its /etc, and the host's font dirs
under /run/zionwm/fonts/host<n>.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from zionwm.isolation.spec import DesktopSpec

# Environment variables copied from the launching environment when present. LC_* is a prefix.
ENV_PASSTHROUGH = ("TERM", "LANG", "LANGUAGE", "TZ", "COLORTERM")
ENV_PASSTHROUGH_PREFIXES = ("LC_",)
# Never forwarded, even when a desktop's config grants them: they would hand the sandbox the
# host's loader, display or session bus, which is exactly what the sandbox exists to withhold.
ENV_NEVER = frozenset({"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "WAYLAND_SOCKET"})
ENV_NEVER_PREFIXES = ("LD_",)

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"

# Host files bound read-only when present: the /etc pieces programs need (everything else
# under /etc stays out: shadow, ssh keys, sudoers, the host's machine-id, ...) and the system
# font cache, without which every sandbox would rescan all fonts.
SYSTEM_CANDIDATES = (
    "/var/cache/fontconfig",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/nsswitch.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/ssl/certs",  # not /etc/ssl: /etc/ssl/private holds the host's TLS keys
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/fonts",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/alternatives",
    "/etc/os-release",
    "/etc/mime.types",
    "/etc/xdg",
    "/etc/gtk-3.0",
    "/etc/locale.alias",
    "/etc/inputrc",
    "/etc/terminfo",
    "/etc/bash.bashrc",
    "/etc/profile",
    "/etc/vulkan",
    "/etc/glvnd",
    "/etc/drirc",
    "/etc/pulse",
    "/etc/pipewire",
    "/etc/magic",
    "/etc/magic.mime",
)

# What a desktop on a template takes from the template (when present there), and the only
# host files bound over the template's /etc: name resolution follows the host's network.
TEMPLATE_DIRS = ("usr", "etc", "var", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
TEMPLATE_HOST_ETC = ("/etc/resolv.conf", "/etc/hosts")
# Host fonts a templated desktop still sees.
HOST_FONT_CANDIDATES = ("/usr/share/fonts", "/usr/local/share/fonts")

# Top-level directories that merged-/usr systems make symlinks (recreated as such) and older
# layouts keep as directories (bound read-only).
ROOT_LINK_CANDIDATES = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

# A GPU grant hands over render nodes only: /dev/dri/card* would give display control
# (modesetting, and reading the screen) whenever zionwm is not the DRM master.
RENDER_NODE_GLOB = "/dev/dri/renderD*"
# libdrm (hence Mesa's loader and the Vulkan drivers) resolves this link's `subsystem` to tell
# a PCI GPU from a platform one; an empty directory there is all realpath() needs.
SYS_BUS_PCI = "/sys/bus/pci"
# glibc's nprocs and many thread pools read this; it reveals the CPU count only.
CPU_SYS_DIR = "/sys/devices/system/cpu"

# Where the other storage is mounted inside a home (storage checks these are not planted links).
SHARED_IN_HOME, OUTBOX_IN_HOME, DOWNLOADS_IN_HOME = "Shared", "Outbox", "Downloads"
HOME_MOUNTPOINTS = (SHARED_IN_HOME, OUTBOX_IN_HOME, DOWNLOADS_IN_HOME)

PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger")

# Host-wide /proc files that count or list what the whole machine does, masked with an empty
# file in every sandbox. Counters that move with another desktop's activity are timing side
# channels (interrupts and softirqs tick with every key press; the disk, memory and scheduler
# counters with every save, page fault and wake-up); the rest lists host secrets or layout
# (keys, kernel symbols and modules, slab and vmalloc layout, file locks of every process).
# Kept readable on purpose, because programs need them and they move slowly or not at all:
# meminfo, cpuinfo, uptime, version, filesystems, mounts (the sandbox's own).
PROC_MASKED_FILES = (
    "/proc/interrupts",
    "/proc/softirqs",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/schedstat",
    "/proc/latency_stats",
    "/proc/keys",
    "/proc/key-users",
    "/proc/kallsyms",
    "/proc/modules",
    "/proc/vmstat",
    "/proc/diskstats",
    "/proc/locks",
    "/proc/slabinfo",
    "/proc/zoneinfo",
    "/proc/buddyinfo",
    "/proc/pagetypeinfo",
    "/proc/vmallocinfo",
    "/proc/iomem",
    "/proc/ioports",
    # Host-wide open-file and inode counts: they move with every file another desktop opens.
    "/proc/sys/fs/file-nr",
    "/proc/sys/fs/inode-nr",
    "/proc/sys/fs/inode-state",
    "/proc/sys/fs/dentry-state",
)
# Whole directories covered by an empty read-only tmpfs: per-IRQ counters (irq/N/spurious),
# host-wide pressure-stall totals in microseconds, and the host's input and PCI device lists.
PROC_MASKED_DIRS = ("/proc/irq", "/proc/pressure", "/proc/bus")
# /proc/stat is replaced rather than emptied: ps and psutil need its btime, and top and many
# libraries parse its cpu lines. The stand-in has the host's boot time and CPU count (both
# visible anyway, through uptime and sysfs) and counters that never move.
PROC_STAT = "/proc/stat"
# Fixed stand-ins for files programs parse but whose host values move with host activity:
# loadavg's running-task count changes the moment any process on the machine wakes up (a
# sampling loop sees another desktop react to a key); entropy_avail counted interrupt
# entropy before Linux 5.18 (it says 256 since).
PROC_STAND_INS: Mapping[str, bytes] = {
    "/proc/loadavg": b"0.00 0.00 0.00 1/1 1\n",
    "/proc/sys/kernel/random/entropy_avail": b"256\n",
}

# The id a root-run zionwm's user has inside a nested_sandbox desktop (see sandbox_ids).
NESTED_ROOT_ID = 1000

FONTS_DIR = "/run/zionwm/fonts"
FONTS_CONF = "/run/zionwm/fonts.conf"
APPS_DIR = "/opt/zionwm"
X11_SOCKET_DIR = "/tmp/.X11-unix"
# Small programs of zionwm's own put first on PATH (the xdg-open of a desktop with a bus).
BUS_BIN_DIR = "/run/zionwm/bin"
SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"

_DESKTOP_NAME = re.compile(r"[a-z0-9_-]{1,32}")


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


_PATH_SOURCE_KINDS = frozenset(
    {MountKind.BIND, MountKind.RO_BIND, MountKind.RO_BIND_TRY, MountKind.DEV_BIND}
)
_SLOT_KINDS = frozenset(
    {MountKind.BIND_FD, MountKind.RO_BIND_FD, MountKind.RO_BIND_DATA, MountKind.FILE}
)


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


def proc_stat_stand_in(cpus: int, boot_time: int) -> bytes:
    """A /proc/stat whose counters never move, in the kernel's layout."""
    zeros = " ".join(["0"] * 10)
    lines = [f"cpu  {zeros}"] + [f"cpu{n} {zeros}" for n in range(max(1, cpus))]
    lines += [
        "intr 0",
        "ctxt 0",
        f"btime {boot_time}",
        "processes 0",
        "procs_running 1",
        "procs_blocked 0",
        "softirq 0 0 0 0 0 0 0 0 0 0 0",
    ]
    return ("\n".join(lines) + "\n").encode()


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
    fds: Mapping[str, int] = field(default_factory=dict)

    def with_fds(self, fds: Mapping[str, int]) -> SandboxPlan:
        return dataclasses.replace(self, fds=dict(fds))

    def slot_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.slots)


class PlanError(ValueError):
    """The spec or argv cannot be turned into a sandbox."""


def passwd_lines(uid: int, gid: int, user: str, home: str) -> tuple[bytes, bytes]:
    """Synthesized /etc/passwd and /etc/group: the one user, plus nobody for unmapped ids."""
    shell = "/bin/sh"
    passwd = [f"{user}:x:{uid}:{gid}:{user}:{home}:{shell}"]
    group = [f"{user}:x:{gid}:"]
    if uid != 65534:
        passwd.append("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin")
    if gid != 65534:
        group.append("nogroup:x:65534:")
    return ("\n".join(passwd) + "\n").encode(), ("\n".join(group) + "\n").encode()


def fontconfig_conf(font_dirs: Sequence[str]) -> bytes:
    """A fontconfig file that keeps the host configuration and adds the bound font dirs."""
    lines = [
        '<?xml version="1.0"?>',
        '<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">',
        "<fontconfig>",
        '  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>',
    ]
    lines += [f"  <dir>{d}</dir>" for d in font_dirs]
    lines.append("</fontconfig>")
    return ("\n".join(lines) + "\n").encode()


def sandbox_env(
    spec: DesktopSpec,
    host_env: Mapping[str, str],
    *,
    user: str,
    home: str,
    runtime_dir: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The sandbox's whole environment: an allow-list, fixed values, and the desktop's grants."""
    env: dict[str, str] = {}
    for key, value in host_env.items():
        if key in ENV_PASSTHROUGH or key.startswith(ENV_PASSTHROUGH_PREFIXES):
            env[key] = value
    env.update(
        {
            "HOME": home,
            "USER": user,
            "LOGNAME": user,
            "PATH": SANDBOX_PATH,
            "XDG_RUNTIME_DIR": runtime_dir,
            "WAYLAND_DISPLAY": "wayland-0",
            "XDG_SESSION_TYPE": "wayland",
            "XDG_CURRENT_DESKTOP": "zionwm",
            "ZIONWM_DESKTOP": spec.name,
            "MOZ_ENABLE_WAYLAND": "1",
            "QT_QPA_PLATFORM": "wayland",
            "GDK_BACKEND": "wayland",
            "SDL_VIDEODRIVER": "wayland",
            "XDG_CACHE_HOME": f"{home}/.cache",
            "XDG_CONFIG_HOME": f"{home}/.config",
            "XDG_DATA_HOME": f"{home}/.local/share",
        }
    )
    granted = dict(extra or {})
    for key in spec.env:
        if key in host_env:
            granted.setdefault(key, host_env[key])
    for key, value in granted.items():
        if key in ENV_NEVER or key.startswith(ENV_NEVER_PREFIXES):
            continue
        env[key] = value
    env.setdefault("TERM", "xterm-256color")
    return env


def plan_sandbox(
    spec: DesktopSpec,
    argv: Sequence[str],
    host: HostFacts,
    *,
    host_env: Mapping[str, str],
    wayland_socket: str | None,
    ephemeral: bool | None = None,
    share_net: bool = False,
    writable_usr_source: str | None = None,
    seed: Sequence[SeedEntry] = (),
    cwd: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    x11_socket_dir: str | None = None,
    sound_socket: str | None = None,
    template: TemplateFacts | None = None,
    session_bus: SessionBus | None = None,
) -> SandboxPlan:
    """Resolve a desktop's policy into a plan. Pure: everything it needs is in its arguments.

    `wayland_socket` is the host path of the desktop's socket (None: no display for this
    program). `writable_usr_source` is where the launcher's overlay helper will have mounted
    the desktop's /usr layer (required when the spec asks for writable_usr). `seed` is the
    scanned template of an ephemeral home. `template` is the prepared root-filesystem
    template (required when the spec names one). `session_bus` is the desktop's bus (None:
    the program gets no D-Bus at all).
    """
    if not _DESKTOP_NAME.fullmatch(spec.name):
        raise PlanError(f"desktop name {spec.name!r} is not [a-z0-9_-]{{1,32}}")
    if not argv or not argv[0]:
        raise PlanError("nothing to run: empty argv")
    if spec.template and (template is None or template.name != spec.template):
        raise PlanError(f"desktop {spec.name}: template {spec.template} was not prepared")
    if spec.writable_usr and not writable_usr_source and template is None:
        raise PlanError(f"desktop {spec.name}: writable_usr needs the overlay's mount point")
    eph = spec.ephemeral if ephemeral is None else ephemeral
    user = host.user
    home = f"/home/{user}"
    uid, gid = sandbox_ids(spec, host)
    run = f"/run/user/{uid}"
    notes: list[str] = []
    mounts: list[Mount] = []
    slots: list[FdSlot] = []

    def slot(s: FdSlot) -> str:
        slots.append(s)
        return s.name

    # Base system.
    if template is not None:
        if spec.writable_usr:
            notes.append("writable_usr is implied by the template's copy-on-write layer")
        for name, target in template.top:
            if target is not None:
                mounts.append(Mount(MountKind.SYMLINK, f"/{name}", source=target))
            else:
                mounts.append(Mount(MountKind.BIND, f"/{name}", source=f"{template.merged}/{name}"))
    elif spec.writable_usr:
        assert writable_usr_source is not None
        mounts.append(Mount(MountKind.BIND, "/usr", source=writable_usr_source))
    else:
        mounts.append(Mount(MountKind.RO_BIND, "/usr", source="/usr"))
    for path, target in host.root_links if template is None else ():
        if target is not None:
            mounts.append(Mount(MountKind.SYMLINK, path, source=target))
        else:
            mounts.append(Mount(MountKind.RO_BIND, path, source=path))
    mounts.append(Mount(MountKind.PROC, "/proc"))
    # bwrap covers /proc/sys only when it looks writable to its setup process, which it does
    # not even when the files are: a sandbox of a root launcher (kuid 0, no capabilities)
    # could still write global sysctls, as sysctl permission checks the global root uid.
    # Per-netns and per-userns values still resolve by the reader's namespaces.
    for path in PROC_READ_ONLY:
        mounts.append(Mount(MountKind.RO_BIND_TRY, path, source=path))
    _mask_proc(host, mounts, slot)
    mounts.append(Mount(MountKind.DEV, "/dev"))
    mounts.append(Mount(MountKind.TMPFS, "/tmp"))
    mounts.append(Mount(MountKind.TMPFS, "/var/tmp"))
    for path in TEMPLATE_HOST_ETC if template is not None else SYSTEM_CANDIDATES:
        if path in host.system_files:
            mounts.append(Mount(MountKind.RO_BIND_TRY, path, source=path))
    passwd, group = passwd_lines(uid, gid, user, home)
    mounts.append(
        Mount(
            MountKind.RO_BIND_DATA,
            "/etc/passwd",
            slot=slot(FdSlot("passwd", SlotKind.DATA, data=passwd)),
            perms=0o644,
        )
    )
    mounts.append(
        Mount(
            MountKind.RO_BIND_DATA,
            "/etc/group",
            slot=slot(FdSlot("group", SlotKind.DATA, data=group)),
            perms=0o644,
        )
    )
    if host.has_cpu_sysfs:
        mounts.append(Mount(MountKind.RO_BIND_TRY, CPU_SYS_DIR, source=CPU_SYS_DIR))

    # Runtime dir: only the desktop's socket (and granted sound sockets) inside.
    mounts.append(Mount(MountKind.DIR, run, perms=0o700))
    if wayland_socket:
        mounts.append(Mount(MountKind.BIND, f"{run}/wayland-0", source=wayland_socket))
    else:
        notes.append("the desktop has no Wayland socket yet: the program runs without a display")

    # Storage.
    if eph:
        mounts.append(Mount(MountKind.TMPFS, home, perms=0o700))
        for entry in seed:
            dest = f"{home}/{entry.relpath}"
            if entry.kind is SeedKind.DIR:
                mounts.append(Mount(MountKind.DIR, dest, perms=entry.mode & 0o7777))
            elif entry.kind is SeedKind.SYMLINK:
                mounts.append(Mount(MountKind.SYMLINK, dest, source=entry.target))
            else:
                if not entry.slot:
                    raise PlanError(f"seed file {entry.relpath} has no fd slot")
                slots.append(FdSlot(entry.slot, SlotKind.SEED))
                mounts.append(
                    Mount(MountKind.FILE, dest, slot=entry.slot, perms=entry.mode & 0o7777)
                )
    else:
        mounts.append(
            Mount(
                MountKind.BIND_FD, home, slot=slot(FdSlot("home", SlotKind.STORAGE, storage="home"))
            )
        )
    mounts.append(
        Mount(
            MountKind.RO_BIND_FD,
            f"{home}/{SHARED_IN_HOME}",
            slot=slot(FdSlot("shared", SlotKind.STORAGE, storage="shared")),
        )
    )
    mounts.append(
        Mount(
            MountKind.BIND_FD,
            f"{home}/{OUTBOX_IN_HOME}",
            slot=slot(FdSlot("outbox", SlotKind.STORAGE, storage="outbox")),
        )
    )
    if spec.downloads is not None:
        mounts.append(
            Mount(
                MountKind.BIND_FD,
                f"{home}/{DOWNLOADS_IN_HOME}",
                slot=slot(FdSlot("inbox", SlotKind.STORAGE, storage="inbox")),
            )
        )

    # Devices.
    devices = spec.devices
    if devices.gpu:
        _grant_gpu(host, mounts, notes)
    if devices.camera:
        if not host.video_nodes:
            notes.append("camera granted but the host has no /dev/video* nodes")
        for node in host.video_nodes:
            mounts.append(Mount(MountKind.DEV_BIND, node, source=node))
    if devices.audio or devices.microphone:
        # Only the desktop's own sound relay (isolation/sound.py), never the host's sockets:
        # those would give the whole sound graph, every desktop's playback and the microphone.
        if sound_socket:
            mounts.append(Mount(MountKind.BIND, f"{run}/pulse/native", source=sound_socket))
        else:
            notes.append("audio granted but this desktop has no sound relay: no sound")

    # Customization.
    added_env: dict[str, str] = dict(extra_env or {})
    host_fonts = host.font_dirs if template is not None else ()
    if spec.fonts or host_fonts:
        font_dirs = [f"{FONTS_DIR}/{i}" for i in range(len(spec.fonts))]
        for src, dest in zip(spec.fonts, font_dirs, strict=True):
            mounts.append(Mount(MountKind.RO_BIND, dest, source=src))
        for i, src in enumerate(host_fonts):
            font_dirs.append(f"{FONTS_DIR}/host{i}")
            mounts.append(Mount(MountKind.RO_BIND, font_dirs[-1], source=src))
        conf = fontconfig_conf(font_dirs)
        mounts.append(
            Mount(
                MountKind.RO_BIND_DATA,
                FONTS_CONF,
                slot=slot(FdSlot("fonts.conf", SlotKind.DATA, data=conf)),
                perms=0o644,
            )
        )
        added_env["FONTCONFIG_FILE"] = FONTS_CONF
    for i, src in enumerate(spec.app_dirs):
        mounts.append(Mount(MountKind.RO_BIND, f"{APPS_DIR}/{i}", source=src))
    # X11: the host directory holding only this desktop's X server socket (see
    # compositor/xwayland.py), never the host's /tmp/.X11-unix. Read-only: connecting needs
    # no write access, and a program cannot delete or swap the socket file.
    if spec.x11 and x11_socket_dir:
        mounts.append(Mount(MountKind.RO_BIND, X11_SOCKET_DIR, source=x11_socket_dir))
        added_env["DISPLAY"] = ":0"
    if session_bus is not None:
        _grant_session_bus(session_bus, run, mounts, added_env, slot)

    slots.append(FdSlot("seccomp", SlotKind.SECCOMP))
    slots.append(FdSlot("status", SlotKind.STATUS))

    env = sandbox_env(spec, host_env, user=user, home=home, runtime_dir=run, extra=added_env)
    return SandboxPlan(
        desktop=spec.name,
        argv=tuple(argv),
        uid=uid,
        gid=gid,
        home=home,
        runtime_dir=run,
        ephemeral=eph,
        share_net=share_net,
        mounts=tuple(mounts),
        slots=tuple(slots),
        env=env,
        cwd=cwd or home,
        hostname=spec.name,
        bwrap=host.bwrap,
        writable_usr=spec.writable_usr and template is None,
        template=template,
        notes=tuple(notes),
        nested_sandbox=spec.nested_sandbox,
    )


def sandbox_ids(spec: DesktopSpec, host: HostFacts) -> tuple[int, int]:
    """The uid and gid a desktop's programs run as (mapped onto the host's user)."""
    if spec.nested_sandbox and host.uid == 0:
        # Chromium refuses to sandbox itself as uid 0; zionwm run by root (a VM, a kiosk)
        # maps its user to an ordinary id inside such a desktop. It holds no capability
        # either way (--cap-drop ALL); only the number the program sees changes.
        return NESTED_ROOT_ID, NESTED_ROOT_ID
    return host.uid, host.gid


def _mask_proc(host: HostFacts, mounts: list[Mount], slot: Callable[[FdSlot], str]) -> None:
    """Cover the host-wide /proc files (see PROC_MASKED_FILES) and put in the stand-ins; only
    where the host has the file, as bwrap cannot create a mount point inside procfs."""
    for path in PROC_MASKED_FILES:
        if path in host.proc_masked:
            name = "mask" + path.replace("/", "-")
            mounts.append(
                Mount(
                    MountKind.RO_BIND_DATA,
                    path,
                    slot=slot(FdSlot(name, SlotKind.DATA, data=b"")),
                    perms=0o444,
                )
            )
    for path in PROC_MASKED_DIRS:
        if path in host.proc_masked:
            mounts.append(Mount(MountKind.TMPFS, path, perms=0o555))
    stand_ins = {PROC_STAT: proc_stat_stand_in(host.cpus, host.boot_time)}
    stand_ins.update((p, d) for p, d in PROC_STAND_INS.items() if p in host.proc_masked)
    for path, data in stand_ins.items():
        mounts.append(
            Mount(
                MountKind.RO_BIND_DATA,
                path,
                slot=slot(FdSlot("stand-in" + path.replace("/", "-"), SlotKind.DATA, data=data)),
                perms=0o444,
            )
        )


def _grant_gpu(host: HostFacts, mounts: list[Mount], notes: list[str]) -> None:
    """Render nodes, and for each only the sysfs that names its device: the /sys/dev/char
    link and the GPU's own device dir, with its display connectors (card*: EDID, hence the
    monitors' serial numbers) covered. Nothing else of /sys/devices, /sys/class or /sys/bus:
    they list every network card's MAC address and every USB device's serial number."""
    nodes = [n for n in host.dri_nodes if n.startswith("/dev/dri/renderD")]
    if not nodes:
        notes.append("gpu granted but the host has no render node (/dev/dri/renderD*)")
    for node in nodes:
        mounts.append(Mount(MountKind.DEV_BIND, node, source=node))
    sysfs = [g for g in host.gpu_sysfs if g.node in nodes]
    for g in sysfs:
        mounts.append(Mount(MountKind.RO_BIND_TRY, g.device_dir, source=g.device_dir))
        for hidden in g.hidden:
            mounts.append(Mount(MountKind.TMPFS, hidden, perms=0o555))
        mounts.append(Mount(MountKind.SYMLINK, g.char_link, source=g.char_target))
    if sysfs:
        mounts.append(Mount(MountKind.DIR, SYS_BUS_PCI, perms=0o555))


def _grant_session_bus(
    bus: SessionBus,
    run: str,
    mounts: list[Mount],
    env: dict[str, str],
    slot: Callable[[FdSlot], str],
) -> None:
    mounts.append(Mount(MountKind.BIND, f"{run}/bus", source=bus.socket))
    env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={run}/bus"
    if bus.system_socket:
        mounts.append(Mount(MountKind.BIND, SYSTEM_BUS_SOCKET, source=bus.system_socket))
        env["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={SYSTEM_BUS_SOCKET}"
    for name, script in bus.programs:
        data = slot(FdSlot(f"bin-{name}", SlotKind.DATA, data=script))
        mounts.append(
            Mount(MountKind.RO_BIND_DATA, f"{BUS_BIN_DIR}/{name}", slot=data, perms=0o755)
        )
    for i, (dest, content) in enumerate(bus.files):
        if not dest.startswith("/run/zionwm/") or ".." in dest.split("/"):
            raise PlanError(f"session bus file {dest!r} is not under /run/zionwm")
        data = slot(FdSlot(f"bus-file-{i}", SlotKind.DATA, data=content))
        mounts.append(Mount(MountKind.RO_BIND_DATA, dest, slot=data, perms=0o644))
    env.update(bus.env)
    if bus.programs:
        env["PATH"] = f"{BUS_BIN_DIR}:{SANDBOX_PATH}"
        if any(name == "xdg-open" for name, _ in bus.programs):
            env["BROWSER"] = f"{BUS_BIN_DIR}/xdg-open"


def _fd(plan: SandboxPlan, slot: str) -> str:
    try:
        return str(plan.fds[slot])
    except KeyError:
        raise PlanError(f"fd slot {slot!r} was not filled by the launcher") from None


def build_argv(plan: SandboxPlan) -> list[str]:
    """bwrap's full argv for the plan (fd slots must be filled). Pure."""
    out = [plan.bwrap]
    # Namespaces. Joining a prepared netns means keeping the one the launcher entered.
    out.append("--unshare-all")
    if plan.share_net:
        out.append("--share-net")
    out.append("--unshare-user")
    if not plan.nested_sandbox:
        out.append("--disable-userns")
    out += ["--uid", str(plan.uid), "--gid", str(plan.gid)]
    out += ["--hostname", plan.hostname]
    # bwrap run by uid 0 keeps every capability in the sandbox unless told otherwise.
    out += ["--cap-drop", "ALL"]
    out += ["--die-with-parent", "--new-session"]
    if "status" in plan.slot_names():
        out += ["--json-status-fd", _fd(plan, "status")]
    for m in plan.mounts:
        if m.perms is not None:
            out += ["--perms", f"{m.perms:04o}"]
        if m.kind in _PATH_SOURCE_KINDS or m.kind is MountKind.SYMLINK:
            out += [m.kind.value, m.source, m.dest]
        elif m.kind in _SLOT_KINDS:
            out += [m.kind.value, _fd(plan, m.slot), m.dest]
        else:
            out += [m.kind.value, m.dest]
    out += ["--seccomp", _fd(plan, "seccomp")]
    out += ["--chdir", plan.cwd]
    out.append("--")
    out += list(plan.argv)
    return out
