"""The user's Python config file: the small API it is written in, and its validator.

This module owns:
- the declarations a config file makes (`desktop`, `bind`, `settings`, and the value
  types `Limits`, `Devices`, `Network`, `Allow`, `Downloads`, `Autostart`), which accept
  human units ("4G", "10m", "20%", "#rrggbb");
- `load_config`, which runs the file in a fresh namespace and turns its declarations into
  the frozen specs of `zionwm.isolation.spec`, collecting every problem with its line;
- the default config (shipped as `zionwm/default_config.py`), the first-start write of it,
  the fallback to it when the user's file is broken, and `zionwm --check-config`.

The declarations only record what they were given and where; all checking happens
afterwards in plain functions, so that one bad field never hides the next one.
"""

from __future__ import annotations

import builtins
import difflib
import inspect
import ipaddress
import logging
import math
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, ClassVar, Literal, TypeVar

from xkbcommon import xkb

from zionwm import commands, paths
from zionwm.isolation import spec
from zionwm.layout import LAYOUTS

log = logging.getLogger(__name__)

__all__ = [
    "Allow",
    "Autostart",
    "Binding",
    "Config",
    "ConfigError",
    "Devices",
    "Downloads",
    "Limits",
    "Network",
    "Settings",
    "bind",
    "check_desktop",
    "check_main",
    "default_config_path",
    "desktop",
    "load_config",
    "load_default",
    "load_or_fallback",
    "parse_colour",
    "parse_cpu_max",
    "parse_cpuset",
    "parse_duration",
    "parse_key",
    "parse_size",
    "settings",
]

MODIFIERS = frozenset({"super", "shift", "ctrl", "alt"})
MAX_SWITCH_KEYS = 9  # Super+1..9: desktops after the ninth are reached by name only
DEFAULT_CONFIG = Path(__file__).with_name("default_config.py")

# Only plain text crosses desktops by default: rich types (images, HTML, file lists) carry
# parsers' attack surface and paths into the receiving desktop.
TEXT_MIME_TYPES = (
    "text/plain;charset=utf-8",
    "text/plain",
    "UTF8_STRING",
    "STRING",
    "TEXT",
)

Duration = str | int | float | None
Size = str | int | None


# --- results -----------------------------------------------------------------------------


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


# --- what a config file declares ---------------------------------------------------------


@dataclass
class _Load:
    """The declarations of one load; lives only while that file runs."""

    file: str
    desktops: list[_DesktopDecl] = field(default_factory=list)
    bindings: list[tuple[int, object, object]] = field(default_factory=list)
    settings: list[tuple[int, dict[str, object]]] = field(default_factory=list)


# Which load (if any) the running code declares into; a context variable rather than a
# module-level registry so that loads never see each other's declarations.
_ACTIVE: ContextVar[_Load | None] = ContextVar("zionwm_config_load", default=None)


def _caller_line() -> int:
    """The line of the config file that is executing, innermost first (0 outside a load)."""
    load = _ACTIVE.get()
    if load is None:
        return 0
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == load.file:
            return frame.f_lineno
        frame = frame.f_back
    return 0


def _active(what: str) -> _Load:
    load = _ACTIVE.get()
    if load is None:
        raise RuntimeError(
            f"{what}() declares something in a zionwm config file; it only works while "
            "zionwm loads that file (try: zionwm --check-config FILE)"
        )
    return load


class _Decl:
    """A value declared in the config: its arguments as given, unknown ones, and its line."""

    _kind: ClassVar[str]

    def __init__(self, values: dict[str, object], unknown: dict[str, object]) -> None:
        self._values = values
        self._unknown = unknown
        self._line = _caller_line()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"{self._kind}({args})"


class Limits(_Decl):
    """cgroup limits. Sizes: bytes or "512K"/"64M"/"4G"/"1T" (powers of 1024, like
    cgroups and systemd); cpu_max: "20%" or 0.2 (of one CPU; "200%" = two CPUs);
    cpuset: [0, 1] or "0-3,6"; None or "max" = no limit."""

    _kind = "Limits"

    def __init__(
        self,
        *,
        cpu_weight: int | None = None,
        cpu_max: str | float | None = None,
        memory_high: Size = None,
        memory_max: Size = None,
        pids_max: int | None = None,
        cpuset: Sequence[int] | str | None = None,
        **unknown: object,
    ) -> None:
        super().__init__(
            {
                "cpu_weight": cpu_weight,
                "cpu_max": cpu_max,
                "memory_high": memory_high,
                "memory_max": memory_max,
                "pids_max": pids_max,
                "cpuset": cpuset,
            },
            unknown,
        )


class Devices(_Decl):
    """Device grants; everything not named is denied."""

    _kind = "Devices"

    def __init__(
        self,
        *,
        gpu: bool = False,
        audio: bool = False,
        microphone: bool = False,
        camera: bool = False,
        **unknown: object,
    ) -> None:
        super().__init__(
            {"gpu": gpu, "audio": audio, "microphone": microphone, "camera": camera}, unknown
        )


class Allow(_Decl):
    """One destination a filtered network may reach: a host name ("example.org",
    "*.example.org"), an address or a CIDR; optional ports; proto "tcp", "udp" or "any"."""

    _kind = "Allow"

    def __init__(
        self,
        host: str,
        *,
        ports: int | Sequence[int] = (),
        proto: str = "tcp",
        **unknown: object,
    ) -> None:
        super().__init__({"host": host, "ports": ports, "proto": proto}, unknown)


class Network(_Decl):
    """A desktop's network: `Network.none()` (loopback only, the default),
    `Network.full(block_lan=...)`, or `Network.filtered([Allow(...), "host"], ...)`."""

    _kind = "Network"

    def __init__(
        self,
        mode: str = "none",
        *,
        allow: Sequence[Allow | str] = (),
        block_lan: bool = False,
        **unknown: object,
    ) -> None:
        super().__init__({"mode": mode, "allow": allow, "block_lan": block_lan}, unknown)

    @classmethod
    def none(cls) -> Network:
        return cls("none")

    @classmethod
    def full(cls, *, block_lan: bool = False) -> Network:
        return cls("full", block_lan=block_lan)

    @classmethod
    def filtered(cls, allow: Sequence[Allow | str], *, block_lan: bool = False) -> Network:
        return cls("filtered", allow=allow, block_lan=block_lan)


