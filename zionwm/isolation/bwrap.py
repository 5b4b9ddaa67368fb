"""The bubblewrap command line for one sandboxed program: policy resolution and argv building.

Owns the shape of every sandbox. Two pure steps, no I/O in either:

- `plan_sandbox(spec, argv, host, ...)` resolves a `DesktopSpec` plus what was probed on the host
  (`HostFacts`) into a frozen `SandboxPlan`: every mount, device, environment variable and fd
  the sandbox needs.
- `build_argv(plan)` turns the plan into bwrap's argv (`bwrap_argv`).

The plan's types are in `sandbox_plan`, the /proc masking policy in `procmask`.

Things only the caller can produce (directories opened safely, memfds holding synthesized
files, the seccomp program) appear in the plan as named fd *slots*; the launcher opens them and
fills `plan.fds` (`with_fds`) before `build_argv` runs, so the argv carries real fd numbers
while both steps stay pure.

Layout inside every sandbox (uid/gid are the invoking user's, mapped 1:1 in a new user
namespace, all capabilities dropped, no further user namespaces allowed):

    /usr (host, read-only, or the desktop's writable layer)   /bin /lib ... symlinks as on host
    /etc  only the pieces programs need; passwd/group synthesized for the one user
          (copied into a prepared tree bound as /etc in one mount: etc_tree)
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

import re
from collections.abc import Callable, Mapping, Sequence

# The plan's types, the /proc policy and the argv builder live in modules of their own; their
# names stay importable from here, where callers have always found them.
from zionwm.isolation.bwrap_argv import build_argv
from zionwm.isolation.procmask import (
    PROC_MASKED_DIRS,
    PROC_MASKED_FILES,
    PROC_READ_ONLY,
    PROC_STAND_INS,
    PROC_STAT,
    mask_proc,
    proc_stat_stand_in,
)
from zionwm.isolation.sandbox_plan import (
    EtcTree,
    FdSlot,
    GpuSysfs,
    HostFacts,
    Mount,
    MountKind,
    PlanError,
    SandboxPlan,
    SeedEntry,
    SeedKind,
    SessionBus,
    SlotKind,
    TemplateFacts,
)
from zionwm.isolation.spec import DesktopSpec

__all__ = [
    "PROC_MASKED_DIRS",
    "PROC_MASKED_FILES",
    "PROC_READ_ONLY",
    "PROC_STAND_INS",
    "PROC_STAT",
    "EtcTree",
    "FdSlot",
    "GpuSysfs",
    "HostFacts",
    "Mount",
    "MountKind",
    "PlanError",
    "SandboxPlan",
    "SeedEntry",
    "SeedKind",
    "SessionBus",
    "SlotKind",
    "TemplateFacts",
    "build_argv",
    "plan_sandbox",
    "proc_stat_stand_in",
    "sandbox_env",
    "sandbox_ids",
]

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
    etc_tree: EtcTree | None = None,
) -> SandboxPlan:
    """Resolve a desktop's policy into a plan. Pure: everything it needs is in its arguments.

    `wayland_socket` is the host path of the desktop's socket (None: no display for this
    program). `writable_usr_source` is where the launcher's overlay helper will have mounted
    the desktop's /usr layer (required when the spec asks for writable_usr). `seed` is the
    scanned template of an ephemeral home. `template` is the prepared root-filesystem
    template (required when the spec names one). `session_bus` is the desktop's bus (None:
    the program gets no D-Bus at all). `etc_tree` is the desktop's prepared /etc (see
    etc_tree; ignored on a template): one bind instead of one per piece, same content.
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
    mask_proc(host, mounts, slot)
    mounts.append(Mount(MountKind.DEV, "/dev"))
    mounts.append(Mount(MountKind.TMPFS, "/tmp"))
    mounts.append(Mount(MountKind.TMPFS, "/var/tmp"))
    tree = etc_tree if template is None else None
    if tree is not None:
        mounts.append(Mount(MountKind.RO_BIND, "/etc", source=tree.path))
    for path in TEMPLATE_HOST_ETC if template is not None else SYSTEM_CANDIDATES:
        if path in host.system_files and (tree is None or path not in tree.files):
            if tree is not None and path.startswith("/etc/") and path not in tree.binds:
                continue  # gone from the host since the probe: --ro-bind-try would skip it
            mounts.append(Mount(MountKind.RO_BIND_TRY, path, source=path))
    passwd, group = passwd_lines(uid, gid, user, home)
    for name, data in (("passwd", passwd), ("group", group)):
        if tree is not None and f"/etc/{name}" in tree.files:
            continue
        mounts.append(
            Mount(
                MountKind.RO_BIND_DATA,
                f"/etc/{name}",
                slot=slot(FdSlot(name, SlotKind.DATA, data=data)),
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
