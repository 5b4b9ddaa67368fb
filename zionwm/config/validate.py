"""The validator of desktops: turns a config file's `desktop(...)` declarations into the
frozen specs of `zionwm.isolation.spec`, collecting every problem with its line (errors and
warnings), so one bad field never hides the next one. Plain functions over the declarations:
tests call them directly, and `check_desktop` judges a desktop made at run time by the same
rules.

Beside it: validate_network.py (a desktop's network and its allow rules),
validate_settings.py (settings() and key bindings) and validate_report.py (the report and
field converter they all use).
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zionwm.config.api import (
    Autostart,
    Devices,
    Downloads,
    Limits,
    _DesktopDecl,
    _Load,
    desktop,
)
from zionwm.config.model import ConfigError
from zionwm.config.units import (
    _ENV_NAME,
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
    parse_size,
)
from zionwm.config.validate_network import network_policy
from zionwm.config.validate_report import Fields, Report, choice
from zionwm.isolation import spec
from zionwm.suggest import close_matches

__all__ = ["check_desktop"]


def _machine_cpus() -> frozenset[int]:
    try:
        online = Path("/sys/devices/system/cpu/online").read_text().strip()
        return frozenset(parse_cpuset(online) or ())
    except (OSError, ValueError):
        return frozenset(range(os.cpu_count() or 1))


def _limits(decl: object, f: Fields, name: str) -> spec.Limits:
    if decl is None:
        return spec.Limits()
    if not isinstance(decl, Limits):
        f.error(f"limits must be Limits(...), not {_type_name(decl)}")
        return spec.Limits()
    sub = Fields(f.report, decl._line or f.line, f"desktop {name!r}: limits: ")
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


def _devices(decl: object, f: Fields) -> spec.Devices:
    if decl is None:
        return spec.Devices()
    if not isinstance(decl, Devices):
        f.error(f"devices must be Devices(...), not {_type_name(decl)}")
        return spec.Devices()
    f.unknown(decl, "Devices()")
    got = {k: f.get(f"devices: {k}", _bool, v, False) for k, v in decl._values.items()}
    return spec.Devices(**got)


def _downloads(decl: object, f: Fields) -> spec.DownloadsPolicy | None:
    if decl is None:
        return None
    if not isinstance(decl, Downloads):
        f.error(f"downloads must be Downloads(...), not {_type_name(decl)}")
        return None
    f.unknown(decl, "Downloads()")
    v = decl._values
    sub = Fields(f.report, decl._line or f.line, f.prefix + "downloads: ")
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


def _autostart(value: object, f: Fields) -> tuple[spec.Autostart, ...]:
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


def _desktop_spec(decl: _DesktopDecl, report: Report) -> spec.DesktopSpec | None:
    v = decl._values
    name = v["name"]
    f = Fields(report, decl._line, f"desktop {name!r}: ")
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
    network = network_policy(v["network"], f)
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


def _desktop_bus(v: dict[str, object], f: Fields) -> dict[str, Any]:
    """dbus, open_links_in, browser, notify_when_frozen (docs/desktop-bus.md)."""
    out: dict[str, Any] = {}
    out["dbus"] = f.get("dbus", choice("desktop", "none", "host"), v["dbus"], "desktop")
    if out["dbus"] == "host":
        f.warn("dbus='host': its programs reach the host's session and system buses")
    target = v["open_links_in"]
    out["open_links_in"] = None if target is None else f.get("open_links_in", _name, target, None)
    default_browser: tuple[str, ...] = ("chromium",)
    out["browser"] = f.get("browser", _argv, v["browser"], default_browser)
    out["notify_when_frozen"] = f.get(
        "notify_when_frozen", choice("queue", "show"), v["notify_when_frozen"], "queue"
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


def check_desktops(load: _Load, report: Report, complete: bool) -> list[spec.DesktopSpec]:
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
    report = Report(file)
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
