"""The PDF scanner: active content through pypdf's object model and the raw/decoded bytes."""

from __future__ import annotations

from pathlib import Path

from pypdf import PdfWriter
from pypdf.generic import DictionaryObject, NameObject, TextStringObject

from tests.unit.test_audit_samples import build_clean_pdf, build_pdf_js_in_object_stream
from zionwm.quarantine.audit import pdf
from zionwm.quarantine.report import AuditReport, Finding, Verdict


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def test_escaped_javascript_in_an_object_stream_is_malicious(tmp_path: Path) -> None:
    path = build_pdf_js_in_object_stream(tmp_path / "doc.pdf")
    findings = pdf.scan(str(path), "doc.pdf", None)
    assert {"pdf-javascript", "pdf-auto-javascript", "pdf-escaped-name"} <= rules(findings)
    assert AuditReport(tuple(findings)).verdict is Verdict.MALICIOUS
    escaped = [f for f in findings if f.rule == "pdf-escaped-name"]
    assert any("/JavaScript" in f.detail and "compressed stream" in f.detail for f in escaped)


def test_clean_pdf_is_clean(tmp_path: Path) -> None:
    path = build_clean_pdf(tmp_path / "clean.pdf")
    assert pdf.scan(str(path), "clean.pdf", None) == []


def pdf_with_open_action(path: Path, action: dict[str, object]) -> Path:
    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    obj = DictionaryObject({NameObject(k): v for k, v in action.items()})
    writer._root_object[NameObject("/OpenAction")] = writer._add_object(obj)
    with open(path, "wb") as f:
        writer.write(f)
    return path


def test_plain_javascript_is_suspicious_without_escape_finding(tmp_path: Path) -> None:
    path = pdf_with_open_action(
        tmp_path / "js.pdf",
        {"/S": NameObject("/JavaScript"), "/JS": TextStringObject("app.alert('hi');")},
    )
    findings = pdf.scan(str(path), "js.pdf", None)
    assert "pdf-javascript" in rules(findings)
    assert "pdf-escaped-name" not in rules(findings)
    assert AuditReport(tuple(findings)).verdict is Verdict.SUSPICIOUS


def test_launch_action_is_malicious(tmp_path: Path) -> None:
    path = pdf_with_open_action(
        tmp_path / "launch.pdf", {"/S": NameObject("/Launch"), "/F": TextStringObject("/bin/sh")}
    )
    findings = pdf.scan(str(path), "launch.pdf", None)
    assert "pdf-launch" in rules(findings)
    assert AuditReport(tuple(findings)).verdict is Verdict.MALICIOUS


def test_attachment_is_suspicious(tmp_path: Path) -> None:
    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    writer.add_attachment("payload.sh", b"#!/bin/sh\nid\n")
    path = tmp_path / "att.pdf"
    with open(path, "wb") as f:
        writer.write(f)
    assert "pdf-embedded-file" in rules(pdf.scan(str(path), "att.pdf", None))


def test_malformed_pdf_is_cannot_inspect(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R\nthis is not a pdf\n")
    findings = pdf.scan(str(path), "broken.pdf", None)
    assert [(f.rule, f.verdict) for f in findings] == [("pdf-malformed", Verdict.CANNOT_INSPECT)]


def test_raw_names_decoding() -> None:
    assert list(pdf.raw_names(b"/J#61vaScript /JS /Launch /Font /F#6fo")) == [
        ("JavaScript", True),
        ("JS", False),
        ("Launch", False),
    ]


def test_not_a_pdf_is_not_scanned() -> None:
    assert pdf.scan(b"hello /JavaScript", "a.txt", None) == []
