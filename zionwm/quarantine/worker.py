"""The audit worker: runs every scanner on one file inside a bubblewrap sandbox of its own.

Two halves in one module:
- the parent side, `run_audit(fd, name, settings)`: reopens the file read-only, starts
  `python -m zionwm.quarantine.worker` under `prlimit` (address space, CPU, file size, no
  core) inside `bwrap` (every namespace unshared, so no network; uid 65534, no
  capabilities, the project's seccomp filter; no home; only /usr, the interpreter, its
  site-packages and this package, all read-only; the file only as an inherited fd; the
  clamd socket and the user's YARA directories bound in read-only when configured), kills
  the whole sandbox at the timeout, and turns what comes back into an `AuditReport`. A
  timeout, a crash, a missing scanner or output that is not a valid report all become
  cannot-inspect findings, never clean;
- the child side, `main()`: reads its request (display name and settings) as JSON on stdin,
  runs the scanners of `zionwm.quarantine.audit` on the fd, and prints the report as JSON.

`audit_source` runs the same scanners in-process, without a sandbox, for tests and
benchmarks, and `audit_open_file` is what a zygote's child runs (one read of the file, the
buffer fed to libmagic, YARA and clamd). The service audits through `zygote.ZygotePool`,
which starts its warm sandboxes with this module's sandbox plan; `run_audit` (a sandbox
started per file) stays as the reference the zygote path is tested against.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import selectors
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zionwm.quarantine.audit.common import AuditSettings
from zionwm.quarantine.report import AuditReport, Finding, Verdict

log = logging.getLogger(__name__)

WORKER_MODULE = "zionwm.quarantine.worker"
SCANNER = "worker"
SCANNER_ORDER = ("magic", "yara", "clamd", "office", "pdf", "archive")
STDOUT_MAX = 8 << 20
STDERR_MAX = 64 << 10
FSIZE_MAX = 16 << 20  # the worker writes no files; this bounds its private tmpfs use

# Paths inside the sandbox.
SANDBOX_CLAMD = "/run/zionwm/clamd.sock"
SANDBOX_YARA = "/run/zionwm/yara"


def expected_scanners(settings: AuditSettings) -> tuple[str, ...]:
    """The scanners that must have run for a report to count as complete."""
    return tuple(s for s in SCANNER_ORDER if s != "clamd" or settings.clamd_socket is not None)


# --- the sandbox (pure argv builder) --------------------------------------------------------


@dataclass(frozen=True)
class SandboxPlan:
    """Every host fact the sandbox depends on, gathered once, so the argv is a pure function."""

    python: str  # interpreter to run inside (a path valid inside too: bound at the same path)
    ro_paths: tuple[str, ...]  # host paths bound read-only at the same place
    root_links: tuple[tuple[str, str], ...]  # ("/bin", "usr/bin"): usr-merge symlinks
    package_parent: str  # directory holding the zionwm package (PYTHONPATH inside)
    fd: int  # the file, read-only, inherited
    info_fd: int | None = None  # bwrap writes {"child-pid": N} here
    seccomp_fd: int | None = None  # BPF program bwrap installs before running the worker
    clamd_socket: str | None = None
    yara_dirs: tuple[str, ...] = ()
    memory_max: int = 512 * 2**20
    cpu_seconds: int = 61
    probe: bool = False
    module: str = WORKER_MODULE  # what runs inside: the one-shot worker or a zygote
    fd_flag: str = "--fd"  # how `fd` is handed to it
    readonly_tmp: bool = False  # /tmp read-only too (a zygote writes nothing anywhere)
    command: tuple[str, ...] = ()  # a native program and its arguments instead of Python


def sandbox_argv(plan: SandboxPlan) -> list[str]:
    """prlimit + bwrap + python argv for one worker run."""
    argv = [
        "prlimit",
        f"--as={plan.memory_max}",
        f"--cpu={plan.cpu_seconds}",
        f"--fsize={FSIZE_MAX}",
        "--core=0",
        "--",
        "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--hostname",
        "zionwm-audit",
    ]
    if plan.info_fd is not None:
        argv += ["--info-fd", str(plan.info_fd)]
    if plan.seccomp_fd is not None:
        argv += ["--seccomp", str(plan.seccomp_fd)]
    # the fresh /tmp first: binds below come on top of it, so an interpreter or checkout
    # that lives under /tmp (a CI clone, say) stays visible instead of being hidden
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for path in plan.ro_paths:
        argv += ["--ro-bind", path, path]
    for link, target in plan.root_links:
        argv += ["--symlink", target, link]
    argv += ["--dir", "/run/zionwm"]
    if plan.clamd_socket is not None:
        # -try: a configured clamd that is not running is the worker's to report (it finds
        # no socket: cannot-inspect), not a reason for the sandbox to fail to start
        argv += ["--ro-bind-try", plan.clamd_socket, SANDBOX_CLAMD]
    for i, d in enumerate(plan.yara_dirs):
        argv += ["--ro-bind-try", d, f"{SANDBOX_YARA}/{i}"]
    if plan.readonly_tmp:
        argv += ["--remount-ro", "/tmp"]
    argv += ["--chdir", "/", "--"]
    if plan.command:
        argv += list(plan.command)
    else:
        argv += [plan.python, "-B", "-s", "-m", plan.module]
        argv += ["--probe"] if plan.probe else []
    argv += [plan.fd_flag, str(plan.fd)]
    return argv


def sandbox_env(plan: SandboxPlan) -> dict[str, str]:
    """The whole environment of the sandboxed interpreter (nothing of ours leaks in)."""
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONPATH": plan.package_parent,
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/nonexistent",
    }


def sandbox_settings(settings: AuditSettings) -> AuditSettings:
    """The settings as the worker sees them: host paths replaced by their sandbox paths."""
    return dataclasses.replace(
        settings,
        clamd_socket=SANDBOX_CLAMD if settings.clamd_socket is not None else None,
        yara_rule_dirs=tuple(f"{SANDBOX_YARA}/{i}" for i in range(len(settings.yara_rule_dirs))),
    )


def covering_binds(paths: list[str]) -> tuple[str, ...]:
    """The fewest of `paths` whose binds include all of them (pure; order kept)."""
    chosen: list[str] = []
    for p in sorted({os.path.normpath(p) for p in paths}, key=lambda p: (p.count("/"), p)):
        if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in chosen):
            chosen.append(p)
    return tuple(chosen)


def _host_plan(
    fd: int, settings: AuditSettings, info_fd: int | None, probe: bool, seccomp_fd: int | None
) -> SandboxPlan:
    import zionwm  # noqa: PLC0415 - only to locate the package on this host

    package_dir = Path(zionwm.__file__).resolve().parent
    python = Path(sys.executable)
    # the interpreter, its venv and this package, by their real paths and (when reached
    # through symlinks) by the paths they are called by
    wanted = [sys.base_prefix, sys.prefix, str(package_dir), str(python.parent)]
    wanted += [str(Path(p).resolve()) for p in wanted]
    wanted.append(str(python.resolve().parent))
    ro = list(covering_binds(["/usr", *wanted]))
    if os.path.exists("/etc/ld.so.cache"):
        ro.append("/etc/ld.so.cache")  # ctypes.util.find_library (python-magic) reads it
    links: list[tuple[str, str]] = []
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            links.append((top, os.readlink(top)))
        elif os.path.isdir(top):
            ro.append(top)
    return SandboxPlan(
        python=str(python),
        ro_paths=tuple(ro),
        root_links=tuple(links),
        package_parent=str(package_dir.parent),
        fd=fd,
        info_fd=info_fd,
        seccomp_fd=seccomp_fd,
        clamd_socket=settings.clamd_socket,
        yara_dirs=settings.yara_rule_dirs,
        memory_max=settings.memory_max,
        cpu_seconds=math.ceil(settings.timeout) + 1,
        probe=probe,
    )


# --- the parent side ------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerRun:
    """What one sandboxed worker did, before interpretation."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    elapsed: float
    sandbox_pid: int | None = None  # the sandbox's init as seen from the host (bwrap info)
    pgid: int | None = None  # process group of prlimit/bwrap (killed as a whole on timeout)
    errors: tuple[str, ...] = field(default_factory=tuple)


