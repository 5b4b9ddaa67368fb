"""What the window shows, as data: every mapped label, row title and subtitle, button label
and colour swatch, with its bounds in window coordinates. Written to the file named by
$ZIONWM_MANAGER_PROBE twice a second, for end-to-end tests that must know where on screen a
desktop's name is (there is no accessibility bus in a headless session)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gtk", "4.0")
gi.require_version("Adw", "1")
from gi.repository import Adw, GLib, Gtk  # noqa: E402


def _focus_name(win: Gtk.Window) -> str | None:
    """The title of the row, or the label of the button, that has the keyboard focus."""
    w = win.get_focus()
    while w is not None:
        if isinstance(w, Adw.PreferencesRow):
            return str(w.get_title())
        if isinstance(w, Gtk.Button) and w.get_label():
            return str(w.get_label())
        if isinstance(w, Gtk.Button | Gtk.MenuButton) and w.get_tooltip_text():
            return str(w.get_tooltip_text())  # an icon button: named by its tooltip
        w = w.get_parent()
    return None


def _items(win: Gtk.Window) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def walk(w: Gtk.Widget) -> None:
        if not w.get_mapped():
            return
        ok, rect = w.compute_bounds(win)
        box = [rect.origin.x, rect.origin.y, rect.size.width, rect.size.height] if ok else None
        entry: dict[str, Any] | None = None
        if isinstance(w, Gtk.Label) and w.get_text():
            entry = {"kind": "label", "text": w.get_text()}
            if w.has_css_class("error") or (
                w.get_parent() and w.get_parent().has_css_class("error")
            ):
                entry["error"] = True
        elif isinstance(w, Gtk.Entry | Gtk.SearchEntry):
            focused = w.has_focus() or bool(w.get_focus_child())
            entry = {"kind": "entry", "text": w.get_text(), "focused": focused}
        elif isinstance(w, Gtk.Button) and not w.get_label() and w.get_tooltip_text():
            entry = {"kind": "button", "text": w.get_tooltip_text(), "icon": w.get_icon_name()}
        elif hasattr(w, "swatch_colour"):
            entry = {"kind": "swatch", "colour": w.swatch_colour}
        elif isinstance(w, Adw.PreferencesRow) and w.has_css_class("error"):
            subtitle = w.get_subtitle() if isinstance(w, Adw.ActionRow) else ""
            entry = {"kind": "error-row", "text": w.get_title(), "error": subtitle}
        if entry is not None:
            entry["bounds"] = box
            out.append(entry)
        child = w.get_first_child()
        while child is not None:
            walk(child)
            child = child.get_next_sibling()

    walk(win)
    return out


def install(app: Gtk.Application) -> None:
    path = os.environ.get("ZIONWM_MANAGER_PROBE")
    if not path:
        return

    # the key presses the windows saw, with their modifiers: a test whose typed keys seem to
    # go nowhere can then tell "never arrived" from "arrived with a stuck Ctrl"
    keys: dict[str, Any] = {"count": 0, "last": None}

    def seen(_c: Gtk.EventControllerKey, keyval: int, _code: int, state: Any) -> bool:
        keys["count"] += 1
        keys["last"] = str(Gtk.accelerator_name(keyval, state))
        return False  # only looked at: the window handles it as before

    def write() -> bool:
        windows = []
        for win in Gtk.Window.list_toplevels():
            if not getattr(win, "zionwm_probe_keys", False):
                win.zionwm_probe_keys = True  # kept on the window's wrapper, not by its id
                ctl = Gtk.EventControllerKey(propagation_phase=Gtk.PropagationPhase.CAPTURE)
                ctl.connect("key-pressed", seen)
                win.add_controller(ctl)
            if win.get_mapped():
                windows.append(
                    {
                        "title": win.get_title(),
                        "active": win.is_active(),
                        "focus": _focus_name(win),
                        "width": win.get_width(),
                        "height": win.get_height(),
                        "items": _items(win),
                    }
                )
        tmp = Path(path + ".tmp")
        tmp.write_text(json.dumps({"windows": windows, "keys": keys}))
        tmp.replace(path)
        return True

    GLib.timeout_add(500, write)
