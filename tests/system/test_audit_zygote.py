"""The warm audit sandboxes (zygotes) for real: bubblewrap, fork per file, a real clamd.

Every hostile sample the one-shot worker catches is caught through a zygote child with the
same findings; a file that kills its child is cannot-inspect while the files around it keep
their own verdicts; a child killed with SIGKILL mid-scan costs that file only; a zygote is
accounted in the cgroup it is given.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.harness import wait_for
from tests.system.clamd_fixture import EICAR, Clamd, clamd  # noqa: F401  (fixture)
from tests.system.test_audit_worker import (
    _MISSING,
    SAMPLES,
)
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
from zionwm.quarantine.report import AuditReport, Verdict
from zionwm.quarantine.worker import AuditSettings, run_audit
from zionwm.quarantine.zygote import FULL, LIGHT, ZygotePool

pytestmark = pytest.mark.skipif(_MISSING is not None, reason=f"no sandbox: {_MISSING}")


@pytest.fixture
def pool() -> Iterator[ZygotePool]:
    # the Python zygotes (plain files would otherwise go to the native one, which
    # test_audit_native.py covers)
    p = ZygotePool(native=False)
    yield p
    p.close()


@pytest.mark.security
def test_a_scanning_child_is_sandboxed_and_holds_only_its_file_and_its_result(
    tmp_path: Path,
    isolated_env: Path,
    pool: ZygotePool,
) -> None:
    sample = notes(tmp_path)
    secret = isolated_env / ".ssh" / "id_ed25519"
    hidden = (str(secret), str(isolated_env), str(sample), str(tmp_path))
    fd = os.open(sample, os.O_RDWR)  # even a writable fd reaches the child read-only
    try:
        # two files through the same sandbox: the second child sees nothing of the first
        pool.probe(fd, AuditSettings(timeout=30), hidden)
        seen = pool.probe(fd, AuditSettings(timeout=30), hidden)
    finally:
        os.close(fd)
    assert_sandboxed(seen, hidden, AuditSettings().memory_max)


def test_every_hostile_sample_is_caught_as_by_the_one_shot_worker(
    tmp_path: Path,
    isolated_env: Path,
    pool: ZygotePool,
    clamd: Clamd,  # noqa: F811
) -> None:
    settings = AuditSettings(timeout=30, clamd_socket=clamd.socket_path)
    eicar = tmp_path / "eicar.com"
    eicar.write_bytes(EICAR)
    cases = [(b(tmp_path / n), v, r) for b, n, v, r in SAMPLES]
    cases.append((eicar, Verdict.MALICIOUS, "Zionwm-Test-Eicar"))
    # each through the sandbox the service would pick, and through the other kind too: the
    # choice is only about speed
    runs = [(c, None) for c in cases] + [(c, LIGHT) for c in cases] + [(c, FULL) for c in cases]
    one_shot: dict[Path, AuditReport] = {}
    for (path, verdict, rule), flavor in runs:
        report = audit(pool, path, settings, flavor=flavor)
        assert report.verdict is verdict, (path.name, report.findings)
        if rule is not None:
            assert any(f.rule.startswith(rule) for f in report.findings), report.findings
        assert {"magic", "yara", "clamd", "office", "pdf", "archive"} <= set(report.scanners)
        # the same findings as the one-shot sandbox gives
        if path not in one_shot:
            fd = os.open(path, os.O_RDONLY)
            try:
                one_shot[path] = run_audit(fd, path.name, settings)
            finally:
                os.close(fd)
        old = one_shot[path]
        assert {(f.scanner, f.rule, f.verdict) for f in report.findings} == {
            (f.scanner, f.rule, f.verdict) for f in old.findings
        }
    assert pool.stats()["started"] == 2  # one sandbox of each kind served them all


def test_a_file_that_exhausts_its_childs_memory_is_cannot_inspect_and_its_batch_is_right(
    tmp_path: Path,
    isolated_env: Path,
    pool: ZygotePool,
) -> None:
    # the child reads the file into memory twice over: 60 MiB does not fit in what the
    # limit leaves above the zygote's own mappings, while ordinary files do
    settings = AuditSettings(timeout=30, memory_max=170 << 20)
    big = tmp_path / "huge.txt"
    with open(big, "wb") as f:
        f.write(b"a" * (63 << 20))
    elf = SAMPLES[0][0](tmp_path / "report.pdf")
    text = notes(tmp_path)
    batch = [big, elf, text, big, text]
    with ThreadPoolExecutor(2) as ex:
        reports = list(ex.map(lambda p: audit(pool, p, settings), batch))
    assert_only_the_big_file_crashed(batch, reports, big, elf)
    # a crash recycles the sandbox: the files after it were served by fresh ones
    assert pool.stats()["started"] >= 2


def test_sigkill_of_a_scanning_child_costs_only_its_file(
    tmp_path: Path,
    isolated_env: Path,
    pool: ZygotePool,
) -> None:
    settings = AuditSettings(timeout=60)
    # a zip bomb keeps the archive scanner busy long enough to be caught in the act
    slow = SAMPLES[6][0](tmp_path / "zeros.zip")
    text = notes(tmp_path)
    audit(pool, text, settings, flavor=FULL)  # a warm sandbox of the kind the zip goes to
    (zygote,) = pool.stats()["zygotes"]
    before = set(descendants(zygote["pid"]))
    result: list[AuditReport] = []
    t = threading.Thread(target=lambda: result.append(audit(pool, slow, settings, flavor=FULL)))
    t.start()

    def scanning_child() -> list[int]:
        return sorted(set(descendants(zygote["pid"])) - before)

    killed = False
    try:
        kids = wait_for(scanning_child, 30, "a child scanning the file", interval=0.002)
        os.kill(kids[-1], signal.SIGKILL)  # the newest process: the forked child
        killed = True
    except AssertionError:
        pass
    t.join(60)
    assert result, "the audit never returned"
    if not killed or result[0].verdict is not Verdict.CANNOT_INSPECT:
        pytest.fail(f"the kill did not land during the scan: {result[0].findings}")
    assert [f.rule for f in result[0].findings] == ["worker-crashed"]
    assert "SIGKILL" in result[0].findings[0].detail
    # the next file is audited normally (by a fresh sandbox: a crash recycles)
    assert audit(pool, text, settings).verdict is Verdict.CLEAN


@pytest.mark.security
def test_the_zygote_runs_in_the_cgroup_it_is_given(
    tmp_path: Path,
    isolated_env: Path,
) -> None:
    base = Path("/sys/fs/cgroup/unified")
    if not base.is_dir():
        base = Path("/sys/fs/cgroup")
    group = base / f"zionwm-test-audit-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
    except OSError as e:
        pytest.skip(f"cannot create a cgroup here ({base}: {e.strerror})")
    pool = ZygotePool(
        cgroups=lambda source: [str(group / "cgroup.procs")] if source == "web" else []
    )
    try:
        text = notes(tmp_path)
        assert audit(pool, text, AuditSettings(timeout=30)).verdict is Verdict.CLEAN
        (zygote,) = pool.stats()["zygotes"]
        assert zygote["cgroup"] == str(group)
        members = {int(p) for p in (group / "cgroup.procs").read_text().split()}
        # the gate shell became bwrap, and bwrap's sandbox and the interpreter followed it
        assert zygote["pid"] in members
        assert set(descendants(zygote["pid"])) <= members
        assert len(members) >= 2
    finally:
        pool.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.05)


def test_an_idle_zygote_is_stopped_and_its_memory_returned(
    tmp_path: Path,
    isolated_env: Path,
) -> None:
    pool = ZygotePool(idle_seconds=0.2)
    try:
        text = notes(tmp_path)
        assert audit(pool, text, AuditSettings(timeout=30)).verdict is Verdict.CLEAN
        (zygote,) = pool.stats()["zygotes"]
        assert zygote["rss_kib"] > 0

        def swept() -> bool:
            pool.sweep()
            return not pool.stats()["zygotes"]

        wait_for(swept, 10, "the idle audit sandbox stopped", interval=0.05)
        assert not Path(f"/proc/{zygote['pid']}").exists() or (
            Path(f"/proc/{zygote['pid']}/stat").read_text().split(")")[-1].split()[0] == "Z"
        )
    finally:
        pool.close()


def test_a_child_over_its_time_is_killed_and_cannot_inspect_and_the_next_file_is_right(
    tmp_path: Path,
    isolated_env: Path,
    pool: ZygotePool,
) -> None:
    assert_over_time_then_clean(pool, tmp_path)


def test_a_zygote_is_replaced_after_its_quota_of_files(tmp_path: Path, isolated_env: Path) -> None:
    pool = ZygotePool(max_files=3)
    try:
        text = notes(tmp_path)
        pids = set()
        for _ in range(7):
            assert audit(pool, text, AuditSettings(timeout=30)).verdict is Verdict.CLEAN
            pids |= {z["pid"] for z in pool.stats()["zygotes"]}
        assert pool.stats()["started"] == 3 and len(pids) == 3
    finally:
        pool.close()
