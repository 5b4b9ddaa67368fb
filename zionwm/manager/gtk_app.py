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

from zionwm.manager import gtk_probe, models  # noqa: E402
from zionwm.manager.client import Control, ControlError, EventStream  # noqa: E402
from zionwm.manager.gtk_apps import AppsPage  # noqa: E402
from zionwm.manager.gtk_desktops import DesktopsPage  # noqa: E402
from zionwm.manager.gtk_quarantine import QuarantinePage  # noqa: E402
from zionwm.manager.gtk_widgets import CSS, then_true  # noqa: E402
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
    "hibernate",
    "refusal",
]


COMPACT_WIDTH = 760  # logical pixels: below it, a desktop's row puts its usage in words under
# its name (a 1366x768 screen at 200 % is 683 wide)


class ManagerWindow(DesktopsPage, AppsPage, QuarantinePage, Adw.ApplicationWindow):
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

    def do_size_allocate(self, width: int, height: int, baseline: int) -> None:
        Adw.ApplicationWindow.do_size_allocate(self, width, height, baseline)
        compact = width < COMPACT_WIDTH
        if compact != self.compact:
            self.compact = compact
            GLib.idle_add(lambda: then_true(self._compact_changed) and False)  # not in allocation

    def _compact_changed(self) -> None:
        self._update_rows()
        # the empty quarantine's big icon would push its words out of a short window
        self.q_empty.set_icon_name(None if self.compact else "security-high-symbolic")

    def _shortcuts(self) -> None:
        ctl = Gtk.ShortcutController(scope=Gtk.ShortcutScope.GLOBAL)

        def add(trigger: str, fn: Callable[[], Any]) -> None:
            ctl.add_shortcut(
                Gtk.Shortcut(
                    trigger=Gtk.ShortcutTrigger.parse_string(trigger),
                    action=Gtk.CallbackAction.new(lambda *_: then_true(fn)),
                )
            )

        add("<Control>n", self.open_create)
        add("<Control>1", self.show_desktops)
        add("<Control>2", self.show_apps)
        add("<Control>3", self.show_quarantine)
        add("<Control>r", self.show_refusals)
        add("<Control>q", self.close)
        self.add_controller(ctl)
        # before the search field sees the key (a text field takes Ctrl+D for itself)
        early = Gtk.ShortcutController(propagation_phase=Gtk.PropagationPhase.CAPTURE)
        early.add_shortcut(
            Gtk.Shortcut(
                trigger=Gtk.ShortcutTrigger.parse_string("<Control>d"),
                action=Gtk.CallbackAction.new(lambda *_: then_true(self.favourite_first)),
            )
        )
        self.add_controller(early)

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
            if kind == "refusal":
                self.on_refusal(ev.get("payload") or {})
                continue
            if kind == "hibernate":
                self.on_hibernated(ev.get("payload") or {})
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

    def confirm(self, heading: str, body: str, action: str, fn: Callable[[], Any]) -> None:
        dlg = Adw.MessageDialog(transient_for=self, modal=True, heading=heading, body=body)
        dlg.add_response("cancel", "Cancel")
        dlg.add_response("go", action)
        dlg.set_response_appearance("go", Adw.ResponseAppearance.DESTRUCTIVE)
        dlg.set_default_response("cancel")
        dlg.connect("response", lambda _d, r: fn() if r == "go" else None)
        dlg.present()


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
