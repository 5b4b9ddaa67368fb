"""Quarantine intake: watching inboxes, deciding when a file is complete, taking it by fd.

An inbox is a host directory a desktop writes into (its `~/Downloads`, or its outbox).
Inboxes are flat: browsers save into the directory itself, and a subdirectory is left alone
(never descended into, never taken). A name is a candidate once it is final: dotfiles and
partial names (`.part`, `.crdownload`, ...) are in-progress work and ignored until renamed.

Completeness is decided by the kernel, not by timing: a file is taken only when a read lease
can be granted on it, i.e. nobody holds it open for writing (`release.no_writers`). inotify
only tells us when to look (IN_CLOSE_WRITE, IN_MOVED_TO; IN_CREATE for entries that will
never be written: symlinks, hard links, fifos); a queue overflow or a restart rescans.

Taking copies: the entry is opened by O_PATH|O_NOFOLLOW relative to the inbox's directory
fd, checked (regular, one link, no writer), and its content is copied into an unnamed
O_TMPFILE in the store, which is then linked as items/<id> and the inbox entry removed. What
is audited and released is that copy: the desktop never had a handle on it, so a descriptor,
a hard link or a shared mapping it kept on its own file cannot change the audited bytes or
reach the destination's file. The source's own `user.*` xattrs are not copied, except the
origin attributes browsers write, which are recorded as claimed by the source. A symlink,
hard link or special file is refused and removed from the inbox without ever being opened
for reading; refusals are recorded at a bounded rate per desktop (`RefusalLimiter`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from inotify_simple import INotify
from inotify_simple import flags as inflags

from zionwm.quarantine.names import (  # noqa: F401 (re-exported: intake and tests use them here)
    PARTIAL_SUFFIXES,
    is_candidate_name,
    is_partial_name,
)
from zionwm.quarantine.release import (
    ORIGIN_XATTRS,
    UnsafeEntry,
    check_plain_file,
    copy_fd,
    no_writers,
    open_beneath,
)
from zionwm.quarantine.store import Kind, State, Store
from zionwm.ratelimit import Limiter

log = logging.getLogger(__name__)

_XATTR_MAX = 8192
EMPTY_SETTLE = 1.0  # seconds an empty file must stay untouched before it is taken

_WATCH_MASK = (
    inflags.CLOSE_WRITE
    | inflags.MOVED_TO
    | inflags.MOVED_FROM  # a partial download renamed away: deferred placeholders are due
    | inflags.DELETE
    | inflags.CREATE
    | inflags.ONLYDIR
    | inflags.DONT_FOLLOW
    | inflags.EXCL_UNLINK
    | inflags.DELETE_SELF
    | inflags.MOVE_SELF
)
_LOST = inflags.DELETE_SELF | inflags.MOVE_SELF | inflags.IGNORED


def has_partial_downloads(dir_fd: int) -> bool:
    return any(is_partial_name(n) for n in os.listdir(dir_fd))


@dataclass(frozen=True)
class InboxSpec:
    """One watched inbox and where what it receives goes."""

    source: str  # the desktop writing into it
    path: Path  # host directory
    kind: Kind
    dest: str  # destination desktop, or store.SHARED_DEST
    subdir: tuple[str, ...]  # below the destination root, e.g. ("home", "Downloads")


class Outcome(StrEnum):
    TAKEN = "taken"
    REFUSED = "refused"  # recorded as rejected; the entry was removed from the inbox
    BUSY = "busy"  # still open for writing: wait for its close
    SETTLING = "settling"  # look again in EMPTY_SETTLE seconds (an empty placeholder, or
    # a file that changed while it was copied)
    GONE = "gone"
    IGNORED = "ignored"  # not a candidate (partial name, directory)


@dataclass(frozen=True)
class TakeResult:
    outcome: Outcome
    item_id: int | None = None
    reason: str = ""


def display_name(name: str) -> str:
    """The name as recorded: undecodable bytes (a hostile desktop's choice) become U+FFFD,
    so the record and the released file get a valid name while the inbox entry is still
    addressed by its exact bytes."""
    return os.fsencode(name).decode("utf-8", "replace")


def read_origin(fd: int) -> dict[str, str | None]:
    """The origin xattrs (as Chromium and `wget --xattr` write them), read from the fd."""
    out: dict[str, str | None] = {}
    for key in ORIGIN_XATTRS:
        try:
            raw = os.getxattr(fd, key)
        except OSError:
            out[key] = None
            continue
        out[key] = raw[:_XATTR_MAX].decode("utf-8", "replace")
    return out


def _remove_entry(dir_fd: int, name: str, st: os.stat_result) -> None:
    """Unlink `name` if it is still the entry that was examined (never its target)."""
    try:
        now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
            os.unlink(name, dir_fd=dir_fd)
    except OSError as e:
        log.warning("could not remove refused inbox entry %r: %s", name, e)


class RefusalLimiter(Limiter):
    """At most `limit` refused entries recorded per desktop in each `window` seconds.

    A desktop can drop symlinks or fifos into its inbox as fast as it likes; each refusal
    would otherwise cost a database row and an urgent notification. Past the limit the
    entries are still removed, only counted; `due` hands back, once the window is over, how
    many were removed unrecorded, for one summary row. Pure: the caller gives the time.
    """

    def __init__(self, limit: int = 10, window: float = 60.0) -> None:
        super().__init__(limit, window=window)

    def allow(self, source: str, now: float) -> bool:
        """Whether this refusal may be recorded; counts it as suppressed otherwise."""
        return self.admit(source, now)

    @property
    def suppressed(self) -> dict[str, int]:
        """Desktop -> refusals not recorded and not summed up yet."""
        return self.holding()

    def due(self, now: float) -> list[tuple[str, int]]:
        """(desktop, entries removed unrecorded) for each window that is over."""
        return [(source, sum(held.values())) for source, held in self.take_due(now)]


def take(
    store: Store,
    spec: InboxSpec,
    dir_fd: int,
    name: str,
    from_create: bool = False,
    limiter: RefusalLimiter | None = None,
) -> TakeResult:
    """Take a copy of `name` from the inbox open as `dir_fd` into the store, if it is
    complete, and remove the entry.

    `from_create`: the trigger was IN_CREATE, where a regular file is still being created,
    so only entries that will never see a close-after-write are handled.
    """
    if not is_candidate_name(name):
        return TakeResult(Outcome.IGNORED)
    try:
        pfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return TakeResult(Outcome.GONE)
    try:
        pst = os.fstat(pfd)
        mode = pst.st_mode
        if stat.S_ISDIR(mode):
            return TakeResult(Outcome.IGNORED, reason="directory (inboxes are flat)")
        refusal = None
        if stat.S_ISLNK(mode):
            refusal = "symbolic link (its target was not read)"
        elif not stat.S_ISREG(mode):
            refusal = "not a regular file"
        elif pst.st_nlink != 1:
            refusal = f"hard link ({pst.st_nlink} links; its content was not read)"
        if refusal is not None:
            _remove_entry(dir_fd, name, pst)
            if limiter is not None and not limiter.allow(spec.source, time.time()):
                log.debug("inbox %s: refused %r unrecorded (rate limit)", spec.source, name)
                return TakeResult(Outcome.REFUSED, None, refusal)
            item_id = store.record_refused(
                kind=spec.kind,
                source=spec.source,
                dest=spec.dest,
                subdir=spec.subdir,
                name=display_name(name),
                reason=refusal,
            )
            log.warning("inbox %s: refused %r: %s (item %d)", spec.source, name, refusal, item_id)
            return TakeResult(Outcome.REFUSED, item_id, refusal)
        if from_create:
            return TakeResult(Outcome.BUSY, reason="just created")
        # Reopen the very inode checked above; /proc/self/fd of an O_PATH fd cannot be
        # redirected by the desktop renaming things in the inbox.
        fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    finally:
        os.close(pfd)
    try:
        return _take_fd(store, spec, dir_fd, name, fd)
    finally:
        os.close(fd)


def _unchanged(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns, a.st_nlink) == (
        b.st_size,
        b.st_mtime_ns,
        b.st_ctime_ns,
        b.st_nlink,
    )


def _take_fd(store: Store, spec: InboxSpec, dir_fd: int, name: str, fd: int) -> TakeResult:
    st = check_plain_file(fd)
    if not no_writers(fd):
        return TakeResult(Outcome.BUSY, reason="open for writing")
    if st.st_size == 0 and (
        has_partial_downloads(dir_fd) or time.time() - st.st_mtime < EMPTY_SETTLE
    ):
        # Browsers reserve the final name with an empty file, write `name.part` /
        # `.crdownload`, then rename it over the placeholder: that rename is the download.
        # An empty file is taken only once it has been quiet for EMPTY_SETTLE seconds and no
        # partial download is left (the service checks again then: SETTLING).
        return TakeResult(Outcome.SETTLING, reason="empty: maybe a download's placeholder")
    origin = read_origin(fd)
    out = _store_copy(store, fd, origin)
    try:
        if not no_writers(fd):
            # A download still in progress: its close brings it back. The unnamed copy
            # vanishes with `out`.
            return TakeResult(Outcome.BUSY, reason="opened for writing while being copied")
        if not _unchanged(st, os.fstat(fd)):
            # Written and closed, linked, or its xattrs set while copied: the copy may be
            # torn. A link or an xattr sends no event we watch, so look again shortly.
            return TakeResult(Outcome.SETTLING, reason="changed while being copied")
        ost = os.fstat(out)
        item_id = store.begin_take(
            kind=spec.kind,
            source=spec.source,
            dest=spec.dest,
            subdir=spec.subdir,
            name=display_name(name),
            size=ost.st_size,
            dev=ost.st_dev,
            ino=ost.st_ino,
            inbox_name=display_name(name),
            origin_url=origin["user.xdg.origin.url"],
            referrer_url=origin["user.xdg.referrer.url"],
            src_dev=st.st_dev,
            src_ino=st.st_ino,
        )
        _link_into_store(store, out, item_id)
    finally:
        os.close(out)
    # Durable in the store: the inbox entry goes (a crash before this line is finished by
    # recovery, which removes the entry if it is still the inode that was copied).
    _remove_entry(dir_fd, name, st)
    store.transition(item_id, State.RECEIVED, content=True)
    log.info("inbox %s: took %r as item %d (%d bytes)", spec.source, name, item_id, st.st_size)
    return TakeResult(Outcome.TAKEN, item_id)


def _store_copy(store: Store, src: int, origin: dict[str, str | None]) -> int:
    """An unnamed file in the store holding `src`'s content and only the origin xattrs."""
    out = os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600, dir_fd=store.items_fd)
    try:
        copy_fd(src, out)
        for key, value in origin.items():
            if value is not None:
                os.setxattr(out, key, value.encode())
        os.fsync(out)
    except BaseException:
        os.close(out)
        raise
    return out