def _reopen_read_only(fd: int) -> int:
    """A new read-only open file description of the same inode (own offset, no write access)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file")
    new = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    if os.fstat(new).st_ino != st.st_ino:
        os.close(new)
        raise ValueError("reopened file is not the same inode")
    return new


def _seccomp_fd() -> int | None:
    """The project's seccomp program for this sandbox, or None where it cannot be built (the
    namespaces, dropped capabilities and rlimits still hold; the filter is defence in depth)."""
    try:
        from zionwm.isolation import seccomp  # noqa: PLC0415 - libseccomp, only when auditing

        return seccomp.filter_fd()
    except Exception as exc:
        log.warning("audit worker runs without a seccomp filter: %s", exc)
        return None


def run_worker(
    file_fd: int, display_name: str, settings: AuditSettings, probe: bool = False
) -> WorkerRun:
    """Start the sandboxed worker on the fd and collect its output within the timeout."""
    with contextlib.ExitStack() as fds:
        ro_fd = _reopen_read_only(file_fd)
        fds.callback(os.close, ro_fd)
        info_r, info_w = os.pipe2(os.O_CLOEXEC)
        fds.callback(os.close, info_r)
        child_fds = contextlib.ExitStack()  # the child's copies: closed once it has started
        fds.enter_context(child_fds)
        child_fds.callback(os.close, info_w)
        seccomp_fd = _seccomp_fd()
        if seccomp_fd is not None:
            child_fds.callback(os.close, seccomp_fd)
        plan = _host_plan(ro_fd, settings, info_w, probe, seccomp_fd)
        request = json.dumps(
            {"name": display_name, "settings": sandbox_settings(settings).to_json()}
        ).encode()
        env = sandbox_env(plan)
        start = time.monotonic()
        proc = subprocess.Popen(
            sandbox_argv(plan),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=tuple(fd for fd in (ro_fd, info_w, seccomp_fd) if fd is not None),
            start_new_session=True,
            env=env,
        )
        child_fds.close()
        return _collect(proc, request, info_r, start, settings.timeout)


def _collect(
    proc: subprocess.Popen[bytes], request: bytes, info_r: int, start: float, timeout: float
) -> WorkerRun:
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    deadline = start + timeout
    out = bytearray()
    err = bytearray()
    info = bytearray()
    errors: list[str] = []
    timed_out = False
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, out)
    sel.register(proc.stderr, selectors.EVENT_READ, err)
    sel.register(info_r, selectors.EVENT_READ, info)
    os.set_blocking(proc.stdin.fileno(), False)
    pending = memoryview(request)
    sel.register(proc.stdin, selectors.EVENT_WRITE, None)
    open_readers = 3
    try:
        while open_readers:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(remaining):
                if key.data is None:  # stdin
                    try:
                        n = os.write(key.fd, pending)
                        pending = pending[n:]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(key.fileobj)
                        proc.stdin.close()
                    continue
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_readers -= 1
                    continue
                buf: bytearray = key.data
                buf += chunk
                if buf is out and len(out) > STDOUT_MAX:
                    errors.append(f"worker output exceeded {STDOUT_MAX} bytes")
                    raise _Overflow
                if buf is err and len(err) > STDERR_MAX:
                    del err[: len(err) - STDERR_MAX]
    except _Overflow:
        pass
    finally:
        sel.close()
        if not proc.stdin.closed:
            with contextlib.suppress(OSError):
                proc.stdin.close()
    if timed_out or errors:
        _kill(proc)
    try:
        rc: int | None = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill(proc)
        rc = proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return WorkerRun(
        returncode=rc,
        stdout=bytes(out),
        stderr=bytes(err),
        timed_out=timed_out,
        elapsed=time.monotonic() - start,
        sandbox_pid=_child_pid(bytes(info)),
        pgid=proc.pid,
        errors=tuple(errors),
    )


class _Overflow(Exception):
    pass


def _kill(proc: subprocess.Popen[bytes]) -> None:
    # bwrap's own session: the sandbox's init and everything under it die with it
    # (--die-with-parent and the pid namespace), the group kill takes bwrap and prlimit
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def _child_pid(info: bytes) -> int | None:
    try:
        pid = json.loads(info.decode() or "{}").get("child-pid")
    except (ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) else None


def interpret(run: WorkerRun, settings: AuditSettings) -> AuditReport:
    """The report a worker run stands for (pure): anything short of a full report is not clean."""
    tail = run.stderr[-400:].decode("utf-8", "replace").strip()
    if run.timed_out:
        return _failed(
            "worker-timeout",
            f"the audit did not finish within {settings.timeout:g} s and was killed",
        )
    if run.errors:
        return _failed("worker-output", "; ".join(run.errors))
    if run.returncode != 0:
        how = (
            f"killed by {signal.Signals(-run.returncode).name}"
            if run.returncode is not None and run.returncode < 0
            else f"exited with status {run.returncode}"
        )
        return _failed("worker-crashed", f"the audit worker {how}: {tail or 'no message'}")
    try:
        data = json.loads(run.stdout)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        report = AuditReport.from_json(data)
        if not all(isinstance(s, str) for s in report.scanners):
            raise ValueError("bad scanner list")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return _failed("worker-garbage", f"the audit worker's output is not a report: {exc}")
    return complete(report, settings)


def complete(report: AuditReport, settings: AuditSettings) -> AuditReport:
    """Add a cannot-inspect finding for every expected scanner that did not run."""
    missing = [s for s in expected_scanners(settings) if s not in report.scanners]
    explained = {f.scanner for f in report.findings if f.verdict is Verdict.CANNOT_INSPECT}
    extra = tuple(
        Finding(SCANNER, "scanner-missing", f"the {s} scanner did not run", Verdict.CANNOT_INSPECT)
        for s in missing
        if s not in explained
    )
    if not extra:
        return report
    return AuditReport(report.findings + extra, report.scanners, report.durations)


def _failed(rule: str, detail: str) -> AuditReport:
    return AuditReport(findings=(Finding(SCANNER, rule, detail, Verdict.CANNOT_INSPECT),))


def run_audit(file_fd: int, display_name: str, settings: AuditSettings) -> AuditReport:
    """Audit one open file in a sandboxed worker; never raises for anything the file does."""
    try:
        run = run_worker(file_fd, display_name, settings)
    except (OSError, ValueError) as exc:
        log.warning("cannot start the audit worker for %r: %s", display_name, exc)
        return _failed("worker-start", f"the audit worker could not start: {exc}")
    report = interpret(run, settings)
    log.info(
        "audit of %r: %s in %.2f s (%d findings)",
        display_name,
        report.verdict.value,
        run.elapsed,
        len(report.findings),
    )
    return report


def probe_sandbox(
    file_fd: int, settings: AuditSettings, paths: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Run the worker's self-inspection in exactly the sandbox an audit gets; for tests."""
    run = run_worker(file_fd, json.dumps(list(paths)), settings, probe=True)
    if run.returncode != 0 or run.timed_out:
        raise RuntimeError(f"probe failed: rc={run.returncode} {run.stderr[-400:]!r}")
    result: dict[str, Any] = json.loads(run.stdout)
    result["sandbox_pid"] = run.sandbox_pid
    return result


