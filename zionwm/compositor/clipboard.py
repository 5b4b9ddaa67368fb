"""Clipboards: one per desktop, and the explicit, audited copy between desktops.

Each desktop has its own wlr_seat, and each desktop's clients can only see their own seat
(the global filter), so a selection set in one desktop is never offered to another: that is
wlroots' own per-seat model, with nothing to keep in sync. Crossing desktops is a user act:
`copy()` reads the focused desktop's selection into a compositor buffer (text types only, with
a size limit), `paste()` offers it once to the focused desktop, then the buffer is wiped.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import native
from .loop import FdHandle, Loop

log = logging.getLogger(__name__)

TEXT_TYPES = ("text/plain;charset=utf-8", "UTF8_STRING", "text/plain", "TEXT", "STRING")
_source_ids = itertools.count(1)


@dataclass
class Held:
    data: bytes
    mime: str
    origin: str


class ClipboardBridge:
    def __init__(
        self,
        loop: Loop,
        seat_for: Callable[[str], Any],
        next_serial: Callable[[], int],
        notify: Callable[[str], None],
        max_bytes: int = 1 << 20,
        mime_types: tuple[str, ...] = TEXT_TYPES,
    ) -> None:
        self._loop = loop
        self._seat_for = seat_for
        self._next_serial = next_serial
        self._notify = notify
        self.max_bytes = max_bytes
        self.mime_types = mime_types
        self.held: Held | None = None
        self._reading: tuple[int, FdHandle, bytearray, str, str] | None = None
        self._offered: dict[int, tuple[Any, str]] = {}  # source id -> (source, desktop)
        native.set_source_callbacks(
            source_send=self._on_source_send,
            source_destroyed=self._on_source_destroyed,
        )

    # ---- copy: read the desktop's selection asynchronously ----

    def copy(self, desktop: str) -> str:
        source = native.seat_selection(self._seat_for(desktop))
        if not source:
            return f"{desktop} has nothing on its clipboard"
        offered = native.source_mime_types(source)
        mime = next((m for m in self.mime_types if m in offered), None)
        if mime is None:
            return f"{desktop}'s clipboard holds no allowed type ({', '.join(offered[:4])})"
        self._abort_read()
        rfd, wfd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        native.source_send(source, mime, wfd)  # wlroots passes wfd on and closes it
        buf = bytearray()
        watch = self._loop.add_reader(rfd, self._on_pipe_readable, "clipboard read")
        self._reading = (rfd, watch, buf, mime, desktop)
        return f"copying {desktop}'s clipboard"

    def _on_pipe_readable(self) -> None:
        assert self._reading is not None
        rfd, _watch, buf, mime, desktop = self._reading
        while True:
            try:
                chunk = os.read(rfd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                break
            buf += chunk
            if len(buf) > self.max_bytes:
                self._abort_read()
                self._notify(f"Clipboard of {desktop} is over {self.max_bytes} bytes: not copied")
                log.warning(
                    "clipboard copy from %s refused: over %d bytes", desktop, self.max_bytes
                )
                return
        self._abort_read()
        self.held = Held(bytes(buf), mime, desktop)
        log.info("clipboard: held %d bytes of %s from %s", len(buf), mime, desktop)
        self._notify(f"Copied {len(buf)} bytes from {desktop}: Super+Shift+V to paste once")

    def _abort_read(self) -> None:
        if self._reading is not None:
            rfd, watch, *_ = self._reading
            watch.remove()
            os.close(rfd)
            self._reading = None

    # ---- paste: offer the held data once ----

    def paste(self, desktop: str) -> str:
        if self.held is None:
            return "nothing was copied (Super+Shift+C on the source desktop first)"
        sid = next(_source_ids)
        src = native.own_source_create(sid, list(self.mime_types))
        self._offered[sid] = (src, desktop)
        self._seat_for(desktop).set_selection(native.own_source_as_wlr(src), self._next_serial())
        return f"offered {len(self.held.data)} bytes from {self.held.origin} to {desktop}, once"

    def _on_source_send(self, sid: int, mime: str, fd: int) -> None:
        offer = self._offered.get(sid)
        held = self.held
        if offer is None or held is None:
            os.close(fd)
            return
        _src, desktop = offer
        log.info(
            "clipboard transfer: from=%s to=%s size=%d type=%s",
            held.origin,
            desktop,
            len(held.data),
            held.mime,
        )
        self.held = None  # once: wiped as soon as it is delivered
        self._write_async(fd, held.data)
        # drop the offer after this call returns (we are inside wlroots' send)
        self._loop.call_later(1, lambda: self._withdraw(sid), "clipboard withdraw")

    def _write_async(self, fd: int, data: bytes) -> None:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        view = memoryview(data)
        state: dict[str, Any] = {"off": 0}

        def pump() -> None:
            try:
                while state["off"] < len(view):
                    state["off"] += os.write(fd, view[state["off"] :])
            except BlockingIOError:
                return
            except OSError as e:
                log.info("clipboard paste: reader went away (%s)", e)
            state["watch"].remove()
            os.close(fd)

        state["watch"] = self._loop.add_writer(fd, pump, "clipboard write")

    def _withdraw(self, sid: int) -> None:
        offer = self._offered.get(sid)
        if offer is None:
            return
        _src, desktop = offer
        seat = self._seat_for(desktop)
        if native.seat_selection(seat) == native.address_of(offer[0]):
            seat.set_selection(None, self._next_serial())  # destroys our source
        # otherwise a client's newer selection already replaced (and destroyed) it

    def _on_source_destroyed(self, sid: int) -> None:
        self._offered.pop(sid, None)