class Downloads(_Decl):
    """The desktop's ~/Downloads is a quarantine inbox: audited files are held for `hold`,
    then released into `release_to`'s Downloads. on_*: "keep", "release" or "delete".
    safe_copy=True: a kept PDF or image also gets a safe copy (NAME.safe.pdf) released."""

    _kind = "Downloads"

    def __init__(
        self,
        release_to: str,
        *,
        hold: Duration = "10m",
        on_suspicious: str = "keep",
        on_malicious: str = "keep",
        on_cannot_inspect: str = "keep",
        safe_copy: bool = False,
        **unknown: object,
    ) -> None:
        super().__init__(
            {
                "release_to": release_to,
                "hold": hold,
                "on_suspicious": on_suspicious,
                "on_malicious": on_malicious,
                "on_cannot_inspect": on_cannot_inspect,
                "safe_copy": safe_copy,
            },
            unknown,
        )


class Autostart(_Decl):
    """A program started on the desktop: when it is first shown, or with at_start=True
    when zionwm starts. A plain string in `autostart=[...]` means Autostart(that string)."""

    _kind = "Autostart"

    def __init__(self, argv: str | Sequence[str], *, at_start: bool = False, **unknown: object):
        super().__init__({"argv": argv, "at_start": at_start}, unknown)


class _DesktopDecl(_Decl):
    _kind = "desktop"


def desktop(
    name: str,
    *,
    colour: str | None = None,
    limits: Limits | None = None,
    devices: Devices | None = None,
    network: Network | str | None = None,
    freeze_after: Duration = None,
    reclaim_when_frozen: bool = False,
    ephemeral: bool = False,
    downloads: Downloads | None = None,
    fonts: Sequence[str] = (),
    app_dirs: Sequence[str] = (),
    writable_usr: bool = False,
    template: str | None = None,
    env: Sequence[str] = (),
    dbus: str = "desktop",
    open_links_in: str | None = None,
    browser: str | Sequence[str] = ("chromium",),
    notify_when_frozen: str = "queue",
    allow_fullscreen: bool = False,
    x11: bool = False,
    nested_sandbox: bool = False,
    autostart: Sequence[str | Sequence[str] | Autostart] = (),
    layout: str = "float",
    **unknown: object,
) -> None:
    """Declare a desktop. Desktops are numbered (Super+1..9) in the order declared."""
    load = _active("desktop")
    values: dict[str, object] = {
        "name": name,
        "colour": colour,
        "limits": limits,
        "devices": devices,
        "network": network,
        "freeze_after": freeze_after,
        "reclaim_when_frozen": reclaim_when_frozen,
        "ephemeral": ephemeral,
        "downloads": downloads,
        "fonts": fonts,
        "app_dirs": app_dirs,
        "writable_usr": writable_usr,
        "template": template,
        "env": env,
        "dbus": dbus,
        "open_links_in": open_links_in,
        "browser": browser,
        "notify_when_frozen": notify_when_frozen,
        "allow_fullscreen": allow_fullscreen,
        "x11": x11,
        "nested_sandbox": nested_sandbox,
        "autostart": autostart,
        "layout": layout,
    }
    load.desktops.append(_DesktopDecl(values, unknown))


def bind(keys: str, command: str | Sequence[str]) -> None:
    """Bind a key combination ("Super+Shift+q") to a command ("spawn foot", or an argv)."""
    load = _active("bind")
    load.bindings.append((_caller_line(), keys, command))


def settings(
    *,
    terminal: str | Sequence[str] | None = None,
    keyboard_layout: str | None = None,
    keyboard_variant: str | None = None,
    keyboard_options: str | None = None,
    keyboard_model: str | None = None,
    repeat_rate: int | None = None,
    repeat_delay: int | None = None,
    clipboard_max_bytes: Size = None,
    clipboard_mime_types: Sequence[str] | None = None,
    clamd_socket: str | None = None,
    antivirus: str | None = None,
    yara_rule_dirs: Sequence[str] | None = None,
    cursor_theme: str | None = None,
    cursor_size: int | None = None,
    **unknown: object,
) -> None:
    """Set global settings; may be called more than once, later values win."""
    args = dict(locals())
    load = _active("settings")
    # None means "not given"; clamd_socket=None and cursor_theme=None are the defaults anyway.
    given = {k: v for k, v in args.items() if k != "unknown" and v is not None}
    given.update({f"?{k}": v for k, v in unknown.items()})  # "?" marks an unknown field
    load.settings.append((_caller_line(), given))


