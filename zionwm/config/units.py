"""Pure converters from what a user writes to the value a spec holds: sizes ("4G"), durations
("10m"), CPU shares ("20%"), CPU lists ("0-3,6"), colours ("#rrggbb"), key combinations
("Super+Shift+q"), names, paths and commands. Each returns the value or raises ValueError
with a plain explanation, which the validator files under the field's line.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Callable, Sequence

from xkbcommon import xkb

from zionwm import commands
from zionwm.isolation import spec
from zionwm.layout import LAYOUTS
from zionwm.suggest import close_matches

__all__ = [
    "parse_colour",
    "parse_cpu_max",
    "parse_cpuset",
    "parse_duration",
    "parse_key",
    "parse_size",
]

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
        close = close_matches(key, _COMMON_KEYS, n=1, cutoff=0.6)
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
