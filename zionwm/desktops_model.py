"""Desktops as data: the settings a desktop can be given by name, and the pure merge of the
config file's desktops with those made or changed while zionwm runs.

This module owns:
- the table of settings `zionctl desktop create/set` accepts (`SETTINGS`), which of them
  apply to a running desktop at once and which at its programs' next start;
- the conversion of a validated `DesktopSpec` to plain values and back through the config
  file's own validator (`zionwm.config.check_desktop`), so a value typed at run time meets
  exactly the rules a value written in config.py meets;
- `merge`: config.py's specs + the desktops file (run-time desktops, overrides of config.py
  desktops, temporary grants) -> the effective specs, with every layer that cannot be
  applied reported and left out (never half applied);
- `layers`: every effective setting of one desktop and the layer it came from.

Pure: no I/O beyond what the validator itself reads (CPU list, directories it checks).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from zionwm import config as cfg
from zionwm.desktops_store import DesktopsFile, Scalar, Settings
from zionwm.isolation.spec import DesktopSpec
from zionwm.suggest import close_matches

Plain = dict[str, Any]

# Keys of a run-time desktop's table that are facts about it, not settings.
META_KEYS = ("cloned_from", "deleted_at")
_TRUE = ("yes", "true", "on", "1")
_FALSE = ("no", "false", "off", "0")
_NO_LIMIT = ("none", "max", "unlimited", "infinity")
LIMIT_KEYS = ("memory_max", "memory_high", "cpu_max", "cpu_weight", "pids_max", "cpuset")
DEVICE_KEYS = ("gpu", "audio", "microphone", "camera")
_PLAIN_BOOLS = ("ephemeral", "writable_usr", "allow_fullscreen", "x11", "reclaim_when_frozen")
DEFAULT_HOLD = "10m"


@dataclass(frozen=True)
class Setting:
    kind: str  # "text", "int" or "bool"
    live: bool  # True: applies to the running desktop at once; False: at its next start
    help: str


SETTINGS: dict[str, Setting] = {
    "colour": Setting("text", True, "trust colour, '#rrggbb'"),
    "network": Setting("text", True, "none | full | filtered:HOST,HOST,..."),
    "block_lan": Setting("bool", True, "deny the local network even where the network is on"),
    "memory_max": Setting("text", True, "memory limit, e.g. 4G (OOM kill above it)"),
    "memory_high": Setting("text", True, "memory throttle, e.g. 3G"),
    "cpu_max": Setting("text", True, "CPU limit, e.g. 200% (two CPUs)"),
    "cpu_weight": Setting("int", True, "CPU weight 1..10000 (100 = normal)"),
    "pids_max": Setting("int", True, "most processes at once"),
    "cpuset": Setting("text", True, "dedicated CPUs, e.g. 0-1"),
    "freeze_after": Setting("text", True, "freeze this long after being hidden, or never"),
    "reclaim_when_frozen": Setting("bool", True, "push memory to swap while frozen"),
    "allow_fullscreen": Setting("bool", True, "true fullscreen may hide the strip"),
    "downloads_to": Setting("text", True, "release audited downloads into this desktop, or none"),
    "hold": Setting("text", True, "how long clean downloads are held, e.g. 10m"),
    "template": Setting("text", False, "root-filesystem template, or none"),
    "ephemeral": Setting("bool", False, "keep nothing its programs write"),
    "gpu": Setting("bool", False, "the GPU (/dev/dri)"),
    "audio": Setting("bool", False, "sound playback"),
    "microphone": Setting("bool", False, "sound capture"),
    "camera": Setting("bool", False, "cameras (/dev/video*)"),
    "x11": Setting("bool", False, "an Xwayland of its own"),
    "writable_usr": Setting("bool", False, "a writable layer over /usr"),
}
_ALIASES = {"color": "colour", "downloads": "downloads_to", "net": "network"}


# --- what the user types -------------------------------------------------------------------


def setting_key(word: str) -> str:
    """The setting a user's key names ("memory-max", "Memory_Max" -> "memory_max")."""
    key = word.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in SETTINGS:
        close = close_matches(key, SETTINGS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (settings: {', '.join(SETTINGS)})"
        raise ValueError(f"unknown setting {word!r}{hint}")
    return key


def setting_value(key: str, value: Scalar) -> Scalar:
    """The value to keep for `key`: booleans and whole numbers typed as text become what
    they mean; anything else stays as typed, for the validator to judge."""
    kind = SETTINGS[key].kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{key}: expected yes or no, not {value!r}")
    if isinstance(value, bool):
        raise ValueError(f"{key}: expected a value, not {value!r}")
    if kind == "int" and isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value.strip() if isinstance(value, str) else value


def parse_assignment(text: str) -> tuple[str, Scalar]:
    """ "memory-max=4G" -> ("memory_max", "4G")."""
    if "=" not in text:
        raise ValueError(f"{text!r}: write KEY=VALUE, e.g. memory_max=4G")
    word, value = text.split("=", 1)
    key = setting_key(word)
    return key, setting_value(key, value)


# --- specs <-> plain values ----------------------------------------------------------------


def _hex(colour: tuple[float, float, float, float]) -> str:
    digits = [round(c * 255) for c in colour]
    text = "#" + "".join(f"{d:02x}" for d in digits[:3])
    return text if digits[3] == 255 else text + f"{digits[3]:02x}"


def _listify(value: object) -> object:
    return [_listify(v) for v in value] if isinstance(value, tuple | list) else value


def plain_from_spec(spec: DesktopSpec) -> Plain:
    """The values of `desktop(...)` that declare `spec`, as plain data."""
    net = spec.network
    dl = spec.downloads
    plain: Plain = {
        "colour": _hex(spec.colour),
        "limits": {
            f.name: _listify(getattr(spec.limits, f.name)) for f in dataclasses.fields(spec.limits)
        },
        "devices": dataclasses.asdict(spec.devices),
        "network": {
            "mode": net.mode.value,
            "allow": [
                {"host": a.host, "ports": list(a.ports), "proto": a.proto} for a in net.allow
            ],
            "block_lan": net.block_lan,
        },
        "downloads": None
        if dl is None
        else {
            "release_to": dl.release_to,
            "hold": dl.hold,
            "on_suspicious": dl.on_suspicious.value,
            "on_malicious": dl.on_malicious.value,
            "on_cannot_inspect": dl.on_cannot_inspect.value,
        },
        "autostart": [{"argv": list(a.argv), "at_start": a.at_start} for a in spec.autostart],
    }
    for f in dataclasses.fields(spec):
        if f.name not in plain and f.name not in ("name", "source_line"):
            plain[f.name] = _listify(getattr(spec, f.name))
    return plain


def default_plain() -> Plain:
    """A desktop with nothing set (and no colour yet: every desktop needs one given)."""
    plain = plain_from_spec(DesktopSpec(name="-", colour=(0.0, 0.0, 0.0, 1.0)))
    plain["colour"] = None
    return plain


def declarations(name: str, plain: Plain) -> dict[str, object]:
    """`desktop()`'s keyword values for `plain`, with the config file's declaration types."""
    kw: dict[str, object] = {k: copy.deepcopy(v) for k, v in plain.items()}
    kw["name"] = name
    kw["limits"] = cfg.Limits(**plain["limits"])
    kw["devices"] = cfg.Devices(**plain["devices"])
    net = plain["network"]
    allow = [
        cfg.Allow(a["host"], ports=a["ports"], proto=a["proto"]) if isinstance(a, dict) else a
        for a in net["allow"]
    ]
    kw["network"] = cfg.Network(net["mode"], allow=allow, block_lan=net["block_lan"])
    dl = plain["downloads"]
    kw["downloads"] = None if dl is None else cfg.Downloads(**dl)
    kw["autostart"] = [cfg.Autostart(a["argv"], at_start=a["at_start"]) for a in plain["autostart"]]
    return kw


def validate(name: str, plain: Plain, others: set[str]) -> DesktopSpec:
    """The spec for `plain`, or ValueError with the validator's first error on one line."""
    spec, problems = cfg.check_desktop(declarations(name, plain), others, "desktop")
    if spec is None:
        errors = [p.message for p in problems if p.is_error]
        raise ValueError(errors[0] if errors else f"desktop {name!r} is not valid")
    return spec


# --- applying settings to plain values -----------------------------------------------------


def _no_limit(value: Scalar) -> Scalar | None:
    return None if isinstance(value, str) and value.strip().lower() in _NO_LIMIT else value


_HOST_PORTS = re.compile(r"([^:/]+(?:/\d+)?)(?::(\d+(?:\+\d+)*))?(?:/(tcp|udp|any))?")


def _allow_item(text: str) -> Any:
    """ "host", "10.0.0.0/8", "host:443", "host:53+5353/udp" (as `shown_settings` writes)."""
    m = _HOST_PORTS.fullmatch(text)
    if m is None or (m.group(2) is None and m.group(3) is None):
        return text
    ports = [int(p) for p in m.group(2).split("+")] if m.group(2) else []
    return {"host": m.group(1), "ports": ports, "proto": m.group(3) or "tcp"}


def _set_network(plain: Plain, value: Scalar) -> None:
    text = str(value).strip()
    mode, _, hosts = text.partition(":")
    net = plain["network"]
    net["mode"] = mode.strip().lower()
    net["allow"] = [_allow_item(h.strip()) for h in hosts.split(",") if h.strip()]


def _set_downloads_to(plain: Plain, value: Scalar) -> None:
    if str(value).strip().lower() in ("", "none"):
        plain["downloads"] = None
        return
    current = plain["downloads"] or {
        "release_to": "",
        "hold": DEFAULT_HOLD,
        "on_suspicious": "keep",
        "on_malicious": "keep",
        "on_cannot_inspect": "keep",
    }
    plain["downloads"] = {**current, "release_to": value}


def _set_hold(plain: Plain, value: Scalar) -> None:
    if plain["downloads"] is None:
        raise ValueError("hold: the desktop has no downloads_to (set that first)")
    plain["downloads"] = {**plain["downloads"], "hold": value}


def _setter(key: str) -> Callable[[Plain, Scalar], None]:
    if key in LIMIT_KEYS:
        return lambda p, v: p["limits"].__setitem__(key, _no_limit(v))
    if key in DEVICE_KEYS:
        return lambda p, v: p["devices"].__setitem__(key, v)
    if key == "block_lan":
        return lambda p, v: p["network"].__setitem__("block_lan", v)
    if key == "template":
        return lambda p, v: p.__setitem__("template", None if _no_limit(v) is None else v)
    special: dict[str, Callable[[Plain, Scalar], None]] = {
        "network": _set_network,
        "downloads_to": _set_downloads_to,
        "hold": _set_hold,
    }
    return special.get(key) or (lambda p, v: p.__setitem__(key, v))


_SETTERS = {key: _setter(key) for key in SETTINGS}


def apply_settings(plain: Plain, settings: Settings) -> Plain:
    """A copy of `plain` with `settings` applied (in the table's order: downloads_to before
    hold). Unknown keys raise ValueError."""
    out = copy.deepcopy(plain)
    for key in settings:
        if key not in SETTINGS and key not in META_KEYS:
            setting_key(key)  # raises with a hint
    for key in SETTINGS:
        if key in settings:
            _SETTERS[key](out, setting_value(key, settings[key]))
    return out


# --- what a person reads -------------------------------------------------------------------


def _size(n: object) -> str:
    if not isinstance(n, int) or isinstance(n, bool):
        return str(n)
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


def _duration(v: object) -> str:
    if v is None:
        return "never"
    if not isinstance(v, int | float):
        return str(v)
    for unit, secs in (("h", 3600), ("m", 60)):
        if v >= secs and v % secs == 0:
            return f"{int(v // secs)}{unit}"
    return f"{v:g}s"


def _shown(v: object) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list):
        return ",".join(map(str, v)) or "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _is_float(v: object) -> bool:
    return isinstance(v, float)


