"""The safe writer every template source goes through.

It never follows a symlink while writing: each path is created by walking the template's
tree with O_NOFOLLOW directory fds, so a hostile archive cannot write outside it. Member
names with `..` are refused (the whole archive); leading `/` is stripped, as tar does;
device nodes, fifos and sockets are skipped; set-id bits are dropped; hard links must point
inside the tree. Symlinks are kept as they are, whatever they point to: they are only ever
resolved inside a sandbox, whose root is the template. `finish_tree` makes the files bwrap
binds over plain files.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from zionwm.isolation.templates.store import TemplateError, UnsafeArchiveError

log = logging.getLogger(__name__)

# Files bwrap binds over inside /etc: present as plain files so a bind neither writes into a
# desktop's layer nor follows a link the template planted there.
BIND_TARGETS = ("etc/passwd", "etc/group", "etc/hosts", "etc/resolv.conf")
MAX_NOTES = 40
# Every directory of a tree is opened this way: a link in its place is refused, not followed.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


# --------------------------------------------------------------------------------------------
# The safe writer


def member_parts(name: str) -> tuple[str, ...]:
    """Path components of an archive member, relative to the template root.

    A leading '/' or './' is dropped (as tar does); '..' anywhere makes the archive hostile.
    """
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchiveError(f"member {name!r} climbs out with '..': refusing the archive")
    return parts


@dataclass
class Report:
    """What the writer neutralised, for the template's notes."""

    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, key: str, text: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)


