"""A stdlib reactor, for tests and for tools that run the IPC servers without a compositor."""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class SelectorReactor:
    """A level-triggered reactor on `selectors`. `run()` in one thread; `call_soon()` and
    `stop()` are the only methods safe to call from other threads."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._callbacks: dict[int, list[Callable[[], None] | None]] = {}
        self._pending: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stopping = False
        self.add_reader(self._wake_r, self._drain_wakeups)

    def add_reader(self, fd: int, callback: Callable[[], None]) -> object:
        return self._add(fd, 0, callback)

    def add_writer(self, fd: int, callback: Callable[[], None]) -> object:
        return self._add(fd, 1, callback)

    def remove(self, handle: object) -> None:
        assert isinstance(handle, tuple)
        fd: int = handle[0]
        slot: int = handle[1]
        cbs = self._callbacks.get(fd)
        if cbs is None:
            return
        cbs[slot] = None
        self._update(fd)

    def call_soon(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._pending.append(fn)
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def run(self) -> None:
        while not self._stopping:
            self.run_once(None)

    def run_once(self, timeout: float | None) -> None:
        for key, mask in self._sel.select(timeout):
            fd = key.fd
            if mask & selectors.EVENT_READ:
                cbs = self._callbacks.get(fd)
                if cbs is not None and cbs[0] is not None:
                    cbs[0]()
            if mask & selectors.EVENT_WRITE:
                cbs = self._callbacks.get(fd)
                if cbs is not None and cbs[1] is not None:
                    cbs[1]()

    def close(self) -> None:
        self._sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _add(self, fd: int, slot: int, callback: Callable[[], None]) -> object:
        cbs = self._callbacks.setdefault(fd, [None, None])
        cbs[slot] = callback
        self._update(fd)
        return (fd, slot)

    def _update(self, fd: int) -> None:
        cbs = self._callbacks[fd]
        mask = (selectors.EVENT_READ if cbs[0] else 0) | (selectors.EVENT_WRITE if cbs[1] else 0)
        registered = fd in self._sel.get_map()
        if not mask:
            del self._callbacks[fd]
            if registered:
                self._sel.unregister(fd)
        elif registered:
            self._sel.modify(fd, mask)
        else:
            self._sel.register(fd, mask)

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        with self._lock:
            pending, self._pending = self._pending, []
        for fn in pending:
            try:
                fn()
            except Exception:
                log.exception("callback scheduled on the reactor failed")
