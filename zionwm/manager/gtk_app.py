"""The manager's window: GTK 4 + libadwaita drawing of the pure models, and clicks turned
into the control requests `zionctl` sends. No decision is made here that a model could make.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gtk", "4.0")
gi.require_version("Adw", "1")
from gi.repository import Adw, Gdk, Gio, GLib, Gtk  # noqa: E402

from zionwm.manager import apps as appmodel  # noqa: E402
from zionwm.manager import gtk_probe, models  # noqa: E402
from zionwm.manager.client import Control, ControlError, EventStream  # noqa: E402
from zionwm.manager.gtk_dialog import DesktopDialog, show_permissions  # noqa: E402
from zionwm.manager.quarantine import QItem  # noqa: E402

log = logging.getLogger(__name__)
APP_ID = "org.zionwm.Manager"
EVENTS = [
    "desktop-created",
    "desktop-changed",
    "desktop-deleted",
    "freeze",
    "thaw",
    "switch",
    "map",
    "unmap",
    "desktops",
    "quarantine",
]
SORT_LABELS = ("Order", "Name", "State", "CPU", "Memory")

CSS = b"""
.swatch { border-radius: 999px; min-width: 18px; min-height: 18px; }
.app-tile { padding: 12px; border-radius: 12px; border-bottom: 4px solid transparent; }
.desktop-banner { padding: 6px 12px; border-radius: 8px; font-weight: bold; }
.usage { font-feature-settings: "tnum"; }
"""


def _then_true(fn: Callable[[], object]) -> bool:
    """Run fn for a shortcut, which must say it handled the key."""
    fn()
    return True


def rgba(hex_colour: str, alpha: float = 1.0) -> tuple[float, float, float, float]:
    h = hex_colour.lstrip("#")
    try:
        return (int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255, alpha)
    except (ValueError, IndexError):
        return (0.5, 0.5, 0.5, alpha)


def swatch(colour: str, size: int = 18) -> Gtk.DrawingArea:
    """A round patch of the desktop's colour (drawn, so no CSS per desktop is needed)."""
    area = Gtk.DrawingArea(content_width=size, content_height=size, valign=Gtk.Align.CENTER)

    def draw(_a: Any, cr: Any, w: int, h: int) -> None:
        cr.set_source_rgba(*rgba(colour))
        cr.arc(w / 2, h / 2, min(w, h) / 2, 0, 6.2832)
        cr.fill()

    area.set_draw_func(draw)
    area.swatch_colour = colour
    return area


def sparkline(row: models.DesktopRow) -> Gtk.DrawingArea:
    """The last minute of CPU (line) and memory (filled, relative to its own peak)."""
    area = Gtk.DrawingArea(content_width=120, content_height=32, valign=Gtk.Align.CENTER)
    area.set_tooltip_text("CPU (line) and memory (area), the last minute")

    def draw(_a: Any, cr: Any, w: int, h: int) -> None:
        cpu = list(row.cpu_history)
        mem = list(row.memory_history)
        cr.set_source_rgba(*rgba(row.colour, 0.08))
        cr.rectangle(0, 0, w, h)
        cr.fill()
        step = w / max(1, models.HISTORY - 1)
        x0 = w - step * (len(mem) - 1) if mem else w
        peak = max(mem) if mem else 0
        if peak > 0 and len(mem) > 1:
            cr.move_to(x0, h)
            for i, v in enumerate(mem):
                cr.line_to(x0 + i * step, h - 2 - (h - 4) * v / peak)
            cr.line_to(w, h)
            cr.close_path()
            cr.set_source_rgba(*rgba(row.colour, 0.25))
            cr.fill()
        if len(cpu) > 1:
            top = max(100.0, *cpu)
            for i, v in enumerate(cpu):
                y = h - 2 - (h - 4) * v / top
                (cr.move_to if i == 0 else cr.line_to)(x0 + i * step, y)
            cr.set_source_rgba(*rgba(row.colour, 1.0))
            cr.set_line_width(1.5)
            cr.stroke()

    area.set_draw_func(draw)
    return area


