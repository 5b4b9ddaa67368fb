"""The prepared /etc: one directory bound as a sandbox's /etc in a single mount.

Binding each of the host's /etc pieces on its own costs bwrap one mount apiece, and each mount
costs it a re-read of its mount table. Instead the launcher keeps a directory in its private
runtime area holding copies of the /etc pieces of `bwrap.SYSTEM_CANDIDATES` (regular files,
and directories copied whole: files, symlinks as symlinks, subdirectories) plus the
synthesized passwd and group, and binds that one directory as /etc. Desktops whose programs
run as the same uid:gid share one tree: nothing in it belongs to a desktop. A piece that
cannot be copied faithfully stays a bind of its own over an empty mount point in the tree: a
file or directory not readable by everyone (a copy could show a program what the bind's
owner and mode withheld from it, as the copy's owner is the launcher's user), too large, or
a directory holding a device or socket. The sandbox sees the same names, types, modes and
contents as with separate binds; nothing outside those pieces is ever copied, so what was
hidden stays hidden.

The copies follow the host: before each launch the launcher stats what it copied (every
source file, and every source directory, whose mtime moves when an entry is added, removed,
renamed or relinked), and brings the tree up to date when any of it changed. A file is
replaced only when its content differs, by rename from a staging directory next to the tree:
a sandbox starting or running meanwhile sees the old or the new file, never half of one.

Building the tree costs tens to hundreds of milliseconds (a copy of every piece), once per
session and again when the host changes. Given a `background(lane, what, fn)` (the
compositor passes its offload lanes), that work runs on a worker thread and never on the
caller's: `ensure` then never waits for a build. While a build or a rebuild runs, `ensure`
answers None, and the sandbox started meanwhile gets the pieces bound one by one (the same
names, modes and contents): no sandbox ever binds a tree half built or half updated. The
launches after it bind the finished tree.

What a copy does not carry: the owner (the launcher's user instead of root, which a sandbox
of an unprivileged launcher saw as `nobody`), extended attributes and ACLs.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zionwm import paths
from zionwm.isolation import bwrap
from zionwm.isolation.sandbox_plan import EtcTree, HostFacts
from zionwm.isolation.spec import DesktopSpec

log = logging.getLogger(__name__)

# Larger files stay binds of their own (no candidate comes near this).
MAX_COPY = 4 << 20
# The mode bwrap gives the parent directories it creates for a bind (/etc, /etc/ssl): 0700,
# whatever the launcher's umask. The tree's own parents get the same.
BWRAP_DIR_MODE = 0o700

_StatKey = tuple[object, ...]
# Where slow work runs: `background(lane, what, fn)` queues fn on a worker (see the launcher).
Background = Callable[[str, str, Callable[[], object]], object]


def _key(path: str, *, follow: bool = True) -> _StatKey:
    try:
        st = os.stat(path, follow_symlinks=follow)
    except OSError as exc:
        return (path, "missing", exc.errno)
    return (path, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode)


def etc_dir(uid: int, gid: int) -> Path:
    """The host directory holding the prepared /etc of desktops whose programs run as
    uid:gid (its passwd and group name them; the rest is the same for every desktop)."""
    return paths.runtime_dir() / ".etc" / f"{uid}.{gid}"


@dataclass
class _State:
    inputs: tuple[object, ...]  # the synthesized files and the pieces the host has
    watched: tuple[tuple[str, bool], ...]  # (host path, follow symlinks) stat'ed per launch
    keys: tuple[_StatKey, ...]  # their stat keys when the tree was made
    root: tuple[int, int]  # the tree's (dev, ino)
    tree: EtcTree


class EtcTrees:
    """The prepared /etc trees, refreshed when a source changes (see module doc).

    `host_etc` is where the host's /etc pieces are read from (tests use a directory of their
    own); the tree always stands for /etc inside the sandbox."""

    def __init__(self, host_etc: str = "/etc", background: Background | None = None) -> None:
        self._host_etc = host_etc.rstrip("/")
        self._states: dict[str, _State] = {}
        self._building: set[str] = set()  # trees a worker is building or bringing up to date
        self._lock = threading.Lock()
        # None: trees are built at once, on the caller's thread
        self.background = background

    def ensure(self, spec: DesktopSpec, host: HostFacts) -> EtcTree | None:
        """The desktop's tree when it is built and up to date with the host's sources. Else
        it is built (or brought up to date): at once without `background`, on a worker with
        one, and then None until the worker is done. None also when it cannot be prepared.
        None means: the sandbox gets the pieces bound one by one."""
        uid, gid = bwrap.sandbox_ids(spec, host)
        passwd, group = bwrap.passwd_lines(uid, gid, host.user, f"/home/{host.user}")
        root = etc_dir(uid, gid)
        key = root.name
        inputs = (passwd, group, *sorted(host.system_files))
        synthesized = {"passwd": passwd, "group": group}
        with self._lock:
            if key in self._building:
                return None
            state = self._states.get(key)
            if state is not None and self._fresh(state, inputs, root):
                return state.tree
            if self.background is None:
                return self._publish(key, self._timed_build(spec.name, root, host, synthesized))
            self._building.add(key)
        build = functools.partial(
            self._build_in_background, spec.name, key, root, host, synthesized
        )
        try:
            self.background(f"/etc {key}", f"preparing /etc for {spec.name}", build)
        except BaseException:
            with self._lock:
                self._building.discard(key)
            raise
        return None

    def building(self) -> bool:
        """A worker is building or updating a tree."""
        with self._lock:
            return bool(self._building)

    def _timed_build(
        self, desktop: str, root: Path, host: HostFacts, synthesized: dict[str, bytes]
    ) -> _State | None:
        started = time.monotonic()
        try:
            state = self._build(root, host, synthesized)
        except OSError as exc:
            log.warning("desktop %s: cannot prepare its /etc at %s: %s", desktop, root, exc)
            return None
        log.info(
            "prepared /etc at %s in %.0f ms: %d piece(s) copied, %d bound",
            root,
            (time.monotonic() - started) * 1000,
            len(state.tree.files),
            len(state.tree.binds),
        )
        return state

    def _publish(self, key: str, state: _State | None) -> EtcTree | None:
        # under self._lock
        if state is None:
            self._states.pop(key, None)
            return None
        self._states[key] = state
        return state.tree

    def _build_in_background(
        self, desktop: str, key: str, root: Path, host: HostFacts, synthesized: dict[str, bytes]
    ) -> None:
        # On a worker. Nothing else touches this tree while its key is in `_building`; it
        # is published, and the key cleared, only once it is whole.
        state = None
        try:
            state = self._timed_build(desktop, root, host, synthesized)
        finally:
            with self._lock:
                self._publish(key, state)
                self._building.discard(key)

    def _fresh(self, state: _State, inputs: tuple[object, ...], root: Path) -> bool:
        if state.inputs != inputs:
            return False
        try:
            st = os.stat(root)
        except OSError:
            return False
        if (st.st_dev, st.st_ino) != state.root:
            return False
        return all(
            _key(p, follow=f) == k for (p, f), k in zip(state.watched, state.keys, strict=True)
        )

    def _build(self, root: Path, host: HostFacts, synthesized: dict[str, bytes]) -> _State:
        root.mkdir(parents=True, exist_ok=True, mode=BWRAP_DIR_MODE)
        os.chmod(root, BWRAP_DIR_MODE)
        staging = root.parent / f".{root.name}.staging.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        sync = _Sync(root, staging)
        for name, data in synthesized.items():
            sync.put(name, data, 0o644, None)
        copied: set[str] = {f"/etc/{name}" for name in synthesized}
        binds: set[str] = set()
        for inside in sorted(host.system_files):
            if not inside.startswith("/etc/"):
                continue
            rel = inside.removeprefix("/etc/")
            src = f"{self._host_etc}/{rel}"
            # Stat'ed before reading: a change made while copying shows at the next launch.
            sync.watch(src, follow=True)
            try:
                st = os.stat(src)
            except OSError:
                continue  # gone since the probe: its bind (--ro-bind-try) would be skipped
            if stat.S_ISREG(st.st_mode):
                done = sync.copy_file(src, rel, st)
            else:
                done = (
                    stat.S_ISDIR(st.st_mode) and _copyable_dir(src) and sync.copy_dir(src, rel, st)
                )
            if done:
                copied.add(inside)
            else:
                sync.mountpoint(rel, directory=stat.S_ISDIR(st.st_mode))
                binds.add(inside)
        sync.prune()
        shutil.rmtree(staging, ignore_errors=True)
        st = os.stat(root)
        keys = tuple(sync.keys)
        return _State(
            inputs=(*synthesized.values(), *sorted(host.system_files)),
            watched=tuple(sync.watched),
            keys=keys,
            root=(st.st_dev, st.st_ino),
            tree=EtcTree(path=str(root), files=frozenset(copied), binds=frozenset(binds)),
        )


def _public(st: os.stat_result, *, directory: bool = False) -> bool:
    """Readable (and, for a directory, searchable) by everyone, and not too large: a copy of
    it shows no program more than the host's file does, whoever owns the copy."""
    if directory:
        return st.st_mode & (stat.S_IROTH | stat.S_IXOTH) == stat.S_IROTH | stat.S_IXOTH
    return bool(st.st_mode & stat.S_IROTH) and st.st_size <= MAX_COPY


