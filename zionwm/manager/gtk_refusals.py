"""On the desktops page: what each desktop's programs were refused, with the exact change
that would grant it shown as a diff and applied only on the user's click; hibernation with
what it will free said first; the disk use of each home, measured off the UI thread."""

from __future__ import annotations

import gi

gi.require_version("Gtk", "4.0")
gi.require_version("Adw", "1")
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from gi.repository import Adw, GLib, Gtk  # noqa: E402

from zionwm.cli_table import size_text  # noqa: E402
from zionwm.manager import refusals as refmodel  # noqa: E402
from zionwm.manager.client import ControlError  # noqa: E402
from zionwm.manager.diskuse import DiskUse, DiskUseCache  # noqa: E402
from zionwm.manager.gtk_base import WindowParts  # noqa: E402
from zionwm.manager.gtk_widgets import swatch, then_true  # noqa: E402


class RefusalsPart(WindowParts):
    refusal_list: refmodel.RefusalList
    refusals_group: Any
    refusal_rows: list[Any]
    first_allow: Any = None
    disk: DiskUseCache
    home_paths: dict[str, Path]
    homes_walked: bool = False

    def _refusals_group(self) -> Gtk.Widget:
        self.refusal_list = refmodel.RefusalList()
        self.refusal_rows = []
        self.home_paths = {}
        self.disk = DiskUseCache(lambda p, u: GLib.idle_add(self._disk_measured, p, u))
        self.refusals_group = Adw.PreferencesGroup(
            title="Refused, and could be allowed",
            description="What programs of a desktop tried and were refused. Allowing one "
            "shows the exact change to its settings first.",
            margin_top=12,
        )
        return self.refusals_group

    # ---- refusals -------------------------------------------------------------------------

    def refresh_refusals(self) -> None:
        try:
            data = self.control.command(["desktop", "refusals"]).get("data") or {}
        except ControlError:
            data = {}
        self.refusal_list.load(data.get("refusals", []))
        self._draw_refusals()

    def show_refusals(self) -> None:
        """The desktops page with the keyboard on the first refusal's Allow button."""
        self.stack.set_visible_child_name("desktops")
        if self.first_allow is not None:
            self.first_allow.grab_focus()

    def on_refusal(self, payload: dict[str, Any]) -> None:
        self.refusal_list.add(payload)
        self._draw_refusals()

    def _draw_refusals(self) -> None:
        for w in self.refusal_rows:
            self.refusals_group.remove(w)
        self.refusal_rows.clear()
        self.first_allow = None
        counts = self.refusal_list.counts()
        for row in self.model.rows.values():
            row.refusals = counts.get(row.name, 0)
        self.refusals_group.set_visible(bool(counts))
        for d in self.model.sorted("order"):
            for r in self.refusal_list.of(d.name):
                w = Adw.ActionRow(
                    title=GLib.markup_escape_text(f"{r.desktop}: {r.title}"),
                    subtitle=GLib.markup_escape_text(r.subtitle),
                )
                w.add_prefix(swatch(d.colour))
                b = Gtk.Button(label="Allow…", valign=Gtk.Align.CENTER)
                b.update_property(
                    [Gtk.AccessibleProperty.LABEL], [f"Allow {r.title} in {r.desktop}"]
                )
                b.connect("clicked", lambda *_, r=r: self.offer_refusal(r))
                w.add_suffix(b)
                self.first_allow = self.first_allow or b
                self.refusals_group.add(w)
                self.refusal_rows.append(w)
        self._update_rows()

    def offer_refusal(self, r: refmodel.Refusal) -> None:
        try:
            show = self.control.command(["desktop", "show", r.desktop]).get("data") or {}
        except ControlError as exc:
            self.toast(str(exc))
            return
        offer = refmodel.offer(r, show)
        dlg = Adw.MessageDialog(
            transient_for=self,
            modal=True,
            heading=f"Allow {r.title} in {r.desktop}?" if offer else f"{r.desktop}: {r.title}",
            body=(
                "This changes one setting of the desktop:"
                if offer
                else refmodel.NO_OFFER.get(r.kind, "No setting change would allow this.")
            ),
        )
        if offer is not None:
            diff = Gtk.Label(
                label="\n".join(offer.diff),
                xalign=0,
                wrap=True,
                wrap_mode=2,  # Pango.WrapMode.WORD_CHAR: long host lists break anywhere
                selectable=True,
                css_classes=["monospace", "diff"],
            )
            extra = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6)
            extra.append(diff)
            extra.append(Gtk.Label(label=offer.note, xalign=0, wrap=True))
            extra.append(
                Gtk.Label(
                    label="zionctl " + " ".join(offer.argv),
                    xalign=0,
                    wrap=True,
                    wrap_mode=2,
                    selectable=True,
                    css_classes=["dim-label", "caption", "monospace"],
                )
            )
            dlg.set_extra_child(extra)
        dlg.add_response("cancel", "Cancel")
        dlg.add_response("forget", "Forget it")
        if offer is not None:
            dlg.add_response("allow", "Allow")
            dlg.set_response_appearance("allow", Adw.ResponseAppearance.SUGGESTED)
        dlg.set_default_response("cancel")

        def answered(_d: Any, response: str) -> None:
            if response == "allow" and offer is not None and self.run(offer.argv) is None:
                return  # refused by the validator: the toast says why; the refusal stays
            if response in ("allow", "forget"):
                self._forget_refusal(r)

        dlg.connect("response", answered)
        dlg.present()

    def _forget_refusal(self, r: refmodel.Refusal) -> None:
        try:
            self.control.command(["desktop", "refusals", r.desktop, "--clear", r.what])
        except ControlError as exc:
            self.toast(str(exc))
        self.refusal_list.drop(r)
        self._draw_refusals()

    # ---- hibernate ------------------------------------------------------------------------

    def hibernate(self, name: str) -> None:
        """Say what hibernating frees, then (on the user's yes) freeze and push it out."""
        try:
            data = self.control.command(["desktop", "hibernate", name, "--estimate"])
        except ControlError as exc:
            self.toast(str(exc))
            return
        est = (data.get("data") or {}).get("estimate") or {}
        dlg = Adw.MessageDialog(
            transient_for=self,
            modal=True,
            heading=f"Hibernate {name}?",
            body=f"Its programs are frozen, then their memory is pushed out: "
            f"{est.get('text', '')}. They go on where they were when you switch to it; what "
            "was pushed out is read back as they need it.",
        )
        dlg.add_response("cancel", "Cancel")
        if est.get("can_reclaim"):
            dlg.add_response("go", "Hibernate")
            dlg.set_response_appearance("go", Adw.ResponseAppearance.SUGGESTED)
        dlg.set_default_response("cancel")
        dlg.connect(
            "response",
            lambda _d, r: self.run(["desktop", "hibernate", name]) if r == "go" else None,
        )
        dlg.present()

    def on_hibernated(self, payload: dict[str, Any]) -> None:
        name = str(payload.get("desktop", ""))
        if payload.get("error"):
            self.toast(f"Could not hibernate {name}: {payload['error']}")
        elif payload.get("freed_bytes") is None:
            self.toast(f"Froze {name}; memory cannot be pushed out here")
        else:
            self.toast(f"Hibernated {name}: {size_text(payload['freed_bytes'])} freed")

    # ---- disk use of the homes ------------------------------------------------------------

    def measure_homes(self, force: bool = False) -> None:
        if not self.homes_walked:
            # the first walk waits until the window is up: it would share the interpreter
            # with GTK's start (and the time to the first frame) for nothing
            self.homes_walked = True
            GLib.timeout_add(1000, lambda: then_true(self.measure_homes) and False)
            return
        for name, path in self.home_paths.items():
            use = self.disk.get(path)
            if use is not None and name in self.model.rows:
                self._set_disk(name, use)
            self.disk.request(path, force)

    def _disk_measured(self, path: Path, use: DiskUse | None) -> bool:
        for name, p in self.home_paths.items():
            if p == path and use is not None and name in self.model.rows:
                self._set_disk(name, use)
        self._update_rows()
        return False

    def _set_disk(self, name: str, use: DiskUse) -> None:
        row = self.model.rows[name]
        row.home_bytes, row.home_complete = use.bytes, use.complete
