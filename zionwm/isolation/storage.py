"""Desktop storage on the host: homes, Shared, outboxes, inboxes, layers, ephemeral seeds.

Owns creating these directories and opening them for bwrap *safely*. Every directory a
sandbox gets is opened as an O_PATH fd by walking from zionwm's data dir one component at a
time with O_NOFOLLOW, and bwrap binds the fd (`--bind-fd`, backported to Debian 12's bwrap
0.8.0 for exactly this, CVE-2024-42472). A symlink anywhere on the way is refused with
`UnsafePathError`, so a desktop that swaps its home or Outbox for a link to `~/.ssh` gets an
error and no mount at all; once opened, the fd pins the directory, and bwrap compares the
mounted inode with the fd's, so a swap after the check cannot redirect the bind either.

The data dir itself ($XDG_DATA_HOME/zionwm) is trusted: the user may have made it a symlink.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from zionwm import paths
from zionwm.isolation.bwrap import HOME_MOUNTPOINTS, SeedEntry, SeedKind

log = logging.getLogger(__name__)

_DESKTOP_NAME = re.compile(r"[a-z0-9_-]{1,32}")
_OPEN_DIR = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC

SEED_DIR_NAME = "ephemeral-seed"
# A seed is a handful of dotfiles; each file costs bwrap an fd and a copy.
SEED_MAX_ENTRIES = 512
SEED_MAX_BYTES = 64 * 1024 * 1024


class UnsafePathError(RuntimeError):
    """A storage path is a symlink, not a directory, or not owned by the user."""


def check_desktop_name(name: str) -> str:
    if not _DESKTOP_NAME.fullmatch(name):
        raise ValueError(f"desktop name {name!r} is not [a-z0-9_-]{{1,32}}")
    return name


def _relative_parts(base: Path, target: Path) -> tuple[str, ...]:
    rel = target.relative_to(base)
    parts = rel.parts
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafePathError(f"{target}: unexpected component in path")
    return parts


def open_dir_under(
    base: Path, parts: Sequence[str], *, create: bool = True, mode: int = 0o700
) -> int:
    """O_PATH fd of base/parts..., refusing symlinks and non-directories at every step.

    Missing components are created (mode `mode`) when `create`. The caller owns the fd.
    """
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    cur = os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    where = base
    try:
        for part in parts:
            where = where / part
            try:
                nxt = os.open(part, _OPEN_DIR, dir_fd=cur)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, mode, dir_fd=cur)
                except FileExistsError:
                    pass  # raced with another creator; the open below judges what is there
                nxt = _open_step(part, cur, where)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _unsafe(cur, part, where) from None
                raise
            os.close(cur)
            cur = nxt
            st = os.fstat(cur)
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafePathError(f"{where} is not a directory")
            if st.st_uid != os.getuid():
                raise UnsafePathError(f"{where} is owned by uid {st.st_uid}, not by this user")
        return cur
    except BaseException:
        os.close(cur)
        raise


def _open_step(part: str, dir_fd: int, where: Path) -> int:
    try:
        return os.open(part, _OPEN_DIR, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _unsafe(dir_fd, part, where) from None
        raise


def _unsafe(dir_fd: int, part: str, where: Path) -> UnsafePathError:
    try:
        st = os.lstat(part, dir_fd=dir_fd)
    except OSError:
        return UnsafePathError(f"{where}: cannot be opened safely")
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(part, dir_fd=dir_fd)
        except OSError:
            target = "?"
        return UnsafePathError(
            f"{where} is a symlink (to {target}); refusing to bind it into a sandbox"
        )
    return UnsafePathError(f"{where} is not a directory")


def _open_data_dir(target: Path, *, create: bool = True) -> int:
    base = paths.data_home()
    return open_dir_under(base, _relative_parts(base, target), create=create)


def open_home(desktop: str, mountpoints: Sequence[str] = ()) -> int:
    """The desktop's home; `mountpoints` (e.g. "Outbox") are where other dirs get mounted
    inside it, and must be absent or real directories.

    The sandbox can plant a symlink there between launches. bwrap refuses to bind an fd over
    a symlink (it compares inodes), so this would only fail the launch, obscurely; this
    check fails it early and says why.
    """
    fd = _open_data_dir(paths.desktop_home(check_desktop_name(desktop)))
    try:
        for name in mountpoints:
            try:
                st = os.lstat(name, dir_fd=fd)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
                raise UnsafePathError(
                    f"~/{name} in the home of desktop {desktop} is {what}; move it away to "
                    "launch programs there again"
                )
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_outbox(desktop: str) -> int:
    return _open_data_dir(paths.desktop_outbox(check_desktop_name(desktop)))


def open_inbox(desktop: str) -> int:
    return _open_data_dir(paths.desktop_inbox(check_desktop_name(desktop)))


def open_shared() -> int:
    return _open_data_dir(paths.shared_dir())


def open_storage(kind: str, desktop: str) -> int:
    """The O_PATH fd for one storage slot of the bwrap plan ("home", "outbox", ...)."""
    openers = {
        "home": lambda d: open_home(d, HOME_MOUNTPOINTS),
        "outbox": open_outbox,
        "inbox": open_inbox,
        "shared": lambda _d: open_shared(),
    }
    try:
        return openers[kind](desktop)
    except KeyError:
        raise ValueError(f"unknown storage kind {kind!r}") from None


def seed_dir(desktop: str) -> Path:
    return paths.desktop_dir(check_desktop_name(desktop)) / SEED_DIR_NAME


@dataclass
class Seed:
    """A scanned ephemeral-home template: its entries and the fds of its files."""

    entries: list[SeedEntry]
    fds: dict[str, int]

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def scan_seed(desktop: str) -> Seed:
    """Walk the desktop's ephemeral-seed template without following symlinks.

    Creates the template (empty) when missing. Symlinks inside it are recreated as symlinks,
    never followed; other file types are skipped.
    """
    root = seed_dir(desktop)
    base = paths.data_home()
    path_fd = _open_data_dir(root)
    try:
        # O_PATH fds cannot be listed; reopening through /proc keeps the checked inode.
        root_fd = os.open(f"/proc/self/fd/{path_fd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    finally:
        os.close(path_fd)
    seed = Seed([], {})
    total = 0
    try:
        for rel, kind, fd_or_target, mode in _walk(root_fd, ""):
            if len(seed.entries) >= SEED_MAX_ENTRIES:
                raise UnsafePathError(f"{root}: more than {SEED_MAX_ENTRIES} entries")
            if kind is SeedKind.FILE:
                assert isinstance(fd_or_target, int)
                name = f"seed{len(seed.fds)}"
                seed.fds[name] = fd_or_target
                total += os.fstat(fd_or_target).st_size
                if total > SEED_MAX_BYTES:
                    raise UnsafePathError(f"{root}: larger than {SEED_MAX_BYTES} bytes")
                # Set-id bits mean nothing in the sandbox (nosuid tmpfs) and are not copied.
                seed.entries.append(SeedEntry(rel, kind, mode=mode & 0o777, slot=name))
            elif kind is SeedKind.SYMLINK:
                assert isinstance(fd_or_target, str)
                seed.entries.append(SeedEntry(rel, kind, target=fd_or_target))
            else:
                seed.entries.append(SeedEntry(rel, kind, mode=mode))
    except BaseException:
        seed.close()
        raise
    finally:
        os.close(root_fd)
    log.debug("seed of %s (%s): %d entries", desktop, base, len(seed.entries))
    return seed


def _walk(dir_fd: int, prefix: str) -> Iterator[tuple[str, SeedKind, int | str, int]]:
    for name in sorted(os.listdir(dir_fd)):
        rel = f"{prefix}{name}"
        st = os.lstat(name, dir_fd=dir_fd)
        if stat.S_ISLNK(st.st_mode):
            yield rel, SeedKind.SYMLINK, os.readlink(name, dir_fd=dir_fd), 0
        elif stat.S_ISDIR(st.st_mode):
            sub = os.open(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
            )
            try:
                yield rel, SeedKind.DIR, 0, stat.S_IMODE(st.st_mode) | 0o700
                yield from _walk(sub, rel + "/")
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            yield rel, SeedKind.FILE, fd, stat.S_IMODE(st.st_mode)
        else:
            log.warning("seed: skipping %s (not a file, directory or symlink)", rel)


@dataclass(frozen=True)
class LayerDirs:
    upper: Path
    work: Path
    merged: Path


def prepare_layer(desktop: str, *, ephemeral: bool) -> LayerDirs:
    """Create the desktop's /usr layer directories (checked like the other storage).

    Ephemeral layers keep their upper and work dirs in a tmpfs the overlay helper mounts on
    `merged`'s sibling `scratch`; only the empty mount points exist on disk.
    """
    layer = paths.desktop_layer(check_desktop_name(desktop))
    names = ("scratch", "merged") if ephemeral else ("upper", "work", "merged")
    for name in names:
        os.close(_open_data_dir(layer / name))
    if ephemeral:
        scratch = layer / "scratch"
        return LayerDirs(scratch / "upper", scratch / "work", layer / "merged")
    _remove_stale_work_dirs(layer / "work")
    return LayerDirs(layer / "upper", layer / "work", layer / "merged")


def _remove_stale_work_dirs(work: Path) -> None:
    """Drop per-daemon work dirs (named by the daemon's helper pid) whose process is gone."""
    for entry in work.iterdir():
        stale = entry.name.isdigit() and not os.path.exists(f"/proc/{entry.name}")
        if stale and not entry.is_symlink() and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def _describe(dir_fd: int, name: str, st: os.stat_result) -> str:
    if stat.S_ISDIR(st.st_mode):
        files = size = 0  # every entry below it, and the bytes of its non-directories
        try:
            sub = os.open(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
            )
        except OSError:
            return "directory"
        try:
            for _root, dirs, names, rfd in os.fwalk(dir_fd=sub, follow_symlinks=False):
                files += len(dirs) + len(names)
                size += sum(os.lstat(n, dir_fd=rfd).st_size for n in names)
        except OSError:
            pass
        finally:
            os.close(sub)
        return f"directory: {files} entries, {size} bytes"
    if stat.S_ISREG(st.st_mode):
        return f"file, {st.st_size} bytes"
    if stat.S_ISLNK(st.st_mode):
        return "symbolic link"
    return "special file"


def wipe_entries(
    directory: Path, keep: Callable[[str, os.stat_result], bool]
) -> list[tuple[str, str]]:
    """Remove every entry of `directory` (a desktop's inbox or outbox under the data dir)
    for which `keep(name, lstat)` is false, sub-trees included, never following a symlink.

    Returns (name, what it was) for each entry removed, for the caller to log; an entry
    that cannot be removed is logged here and left. A missing directory has no entries.
    """
    try:
        path_fd = _open_data_dir(directory, create=False)
    except FileNotFoundError:
        return []
    try:
        dir_fd = os.open(f"/proc/self/fd/{path_fd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    finally:
        os.close(path_fd)
    removed: list[tuple[str, str]] = []
    try:
        for name in sorted(os.listdir(dir_fd)):
            try:
                st = os.lstat(name, dir_fd=dir_fd)
                if keep(name, st):
                    continue
                what = _describe(dir_fd, name, st)
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(name, dir_fd=dir_fd)
                else:
                    os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            except (OSError, RecursionError) as e:
                log.error("%s: could not remove %r: %s", directory, name, e)
                continue
            removed.append((name, what))
    finally:
        os.close(dir_fd)
    return removed
