"""Many audits in flight at once through the warm sandboxes, as the service runs them: each
file still gets its own verdict when files beside it crash their child, the successor of a
zygote near its quota is warm before it is needed, and a child forked for a file imports
nothing (everything it runs was loaded once, in its zygote).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
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
from zionwm.quarantine.audit.common import AuditSettings
from zionwm.quarantine.report import AuditReport, Verdict
from zionwm.quarantine.service import default_workers
from zionwm.quarantine.zygote import FULL, LIGHT, ZygotePool, flavor_for

pytestmark = pytest.mark.skipif(_MISSING is not None, reason=f"no sandbox: {_MISSING}")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def pool() -> Iterator[ZygotePool]:
    # the Python zygotes (test_audit_native.py covers the native one's crashes)
    p = ZygotePool(native=False)
    yield p
    p.close()


def _audit(pool: ZygotePool, path: Path, settings: AuditSettings) -> AuditReport:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        flavor = flavor_for(path.read_bytes()[:8192])
        return pool.audit(fd, path.name, settings, "web", flavor=flavor)
    finally:
        os.close(fd)


def test_files_in_flight_together_keep_their_own_verdicts_when_some_crash_their_child(
    tmp_path: Path,
    isolated_env: Path,
    pool: ZygotePool,
    clamd: Clamd,  # noqa: F811
) -> None:
    settings = AuditSettings(clamd_socket=clamd.socket_path, timeout=60)
    # a child reading this reads it into memory twice over: over its limit, it dies
    tight = AuditSettings(clamd_socket=clamd.socket_path, timeout=60, memory_max=170 << 20)
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as f:
        f.write(b"a" * (63 << 20))
    eicar = tmp_path / "eicar.txt"
    eicar.write_bytes(EICAR)
    cases: list[tuple[Path, AuditSettings, Verdict, str | None]] = []
    for n, (build, name, verdict, rule) in enumerate(SAMPLES):
        d = tmp_path / f"s{n}"
        d.mkdir()
        cases.append((build(d / name), settings, verdict, rule))
    cases += [(huge, tight, Verdict.CANNOT_INSPECT, "worker-crashed")] * 3
    cases += [(eicar, settings, Verdict.MALICIOUS, "Zionwm-Test-Eicar")] * 2
    text = tmp_path / "notes.txt"
    text.write_bytes(b"meeting at noon\n")
    cases += [(text, tight, Verdict.CLEAN, None)] * 4  # forked by the zygotes the crashes hit
    random.Random(17).shuffle(cases)

    # as many in flight as the service keeps, and at least more than the CPUs
    with ThreadPoolExecutor(max(default_workers(), 6)) as ex:
        reports = list(ex.map(lambda c: _audit(pool, c[0], c[1]), cases))

    for (path, _settings, verdict, rule), report in zip(cases, reports, strict=True):
        assert report.verdict is verdict, (path.name, report.findings)
        if rule is not None:
            assert any(f.rule.startswith(rule) for f in report.findings), (path.name, report)
        if rule == "worker-crashed":
            assert [f.rule for f in report.findings] == ["worker-crashed"], report.findings
        else:
            # a file beside a crash was audited completely, by every scanner
            assert {"magic", "yara", "clamd", "office", "pdf", "archive"} <= set(report.scanners)
    assert pool.stats()["started"] >= 3  # a crash recycles its zygote: fresh ones took over


def test_the_successor_of_a_zygote_near_its_quota_is_started_before_it_is_needed(
    tmp_path: Path, isolated_env: Path
) -> None:
    pool = ZygotePool(max_files=3, spare_at=1)
    try:
        text = tmp_path / "notes.txt"
        text.write_bytes(b"meeting at noon\n")
        settings = AuditSettings(timeout=30)
        pids = []
        for _ in range(2):
            assert _audit(pool, text, settings).verdict is Verdict.CLEAN
            pids.append(pool.stats()["zygotes"][0]["pid"])
        # the second file of three started the successor beside the serving zygote
        wait_for(lambda: pool.stats()["started"] == 2, 60, "the successor's start")
        assert _audit(pool, text, settings).verdict is Verdict.CLEAN
        pids.append(pool.stats()["zygotes"][0]["pid"])
        assert len(set(pids)) == 1  # all three by the first zygote
        # the fourth is the successor's: already started, so no start is added for it
        assert _audit(pool, text, settings).verdict is Verdict.CLEAN
        (z,) = pool.stats()["zygotes"]
        assert z["pid"] != pids[0] and z["served"] == 1
        assert pool.stats()["started"] == 2
    finally:
        pool.close()


@pytest.mark.parametrize("flavor", [LIGHT, FULL])
def test_a_child_forked_for_a_file_imports_no_module(tmp_path: Path, flavor: str) -> None:
    # what a child imports it imports for every file (and then throws away): all of it
    # belongs in the zygote's one load
    sample = tmp_path / ("doc.pdf" if flavor == FULL else "blob.bin")
    if flavor == FULL:
        sample.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    else:
        sample.write_bytes(os.urandom(4096))
    script = textwrap.dedent(
        f"""
        import json, os, sys
        from zionwm.quarantine.audit.common import AuditSettings
        from zionwm.quarantine import zygote_inside
        settings = AuditSettings(clamd_socket="/nonexistent/clamd.sock")
        zygote_inside._preload(settings, {flavor!r})
        before = set(sys.modules)
        fd = os.open({str(sample)!r}, os.O_RDONLY)
        r, w = os.pipe()
        if os.fork() == 0:
            zygote_inside._child(fd, w, {sample.name!r}, settings)
            os.write(w, b"\\0" + json.dumps(sorted(set(sys.modules) - before)).encode())
            os._exit(0)
        os.close(w)
        out = b""
        while chunk := os.read(r, 65536):
            out += chunk
        report, _, new = out.partition(b"\\0")
        print(json.dumps({{"report": json.loads(report), "new": json.loads(new)}}))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert "magic" in result["report"]["scanners"], result
    assert result["new"] == [], result["new"]
