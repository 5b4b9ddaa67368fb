"""Symlink-safe, fd-based file placement: the only way content leaves the quarantine store.

Also holds the small kernel primitives the inbox and `send` share: `openat2` with
RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS (falling back to an O_NOFOLLOW walk), `renameat2` with
RENAME_NOREPLACE, and the read-lease test that tells whether anyone still has a file open
for writing.

Every destination is a trusted root (a host directory zionwm created: a desktop's data
directory, or data_home for Shared) plus components a desktop can tamper with (its `home`,
`Downloads`, `Incoming/<from>`): the components are opened one at a time relative to the
previous directory fd, never following a symlink, so a symlink swapped in at any moment makes
the release fail (and be retried), never write elsewhere. The file is placed with no-replace
semantics; a clash picks the next `name (n).ext`.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zionwm.untrusted import hides_or_reorders

log = logging.getLogger(__name__)

AUDIT_XATTR = "user.zionwm.audit"
# The only xattrs a released file carries: what browsers write (claimed by the source) and
# our own stamp. Every other `user.*` name a desktop set is dropped at intake.
ORIGIN_XATTRS = ("user.xdg.origin.url", "user.xdg.referrer.url")
KEPT_XATTRS = frozenset((*ORIGIN_XATTRS, AUDIT_XATTR))

_SYS_OPENAT2 = 437  # the same number on every architecture (added after the table unification)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_RENAME_NOREPLACE = 1
_MAX_NAME_BYTES = 255
_MAX_CLASH = 10_000
_COMPOUND_EXTS = (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tar.lz", ".tar.Z")

_libc = ctypes.CDLL(None, use_errno=True)


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


_openat2_missing = False


class UnsafeEntry(OSError):
    """Something that is not a plain regular file with one link, where one was required."""


def _oserror(name: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{name}: {os.strerror(err)}")


def renameat2_noreplace(src_dir: int, src: str, dst_dir: int, dst: str) -> None:
    """renameat2(..., RENAME_NOREPLACE): FileExistsError if `dst` exists, never overwrites."""
    rc = _libc.renameat2(
        src_dir, os.fsencode(src), dst_dir, os.fsencode(dst), ctypes.c_uint(_RENAME_NOREPLACE)
    )
    if rc != 0:
        raise _oserror("renameat2")


def _check_relative(rel: str) -> list[str]:
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise UnsafeEntry(errno.EXDEV, f"path {rel!r} is not beneath its root")
    return parts


def _walk_open(root_fd: int, parts: list[str], flags: int, mode: int) -> int:
    cur = root_fd
    try:
        for comp in parts[:-1]:
            nxt = os.open(
                comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur
            )
            if cur != root_fd:
                os.close(cur)
            cur = nxt
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=cur)
    finally:
        if cur != root_fd:
            os.close(cur)


def open_beneath(root_fd: int, rel: str, flags: int, mode: int = 0) -> int:
    """Open `rel` under `root_fd` following no symlink in any component and never escaping.

    Uses openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS); on kernels without it (before 5.6),
    an equivalent walk with O_NOFOLLOW on each component.
    """
    global _openat2_missing
    parts = _check_relative(rel)
    if not _openat2_missing:
        how = _OpenHow(
            flags | os.O_CLOEXEC,
            mode,
            _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS,
        )
        fd = _libc.syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(root_fd),
            ctypes.c_char_p(os.fsencode("/".join(parts))),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EPERM):  # EPERM: a seccomp filter refusing it
            raise OSError(err, f"openat2 {rel!r}: {os.strerror(err)}")
        _openat2_missing = True
        log.info("openat2 unavailable (%s): walking with O_NOFOLLOW", os.strerror(err))
    return _walk_open(root_fd, parts, flags, mode)


def open_dir_chain(root: Path, parts: tuple[str, ...], create: bool = True) -> int:
    """Open root/parts... as a directory, creating missing components (0700), never following
    a symlink below `root`. `root` itself is trusted (created by zionwm on the host)."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    cur = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for comp in parts:
            if comp in ("", ".", "..") or "/" in comp:
                raise UnsafeEntry(errno.EINVAL, f"bad path component {comp!r}")
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                nxt = os.open(comp, flags, dir_fd=cur)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(comp, 0o700, dir_fd=cur)
                except FileExistsError:
                    pass  # created meanwhile (by the desktop?): the O_NOFOLLOW open decides
                nxt = os.open(comp, flags, dir_fd=cur)
            os.close(cur)
            cur = nxt
        return cur
    except BaseException:
        os.close(cur)
        raise


def no_writers(fd: int) -> bool:
    """True when no process has the file open for writing (a read lease is grantable).

    The kernel refuses a read lease (EAGAIN) while any writable open exists, including
    writable shared mappings. Needs the file's owner or CAP_LEASE; where leases are
    unavailable (EINVAL, ENOLCK, EACCES) this falls back to scanning /proc for writers.
    """
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno == errno.EAGAIN:
            return False
        return not proc_has_writer(os.fstat(fd))
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return True