def _network_text(net: dict[str, Any]) -> str:
    if net["mode"] != "filtered":
        return str(net["mode"])
    hosts = []
    for a in net["allow"]:
        if isinstance(a, dict):
            ports = "+".join(map(str, a["ports"]))
            text = a["host"] + (f":{ports}" if ports else "")
            hosts.append(text + (f"/{a['proto']}" if a["proto"] != "tcp" else ""))
        else:
            hosts.append(str(a))
    return "filtered:" + ",".join(hosts)


def shown_settings(plain: Plain) -> dict[str, str]:
    """Every setting of `plain` as text, in the table's order."""
    lim = plain["limits"]
    dl = plain["downloads"]
    out: dict[str, str] = {}
    for key in SETTINGS:
        if key in ("memory_max", "memory_high"):
            out[key] = "none" if lim[key] is None else _size(lim[key])
        elif key == "cpu_max":
            v = lim[key]
            out[key] = "none" if v is None else (f"{v * 100:g}%" if _is_float(v) else str(v))
        elif key in LIMIT_KEYS:
            out[key] = _shown(lim[key])
        elif key in DEVICE_KEYS:
            out[key] = _shown(plain["devices"][key])
        elif key == "network":
            out[key] = _network_text(plain["network"])
        elif key == "block_lan":
            out[key] = _shown(plain["network"]["block_lan"])
        elif key == "freeze_after":
            out[key] = _duration(plain["freeze_after"])
        elif key == "downloads_to":
            out[key] = "none" if dl is None else str(dl["release_to"])
        elif key == "hold":
            out[key] = "-" if dl is None else _duration(dl["hold"])
        else:
            out[key] = _shown(plain.get(key))
    return out


