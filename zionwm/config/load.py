"""Loading: running the user's config file in a fresh namespace and validating what it
declared (`load_config`); the default config (shipped as `zionwm/default_config.py`), its
first-start write, the locked-down fallback to it when the user's file is broken, and
`zionwm --check-config`.
"""

from __future__ import annotations

import builtins
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from zionwm import paths
from zionwm.config import api, model, units, validate
from zionwm.config.api import _declaring, _Load
from zionwm.config.model import Config, ConfigError
from zionwm.config.validate import check_desktops
from zionwm.config.validate_report import Report
from zionwm.config.validate_settings import check_bindings, check_settings
from zionwm.isolation import spec
from zionwm.suggest import close_matches

# (DEFAULT_CONFIG and locked_down are read by zionwm, not written in config files)
__all__ = [
    "check_main",
    "default_config_path",
    "load_config",
    "load_default",
    "load_or_fallback",
]

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).parent.parent / "default_config.py"

# What a config file may import from zionwm.config, for "did you mean" hints.
_PUBLIC_NAMES = (*api.__all__, *model.__all__, *units.__all__, *validate.__all__, *__all__)


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
        close = close_matches(missing, _PUBLIC_NAMES, n=1)
        if close:
            text += f" (did you mean {close[0]!r}?)"
    return text


def load_config(path: Path) -> tuple[Config | None, list[ConfigError]]:
    """Run the config file at `path` and validate what it declares.

    Returns the config (None if there is any error) and every problem found, errors and
    warnings, sorted by line.
    """
    file = str(path)
    report = Report(file)
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

    specs = check_desktops(load, report, complete)
    bindings = check_bindings(load, report, {d.name for d in specs}, complete)
    settings_ = check_settings(load, report, path.absolute())
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