def proc_has_writer(st: os.stat_result) -> bool:
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for n in fds:
            try:
                other = os.stat(f"/proc/{pid}/fd/{n}")
                if (other.st_dev, other.st_ino) != (st.st_dev, st.st_ino):
                    continue
                with open(f"/proc/{pid}/fdinfo/{n}") as info:
                    for line in info:
                        if line.startswith("flags:"):
                            if int(line.split()[1], 8) & (os.O_WRONLY | os.O_RDWR):
                                return True
                            break
            except OSError:
                continue
    return False


def check_plain_file(fd: int) -> os.stat_result:
    """fstat `fd`; refuse anything but a regular file with exactly one link."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeEntry(errno.EINVAL, "not a regular file")
    if st.st_nlink != 1:
        raise UnsafeEntry(errno.EMLINK, f"regular file with {st.st_nlink} links")
    return st


def clash_name(name: str, n: int) -> str:
    """The n-th alternative for `name` when it is taken: `a.pdf` -> `a (1).pdf`, keeping
    compound extensions (`x.tar.gz` -> `x (1).tar.gz`) and the 255-byte limit."""
    if n == 0:
        return name
    lower = name.lower()
    ext = next((e for e in _COMPOUND_EXTS if lower.endswith(e.lower())), None)
    if ext is None:
        dot = name.rfind(".")
        ext = name[dot:] if dot > 0 else ""
    stem = name[: len(name) - len(ext)] if ext else name
    suffix = f" ({n}){ext}"
    while len(os.fsencode(stem + suffix)) > _MAX_NAME_BYTES and stem:
        stem = stem[:-1]
    return stem + suffix


def _hidden_char(c: str) -> bool:
    return c == "/" or hides_or_reorders(c)


def safe_name(name: str) -> str:
    """A destination name from an untrusted one: one component, no control characters."""
    cleaned = "".join("_" if _hidden_char(c) else c for c in name).strip()
    if cleaned in ("", ".", ".."):
        cleaned = "download"
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]  # releasing a hidden file would hide it from the user
    while len(os.fsencode(cleaned)) > _MAX_NAME_BYTES:
        cleaned = cleaned[:-1]
    return cleaned


@dataclass(frozen=True)
class Destination:
    root: Path  # trusted host directory
    parts: tuple[str, ...]  # untrusted components below it, walked with O_NOFOLLOW


def audit_stamp(
    item_id: int,
    verdict: str,
    sha256: str | None,
    scanners: tuple[str, ...],
    forced: bool,
    source: str | None = None,
    claimed: tuple[str, ...] = (),
) -> bytes:
    """The `user.zionwm.audit` value. `claimed`: the origin xattrs on the file, which the
    `source` desktop set and nobody verified (a browser's word, or a forger's)."""
    return json.dumps(
        {
            "item": item_id,
            "verdict": verdict,
            "time": time.time(),
            "sha256": sha256,
            "scanners": list(scanners),
            "forced": forced,
            "source": source,
            "claimed_by_source": list(claimed),
        },
        sort_keys=True,
    ).encode()


def is_released_copy(dir_fd: int, name: str, item_id: int, sha256: str | None) -> bool:
    """Whether `name` in `dir_fd` is this item's released file: stamped with its id and,
    when the digest is known, with the same content. The destination desktop can write
    xattrs, so the stamp alone would let it fake a release and make recovery drop the
    store's copy; the digest cannot be faked without having the content."""
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        stamp = json.loads(os.getxattr(fd, AUDIT_XATTR))
        if not isinstance(stamp, dict) or stamp.get("item") != item_id:
            return False
        if sha256 is None:
            return True
        return file_sha256(fd) == sha256
    except (OSError, ValueError):
        return False
    finally:
        os.close(fd)


def copy_fd(src: int, dst: int) -> None:
    """Copy all of `src` into `dst` (copy_file_range where possible, else reads)."""
    offset = 0
    while True:
        try:
            n = os.copy_file_range(src, dst, 1 << 24, offset)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            n = -1
        if n < 0:
            break
        if n == 0:
            return
        offset += n
    while True:  # copy_file_range unsupported between these filesystems: plain reads
        chunk = os.pread(src, 1 << 20, offset)
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            written = os.write(dst, view)
            view = view[written:]
        offset += len(chunk)


def _copy_xattrs(src: int, dst: int) -> None:
    for key in os.listxattr(src):
        if key in KEPT_XATTRS:
            os.setxattr(dst, key, os.getxattr(src, key))


