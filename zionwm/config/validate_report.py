"""What the validator modules share: the report that collects every problem with its line,
and the converter of one declaration's fields that records a failure and carries on."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from zionwm.config.api import _Decl
from zionwm.config.model import ConfigError
from zionwm.suggest import close_matches

T = TypeVar("T")


class Report:
    """Every problem found in one file (or one desktop made at run time), with its line."""

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


class Fields:
    """Converts the fields of one declaration, recording each failure and carrying on."""

    def __init__(self, report: Report, line: int, prefix: str) -> None:
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


def choice(*allowed: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(map(repr, allowed))}")
        return str(value)

    return check
