"""Attach the isolation and quarantine layers to a running server.

Each layer is optional at run time (a machine without delegated cgroups still runs zionwm,
and says what it lacks); this module decides what to attach and logs what it found.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)


def attach(server: Server) -> None:
    """Nothing is attached yet beyond the core: filled in as the layers land."""
    log.debug("integration: core only")
