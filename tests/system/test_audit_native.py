"""The native audit zygote for real: bubblewrap, a C child per file, a real clamd.

Plain files (no Office document, PDF or archive) are audited by a child of the native
zygote; it must give the findings the Python zygote gives, a file that kills its child is
cannot-inspect while its neighbours keep their own verdicts, and a document sent to it goes
to the Python scanners after all.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.harness import wait_for
from tests.system.clamd_fixture import EICAR, Clamd, clamd  # noqa: F401  (fixture)
from tests.system.test_audit_worker import _MISSING, SAMPLES
from tests.system.test_audit_worker import (
    isolated_env as isolated_env,  # noqa: PLC0414  (the fixture, shared)
)
from tests.system.zygote_helpers import (
    assert_only_the_big_file_crashed,
    assert_over_time_then_clean,
    assert_sandboxed,
    audit,
    descendants,
    notes,
)
from zionwm.quarantine import native
from zionwm.quarantine.report import Verdict
from zionwm.quarantine.worker import AuditSettings
from zionwm.quarantine.zygote import FULL, LIGHT, NATIVE, ZygotePool, flavor_for

pytestmark = [
    pytest.mark.skipif(_MISSING is not None, reason=f"no sandbox: {_MISSING}"),
    pytest.mark.skipif(
        native.program() is None,
        reason="the native audit zygote is not built (make setup builds it; needs gcc, "
        "libmagic-dev, libyara-dev)",
    ),
]


@pytest.fixture
def pool() -> Iterator[ZygotePool]:
    p = ZygotePool()
    yield p
    p.close()


def flavors(pool: ZygotePool) -> list[str]:
    return sorted(z["flavor"] for z in pool.stats()["zygotes"])


def _extra_samples(tmp_path: Path) -> list[Path]:
    out = []
    for name, data, mode in [
        ("run.txt", b"[Desktop Entry]\nType=Application\n  Exec = sh -c id\n", 0o644),
        ("not-a-launcher.txt", b"x [Desktop Entry]\nExec=foo\n", 0o644),
        ("page.png", b"<!DOCTYPE html><html><script>alert(1)</script></html>\n", 0o644),
        ("tool.exe", b"MZ\x90\x00" + bytes(200), 0o644),
        ("setup.scr", b"just text, named to be run by Windows\n", 0o644),
        ("empty.txt", b"", 0o644),
        ("binary.txt", bytes(range(256)) * 8, 0o644),
        ("script.py", b"#!/usr/bin/python3\nprint(1)\n", 0o755),
        ("macho.jpg", b"\xcf\xfa\xed\xfe" + bytes(64), 0o644),
    ]:
        p = tmp_path / name
        p.write_bytes(data)
        p.chmod(mode)
        out.append(p)
    return out


def test_every_plain_sample_gets_the_python_zygotes_findings_from_a_native_child(
    tmp_path: Path,
    isolated_env: Path,
    pool: ZygotePool,
    clamd: Clamd,  # noqa: F811
) -> None:
    settings = AuditSettings(timeout=30, clamd_socket=clamd.socket_path)
    python = ZygotePool(native=False)
    eicar = tmp_path / "eicar.com"
    eicar.write_bytes(EICAR)
    paths = [build(tmp_path / n) for build, n, _v, _r in SAMPLES] + [eicar]
    paths += _extra_samples(tmp_path)
    natives = 0
    try:
        for path in paths:
            report = audit(pool, path, settings)
            reference = audit(python, path, settings)
            assert {(f.scanner, f.rule, f.verdict) for f in report.findings} == {
                (f.scanner, f.rule, f.verdict) for f in reference.findings
            }, path.name
            assert report.verdict is reference.verdict
            assert set(report.scanners) == set(reference.scanners), path.name
            natives += flavor_for(path.read_bytes()[:8192]) == LIGHT
    finally:
        python.close()
    assert natives >= 10
    assert NATIVE in flavors(pool)
    # the ELF named .pdf, the launcher and EICAR went native and were caught there
    for name, verdict in [("report.pdf", Verdict.MALICIOUS), ("eicar.com", Verdict.MALICIOUS)]:
        assert audit(pool, tmp_path / name, settings).verdict is verdict


def test_a_document_sent_to_the_native_zygote_is_audited_by_the_python_scanners(
    tmp_path: Path, isolated_env: Path, pool: ZygotePool
) -> None:
    # a caller that picks the flavor wrongly (or a file that changed since its head was
    # read) must not skip the Office scanner: the native child sees the head and declines
    settings = AuditSettings(timeout=30)
    build, name, verdict, rule = SAMPLES[3]  # the docm with AutoOpen
    path = build(tmp_path / name)
    report = audit(pool, path, settings, flavor=LIGHT)
    assert report.verdict is verdict
    assert any(f.rule.startswith(str(rule)) for f in report.findings), report.findings
    assert flavors(pool) == sorted([NATIVE, FULL])


def test_a_native_child_that_crashes_or_runs_out_of_memory_costs_only_its_file(
    tmp_path: Path, isolated_env: Path, pool: ZygotePool
) -> None:
    # 60 MiB does not fit beside the sandbox's own mappings under a 60 MiB address-space
    # limit, while ordinary files do: the child's malloc fails and it exits non-zero
    settings = AuditSettings(timeout=30, memory_max=60 << 20)
    big = tmp_path / "huge.txt"
    with open(big, "wb") as f:
        f.write(b"a" * (60 << 20))
    elf = SAMPLES[0][0](tmp_path / "report.pdf")
    text = notes(tmp_path)
    batch = [big, elf, text, big, text, elf]
    with ThreadPoolExecutor(3) as ex:
        reports = list(ex.map(lambda p: audit(pool, p, settings), batch))
    assert_only_the_big_file_crashed(batch, reports, big, elf)
    assert pool.stats()["started"] >= 2  # a crash recycles the native zygote too


def test_sigkill_of_a_native_child_costs_only_its_file(
    tmp_path: Path, isolated_env: Path, pool: ZygotePool
) -> None:
    settings = AuditSettings(timeout=30)
    text = notes(tmp_path)
    assert audit(pool, text, settings).verdict is Verdict.CLEAN
    (z,) = [z for z in pool.stats()["zygotes"] if z["flavor"] == NATIVE]
    # a file YARA needs long for: the child is caught scanning it
    slow = tmp_path / "slow.txt"
    slow.write_bytes(b"A" * (48 << 20))
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(audit, pool, slow, settings)

        def scanning_child() -> list[int]:
            return descendants(z["pid"])[-1:] if len(descendants(z["pid"])) >= 3 else []

        kids = wait_for(scanning_child, timeout=30, what="a scanning native child")
        os.kill(kids[0], signal.SIGKILL)
        report = fut.result(timeout=60)
    assert report.verdict is Verdict.CANNOT_INSPECT
    assert [f.rule for f in report.findings] == ["worker-crashed"]
    assert audit(pool, text, settings).verdict is Verdict.CLEAN


@pytest.mark.security
def test_a_native_child_is_sandboxed_and_holds_only_its_file_and_its_result(
    tmp_path: Path,
    isolated_env: Path,
    pool: ZygotePool,
) -> None:
    sample = notes(tmp_path)
    secret = isolated_env / ".ssh" / "id_ed25519"
    hidden = (str(secret), str(isolated_env), str(sample), str(tmp_path))
    fd = os.open(sample, os.O_RDWR)  # even a writable fd reaches the child read-only
    settings = AuditSettings(timeout=30)
    try:
        # two files through the same sandbox: the second child sees nothing of the first
        pool.probe(fd, settings, hidden, flavor=NATIVE)
        seen = pool.probe(fd, settings, hidden, flavor=NATIVE)
    finally:
        os.close(fd)
    assert_sandboxed(seen, hidden, settings.memory_max)
    assert sample.read_bytes() == b"meeting at noon\n"
    assert flavors(pool) == [NATIVE]


def test_a_native_child_over_its_time_is_killed_and_cannot_inspect_and_the_next_file_is_right(
    tmp_path: Path,
    isolated_env: Path,
    pool: ZygotePool,
) -> None:
    assert_over_time_then_clean(pool, tmp_path)
    assert NATIVE in flavors(pool)


def test_a_report_names_the_libraries_that_judged_its_file(
    tmp_path: Path, isolated_env: Path, pool: ZygotePool
) -> None:
    text = notes(tmp_path)
    report = audit(pool, text, AuditSettings(timeout=30))
    assert report.engines["versions"].get("native") is True
    assert report.engines["versions"]["yara"].startswith("YARA ")
    python = ZygotePool(native=False)
    try:
        other = audit(python, text, AuditSettings(timeout=30))
    finally:
        python.close()
    assert "native" not in other.engines["versions"]


@pytest.mark.parametrize(
    "head",
    [
        b"PK\x03\x04rest",
        b"%PDF-1.7\n",
        b"junk before " * 10 + b"%PDF-1.4",
        b"  \n<?XML version='1.0'?><w:wordDocument>",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100),
        b"{\\rtf1 hello}",
        b"\x1f\x8b\x08\x00",
        bytes(257) + b"ustar\x00",
        b"ID;PWXL;N;E\n",
    ],
)
def test_the_native_child_declines_every_head_the_python_scanners_read(
    head: bytes, tmp_path: Path, isolated_env: Path, pool: ZygotePool
) -> None:
    # whatever its caller chose: the office, pdf and archive scanners must see these
    assert flavor_for(head) == FULL
    path = tmp_path / "sample.txt"
    path.write_bytes(head)
    report = audit(pool, path, AuditSettings(timeout=30), flavor=LIGHT)
    assert "native" not in report.engines["versions"]  # judged by the Python zygote
    assert sorted(z["flavor"] for z in pool.stats()["zygotes"]) == [FULL, NATIVE]