# --- pure converters: each takes what the user wrote, returns the spec value or raises
# ValueError with a plain explanation ---------------------------------------------------

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_COLOUR = re.compile(r"#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
_NO_LIMIT = ("max", "none", "infinity", "unlimited")
_HOSTNAME = re.compile(
    r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _type_name(value: object) -> str:
    return type(value).__name__


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_size(value: object) -> int | None:
    """Bytes from 4096, "64M", "1.5G", "512KiB"; None or "max" means no limit."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _NO_LIMIT:
            return None
        m = _SIZE.fullmatch(text)
        if not m:
            raise ValueError(
                f"{value!r} is not a size: write bytes or a number with K, M, G or T "
                "(powers of 1024), e.g. '512M' or '4G'"
            )
        size = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    elif isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        raise ValueError(f"a size must be a string like '4G' or a number of bytes, not {value!r}")
    if size < 1:
        raise ValueError(f"a size must be at least 1 byte, not {value!r}")
    return size


def parse_duration(value: object) -> float | None:
    """Seconds from 30, 0.5, "30s", "10m", "1h30m", "250ms"; None or "never" means never."""
    if value is None:
        return None
    if _is_number(value):
        seconds = float(value)  # type: ignore[arg-type]
    elif isinstance(value, str):
        text = value.lower().replace(" ", "")
        if text == "never":
            return None
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _DURATION_PART.finditer(text):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
                pos = m.end()
            if pos != len(text) or not text:
                raise ValueError(
                    f"{value!r} is not a duration: write seconds or e.g. '30s', '10m', "
                    "'1h30m' (units ms, s, m, h, d), or None for never"
                ) from None
    else:
        raise ValueError(f"a duration must be a string like '10m' or seconds, not {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be 0 or more seconds, not {value!r}")
    return seconds


def parse_cpu_max(value: object) -> float | None:
    """CPUs' worth of time from "20%" (0.2), "200%" (2.0) or a number; None = no limit."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _NO_LIMIT:
            return None
        try:
            cpus = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a CPU share: write a percentage of one CPU like '20%' "
                "or '200%', or a number of CPUs like 0.2"
            ) from None
    elif _is_number(value):
        cpus = float(value)  # type: ignore[arg-type]
    else:
        raise ValueError(f"cpu_max must be like '20%' or 0.2, not {value!r}")
    if not math.isfinite(cpus) or cpus <= 0:
        raise ValueError(f"cpu_max must be more than 0, not {value!r}")
    return cpus


def parse_cpuset(value: object) -> tuple[int, ...] | None:
    """CPU numbers from [0, 2] or "0-3,6"; sorted and without repeats."""
    if value is None:
        return None
    cpus: set[int] = set()
    if isinstance(value, str):
        for part in value.replace(" ", "").split(","):
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if not m:
                raise ValueError(f"{value!r} is not a CPU list: write e.g. '0-3,6' or [0, 1]")
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            if hi < lo:
                raise ValueError(f"CPU range {part!r} runs backwards")
            cpus.update(range(lo, hi + 1))
    elif isinstance(value, Sequence):
        for cpu in value:
            if not isinstance(cpu, int) or isinstance(cpu, bool) or cpu < 0:
                raise ValueError(f"CPU numbers are integers from 0, not {cpu!r}")
            cpus.add(cpu)
    else:
        raise ValueError(f"cpuset must be a list of CPU numbers or '0-3', not {value!r}")
    if not cpus:
        raise ValueError("cpuset is empty: give at least one CPU, or None for all")
    return tuple(sorted(cpus))


def parse_colour(value: object) -> tuple[float, float, float, float]:
    """RGBA in 0..1 from "#rrggbb" or "#rrggbbaa"."""
    if not isinstance(value, str) or not _COLOUR.fullmatch(value.strip()):
        raise ValueError(
            f"bad colour {value!r}: write '#rrggbb' or '#rrggbbaa' in hex, e.g. '#3b82f6'"
        )
    digits = value.strip()[1:]
    if len(digits) == 6:
        digits += "ff"
    r, g, b, a = (int(digits[i : i + 2], 16) / 255 for i in range(0, 8, 2))
    return (r, g, b, a)


_MODIFIER_NAMES = {
    "super": "super",
    "logo": "super",
    "mod4": "super",
    "win": "super",
    "shift": "shift",
    "ctrl": "ctrl",
    "control": "ctrl",
    "alt": "alt",
    "mod1": "alt",
}
_COMMON_KEYS = (
    "Return",
    "Tab",
    "Escape",
    "space",
    "BackSpace",
    "Delete",
    "Insert",
    "Home",
    "End",
    "Page_Up",
    "Page_Down",
    "Left",
    "Right",
    "Up",
    "Down",
    "Print",
    "plus",
    "minus",
    "equal",
    "comma",
    "period",
    "slash",
    "grave",
    *(f"F{n}" for n in range(1, 13)),
)


def parse_key(value: object) -> tuple[frozenset[str], str]:
    """Modifiers and canonical keysym name from "Super+Shift+Q" (names checked by xkbcommon;
    case does not matter: use Shift+ to require Shift)."""
    if not isinstance(value, str):
        raise ValueError(f"a key combination is a string like 'Super+Return', not {value!r}")
    parts = value.strip().split("+")
    if len(parts) > 1 and parts[-1] == "" and parts[-2] == "":
        parts = [*parts[:-2], "plus"]  # "Super++" means the plus key
    *mods, key = parts
    modifiers: set[str] = set()
    for raw in mods:
        mod = _MODIFIER_NAMES.get(raw.strip().lower())
        if mod is None:
            raise ValueError(
                f"{raw!r} in {value!r} is not a modifier (use Super, Shift, Ctrl or Alt)"
            )
        if mod in modifiers:
            raise ValueError(f"{value!r} names the {mod.capitalize()} modifier twice")
        modifiers.add(mod)
    key = key.strip()
    if not key:
        raise ValueError(f"{value!r} has no key after the modifiers")
    sym = xkb.keysym_from_name(key) or xkb.keysym_from_name(key, case_insensitive=True)
    if not sym:
        close = difflib.get_close_matches(key, _COMMON_KEYS, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else " (names as in xkbcommon-keysyms.h)"
        raise ValueError(f"bad key name {key!r} in {value!r}: xkbcommon knows no such key{hint}")
    name = xkb.keysym_get_name(xkb.keysym_to_lower(sym))
    return frozenset(modifiers), name


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be True or False, not {value!r}")
    return value


def _int_in(lo: int, hi: int) -> Callable[[object], int | None]:
    def check(value: object) -> int | None:
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"must be a whole number, not {value!r}")
        if not lo <= value <= hi:
            raise ValueError(f"must be {lo}..{hi}, not {value}")
        return value

    return check


def _argv(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            argv = tuple(shlex.split(value))
        except ValueError as exc:
            raise ValueError(f"cannot split {value!r}: {exc}") from None
    elif isinstance(value, Sequence) and all(isinstance(w, str) for w in value):
        argv = tuple(value)
    else:
        raise ValueError(f"a command must be a string or a list of strings, not {value!r}")
    if not argv or not argv[0]:
        raise ValueError("the command is empty")
    return argv


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"must be a list of strings, not {value!r}")
    for item in value:
        if not isinstance(item, str) or not item:
            raise ValueError(f"must be a list of non-empty strings; {item!r} is not one")
    return tuple(value)


def _abs_paths(value: object) -> tuple[str, ...]:
    out = []
    for item in _strings(value):
        path = os.path.expanduser(item)
        if not os.path.isabs(path):
            raise ValueError(f"{item!r} is not an absolute path")
        out.append(os.path.normpath(path))
    return tuple(out)


def _name(value: object) -> str:
    if not isinstance(value, str) or not commands.DESKTOP_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: use 1 to 32 of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit (it is used in paths)"
        )
    return value


