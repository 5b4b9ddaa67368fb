"""How much disk a desktop's home takes, measured off the UI thread, bounded and cached.

A walk like `du -s -x`: allocated blocks (`st_blocks`, so sparse files count what they
use), each inode once (hard links), no symlink followed, no other file system entered. A
home can hold millions of files: the walk stops at a time budget or an entry count and
says so (`complete` False, shown as "at least"). Results are cached per path for
`CACHE_SECONDS`, so opening the manager again does not walk again.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BUDGET_SECONDS = 2.0
MAX_ENTRIES = 200_000
CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class DiskUse:
    bytes: int
    files: int
    complete: bool  # False: the budget ran out; the real use is at least `bytes`
    measured_at: float


def measure(
    root: Path,
    budget: float = BUDGET_SECONDS,
    max_entries: int = MAX_ENTRIES,
    clock: Callable[[], float] = time.monotonic,
) -> DiskUse | None:
    """The use of `root`, or None when it does not exist."""
    try:
        top = os.lstat(root)
    except OSError:
        return None
    if not stat.S_ISDIR(top.st_mode):
        return DiskUse(top.st_blocks * 512, 1, True, time.time())
    deadline = clock() + budget
    seen: set[tuple[int, int]] = set()
    total = top.st_blocks * 512
    files = 0
    stack = [str(root)]
    while stack:
        if files >= max_entries or clock() > deadline:
            return DiskUse(total, files, False, time.time())
        path = stack.pop()
        try:
            with os.scandir(path) as it:
                for entry in it:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    files += 1
                    if st.st_dev != top.st_dev:
                        continue  # another file system mounted in the home
                    if st.st_nlink > 1:
                        key = (st.st_dev, st.st_ino)
                        if key in seen:
                            continue
                        seen.add(key)
                    total += st.st_blocks * 512
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
        except OSError:
            continue  # unreadable directory: counted as what we could see
    return DiskUse(total, files, True, time.time())


class DiskUseCache:
    """Measure in a background thread, one path at a time; `done(path, use)` is called
    from that thread (the GUI hands it to its main loop)."""

    def __init__(self, done: Callable[[Path, DiskUse | None], None]) -> None:
        self._done = done
        self._cache: dict[Path, DiskUse | None] = {}
        self._queued: list[Path] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def get(self, path: Path) -> DiskUse | None:
        with self._lock:
            return self._cache.get(path)

    def request(self, path: Path, force: bool = False) -> None:
        with self._lock:
            cached = self._cache.get(path)
            fresh = cached is not None and time.time() - cached.measured_at < CACHE_SECONDS
            if (fresh and not force) or path in self._queued:
                return
            self._queued.append(path)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="disk use", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queued:
                    self._thread = None
                    return
                path = self._queued[0]
            use = measure(path)
            with self._lock:
                self._cache[path] = use
                self._queued.pop(0)
            self._done(path, use)
