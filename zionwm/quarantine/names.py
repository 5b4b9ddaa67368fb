"""Which names in a desktop's Downloads or Outbox the quarantine takes: pure, and light to
import (the compositor wipes what an ephemeral session left with it, without the inbox's
store and watches)."""

from __future__ import annotations

PARTIAL_SUFFIXES = (
    ".part",  # Firefox
    ".crdownload",  # Chromium
    ".download",  # Safari, Epiphany
    ".tmp",
    ".partial",
    ".opdownload",  # Opera
    ".!qb",  # qBittorrent
    "~",
)


def is_partial_name(name: str) -> bool:
    """A browser's download in progress (`.part`, `.crdownload`, ...)."""
    lower = name.lower()
    return any(lower.endswith(s) for s in PARTIAL_SUFFIXES)


def is_candidate_name(name: str) -> bool:
    """A final name worth looking at: not hidden, not a browser's partial download."""
    if not name or name.startswith("."):
        return False
    lower = name.lower()
    return not any(lower.endswith(s) for s in PARTIAL_SUFFIXES)
