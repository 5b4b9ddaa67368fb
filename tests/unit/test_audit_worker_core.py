"""The worker's pure parts: the sandbox argv, reading back a worker run, completeness, and the
in-process scanner loop. The sandbox itself runs in tests/system/test_audit_worker.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

from zionwm.quarantine import worker
from zionwm.quarantine.report import AuditReport, Finding, Verdict
from zionwm.quarantine.worker import AuditSettings, SandboxPlan, WorkerRun


def plan(**kw: object) -> SandboxPlan:
    base: dict[str, object] = {
        "python": "/opt/py/bin/python3",
        "ro_paths": ("/usr", "/opt/py", "/srv/app/zionwm"),
        "root_links": (("/bin", "usr/bin"), ("/lib", "usr/lib")),
        "package_parent": "/srv/app",
        "fd": 7,
    }
    base.update(kw)
    return SandboxPlan(**base)  # type: ignore[arg-type]


def pairs(argv: list[str], option: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == option]


def test_argv_isolates_everything() -> None:
    argv = worker.sandbox_argv(plan())
    assert argv[0] == "prlimit" and "--as=536870912" in argv and "--core=0" in argv
    b = argv.index("bwrap")
    for flag in ("--unshare-all", "--die-with-parent", "--new-session"):
        assert flag in argv[b:]
    assert "--share-net" not in argv
    assert tuple(argv[argv.index("--cap-drop") : argv.index("--cap-drop") + 2]) == (
        "--cap-drop",
        "ALL",
    )
    # only read-only binds, each at the same path; nothing of a home directory
    assert pairs(argv, "--ro-bind") == [(p, p) for p in ("/usr", "/opt/py", "/srv/app/zionwm")]
    assert "--bind" not in argv
    tail = argv[argv.index("--") + 1 :]
    tail = tail[tail.index("--") + 1 :]
    assert tail == [
        "/opt/py/bin/python3",
        "-B",
        "-s",
        "-m",
        "zionwm.quarantine.worker",
        "--fd",
        "7",
    ]


def test_argv_binds_clamd_and_rules_only_when_configured() -> None:
    bare = worker.sandbox_argv(plan())
    assert "--ro-bind-try" not in bare
    assert "--seccomp" not in bare
    with_filter = worker.sandbox_argv(plan(seccomp_fd=9))
    assert with_filter[with_filter.index("--seccomp") + 1] == "9"
    argv = worker.sandbox_argv(
        plan(clamd_socket="/run/clamav/clamd.ctl", yara_dirs=("/home/u/rules", "/etc/zr"))
    )
    assert pairs(argv, "--ro-bind-try") == [
        ("/run/clamav/clamd.ctl", worker.SANDBOX_CLAMD),
        ("/home/u/rules", f"{worker.SANDBOX_YARA}/0"),
        ("/etc/zr", f"{worker.SANDBOX_YARA}/1"),
    ]
    inside = worker.sandbox_settings(
        AuditSettings(clamd_socket="/run/clamav/clamd.ctl", yara_rule_dirs=("/a", "/b"))
    )
    assert inside.clamd_socket == worker.SANDBOX_CLAMD
    assert inside.yara_rule_dirs == (f"{worker.SANDBOX_YARA}/0", f"{worker.SANDBOX_YARA}/1")


def test_settings_json_round_trip() -> None:
    s = AuditSettings(clamd_socket="/x", yara_rule_dirs=("/r",), timeout=5, archive_max_depth=2)
    assert AuditSettings.from_json(json.loads(json.dumps(s.to_json()))) == s
    assert AuditSettings.from_json({"unknown": 1}) == AuditSettings()


def run(**kw: object) -> WorkerRun:
    base: dict[str, object] = {
        "returncode": 0,
        "stdout": b"",
        "stderr": b"",
        "timed_out": False,
        "elapsed": 0.1,
    }
    base.update(kw)
    return WorkerRun(**base)  # type: ignore[arg-type]


FULL = AuditReport((), ("magic", "yara", "office", "pdf", "archive"), {})


def test_interpret_full_report() -> None:
    report = worker.interpret(run(stdout=json.dumps(FULL.to_json()).encode()), AuditSettings())
    assert report.verdict is Verdict.CLEAN
    assert report.scanners == FULL.scanners


def test_interpret_failures_are_cannot_inspect() -> None:
    s = AuditSettings()
    cases = {
        "worker-timeout": run(timed_out=True, returncode=-9),
        "worker-crashed": run(returncode=-9, stderr=b"MemoryError"),
        "worker-garbage": run(stdout=b"\x00\x01 not json"),
        "worker-output": run(errors=("worker output exceeded 8388608 bytes",)),
    }
    for rule, r in cases.items():
        report = worker.interpret(r, s)
        assert report.verdict is Verdict.CANNOT_INSPECT, rule
        assert [f.rule for f in report.findings] == [rule]
    assert worker.interpret(run(stdout=b"[1, 2]"), s).findings[0].rule == "worker-garbage"
    bad_verdict = {"findings": [{"scanner": "x", "rule": "y", "detail": "z", "verdict": "fine"}]}
    assert (
        worker.interpret(run(stdout=json.dumps(bad_verdict).encode()), s).findings[0].rule
        == "worker-garbage"
    )
    assert "SIGKILL" in worker.interpret(run(returncode=-9), s).findings[0].detail


def test_a_report_missing_a_scanner_is_not_clean() -> None:
    partial = AuditReport((), ("magic", "yara", "office", "pdf"), {})
    report = worker.interpret(run(stdout=json.dumps(partial.to_json()).encode()), AuditSettings())
    assert [(f.rule, f.detail) for f in report.findings] == [
        ("scanner-missing", "the archive scanner did not run")
    ]
    # with clamd configured, a report without clamd is incomplete too
    clamd_settings = AuditSettings(clamd_socket="/run/c.sock")
    assert (
        worker.interpret(run(stdout=json.dumps(FULL.to_json()).encode()), clamd_settings).verdict
        is Verdict.CANNOT_INSPECT
    )
    # a scanner that failed and said so is not reported twice
    failed = AuditReport(
        (Finding("pdf", "scanner-failed", "boom", Verdict.CANNOT_INSPECT),),
        ("magic", "yara", "office", "archive"),
    )
    assert len(worker.complete(failed, AuditSettings()).findings) == 1


def test_audit_source_runs_every_scanner(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("hello\n")
    report = worker.audit_source(str(path), "a.txt", AuditSettings())
    assert report.verdict is Verdict.CLEAN
    assert report.scanners == ("magic", "yara", "office", "pdf", "archive")
    assert set(report.durations) == set(report.scanners)


def test_unreadable_subject_is_cannot_inspect_never_clean() -> None:
    not_open = 1 << 30  # above any fd limit: every scanner's read fails with EBADF
    report = worker.audit_source(not_open, "a.txt", AuditSettings())
    assert report.verdict is Verdict.CANNOT_INSPECT
    assert {f.rule for f in report.findings} == {"scanner-failed"}
    assert report.scanners == ()


def test_run_audit_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        report = worker.run_audit(fd, "dir", AuditSettings())
    finally:
        os.close(fd)
    assert [(f.rule, f.verdict) for f in report.findings] == [
        ("worker-start", Verdict.CANNOT_INSPECT)
    ]


def test_covering_binds() -> None:
    assert worker.covering_binds(
        ["/usr", "/usr/lib/python3", "/opt/venv", "/opt/venv/bin", "/opt/venv/", "/opt/venv2"]
    ) == ("/usr", "/opt/venv", "/opt/venv2")


def test_settings_from_a_config_list_stay_hashable() -> None:
    s = AuditSettings(yara_rule_dirs=["/a", "/b"])  # type: ignore[arg-type]
    assert s.yara_rule_dirs == ("/a", "/b")
    assert hash(s.yara_rule_dirs)


def test_argv_keeps_an_interpreter_under_tmp_visible() -> None:
    """A checkout or venv under /tmp (a CI clone) must be bound on top of the sandbox's fresh
    /tmp, not hidden under it: the tmpfs comes before every bind."""
    argv = worker.sandbox_argv(
        plan(
            python="/tmp/ci/.venv/bin/python", ro_paths=("/usr", "/tmp/ci/.venv", "/tmp/ci/zionwm")
        )
    )
    tmpfs = argv.index("--tmpfs")
    assert argv[tmpfs + 1] == "/tmp"
    binds = [i for i, a in enumerate(argv) if a == "--ro-bind"]
    assert binds and all(i > tmpfs for i in binds)
