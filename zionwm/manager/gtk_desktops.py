"""The desktops page: one row per desktop with its live usage, its actions, and the
deleted desktops that can be restored."""

from __future__ import annotations

import gi

gi.require_version("Gtk", "4.0")
gi.require_version("Adw", "1")
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from gi.repository import Adw, Gio, GLib, Gtk  # noqa: E402

from zionwm.manager import models  # noqa: E402
from zionwm.manager.client import ControlError  # noqa: E402
from zionwm.manager.gtk_dialog import DesktopDialog, show_permissions  # noqa: E402
from zionwm.manager.gtk_refusals import RefusalsPart  # noqa: E402
from zionwm.manager.gtk_widgets import sparkline, swatch  # noqa: E402

SORT_LABELS = ("Order", "Name", "State", "CPU", "Memory", "Disk use of the home")


class DesktopsPage(RefusalsPart):
    def _desktops_page(self) -> Gtk.Widget:
        scroll = Gtk.ScrolledWindow(hscrollbar_policy=Gtk.PolicyType.NEVER)
        clamp = Adw.Clamp(maximum_size=960, margin_top=18, margin_bottom=18)
        clamp.set_margin_start(12)
        clamp.set_margin_end(12)
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=12)
        top = Gtk.Box(spacing=8)
        heading = Gtk.Label(label="Desktops", xalign=0, hexpand=True, css_classes=["title-2"])
        top.append(heading)
        top.append(Gtk.Label(label="Sort by", css_classes=["dim-label"]))
        self.sort_drop = Gtk.DropDown.new_from_strings(list(SORT_LABELS))
        self.sort_drop.update_property([Gtk.AccessibleProperty.LABEL], ["Sort by"])
        self.sort_drop.connect("notify::selected", self._on_sort)
        top.append(self.sort_drop)
        box.append(top)
        self.list = Gtk.ListBox(selection_mode=Gtk.SelectionMode.NONE, css_classes=["boxed-list"])
        box.append(self.list)
        box.append(self._refusals_group())
        self.deleted_group = Adw.PreferencesGroup(
            title="Deleted desktops",
            description="Their homes and files are kept aside until you restore them.",
            margin_top=12,
        )
        box.append(self.deleted_group)
        self.deleted_rows: list[Gtk.Widget] = []
        clamp.set_child(box)
        scroll.set_child(clamp)
        return scroll

    def show_desktops(self) -> None:
        """The desktops list, with the keyboard on its first row."""
        self.stack.set_visible_child_name("desktops")
        self.measure_homes(force=True)  # asked for: walk the homes again, off this thread
        first = self.list.get_row_at_index(0)
        if first is not None:
            first.grab_focus()

    def _on_sort(self, *_: Any) -> None:
        self.sort_key = models.SORT_KEYS[self.sort_drop.get_selected()]
        self._rebuild_rows()

    def refresh(self) -> None:
        try:
            self.model.load(self.control.request("desktops"))
        except ControlError as exc:
            self.toast(str(exc))
            return
        for row in self.model.rows.values():
            if not row.settings:
                try:
                    show = self.control.command(["desktop", "show", row.name]).get("data") or {}
                except ControlError:
                    continue
                row.settings = {s["key"]: s["value"] for s in show.get("settings", [])}
                row.origin = str(show.get("origin", row.origin))
                home = (show.get("paths") or {}).get("home")
                if home:
                    self.home_paths[row.name] = Path(str(home))
                self._note_sources(show)
        for gone in set(self.home_paths) - set(self.model.rows):
            del self.home_paths[gone]
        self.measure_homes()
        self.refresh_refusals()
        self._rebuild_rows()
        self._fill_app_desktops()
        self._refresh_deleted()

    def _refresh_deleted(self) -> None:
        for w in self.deleted_rows:
            self.deleted_group.remove(w)
        self.deleted_rows.clear()
        try:
            data = self.control.command(["desktop", "deleted"]).get("data") or {}
        except ControlError:
            data = {}
        items = list(data.get("deleted", []))
        self.deleted_group.set_visible(bool(items))
        for it in items:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(it["deleted_at"])))
            row = Adw.ActionRow(
                title=GLib.markup_escape_text(str(it["name"])),
                subtitle=GLib.markup_escape_text(f"deleted {when}"),
            )
            b = Gtk.Button(label="Restore", valign=Gtk.Align.CENTER)
            b.update_property([Gtk.AccessibleProperty.LABEL], [f"Restore {it['name']}"])
            b.connect("clicked", lambda *_, i=str(it["id"]): self.run(["desktop", "restore", i]))
            row.add_suffix(b)
            self.deleted_group.add(row)
            self.deleted_rows.append(row)

    def _note_sources(self, show: dict[str, Any]) -> None:
        paths = show.get("paths") or {}
        config = str(show.get("config_line") or "").rsplit(":", 1)[0]
        lines = []
        if config:
            lines.append(f"Config file: {config}")
        if paths.get("desktops_file"):
            lines.append(f"Desktops file: {paths['desktops_file']}")
        lines.append(f"Control socket: {self.control.path}")
        lines.append(f"Host Wayland socket: {self.status.get('host_socket')}")
        old = self.sources_label.get_label()
        if config or not old:
            self.sources_label.set_label("\n".join(lines))

    def _rebuild_rows(self) -> None:
        while (child := self.list.get_first_child()) is not None:
            self.list.remove(child)
        self.rows_widgets.clear()
        for row in self.model.sorted(self.sort_key, self.sort_key in ("cpu", "memory", "disk")):
            self.list.append(self._desktop_row(row))
        self._update_rows()

    def _desktop_row(self, row: models.DesktopRow) -> Gtk.Widget:
        # activating a row (click, Return) opens its settings, as in GNOME Settings
        w = Adw.ActionRow(title=GLib.markup_escape_text(row.name), activatable=True)
        w.set_tooltip_text(f"Tailor {row.name}")
        w.connect("activated", lambda *_: self.open_tailor(row.name))
        w.add_prefix(swatch(row.colour, 22))
        usage = Gtk.Label(css_classes=["usage", "dim-label", "caption"], xalign=1)
        graph = sparkline(row)
        w.add_suffix(usage)
        w.add_suffix(graph)
        go = Gtk.Button(
            icon_name="go-jump-symbolic",
            valign=Gtk.Align.CENTER,
            tooltip_text=f"Switch to {row.name}",
            css_classes=["flat"],
        )
        go.update_property([Gtk.AccessibleProperty.LABEL], [f"Switch to {row.name}"])
        go.connect("clicked", lambda *_: self.run(["switch", row.name]))
        w.add_suffix(go)
        freeze = Gtk.Button(valign=Gtk.Align.CENTER, css_classes=["flat"])
        freeze.connect(
            "clicked", lambda *_: self.run(["thaw" if row.frozen else "freeze", row.name])
        )
        w.add_suffix(freeze)
        more = Gtk.MenuButton(
            icon_name="view-more-symbolic",
            valign=Gtk.Align.CENTER,
            css_classes=["flat"],
            tooltip_text="More actions",
        )
        more.set_popover(self._actions_popover(row))
        w.add_suffix(more)
        self.rows_widgets[row.name] = {"row": w, "usage": usage, "graph": graph, "freeze": freeze}
        return w

    def _actions_popover(self, row: models.DesktopRow) -> Gtk.Popover:
        pop = Gtk.Popover()
        box = Gtk.Box(
            orientation=Gtk.Orientation.VERTICAL,
            spacing=2,
            margin_top=6,
            margin_bottom=6,
            margin_start=6,
            margin_end=6,
        )
        n = row.name

        def item(label: str, fn: Callable[[], Any], danger: bool = False) -> None:
            b = Gtk.Button(label=label, css_classes=["flat"] + (["error"] if danger else []))
            b.get_child().set_xalign(0)

            def clicked(*_: Any) -> None:
                pop.popdown()
                fn()

            b.connect("clicked", clicked)
            box.append(b)

        item("Tailor…", lambda: self.open_tailor(n))
        item("Effective permissions", lambda: self.open_permissions(n))
        item("Apps", lambda: self.show_apps(n))
        box.append(Gtk.Separator())
        item("Hibernate…", lambda: self.hibernate(n))
        box.append(Gtk.Separator())
        item("Network on", lambda: self.run(["net", n, "on"]))
        item("Network on for 15 minutes", lambda: self.run(["net", n, "on", "--for", "15m"]))
        item("Network off", lambda: self.run(["net", n, "off"]))
        box.append(Gtk.Separator())
        item("Send a file…", lambda: self.send_file(n))
        item("Clone…", lambda: self.open_create(clone=n))
        item(
            "Stop all programs",
            lambda: self.confirm(
                f"Stop every program of {n}?",
                "Unsaved work in them is lost.",
                "Stop",
                lambda: self.run(["kill", n]),
            ),
            danger=True,
        )
        item("Delete…", lambda: self.confirm_delete(n), danger=True)
        pop.set_child(box)
        return pop

    def _update_rows(self) -> None:
        for name, ws in self.rows_widgets.items():
            row = self.model.rows.get(name)
            if row is None:
                continue
            ws["row"].set_title(GLib.markup_escape_text(row.name))
            # narrow (a small screen, or 200 %): the usage joins the subtitle, whose words
            # then have the row's whole width instead of wrapping beside it
            usage = row.usage_text if self.usage_on else ""
            subtitle = row.summary + (f" · {usage}" if self.compact and usage else "")
            subtitle = subtitle.replace(" % ", "\u00a0% ")  # "12 %" never split
            ws["row"].set_subtitle(GLib.markup_escape_text(subtitle))
            ws["usage"].set_label(usage)
            ws["usage"].set_visible(not self.compact)
            ws["graph"].queue_draw()
            icon = (
                "media-playback-start-symbolic" if row.frozen else "media-playback-pause-symbolic"
            )
            text = f"Thaw {name}" if row.frozen else f"Freeze {name}"
            ws["freeze"].set_icon_name(icon)
            ws["freeze"].set_tooltip_text(text)
            ws["freeze"].update_property([Gtk.AccessibleProperty.LABEL], [text])

    def confirm_delete(self, name: str) -> None:
        self.confirm(
            f"Delete {name}?",
            "Its programs are stopped. Its home and files are kept aside and can be restored "
            f"(zionctl desktop restore {name}).",
            "Delete",
            lambda: self._delete(name),
        )

    def _delete(self, name: str) -> None:
        if self.run(["desktop", "delete", name, "--stop"], ok="") is None:
            return
        toast = Adw.Toast(title=f"Deleted {name}; its data is kept", button_label="Undo")
        toast.connect("button-clicked", lambda *_: self.run(["desktop", "restore", name]))
        self.toasts.add_toast(toast)

    def open_create(self, clone: str | None = None) -> None:
        base = self.model.rows[clone].settings if clone and clone in self.model.rows else None
        DesktopDialog(self, None, base, clone).present()

    def open_tailor(self, name: str) -> None:
        try:
            show = self.control.command(["desktop", "show", name]).get("data") or {}
        except ControlError as exc:
            self.toast(str(exc))
            return
        settings = {s["key"]: s["value"] for s in show.get("settings", [])}
        layers = {s["key"]: s["layer"] for s in show.get("settings", [])}
        DesktopDialog(self, name, settings, None, layers, str(show.get("origin", ""))).present()

    def send_file(self, source: str) -> None:
        """Pick a file in the source desktop's home (as the host sees it), then the desktop
        it goes to; it travels through the quarantine's audit, as `zionctl send` does."""
        try:
            show = self.control.command(["desktop", "show", source]).get("data") or {}
        except ControlError as exc:
            self.toast(str(exc))
            return
        home = str((show.get("paths") or {}).get("home", ""))
        chooser = Gtk.FileChooserDialog(
            title=f"Send a file from {source}",
            transient_for=self,
            modal=True,
            action=Gtk.FileChooserAction.OPEN,
        )
        chooser.add_button("Cancel", Gtk.ResponseType.CANCEL)
        chooser.add_button("Choose", Gtk.ResponseType.ACCEPT)
        if home and Path(home).is_dir():
            chooser.set_current_folder(Gio.File.new_for_path(home))

        def chosen(dlg: Gtk.FileChooserDialog, response: int) -> None:
            picked = dlg.get_file() if response == Gtk.ResponseType.ACCEPT else None
            dlg.destroy()
            if picked is not None and picked.get_path():
                self._send_to(source, str(picked.get_path()))

        chooser.connect("response", chosen)
        chooser.present()

    def _send_to(self, source: str, path: str) -> None:
        others = [r.name for r in self.model.sorted("order") if r.name != source]
        dlg = Adw.MessageDialog(
            transient_for=self,
            modal=True,
            heading=f"Send {Path(path).name} to…",
            body=f"It is audited and held like a download from {source}, then delivered "
            "into the chosen desktop's Incoming folder.",
        )
        dlg.add_response("cancel", "Cancel")
        for name in others:
            dlg.add_response(name, name)
        dlg.set_default_response("cancel")

        def go(_d: Any, response: str) -> None:
            if response not in others:
                return
            try:
                with self._quarantine_client() as c:
                    reply = c.call("send", **{"from": source, "to": response, "paths": [path]})
            except Exception as exc:
                self.toast(str(exc))
                return
            for r in reply.get("results", []) or [{"ok": False, "error": reply.get("error")}]:
                self.toast(
                    f"{Path(path).name}: in quarantine as item {r['id']}"
                    if r.get("ok")
                    else f"{Path(path).name}: refused: {r.get('error')}"
                )

        dlg.connect("response", go)
        dlg.present()

    def open_permissions(self, name: str) -> None:
        try:
            show = self.control.command(["desktop", "show", name]).get("data") or {}
        except ControlError as exc:
            self.toast(str(exc))
            return
        show_permissions(self, show)
