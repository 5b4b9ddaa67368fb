"""The type scanner: executables, disguises, exec bits, content/extension mismatches."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.test_audit_samples import (
    build_desktop_launcher,
    build_elf_named_pdf,
    build_png,
    build_shebang_script,
    build_text,
)
from zionwm.quarantine.audit import magic_type
from zionwm.quarantine.report import AuditReport, Finding, Verdict

REG = stat.S_IFREG | 0o644


def verdict_of(findings: list[Finding]) -> Verdict:
    return AuditReport(tuple(findings)).verdict


def classify(head: bytes, name: str, mode: int | None = REG) -> list[Finding]:
    return magic_type.classify(head, name, mode, *magic_type.identify(head))


def test_elf_named_as_pdf_is_malicious(tmp_path: Path) -> None:
    path = build_elf_named_pdf(tmp_path / "report.pdf")
    findings = magic_type.scan(str(path), "report.pdf", None)
    assert [f.rule for f in findings] == ["elf-named-as-pdf"]
    assert findings[0].verdict is Verdict.MALICIOUS


def test_plain_elf_is_suspicious_not_malicious(tmp_path: Path) -> None:
    head = build_elf_named_pdf(tmp_path / "tool").read_bytes()[:8192]
    findings = classify(head, "tool")
    assert [f.rule for f in findings] == ["executable-elf"]
    assert verdict_of(findings) is Verdict.SUSPICIOUS


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x7fELF\x02\x01\x01\x00AI\x02" + bytes(64), "appimage"),
        (b"MZ\x90\x00" + bytes(60), "pe"),
        (b"\xcf\xfa\xed\xfe\x07\x00\x00\x01" + bytes(24), "macho"),
        (b"#!/usr/bin/env python3\nprint(1)\n", "script"),
    ],
)
def test_executable_kinds(head: bytes, kind: str) -> None:
    assert magic_type.executable_kind(head, magic_type.identify(head)[1]) == kind
    assert verdict_of(classify(head, "a.jpg")) is Verdict.MALICIOUS
    assert verdict_of(classify(head, "program")) is Verdict.SUSPICIOUS


def test_desktop_launcher(tmp_path: Path) -> None:
    path = build_desktop_launcher(tmp_path / "invoice.desktop")
    findings = magic_type.scan(str(path), "invoice.desktop", None)
    assert [f.rule for f in findings] == ["executable-desktop"]
    disguised = classify(path.read_bytes(), "invoice.txt")
    assert [f.rule for f in disguised] == ["desktop-named-as-txt"]
    assert disguised[0].verdict is Verdict.MALICIOUS


def test_desktop_entry_without_exec_is_not_a_launcher() -> None:
    assert classify(b"[Desktop Entry]\nType=Link\nURL=https://example.org\n", "a.desktop") == []


def test_shebang_script_with_exec_bit(tmp_path: Path) -> None:
    path = build_shebang_script(tmp_path / "install.sh")
    rules = {f.rule for f in magic_type.scan(str(path), "install.sh", None)}
    assert rules == {"executable-script", "exec-bit"}


def test_exec_bit_on_a_text_file_is_suspicious(tmp_path: Path) -> None:
    path = build_text(tmp_path / "notes.txt")
    path.chmod(0o755)
    findings = magic_type.scan(str(path), "notes.txt", None)
    assert [(f.rule, f.verdict) for f in findings] == [("exec-bit", Verdict.SUSPICIOUS)]


def test_exec_bit_seen_through_an_fd(tmp_path: Path) -> None:
    path = build_text(tmp_path / "notes.txt")
    path.chmod(0o700)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert [f.rule for f in magic_type.scan(fd, "notes.txt", None)] == ["exec-bit"]
    finally:
        os.close(fd)


def test_active_content_named_passive_is_suspicious() -> None:
    html = b"<!DOCTYPE html><html><head><script>alert(1)</script></head></html>"
    findings = classify(html, "photo.png")
    assert [(f.rule, f.verdict) for f in findings] == [
        ("active-content-mismatch", Verdict.SUSPICIOUS)
    ]


def test_harmless_mismatch_is_only_a_note(tmp_path: Path) -> None:
    head = build_png(tmp_path / "a.png").read_bytes()
    findings = classify(head, "a.jpg")
    assert [(f.rule, f.verdict) for f in findings] == [("type-mismatch", Verdict.CLEAN)]
    assert verdict_of(findings) is Verdict.CLEAN


def test_windows_runnable_extension() -> None:
    findings = classify(b"Write-Host hello\n", "setup.ps1")
    assert [f.rule for f in findings] == ["windows-runnable-extension"]


@pytest.mark.parametrize("builder", [build_png, build_text])
def test_negative_controls(tmp_path: Path, builder: Callable[[Path], Path]) -> None:
    path = builder(tmp_path / ("x.png" if builder is build_png else "x.txt"))
    assert magic_type.scan(str(path), path.name, None) == []
    assert magic_type.scan(path.read_bytes(), path.name, None) == []