def _link_into_store(store: Store, out: int, item_id: int) -> None:
    os.link(f"/proc/self/fd/{out}", str(item_id), dst_dir_fd=store.items_fd, follow_symlinks=True)


def take_copy(
    store: Store, *, source: str, home: Path, rel: str, dest: str, subdir: tuple[str, ...]
) -> TakeResult:
    """`send`: copy `rel` from a desktop's home into the store, without following symlinks.

    `rel` is relative to `home`, or absolute and lexically inside it. The original stays.
    """
    if rel.startswith("/"):
        prefix = str(home).rstrip("/") + "/"
        if not rel.startswith(prefix):
            raise UnsafeEntry(errno.EXDEV, f"{rel!r} is not inside {source}'s home")
        rel = rel[len(prefix) :]
    home_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = open_beneath(home_fd, rel, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.EXDEV):
                raise UnsafeEntry(e.errno, f"{rel!r}: a symbolic link or outside the home") from e
            raise
    finally:
        os.close(home_fd)
    try:
        st = check_plain_file(fd)
        if not no_writers(fd):
            raise UnsafeEntry(errno.EBUSY, f"{rel!r} is open for writing")
        name = display_name(os.path.basename(rel.rstrip("/")))
        origin = read_origin(fd)
        out = _store_copy(store, fd, origin)
        try:
            ost = os.fstat(out)
            if ost.st_size != st.st_size:
                log.info("send: file changed size while copied (%d -> %d)", st.st_size, ost.st_size)
            item_id = store.begin_take(
                kind=Kind.SEND,
                source=source,
                dest=dest,
                subdir=subdir,
                name=name,
                size=ost.st_size,
                dev=ost.st_dev,
                ino=ost.st_ino,
                inbox_name=None,
                origin_url=origin["user.xdg.origin.url"],
                referrer_url=origin["user.xdg.referrer.url"],
            )
            _link_into_store(store, out, item_id)
        finally:
            os.close(out)
        store.transition(item_id, State.RECEIVED, content=True)
        return TakeResult(Outcome.TAKEN, item_id)
    finally:
        os.close(fd)


