"""One listening Wayland socket per desktop, accepted by the compositor itself.

A client's desktop is decided by the socket it connected through and recorded in C on the
wl_client at accept time (see native/); it is never inferred from a pid. The ordinary
WAYLAND_DISPLAY socket (made by libwayland) is the trusted host socket.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zionwm import paths

from . import native
from .loop import FdHandle, Loop

log = logging.getLogger(__name__)


def ensure_private_dir(path: Path) -> None:
    """Create `path` as a 0700 directory owned by us; refuse a symlink or a foreign owner."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise RuntimeError(f"{path} is not a private directory of ours")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)


class DesktopSocket:
    def __init__(
        self, display: Any, loop: Loop, name: str, slot: int, on_client: Callable[[str, int], None]
    ) -> None:
        self.name = name
        self.slot = slot
        self.path = paths.desktop_socket(name)
        self._display = display
        self._on_client = on_client
        ensure_private_dir(paths.runtime_dir())
        ensure_private_dir(self.path.parent)
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self._sock.listen(64)
        self._sock.setblocking(False)
        self._watch: FdHandle | None = loop.add_reader(
            self._sock.fileno(), self._on_socket_readable, f"accept on {name}"
        )

    def _on_socket_readable(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except BlockingIOError:
                return
            except OSError as e:
                log.warning("desktop %s: accept failed: %s", self.name, e)
                return
            fd = conn.detach()
            client = native.client_create(self._display, fd, self.slot)
            if not client:
                log.warning("desktop %s: could not create a client", self.name)
                continue
            self._on_client(self.name, client)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.remove()
            self._watch = None
        self._sock.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
