"""Reloading the config while zionwm runs: the new config is built beside the running one
and applied only when it loaded; otherwise the running one stays and the user is told.
"""

from __future__ import annotations

import logging
from typing import Any

from zionwm import config as cfgmod

from .core import ServerCore
from .input import BindingTable

log = logging.getLogger(__name__)


class ConfigReload(ServerCore):
    """Reload the config file, and apply a config (new, kept and removed desktops)."""

    def reload_config(self) -> str:
        path = self.options.config_path or cfgmod.default_config_path()
        new, errors = cfgmod.load_config(path)
        if new is None:
            text = "\n".join(str(e) for e in errors) or "config did not load"
            self.notify(
                "Config reload failed; keeping the running config:\n" + text,
                seconds=15,
                urgent=True,
            )
            self.emit("error", {"what": "config", "errors": [str(e) for e in errors]})
            raise ValueError("reload failed, running config kept:\n" + text)
        if self.desktop_data is not None:
            new = self.desktop_data.rebase(new)  # the desktops made at run time stay
        self.apply_config(new)
        for ext in self.extensions:
            hook = getattr(ext, "reload", None)
            if hook:
                hook()
        if errors:  # warnings only
            self.notify("\n".join(str(e) for e in errors), seconds=10)
        self.emit("config", {"path": str(path)})
        return f"reloaded {path}"

    def apply_config(self, new: Any) -> None:
        self.overview.close()  # its grid was made for the old desktop list
        names = [d.name for d in new.desktops]
        kept = self.model.update_names(names)
        for spec in new.desktops:
            if spec.name in self.desktops:
                self.desktops[spec.name].spec = spec
                for v in self.desktops[spec.name].views:
                    v._paint_borders(v is self.focused_view)
            else:
                self._add_desktop(spec)
        for name in list(self.desktops):
            if name not in names and name not in kept:
                self._remove_desktop(name)
        if kept:
            self.notify("Kept desktops that still have windows: " + ", ".join(kept))
        self.config = new
        self.bindings = self._binding_table(new)
        if new.settings.lock_after != self.locker.after_s:
            self.locker.after_s = new.settings.lock_after
            self.watch_idle()
        self._apply_visibility()

    def _binding_table(self, config: Any) -> BindingTable:
        rows = [(frozenset(b.modifiers), b.keysym, b.command) for b in config.bindings]
        return BindingTable(rows)
