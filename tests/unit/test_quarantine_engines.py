"""Pure parts of the antivirus/rescan logic, the zygote's reading of a child's output, the
audit cgroup's limits and the words users see."""

from __future__ import annotations

import io
import json
import os
import signal
import zipfile

from zionwm.isolation.spec import DownloadsPolicy, Limits
from zionwm.quarantine import engines, explain
from zionwm.quarantine.accounting import AUDIT_MEMORY_FLOOR, audit_limits
from zionwm.quarantine.jobs import with_engines
from zionwm.quarantine.machine import decide
from zionwm.quarantine.report import AuditReport, Finding, Verdict, severity
from zionwm.quarantine.store import State
from zionwm.quarantine.zygote import interpret_child


def test_clamd_version_with_and_without_a_database_version() -> None:
    v = engines.parse_clamd_version("ClamAV 1.0.7/27345/Wed Dec  3 09:27:02 2025")
    assert v.engine == "ClamAV 1.0.7" and v.db_version == 27345
    assert v.db_date is not None and abs(v.db_date - 1764754022) < 1
    local = engines.parse_clamd_version("ClamAV 1.4.6")
    assert (local.engine, local.db_version, local.db_date) == ("ClamAV 1.4.6", None, None)


def _state(av: dict[str, object] | None, yara: str = "r1") -> dict[str, object]:
    return {"clamd": av or {"available": False}, "yara": {"signatures": yara}}


def test_what_makes_a_rescan() -> None:
    on = {"available": True, "engine": "ClamAV 1", "signatures": "daily 1"}
    assert engines.changes(_state(on), _state(on)) == []
    assert engines.changes(_state(on), _state({**on, "signatures": "daily 2"})) == [
        "the antivirus signatures were updated"
    ]
    assert engines.changes(_state(on), _state(on, yara="r2")) == ["the YARA rules changed"]
    assert "an antivirus is available now" in engines.changes(_state(None), _state(on))[0]
    unknown = {**on, "signatures": None}
    assert "no version to compare" in engines.changes(_state(unknown), _state(unknown))[0]
    assert engines.changes(None, _state(on))  # nothing recorded: scan again
    assert engines.changes(_state(on), _state(None)) == []  # clamd gone: nothing to gain


def test_no_antivirus_is_never_clean_and_sits_between_clean_and_cannot_inspect() -> None:
    assert severity(Verdict.CLEAN) < severity(Verdict.NO_ANTIVIRUS)
    assert severity(Verdict.NO_ANTIVIRUS) < severity(Verdict.CANNOT_INSPECT)
    report = with_engines(
        AuditReport(scanners=("magic", "yara")),
        {"clamd": {"available": False, "why": "none here"}, "yara": {"signatures": "x"}},
        {"yara": "YARA 4"},
    )
    assert report.verdict is Verdict.NO_ANTIVIRUS
    assert report.engines["yara"]["version"] == "YARA 4"
    scanned = with_engines(
        AuditReport(scanners=("magic", "yara", "clamd")),
        {"clamd": {"available": True, "engine": "ClamAV 1"}, "yara": {}},
        {},
    )
    assert scanned.verdict is Verdict.CLEAN


def test_decide_holds_unscanned_files_and_says_what_happens_next() -> None:
    policy = DownloadsPolicy(release_to="personal", hold=10.0)
    d = decide(Verdict.NO_ANTIVIRUS, policy, 100.0, "required")
    assert d.state is State.HELD and d.hold_until == 110.0
    assert d.reason is not None and "waits for an antivirus" in d.reason
    d = decide(Verdict.NO_ANTIVIRUS, policy, 100.0, "if-available")
    assert d.reason is not None and "released after the hold" in d.reason


def test_audit_limits_follow_the_desktop() -> None:
    lim = audit_limits(Limits(cpu_max=0.2, cpu_weight=50, memory_max=64 << 20, cpuset=(1,)))
    assert (lim.cpu_max, lim.cpu_weight, lim.cpuset) == (0.2, 50, (1,))
    assert lim.memory_max == AUDIT_MEMORY_FLOOR  # never below what the scanners need
    assert lim.pids_max is not None
    assert audit_limits(Limits()).cpu_max is None


def test_a_childs_output_is_read_strictly() -> None:
    good = json.dumps(AuditReport(scanners=("magic",)).to_json()).encode()
    ok = interpret_child(good, b'{"rc": 0, "timed_out": false}', 30)
    assert ok.report is not None and ok.report.verdict is Verdict.CLEAN and not ok.crashed
    killed = interpret_child(good[:10], json.dumps({"rc": -signal.SIGKILL}).encode(), 30)
    assert killed.crashed and killed.report is not None
    assert [f.rule for f in killed.report.findings] == ["worker-crashed"]
    late = interpret_child(b"", b'{"rc": -9, "timed_out": true}', 30)
    assert late.report is not None and late.report.findings[0].rule == "worker-timeout"
    junk = interpret_child(b"[1]", b'{"rc": 0}', 30)
    assert junk.report is not None and junk.report.verdict is Verdict.CANNOT_INSPECT
    forged = interpret_child(good, b"not json", 30)
    assert forged.report is not None and forged.report.verdict is Verdict.CANNOT_INSPECT


