"""The compositor's two IPC servers: the zionwm control socket and a sway/i3-compatible socket.

- `control`: `ControlServer`, newline-delimited JSON on `paths.ipc_socket()`, spoken by
  `zionctl` and the manager. A new request type is a `_req_<type>` method there.
- `sway`: `SwayIpcServer`, the i3/sway binary protocol on `paths.sway_ipc_socket()`,
  exported to host tools as `SWAYSOCK`; `sway_tree` is its pure translation of the
  compositor's state into i3's JSON.
- `transport`: what both share: listening sockets, the accept loop and peer check, each
  client's bounded non-blocking buffers. Each protocol frames its own messages.
- `interfaces`: what the compositor hands in: a `Reactor` (its event loop) and a
  `Controller` (its state and command dispatch); `reactor.SelectorReactor` is a stdlib
  reactor for tests and tools.
- `hub`: `IpcHub`, both servers behind one `emit()`.

None of it touches wlroots. Everything is non-blocking and never raises into the event loop.
The control and sway protocols know nothing of each other (checked by import-linter).

Both sockets are reachable only by our own uid and root: the runtime directory is 0700, the
sockets are 0600, and every accepted peer is checked again with SO_PEERCRED. They are host
sockets: the launcher must never bind them into a sandbox nor pass SWAYSOCK/ZIONWM_SOCK to it.
"""

from __future__ import annotations

from zionwm.compositor.ipc.control import ControlServer
from zionwm.compositor.ipc.hub import IpcHub
from zionwm.compositor.ipc.interfaces import (
    CommandOutcome,
    CommandResult,
    Controller,
    Deferred,
    Reactor,
)
from zionwm.compositor.ipc.reactor import SelectorReactor
from zionwm.compositor.ipc.sway import SwayIpcServer
from zionwm.compositor.ipc.transport import (
    DEFAULT_MAX_PENDING,
    MAX_REQUEST,
    SocketInUseError,
)

__all__ = [
    "DEFAULT_MAX_PENDING",
    "MAX_REQUEST",
    "CommandOutcome",
    "CommandResult",
    "ControlServer",
    "Controller",
    "Deferred",
    "IpcHub",
    "Reactor",
    "SelectorReactor",
    "SocketInUseError",
    "SwayIpcServer",
]
