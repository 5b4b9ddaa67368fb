"""The create / tailor form as data: what the dialog's fields hold, the `desktop create` and
`desktop set` words they become, the machine's totals the sliders run to, and which field a
refusal of the compositor's validator belongs to.

Pure: the compositor validates every value (with the config file's own validator); the few
checks made here only catch what would otherwise be a confusing message (an empty host list,
a name with capitals) before anything is sent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass, field

from zionwm.commands import DESKTOP_NAME
from zionwm.desktops_model import SETTINGS, default_plain, shown_settings

NETWORK_MODES = ("none", "full", "filtered")
# Fields of the dialog that are not settings of their own.
NAME_FIELD = "name"
HOSTS_FIELD = "hosts"
_HEX = re.compile(r"#[0-9a-fA-F]{6}")


def default_settings() -> dict[str, str]:
    """Every setting of a desktop made with no options, as text (what `show` says)."""
    return shown_settings(default_plain())


@dataclass
class DesktopForm:
    name: str = ""
    values: dict[str, str] = field(default_factory=default_settings)

    @classmethod
    def from_settings(cls, name: str, settings: dict[str, str]) -> DesktopForm:
        values = default_settings()
        values.update({k: str(v) for k, v in settings.items() if k in SETTINGS})
        return cls(name, values)

    # -- the network as the dialog shows it: a mode and a list of hosts --

    @property
    def network_mode(self) -> str:
        net = self.values.get("network", "none")
        return "filtered" if net.startswith("filtered") else net

    @property
    def hosts(self) -> list[str]:
        net = self.values.get("network", "")
        if not net.startswith("filtered:"):
            return []
        return [h for h in net[len("filtered:") :].split(",") if h]

    def set_network(self, mode: str, hosts: list[str]) -> None:
        if mode not in NETWORK_MODES:
            raise ValueError(f"network: {mode!r} is not one of {', '.join(NETWORK_MODES)}")
        clean = [h.strip() for h in hosts if h.strip()]
        self.values["network"] = "filtered:" + ",".join(clean) if mode == "filtered" else mode

    def flag(self, key: str) -> bool:
        return self.values.get(key) == "yes"

    def set_flag(self, key: str, on: bool) -> None:
        self.values[key] = "yes" if on else "no"

    # -- words for the control socket --

    def changes(self, base: dict[str, str]) -> list[str]:
        """KEY=VALUE for each setting that differs from `base`, in the table's order."""
        return [
            f"{k}={v}"
            for k, v in self.values.items()
            if k in SETTINGS and v != base.get(k, default_settings().get(k))
        ]

    def create_argv(self) -> list[str]:
        return ["desktop", "create", self.name, *self.changes(default_settings())]

    def set_argv(self, current: dict[str, str]) -> list[str] | None:
        """`desktop set` for what changed against `current`; None when nothing did."""
        words = self.changes(current)
        return ["desktop", "set", self.name, *words] if words else None

    def restart_needed(self, current: dict[str, str]) -> list[str]:
        """The changed settings that apply only when the desktop's programs next start."""
        return [
            k
            for k, v in self.values.items()
            if k in SETTINGS and not SETTINGS[k].live and v != current.get(k)
        ]

    def local_errors(self, taken: Collection[str] = ()) -> dict[str, str]:
        """What is certainly wrong before asking the compositor: field -> words."""
        errors: dict[str, str] = {}
        if not self.name:
            errors[NAME_FIELD] = "Give the desktop a name."
        elif not DESKTOP_NAME.fullmatch(self.name):
            errors[NAME_FIELD] = (
                "Use lower-case letters, digits, '-' and '_' (at most 32), "
                "starting with a letter or digit."
            )
        elif self.name in taken:
            errors[NAME_FIELD] = f"A desktop named {self.name} exists already."
        colour = self.values.get("colour", "none")
        if colour != "none" and not _HEX.fullmatch(colour):  # none: zionwm picks a free one
            errors["colour"] = "Pick a colour."
        if self.network_mode == "filtered":
            if not self.hosts:
                errors[HOSTS_FIELD] = "Add at least one host, or choose another network mode."
            bad = [h for h in self.hosts if any(c.isspace() for c in h)]
            if bad:
                errors[HOSTS_FIELD] = f"A host cannot contain spaces: {bad[0]!r}."
        return errors


# -- refusals of the compositor, mapped back to the field that caused them --------------------

_FIELD_WORDS = {
    **{k: k for k in SETTINGS},
    "limits": "memory_max",
    "downloads": "downloads_to",
    "release_to": "downloads_to",
    "devices": "gpu",
    "allow": "network",
    "name": NAME_FIELD,
}


def field_for_error(message: str) -> tuple[str | None, str]:
    """('memory_max', "'lots' is not a size: ...") from the compositor's one-line refusal.

    The validator names the setting in its message (`desktop 'x': limits: memory_max: ...`);
    the most specific name it mentions wins. The text is cut to what the user can act on.
    """
    text = message.strip()
    for tail in ("; nothing changed",):
        if text.endswith(tail):
            text = text[: -len(tail)]
    text = re.sub(r"^desktop( create| set)?: ", "", text)
    text = re.sub(r"^desktop '[^']*': ", "", text)
    found: str | None = None
    rest = text
    # walk the "a: b: c: message" prefix; keep the last part that names a field
    while True:
        m = re.match(r"([a-z_]+): ", rest)
        if not m or m.group(1) not in _FIELD_WORDS:
            break
        found = _FIELD_WORDS[m.group(1)]
        rest = rest[m.end() :]
    if found is None:
        for word in sorted(SETTINGS, key=len, reverse=True):
            if re.search(rf"\b{word}\b", text):
                found = word
                break
    if found is None and re.search(r"\bname\b|\btaken\b|already exists", text):
        found = NAME_FIELD
    rest = rest[:1].upper() + rest[1:] if rest else text
    return found, rest


# -- the machine's real totals, for the sliders ---------------------------------------------------


@dataclass(frozen=True)
class Machine:
    memory_bytes: int
    cpus: int
    pid_max: int


def machine() -> Machine:
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        mem = 1 << 30
    try:
        pid_max = int(open("/proc/sys/kernel/pid_max").read().split()[0])  # noqa: SIM115
    except (OSError, ValueError, IndexError):
        pid_max = 32768
    return Machine(mem, len(os.sched_getaffinity(0)) or 1, pid_max)


def size_to_mib(text: str) -> int:
    """'4G' -> 4096, 'none' -> 0 (the slider's 'no limit')."""
    t = text.strip().upper()
    if t in ("", "NONE", "MAX"):
        return 0
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    if t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(int(t) / (1 << 20))


def mib_to_size(mib: int) -> str:
    if mib <= 0:
        return "none"
    return f"{mib // 1024}G" if mib % 1024 == 0 else f"{mib}M"


def percent_to_cpu(value: int) -> str:
    return "none" if value <= 0 else f"{value}%"


def cpu_to_percent(text: str) -> int:
    t = text.strip().rstrip("%")
    if t in ("", "none", "max"):
        return 0
    try:
        v = float(t)
    except ValueError:
        return 0
    # `show` prints a fraction of one CPU as a percentage, a bare number as CPUs
    return int(v if text.strip().endswith("%") else v * 100)
