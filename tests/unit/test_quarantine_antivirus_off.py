"""`antivirus="off"`: an explicit way to use no antivirus, which still never calls a file
"clean" (the pure parts; the service end to end is in tests/system/test_quarantine_antivirus).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zionwm.config import load_config
from zionwm.isolation.spec import DownloadsPolicy
from zionwm.quarantine.engines import (
    ANTIVIRUS_OFF_WHY,
    antivirus_state,
    changes,
    resolve_clamd_socket,
)
from zionwm.quarantine.explain import antivirus_summary
from zionwm.quarantine.jobs import effective_audit, with_engines
from zionwm.quarantine.machine import HoldEnd, at_hold_end, decide
from zionwm.quarantine.policy import policy_from_json
from zionwm.quarantine.report import AuditReport, Verdict
from zionwm.quarantine.store import State


@pytest.fixture(autouse=True)
def _private_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _load(tmp_path: Path, line: str) -> tuple[object, list[str]]:
    path = tmp_path / "config.py"
    path.write_text(f'from zionwm.config import *\ndesktop("a", colour="#112233")\n{line}\n')
    config, errors = load_config(path)
    return config, [e.message for e in errors]


def test_the_config_says_off_and_an_empty_socket_points_there(tmp_path: Path) -> None:
    config, errors = _load(tmp_path, 'settings(antivirus="off")')
    assert errors == [] and config is not None
    assert config.settings.antivirus == "off"  # type: ignore[attr-defined]
    config, errors = _load(tmp_path, 'settings(clamd_socket="")')
    assert config is None
    assert errors == [
        'settings: clamd_socket: an empty path; to use no antivirus at all, write antivirus="off"'
    ]


def test_off_uses_no_clamd_even_a_configured_or_running_one() -> None:
    assert resolve_clamd_socket("/run/some/clamd.sock", "off") is None
    assert resolve_clamd_socket(None, "off") is None
    assert resolve_clamd_socket("/run/some/clamd.sock", "if-available") == "/run/some/clamd.sock"
    audit = effective_audit({"antivirus": "off", "clamd_socket": "/run/some/clamd.sock"})
    assert audit["clamd_socket"] is None
    state = antivirus_state("/run/some/clamd.sock", None, off=True)
    assert state == {"available": False, "off": True, "why": ANTIVIRUS_OFF_WHY}
    # the policy file the compositor writes accepts it
    assert policy_from_json({"audit": {"antivirus": "off"}}).audit["antivirus"] == "off"


def test_a_file_no_antivirus_looked_at_is_never_clean_with_off() -> None:
    engines = {"clamd": antivirus_state(None, None, off=True), "yara": {}, "checked_at": 1.0}
    clean_so_far = AuditReport((), ("magic", "yara", "office", "pdf", "archive"), {})
    report = with_engines(clean_so_far, engines, {})
    assert report.verdict is Verdict.NO_ANTIVIRUS
    (finding,) = report.findings
    assert "turned off" in finding.detail and 'antivirus="off"' in finding.detail
    decision = decide(report.verdict, DownloadsPolicy(release_to="p", hold=5.0), 100.0, "off")
    assert decision.state is State.HELD and decision.hold_until == 105.0
    assert decision.reason is not None
    assert decision.reason.startswith("no antivirus scan: the antivirus is turned off")


def test_with_off_the_end_of_the_hold_releases_and_nothing_waits() -> None:
    assert at_hold_end(Verdict.NO_ANTIVIRUS, "off", False, [], False) is HoldEnd.RELEASE
    assert (
        at_hold_end(Verdict.NO_ANTIVIRUS, "required", False, [], False)
        is HoldEnd.WAIT_FOR_ANTIVIRUS
    )
    # with the antivirus still off, a later hold end finds nothing new to scan for
    off = {"clamd": antivirus_state(None, None, off=True), "yara": {"signatures": "r"}}
    assert changes({**off, "checked_at": 1.0}, {**off, "checked_at": 2.0}) == []


def test_status_says_the_antivirus_is_off() -> None:
    line = antivirus_summary({"clamd": antivirus_state(None, None, off=True)}, "off")
    assert line.startswith('off (antivirus="off")') and "no antivirus scan" in line
