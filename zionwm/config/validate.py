"""The validator: turns a config file's declarations into the frozen specs of
`zionwm.isolation.spec`, collecting every problem with its line (errors and warnings), so one
bad field never hides the next one. Plain functions over the declarations: tests call them
directly, and `check_desktop` judges a desktop made at run time by the same rules.
"""

from __future__ import annotations

import inspect
import ipaddress
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from xkbcommon import xkb

from zionwm import commands
from zionwm.config.api import (
    Allow,
    Autostart,
    Devices,
    Downloads,
    Limits,
    Network,
    _Decl,
    _DesktopDecl,
    _Load,
    desktop,
)
from zionwm.config.model import Binding, ConfigError, Settings
from zionwm.config.units import (
    _ENV_NAME,
    _HOSTNAME,
    _abs_paths,
    _action,
    _argv,
    _bool,
    _int_in,
    _layout,
    _name,
    _strings,
    _type_name,
    parse_colour,
    parse_cpu_max,
    parse_cpuset,
    parse_duration,
    parse_key,
    parse_size,
)
from zionwm.isolation import spec
from zionwm.suggest import close_matches

__all__ = ["check_desktop"]


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
            close = close_matches(key, decl._values, n=1)
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
    files = v.get("open_files_in")
    no_rules: tuple[tuple[str, str], ...] = ()
    out["open_files_in"] = (
        no_rules if files is None else f.get("open_files_in", _file_rules, files, no_rules)
    )
    return out


_MIME_PATTERN = re.compile(r"\*|[a-z0-9][a-z0-9.+-]*/(\*|[a-z0-9][a-z0-9.+-]*)")


def _file_rules(value: object) -> tuple[tuple[str, str], ...]:
    """open_files_in={"application/pdf": "web", "image/*": "personal", "*": "web"}; also
    as (pattern, desktop) pairs, the form the desktops file keeps it in."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list | tuple) and all(
        isinstance(v, list | tuple) and len(v) == 2 for v in value
    ):
        pairs = [(v[0], v[1]) for v in value]
    else:
        raise ValueError("must be a dict of MIME type (or 'type/*', or '*') to desktop name")
    out: list[tuple[str, str]] = []
    for pattern, target in pairs:
        if not isinstance(pattern, str) or not _MIME_PATTERN.fullmatch(pattern):
            raise ValueError(f"{pattern!r} is not a MIME type, 'type/*' or '*'")
        out.append((pattern, _name(target)))
    return tuple(out)


def _hex_colour(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        raise ValueError(f"{value!r} is not a colour: write '#rrggbb'")
    return value.lower()


def _font_name(value: object) -> str:
    if not isinstance(value, str) or len(value) > 100 or not value.isprintable():
        raise ValueError(f"{value!r} is not a font name such as 'Cantarell 11'")
    return value


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
        rules = decl._values.get("open_files_in")
        if isinstance(rules, Mapping):
            targets = list(rules.values())
        elif isinstance(rules, list | tuple):
            targets = [r[1] for r in rules if isinstance(r, list | tuple) and len(r) == 2]
        else:
            targets = []
        for target in targets:
            if isinstance(target, str) and target not in first_line:
                report.error(
                    decl._line,
                    f"desktop {decl._values['name']!r}: open_files_in names {target!r}, "
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
            close = close_matches(target, [str(n) for n in first_line], n=1)
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
    conv("color_scheme", _choice("default", "dark", "light"))
    conv("accent_colour", _hex_colour)
    for key in ("font", "monospace_font", "document_font"):
        conv(key, _font_name)
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
