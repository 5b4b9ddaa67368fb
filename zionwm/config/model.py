"""What a loaded config is: its desktops (as `zionwm.isolation.spec` specs), key bindings and
settings, and the problems found on the way (`ConfigError`). Plain frozen data: nothing here
runs or checks a config file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from zionwm import commands
from zionwm.isolation import spec

__all__ = ["Binding", "Config", "ConfigError", "Settings"]

MODIFIERS = frozenset({"super", "shift", "ctrl", "alt"})
MAX_SWITCH_KEYS = 9  # Super+1..9: desktops after the ninth are reached by name only

# Only plain text crosses desktops by default: rich types (images, HTML, file lists) carry
# parsers' attack surface and paths into the receiving desktop.
TEXT_MIME_TYPES = (
    "text/plain;charset=utf-8",
    "text/plain",
    "UTF8_STRING",
    "STRING",
    "TEXT",
)


@dataclass(frozen=True)
class ConfigError:
    """One problem in a config file. line 0 means "the file as a whole"."""

    file: str
    line: int
    message: str
    severity: Literal["error", "warning"] = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        kind = "warning: " if self.severity == "warning" else ""
        return f"{where}: {kind}{self.message}"


@dataclass(frozen=True)
class Binding:
    """A key binding. `keysym` is the canonical xkb name of the key's lower-case keysym
    ("q", "Return", "1"): match it against the key's keysym at shift level 1 (what the
    key produces without Shift), lower-cased, with `modifiers` exactly the ones held."""

    modifiers: frozenset[str]
    keysym: str
    command: str
    line: int
    parsed: commands.Command

    @property
    def keys(self) -> str:
        """The combination as a person writes it, e.g. "Super+Shift+q"."""
        order = ("super", "ctrl", "alt", "shift")
        mods = [m.capitalize() for m in order if m in self.modifiers]
        return "+".join([*mods, self.keysym])


@dataclass(frozen=True)
class Settings:
    """Everything that is not a desktop or a binding."""

    terminal: tuple[str, ...] = ("foot",)
    keyboard_layout: str = ""  # "" = xkbcommon's default (XKB_DEFAULT_* environment)
    keyboard_variant: str = ""
    keyboard_options: str = ""
    keyboard_model: str = ""
    repeat_rate: int = 25  # keys per second; 0 = no repeat
    repeat_delay: int = 600  # milliseconds
    clipboard_max_bytes: int = 1024 * 1024
    clipboard_mime_types: tuple[str, ...] = TEXT_MIME_TYPES
    clamd_socket: Path | None = None  # None: the clamd at /run/clamav/clamd.ctl, if running
    # files no antivirus looked at: "required" = they wait for one; "if-available" = they
    # are released after the hold, marked "no antivirus scan"; "off" = no antivirus is used
    # or looked for, every file is marked "no antivirus scan" and released after the hold
    antivirus: str = "required"
    yara_rule_dirs: tuple[Path, ...] = ()  # in addition to the rules shipped with zionwm
    cursor_theme: str | None = None  # None: XCURSOR_THEME or the default theme
    cursor_size: int = 24
    # what programs in desktops are told through the Settings portal (docs/desktop-bus.md)
    color_scheme: str = "default"  # "default" | "dark" | "light"
    accent_colour: str | None = None  # "#rrggbb"
    font: str = ""  # e.g. "Cantarell 11"; "" leaves it to each toolkit
    monospace_font: str = ""
    document_font: str = ""
    lock_after: float | None = None  # seconds without input before the screen locks; None: never
    source: Path = Path()  # the file this config was loaded from


@dataclass(frozen=True)
class Config:
    desktops: tuple[spec.DesktopSpec, ...]  # in Super+N order
    bindings: tuple[Binding, ...]
    settings: Settings
    _by_keys: dict[tuple[frozenset[str], str], Binding] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Built once so the key path is one dict lookup.
        object.__setattr__(self, "_by_keys", {(b.modifiers, b.keysym): b for b in self.bindings})

    def desktop(self, name: str) -> spec.DesktopSpec | None:
        return next((d for d in self.desktops if d.name == name), None)

    def desktop_at(self, index: int) -> spec.DesktopSpec | None:
        """The desktop at 1-based position `index` (what `switch N` means)."""
        return self.desktops[index - 1] if 1 <= index <= len(self.desktops) else None

    def binding_for(self, modifiers: frozenset[str], keysym: str) -> Binding | None:
        return self._by_keys.get((modifiers, keysym))
