"""Small drawings and helpers the manager's pages share: the desktop's colour as a swatch,
the usage sparkline, and the style sheet."""

from __future__ import annotations

import gi

gi.require_version("Gtk", "4.0")
gi.require_version("Adw", "1")
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from gi.repository import Gtk  # noqa: E402

from zionwm.manager import models  # noqa: E402

CSS = b"""
.swatch { border-radius: 999px; min-width: 18px; min-height: 18px; }
.app-tile { padding: 12px; border-radius: 12px; border-bottom: 4px solid transparent; }
.desktop-banner { padding: 6px 12px; border-radius: 8px; font-weight: bold; }
.usage { font-feature-settings: "tnum"; }
"""


def then_true(fn: Callable[[], object]) -> bool:
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
