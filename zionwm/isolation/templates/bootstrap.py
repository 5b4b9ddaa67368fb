"""Templates built by other tools: debootstrap (from the host's own apt mirror and suite by
default) and a local podman image (exported with `podman save`, then read as an archive).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from zionwm.isolation import overlay
from zionwm.isolation.templates.store import Source, TemplateError
from zionwm.isolation.templates.tree import Report, sanitize_in_place

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# debootstrap and podman


def apt_mirror(sources: Sequence[str]) -> str | None:
    """The first non-security Debian mirror in apt source files (one-line or deb822)."""
    for text in sources:
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for raw in stanza.splitlines():
                line = raw.split("#", 1)[0].rstrip()
                if not line:
                    continue
                m = re.match(r"^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m:
                    uri, suite = m.group(2), m.group(3)
                    if "security" not in uri and "security" not in suite:
                        return uri.rstrip("/")
                    continue
                m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
                if m:
                    fields[m.group(1).lower()] = m.group(2)
            types = fields.get("types", "").split()
            if "deb" in types and fields.get("uris"):
                uri = fields["uris"].split()[0]
                if "security" not in uri and "security" not in fields.get("suites", ""):
                    return uri.rstrip("/")
    return None


def configured_mirror() -> str:
    texts = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        with contextlib.suppress(OSError):
            if p.suffix in (".list", ".sources"):
                texts.append(p.read_text())
    return apt_mirror(texts) or "http://deb.debian.org/debian"


def host_suite() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                value = line.split("=", 1)[1].strip().strip('"')
                if value:
                    return value
    return "stable"


def debootstrap_argv(source: Source, target: Path, cache: Path | None) -> list[str]:
    exe = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    argv = [exe, f"--variant={source.variant}"]
    if source.include:
        argv.append(f"--include={','.join(source.include)}")
    if cache is not None:
        argv.append(f"--cache-dir={cache}")
    argv += [source.location or host_suite(), str(target), source.mirror or configured_mirror()]
    return argv


def run_debootstrap(source: Source, target: Path, report: Report) -> None:
    if shutil.which("debootstrap") is None and not os.path.exists("/usr/sbin/debootstrap"):
        raise TemplateError("debootstrap is not installed (Debian package: debootstrap)")
    if os.geteuid() != 0:
        raise TemplateError(
            "debootstrap needs root (it creates files of other owners and runs package scripts "
            "in a chroot); run this one command with sudo, or build a rootfs tarball elsewhere "
            "and use --from-rootfs"
        )
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zionwm"
    cache = cache / "debootstrap"
    cache.mkdir(parents=True, exist_ok=True)
    argv = debootstrap_argv(source, target, cache)
    log.info("running %s", " ".join(argv))
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            # Runs between fork and exec; `template create/update` is a single-threaded CLI.
            preexec_fn=lambda: _device_capable_target(target),
        )
    except subprocess.SubprocessError as exc:
        raise TemplateError(f"cannot prepare {target} for debootstrap: {exc}") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise TemplateError(f"debootstrap failed ({proc.returncode}):\n{tail}")
    sanitize_in_place(target, report)
    drop_apt_indexes(target, report)


MS_BIND = 0x1000
MS_REMOUNT = 0x20


def _device_capable_target(target: Path) -> None:
    """Give debootstrap a target where device nodes and set-id programs work.

    The data dir may be on a file system mounted nodev/nosuid (a home on such a mount, or
    /tmp in tests: systemd mounts it so), where debootstrap refuses to start and package
    scripts cannot open /dev/null. In a private mount namespace of debootstrap's own, the
    target becomes a bind mount of itself without those flags; the mounts debootstrap makes
    inside it (proc, sys) also end with that namespace, even when it fails half-way. What it
    built keeps no device node or set-id bit (`sanitize_in_place`).
    """
    libc = overlay._Libc()
    libc.unshare(overlay.CLONE_NEWNS)
    libc.mount(None, "/", None, overlay.MS_REC | overlay.MS_PRIVATE, None)
    libc.mount(str(target), str(target), None, MS_BIND, None)
    libc.mount(None, str(target), None, MS_REMOUNT | MS_BIND, None)


def drop_apt_indexes(root: Path, report: Report) -> None:
    """Remove apt's package lists, caches and downloaded .debs (about 80 MB on Debian 12),
    as container images do: stale by the first use; `apt-get update` fetches them again."""
    freed = 0
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb"):
        for p in root.glob(pattern):
            if p.is_file() and not p.is_symlink() and p.name != "lock":
                freed += p.stat().st_size
                p.unlink()
    if freed:
        report.notes.append(f"apt lists and caches removed ({freed >> 20} MiB): run apt-get update")


def export_podman(image: str, dest: Path) -> None:
    podman = shutil.which("podman")
    if podman is None:
        raise TemplateError(
            "podman is not installed on this machine: export the image elsewhere with "
            "`podman save --format oci-archive -o FILE IMAGE` and use --from-archive FILE"
        )
    proc = subprocess.run(
        [podman, "image", "save", "--format", "oci-archive", "-o", str(dest), image],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise TemplateError(f"podman save {image} failed: {proc.stderr.strip()}")
