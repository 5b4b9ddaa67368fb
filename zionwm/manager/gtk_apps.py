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
from zionwm.manager.favourites import Favourites  # noqa: E402
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
        self.app_flow.set_sort_func(self._app_order)
        self.favourites = Favourites()
        self.app_stars: dict[str, Gtk.Button] = {}
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
        self.app_search.select_region(0, -1)  # what is typed next replaces the last search
        if not self.apps:
            self._load_apps()

    def _load_apps(self) -> None:
        name = self.app_current()
        self.app_stars.clear()
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
        # GTK 4.8 restyles only new widgets after a provider is reloaded: the banner, which
        # stays, is given its class again so it takes the new desktop's colour
        self.app_banner.remove_css_class("desktop-banner")
        self.app_banner.add_css_class("desktop-banner")
        self.app_banner.set_label(f"Apps start in {name}")
        try:
            show = self.control.command(["desktop", "show", name]).get("data") or {}
        except ControlError as exc:
            self.toast(str(exc))
            return
        self.apps = appmodel.discover(appmodel.roots_for(show))
        for app in self.apps:
            self.app_flow.append(self._app_tile(app, name))

    def _app_order(self, a: Gtk.FlowBoxChild, b: Gtk.FlowBoxChild) -> int:
        """Favourites of the chosen desktop first (in the order they were marked), then the
        rest in the order of the list (by name)."""
        name = self.app_current() or ""

        def key(child: Gtk.FlowBoxChild) -> tuple[int, int]:
            app = getattr(child.get_child(), "app", None)
            if app is None:
                return (1 << 30, 0)
            return (self.favourites.rank(name, app.id), self.apps.index(app))

        ka, kb = key(a), key(b)
        return (ka > kb) - (ka < kb)

    def toggle_favourite(self, app: appmodel.App, star: Gtk.Button) -> None:
        name = self.app_current()
        if name is None:
            return
        try:
            on = self.favourites.toggle(name, app.id)
        except OSError as exc:
            self.toast(f"Favourites not saved: {exc}")
            return
        self._style_star(star, app, name, on)
        self.app_flow.invalidate_sort()

    def _style_star(self, star: Gtk.Button, app: appmodel.App, desktop: str, on: bool) -> None:
        star.set_icon_name("starred-symbolic" if on else "non-starred-symbolic")
        text = (
            f"Remove {app.name} from the favourites of {desktop}"
            if on
            else f"Add {app.name} to the favourites of {desktop}"
        )
        star.set_tooltip_text(text)
        star.update_property([Gtk.AccessibleProperty.LABEL], [text])

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
        fav = self.favourites.is_favourite(desktop, app.id)
        star = Gtk.Button(
            css_classes=["flat", "circular", "star"],
            halign=Gtk.Align.END,
            valign=Gtk.Align.START,
        )
        self._style_star(star, app, desktop, fav)
        star.connect("clicked", lambda *_: self.toggle_favourite(app, star))
        self.app_stars[app.id] = star
        tile = Gtk.Overlay(child=b)
        tile.add_overlay(star)
        tile.app = app
        return tile

    def _app_visible(self, child: Gtk.FlowBoxChild) -> bool:
        app = getattr(child.get_child(), "app", None)
        return app is None or app.matches(self.app_search.get_text())

    def _first_shown(self) -> appmodel.App | None:
        """The first app the page shows for the search (favourites first)."""
        name = self.app_current() or ""
        query = self.app_search.get_text()
        shown = [a for a in self.apps if a.matches(query)]
        shown.sort(key=lambda a: (self.favourites.rank(name, a.id), self.apps.index(a)))
        return shown[0] if shown else None

    def _launch_first(self) -> None:
        """Return in the search field: start the first app shown."""
        app = self._first_shown()
        if app is not None:
            self.launch(app)

    def favourite_first(self) -> None:
        """Ctrl+D on the apps page: mark (or unmark) the first app shown as a favourite."""
        if self.stack.get_visible_child_name() != "apps":
            return
        app = self._first_shown()
        star = self.app_stars.get(app.id) if app is not None else None
        if app is not None and star is not None:
            self.toggle_favourite(app, star)

    def launch(self, app: appmodel.App) -> None:
        name = self.app_current()
        if name is None:
            return
        argv = list(app.argv)
        if app.terminal:
            argv = ["foot", "--", *argv]
        self.run(["launch", name, "--", *argv], ok=f"Starting {app.name} in {name}")
