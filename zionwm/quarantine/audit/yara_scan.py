"""YARA scanner: the bundled rule set (zionwm/quarantine/rules/*.yar) plus the user's own rules.

A rule says what a match means with `meta: verdict = "malicious" | "suspicious" | "clean"`;
a user rule without that meta counts as suspicious. A user rule file that does not compile
is reported as a note in every report (so the user sees that it is not in force) and the
others still run: one typo must not stop every download, and it must not pass silently.
The bundled rules must compile; if they do not, the scanner fails and the worker reports
cannot-inspect.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zionwm.quarantine.audit.common import AuditSettings, Source, source_path, source_size
from zionwm.quarantine.report import Finding, Verdict

log = logging.getLogger(__name__)

SCANNER = "yara"
BUNDLED_RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
RULE_SUFFIXES = (".yar", ".yara")
DEFAULT_TIMEOUT = 60
WINDOW = 64 << 20  # files above this are matched window by window, not mapped whole
OVERLAP = 1 << 20


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[tuple[str, Any], ...]  # (origin, compiled yara.Rules)
    errors: tuple[Finding, ...]  # compile errors in user rules, reported as notes


def rule_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in RULE_SUFFIXES and p.is_file())


@functools.cache
def bundled_rules() -> Any:
    import yara  # noqa: PLC0415 - loads libyara: only where files are scanned

    files = rule_files(BUNDLED_RULES_DIR)
    if not files:
        raise RuntimeError(f"no bundled YARA rules in {BUNDLED_RULES_DIR}")
    return yara.compile(filepaths={f"bundled:{p.stem}": str(p) for p in files})


def compile_rules(user_dirs: tuple[str, ...]) -> RuleSet:
    """Bundled rules, then each user rule file compiled on its own so one error stays local."""
    import yara  # noqa: PLC0415 - loads libyara: only where files are scanned

    rules: list[tuple[str, Any]] = [("bundled", bundled_rules())]
    errors: list[Finding] = []
    for d in user_dirs:
        directory = Path(d)
        if not directory.is_dir():
            errors.append(
                Finding(
                    SCANNER,
                    "user-rule-dir-missing",
                    f"YARA rule directory {d} does not exist: its rules were not applied",
                    Verdict.CLEAN,
                )
            )
            continue
        for path in rule_files(directory):
            try:
                rules.append((f"user:{path.name}", yara.compile(filepath=str(path))))
            except yara.Error as exc:
                log.warning("user YARA rule %s does not compile: %s", path, exc)
                errors.append(
                    Finding(
                        SCANNER,
                        "user-rule-compile-error",
                        f"user YARA rule file {path.name} does not compile and was not "
                        f"applied: {exc}",
                        Verdict.CLEAN,
                    )
                )
    return RuleSet(tuple(rules), tuple(errors))


def verdict_of(meta: dict[str, Any]) -> Verdict:
    value = str(meta.get("verdict", "suspicious")).lower()
    try:
        return Verdict(value)
    except ValueError:
        return Verdict.SUSPICIOUS


def findings_from_matches(origin: str, matches: list[Any], name: str) -> list[Finding]:
    findings = []
    for m in matches:
        description = m.meta.get("description", "matched")
        findings.append(
            Finding(
                SCANNER,
                m.rule,
                f"{name!r}: {description} ({origin})",
                verdict_of(m.meta),
            )
        )
    return findings


def scan_with(ruleset: RuleSet, src: Source, name: str, timeout: int) -> list[Finding]:
    findings = list(ruleset.errors)
    large = not isinstance(src, bytes) and source_size(src) > WINDOW
    for origin, rules in ruleset.rules:
        if isinstance(src, bytes):
            matches = rules.match(data=src, timeout=timeout)
        elif not large:
            # yara maps the file itself: no copy of the download in this process
            matches = rules.match(filepath=source_path(src), timeout=timeout)
        else:
            matches = _match_windows(rules, src, timeout)
        findings += findings_from_matches(origin, matches, name)
    return findings


def _match_windows(rules: Any, src: int | str, timeout: int) -> list[Any]:
    """Match a file too large to map under the worker's address-space limit, window by
    window with an overlap, so strings up to OVERLAP bytes long are found across the seams.
    Conditions on absolute offsets and `filesize` only hold in the first window: rules
    meant for headers (all the bundled ones) see the real head; later windows can only add
    string matches."""
    seen: dict[str, Any] = {}
    fd = src if isinstance(src, int) else os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        offset = 0
        while True:
            window = os.pread(fd, WINDOW, offset)
            if not window:
                break
            for m in rules.match(data=window, timeout=timeout):
                seen.setdefault(m.rule, m)
            if len(window) < WINDOW:
                break
            offset += WINDOW - OVERLAP
    finally:
        if not isinstance(src, int):
            os.close(fd)
    return list(seen.values())


def scan(src: Source, name: str, settings: AuditSettings | None = None) -> list[Finding]:
    user_dirs = settings.yara_rule_dirs if settings is not None else ()
    timeout = max(1, int(settings.timeout)) if settings is not None else DEFAULT_TIMEOUT
    return scan_with(_rules_now(user_dirs), src, name, timeout)


def _stamp(user_dirs: tuple[str, ...]) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and mtimes of the user's rule files: a cheap test that a compiled set
    is still the one on disk (tens of microseconds, where compiling takes milliseconds)."""
    out: list[tuple[str, int, int]] = []
    for d in user_dirs:
        for p in rule_files(Path(d)):
            try:
                st = p.stat()
            except OSError:
                continue
            out.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(out)


def _rules_now(user_dirs: tuple[str, ...]) -> RuleSet:
    return _compiled(user_dirs, _stamp(user_dirs))


@functools.lru_cache(maxsize=4)
def _compiled(user_dirs: tuple[str, ...], _stamp: tuple[tuple[str, int, int], ...]) -> RuleSet:
    return compile_rules(user_dirs)


def preload(user_dirs: tuple[str, ...]) -> None:
    """Compile now (a zygote does this once, so that no file pays for it)."""
    _rules_now(tuple(user_dirs))


def _cached_rules(user_dirs: tuple[str, ...]) -> RuleSet:
    return _rules_now(user_dirs)


def scan_data(data: bytes, name: str, user_dirs: tuple[str, ...] = ()) -> list[Finding]:
    """Matches in bytes already in memory (archive members); compile notes are left to the
    scan of the file itself so they are not repeated for every member."""
    ruleset = _cached_rules(user_dirs)
    return scan_with(RuleSet(ruleset.rules, ()), data, name, DEFAULT_TIMEOUT)