class ManagerWindow(Adw.ApplicationWindow):
    def __init__(self, app: Adw.Application, control: Control, status: dict[str, Any]) -> None:
        super().__init__(application=app, title="Desktops", default_width=940, default_height=600)
        self.control = control
        self.status = status
        self.model = models.DesktopList()
        self.sort_key = "order"
        self.rows_widgets: dict[str, dict[str, Any]] = {}
        self.stream: EventStream | None = None
        self.stream_watch = 0
        self.usage_on = False
        self.q_items: list[QItem] = []
        self.q_first_action: Gtk.Button | None = None
        self.q_stream: Any = None
        self.q_watch = 0

        self.toasts = Adw.ToastOverlay()
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
        self.toasts.set_child(box)
        self.set_content(self.toasts)

        header = Adw.HeaderBar()
        self.stack = Adw.ViewStack(vexpand=True)
        title = Adw.ViewSwitcherTitle(stack=self.stack, title="Desktops")
        header.set_title_widget(title)
        new = Gtk.Button(icon_name="list-add-symbolic", tooltip_text="New desktop (Ctrl+N)")
        new.update_property([Gtk.AccessibleProperty.LABEL], ["New desktop"])
        new.connect("clicked", lambda *_: self.open_create())
        header.pack_start(new)
        info = Gtk.MenuButton(icon_name="dialog-information-symbolic", tooltip_text="Sources")
        info.set_popover(self._sources_popover())
        header.pack_end(info)
        box.append(header)
        box.append(self.stack)
        bar = Adw.ViewSwitcherBar(stack=self.stack)
        title.bind_property("title-visible", bar, "reveal", 0)
        box.append(bar)

        self.stack.add_titled_with_icon(
            self._desktops_page(), "desktops", "Desktops", "view-grid-symbolic"
        )
        self.stack.add_titled_with_icon(self._apps_page(), "apps", "Apps", "view-app-grid-symbolic")
        self.q_page = self.stack.add_titled_with_icon(
            self._quarantine_page(), "quarantine", "Quarantine", "security-high-symbolic"
        )
        self.stack.connect("notify::visible-child-name", lambda *_: self._usage_wanted())
        self.connect("map", lambda *_: self._usage_wanted())
        self.connect("unmap", lambda *_: self._usage_wanted())
        self.connect("close-request", self._on_close)

        self._shortcuts()
        self.refresh()
        self._start_stream()
        self._start_quarantine()
        GLib.timeout_add_seconds(1, self._tick)

    # ------------------------------------------------------------------ plumbing

    def _shortcuts(self) -> None:
        ctl = Gtk.ShortcutController(scope=Gtk.ShortcutScope.GLOBAL)

        def add(trigger: str, fn: Callable[[], Any]) -> None:
            ctl.add_shortcut(
                Gtk.Shortcut(
                    trigger=Gtk.ShortcutTrigger.parse_string(trigger),
                    action=Gtk.CallbackAction.new(lambda *_: _then_true(fn)),
                )
            )

        add("<Control>n", self.open_create)
        add("<Control>1", self.show_desktops)
        add("<Control>2", self.show_apps)
        add("<Control>3", self.show_quarantine)
        add("<Control>q", self.close)
        self.add_controller(ctl)

    def toast(self, text: str) -> None:
        self.toasts.add_toast(Adw.Toast(title=GLib.markup_escape_text(text), timeout=4))

    def run(self, argv: list[str], ok: str | None = None) -> dict[str, Any] | None:
        """One command; its message (or refusal) shown as a toast."""
        try:
            result = self.control.command(argv)
        except ControlError as exc:
            self.toast(str(exc))
            return None
        msg = ok or str(result.get("message") or "")
        if msg:
            self.toast(msg)
        return result

    def _start_stream(self) -> None:
        try:
            self.stream = EventStream(EVENTS)
        except ControlError as exc:
            self.toast(str(exc))
            return
        self.stream_watch = GLib.unix_fd_add_full(
            GLib.PRIORITY_DEFAULT, self.stream.fileno(), GLib.IOCondition.IN, self._on_events
        )

    def _on_events(self, *_: Any) -> bool:
        assert self.stream is not None
        redraw = structure = False
        for ev in self.stream.read():
            kind = ev.get("event")
            if kind == "quarantine":
                self._refresh_quarantine()
                continue
            redraw |= self.model.on_event(ev)
            # a new colour is drawn by rebuilding the rows (swatches keep the colour they got)
            structure |= kind in (
                "desktop-created",
                "desktop-changed",
                "desktop-deleted",
                "desktops",
            )
            if kind == "switch":
                self._follow_switch(str((ev.get("payload") or {}).get("new", "")))
        if structure:
            self.refresh()
        elif redraw:
            self._update_rows()
        if self.stream.closed:
            self.toast("zionwm stopped; this window no longer follows it")
            self.stream_watch = 0
            return False
        return True

    def _usage_wanted(self) -> None:
        """Usage samples are asked for only while the desktops list can be seen."""
        want = self.get_mapped() and self.stack.get_visible_child_name() == "desktops"
        if self.stream is None or want == self.usage_on:
            return
        (self.stream.subscribe if want else self.stream.unsubscribe)(["usage"])
        self.usage_on = want

    def _on_close(self, *_: Any) -> bool:
        if self.stream is not None:
            self.stream.close()
        if self.q_stream is not None:
            self.q_stream.close()
        return False

    def _tick(self) -> bool:
        if self.stack.get_visible_child_name() == "quarantine" and self.q_items:
            self._draw_quarantine()  # the hold countdowns
        return True

    def _sources_popover(self) -> Gtk.Popover:
        pop = Gtk.Popover()
        self.sources_label = Gtk.Label(
            xalign=0,
            wrap=True,
            max_width_chars=60,
            selectable=True,
            margin_top=6,
            margin_bottom=6,
            margin_start=6,
            margin_end=6,
        )
        pop.set_child(self.sources_label)
        return pop

    # ------------------------------------------------------------------ desktops page

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
                self._note_sources(show)
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
        for row in self.model.sorted(self.sort_key, self.sort_key in ("cpu", "memory")):
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
            ws["row"].set_subtitle(GLib.markup_escape_text(row.summary))
            ws["usage"].set_label(row.usage_text if self.usage_on else "")
            ws["graph"].queue_draw()
            icon = (
                "media-playback-start-symbolic" if row.frozen else "media-playback-pause-symbolic"
            )
            text = f"Thaw {name}" if row.frozen else f"Freeze {name}"
            ws["freeze"].set_icon_name(icon)
            ws["freeze"].set_tooltip_text(text)
            ws["freeze"].update_property([Gtk.AccessibleProperty.LABEL], [text])

    def confirm(self, heading: str, body: str, action: str, fn: Callable[[], Any]) -> None:
        dlg = Adw.MessageDialog(transient_for=self, modal=True, heading=heading, body=body)
        dlg.add_response("cancel", "Cancel")
        dlg.add_response("go", action)
        dlg.set_response_appearance("go", Adw.ResponseAppearance.DESTRUCTIVE)
        dlg.set_default_response("cancel")
        dlg.connect("response", lambda _d, r: fn() if r == "go" else None)
        dlg.present()

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

    # ------------------------------------------------------------------ apps page

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

    # ------------------------------------------------------------------ quarantine page

    def _quarantine_page(self) -> Gtk.Widget:
        scroll = Gtk.ScrolledWindow(hscrollbar_policy=Gtk.PolicyType.NEVER)
        clamp = Adw.Clamp(maximum_size=960, margin_top=18, margin_bottom=18)
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=12)
        box.append(Gtk.Label(label="Quarantine", xalign=0, css_classes=["title-2"]))
        self.q_empty = Adw.StatusPage(
            icon_name="security-high-symbolic",
            title="Nothing in quarantine",
            description="Downloads and files sent between desktops wait here while they are "
            "audited and held.",
        )
        box.append(self.q_empty)
        self.q_list = Gtk.ListBox(selection_mode=Gtk.SelectionMode.NONE, css_classes=["boxed-list"])
        box.append(self.q_list)
        clamp.set_child(box)
        scroll.set_child(clamp)
        return scroll

    def show_quarantine(self) -> None:
        """The quarantine page, with the keyboard on its first item."""
        self.stack.set_visible_child_name("quarantine")
        if self.q_first_action is not None:
            self.q_first_action.grab_focus()

    def _quarantine_client(self) -> Any:
        from zionwm.quarantine.client import QuarantineClient  # noqa: PLC0415

        return QuarantineClient(timeout=10.0)

    def _start_quarantine(self) -> None:
        from zionwm.quarantine.client import EventStream as QStream  # noqa: PLC0415

        try:
            self.q_stream = QStream()
        except Exception:  # not running (yet, or restarting): try again in a while
            self.q_stream = None
            GLib.timeout_add_seconds(5, self._restart_quarantine)
        else:
            self.q_watch = GLib.unix_fd_add_full(
                GLib.PRIORITY_DEFAULT,
                self.q_stream.fileno(),
                GLib.IOCondition.IN,
                self._on_q_events,
            )
        self._refresh_quarantine()

    def _restart_quarantine(self) -> bool:
        self._start_quarantine()
        return False

    def _on_q_events(self, *_: Any) -> bool:
        events = self.q_stream.read_events()
        kept = [e for e in events if e.get("event") == "rejected"]
        for e in kept:
            name = (e.get("item") or {}).get("name", "a file")
            self.toast(f"Quarantine kept {name}: see the Quarantine page")
        self._refresh_quarantine()
        if self.q_stream.closed:
            self.q_stream.close()
            self.q_stream = None
            GLib.timeout_add_seconds(2, self._restart_quarantine)
            return False
        return True

    def _refresh_quarantine(self) -> None:
        try:
            with self._quarantine_client() as c:
                items = c.request("list").get("items", [])
                detailed = []
                for it in items:
                    try:
                        detailed.append(c.request("show", id=it["id"])["item"])
                    except Exception:
                        detailed.append(it)
        except Exception as exc:  # no service: the page says so
            self.q_items = []
            self.q_empty.set_title("The quarantine service is not running")
            self.q_empty.set_description(str(exc))
            self._draw_quarantine()
            return
        self.q_items = [QItem.from_json(it) for it in detailed]
        self.model.set_pending(models.pending_by_source(detailed))
        self._update_rows()
        self._draw_quarantine()

    def _draw_quarantine(self) -> None:
        while (child := self.q_list.get_first_child()) is not None:
            self.q_list.remove(child)
        self.q_empty.set_visible(not self.q_items)
        self.q_list.set_visible(bool(self.q_items))
        self.q_first_action = None
        self.q_page.set_badge_number(len(self.q_items))
        self.q_page.set_needs_attention(any(not i.clean for i in self.q_items))
        now = time.time()
        for it in self.q_items:
            row = Adw.ExpanderRow(
                title=GLib.markup_escape_text(it.name),
                subtitle=GLib.markup_escape_text(it.subtitle(now)),
            )
            src = self.model.rows.get(it.source)
            row.add_prefix(swatch(src.colour if src else "#888888"))
            for text in (
                [it.meaning]
                + ([f"Origin: {it.origin_url}"] if it.origin_url else [])
                + (list(it.findings) or ["No findings"])
                + ([f"Reason: {it.reason}"] if it.reason else [])
            ):
                row.add_row(Adw.ActionRow(title=GLib.markup_escape_text(text)))
            # add_action puts each button before the last: added in reverse, they read (and
            # take the keyboard) as Release, Rescan, Delete
            for label, fn, style in (
                ("Delete", lambda _b, i=it: self.confirm_q_delete(i), "flat"),
                ("Rescan", lambda _b, i=it: self.q_action("rescan", i), "flat"),
                (
                    "Release",
                    lambda _b, i=it: self.release(i),
                    "suggested-action" if it.clean else "flat",
                ),
            ):
                b = Gtk.Button(label=label, valign=Gtk.Align.CENTER, css_classes=[style])
                b.update_property([Gtk.AccessibleProperty.LABEL], [f"{label} {it.name}"])
                b.connect("clicked", fn)
                row.add_action(b)
                if label == "Release" and self.q_first_action is None:
                    self.q_first_action = b
            self.q_list.append(row)

    def q_action(self, action: str, item: QItem, **extra: Any) -> None:
        try:
            with self._quarantine_client() as c:
                got = c.request(action, id=item.id, **extra)["item"]
        except Exception as exc:
            self.toast(str(exc))
            return
        self.toast(f"{item.name}: {got.get('state')}")
        self._refresh_quarantine()

    def confirm_q_delete(self, item: QItem) -> None:
        self.confirm(
            f"Delete {item.name}?",
            "Its content is removed from the quarantine; its record and audit report stay.",
            "Delete",
            lambda: self.q_action("delete", item),
        )

    def release(self, item: QItem) -> None:
        if not item.needs_confirmation:
            self.q_action("release", item)
            return
        heading, body = item.release_question()
        self.confirm(
            heading,
            body,
            "Release anyway",
            lambda: self.q_action("release", item, i_understand=True),
        )