def _drop_foreign_xattrs(fd: int) -> None:
    """Remove every `user.*` xattr but the kept ones (the store's copies carry none, but an
    item taken by an older version kept whatever its source desktop set)."""
    for key in os.listxattr(fd):
        if key.startswith("user.") and key not in KEPT_XATTRS:
            os.removexattr(fd, key)


class ContentChanged(OSError):
    """The stored file no longer has the digest recorded by its audit."""


def file_sha256(fd: int) -> str:
    import hashlib  # noqa: PLC0415 - OpenSSL (3 MiB) loaded when first hashing

    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def release_file(
    src_dir_fd: int,
    *,
    src_name: str,
    dest: Destination,
    name: str,
    stamp: bytes,
    on_attempt: Callable[[str], None],
    expect_sha256: str | None = None,
) -> str:
    """Move items/<src_name> into `dest` under `name` (or its next free clash name).

    Exec and set-id bits are cleared, only the origin xattrs kept, `user.zionwm.audit` set
    to `stamp`. With `expect_sha256`, the content is hashed first and ContentChanged raised
    if it is not what was audited. `on_attempt(candidate)` runs before each placement
    attempt so the caller can record its intent. Returns the final name. Raises OSError
    (including UnsafeEntry) on failure; the source is then still in place.
    """
    fd = os.open(src_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir_fd)
    try:
        st = check_plain_file(fd)
        if expect_sha256 is not None:
            found = file_sha256(fd)
            if found != expect_sha256:
                raise ContentChanged(
                    errno.EBADMSG, f"content changed after its audit (sha256 {found})"
                )
        os.fchmod(fd, 0o644 & stat.S_IMODE(st.st_mode) | 0o600)
        _drop_foreign_xattrs(fd)
        os.setxattr(fd, AUDIT_XATTR, stamp)
        dir_fd = open_dir_chain(dest.root, dest.parts)
        try:
            base = safe_name(name)
            for n in range(_MAX_CLASH):
                cand = clash_name(base, n)
                on_attempt(cand)
                try:
                    renameat2_noreplace(src_dir_fd, src_name, dir_fd, cand)
                except FileExistsError:
                    continue
                except OSError as e:
                    if e.errno == errno.EXDEV:
                        return _copy_release(
                            fd,
                            src_dir_fd=src_dir_fd,
                            src_name=src_name,
                            dir_fd=dir_fd,
                            base=base,
                            start=n,
                            on_attempt=on_attempt,
                        )
                    if e.errno != errno.EINVAL:
                        raise
                    # The destination filesystem lacks RENAME_NOREPLACE: link (which never
                    # replaces) then drop the store's name.
                    try:
                        os.link(
                            src_name,
                            cand,
                            src_dir_fd=src_dir_fd,
                            dst_dir_fd=dir_fd,
                            follow_symlinks=False,
                        )
                    except FileExistsError:
                        continue
                    os.unlink(src_name, dir_fd=src_dir_fd)
                _verify_landed(dir_fd, cand, st)
                return cand
            raise OSError(errno.EEXIST, f"no free name for {base!r} after {_MAX_CLASH} tries")
        finally:
            os.close(dir_fd)
    finally:
        os.close(fd)


def _verify_landed(dir_fd: int, name: str, st: os.stat_result) -> None:
    landed = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if (landed.st_dev, landed.st_ino) != (st.st_dev, st.st_ino):
        raise OSError(errno.ESTALE, f"{name!r} is not the file that was released")


def _copy_release(
    fd: int,
    *,
    src_dir_fd: int,
    src_name: str,
    dir_fd: int,
    base: str,
    start: int,
    on_attempt: Callable[[str], None],
) -> str:
    """Cross-filesystem release: copy into an unnamed file in the destination, then link it
    (links never replace), then drop the store's copy."""
    tmp_name: str | None = None
    try:
        out = os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
        # os.urandom is what secrets.token_hex reads; `secrets` would load OpenSSL (via hmac)
        tmp_name = f".zionwm-release-{os.urandom(8).hex()}"
        out = os.open(
            tmp_name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dir_fd,
        )
    try:
        copy_fd(fd, out)
        _copy_xattrs(fd, out)
        os.fchmod(out, 0o644)
        os.fsync(out)
        for n in range(start, _MAX_CLASH):
            cand = clash_name(base, n)
            on_attempt(cand)
            try:
                if tmp_name is None:
                    os.link(f"/proc/self/fd/{out}", cand, dst_dir_fd=dir_fd, follow_symlinks=True)
                else:
                    os.link(
                        tmp_name, cand, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False
                    )
            except FileExistsError:
                continue
            _verify_landed(dir_fd, cand, os.fstat(out))
            os.unlink(src_name, dir_fd=src_dir_fd)
            return cand
        raise OSError(errno.EEXIST, f"no free name for {base!r} after {_MAX_CLASH} tries")
    finally:
        os.close(out)
        if tmp_name is not None:
            try:
                os.unlink(tmp_name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