def _copyable_dir(src: str) -> bool:
    """Whether a directory holds only what a copy reproduces: directories and regular files
    readable by everyone (see `_public`), and symlinks."""
    try:
        if not _public(os.stat(src), directory=True):
            return False
        for dirpath, dirnames, filenames in os.walk(src, onerror=_raise):
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if not _public(st, directory=True):
                        return False
                elif not (stat.S_ISREG(st.st_mode) and _public(st)):
                    return False
    except OSError:
        return False
    return True


def _raise(exc: OSError) -> None:
    raise exc


class _Sync:
    """Brings the tree in line with its sources, entry by entry, recording what it read."""

    def __init__(self, root: Path, staging: Path) -> None:
        self.root = root
        self.staging = staging
        self.wanted: set[str] = set()  # relative paths that belong in the tree
        self.opaque: set[str] = set()  # mount points: whatever is under them is not ours
        self.watched: list[tuple[str, bool]] = []
        self.keys: list[_StatKey] = []
        self._tmp = 0
        self._dirs: set[str] = set()  # parents made sure of

    def watch(self, path: str, *, follow: bool) -> None:
        self.watched.append((path, follow))
        self.keys.append(_key(path, follow=follow))

    def _dest(self, rel: str) -> Path:
        self.wanted.add(rel)
        dest = self.root / rel
        head = os.path.dirname(rel)
        if not head or head in self._dirs:
            return dest
        for parent in reversed(Path(rel).parents[:-1]):
            self.wanted.add(str(parent))
            self._dirs.add(str(parent))
            d = self.root / parent
            if d.is_symlink() or (d.exists() and not d.is_dir()):
                d.unlink()
            if not d.exists():
                d.mkdir(mode=BWRAP_DIR_MODE)
                os.chmod(d, BWRAP_DIR_MODE)
        return dest

    def _staged(self) -> Path:
        self._tmp += 1
        return self.staging / str(self._tmp)

    def _replace(self, tmp: Path, dest: Path) -> None:
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        os.rename(tmp, dest)

    def put(self, rel: str, data: bytes, mode: int, mtime: int | None) -> None:
        dest = self._dest(rel)
        try:
            st = os.lstat(dest)
            if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == mode:
                with open(dest, "rb") as f:
                    if f.read(MAX_COPY + 1) == data:
                        if mtime is not None and st.st_mtime_ns != mtime:
                            os.utime(dest, ns=(mtime, mtime), follow_symlinks=False)
                        return
        except FileNotFoundError:
            pass
        tmp = self._staged()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600)
        try:
            os.write(fd, data)
            os.fchmod(fd, mode)
            if mtime is not None:
                os.utime(fd, ns=(mtime, mtime))
        finally:
            os.close(fd)
        self._replace(tmp, dest)

    def copy_file(self, src: str, rel: str, st: os.stat_result) -> bool:
        """Copy one regular file; False when it is not public (see `_public`) or unreadable."""
        if not _public(st):
            return False
        try:
            with open(src, "rb") as f:
                data = f.read(MAX_COPY + 1)
        except OSError:
            return False
        if len(data) > MAX_COPY:
            return False
        self.put(rel, data, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
        return True

    def symlink(self, rel: str, target: str) -> None:
        dest = self._dest(rel)
        try:
            if os.readlink(dest) == target:
                return
        except FileNotFoundError:
            os.symlink(target, dest)  # a new name: made whole at once, nothing to stage
            return
        except OSError:
            pass  # there, but not a symlink
        tmp = self._staged()
        os.symlink(target, tmp)
        self._replace(tmp, dest)

    def directory(self, rel: str, mode: int) -> None:
        dest = self._dest(rel)
        self._dirs.add(rel)
        if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
            dest.unlink()
        if not dest.exists():
            dest.mkdir(mode=0o700)
        if stat.S_IMODE(dest.stat().st_mode) != mode:
            os.chmod(dest, mode)

    def copy_dir(self, src: str, rel: str, st: os.stat_result) -> bool:
        """Copy a directory tree: subdirectories, regular files, symlinks as symlinks. False
        when part of it could not be copied (it changed meanwhile): it is bound instead."""
        try:
            self._copy_dir(src, rel, st)
        except OSError as exc:
            log.debug("%s is bound rather than copied: %s", src, exc)
            return False
        return True

    def _copy_dir(self, src: str, rel: str, st: os.stat_result) -> None:
        self.directory(rel, stat.S_IMODE(st.st_mode))
        for dirpath, dirnames, filenames in os.walk(src, onerror=_raise):
            sub = os.path.relpath(dirpath, src)
            base = rel if sub == "." else f"{rel}/{sub}"
            if sub != ".":
                self.watch(dirpath, follow=False)
            for name in sorted(dirnames + filenames):
                p = os.path.join(dirpath, name)
                est = os.lstat(p)
                if stat.S_ISLNK(est.st_mode):
                    self.symlink(f"{base}/{name}", os.readlink(p))
                elif stat.S_ISDIR(est.st_mode):
                    self.directory(f"{base}/{name}", stat.S_IMODE(est.st_mode))
                elif stat.S_ISREG(est.st_mode):
                    self.watch(p, follow=False)
                    if not self.copy_file(p, f"{base}/{name}", est):
                        raise OSError(f"{p} cannot be copied")
        # Directory mtimes last: filling them moved ours.
        for dirpath, _dirnames, _filenames in os.walk(src):
            sub = os.path.relpath(dirpath, src)
            dest = self.root / (rel if sub == "." else f"{rel}/{sub}")
            mtime = os.stat(dirpath).st_mtime_ns
            os.utime(dest, ns=(mtime, mtime), follow_symlinks=False)

    def mountpoint(self, rel: str, *, directory: bool) -> None:
        dest = self._dest(rel)
        self.opaque.add(rel)
        if directory:
            if dest.is_dir() and not dest.is_symlink():
                # empty, as a mount point should be (a copy made earlier is not left below)
                for entry in list(dest.iterdir()):
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
                return
            if dest.exists() or dest.is_symlink():
                dest.unlink()
            dest.mkdir(mode=0o755)
            return
        if dest.is_file() and not dest.is_symlink() and dest.stat().st_size == 0:
            return
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))

    def prune(self) -> None:
        """Remove what no longer belongs (a host piece or entry that went away)."""
        for dirpath, dirnames, filenames in os.walk(self.root, topdown=True):
            base = os.path.relpath(dirpath, self.root)
            for name in list(dirnames):
                rel = name if base == "." else f"{base}/{name}"
                if rel not in self.wanted:
                    shutil.rmtree(os.path.join(dirpath, name), ignore_errors=True)
                    dirnames.remove(name)
                elif rel in self.opaque:
                    dirnames.remove(name)
            for name in filenames:
                rel = name if base == "." else f"{base}/{name}"
                if rel not in self.wanted:
                    os.unlink(os.path.join(dirpath, name))