def _layout(value: object) -> str:
    if value not in LAYOUTS:
        raise ValueError(f"must be one of {', '.join(repr(x) for x in LAYOUTS)}, not {value!r}")
    return str(value)


def _action(value: object) -> spec.VerdictAction:
    try:
        return spec.VerdictAction(value)  # type: ignore[arg-type]  # checked below
    except ValueError:
        choices = ", ".join(repr(a.value) for a in spec.VerdictAction)
        raise ValueError(f"must be one of {choices}, not {value!r}") from None


def _allow_rule(value: object) -> spec.AllowRule:
    if isinstance(value, str):
        value = Allow(value)
    if not isinstance(value, Allow):
        raise ValueError(f"allow entries are Allow(...) or host strings, not {value!r}")
    v = value._values
    host = v["host"]
    if not isinstance(host, str) or not host:
        raise ValueError(f"Allow host must be a non-empty string, not {host!r}")
    host = host.strip().lower()
    if "/" in host or ":" in host or host.replace(".", "").isdigit():
        try:
            host = str(ipaddress.ip_network(host, strict=True))
        except ValueError as exc:
            raise ValueError(f"Allow host {v['host']!r} is not a valid address: {exc}") from None
        if host.endswith(("/32", "/128")):
            host = host.rsplit("/", 1)[0]
    elif len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise ValueError(
            f"Allow host {v['host']!r} is not a host name ('example.org', '*.example.org'), "
            "an address or a CIDR"
        )
    ports_raw = v["ports"]
    ports_seq = (ports_raw,) if isinstance(ports_raw, int) else ports_raw
    if not isinstance(ports_seq, Sequence) or isinstance(ports_seq, str):
        raise ValueError(f"Allow ports must be a port or a list of ports, not {ports_raw!r}")
    ports = []
    for p in ports_seq:
        if not isinstance(p, int) or isinstance(p, bool) or not 1 <= p <= 65535:
            raise ValueError(f"Allow ports are 1..65535, not {p!r}")
        ports.append(p)
    proto = v["proto"]
    if proto not in ("tcp", "udp", "any"):
        raise ValueError(f"Allow proto must be 'tcp', 'udp' or 'any', not {proto!r}")
    return spec.AllowRule(host=host, ports=tuple(sorted(set(ports))), proto=str(proto))


# --- the validator -----------------------------------------------------------------------

T = TypeVar("T")


class _Report:
    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[ConfigError] = []

    def error(self, line: int, message: str) -> None:
        self.items.append(ConfigError(self.file, line, message))

    def warn(self, line: int, message: str) -> None:
        self.items.append(ConfigError(self.file, line, message, "warning"))

    @property
    def failed(self) -> bool:
        return any(e.is_error for e in self.items)

    def result(self) -> list[ConfigError]:
        # A value shared by two desktops reports its problems once.
        return sorted(dict.fromkeys(self.items), key=lambda e: e.line)


