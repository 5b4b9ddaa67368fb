"""The apps page: the programs the chosen desktop can run, with a search field and
favourites, each started in that desktop with one click."""

from __future__ import annotations

import gi

gi.require_version("Gtk", "4.0")
gi.require_version("Adw", "1")
from typing import Any  # noqa: E402

from gi.repository import Gdk, Gtk  # noqa: E402

from zionwm.manager import apps as appmodel  # noqa: E402
from zionwm.manager.client import ControlError  # noqa: E402
from zionwm.manager.gtk_base import WindowParts  # noqa: E402


class AppsPage(WindowParts):
    def _apps_page(self) -> Gtk.Widget:
        outer = Gtk.Box(
            orientation=Gtk.Orientation.VERTICAL,
            spacing=12,
            margin_top=18,
            margin_bottom=18,
            margin_start=18,
            margin_end=18,
        )
        top = Gtk.Box(spacing=8)
        top.append(Gtk.Label(label="Start in", css_classes=["dim-label"]))
        self.app_desktops: list[str] = []
        self.app_drop = Gtk.DropDown.new_from_strings([])
        self.app_drop.update_property([Gtk.AccessibleProperty.LABEL], ["Desktop"])
        self.app_drop.connect("notify::selected", lambda *_: self._load_apps())
        top.append(self.app_drop)
        self.app_banner = Gtk.Label(css_classes=["desktop-banner"], hexpand=True, xalign=0)
        top.append(self.app_banner)
        self.app_search = Gtk.SearchEntry(placeholder_text="Search apps", hexpand=True)
        self.app_search.connect("search-changed", self._on_search)
        self.app_search.connect("activate", lambda *_: self._launch_first())
        top.append(self.app_search)
        outer.append(top)
        scroll = Gtk.ScrolledWindow(vexpand=True, hscrollbar_policy=Gtk.PolicyType.NEVER)
        self.app_flow = Gtk.FlowBox(
            selection_mode=Gtk.SelectionMode.NONE,
            homogeneous=True,
            max_children_per_line=8,
            row_spacing=6,
            column_spacing=6,
            valign=Gtk.Align.START,
        )
        self.app_flow.set_filter_func(self._app_visible)
        scroll.set_child(self.app_flow)
        outer.append(scroll)
        self.apps: list[appmodel.App] = []
        self.app_css = Gtk.CssProvider()
        Gtk.StyleContext.add_provider_for_display(
            Gdk.Display.get_default(), self.app_css, Gtk.STYLE_PROVIDER_PRIORITY_APPLICATION
        )
        return outer

    def _on_search(self, *_: Any) -> None:
        self.app_flow.invalidate_filter()

    def _fill_app_desktops(self) -> None:
        names = [r.name for r in self.model.sorted("order")]
        if names == self.app_desktops:
            return
        current = self.app_current()
        self.app_desktops = names
        self.app_drop.set_model(Gtk.StringList.new(names))
        active = next((r.name for r in self.model.rows.values() if r.active), None)
        pick = current if current in names else active
        if pick in names:
            self.app_drop.set_selected(names.index(pick))

    def _follow_switch(self, name: str) -> None:
        """Apps start in the desktop being shown unless the user picks another."""
        if name in self.app_desktops:
            self.app_drop.set_selected(self.app_desktops.index(name))

    def app_current(self) -> str | None:
        i = self.app_drop.get_selected()
        return self.app_desktops[i] if 0 <= i < len(self.app_desktops) else None

    def show_apps(self, desktop: str | None = None) -> None:
        if desktop in self.app_desktops:
            self.app_drop.set_selected(self.app_desktops.index(desktop))
        self.stack.set_visible_child_name("apps")
        self.app_search.grab_focus()
        if not self.apps:
            self._load_apps()

    def _load_apps(self) -> None:
        name = self.app_current()
        while (child := self.app_flow.get_first_child()) is not None:
            self.app_flow.remove(child)
        if name is None:
            return
        colour = self.model.rows[name].colour if name in self.model.rows else "#888888"
        self.app_css.load_from_data(
            f".app-tile {{ border-bottom-color: {colour}; }}"
            f".desktop-banner {{ background: alpha({colour}, 0.18); color: @window_fg_color;"
            f" border-left: 6px solid {colour}; }}".encode()
        )
        self.app_banner.set_label(f"Apps start in {name}")
        try:
            show = self.control.command(["desktop", "show", name]).get("data") or {}
        except ControlError as exc:
            self.toast(str(exc))
            return
        self.apps = appmodel.discover(appmodel.roots_for(show))
        for app in self.apps:
            self.app_flow.append(self._app_tile(app, name))

    def _app_tile(self, app: appmodel.App, desktop: str) -> Gtk.Widget:
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6)
        if app.icon and app.icon.startswith("/"):
            img = Gtk.Image.new_from_file(app.icon)
        else:
            img = Gtk.Image.new_from_icon_name(app.icon or "application-x-executable")
        img.set_pixel_size(48)
        box.append(img)
        box.append(
            Gtk.Label(
                label=app.name,
                wrap=True,
                justify=Gtk.Justification.CENTER,
                max_width_chars=14,
                lines=2,
                ellipsize=3,
            )
        )
        b = Gtk.Button(
            child=box,
            css_classes=["flat", "app-tile"],
            tooltip_text=f"Start {app.name} in {desktop}",
        )
        b.update_property([Gtk.AccessibleProperty.LABEL], [f"Start {app.name} in {desktop}"])
        b.connect("clicked", lambda *_: self.launch(app))
        b.app = app
        return b

    def _app_visible(self, child: Gtk.FlowBoxChild) -> bool:
        app = getattr(child.get_child(), "app", None)
        return app is None or app.matches(self.app_search.get_text())

    def _launch_first(self) -> None:
        for app in self.apps:
            if app.matches(self.app_search.get_text()):
                self.launch(app)
                return

    def launch(self, app: appmodel.App) -> None:
        name = self.app_current()
        if name is None:
            return
        argv = list(app.argv)
        if app.terminal:
            argv = ["foot", "--", *argv]
        self.run(["launch", name, "--", *argv], ok=f"Starting {app.name} in {name}")
