"""The manager's own state: the favourite apps of each desktop, kept in
`$XDG_STATE_HOME/zionwm/manager.json` (not in the desktops file: a favourite grants nothing
and the compositor never reads it).

A file that cannot be read (missing, broken, written by hand) gives no favourites and is
not overwritten until the user changes a favourite; writes go through a temporary file and
a rename, so a crash leaves the old file or the new one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from zionwm import paths

log = logging.getLogger(__name__)

MAX_PER_DESKTOP = 200


def state_file() -> Path:
    return paths.state_home() / "manager.json"


class Favourites:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_file()
        self._by_desktop: dict[str, list[str]] = {}
        self.error: str | None = None
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            self.error = f"{self.path}: {exc}"
            log.warning("favourites not read: %s", self.error)
            return
        favs = data.get("favourites") if isinstance(data, dict) else None
        if not isinstance(favs, dict):
            self.error = f"{self.path}: no 'favourites' table"
            return
        for desktop, ids in favs.items():
            if isinstance(desktop, str) and isinstance(ids, list):
                clean = [i for i in ids if isinstance(i, str)]
                self._by_desktop[desktop] = clean[:MAX_PER_DESKTOP]

    def of(self, desktop: str) -> list[str]:
        return list(self._by_desktop.get(desktop, []))

    def is_favourite(self, desktop: str, app_id: str) -> bool:
        return app_id in self._by_desktop.get(desktop, [])

    def toggle(self, desktop: str, app_id: str) -> bool:
        """Add or remove; returns whether it is a favourite now. Saved at once."""
        ids = self._by_desktop.setdefault(desktop, [])
        if app_id in ids:
            ids.remove(app_id)
            now = False
        else:
            ids.append(app_id)
            del ids[:-MAX_PER_DESKTOP]
            now = True
        self.save()
        return now

    def rank(self, desktop: str, app_id: str) -> int:
        """Favourites first, in the order they were added; then everything else."""
        ids = self._by_desktop.get(desktop, [])
        return ids.index(app_id) if app_id in ids else len(ids)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        data = {"favourites": {d: ids for d, ids in self._by_desktop.items() if ids}}
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self.error = None
