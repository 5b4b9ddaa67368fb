"""The file chooser of the FileChooser portal: a trusted host program (GTK 4), started by
the compositor for one request of one desktop, on the host's Wayland socket.

It is not GTK's own file chooser: that one can go anywhere on the host (a typed "/", its
sidebar, recent files, bookmarks), and it would itself ask a portal when told to use them.
This one knows only the desktop's roots (desktopbus/files.py), given on stdin by the
compositor: it lists a folder only after resolving it into one of them, shows paths the
way the sandbox sees them, and is framed and titled with the desktop's name and colour so
the user knows which desktop asks. The compositor checks the answer again before any of it
reaches the program.

stdin: JSON {desktop, colour, title, save, multiple, directory, accept_label, current_name,
             roots: [{label, host, inside, writable}], start (host folder), select (host
             path or null)}
stdout: JSON {"paths": [host paths]} or {"cancelled": true}

Tests (a headless session has no accessibility bus) may name a file in
$ZIONWM_CHOOSER_PROBE: the chooser writes there what it shows (folder, entries, last error);
and a file in $ZIONWM_CHOOSER_SCRIPT: steps ({"type": TEXT}, {"enter": true},
{"accept": true}, {"cancel": true}) done once the window is up, through the same widgets
and handlers a user's typing and clicks reach.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gtk", "4.0")
gi.require_version("Gdk", "4.0")
from gi.repository import Gdk, GLib, Gtk  # noqa: E402

from zionwm.desktopbus import files  # noqa: E402

ENTRIES_MAX = 2000  # entries listed per folder


class Chooser:
    def __init__(self, req: dict[str, Any]) -> None:
        self.req = req
        self.roots = tuple(
            files.Root(r["label"], Path(r["host"]), r["inside"], bool(r["writable"]))
            for r in req["roots"]
        )
        self.save = bool(req.get("save"))
        self.multiple = bool(req.get("multiple"))
        self.directory = bool(req.get("directory"))
        self.result: dict[str, Any] = {"cancelled": True}
        self.folder: Path | None = None
        self.error = ""
        self.loop = GLib.MainLoop()
        self.win = Gtk.Window()
        desktop = str(req["desktop"])
        verb = "Save" if self.save else ("Choose folder" if self.directory else "Open")
        asked = req.get("title") or verb
        self.win.set_title(f"[{desktop}] {asked}")
        self.win.set_default_size(720, 480)
        self.win.connect("close-request", self._on_close)
        keys = Gtk.EventControllerKey()
        keys.connect("key-pressed", self._on_key)
        self.win.add_controller(keys)
        self._style(str(req.get("colour", "#888888")))

        outer = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
        band = Gtk.Label(label=f"{desktop}: {asked}", xalign=0)
        band.add_css_class("zion-band")
        outer.append(band)
        self.location = Gtk.Entry()
        self.location.set_placeholder_text("Type a path, or a name in this folder")
        self.location.connect("activate", lambda _e: self._on_location())
        outer.append(self.location)
        body = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, vexpand=True)
        places = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
        for r in self.roots:
            if r.host.is_dir():
                b = Gtk.Button(label=r.label)
                b.connect("clicked", lambda _b, r=r: self.show(r.host))
                places.append(b)
        body.append(places)
        self.list = Gtk.ListBox(hexpand=True)
        self.list.set_selection_mode(
            Gtk.SelectionMode.MULTIPLE if self.multiple else Gtk.SelectionMode.SINGLE
        )
        self.list.connect("row-activated", self._on_row_activated)
        scroll = Gtk.ScrolledWindow(hexpand=True, vexpand=True)
        scroll.set_child(self.list)
        body.append(scroll)
        outer.append(body)
        self.status = Gtk.Label(xalign=0)
        outer.append(self.status)
        buttons = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, halign=Gtk.Align.END)
        cancel = Gtk.Button(label="Cancel")
        cancel.connect("clicked", lambda _b: self.finish(None))
        accept = Gtk.Button(label=req.get("accept_label") or verb)
        accept.connect("clicked", lambda _b: self._on_accept())
        buttons.append(cancel)
        buttons.append(accept)
        outer.append(buttons)
        self.win.set_child(outer)

        start = self._safe_folder(req.get("start"))
        self.show(start)
        select = req.get("select")
        if self.save and req.get("current_name"):
            self.location.set_text(str(req["current_name"]))
        elif isinstance(select, str):
            try:
                self.location.set_text(files.to_inside(self.roots, select))
            except files.OutsideRoots:
                pass

    # ---- looks ----

    def _style(self, colour: str) -> None:
        if not (len(colour) == 7 and colour.startswith("#")):
            colour = "#888888"
        css = Gtk.CssProvider()
        css.load_from_data(
            f".zion-band {{ background: {colour}; color: white; padding: 8px; "
            f"font-weight: bold; }} window {{ border: 4px solid {colour}; }}".encode()
        )
        display = self.win.get_display()
        Gtk.StyleContext.add_provider_for_display(
            display, css, Gtk.STYLE_PROVIDER_PRIORITY_APPLICATION
        )

    # ---- navigation: every folder is resolved into the roots before it is read ----

    def _safe_folder(self, host: object) -> Path:
        home = next((r for r in self.roots if r.label == "Home"), self.roots[-1])
        if isinstance(host, str):
            try:
                files.to_inside(self.roots, host)
                real = Path(os.path.realpath(host))
                if real.is_dir():
                    return real
            except files.OutsideRoots:
                pass
        return home.host

    def show(self, folder: Path) -> None:
        try:
            inside = files.to_inside(self.roots, folder)
        except files.OutsideRoots as exc:
            self._fail(str(exc))
            return
        real = Path(os.path.realpath(folder))
        try:
            names = sorted(os.listdir(real))[:ENTRIES_MAX]
        except OSError as exc:
            self._fail(exc.strerror or str(exc))
            return
        self.folder = real
        child = self.list.get_first_child()
        while child is not None:
            self.list.remove(child)
            child = self.list.get_first_child()
        dirs = [n for n in names if (real / n).is_dir()]
        plain = [n for n in names if n not in dirs]
        self.shown_names: list[str] = []
        for n in dirs + plain:
            if n.startswith("."):
                continue
            row = Gtk.ListBoxRow()
            row.set_child(Gtk.Label(label=n + ("/" if n in dirs else ""), xalign=0))
            row.zion_name = n
            self.list.append(row)
            self.shown_names.append(n)
        self.status.set_text(inside)
        self.error = ""
        self._probe()

    def _fail(self, why: str) -> None:
        self.error = why
        self.status.set_text(f"Not available: {why}")
        self._probe()

    # ---- what the user does ----

    def _on_row_activated(self, _lb: Gtk.ListBox, row: Gtk.ListBoxRow) -> None:
        assert self.folder is not None
        target = self.folder / row.zion_name
        if target.is_dir() and not self.directory:
            self.show(target)
        else:
            self._choose([target])

    def _typed_path(self, text: str) -> Path:
        assert self.folder is not None
        if text.startswith("~"):
            home = next((r for r in self.roots if r.label == "Home"), None)
            if home is None:
                raise files.OutsideRoots("this desktop has no home here")
            text = home.inside + text[1:]
        if text.startswith("/"):
            return files.to_host(self.roots, text)
        # a name (or relative path) in the folder shown
        return self.folder / text

    def _on_location(self) -> None:
        text = self.location.get_text().strip()
        if not text:
            return
        try:
            target = self._typed_path(text)
        except files.OutsideRoots as exc:
            self._fail(str(exc))
            return
        if self.save:
            self._save_as(target)
        elif target.is_dir() and not self.directory:
            self.location.set_text("")
            self.show(target)
        else:
            self._choose([target])

    def _on_accept(self) -> None:
        if self.location.get_text().strip():
            self._on_location()
            return
        assert self.folder is not None
        rows = self.list.get_selected_rows()
        if self.save:
            self._fail("type a name for the file")
        elif rows:
            self._choose([self.folder / r.zion_name for r in rows])
        elif self.directory:
            self._choose([self.folder])

    def _save_as(self, target: Path) -> None:
        try:
            host, _inside = files.save_target(self.roots, target.parent, target.name)
        except files.OutsideRoots as exc:
            self._fail(str(exc))
            return
        self.finish([str(host)])

    def _choose(self, targets: list[Path]) -> None:
        out = []
        for t in targets:
            try:
                files.to_inside(self.roots, t)
            except files.OutsideRoots as exc:
                self._fail(f"{t.name}: {exc}")
                return
            out.append(os.path.realpath(t))
        self.finish(out)

    def finish(self, chosen: list[str] | None) -> None:
        self.result = {"paths": chosen} if chosen else {"cancelled": True}
        self.loop.quit()

    def _on_key(self, _c: Gtk.EventControllerKey, keyval: int, _code: int, _state: object) -> bool:
        if keyval == Gdk.KEY_Escape:
            self.finish(None)
            return True
        return False

    def _on_close(self, _w: Gtk.Window) -> bool:
        self.finish(None)
        return False

    # ---- tests ----

    def _probe(self) -> None:
        where = os.environ.get("ZIONWM_CHOOSER_PROBE")
        if not where:
            return
        doc = {
            "folder": self.status.get_text() if not self.error else None,
            "host_folder": str(self.folder) if self.folder else None,
            "names": getattr(self, "shown_names", []),
            "location": self.location.get_text(),
            "error": self.error,
            "title": self.win.get_title(),
        }
        tmp = where + ".tmp"
        Path(tmp).write_text(json.dumps(doc))
        os.replace(tmp, where)

    def run_script(self, steps: list[dict[str, Any]]) -> None:
        def step() -> bool:
            if not steps:
                return False
            s = steps.pop(0)
            if "type" in s:
                self.location.set_text(str(s["type"]))
            elif s.get("enter"):
                self.location.emit("activate")
            elif s.get("accept"):
                self._on_accept()
            elif s.get("cancel"):
                self.finish(None)
            self._probe()
            return True

        GLib.timeout_add(100, step)

    def run(self) -> dict[str, Any]:
        self.win.present()
        self.location.grab_focus()  # typing a path is the quickest way in
        script = os.environ.get("ZIONWM_CHOOSER_SCRIPT")
        if script and os.path.exists(script):
            self.run_script(json.loads(Path(script).read_text()))
        self.loop.run()
        self._probe()
        self.win.destroy()
        return self.result


def main() -> int:
    req = json.loads(sys.stdin.read())
    result = Chooser(req).run()
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