class InboxWatcher:
    """inotify over every inbox; yields (inbox, name, from_create) to look at."""

    def __init__(self) -> None:
        self._inotify = INotify()
        self._by_wd: dict[int, InboxSpec] = {}
        self.dir_fds: dict[InboxSpec, int] = {}

    def fileno(self) -> int:
        return self._inotify.fileno()

    def add(self, spec: InboxSpec) -> None:
        spec.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(spec.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        wd = self._inotify.add_watch(spec.path, _WATCH_MASK)
        self._by_wd[wd] = spec
        self.dir_fds[spec] = fd

    @property
    def specs(self) -> list[InboxSpec]:
        return list(self.dir_fds)

    def close(self) -> None:
        for fd in self.dir_fds.values():
            os.close(fd)
        self.dir_fds.clear()
        self._inotify.close()

    def _forget(self, wd: int) -> InboxSpec:
        spec = self._by_wd.pop(wd)
        with contextlib.suppress(OSError):  # already gone when the directory was deleted
            self._inotify.rm_watch(wd)
        fd = self.dir_fds.pop(spec, None)
        if fd is not None:
            os.close(fd)
        return spec

    def read(self) -> tuple[list[tuple[InboxSpec, str, bool]], bool, list[InboxSpec]]:
        """Pending events (de-duplicated), whether the queue overflowed (rescan all), and
        the inboxes whose directory was deleted or moved away (watch the path again)."""
        overflow = False
        seen: dict[tuple[InboxSpec, str], bool] = {}
        lost: list[InboxSpec] = []
        for ev in self._inotify.read(timeout=0):
            if ev.mask & inflags.Q_OVERFLOW:
                overflow = True
                continue
            if ev.mask & _LOST and ev.wd in self._by_wd:
                lost.append(self._forget(ev.wd))
                continue
            spec = self._by_wd.get(ev.wd)
            if spec is None or not ev.name:
                continue
            created_only = bool(ev.mask & inflags.CREATE)
            key = (spec, ev.name)
            # A later close or move of the same name overrides the IN_CREATE restriction.
            seen[key] = seen.get(key, True) and created_only
        events = [(s, n, c) for (s, n), c in seen.items() if s not in lost]
        return events, overflow, lost

    def gone(self) -> list[InboxSpec]:
        """Inboxes whose directory was deleted or replaced since it was opened (forgotten)."""
        lost = []
        for wd, spec in list(self._by_wd.items()):
            held = os.fstat(self.dir_fds[spec])
            try:
                now = os.stat(spec.path, follow_symlinks=False)
                same = (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)
            except FileNotFoundError:
                same = False
            if held.st_nlink == 0 or not same:
                lost.append(self._forget(wd))
        return lost

    def scan(self, spec: InboxSpec) -> Iterator[str]:
        """Every candidate name present now (a restart, or after an overflow)."""
        for name in sorted(os.listdir(self.dir_fds[spec])):
            if is_candidate_name(name):
                yield name
