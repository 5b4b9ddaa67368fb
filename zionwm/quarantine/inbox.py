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

Files arriving together are taken together (`TakeBatch`): their copies are made first, then
flushed to disk at once (one `syncfs` of the store's filesystem instead of an fsync each),
their intents committed in one transaction, linked, their inbox entries removed, and their
arrival committed in a second transaction. Each file still goes through the same states, so
a crash anywhere in a batch is recovered item by item as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    complete, and remove the entry (a batch of one: see `TakeBatch`).

    `from_create`: the trigger was IN_CREATE, where a regular file is still being created,
    so only entries that will never see a close-after-write are handled.
    """
    batch = TakeBatch(store)
    result = batch.add(spec, dir_fd, name, from_create, limiter)
    if result is not None:
        return result
    return batch.commit()[0]


@dataclass
class _Copied:
    """A file copied into an unnamed file of the store, not recorded yet."""

    spec: InboxSpec
    dir_fd: int
    name: str
    src: int  # the inbox file, read-only
    st: os.stat_result  # as it was when copied
    out: int  # the unnamed copy
    origin: dict[str, str | None] = field(default_factory=dict)


class TakeBatch:
    """Files taken together: copied one by one (`add`), then flushed, recorded, linked and
    removed from their inboxes together (`commit`)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.copied: list[_Copied] = []

    def __len__(self) -> int:
        return len(self.copied)

    def add(
        self,
        spec: InboxSpec,
        dir_fd: int,
        name: str,
        from_create: bool = False,
        limiter: RefusalLimiter | None = None,
    ) -> TakeResult | None:
        """Look at one inbox entry: its outcome now, or None when its copy waits for
        `commit`. Raises OSError (nothing is kept of the entry then)."""
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
                return _refuse(self.store, spec, dir_fd, name, pst, refusal, limiter)
            if from_create:
                return TakeResult(Outcome.BUSY, reason="just created")
            # Reopen the very inode checked above; /proc/self/fd of an O_PATH fd cannot be
            # redirected by the desktop renaming things in the inbox.
            fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        finally:
            os.close(pfd)
        try:
            result = self._copy(spec, dir_fd, name, fd)
        except BaseException:
            os.close(fd)
            raise
        if result is not None:
            os.close(fd)
        return result

    def _copy(self, spec: InboxSpec, dir_fd: int, name: str, fd: int) -> TakeResult | None:
        st = check_plain_file(fd)
        if not no_writers(fd):
            return TakeResult(Outcome.BUSY, reason="open for writing")
        if st.st_size == 0 and (
            has_partial_downloads(dir_fd) or time.time() - st.st_mtime < EMPTY_SETTLE
        ):
            # Browsers reserve the final name with an empty file, write `name.part` /
            # `.crdownload`, then rename it over the placeholder: that rename is the
            # download. An empty file is taken only once it has been quiet for EMPTY_SETTLE
            # seconds and no partial download is left (the service looks again: SETTLING).
            return TakeResult(Outcome.SETTLING, reason="empty: maybe a download's placeholder")
        origin = read_origin(fd)
        out = _store_copy(self.store, fd, origin, sync=False)
        self.copied.append(_Copied(spec, dir_fd, name, fd, st, out, origin))
        return None

    def _still_whole(self, c: _Copied) -> TakeResult | None:
        if not no_writers(c.src):
            # A download still in progress: its close brings it back.
            return TakeResult(Outcome.BUSY, reason="opened for writing while being copied")
        if not _unchanged(c.st, os.fstat(c.src)):
            # Written and closed, linked, or its xattrs set while copied: the copy may be
            # torn. A link or an xattr sends no event we watch, so look again shortly.
            return TakeResult(Outcome.SETTLING, reason="changed while being copied")
        return None

    def commit(self) -> list[TakeResult]:
        """Take every copy: one result per `add` that returned None, in the same order.
        A copy that cannot be recorded leaves its inbox entry in place."""
        copied, self.copied = self.copied, []
        results: list[TakeResult | None] = [None] * len(copied)
        try:
            # the copies' content on disk before any record says they exist (and long
            # before their inbox entries go)
            if len(copied) == 1:
                os.fsync(copied[0].out)
            elif copied:
                syncfs(self.store.items_fd)
            keep: list[int] = []
            for n, c in enumerate(copied):
                # checked again after the flush: the window in which a desktop's write
                # could be lost with the entry is the commit's, not the whole batch's
                results[n] = self._still_whole(c)
                if results[n] is None:
                    keep.append(n)
            ids: dict[int, int] = {}
            with self.store.batch():
                for n in keep:
                    c = copied[n]
                    ost = os.fstat(c.out)
                    ids[n] = self.store.begin_take(
                        kind=c.spec.kind,
                        source=c.spec.source,
                        dest=c.spec.dest,
                        subdir=c.spec.subdir,
                        name=display_name(c.name),
                        size=ost.st_size,
                        dev=ost.st_dev,
                        ino=ost.st_ino,
                        inbox_name=display_name(c.name),
                        origin_url=c.origin["user.xdg.origin.url"],
                        referrer_url=c.origin["user.xdg.referrer.url"],
                        src_dev=c.st.st_dev,
                        src_ino=c.st.st_ino,
                    )
            landed: list[int] = []
            for n, item_id in ids.items():
                try:
                    _link_into_store(self.store, copied[n].out, item_id)
                except OSError as e:
                    log.warning("inbox: could not place item %d: %s", item_id, e)
                    self.store.drop_taking(item_id)
                    results[n] = TakeResult(Outcome.BUSY, reason=f"not placed: {e}")
                    continue
                landed.append(n)
            # Durable in the store: the inbox entries go (a crash before this is finished
            # by recovery, which removes an entry if it is still the inode that was copied).
            for n in landed:
                _remove_entry(copied[n].dir_fd, copied[n].name, copied[n].st)
            with self.store.batch():
                for n in landed:
                    self.store.transition(ids[n], State.RECEIVED, content=True)
            for n in landed:
                c = copied[n]
                log.info(
                    "inbox %s: took %r as item %d (%d bytes)",
                    c.spec.source,
                    c.name,
                    ids[n],
                    c.st.st_size,
                )
                results[n] = TakeResult(Outcome.TAKEN, ids[n])
        finally:
            for c in copied:
                os.close(c.out)
                os.close(c.src)
        return [
            r if r is not None else TakeResult(Outcome.BUSY, reason="not taken") for r in results
        ]

    def abandon(self) -> None:
        """Forget the copies not committed (their unnamed files vanish)."""
        for c in self.copied:
            os.close(c.out)
            os.close(c.src)
        self.copied = []


def _refuse(
    store: Store,
    spec: InboxSpec,
    dir_fd: int,
    name: str,
    pst: os.stat_result,
    refusal: str,
    limiter: RefusalLimiter | None,
) -> TakeResult:
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


_libc: ctypes.CDLL | None = None


def syncfs(fd: int) -> None:
    """Flush the whole filesystem holding `fd` (one call for many files' data)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"syncfs: {os.strerror(err)}")


def _unchanged(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns, a.st_nlink) == (
        b.st_size,
        b.st_mtime_ns,
        b.st_ctime_ns,
        b.st_nlink,
    )


def _store_copy(store: Store, src: int, origin: dict[str, str | None], sync: bool = True) -> int:
    """An unnamed file in the store holding `src`'s content and only the origin xattrs
    (`sync`: on disk when this returns; otherwise the caller flushes it)."""
    out = os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600, dir_fd=store.items_fd)
    try:
        copy_fd(src, out)
        for key, value in origin.items():
            if value is not None:
                os.setxattr(out, key, value.encode())
        if sync:
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
