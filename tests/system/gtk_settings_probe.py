"""Runs INSIDE a desktop's sandbox: a real GTK 4 program; what settings did GTK pick up?

gtk_settings_probe.py OUT     (OUT under $HOME, JSON)
"""

import json
import os
import sys

import gi

gi.require_version("Gtk", "4.0")
from gi.repository import GLib, Gtk  # noqa: E402

Gtk.init()
ctx = GLib.MainContext.default()
for _ in range(50):  # let GDK finish reading its settings
    ctx.iteration(False)
s = Gtk.Settings.get_default()
doc = {
    "font": s.props.gtk_font_name,
    "prefer_dark": s.props.gtk_application_prefer_dark_theme,
    "portal_env": os.environ.get("GDK_DEBUG"),
}
path = os.path.join(os.environ["HOME"], sys.argv[1])
with open(path + ".tmp", "w") as f:
    json.dump(doc, f)
os.rename(path + ".tmp", path)