# --- the child side -------------------------------------------------------------------------


def audit_source(src: int | str | bytes, name: str, settings: AuditSettings) -> AuditReport:
    """Run every scanner on one subject in this process (the worker's body)."""
    return _run_scanners(lambda _scanner: src, name, settings)


# Scanners fed from the one in-memory read; the format parsers (office, pdf, archive) run
# only when the head says the format is theirs and read what they need through the fd.
BUFFER_SCANNERS = frozenset({"magic", "yara", "clamd"})


def audit_open_file(
    fd: int, name: str, settings: AuditSettings, buffer_max: int = 64 << 20
) -> AuditReport:
    """A zygote child's body: read the file once, and feed libmagic, YARA and clamd's
    INSTREAM from that one buffer (files above `buffer_max` are streamed from the fd)."""
    from zionwm.quarantine.audit.common import Loaded  # noqa: PLC0415

    st = os.fstat(fd)
    if st.st_size > buffer_max:
        return audit_source(fd, name, settings)
    data = os.pread(fd, st.st_size, 0)  # one read for a regular file
    while len(data) < st.st_size and (more := os.pread(fd, st.st_size - len(data), len(data))):
        data += more
    loaded = Loaded.of(data, st.st_mode)
    del data
    return _run_scanners(lambda s: loaded if s in BUFFER_SCANNERS else fd, name, settings)