# --- the merge -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Merged:
    desktops: tuple[DesktopSpec, ...]  # config.py's first, in order, then run-time ones
    origins: dict[str, str]  # name -> "config.py" or "run-time"
    problems: dict[str, list[str]]  # name -> layers that could not be applied, and why
    next_expiry: float | None  # earliest `until` of a grant still in force


def active_grant(data: DesktopsFile, name: str, now: float) -> Settings:
    grant = data.grants.get(name)
    if not grant:
        return {}
    until = grant.get("until")
    if not isinstance(until, int | float) or until <= now:
        return {}
    return {k: v for k, v in grant.items() if k != "until"}


def expired_grants(data: DesktopsFile, now: float) -> list[str]:
    return [n for n in data.grants if not active_grant(data, n, now)]


def _runtime_settings(data: DesktopsFile, name: str) -> Settings:
    return {k: v for k, v in data.desktops[name].items() if k not in META_KEYS}


def merge(base: Sequence[DesktopSpec], data: DesktopsFile, now: float) -> Merged:
    """The desktops zionwm runs: `base` (config.py's, already validated) with their
    overrides, then the run-time desktops, each with any grant still in force.

    A layer that does not validate (say, a run-time desktop releasing downloads into a
    desktop since removed from config.py) is left out and reported; the file keeps it."""
    cfg_names = [s.name for s in base]
    problems: dict[str, list[str]] = {}
    origins: dict[str, str] = {}
    runtime = []
    for name in data.desktops:
        if name in cfg_names:
            problems.setdefault(name, []).append(
                f"desktop {name!r} is declared in config.py now; its run-time entry is not used"
            )
        else:
            runtime.append(name)
    names = set(cfg_names) | set(runtime)
    out: list[DesktopSpec] = []
    for spec in base:
        origins[spec.name] = "config.py"
        layers = [data.overrides.get(spec.name, {}), active_grant(data, spec.name, now)]
        result = spec
        for settings in (s for s in layers if s):
            try:
                plain = apply_settings(plain_from_spec(result), settings)
                result = validate(spec.name, plain, names - {spec.name})
            except ValueError as exc:
                problems.setdefault(spec.name, []).append(str(exc))
                break
        out.append(dataclasses.replace(result, source_line=spec.source_line))
    for name in runtime:
        origins[name] = "run-time"
        try:
            plain = apply_settings(default_plain(), _runtime_settings(data, name))
            spec = validate(name, plain, names - {name})
        except ValueError as exc:
            problems.setdefault(name, []).append(str(exc))
            continue
        grant = active_grant(data, name, now)
        if grant:
            try:
                spec = validate(name, apply_settings(plain, grant), names - {name})
            except ValueError as exc:
                problems.setdefault(name, []).append(str(exc))
        out.append(spec)
    live = [data.grants[n]["until"] for n in data.grants if active_grant(data, n, now)]
    return Merged(
        tuple(out),
        origins,
        problems,
        float(min(live)) if live else None,
    )


