"""The archive scanner: hostile entries, bombs (caught without unpacking), nesting, taint."""

from __future__ import annotations

import bz2
import gzip
import io
import resource
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit import test_audit_samples as samples
from tests.unit.test_audit_samples import (
    build_clean_zip,
    build_elf_named_pdf,
    build_hostile_tar,
    build_nested_zip,
    build_traversal_zip,
    build_zip_bomb,
)
from zionwm.quarantine.audit import archive
from zionwm.quarantine.report import AuditReport, Finding, Verdict
from zionwm.quarantine.worker import AuditSettings


def verdict(findings: list[Finding]) -> Verdict:
    return AuditReport(tuple(findings)).verdict


def by_rule(findings: list[Finding]) -> dict[str, Finding]:
    return {f.rule: f for f in findings}


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = build_zip_bomb(tmp_path_factory.mktemp("bomb") / "zeros.zip")
    yield path
    path.unlink()


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def test_zip_bomb_is_caught_without_unpacking(bomb: Path) -> None:
    assert bomb.stat().st_size < 4 << 20  # 600 MiB of zeros, compressed
    limits = archive.ArchiveLimits()
    walk = archive.Walk(limits, budget=limits.max_total)
    cpu = _cpu()
    archive.walk_source(walk, str(bomb), "zeros.zip", depth=1)
    cpu = _cpu() - cpu
    rules = by_rule(walk.findings)
    assert rules["compression-ratio"].verdict is Verdict.SUSPICIOUS
    assert verdict(walk.findings) is Verdict.SUSPICIOUS
    unpacked = limits.max_total - walk.budget
    assert unpacked <= 64 << 10, f"read {unpacked} bytes of the bomb"
    # inflating 600 MiB costs about a second of CPU here; reading the directory, a few ms
    assert cpu < 0.25, f"{cpu:.2f} s of CPU: the bomb was unpacked"


def test_zip_bomb_over_the_total_limit_is_cannot_inspect_and_not_read(bomb: Path) -> None:
    settings = AuditSettings(archive_max_total=100 << 20, archive_max_ratio=1e9)
    findings = archive.scan(str(bomb), "zeros.zip", settings)
    assert [(f.rule, f.verdict) for f in findings] == [("too-large", Verdict.CANNOT_INSPECT)]


def test_single_file_gzip_bomb_stops_at_the_ratio(tmp_path: Path) -> None:
    path = tmp_path / "zeros.img.gz"
    zeros = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=6) as f:
        for _ in range(64):
            f.write(zeros)
    limits = archive.ArchiveLimits()
    walk = archive.Walk(limits, budget=limits.max_total)
    archive.walk_source(walk, str(path), "zeros.img.gz", depth=1)
    assert by_rule(walk.findings)["compression-ratio"].verdict is Verdict.SUSPICIOUS
    assert "zeros.img.gz!zeros.img" in walk.findings[0].detail
    assert limits.max_total - walk.budget < 64 << 20  # stopped before the end


def test_path_traversal_zip_is_malicious(tmp_path: Path) -> None:
    findings = archive.scan(str(build_traversal_zip(tmp_path / "z.zip")), "z.zip", None)
    f = by_rule(findings)["path-traversal"]
    assert f.verdict is Verdict.MALICIOUS and "../../.bashrc" in f.detail
    # and the member's own content was scanned too, named by its path
    assert any(x.rule.startswith("yara:") and "z.zip!../../.bashrc" in x.detail for x in findings)


def test_absolute_path_entry_is_suspicious(tmp_path: Path) -> None:
    path = tmp_path / "abs.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("/etc/cron.d/job", "* * * * * root id\n")
    assert by_rule(archive.scan(str(path), "abs.zip", None))["absolute-path"].verdict is (
        Verdict.SUSPICIOUS
    )


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz", ""])
def test_hostile_tar(tmp_path: Path, compression: str) -> None:
    name = f"t.tar{'.' + compression if compression else ''}"
    path = build_hostile_tar(tmp_path / name, compression)
    findings = archive.scan(str(path), name, None)
    rules = by_rule(findings)
    assert rules["symlink-escape"].verdict is Verdict.MALICIOUS
    assert "project/keys" in rules["symlink-escape"].detail
    assert rules["device-entry"].verdict is Verdict.SUSPICIOUS
    assert rules["setid-entry"].verdict is Verdict.SUSPICIOUS
    assert f"{name}!project/helper" in rules["magic:executable-script"].detail
    assert verdict(findings) is Verdict.MALICIOUS


def test_links_that_stay_inside_are_notes(tmp_path: Path) -> None:
    path = tmp_path / "src.tar"
    with tarfile.open(path, "w") as tf:
        for name, target, kind in [
            ("src/lib/current", "v1", tarfile.SYMTYPE),
            ("src/docs/README", "../README", tarfile.SYMTYPE),
            ("src/copy", "src/original", tarfile.LNKTYPE),
        ]:
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = kind, target
            tf.addfile(ti)
    findings = archive.scan(str(path), "src.tar", None)
    assert {f.rule for f in findings} == {"symlink", "hardlink"}
    assert verdict(findings) is Verdict.CLEAN


