"""What the launcher probes on the host: the user, the /etc pieces, the merged-/usr links,
devices and sound sockets (`HostFacts`, the facts `bwrap.plan_sandbox` may depend on)."""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
import pwd
import shutil
import time
from collections.abc import Mapping

from zionwm.isolation import bwrap
from zionwm.isolation.bwrap import HostFacts


def probe_host(environ: Mapping[str, str] | None = None) -> HostFacts:
    """Look at this machine once: user, /etc pieces, merged-/usr links, devices, sound sockets."""
    return refresh_devices(_static_facts(environ), environ)


def _static_facts(environ: Mapping[str, str] | None = None) -> HostFacts:
    """What stays put while the host runs: the user, the /etc pieces, the merged-/usr links,
    bwrap, the font dirs, the /proc layout. Devices and sound sockets are left empty."""
    env = os.environ if environ is None else environ
    uid, gid = os.getuid(), os.getgid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = env.get("USER") or f"user{uid}"
    etc = frozenset(p for p in bwrap.SYSTEM_CANDIDATES if os.path.lexists(p))
    links: list[tuple[str, str | None]] = []
    for p in bwrap.ROOT_LINK_CANDIDATES:
        if os.path.islink(p):
            links.append((p, os.readlink(p)))
        elif os.path.isdir(p):
            links.append((p, None))
    return HostFacts(
        uid=uid,
        gid=gid,
        user=user,
        system_files=etc,
        root_links=tuple(links),
        proc_masked=_proc_masked(),
        boot_time=_boot_time(),
        cpus=os.cpu_count() or 1,
        has_cpu_sysfs=os.path.isdir(bwrap.CPU_SYS_DIR),
        bwrap=shutil.which("bwrap") or "/usr/bin/bwrap",
        font_dirs=tuple(p for p in bwrap.HOST_FONT_CANDIDATES if os.path.isdir(p)),
    )


def refresh_devices(host: HostFacts, environ: Mapping[str, str] | None = None) -> HostFacts:
    """`host` with what can change while the compositor runs probed again: GPU render nodes,
    cameras (plugged in later) and the host's sound sockets (a sound server started later)."""
    env = os.environ if environ is None else environ
    dri = tuple(sorted(glob.glob(bwrap.RENDER_NODE_GLOB)))
    video = tuple(sorted(glob.glob("/dev/video*") + glob.glob("/dev/media*")))
    host_run = env.get("XDG_RUNTIME_DIR")
    pipewire = pulse = None
    if host_run:
        pw = os.path.join(host_run, "pipewire-0")
        pa = os.path.join(host_run, "pulse", "native")
        pipewire = pw if os.path.exists(pw) else None
        pulse = pa if os.path.exists(pa) else None
    gpu = host.gpu_sysfs
    if dri != host.dri_nodes:
        gpu = tuple(g for g in map(_gpu_sysfs, dri) if g is not None)
    return dataclasses.replace(
        host,
        dri_nodes=dri,
        gpu_sysfs=gpu,
        video_nodes=video,
        pipewire_socket=pipewire,
        pulse_socket=pulse,
    )


def _gpu_sysfs(node: str) -> bwrap.GpuSysfs | None:
    """Where sysfs describes one render node; None when it does not (no sysfs, odd node)."""
    try:
        rdev = os.stat(node).st_rdev
        link = f"/sys/dev/char/{os.major(rdev)}:{os.minor(rdev)}"
        target = os.readlink(link)
        device = os.path.realpath(os.path.join(link, "device"))
        drm = os.path.join(device, "drm")
        cards = sorted(
            os.path.join(drm, name) for name in os.listdir(drm) if name.startswith("card")
        )
    except OSError:
        return None
    if not device.startswith("/sys/devices/"):
        return None
    return bwrap.GpuSysfs(node, link, target, device, tuple(cards))


@functools.cache
def _proc_masked() -> frozenset[str]:
    """Which host-wide /proc entries this kernel has (fixed while it runs): read once."""
    paths = (*bwrap.PROC_MASKED_FILES, *bwrap.PROC_MASKED_DIRS, *bwrap.PROC_STAND_INS)
    return frozenset(p for p in paths if os.path.exists(p))


@functools.cache
def _boot_time() -> int:
    """/proc/stat's btime; fixed for the life of the machine, so read once."""
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return int(time.time() - time.monotonic())
