"""What the compositor holds for each desktop at run time, besides the pure model.

Plain records shared by the server's parts and the modules they drive (window management,
the overview); no behaviour, so any of them may import it without reaching the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wlroots.util.edges import Edges
from wlroots.wlr_types import Seat

from zionwm.isolation.spec import DesktopSpec

from .clients import DesktopSocket
from .native import SceneTree
from .views import View

HOST = "host"  # pseudo-desktop of trusted clients on the WAYLAND_DISPLAY socket


@dataclass
class DesktopRuntime:
    """What the compositor holds for one desktop besides the pure model."""

    spec: DesktopSpec
    slot: int  # stable id recorded on each client in C; never reused within a run
    seat: Seat
    tree: SceneTree
    socket: DesktopSocket
    views: list[View] = field(default_factory=list)
    clients: set[int] = field(default_factory=set)
    # windows with work waiting for the desktop to be shown (View.flush_deferred), in the
    # order they asked: a switch visits these, not every window
    deferred: dict[View, None] = field(default_factory=dict)
    freeze_timer: Any = None


@dataclass
class Grab:
    view: View
    mode: str  # "move" | "resize"
    edges: Edges
    cursor_x: float
    cursor_y: float
    box: tuple[int, int, int, int]
    by_compositor: bool = False  # Super+drag: the client never saw the press
