"""The small API a config file is written in: `desktop`, `bind`, `settings` and the value
types `Limits`, `Devices`, `Network`, `Allow`, `Downloads`, `Autostart`.

The declarations only record what they were given and on which line of the file; all checking
happens afterwards (`zionwm.config.validate`), so that one bad field never hides the next one.
They declare into the load that is running (`_declaring`), and refuse to work outside one.
Names with a leading underscore are the package's own, read by the validator and the loader.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import FrameType
from typing import ClassVar

__all__ = [
    "Allow",
    "Autostart",
    "Devices",
    "Downloads",
    "Limits",
    "Network",
    "bind",
    "desktop",
    "settings",
]

Duration = str | int | float | None
Size = str | int | None


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


@contextmanager
def _declaring(load: _Load) -> Iterator[None]:
    token = _ACTIVE.set(load)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


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
    open_files_in: Mapping[str, str] | None = None,
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
        "open_files_in": open_files_in,
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
    color_scheme: str | None = None,
    accent_colour: str | None = None,
    font: str | None = None,
    monospace_font: str | None = None,
    document_font: str | None = None,
    lock_after: float | str | None = None,
    **unknown: object,
) -> None:
    """Set global settings; may be called more than once, later values win."""
    args = dict(locals())
    load = _active("settings")
    # None means "not given"; clamd_socket=None and cursor_theme=None are the defaults anyway.
    given = {k: v for k, v in args.items() if k != "unknown" and v is not None}
    given.update({f"?{k}": v for k, v in unknown.items()})  # "?" marks an unknown field
    load.settings.append((_caller_line(), given))