class _Fields:
    """Converts the fields of one declaration, recording each failure and carrying on."""

    def __init__(self, report: _Report, line: int, prefix: str) -> None:
        self.report = report
        self.line = line
        self.prefix = prefix
        self.ok = True

    def error(self, message: str, line: int = 0) -> None:
        self.ok = False
        self.report.error(line or self.line, f"{self.prefix}{message}")

    def warn(self, message: str, line: int = 0) -> None:
        self.report.warn(line or self.line, f"{self.prefix}{message}")

    def get(self, where: str, fn: Callable[[object], T], value: object, default: T) -> T:
        try:
            return fn(value)
        except ValueError as exc:
            self.error(f"{where}: {exc}")
            return default

    def unknown(self, decl: _Decl, where: str) -> None:
        for key in decl._unknown:
            close = difflib.get_close_matches(key, decl._values, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.error(
                f"unknown field {key!r} in {where}{hint} (fields: {', '.join(decl._values)})",
                decl._line,
            )


def _machine_cpus() -> frozenset[int]:
    try:
        online = Path("/sys/devices/system/cpu/online").read_text().strip()
        return frozenset(parse_cpuset(online) or ())
    except (OSError, ValueError):
        return frozenset(range(os.cpu_count() or 1))


def _limits(decl: object, f: _Fields, name: str) -> spec.Limits:
    if decl is None:
        return spec.Limits()
    if not isinstance(decl, Limits):
        f.error(f"limits must be Limits(...), not {_type_name(decl)}")
        return spec.Limits()
    sub = _Fields(f.report, decl._line or f.line, f"desktop {name!r}: limits: ")
    sub.unknown(decl, "Limits()")
    v = decl._values
    limits = spec.Limits(
        cpu_weight=sub.get("cpu_weight", _int_in(1, 10000), v["cpu_weight"], None),
        cpu_max=sub.get("cpu_max", parse_cpu_max, v["cpu_max"], None),
        memory_high=sub.get("memory_high", parse_size, v["memory_high"], None),
        memory_max=sub.get("memory_max", parse_size, v["memory_max"], None),
        pids_max=sub.get("pids_max", _int_in(1, 1 << 31), v["pids_max"], None),
        cpuset=sub.get("cpuset", parse_cpuset, v["cpuset"], None),
    )
    if limits.memory_high and limits.memory_max and limits.memory_high > limits.memory_max:
        sub.error(
            f"memory_high ({v['memory_high']!r}) is above memory_max ({v['memory_max']!r}): "
            "throttling must start before the OOM killer does"
        )
    cpus = _machine_cpus()
    if limits.cpuset:
        missing = [c for c in limits.cpuset if c not in cpus]
        if missing:
            sub.warn(
                f"cpuset names CPU {', '.join(map(str, missing))}, which this machine does not "
                f"have (it has {_cpu_list(cpus)}); those are ignored"
            )
    if limits.cpu_max and limits.cpu_max > len(cpus):
        sub.warn(
            f"cpu_max {v['cpu_max']!r} is more than this machine's {len(cpus)} CPUs: "
            "it never limits anything here"
        )
    f.ok = f.ok and sub.ok
    return limits


def _cpu_list(cpus: frozenset[int]) -> str:
    return ", ".join(map(str, sorted(cpus)))


def _devices(decl: object, f: _Fields) -> spec.Devices:
    if decl is None:
        return spec.Devices()
    if not isinstance(decl, Devices):
        f.error(f"devices must be Devices(...), not {_type_name(decl)}")
        return spec.Devices()
    f.unknown(decl, "Devices()")
    got = {k: f.get(f"devices: {k}", _bool, v, False) for k, v in decl._values.items()}
    return spec.Devices(**got)


def _network(decl: object, f: _Fields) -> spec.NetworkPolicy:
    if decl is None:
        return spec.NetworkPolicy()
    if isinstance(decl, str):
        decl = Network(decl)
    if not isinstance(decl, Network):
        f.error(f"network must be Network.none(), .full() or .filtered(...), not {decl!r}")
        return spec.NetworkPolicy()
    f.unknown(decl, "Network()")
    line = decl._line or f.line
    v = decl._values
    try:
        mode = spec.NetMode(v["mode"])  # type: ignore[arg-type]  # checked below
    except ValueError:
        f.error(f"network: mode must be 'none', 'full' or 'filtered', not {v['mode']!r}", line)
        return spec.NetworkPolicy()
    block_lan = f.get("network: block_lan", _bool, v["block_lan"], False)
    allow_raw = v["allow"]
    rules: list[spec.AllowRule] = []
    if isinstance(allow_raw, str) or not isinstance(allow_raw, Sequence):
        f.error(f"network: allow must be a list of Allow(...) or host strings, not {allow_raw!r}")
        allow_raw = ()
    for item in allow_raw:
        try:
            rules.append(_allow_rule(item))
        except ValueError as exc:
            item_line = item._line if isinstance(item, _Decl) and item._line else line
            f.error(f"network: {exc}", item_line)
        if isinstance(item, Allow):
            f.unknown(item, "Allow()")
    if rules and mode is not spec.NetMode.FILTERED:
        f.error(f"network: allow rules only apply to Network.filtered(), not {mode.value!r}", line)
    if mode is spec.NetMode.FILTERED and not allow_raw:
        f.warn("network: filtered with an empty allow list reaches nothing (as none())", line)
    return spec.NetworkPolicy(mode=mode, allow=tuple(rules), block_lan=block_lan)


def _downloads(decl: object, f: _Fields) -> spec.DownloadsPolicy | None:
    if decl is None:
        return None
    if not isinstance(decl, Downloads):
        f.error(f"downloads must be Downloads(...), not {_type_name(decl)}")
        return None
    f.unknown(decl, "Downloads()")
    v = decl._values
    sub = _Fields(f.report, decl._line or f.line, f.prefix + "downloads: ")
    release_to = sub.get("release_to", _name, v["release_to"], "")
    hold = sub.get("hold", _hold, v["hold"], 0.0)
    actions = {k: sub.get(k, _action, v[k], spec.VerdictAction.KEEP) for k in _ACTION_FIELDS}
    safe_copy = sub.get("safe_copy", _bool, v["safe_copy"], False)
    f.ok = f.ok and sub.ok
    return spec.DownloadsPolicy(
        release_to=release_to, hold=hold, safe_copy=bool(safe_copy), **actions
    )


_ACTION_FIELDS = ("on_suspicious", "on_malicious", "on_cannot_inspect")


def _hold(value: object) -> float:
    seconds = parse_duration(value)
    if seconds is None:
        raise ValueError(
            "cannot be never: clean items are released after the hold; to keep items, "
            "hold them long or set the on_* actions"
        )
    return seconds


def _autostart(value: object, f: _Fields) -> tuple[spec.Autostart, ...]:
    if isinstance(value, str | Autostart) or not isinstance(value, Sequence):
        f.error(f"autostart must be a list of commands or Autostart(...), not {value!r}")
        return ()
    out: list[spec.Autostart] = []
    for item in value:
        decl = item if isinstance(item, Autostart) else Autostart(item)
        if isinstance(item, Autostart):
            f.unknown(item, "Autostart()")
        argv: tuple[str, ...] = f.get("autostart", _argv, decl._values["argv"], ())
        at_start = f.get("autostart: at_start", _bool, decl._values["at_start"], False)
        if argv:
            out.append(spec.Autostart(argv=argv, at_start=at_start))
    return tuple(out)


# Names a desktop may not have: the compositor files trusted host clients under "host".
RESERVED_DESKTOP_NAMES = frozenset({"host"})


def _desktop_spec(decl: _DesktopDecl, report: _Report) -> spec.DesktopSpec | None:
    v = decl._values
    name = v["name"]
    f = _Fields(report, decl._line, f"desktop {name!r}: ")
    f.unknown(decl, "desktop()")
    try:
        _name(name)
    except ValueError as exc:
        f.error(f"bad desktop name: {exc}")
    if name in RESERVED_DESKTOP_NAMES:
        f.error(
            f"bad desktop name: {name!r} is reserved: it names zionwm's own trusted windows "
            "(on the host socket), which a desktop's windows must never be taken for"
        )
    if v["colour"] is None:
        f.error("no colour: every desktop needs its trust colour, e.g. colour='#3b82f6'")
        colour = (0.0, 0.0, 0.0, 1.0)
    else:
        colour = f.get("colour", parse_colour, v["colour"], (0.0, 0.0, 0.0, 1.0))
    sname = str(name)
    limits = _limits(v["limits"], f, sname)
    devices = _devices(v["devices"], f)
    network = _network(v["network"], f)
    freeze_after = f.get("freeze_after", parse_duration, v["freeze_after"], None)
    downloads = _downloads(v["downloads"], f)
    bools: dict[str, Any] = {
        k: f.get(k, _bool, v[k], False)
        for k in (
            "reclaim_when_frozen",
            "ephemeral",
            "writable_usr",
            "allow_fullscreen",
            "x11",
            "nested_sandbox",
        )
    }
    fonts: tuple[str, ...] = f.get("fonts", _abs_paths, v["fonts"], ())
    app_dirs: tuple[str, ...] = f.get("app_dirs", _abs_paths, v["app_dirs"], ())
    for kind, dirs in (("fonts", fonts), ("app_dirs", app_dirs)):
        for d in dirs:
            if not os.path.isdir(d):
                f.warn(f"{kind}: {d} is not a directory on this machine; it will be skipped")
    template = None if v["template"] is None else f.get("template", _name, v["template"], None)
    bus = _desktop_bus(v, f)
    env: tuple[str, ...] = f.get("env", _strings, v["env"], ())
    for var in env:
        if not _ENV_NAME.fullmatch(var):
            f.error(f"env: {var!r} is not an environment variable name")
    autostart = _autostart(v["autostart"], f)
    window_layout: str = f.get("layout", _layout, v["layout"], "float")
    if bools["reclaim_when_frozen"] and freeze_after is None and f.ok:
        f.warn("reclaim_when_frozen has no effect: freeze_after is None, it never freezes")
    if not f.ok:
        return None
    return spec.DesktopSpec(
        name=sname,
        colour=colour,
        limits=limits,
        devices=devices,
        network=network,
        freeze_after=freeze_after,
        downloads=downloads,
        fonts=fonts,
        app_dirs=app_dirs,
        template=template,
        env=env,
        autostart=autostart,
        source_line=decl._line,
        layout=window_layout,
        **bools,
        **bus,
    )


def _desktop_bus(v: dict[str, object], f: _Fields) -> dict[str, Any]:
    """dbus, open_links_in, browser, notify_when_frozen (docs/desktop-bus.md)."""
    out: dict[str, Any] = {}
    out["dbus"] = f.get("dbus", _choice("desktop", "none", "host"), v["dbus"], "desktop")
    if out["dbus"] == "host":
        f.warn("dbus='host': its programs reach the host's session and system buses")
    target = v["open_links_in"]
    out["open_links_in"] = None if target is None else f.get("open_links_in", _name, target, None)
    default_browser: tuple[str, ...] = ("chromium",)
    out["browser"] = f.get("browser", _argv, v["browser"], default_browser)
    out["notify_when_frozen"] = f.get(
        "notify_when_frozen", _choice("queue", "show"), v["notify_when_frozen"], "queue"
    )
    return out


def _choice(*allowed: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(map(repr, allowed))}")
        return str(value)

    return check


def _check_desktops(load: _Load, report: _Report, complete: bool) -> list[spec.DesktopSpec]:
    specs: list[spec.DesktopSpec] = []
    first_line: dict[object, int] = {}
    for decl in load.desktops:
        name = decl._values["name"]
        if isinstance(name, str) and name in first_line:
            report.error(
                decl._line,
                f"duplicate desktop {name!r}: already declared at line {first_line[name]}",
            )
            continue
        if isinstance(name, str):
            first_line[name] = decl._line
        s = _desktop_spec(decl, report)
        if s is not None:
            specs.append(s)
    if not complete:
        return specs  # the file stopped early: names declared after the failure are unknown
    if not load.desktops:
        report.error(0, "no desktops: declare at least one with desktop(NAME, colour=...)")
    for decl in load.desktops:
        target = decl._values.get("open_links_in")
        if isinstance(target, str) and target not in first_line:
            report.error(
                decl._line,
                f"desktop {decl._values['name']!r}: open_links_in names {target!r}, "
                "which is not a declared desktop",
            )
    for decl in load.desktops:
        dl = decl._values["downloads"]
        if not isinstance(dl, Downloads):
            continue
        target = dl._values["release_to"]
        line = dl._line or decl._line
        if target == decl._values["name"]:
            report.error(
                line,
                f"desktop {target!r}: downloads: release_to must name another desktop "
                "(releasing into its own Downloads would feed the inbox back to itself)",
            )
        elif isinstance(target, str) and target not in first_line:
            close = difflib.get_close_matches(target, [str(n) for n in first_line], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            report.error(
                line,
                f"desktop {decl._values['name']!r}: downloads: release_to names {target!r}, "
                f"which is not a declared desktop{hint}",
            )
    return specs


def check_desktop(
    values: dict[str, object], others: set[str], file: str
) -> tuple[spec.DesktopSpec | None, list[ConfigError]]:
    """Validate one desktop given as the keyword values of `desktop()` (declarations such as
    `Limits(...)` included), with the same rules as a config file; `others` are the names of
    the other desktops (release_to must name one of them). Used for desktops made or changed
    while zionwm runs, so that they can never hold a value the config file would refuse."""
    report = _Report(file)
    params = inspect.signature(desktop).parameters
    full = {k: p.default for k, p in params.items() if p.kind is p.KEYWORD_ONLY}
    unknown = {k: v for k, v in values.items() if k not in params}
    full.update({k: v for k, v in values.items() if k in params})
    full["name"] = values.get("name")
    decl = _DesktopDecl(full, unknown)
    result = _desktop_spec(decl, report)
    name = full["name"]
    if isinstance(name, str) and name in others:
        report.error(0, f"a desktop named {name!r} already exists")
    dl = full["downloads"]
    if result is not None and isinstance(dl, Downloads):
        target = dl._values["release_to"]
        if target == name:
            report.error(0, f"desktop {name!r}: downloads: release_to must name another desktop")
        elif isinstance(target, str) and target not in others:
            report.error(
                0,
                f"desktop {name!r}: downloads: release_to names {target!r}, which is not a "
                f"desktop (desktops: {', '.join(sorted(others)) or 'none'})",
            )
    if report.failed:
        return None, report.result()
    return result, report.result()


def _check_bindings(
    load: _Load, report: _Report, desktop_names: set[str], complete: bool
) -> list[Binding]:
    out: list[Binding] = []
    seen: dict[tuple[frozenset[str], str], Binding] = {}
    for line, keys, command in load.bindings:
        try:
            modifiers, keysym = parse_key(keys)
        except ValueError as exc:
            report.error(line, str(exc))
            modifiers, keysym = frozenset(), ""
        try:
            if isinstance(command, str):
                parsed = commands.parse(command)
            elif isinstance(command, Sequence):
                parsed = commands.parse(list(command))
            else:
                raise commands.CommandError(
                    f"a command is a string or a list of strings, not {command!r}"
                )
        except commands.CommandError as exc:
            report.error(line, f"binding {keys!r}: {exc}")
            continue
        if complete and parsed.desktop is not None and parsed.desktop not in desktop_names:
            report.error(
                line,
                f"binding {keys!r}: {parsed.name}: no desktop named {parsed.desktop!r} "
                f"(desktops: {', '.join(sorted(desktop_names)) or 'none'})",
            )
            continue
        if not keysym:
            continue
        if not modifiers and not _STANDALONE_KEY.fullmatch(keysym):
            report.warn(
                line,
                f"binding {keys!r} has no modifier: programs never receive that key; "
                "add Super+ unless that is what you want",
            )
        binding = Binding(modifiers, keysym, str(parsed), line, parsed)
        previous = seen.get((modifiers, keysym))
        if previous is not None:
            report.error(
                line,
                f"duplicate binding {keys!r}: {binding.keys} is already bound at line "
                f"{previous.line} (to {previous.command!r})",
            )
            continue
        seen[(modifiers, keysym)] = binding
        out.append(binding)
    return out


# Keys that programs rarely need, so binding them alone is a reasonable choice.
_STANDALONE_KEY = re.compile(r"F\d+|XF86\w+|Print|Pause|Scroll_Lock|Menu")

_SETTINGS_FIELDS = tuple(f for f in Settings.__dataclass_fields__ if f != "source")


def _antivirus_mode(v: object) -> str:
    if v not in ("required", "if-available", "off"):
        raise ValueError(f'{v!r} is not "required", "if-available" or "off"')
    return str(v)


def _clamd_socket(v: object) -> Path | None:
    if v == "":
        raise ValueError('an empty path; to use no antivirus at all, write antivirus="off"')
    return Path(_abs_paths([v])[0]) if v is not None else None


def _check_settings(load: _Load, report: _Report, source: Path) -> Settings:
    given: dict[str, tuple[int, object]] = {}
    for line, values in load.settings:
        for key, value in values.items():
            if key.startswith("?"):
                close = difflib.get_close_matches(key[1:], _SETTINGS_FIELDS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                report.error(line, f"unknown field {key[1:]!r} in settings(){hint}")
                continue
            given[key] = (line, value)

    result: dict[str, object] = {}

    def conv(key: str, fn: Callable[[object], object]) -> None:
        if key not in given:
            return
        line, value = given[key]
        try:
            result[key] = fn(value)
        except ValueError as exc:
            report.error(line, f"settings: {key}: {exc}")

    conv("terminal", _argv)
    for key in ("keyboard_layout", "keyboard_variant", "keyboard_options", "keyboard_model"):
        conv(key, _plain_string)
    conv("repeat_rate", _int_in(0, 1000))
    conv("repeat_delay", _int_in(0, 10000))
    conv("clipboard_max_bytes", parse_size)
    conv("clipboard_mime_types", _mime_types)
    conv("clamd_socket", _clamd_socket)
    conv("antivirus", _antivirus_mode)
    conv("yara_rule_dirs", lambda v: tuple(Path(p) for p in _abs_paths(v)))
    conv("cursor_theme", _plain_string)
    conv("cursor_size", _int_in(8, 512))
    if "clipboard_max_bytes" in given and result.get("clipboard_max_bytes", 0) is None:
        report.error(given["clipboard_max_bytes"][0], "settings: clipboard_max_bytes needs a size")
        del result["clipboard_max_bytes"]
    for d in result.get("yara_rule_dirs", ()):  # type: ignore[attr-defined]
        if not Path(d).is_dir():
            report.warn(given["yara_rule_dirs"][0], f"settings: yara_rule_dirs: {d} is missing")
    keyboard = [k for k in given if k.startswith("keyboard_")]
    if keyboard and all(k in result for k in keyboard):
        _check_keymap(result, max(given[k][0] for k in keyboard), report)
    return Settings(**result, source=source)  # type: ignore[arg-type]


def _plain_string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {value!r}")
    return value


def _mime_types(value: object) -> tuple[str, ...]:
    types = _strings(value)
    for t in types:
        if any(c.isspace() for c in t):
            raise ValueError(f"{t!r} is not a MIME type")
    return types


def _check_keymap(got: dict[str, object], line: int, report: _Report) -> None:
    """Ask xkbcommon to build the keymap, so a typo in a layout is caught here and not by
    a keyboard that silently falls back to US."""
    names = {
        "layout": str(got.get("keyboard_layout", "")) or None,
        "variant": str(got.get("keyboard_variant", "")) or None,
        "options": str(got.get("keyboard_options", "")) or None,
        "model": str(got.get("keyboard_model", "")) or None,
    }
    messages: list[str] = []
    ctx = xkb.Context(no_environment_names=True)
    ctx.set_log_fn(lambda _ctx, _level, msg: messages.append(msg.strip()))
    try:
        ctx.keymap_new_from_names(**names)
    except xkb.XKBKeymapCreationFailure:
        # Without keyboard data on this machine no layout can be judged.
        try:
            xkb.Context(no_environment_names=True).keymap_new_from_names()
        except xkb.XKBKeymapCreationFailure:
            report.warn(line, "settings: cannot check the keyboard layout: no xkb data here")
            return
        detail = next((m for m in messages if "find" in m or "include" in m), "")
        given = ", ".join(f"{k}={v!r}" for k, v in names.items() if v)
        report.error(
            line,
            f"settings: xkbcommon cannot build a keymap from {given}"
            + (f": {detail}" if detail else ""),
        )
        return
    for msg in messages:
        if "Unrecognized RMLVO option" in msg:
            report.warn(line, f"settings: keyboard_options: {msg}")


# --- loading -----------------------------------------------------------------------------


def _user_line(tb: TracebackType | None, file: str) -> int:
    line = 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == file:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    missing = None
    if isinstance(exc, NameError):
        missing = exc.name
    elif isinstance(exc, ImportError):
        m = re.search(r"cannot import name '(\w+)'", str(exc))
        missing = m.group(1) if m else None
    if missing:
        close = difflib.get_close_matches(missing, __all__, n=1)
        if close:
            text += f" (did you mean {close[0]!r}?)"
    return text


@contextmanager
def _declaring(load: _Load) -> Iterator[None]:
    token = _ACTIVE.set(load)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def load_config(path: Path) -> tuple[Config | None, list[ConfigError]]:
    """Run the config file at `path` and validate what it declares.

    Returns the config (None if there is any error) and every problem found, errors and
    warnings, sorted by line.
    """
    file = str(path)
    report = _Report(file)
    try:
        source = path.read_bytes()
    except OSError as exc:
        report.error(0, f"cannot read the config file: {exc.strerror or exc}")
        return None, report.result()
    try:
        code = compile(source, file, "exec", dont_inherit=True)
    except SyntaxError as exc:
        report.error(exc.lineno or 0, f"syntax error: {exc.msg}")
        return None, report.result()
    except ValueError as exc:  # e.g. NUL bytes
        report.error(0, f"cannot compile: {exc}")
        return None, report.result()

    load = _Load(file)
    namespace: dict[str, object] = {
        "__name__": "__zionwm_config__",
        "__file__": file,
        "__builtins__": builtins,
    }
    complete = True
    with _declaring(load):
        try:
            exec(code, namespace)
        except Exception as exc:
            complete = False
            report.error(_user_line(exc.__traceback__, file), _describe(exc))
        except SystemExit as exc:
            complete = False
            line = _user_line(exc.__traceback__, file)
            report.error(line, "the config called exit(): it must only declare, not exit")

    specs = _check_desktops(load, report, complete)
    bindings = _check_bindings(load, report, {d.name for d in specs}, complete)
    settings_ = _check_settings(load, report, path.absolute())
    if report.failed:
        return None, report.result()
    return Config(tuple(specs), tuple(bindings), settings_), report.result()


def default_config_path() -> Path:
    """$XDG_CONFIG_HOME/zionwm/config.py (~/.config/zionwm/config.py)."""
    return paths.config_home() / "config.py"


def load_default() -> Config:
    """The config shipped with zionwm; it is tested to load cleanly."""
    config, errors = load_config(DEFAULT_CONFIG)
    if config is None:
        raise RuntimeError("the shipped default config is broken: " + "; ".join(map(str, errors)))
    return config


def _write_default(path: Path) -> None:
    """Write the default config at `path` without ever replacing an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(DEFAULT_CONFIG.read_bytes())
        os.link(tmp, path)  # fails if the user's file appeared meanwhile
    finally:
        tmp.unlink(missing_ok=True)


def load_or_fallback(path: Path) -> tuple[Config, list[ConfigError], bool]:
    """The config to start with: the user's file, or the default if it is broken.

    A missing file is a first start: the default config is written there and loaded.
    Returns (config, problems, fell_back); fell_back is True when the user's file had
    errors and the default is used instead, so the caller can say so on screen.
    """
    if not path.exists() and not path.is_symlink():
        try:
            _write_default(path)
            log.info("first start: wrote the default config to %s", path)
        except OSError as exc:
            log.warning("cannot write the default config to %s: %s", path, exc)
            problem = ConfigError(
                str(path), 0, f"cannot write the default config here: {exc}", "warning"
            )
            return load_default(), [problem], False
    config, errors = load_config(path)
    if config is None:
        log.warning("%s has %d problem(s); using the locked-down default config", path, len(errors))
        return locked_down(load_default()), errors, True
    return config, errors, False


def locked_down(config: Config) -> Config:
    """What runs while the user's config is broken: the default desktops under their own
    names (so each one's files stay where they are, seen by that desktop only), each with
    no network, no devices, no X server, no granted host variables and nothing started by
    itself, and no session bus (so no links routed into another desktop either). A broken
    file must never grant more than the user asked for, and the default config grants a lot
    (network, GPU, sound). Downloads policies stay: they only restrict."""
    desktops = tuple(
        replace(
            d,
            network=spec.NetworkPolicy(),
            dbus="none",
            devices=spec.Devices(),
            x11=False,
            env=(),
            autostart=(),
            allow_fullscreen=False,
            nested_sandbox=False,
        )
        for d in config.desktops
    )
    return replace(config, desktops=desktops)


def check_main(argv: Sequence[str]) -> int:
    """`zionwm --check-config [PATH]`: print every problem; 1 if any error, else 0."""
    if len(argv) > 1 or (argv and argv[0] in ("-h", "--help")):
        print("usage: zionwm --check-config [PATH]")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if argv:
        path = Path(argv[0])
    else:
        path = default_config_path()
        if not path.exists():
            print(f"{path}: no config file yet; zionwm writes the default there at first start")
            path = DEFAULT_CONFIG
    config, errors = load_config(path)
    for error in errors:
        print(error)
    if config is None:
        count = sum(e.is_error for e in errors)
        print(f"{path}: {count} error{'s' if count != 1 else ''}; zionwm would use the default")
        return 1
    names = ", ".join(d.name for d in config.desktops)
    warnings = f", {len(errors)} warning{'s' if len(errors) != 1 else ''}" if errors else ""
    print(
        f"{path}: OK: {len(config.desktops)} desktops ({names}), "
        f"{len(config.bindings)} key bindings{warnings}"
    )
    return 0
