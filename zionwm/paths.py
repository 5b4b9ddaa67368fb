"""Where zionwm keeps things on the host: one function per location, so every layer agrees.

Runtime (sockets): $XDG_RUNTIME_DIR/zionwm/...  Data: $XDG_DATA_HOME/zionwm/...
"""

from __future__ import annotations

import os
from pathlib import Path


def runtime_dir() -> Path:
    """$XDG_RUNTIME_DIR/zionwm: the IPC socket and one directory per desktop socket."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if not base:
        raise RuntimeError("XDG_RUNTIME_DIR is not set: zionwm needs a private runtime directory")
    return Path(base) / "zionwm"


def desktop_socket_dir(desktop: str) -> Path:
    return runtime_dir() / desktop


def desktop_socket(desktop: str) -> Path:
    """The desktop's own Wayland socket; bound as $XDG_RUNTIME_DIR/wayland-0 in its sandboxes."""
    return desktop_socket_dir(desktop) / "wayland-0"


def desktop_x11_dir(desktop: str) -> Path:
    """The desktop's own X11 socket directory; bound as /tmp/.X11-unix in its sandboxes."""
    return desktop_socket_dir(desktop) / "x11"


def ipc_socket() -> Path:
    return runtime_dir() / "ipc.sock"


def sway_ipc_socket() -> Path:
    return runtime_dir() / "sway-ipc.sock"


def data_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "zionwm"


def config_home() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "zionwm"


def state_home() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "zionwm"


def desktop_dir(desktop: str) -> Path:
    return data_home() / "desktops" / desktop


def desktop_home(desktop: str) -> Path:
    return desktop_dir(desktop) / "home"


def desktop_outbox(desktop: str) -> Path:
    return desktop_dir(desktop) / "outbox"


def desktop_inbox(desktop: str) -> Path:
    """The quarantine inbox, bound as ~/Downloads for desktops with a downloads policy."""
    return desktop_dir(desktop) / "downloads-inbox"


def desktop_layer(desktop: str) -> Path:
    """Persistent copy-on-write layer over /usr for desktops with writable_usr."""
    return desktop_dir(desktop) / "layer"


def shared_dir() -> Path:
    return data_home() / "shared"


def quarantine_dir() -> Path:
    return data_home() / "quarantine"


def templates_dir() -> Path:
    return data_home() / "templates"