def test_hard_link_out_of_the_tree_is_malicious(tmp_path: Path) -> None:
    path = tmp_path / "h.tar"
    with tarfile.open(path, "w") as tf:
        ti = tarfile.TarInfo("x")
        ti.type, ti.linkname = tarfile.LNKTYPE, "../../etc/shadow"
        tf.addfile(ti)
    assert by_rule(archive.scan(str(path), "h.tar", None))["hardlink-escape"].verdict is (
        Verdict.MALICIOUS
    )


def test_zip_symlink_entry(tmp_path: Path) -> None:
    path = tmp_path / "l.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("docs/link")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/home/user/.ssh/id_ed25519")
    f = by_rule(archive.scan(str(path), "l.zip", None))["symlink-escape"]
    assert f.verdict is Verdict.MALICIOUS and ".ssh" in f.detail


def test_executable_inside_is_found_and_named(tmp_path: Path) -> None:
    elf = build_elf_named_pdf(tmp_path / "r.pdf").read_bytes()
    path = build_nested_zip(tmp_path / "outer.zip", 2, elf, "report.pdf")
    findings = archive.scan(str(path), "outer.zip", None)
    f = by_rule(findings)["magic:elf-named-as-pdf"]
    assert f.verdict is Verdict.MALICIOUS
    assert "outer.zip!level0.zip!report.pdf" in f.detail


def test_nesting_deeper_than_the_limit_is_suspicious(tmp_path: Path) -> None:
    path = build_nested_zip(tmp_path / "deep.zip", 5, b"hello\n", "a.txt")
    assert [f.rule for f in archive.scan(str(path), "deep.zip", None)] == ["nesting-too-deep"]
    shallow = build_nested_zip(tmp_path / "ok.zip", 3, b"hello\n", "a.txt")
    assert archive.scan(str(shallow), "ok.zip", None) == []


def test_too_many_entries_is_cannot_inspect(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(20):
            zf.writestr(f"f{i}.txt", "x")
    findings = archive.scan(str(path), "many.zip", AuditSettings(archive_max_entries=10))
    assert [(f.rule, f.verdict) for f in findings] == [("too-many-entries", Verdict.CANNOT_INSPECT)]


def test_encrypted_member_and_unsupported_formats(tmp_path: Path) -> None:
    path = tmp_path / "enc.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("secret.txt", "x")
    data = bytearray(path.read_bytes())
    # set the "encrypted" flag in the local and central headers
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        at = data.index(sig) + (6 if sig == b"PK\x03\x04" else 8)
        data[at] |= 1
    path.write_bytes(bytes(data))
    assert by_rule(archive.scan(str(path), "enc.zip", None))["encrypted-member"].verdict is (
        Verdict.CANNOT_INSPECT
    )
    seven = b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(32)
    assert [f.rule for f in archive.scan(seven, "a.7z", None)] == ["unsupported-7z"]


def test_corrupt_archive_is_cannot_inspect() -> None:
    findings = archive.scan(b"PK\x03\x04" + b"\x00" * 100, "bad.zip", None)
    assert [(f.rule, f.verdict) for f in findings] == [("corrupt-archive", Verdict.CANNOT_INSPECT)]
    findings = archive.scan(bz2.compress(b"x" * 100)[:20], "bad.bz2", None)
    assert verdict(findings) is Verdict.CANNOT_INSPECT


def test_java_archive_is_suspicious() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nMain-Class: A\n")
        zf.writestr("A.class", b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + bytes(16))
    assert "java-archive" in by_rule(archive.scan(buf.getvalue(), "app.jar", None))


def test_clean_zip_is_clean(tmp_path: Path) -> None:
    assert archive.scan(str(build_clean_zip(tmp_path / "c.zip")), "c.zip", None) == []


def test_not_an_archive() -> None:
    assert archive.scan(b"hello", "a.txt", None) == []


def test_macro_document_inside_an_archive_is_named(tmp_path: Path) -> None:
    docm = samples.build_docx(tmp_path / "invoice.docm", samples.AUTOOPEN_DROPPER).read_bytes()
    path = build_nested_zip(tmp_path / "mail.zip", 1, docm, "invoice.docm")
    findings = archive.scan(str(path), "mail.zip", None)
    f = by_rule(findings)["office:vba-autoexec-dropper"]
    assert f.verdict is Verdict.MALICIOUS
    assert "mail.zip!invoice.docm" in f.detail


def test_member_extension_is_the_members_own(tmp_path: Path) -> None:
    elf = build_elf_named_pdf(tmp_path / "t").read_bytes()
    path = tmp_path / "tools.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("bin/tool", elf)
        zf.writestr("docs/manual.pdf", elf)
    findings = archive.scan(str(path), "tools.zip", None)
    rules = {(f.rule, f.verdict) for f in findings}
    assert ("magic:executable-elf", Verdict.SUSPICIOUS) in rules
    assert ("magic:elf-named-as-pdf", Verdict.MALICIOUS) in rules
    assert any("tools.zip!bin/tool" in f.detail for f in findings)


def test_repeated_findings_are_counted_not_listed(tmp_path: Path) -> None:
    path = tmp_path / "lib.jar"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        for i in range(12):
            zf.writestr(f"p/C{i}.class", b"\xca\xfe\xba\xbe\x00\x00\x00\x31" + bytes(64))
    findings = archive.scan(str(path), "lib.jar", None)
    classes = [f for f in findings if f.rule == "magic:executable-java-class"]
    assert len(classes) == archive.SAME_RULE_KEPT + 1
    assert "7 more" in classes[-1].detail