class Tree:
    """Writes into one directory without ever following a symlink on the way."""

    def __init__(self, root: Path, report: Report) -> None:
        self.root = root
        self.report = report
        self.fd = os.open(root, DIR_FLAGS)
        self._last: tuple[tuple[str, ...], int] | None = None

    def close(self) -> None:
        self._forget()
        os.close(self.fd)

    def _forget(self, prefix: tuple[str, ...] | None = None) -> None:
        if self._last is not None and (prefix is None or self._last[0][: len(prefix)] == prefix):
            os.close(self._last[1])
            self._last = None

    def walk(self, dparts: tuple[str, ...], *, create: bool) -> int | None:
        """A new fd of the directory dparts (caller closes); None when absent and not create."""
        fd = os.dup(self.fd)
        try:
            for i, comp in enumerate(dparts):
                try:
                    nxt = os.open(comp, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    nxt = os.open(comp, DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    if not create:
                        os.close(fd)
                        return None
                    raise UnsafeArchiveError(
                        f"{'/'.join(dparts)}: {'/'.join(dparts[: i + 1])} is a link or a file, "
                        "not a directory: refusing to write through it"
                    ) from None
                os.close(fd)
                fd = nxt
            return fd
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise

    def parent(self, parts: tuple[str, ...]) -> int:
        """The (cached) fd of the directory that holds parts[-1], created as needed."""
        dparts = parts[:-1]
        if self._last is not None and self._last[0] == dparts:
            return self._last[1]
        fd = self.walk(dparts, create=True)
        assert fd is not None
        self._forget()
        self._last = (dparts, fd)
        return fd

    def remove(self, dir_fd: int, leaf: str, parts: tuple[str, ...]) -> None:
        try:
            st = os.lstat(leaf, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self._forget(parts)
            shutil.rmtree(leaf, dir_fd=dir_fd)
        else:
            os.unlink(leaf, dir_fd=dir_fd)

    def add_dir(self, parts: tuple[str, ...], mode: int) -> None:
        if not parts:
            os.fchmod(self.fd, _dir_mode(mode))
            return
        pfd = self.parent(parts)
        leaf = parts[-1]
        try:
            st = os.lstat(leaf, dir_fd=pfd)
            if not stat.S_ISDIR(st.st_mode):
                self.remove(pfd, leaf, parts)
                os.mkdir(leaf, 0o700, dir_fd=pfd)
        except FileNotFoundError:
            os.mkdir(leaf, 0o700, dir_fd=pfd)
        dfd = os.open(leaf, DIR_FLAGS, dir_fd=pfd)
        try:
            os.fchmod(dfd, _dir_mode(mode))
        finally:
            os.close(dfd)

    def add_file(
        self, parts: tuple[str, ...], mode: int, data: IO[bytes] | None, mtime: float
    ) -> None:
        pfd = self.parent(parts)
        leaf = parts[-1]
        self.remove(pfd, leaf, parts)
        fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=pfd)
        with os.fdopen(fd, "wb") as out:
            if data is not None:
                shutil.copyfileobj(data, out, 1 << 20)
            out.flush()
            os.fchmod(fd, self._file_mode(parts, mode))
            os.utime(fd, (mtime, mtime))

    def _file_mode(self, parts: tuple[str, ...], mode: int) -> int:
        if mode & 0o6000:
            self.report.note("setid", f"/{'/'.join(parts)}: set-id bits removed")
        return (mode & 0o777) | 0o400

    def add_symlink(self, parts: tuple[str, ...], target: str) -> None:
        pfd = self.parent(parts)
        self.remove(pfd, parts[-1], parts)
        os.symlink(target, parts[-1], dir_fd=pfd)

    def add_hardlink(self, parts: tuple[str, ...], target: tuple[str, ...]) -> None:
        if not target:
            raise UnsafeArchiveError(f"/{'/'.join(parts)}: hard link to the root")
        tfd = self.walk(target[:-1], create=False)
        if tfd is None:
            raise UnsafeArchiveError(f"/{'/'.join(parts)}: hard link to a missing file")
        try:
            try:
                st = os.lstat(target[-1], dir_fd=tfd)
            except FileNotFoundError:
                raise UnsafeArchiveError(
                    f"/{'/'.join(parts)}: hard link to missing /{'/'.join(target)}"
                ) from None
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                raise UnsafeArchiveError(f"/{'/'.join(parts)}: hard link to a non-file")
            pfd = self.parent(parts)
            self.remove(pfd, parts[-1], parts)
            os.link(target[-1], parts[-1], src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def whiteout(self, parts: tuple[str, ...]) -> None:
        """Delete parts (an OCI whiteout); absent or reached through a link: nothing to do."""
        pfd = self.walk(parts[:-1], create=False)
        if pfd is None:
            return
        try:
            self.remove(pfd, parts[-1], parts)
        finally:
            os.close(pfd)

    def opaque(self, dparts: tuple[str, ...]) -> None:
        """Empty the directory dparts (an OCI opaque whiteout) of what lower layers put there."""
        dfd = self.walk(dparts, create=False)
        if dfd is None:
            return
        try:
            for name in os.listdir(dfd):
                self.remove(dfd, name, (*dparts, name))
        finally:
            os.close(dfd)


def _dir_mode(mode: int) -> int:
    # Owner rwx always: the user must be able to update and delete what they imported.
    return (mode & 0o1777) | 0o700


def apply_tar(tf: tarfile.TarFile, tree: Tree, *, whiteouts: bool) -> None:
    """Apply one tar stream (a rootfs, or one image layer when `whiteouts`) onto tree."""
    members = tf.getmembers()
    if whiteouts:
        # Whiteouts delete what lower layers made, never entries of their own layer, so
        # they all go first.
        for m in members:
            parts = member_parts(m.name)
            if not parts or not parts[-1].startswith(".wh."):
                continue
            if parts[-1] == ".wh..wh..opq":
                tree.opaque(parts[:-1])
            else:
                victim = parts[-1][4:]
                if victim in ("", ".", ".."):
                    raise UnsafeArchiveError(f"whiteout {m.name!r} names no file")
                tree.whiteout((*parts[:-1], victim))
    for m in members:
        parts = member_parts(m.name)
        if m.name.startswith("/"):
            tree.report.note("absolute", f"{m.name}: leading '/' removed")
        if whiteouts and parts and parts[-1].startswith(".wh."):
            continue
        _apply_member(tf, tree, m, parts)


def _apply_member(
    tf: tarfile.TarFile, tree: Tree, m: tarfile.TarInfo, parts: tuple[str, ...]
) -> None:
    if m.isdir():
        tree.add_dir(parts, m.mode)
    elif not parts:
        raise UnsafeArchiveError(f"member {m.name!r} would replace the template's root")
    elif m.isreg():
        data = tf.extractfile(m)
        tree.add_file(parts, m.mode, data, float(m.mtime))
    elif m.issym():
        tree.add_symlink(parts, m.linkname)
    elif m.islnk():
        tree.add_hardlink(parts, member_parts(m.linkname))
    elif m.ischr() or m.isblk():
        tree.report.note("devices", f"/{'/'.join(parts)}: device node skipped")
    elif m.isfifo():
        tree.report.note("fifos", f"/{'/'.join(parts)}: fifo skipped")
    else:
        tree.report.note("other", f"/{'/'.join(parts)}: member of type {m.type!r} skipped")


def copy_dir(src: Path, tree: Tree) -> None:
    """Copy a directory tree (symlinks as links, hard links kept, devices skipped)."""
    src_fd = os.open(src, DIR_FLAGS)
    seen: dict[tuple[int, int], tuple[str, ...]] = {}
    try:
        st = os.fstat(src_fd)
        tree.add_dir((), st.st_mode)
        _copy_into(src_fd, (), tree, seen)
    finally:
        os.close(src_fd)


def _copy_into(
    dfd: int, prefix: tuple[str, ...], tree: Tree, seen: dict[tuple[int, int], tuple[str, ...]]
) -> None:
    for name in sorted(os.listdir(dfd)):
        parts = (*prefix, name)
        st = os.lstat(name, dir_fd=dfd)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            tree.add_dir(parts, mode)
            sub = os.open(name, DIR_FLAGS, dir_fd=dfd)
            try:
                _copy_into(sub, parts, tree, seen)
            finally:
                os.close(sub)
        elif stat.S_ISLNK(mode):
            tree.add_symlink(parts, os.readlink(name, dir_fd=dfd))
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in seen:
                tree.add_hardlink(parts, seen[key])
                continue
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            with os.fdopen(fd, "rb") as f:
                tree.add_file(parts, mode, f, st.st_mtime)
            if st.st_nlink > 1:
                seen[key] = parts
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            tree.report.note("devices", f"/{'/'.join(parts)}: device node skipped")
        else:
            tree.report.note("other", f"/{'/'.join(parts)}: fifo or socket skipped")


def sanitize_in_place(root: Path, report: Report) -> None:
    """For trees made by a trusted tool (debootstrap): drop device nodes and set-id bits."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = "/" + os.path.relpath(p, root)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                os.unlink(p)
                report.note("devices", f"{rel}: device node removed")
            elif stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
                os.unlink(p)
                report.note("other", f"{rel}: fifo or socket removed")
            elif stat.S_ISREG(st.st_mode) and st.st_mode & 0o6000:
                os.chmod(p, (st.st_mode & 0o777) | 0o400)
                report.note("setid", f"{rel}: set-id bits removed")
            elif stat.S_ISDIR(st.st_mode) and (st.st_mode & 0o700) != 0o700:
                os.chmod(p, _dir_mode(st.st_mode))


def finish_tree(root: Path, report: Report) -> None:
    """Check the tree is a root filesystem and make the files bwrap binds over plain files."""
    tree = Tree(root, report)
    try:
        for top in ("usr", "etc"):
            try:
                st = os.lstat(top, dir_fd=tree.fd)
            except FileNotFoundError:
                tree.add_dir((top,), 0o755)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise TemplateError(f"/{top} of the template is not a directory")
        for rel in BIND_TARGETS:
            parts = tuple(rel.split("/"))
            pfd = tree.parent(parts)
            try:
                st = os.lstat(parts[-1], dir_fd=pfd)
                if stat.S_ISREG(st.st_mode):
                    continue
                report.note("bind-targets", f"/{rel}: not a plain file, replaced by an empty one")
            except FileNotFoundError:
                pass
            tree.add_file(parts, 0o644, None, time.time())
        # bwrap mounts a tmpfs on /var/tmp; the mount point should not land in a layer.
        vfd = tree.walk(("var",), create=False)
        if vfd is not None:
            os.close(vfd)
            if not _exists_in(tree, ("var", "tmp")):
                tree.add_dir(("var", "tmp"), 0o1777)
    finally:
        tree.close()


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
        return True
    except FileNotFoundError:
        return False


def _exists_in(tree: Tree, parts: tuple[str, ...]) -> bool:
    pfd = tree.walk(parts[:-1], create=False)
    if pfd is None:
        return False
    try:
        return _exists(pfd, parts[-1])
    finally:
        os.close(pfd)
