"""Mounting a fuse-overlayfs layer in a private user+mount namespace, for a template's
per-sandbox helper (`templates.launch`) and the template bootstrap.

A desktop's writable /usr no longer goes through here: its layer is mounted once per desktop
by the /usr keeper (`usr_keeper`, enter.c), whose namespaces each sandbox enters. A
template's helper still runs per sandbox:

1. `enter_private_namespace` unshares a user namespace (the invoking user is uid 0 there)
   and a mount namespace, and makes every mount private, so nothing mounted is visible on
   the host;
2. `mount_layer` mounts, for an ephemeral layer, a tmpfs on the scratch dir that holds upper
   and work, starts `fuse-overlayfs -f` (ownership squashed to the user so the user may
   write where the host's root owns files) with PR_SET_PDEATHSIG, and waits (bounded) until
   the mount appears;
3. the caller execs bwrap in place, which binds the merged view.

Why fuse-overlayfs and not the kernel's overlayfs: an unprivileged user can mount kernel
overlayfs in its own user namespace (Linux >= 5.11), but copy-up of the host's root-owned
directories must preserve an owner that is unmapped there, so creating /usr/bin/foo fails;
and the sandbox runs with no capabilities, so it could not write root-owned dirs anyway.
fuse-overlayfs reports every file as the user's (`squash_to_uid`) and writes the upper layer
as the user. The privileged part is just the namespace setup above, a few lines, with no
input from the sandboxed program; fuse-overlayfs itself runs with the user's own rights.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import NamedTuple, Protocol

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_NOSUID = 0x2
MS_NODEV = 0x4
PR_SET_PDEATHSIG = 1
MOUNT_TIMEOUT = 10.0


class _Layer(Protocol):
    """What of a layer the helper uses (storage.LayerDirs has it): the helper does not import
    storage, which would bring the whole sandbox policy into every start with a writable
    /usr (about 40 ms of imports)."""

    @property
    def upper(self) -> Path: ...
    @property
    def work(self) -> Path: ...
    @property
    def merged(self) -> Path: ...


class _Dirs(NamedTuple):
    upper: Path
    work: Path
    merged: Path


def fuse_overlayfs_argv(lower: str, layer: _Layer, uid: int, gid: int) -> list[str]:
    binary = shutil.which("fuse-overlayfs") or "/usr/bin/fuse-overlayfs"
    opts = (
        f"lowerdir={lower},upperdir={layer.upper},workdir={layer.work},"
        f"squash_to_uid={uid},squash_to_gid={gid}"
    )
    return [binary, "-f", "-o", opts, str(layer.merged)]


class _Libc:
    def __init__(self) -> None:
        # The process's own symbols, the C library's among them: ctypes.util.find_library
        # would run ldconfig (about 20 ms) on every sandbox start with a writable /usr.
        self.lib = ctypes.CDLL(None, use_errno=True)

    def check(self, rc: int, what: str) -> None:
        if rc != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def unshare(self, flags: int) -> None:
        self.check(self.lib.unshare(flags), "unshare")

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        def enc(s: str | None) -> bytes | None:
            return None if s is None else s.encode()

        self.check(
            self.lib.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
            f"mount {target}",
        )


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def enter_private_namespace(libc: _Libc) -> None:
    """A private user+mount namespace in which the invoking user is uid 0.

    Not a 1:1 map: an unprivileged user mapped to itself loses the namespace's capabilities
    at the exec of fuse-overlayfs, which then cannot mount (EPERM). As the namespace's root
    it keeps them; files it writes are still the user's on disk, and bwrap maps the
    sandbox's uid onto that uid 0, so the sandbox sees its own files as its own.
    """
    uid, gid = os.getuid(), os.getgid()
    libc.unshare(CLONE_NEWUSER | CLONE_NEWNS)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"0 {uid} 1\n")
    _write("/proc/self/gid_map", f"0 {gid} 1\n")
    libc.mount(None, "/", None, MS_REC | MS_PRIVATE, None)


def _mounted(path: Path) -> bool:
    return os.stat(path).st_dev != os.stat(path.parent).st_dev


def _set_pdeathsig() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def mount_layer(
    layer: _Layer, *, scratch: Path | None, lower: str = "/usr"
) -> subprocess.Popen[bytes]:
    """Mount the overlay inside the current (private) namespaces; returns the daemon."""
    libc = _Libc()
    if scratch is not None:
        libc.mount("tmpfs", str(scratch), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700")
        layer.upper.mkdir(mode=0o755)
        layer.work.mkdir(mode=0o700)
    # Programs of one desktop run side by side, each with its own daemon over the same upper
    # dir; a work dir per daemon keeps their temporary files apart. The launcher removes the
    # ones of daemons that are gone (storage.prepare_layer).
    own_work = layer.work / str(os.getpid())
    own_work.mkdir(mode=0o700, exist_ok=True)
    layer = _Dirs(layer.upper, own_work, layer.merged)
    daemon = subprocess.Popen(
        fuse_overlayfs_argv(lower, layer, os.getuid(), os.getgid()),
        stdin=subprocess.DEVNULL,
        preexec_fn=_set_pdeathsig,  # noqa: PLW1509 (the helper is single-threaded)
        close_fds=True,
    )
    deadline = time.monotonic() + MOUNT_TIMEOUT
    delay = 0.001
    while not _mounted(layer.merged):
        if daemon.poll() is not None:
            raise RuntimeError(f"fuse-overlayfs exited with {daemon.returncode} before mounting")
        if time.monotonic() > deadline:
            daemon.kill()
            raise RuntimeError(f"fuse-overlayfs did not mount {layer.merged} in {MOUNT_TIMEOUT} s")
        time.sleep(delay)  # polling a condition with a deadline, not waiting a fixed time
        delay = min(delay * 2, 0.005)  # the mount takes milliseconds: look again soon
    return daemon