def _fit_to_monitor(win: Gtk.Window) -> None:
    """No bigger than 90 % of the (first) monitor in logical pixels, so the window stays
    whole on a small screen or at 200 % scale; the layout adapts below 600 px wide."""
    monitors = Gdk.Display.get_default().get_monitors()
    monitor = monitors.get_item(0) if monitors.get_n_items() else None
    if monitor is None:
        return
    geo = monitor.get_geometry()
    w, h = win.get_default_size()
    win.set_default_size(min(w, int(geo.width * 0.9)), min(h, int(geo.height * 0.85)))


def run(control: Control, status: dict[str, Any], started: float, argv: list[str]) -> int:
    GLib.set_prgname(APP_ID)  # the Wayland app_id, and the .desktop file it matches
    GLib.set_application_name("Desktops")
    Adw.init()
    provider = Gtk.CssProvider()
    provider.load_from_data(CSS)
    app = Adw.Application(application_id=APP_ID, flags=Gio.ApplicationFlags.NON_UNIQUE)

    def activate(_app: Adw.Application) -> None:
        Gtk.StyleContext.add_provider_for_display(
            Gdk.Display.get_default(), provider, Gtk.STYLE_PROVIDER_PRIORITY_APPLICATION
        )
        win = ManagerWindow(app, control, status)
        _fit_to_monitor(win)
        icon_dir = Path(__file__).parent / "data"
        Gtk.IconTheme.get_for_display(Gdk.Display.get_default()).add_search_path(str(icon_dir))
        win.set_icon_name(APP_ID)

        def first_frame(clock: Any) -> None:
            clock.disconnect(handle[0])
            log.info("first frame %.0f ms after start", (time.monotonic() - started) * 1000)

        gtk_probe.install(app)
        win.present()
        clock = win.get_frame_clock()
        handle = [clock.connect("after-paint", first_frame)] if clock else [0]

    app.connect("activate", activate)
    return int(app.run([]))
