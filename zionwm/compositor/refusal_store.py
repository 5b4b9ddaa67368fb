"""The refusal lists on disk, so that a restarted compositor still offers what each desktop
was refused: one small file per desktop under `$XDG_STATE_HOME/zionwm/refusals/` (what is
in it, and how it is judged when read back, is refusals.py's business).

A file that cannot be read is set aside as `NAME.json.bad` with a warning, never
overwritten.

Writing (write, fsync, rename, fsync of the directory) happens on a thread of its own: the
compositor thread only encodes a few kilobytes and hands them over.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from zionwm.commands import DESKTOP_NAME
from zionwm.desktops_store import write_atomic

log = logging.getLogger(__name__)

MAX_FILE = 256 * 1024  # far above what a bounded list takes; a bigger file is not ours
T = TypeVar("T")


class RefusalStore:
    """One directory of refusal lists and the thread that writes them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._queue: queue.Queue[tuple[str, bytes | None] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def path(self, desktop: str) -> Path:
        if not DESKTOP_NAME.fullmatch(desktop):
            raise ValueError(f"no refusal file for a desktop named {desktop!r}")
        return self.directory / f"{desktop}.json"

    def load(self, decode: Callable[[str, bytes], T]) -> dict[str, T]:
        """Every desktop's list as last written, each file's bytes read by `decode` (which
        raises ValueError for what it cannot take)."""
        out: dict[str, T] = {}
        try:
            files = sorted(self.directory.glob("*.json"))
        except OSError as exc:
            log.warning("refusal lists in %s: %s", self.directory, exc)
            return out
        for path in files:
            desktop = path.stem
            if not DESKTOP_NAME.fullmatch(desktop):
                continue
            try:
                with path.open("rb") as f:
                    data = f.read(MAX_FILE + 1)
                if len(data) > MAX_FILE:
                    raise ValueError(f"bigger than {MAX_FILE} bytes")
                out[desktop] = decode(desktop, data)
            except (OSError, ValueError) as exc:
                aside = path.with_name(path.name + ".bad")
                log.warning("refusal list %s is unreadable (%s): kept as %s", path, exc, aside)
                try:
                    os.replace(path, aside)
                except OSError as err:
                    log.warning("could not set %s aside: %s", path, err)
        return out

    def save(self, desktop: str, data: bytes | None) -> None:
        """Write `desktop`'s list soon (None removes its file); returns at once."""
        self.path(desktop)  # a bad name fails here, in the caller
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_all, name="refusals", daemon=True)
            self._thread.start()
        self._queue.put((desktop, data))

    def _write_all(self) -> None:
        while (job := self._queue.get()) is not None:
            desktop, data = job
            path = self.path(desktop)
            try:
                if data is None:
                    path.unlink(missing_ok=True)
                else:
                    self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                    write_atomic(path, data.decode())
            except OSError as exc:
                log.warning("could not write the refusal list of %s: %s", desktop, exc)

    def close(self, timeout: float = 10.0) -> None:
        """Wait (at most `timeout` seconds) for what was handed over to be written."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("refusal lists: the writer did not finish in %gs", timeout)
        self._thread = None
