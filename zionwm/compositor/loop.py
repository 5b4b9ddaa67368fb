"""The one Wayland event loop, wrapped for the rest of the compositor (and for IPC).

pywayland returns a new EventLoop object on every `get_event_loop()` and keeps callback
handles inside it, so the server holds exactly one `Loop` for its whole life. Every callback
registered here is guarded: an exception is logged, never propagated into C.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from pywayland import lib as pw_lib
from pywayland.server import Display, EventLoop

from .listeners import guarded

READABLE = EventLoop.FdMask.WL_EVENT_READABLE
WRITABLE = EventLoop.FdMask.WL_EVENT_WRITABLE
HANGUP = EventLoop.FdMask.WL_EVENT_HANGUP
ERROR = EventLoop.FdMask.WL_EVENT_ERROR


class Handle:
    """An fd watch or timer; remove() is idempotent."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def remove(self) -> None:
        if self._source is not None:
            self._source.remove()
            self._source = None

    @property
    def active(self) -> bool:
        return self._source is not None


class Timer(Handle):
    def schedule(self, ms: int) -> None:
        """(Re)arm the timer to fire once in `ms` milliseconds (0 disarms it)."""
        if self._source is not None:
            self._source.timer_update(max(0, int(ms)))


class _FdWatch:
    """One epoll registration per fd (epoll refuses a second one), shared by a reader and
    a writer; the mask follows whichever callbacks are present."""

    def __init__(self, loop: Loop, fd: int) -> None:
        self.loop = loop
        self.fd = fd
        self.reader: Callable[[], None] | None = None
        self.writer: Callable[[], None] | None = None
        self.source: Any = loop.event_loop.add_fd(fd, self._dispatch, READABLE)

    def _dispatch(self, _fd: int, mask: int, _data: Any) -> int:
        if mask & (READABLE | HANGUP | ERROR) and self.reader is not None:
            self.reader()
        if mask & (WRITABLE | HANGUP | ERROR) and self.writer is not None:
            self.writer()
        return 0

    def update(self) -> None:
        if self.reader is None and self.writer is None:
            self.source.remove()
            self.loop._watches.pop(self.fd, None)
            return
        mask = (READABLE if self.reader else 0) | (WRITABLE if self.writer else 0)
        pw_lib.wl_event_source_fd_update(self.source._ptr, int(mask))  # type: ignore[attr-defined]


class FdHandle:
    def __init__(self, watch: _FdWatch, kind: str) -> None:
        self._watch: _FdWatch | None = watch
        self._kind = kind

    def remove(self) -> None:
        w = self._watch
        if w is None:
            return
        self._watch = None
        setattr(w, self._kind, None)
        w.update()

    @property
    def active(self) -> bool:
        return self._watch is not None


class Loop:
    def __init__(self, display: Display) -> None:
        self.event_loop = display.get_event_loop()
        self._watches: dict[int, _FdWatch] = {}
        self._signal_pipe: tuple[int, int] | None = None
        self._signal_callbacks: dict[int, Callable[[], None]] = {}
        self._pending_signals: set[int] = set()

    def _watch(self, fd: int, kind: str, callback: Callable[[], None], context: str) -> FdHandle:
        w = self._watches.get(fd)
        if w is None:
            w = self._watches[fd] = _FdWatch(self, fd)
        setattr(w, kind, guarded(context, callback))
        w.update()
        return FdHandle(w, kind)

    def add_reader(self, fd: int, callback: Callable[[], None], context: str = "fd") -> FdHandle:
        return self._watch(fd, "reader", callback, context)

    def add_writer(self, fd: int, callback: Callable[[], None], context: str = "fd") -> FdHandle:
        return self._watch(fd, "writer", callback, context)

    # the IPC server's Reactor protocol
    def remove(self, handle: Any) -> None:
        handle.remove()

    def timer(self, callback: Callable[[], None], context: str = "timer") -> Timer:
        cb = guarded(context, callback)
        return Timer(self.event_loop.add_timer(lambda _data: cb() or 0))

    def call_later(self, ms: int, callback: Callable[[], None], context: str = "timer") -> Timer:
        """One-shot: fires once, then removes itself."""
        holder: list[Timer] = []

        def fire() -> None:
            holder[0].remove()
            callback()

        t = self.timer(fire, context)
        holder.append(t)
        t.schedule(max(1, ms))
        return t

    def add_signal(self, signum: int, callback: Callable[[], None]) -> None:
        """Run `callback` on the loop when `signum` arrives.

        Not wl_event_loop_add_signal: that blocks the signal with sigprocmask, and every
        child we spawn would inherit the blocked mask (sandboxed programs and helpers that
        then ignore SIGTERM). Python's handler plus a wakeup pipe watched by the loop blocks
        nothing; the handler itself only records the signal.
        """
        if self._signal_pipe is None:
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._signal_pipe = (r, w)
            signal.set_wakeup_fd(w, warn_on_full_buffer=False)
            self.add_reader(r, self._drain_signals, "signals")
        self._signal_callbacks[signum] = guarded(f"signal {signum}", callback)
        signal.signal(signum, lambda s, _f: self._pending_signals.add(s))

    def _drain_signals(self) -> None:
        assert self._signal_pipe is not None
        try:
            while os.read(self._signal_pipe[0], 256):
                pass
        except BlockingIOError:
            pass
        # Python ran the handlers before this callback's first bytecode
        pending, self._pending_signals = self._pending_signals, set()
        for signum in pending:
            cb = self._signal_callbacks.get(signum)
            if cb is not None:
                cb()
