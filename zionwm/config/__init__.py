"""The user's Python config file: the small API it is written in, and its validator.

A config file writes `from zionwm.config import desktop, bind, settings, Limits, ...` (or
`import *`); those names, and what the rest of zionwm reads, are the ones below. The package
keeps one concern per module, each below the next (checked by import-linter, see
docs/architecture.md):

- `api`: the declarations a config file makes (`desktop`, `bind`, `settings`, and the value
  types `Limits`, `Devices`, `Network`, `Allow`, `Downloads`, `Autostart`), which accept
  human units ("4G", "10m", "20%", "#rrggbb") and only record what they were given;
- `model`: what a loaded config is (`Config`, `Binding`, `Settings`, `ConfigError`);
- `units`: the pure converters from human units (`parse_size`, `parse_key`, ...);
- `validate`: the declarations turned into the frozen specs of `zionwm.isolation.spec`,
  every problem collected with its line;
- `load`: `load_config`, which runs the file in a fresh namespace; the default config
  (shipped as `zionwm/default_config.py`), the first-start write of it, the locked-down
  fallback to it when the user's file is broken, and `zionwm --check-config`.
"""

from __future__ import annotations

from zionwm.config.api import (
    Allow,
    Autostart,
    Devices,
    Downloads,
    Limits,
    Network,
    bind,
    desktop,
    settings,
)
from zionwm.config.load import (
    check_main,
    default_config_path,
    load_config,
    load_default,
    load_or_fallback,
)
from zionwm.config.model import Binding, Config, ConfigError, Settings
from zionwm.config.units import (
    parse_colour,
    parse_cpu_max,
    parse_cpuset,
    parse_duration,
    parse_key,
    parse_size,
)
from zionwm.config.validate import check_desktop

# What `from zionwm.config import *` gives a config file.
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
