"""The quarantine page: pending, held and kept items, their findings, and release,
rescan and delete (a second confirmation for anything not audited clean)."""

from __future__ import annotations

import gi

gi.require_version("Gtk", "4.0")
gi.require_version("Adw", "1")
import time  # noqa: E402
from typing import Any  # noqa: E402

from gi.repository import Adw, GLib, Gtk  # noqa: E402

from zionwm.manager import models  # noqa: E402
from zionwm.manager.gtk_base import WindowParts  # noqa: E402
from zionwm.manager.gtk_widgets import swatch  # noqa: E402
from zionwm.manager.quarantine import QItem  # noqa: E402


class QuarantinePage(WindowParts):
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
