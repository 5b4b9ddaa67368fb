"""What a config file holds besides its desktops: `settings(...)` (the keyboard checked by
building its keymap with xkbcommon) and `bind(...)` key bindings."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from xkbcommon import xkb

from zionwm import commands
from zionwm.config.api import _Load
from zionwm.config.model import Binding, Settings
from zionwm.config.units import (
    _abs_paths,
    _argv,
    _int_in,
    _strings,
    parse_duration,
    parse_key,
    parse_size,
)
from zionwm.config.validate_report import Report, choice
from zionwm.suggest import close_matches


def check_bindings(
    load: _Load, report: Report, desktop_names: set[str], complete: bool
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


def check_settings(load: _Load, report: Report, source: Path) -> Settings:
    given: dict[str, tuple[int, object]] = {}
    for line, values in load.settings:
        for key, value in values.items():
            if key.startswith("?"):
                close = close_matches(key[1:], _SETTINGS_FIELDS, n=1)
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
    conv("color_scheme", choice("default", "dark", "light"))
    conv("accent_colour", _hex_colour)
    for key in ("font", "monospace_font", "document_font"):
        conv(key, _font_name)
    conv("lock_after", _lock_after)
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


def _lock_after(value: object) -> float | None:
    seconds = parse_duration(value)
    if seconds is not None and seconds < 10:
        raise ValueError(f"at least 10 seconds (a lock that soon locks you out), not {value!r}")
    return seconds


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


def _check_keymap(got: dict[str, object], line: int, report: Report) -> None:
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


def _hex_colour(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        raise ValueError(f"{value!r} is not a colour: write '#rrggbb'")
    return value.lower()


def _font_name(value: object) -> str:
    if not isinstance(value, str) or len(value) > 100 or not value.isprintable():
        raise ValueError(f"{value!r} is not a font name such as 'Cantarell 11'")
    return value