def _run_scanners(source_for: Any, name: str, settings: AuditSettings) -> AuditReport:
    from zionwm.quarantine.audit import SCANNERS  # noqa: PLC0415 - heavy: only in the worker

    findings: list[Finding] = []
    ran: list[str] = []
    durations: dict[str, float] = {}
    expected = expected_scanners(settings)
    for scanner, scan in SCANNERS:
        if scanner not in expected:
            continue
        t0 = time.perf_counter()
        try:
            findings += scan(source_for(scanner), name, settings)
            ran.append(scanner)
        except Exception as exc:
            log.warning("scanner %s failed on %r", scanner, name, exc_info=True)
            findings.append(
                Finding(
                    scanner,
                    "scanner-failed",
                    f"the {scanner} scanner failed: {type(exc).__name__}: {exc}"[:500],
                    Verdict.CANNOT_INSPECT,
                )
            )
        durations[scanner] = time.perf_counter() - t0
    return AuditReport(tuple(findings), tuple(ran), durations)


def _probe(fd: int, paths: list[str]) -> dict[str, Any]:
    """What the sandboxed worker can see and do: evidence for tests that the sandbox holds."""
    try:
        os.write(fd, b"x")
        fd_writable = True
    except OSError:
        fd_writable = False
    try:
        with socket.create_connection(("192.0.2.1", 9), timeout=1):
            network = "connected"
    except OSError as exc:
        network = f"{type(exc).__name__}: {exc.strerror or exc}"
    import resource  # noqa: PLC0415

    status = dict(
        line.split(":\t", 1) for line in Path("/proc/self/status").read_text().splitlines()
    )
    return {
        "seccomp": int(status.get("Seccomp", "0").strip()),
        "cap_eff": status.get("CapEff", "").strip(),
        "uid": os.getuid(),
        "pid": os.getpid(),
        "net_ns": os.readlink("/proc/self/ns/net"),
        "pid_ns": os.readlink("/proc/self/ns/pid"),
        "user_ns": os.readlink("/proc/self/ns/user"),
        "interfaces": [n for _, n in socket.if_nameindex()],
        "network": network,
        "root": sorted(os.listdir("/")),
        "visible": {p: os.path.exists(p) for p in paths},
        "fd_readable": len(os.pread(fd, 16, 0)) >= 0,
        "fd_writable": fd_writable,
        "rlimit_as": resource.getrlimit(resource.RLIMIT_AS)[0],
        "hostname": socket.gethostname(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zionwm.quarantine.worker")
    parser.add_argument("--fd", type=int, required=True, help="inherited read-only fd of the file")
    parser.add_argument("--probe", action="store_true", help="report the sandbox, not the file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    request = json.loads(sys.stdin.read() or "{}")
    if args.probe:
        result = _probe(args.fd, json.loads(request.get("name", "[]")))
    else:
        # the scanners' libraries first: a worker that cannot even load them (its memory
        # limit, a broken install) fails as a whole, not as one scanner's finding
        import magic  # noqa: PLC0415, F401
        import yara  # noqa: PLC0415, F401

        settings = AuditSettings.from_json(request.get("settings", {}))
        result = audit_source(args.fd, str(request.get("name", "")), settings).to_json()
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