# --- where each setting comes from ---------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str
    value: str
    layer: str  # "default", "config.py", "run-time", "grant", or "template"
    live: bool


def layers(name: str, config_spec: DesktopSpec | None, data: DesktopsFile, now: float) -> list[Row]:
    """Every setting of desktop `name` with the value in force and the topmost layer that
    gave it: built-in default -> config.py -> run-time change -> temporary grant."""
    default = shown_settings(default_plain())
    stack: list[tuple[str, Settings | None, Plain | None]] = []
    if config_spec is not None:
        stack.append(("config.py", None, plain_from_spec(config_spec)))
        stack.append(("run-time", data.overrides.get(name, {}), None))
    else:
        runtime = data.desktops.get(name, {})
        cloned = runtime.get("cloned_from")
        label = f"run-time (cloned from {cloned})" if cloned else "run-time"
        stack.append((label, _runtime_settings(data, name) if name in data.desktops else {}, None))
    stack.append(("grant", active_grant(data, name, now), None))
    plain = default_plain()
    source = dict.fromkeys(SETTINGS, "default")
    for label, settings, replacement in stack:
        if replacement is not None:
            shown = shown_settings(replacement)
            for key, text in shown.items():
                if text != default[key]:
                    source[key] = label
            plain = replacement
        elif settings:
            plain = apply_settings(plain, settings)
            for key in settings:
                if key in SETTINGS:
                    source[key] = label
                    if key == "downloads_to" and "hold" not in settings:
                        source["hold"] = label
    shown = shown_settings(plain)
    return [Row(k, shown[k], source[k], SETTINGS[k].live) for k in SETTINGS]
