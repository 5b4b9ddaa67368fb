"""The create / tailor dialog and the effective-permissions view.

Every field is a row whose subtitle says what the setting does; a refused value puts the
validator's words in that row's subtitle, in red. The words sent are `DesktopForm`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gi

gi.require_version("Gtk", "4.0")
gi.require_version("Adw", "1")
from gi.repository import Adw, Gdk, GLib, Gtk  # noqa: E402

from zionwm.desktops_model import SETTINGS  # noqa: E402
from zionwm.manager import form as formmodel  # noqa: E402
from zionwm.manager.client import ControlError  # noqa: E402

FREEZE_CHOICES = [
    ("never", "Never"),
    ("30s", "30 seconds"),
    ("1m", "1 minute"),
    ("5m", "5 minutes"),
    ("15m", "15 minutes"),
    ("1h", "1 hour"),
]
NETWORK_LABELS = ["No network", "Full network", "Only these hosts"]
LAYER_NAMES = {
    "default": "built-in default",
    "config.py": "config file",
    "run-time": "changed here",
    "grant": "temporary grant",
    "template": "template",
}


def _then_true(fn: Callable[[], object]) -> bool:
    """Run fn for a shortcut, which must say it handled the key."""
    fn()
    return True


def _esc(text: str) -> str:
    return GLib.markup_escape_text(text)


class DesktopDialog(Adw.Window):
    """Create (name None) or tailor (name given) a desktop."""

    def __init__(
        self,
        parent: Any,
        name: str | None,
        base: dict[str, str] | None,
        clone: str | None,
        layers: dict[str, str] | None = None,
        origin: str = "",
    ) -> None:
        super().__init__(transient_for=parent, modal=True, default_width=600, default_height=560)
        self.parent = parent
        self.editing = name
        self.clone = clone
        self.current = dict(base or {})
        self.layers = dict(layers or {})
        self.origin = origin
        self.form = (
            formmodel.DesktopForm.from_settings(name or "", self.current)
            if base
            else formmodel.DesktopForm()
        )
        if clone:
            self.form.name = f"{clone}-copy"
        self.rows: dict[str, Adw.ActionRow] = {}
        self.inputs: dict[str, Gtk.Widget] = {}
        self.hints: dict[str, str] = {}
        self.machine = formmodel.machine()
        self.set_title(f"Tailor {name}" if name else (f"Clone {clone}" if clone else "New desktop"))

        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
        header = Adw.HeaderBar(show_end_title_buttons=False, show_start_title_buttons=False)
        cancel = Gtk.Button(label="Cancel")
        cancel.connect("clicked", lambda *_: self.close())
        header.pack_start(cancel)
        self.ok = Gtk.Button(label="Apply" if name else "Create", css_classes=["suggested-action"])
        self.ok.connect("clicked", lambda *_: self.submit())
        header.pack_end(self.ok)
        box.append(header)
        self.banner = Gtk.Label(
            wrap=True,
            xalign=0,
            visible=False,
            css_classes=["error"],
            margin_start=18,
            margin_end=18,
            margin_top=6,
        )
        box.append(self.banner)
        scroll = Gtk.ScrolledWindow(vexpand=True, hscrollbar_policy=Gtk.PolicyType.NEVER)
        page = Adw.PreferencesPage()
        scroll.set_child(page)
        box.append(scroll)
        self.set_content(box)
        self._build(page)
        if not self.editing:
            # once shown: a focus set before mapping may be replaced by the first button's
            self.set_focus(self.name_entry)
            self.connect("map", lambda *_: self.name_entry.grab_focus())

        keys = Gtk.ShortcutController()
        keys.add_shortcut(
            Gtk.Shortcut(
                trigger=Gtk.ShortcutTrigger.parse_string("<Control>Return"),
                action=Gtk.CallbackAction.new(lambda *_: _then_true(self.submit)),
            )
        )
        keys.add_shortcut(
            Gtk.Shortcut(
                trigger=Gtk.ShortcutTrigger.parse_string("Escape"),
                action=Gtk.CallbackAction.new(lambda *_: _then_true(self.close)),
            )
        )
        self.add_controller(keys)

    # -- building --

    def _row(
        self,
        group: Adw.PreferencesGroup,
        key: str,
        title: str,
        hint: str,
        widget: Gtk.Widget | None = None,
    ) -> Adw.ActionRow:
        hint = self._hint(key, hint)
        row = Adw.ActionRow(title=_esc(title), subtitle=_esc(hint))
        if widget is not None:
            widget.set_valign(Gtk.Align.CENTER)
            row.add_suffix(widget)
            row.set_activatable_widget(widget)
            self.inputs[key] = widget
            widget.update_property([Gtk.AccessibleProperty.LABEL], [title])
        group.add(row)
        self.rows[key] = row
        self.hints[key] = hint
        return row

    def _hint(self, key: str, hint: str) -> str:
        """A field's help, plus when a change applies and which layer sets it now."""
        if not self.editing or key not in SETTINGS:
            return hint
        if not SETTINGS[key].live:
            hint += " Applies when its programs next start."
        layer = self.layers.get(key)
        if layer and layer != "default":
            hint += f" Now set by: {LAYER_NAMES.get(layer, layer)}."
        return hint

    def _switch(self, group: Adw.PreferencesGroup, key: str, title: str, hint: str) -> None:
        sw = Gtk.Switch(active=self.form.flag(key))
        sw.connect("notify::active", lambda s, *_: self.form.set_flag(key, s.get_active()))
        self._row(group, key, title, hint, sw)

    def _combo(
        self,
        group: Adw.PreferencesGroup,
        key: str,
        title: str,
        hint: str,
        choices: list[tuple[str, str]],
        on: Callable[[str], None],
    ) -> Adw.ComboRow:
        hint = self._hint(key, hint)
        row = Adw.ComboRow(title=_esc(title), subtitle=_esc(hint))
        row.set_model(Gtk.StringList.new([label for _v, label in choices]))
        current = self.form.values.get(key, "")
        values = [v for v, _l in choices]
        row.set_selected(values.index(current) if current in values else 0)
        row.connect("notify::selected", lambda r, *_: on(values[r.get_selected()]))
        group.add(row)
        self.rows[key] = row
        self.hints[key] = hint
        return row

    def _slider(
        self,
        group: Adw.PreferencesGroup,
        key: str,
        title: str,
        hint: str,
        top: int,
        step: int,
        value: int,
        shown: Callable[[int], str],
        store: Callable[[int], str],
    ) -> None:
        scale = Gtk.Scale.new_with_range(Gtk.Orientation.HORIZONTAL, 0, top, step)
        scale.set_size_request(220, -1)
        scale.set_value(value)
        scale.set_draw_value(False)
        label = Gtk.Label(width_chars=10, xalign=1, css_classes=["dim-label", "numeric"])

        def changed(*_: Any) -> None:
            v = int(scale.get_value())
            label.set_label(shown(v))
            self.form.values[key] = store(v)

        scale.connect("value-changed", changed)
        label.set_label(shown(value))
        box = Gtk.Box(spacing=6)
        box.append(scale)
        box.append(label)
        row = self._row(group, key, title, hint, None)
        row.add_suffix(box)
        scale.update_property([Gtk.AccessibleProperty.LABEL], [title])

    def _build(self, page: Adw.PreferencesPage) -> None:
        f = self.form
        overridden = [k for k, layer in self.layers.items() if layer == "run-time"]
        if self.editing and self.origin == "config.py":
            g = Adw.PreferencesGroup(
                title="Declared in your config file",
                description="Every setting may be changed here: a change is kept beside the "
                "config file as a run-time override, which the config file never loses.",
            )
            page.add(g)
            if overridden:
                reset = Gtk.Button(label="Use the config file again", valign=Gtk.Align.CENTER)
                reset.connect("clicked", lambda *_: self._unset(overridden))
                row = Adw.ActionRow(title="Run-time changes", subtitle=_esc(", ".join(overridden)))
                row.add_suffix(reset)
                g.add(row)
        g = Adw.PreferencesGroup(
            title="Identity",
            description="How you recognise it: its colour frames every window it shows.",
        )
        page.add(g)
        if self.editing:
            self._row(g, formmodel.NAME_FIELD, "Name", self.editing)
        else:
            self.name_entry = Gtk.Entry(
                text=f.name, placeholder_text="e.g. banking", width_chars=20
            )
            self.name_entry.connect("changed", lambda e: setattr(f, "name", e.get_text()))
            self.name_entry.connect("activate", lambda *_: self.submit())
            self._row(
                g,
                formmodel.NAME_FIELD,
                "Name",
                "Lower-case letters, digits, '-' and '_'.",
                self.name_entry,
            )
        colour = Gtk.ColorButton(rgba=self._rgba(f.values.get("colour", "")))
        colour.connect("color-set", self._on_colour)
        if not f.values.get("colour", "").startswith("#") or (not self.editing and not self.clone):
            f.values["colour"] = self._free_colour()
            colour.set_rgba(self._rgba(f.values["colour"]))
        self._row(g, "colour", "Colour", "Frames, strip and app tiles use it.", colour)

        g = Adw.PreferencesGroup(title="Software")
        page.add(g)
        from zionwm.isolation.templates import store as templates  # noqa: PLC0415

        try:
            names = [t.name for t in templates.list_templates()]
        except Exception:
            names = []
        choices = [("none", "This computer's system")] + [(n, f"Template {n}") for n in names]
        self._combo(
            g,
            "template",
            "System",
            "Which /usr its programs see.",
            choices,
            lambda v: f.values.__setitem__("template", v),
        )
        self._switch(
            g, "x11", "X11 programs", "An Xwayland of its own, for programs that need X11."
        )
        self._switch(
            g,
            "writable_usr",
            "Writable /usr",
            "Programs may install software into a layer of its own.",
        )

        g = Adw.PreferencesGroup(title="Privacy")
        page.add(g)
        self._switch(g, "ephemeral", "Forget everything", "A fresh, empty home every session.")
        modes = list(formmodel.NETWORK_MODES)
        net = Adw.ComboRow(title="Network", subtitle=_esc("What it may reach."))
        net.set_model(Gtk.StringList.new(NETWORK_LABELS))
        net.set_selected(modes.index(f.network_mode) if f.network_mode in modes else 0)
        g.add(net)
        self.rows["network"] = net
        self.hints["network"] = "What it may reach."
        self.hosts_entry = Gtk.Entry(
            text=", ".join(f.hosts),
            hexpand=True,
            placeholder_text="mybank.example:443, *.example.org",
        )
        hosts_row = self._row(
            g,
            formmodel.HOSTS_FIELD,
            "Allowed hosts",
            "Comma-separated: host, *.domain, address or CIDR, with :PORT.",
            self.hosts_entry,
        )

        def net_changed(*_: Any) -> None:
            mode = modes[net.get_selected()]
            hosts = [h for h in self.hosts_entry.get_text().split(",") if h.strip()]
            f.set_network(mode, hosts)
            hosts_row.set_visible(mode == "filtered")

        net.connect("notify::selected", net_changed)
        self.hosts_entry.connect("changed", net_changed)
        net_changed()
        self._switch(
            g,
            "block_lan",
            "Block the local network",
            "No printers, routers or machines around you, even with network on.",
        )
        for key, title, hint in (
            ("gpu", "Graphics card", "Hardware-accelerated drawing and video."),
            ("audio", "Sound", "Play sound."),
            ("microphone", "Microphone", "Record sound."),
            ("camera", "Camera", "Use cameras."),
        ):
            self._switch(g, key, title, hint)

        m = self.machine
        g = Adw.PreferencesGroup(
            title="Resources",
            description="Leftmost is no limit. The ends are this machine's totals.",
        )
        page.add(g)
        mem_top = max(1024, m.memory_bytes >> 20)
        self._slider(
            g,
            "memory_max",
            "Memory",
            f"At most this much (of {mem_top // 1024} GiB).",
            mem_top,
            256,
            formmodel.size_to_mib(f.values.get("memory_max", "none")),
            lambda v: "no limit" if v <= 0 else f"{v / 1024:.1f} GiB",
            lambda v: formmodel.mib_to_size((v // 256) * 256),
        )
        self._slider(
            g,
            "cpu_max",
            "Processor",
            f"At most this share (of {m.cpus} CPUs).",
            m.cpus * 100,
            10,
            formmodel.cpu_to_percent(f.values.get("cpu_max", "none")),
            lambda v: "no limit" if v <= 0 else f"{v / 100:.1f} CPUs",
            formmodel.percent_to_cpu,
        )
        pids_top = min(m.pid_max, 65536)
        pids = f.values.get("pids_max", "none")
        self._slider(
            g,
            "pids_max",
            "Processes",
            "At most this many at once.",
            pids_top,
            64,
            int(pids) if pids.isdigit() else 0,
            lambda v: "no limit" if v <= 0 else str(v),
            lambda v: "none" if v <= 0 else str(v),
        )

        self._combo(
            g,
            "cpu_weight",
            "Priority when busy",
            "Its share of the processor when every desktop wants it.",
            [("none", "Normal"), ("50", "Low"), ("100", "Normal (explicit)"), ("400", "High")],
            lambda v: f.values.__setitem__("cpu_weight", v),
        )
        g = Adw.PreferencesGroup(title="Behaviour")
        page.add(g)
        self._combo(
            g,
            "freeze_after",
            "Freeze when hidden for",
            "Its programs stop using the processor while you are elsewhere.",
            FREEZE_CHOICES,
            lambda v: f.values.__setitem__("freeze_after", v),
        )
        others = [n for n in self.parent.model.rows if n != self.editing]
        self._combo(
            g,
            "downloads_to",
            "Downloads go to",
            "Audited downloads are released into this desktop.",
            [("none", "Stay in this desktop")] + [(n, n) for n in others],
            lambda v: f.values.__setitem__("downloads_to", v),
        )
        self._switch(
            g,
            "reclaim_when_frozen",
            "Push memory out while frozen",
            "Frees its memory for the other desktops where the kernel allows it.",
        )
        self._switch(
            g,
            "allow_fullscreen",
            "True fullscreen",
            "Its windows may cover the strip that shows which desktop you are in.",
        )

    def _unset(self, keys: list[str]) -> None:
        assert self.editing is not None
        try:
            result = self.parent.control.command(["desktop", "unset", self.editing, *keys])
        except ControlError as exc:
            errors: dict[str | None, str] = {None: str(exc)}
            self.show_errors(errors)
            return
        self.parent.toast(str(result.get("message") or "done"))
        self.close()

    def _rgba(self, hex_colour: str) -> Gdk.RGBA:
        c = Gdk.RGBA()
        if not c.parse(hex_colour or "#3b82f6"):
            c.parse("#3b82f6")
        return c

    def _free_colour(self) -> str:
        used = {r.colour.lower() for r in self.parent.model.rows.values()}
        for c in ("#f59e0b", "#14b8a6", "#ec4899", "#8b5cf6", "#84cc16", "#06b6d4", "#f97316"):
            if c not in used:
                return c
        return "#64748b"

    def _on_colour(self, button: Gtk.ColorButton) -> None:
        c = button.get_rgba()
        r, g, b = (round(v * 255) for v in (c.red, c.green, c.blue))
        self.form.values["colour"] = f"#{r:02x}{g:02x}{b:02x}"

    # -- errors and submission --

    def show_errors(self, errors: Mapping[str | None, str] | dict[str, str]) -> None:
        for name, row in self.rows.items():
            row.remove_css_class("error")
            row.set_subtitle(_esc(self.hints.get(name, "")))
        unplaced = []
        for key, text in errors.items():
            row = self.rows.get(key) if key else None
            if key is None or row is None:
                unplaced.append(text)
                continue
            row.add_css_class("error")
            row.set_subtitle(_esc(text))
            self.inputs.get(key, row).grab_focus()
        self.banner.set_label("\n".join(unplaced))
        self.banner.set_visible(bool(unplaced))

    def submit(self) -> None:
        f = self.form
        taken = set() if self.editing else set(self.parent.model.rows)
        local = f.local_errors(taken)
        if local:
            self.show_errors({k: v for k, v in local.items()})
            return
        if self.editing:
            argv = f.set_argv(self.current)
            if argv is None:
                self.close()
                return
        elif self.clone:
            base = self.parent.model.rows[self.clone].settings
            argv = ["desktop", "create", f.name, "--from", self.clone, *f.changes(base)]
        else:
            argv = f.create_argv()
        try:
            result = self.parent.control.command(argv)
        except ControlError as exc:
            key, text = formmodel.field_for_error(str(exc))
            if key == "network" and f.network_mode == "filtered":
                key = formmodel.HOSTS_FIELD  # the hosts are where a filter goes wrong
            self.show_errors({key: text})
            return
        later = f.restart_needed(self.current) if self.editing else []
        msg = str(result.get("message") or "")
        if later:
            msg += f" (restart its programs for: {', '.join(later)})"
        self.parent.toast(msg or "done")
        self.close()


def show_permissions(parent: Any, show: dict[str, Any]) -> None:
    """Every setting in force, its value and the layer that gave it; where its data lives."""
    win = Adw.Window(
        transient_for=parent,
        modal=True,
        default_width=600,
        default_height=560,
        title=f"{show.get('name')}: effective permissions",
    )
    box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
    box.append(Adw.HeaderBar())
    scroll = Gtk.ScrolledWindow(vexpand=True)
    page = Adw.PreferencesPage()
    g = Adw.PreferencesGroup(
        title="In force",
        description=_esc(
            f"Desktop from {show.get('origin')}"
            + (f", declared at {show['config_line']}" if show.get("config_line") else "")
        ),
    )
    page.add(g)
    for s in show.get("settings", []):
        row = Adw.ActionRow(
            title=_esc(str(s["key"]).replace("_", " ")),
            subtitle=_esc(f"{LAYER_NAMES.get(s['layer'], s['layer'])}, applies {s['applies']}"),
        )
        row.add_suffix(
            Gtk.Label(
                label=str(s["value"]),
                selectable=True,
                css_classes=["dim-label"] if s["layer"] == "default" else [],
            )
        )
        g.add(row)
    if show.get("grant"):
        gr = show["grant"]
        g.add(
            Adw.ActionRow(
                title="Temporary grant", subtitle=_esc(", ".join(f"{k}={v}" for k, v in gr.items()))
            )
        )
    g2 = Adw.PreferencesGroup(title="On disk")
    page.add(g2)
    for k, v in (show.get("paths") or {}).items():
        row = Adw.ActionRow(title=_esc(k.replace("_", " ")), subtitle=_esc(str(v)))
        row.set_subtitle_selectable(True)
        g2.add(row)
    for p in show.get("problems", []):
        g2.add(Adw.ActionRow(title="Not applied", subtitle=_esc(str(p)), css_classes=["error"]))
    scroll.set_child(page)
    box.append(scroll)
    win.set_content(box)
    win.present()
