"""The verdicts drawn from a native audit child's facts (pure): the same as the Python
scanners give for the same answers, and anything malformed from the child is not clean."""

from __future__ import annotations

import stat

import pytest

from zionwm.quarantine import native_report
from zionwm.quarantine.audit.common import AuditSettings
from zionwm.quarantine.report import Verdict
from zionwm.quarantine.zygote import interpret_native

CLAMD = AuditSettings(clamd_socket="/run/zionwm/clamd.sock")
OK = b'{"rc": 0, "timed_out": false}'


def facts(**over: object) -> dict[str, object]:
    d: dict[str, object] = {
        "mime": "text/plain",
        "description": "text/plain",
        "head_kind": None,
        "yara": [],
        "clamd": "stream: OK",
    }
    d.update(over)
    return d


def test_a_plain_text_file_is_clean_and_every_scanner_counts() -> None:
    r = native_report.report_from_facts(facts(), "notes.txt", stat.S_IFREG | 0o644, CLAMD)
    assert r.findings == () and r.verdict is Verdict.CLEAN
    assert r.scanners == ("magic", "yara", "clamd", "office", "pdf", "archive")


def test_an_elf_named_pdf_is_malicious_by_the_type_scanners_own_rule() -> None:
    f = facts(mime="application/x-executable", description="ELF 64-bit", head_kind="elf")
    r = native_report.report_from_facts(f, "report.pdf", stat.S_IFREG | 0o644, CLAMD)
    assert [x.rule for x in r.findings] == ["elf-named-as-pdf"]
    assert r.verdict is Verdict.MALICIOUS


def test_yara_and_clamd_answers_become_their_findings() -> None:
    f = facts(
        yara=[{"rule": "R", "description": "d", "verdict": "malicious"}],
        clamd="stream: Eicar-Sig FOUND",
    )
    r = native_report.report_from_facts(f, "a.txt", None, CLAMD)
    assert {(x.scanner, x.rule, x.verdict) for x in r.findings} == {
        ("yara", "R", Verdict.MALICIOUS),
        ("clamd", "Eicar-Sig", Verdict.MALICIOUS),
    }


def test_failures_inside_the_child_are_cannot_inspect() -> None:
    f = facts(mime=None, magic_error="no db", yara_error="libyara error 2", clamd=None)
    f["clamd_error"] = "cannot connect to clamd"
    r = native_report.report_from_facts(f, "a.txt", None, CLAMD)
    assert r.verdict is Verdict.CANNOT_INSPECT
    assert {x.scanner for x in r.findings} == {"magic", "yara", "clamd"}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{not json",
        b'{"mime": 3, "description": "x", "yara": []}',
        b'{"mime": "a", "description": "b", "yara": "no"}',
        b'{"mime": "a", "description": "b", "yara": [{"rule": ""}]}',
        b'{"mime": "a", "description": "b", "head_kind": "rootkit", "yara": []}',
    ],
)
def test_garbage_from_a_child_is_never_clean(body: bytes) -> None:
    out = interpret_native(body, OK, CLAMD, "a.txt", None)
    assert out.report is not None
    assert out.report.verdict is Verdict.CANNOT_INSPECT
    assert [f.rule for f in out.report.findings] == ["worker-garbage"]


def test_a_child_that_died_is_cannot_inspect_whatever_it_wrote() -> None:
    body = b'{"mime": "text/plain", "description": "text/plain", "yara": [], "clamd": "stream: OK"}'
    out = interpret_native(body, b'{"rc": -9, "timed_out": false}', CLAMD, "a.txt", None)
    assert out.report is not None and [f.rule for f in out.report.findings] == ["worker-crashed"]
    out = interpret_native(body, b'{"rc": 0, "timed_out": true}', CLAMD, "a.txt", None)
    assert out.report is not None and [f.rule for f in out.report.findings] == ["worker-timeout"]


def test_a_child_that_declines_sends_the_file_to_the_python_scanners() -> None:
    out = interpret_native(b'{"python": true}', OK, CLAMD, "a.docm", None)
    assert out.report is None and out.python
