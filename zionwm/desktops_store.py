"""The desktops file: desktops made or changed while zionwm runs, kept as declarative data.

This module owns `$XDG_CONFIG_HOME/zionwm/desktops.toml`: its shape, reading it (tomllib),
writing it (a small TOML writer for the few flat shapes it holds) and replacing it atomically
(temporary file, fsync, rename, fsync of the directory), so that a reload, a restart or a
crash in the middle of a write always finds either the old or the new file, never a torn one.

    version = 1

    [desktops.banking]          # a desktop made at run time, in Super+N order after config.py's
    colour = "#f59e0b"
    memory_max = "4G"

    [overrides.work]            # run-time changes to a desktop that config.py declares
    memory_max = "6G"

    [grants.web]                # a temporary grant, reverted by itself at `until` (Unix time)
    network = "full"
    until = 1764859200.0

Values are what the user typed (validated by `zionwm.config` before they are written and
again at every load); this module only checks the file's shape. It never writes config.py.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from zionwm import paths

FILE_NAME = "desktops.toml"
VERSION = 1
# Tests set this to a path: the writer then stops half way through the temporary file,
# creates that path and waits, so a SIGKILL lands mid-write at a known point.
HOLD_ENV = "ZIONWM_TEST_HOLD_DESKTOPS_WRITE"

Scalar = str | bool | int | float
Settings = dict[str, Scalar]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TABLES = ("desktops", "overrides", "grants")


class StoreError(ValueError):
    """The desktops file cannot be read or has a shape zionwm does not write."""


@dataclass
class DesktopsFile:
    desktops: dict[str, Settings] = field(default_factory=dict)  # in creation order
    overrides: dict[str, Settings] = field(default_factory=dict)
    grants: dict[str, Settings] = field(default_factory=dict)

    def copy(self) -> DesktopsFile:
        return DesktopsFile(
            {k: dict(v) for k, v in self.desktops.items()},
            {k: dict(v) for k, v in self.overrides.items()},
            {k: dict(v) for k, v in self.grants.items()},
        )


def default_path() -> Path:
    return paths.config_home() / FILE_NAME


# --- reading ------------------------------------------------------------------------------


def parse(text: str, where: str = FILE_NAME) -> DesktopsFile:
    # here, not at the top: the compositor imports this module at every start, and most
    # starts have no desktops file to read
    import tomllib  # noqa: PLC0415

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StoreError(f"{where}: not valid TOML: {exc}") from None
    version = doc.pop("version", VERSION)
    if version != VERSION:
        raise StoreError(f"{where}: version {version!r} is not one this zionwm reads ({VERSION})")
    out = DesktopsFile()
    for key, value in doc.items():
        if key not in _TABLES:
            raise StoreError(f"{where}: unknown table {key!r} (known: {', '.join(_TABLES)})")
        if not isinstance(value, dict):
            raise StoreError(f"{where}: {key} must be a table")
        table: dict[str, Settings] = getattr(out, key)
        for name, settings in value.items():
            if not isinstance(settings, dict):
                raise StoreError(f"{where}: {key}.{name} must be a table")
            for k, v in settings.items():
                if not isinstance(v, str | bool | int | float):
                    raise StoreError(f"{where}: {key}.{name}.{k}: {v!r} is not a plain value")
            table[name] = dict(settings)
    return out


def load(path: Path) -> DesktopsFile:
    """The file's content; an empty one if it does not exist yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DesktopsFile()
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: cannot read: {exc}") from None
    return parse(text, str(path))


# --- writing ------------------------------------------------------------------------------


def _key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _string(k)


def _string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _value(v: Scalar) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{v!r} cannot be written")
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    raise TypeError(f"cannot write {type(v).__name__} values")


def dumps(data: DesktopsFile) -> str:
    lines = [
        "# Desktops made or changed while zionwm runs. zionwm rewrites this file: change it",
        "# with `zionctl desktop ...` (see docs/desktops.md); config.py is never rewritten.",
        f"version = {VERSION}",
    ]
    for table in _TABLES:
        for name, settings in getattr(data, table).items():
            lines.append("")
            lines.append(f"[{table}.{_key(name)}]")
            lines.extend(f"{_key(k)} = {_value(v)}" for k, v in settings.items())
    return "\n".join(lines) + "\n"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so that readers (and a later start after a crash) see the
    old or the new content, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        try:
            hold = os.environ.get(HOLD_ENV)
            if hold:
                half = len(data) // 2
                os.write(fd, data[:half])
                os.fsync(fd)
                # whole or absent: the test reads the path as soon as the file appears
                Path(hold + ".part").write_text(str(tmp))
                os.replace(hold + ".part", hold)
                time.sleep(3600)  # killed here by the test
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def save(path: Path, data: DesktopsFile) -> None:
    text = dumps(data)
    parse(text, str(path))  # never write something the reader would refuse
    write_atomic(path, text)


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Temporary files a killed writer left beside the desktops file."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in path.parent.iterdir():
            if entry.name.startswith(f".{path.name}.") and entry.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
    return removed