def test_words_for_users() -> None:
    item = {
        "state": "rejected",
        "verdict": "malicious",
        "report": {
            "scanners": ["magic", "yara", "clamd"],
            "engines": {
                "clamd": {"version": "ClamAV 1.0", "signatures": "daily 1", "signatures_date": 0},
                "yara": {"version": "YARA 4.5", "signatures": "ab", "signatures_date": 0},
            },
            "findings": [
                {"scanner": "clamd", "rule": "X", "detail": "clamd found X", "verdict": "malicious"}
            ],
            "rescan": {"at": 0, "why": ["the antivirus signatures were updated"],
                       "previous_verdict": "clean"},
        },
    }  # fmt: skip
    lines = explain.scanner_lines(item["report"], now=3 * 86400)  # type: ignore[arg-type]
    assert "antivirus (ClamAV): ClamAV 1.0, signatures 3 days old" in lines
    assert explain.why_kept(item) == ["antivirus (ClamAV): clamd found X"]
    assert "the antivirus signatures were updated" in explain.rescan_lines(item["report"])[0]  # type: ignore[arg-type]
    assert "no antivirus" in explain.verdict_words("no-antivirus-scan").lower()
    unscanned = explain.scanner_lines({"scanners": ["magic"], "engines": {}})
    assert unscanned[-1].startswith("antivirus (ClamAV): not run")
    s = explain.antivirus_summary({"clamd": {"available": False, "why": "none"}}, "required")
    assert s.startswith("not active") and "wait" in s
    assert engines.age_words(None) == "of unknown age"
    assert engines.age_words(0, now=7200) == "2 hours old"


def test_report_round_trip_keeps_engines_and_rescan() -> None:
    r = AuditReport(
        (Finding("clamd", "no-antivirus", "none", Verdict.NO_ANTIVIRUS),),
        ("magic",),
        {"magic": 0.001},
        {"clamd": {"available": False}},
        {"why": ["x"]},
    )
    back = AuditReport.from_json(json.loads(json.dumps(r.to_json())))
    assert back == r


def test_the_usual_clamd_is_used_unless_told_otherwise() -> None:
    assert engines.resolve_clamd_socket("/x/clamd.sock") == "/x/clamd.sock"
    assert engines.resolve_clamd_socket("") is None  # "no antivirus, do not look"
    expected = (
        engines.DEFAULT_CLAMD_SOCKET if os.path.exists(engines.DEFAULT_CLAMD_SOCKET) else None
    )
    assert engines.resolve_clamd_socket(None) == expected


def test_safe_copy_pure_parts() -> None:
    from tests.documents import docx_pages, odt_with_onload_macro
    from zionwm.quarantine.convert import (
        ConvertError,
        Page,
        kind_of,
        office_suffix,
        parse_ppm_stream,
        ppm_stream,
        safe_name,
    )

    assert safe_name("invoice.pdf") == "invoice.safe.pdf"
    assert safe_name("photo.PNG") == "photo.safe.pdf"
    assert kind_of(b"%PDF-1.7\n") == "pdf" and kind_of(b"\x89PNG\r\n\x1a\n....") == "image"
    assert kind_of(b"PK\x03\x04") is None
    # office documents by their container; a zip that is not one is not handed to LibreOffice
    assert kind_of(docx_pages(1)) == "office" and office_suffix(docx_pages(1)) == ".docx"
    odt = odt_with_onload_macro("/nowhere")
    assert kind_of(odt) == "office" and office_suffix(odt) == ".odt"
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    assert kind_of(ole) == "office" and office_suffix(ole) == ".doc"
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as z:
        z.writestr("photos/a.txt", "x")
    assert kind_of(plain_zip.getvalue()) is None
    pages = [Page(2, 1, bytes(6)), Page(1, 1, b"\xff\x00\x00")]
    assert parse_ppm_stream(ppm_stream(pages)) == pages
    for bad in (b"", b"P5\n1 1\n255\n\x00", b"P6\n1 1\n65535\n" + bytes(6), b"P6\n2 2\n255\n\x00"):
        try:
            parse_ppm_stream(bad)
        except ConvertError:
            continue
        raise AssertionError(f"accepted {bad!r}")
    huge = b"P6\n100000 100000\n255\n"
    try:
        parse_ppm_stream(huge)
    except ConvertError as e:
        assert "not a page size" in str(e)
    else:
        raise AssertionError("accepted a giant page")
