"""The data of deleted desktops, kept restorable.

A deleted desktop's directory (home, layer, inbox...) moves under `deleted/` in the data
home, with its settings as they were in a small desktops file beside it; `desktop restore`
moves it back under its name or another.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from zionwm import desktops_store as store
from zionwm import paths
from zionwm.desktops_store import DesktopsFile, Settings

log = logging.getLogger(__name__)

DELETED_META = "zionwm-deleted.toml"


def deleted_dir() -> Path:
    return paths.data_home() / "deleted"


def move_data_away(name: str, entry: Settings) -> Path:
    """Move a deleted desktop's data aside, with its settings beside it; returns where."""
    base = deleted_dir()
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = base / f"{name}-{stamp}"
    n = 1
    while dest.exists():
        n += 1
        dest = base / f"{name}-{stamp}-{n}"
    source = paths.desktop_dir(name)
    if source.exists():
        os.rename(source, dest)
    else:
        dest.mkdir(mode=0o700)
    meta = DesktopsFile(desktops={name: {**entry, "deleted_at": time.time()}})
    store.save(dest / DELETED_META, meta)
    return dest


def move_back(moved: Path, name: str) -> None:
    """Undo `move_data_away` (the deletion could not be recorded)."""
    (moved / DELETED_META).unlink(missing_ok=True)
    target = paths.desktop_dir(name)
    if any(moved.iterdir()):
        os.rename(moved, target)
    else:
        moved.rmdir()


def list_deleted() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    base = deleted_dir()
    if not base.is_dir():
        return out
    for entry in sorted(base.iterdir()):
        meta_path = entry / DELETED_META
        try:
            meta = store.load(meta_path)
        except store.StoreError as exc:
            log.warning("%s", exc)
            continue
        if not meta.desktops:
            continue
        name = next(iter(meta.desktops))
        when = meta.desktops[name].get("deleted_at", entry.stat().st_mtime)
        out.append(
            {
                "id": entry.name,
                "name": name,
                "deleted_at": float(when),
                "path": str(entry),
                "settings": {k: v for k, v in meta.desktops[name].items() if k != "deleted_at"},
            }
        )
    return out
