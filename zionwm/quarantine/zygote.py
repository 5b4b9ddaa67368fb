"""Long-lived audit sandboxes ("zygotes") that fork one fresh child per file.

Starting a sandbox and an interpreter and loading libmagic, YARA and oletools costs far more
than scanning a file, so the quarantine keeps a few sandboxes warm and forks from them:

- a zygote is `python -m zionwm.quarantine.zygote` in exactly the sandbox the one-shot
  worker gets (`worker.sandbox_argv`: every namespace unshared, so no network; uid 65534,
  no capabilities, the seccomp filter, rlimits, a read-only root), plus a read-only /tmp.
  It loads every scanner once (the magic database, the compiled YARA rules, the clamd
  socket path), says which versions it loaded, then only ever receives requests: a JSON
  header with two fds, the file (read-only) and the write end of that file's result pipe;
- for each request it forks a child that closes every other descriptor, sets its own CPU
  limit, reads the file once, runs every scanner over that buffer, writes its report into
  its pipe and exits. The zygote never reads file content; it reaps the child (killing it
  at the timeout) and appends the child's exit status to the same pipe. A child has only
  its own pipe: it can neither see nor write another file's verdict, and what it leaves
  in memory dies with it. Zygote and children are not dumpable and ptrace is filtered, so
  a compromised child cannot reach into the zygote or a sibling;
- the parent side, `ZygotePool.audit()`, is thread-safe and blocking, like
  `worker.run_audit`: one zygote per source desktop (so its cgroup can be that desktop's
  audit cgroup), recycled after `max_files` files, after any child crash, when its settings
  or rules change, or when idle. A zygote that dies takes its in-flight files with it: each
  is retried once on a fresh zygote, then it is cannot-inspect.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import logging
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zionwm.quarantine.report import AuditReport, Finding, Verdict

log = logging.getLogger(__name__)

ZYGOTE_MODULE = "zionwm.quarantine.zygote"
SCANNER = "worker"
MAX_FILES = 500  # files one zygote forks for before it is replaced
IDLE_SECONDS = 120.0  # an unused zygote is stopped after this long
MAX_ZYGOTES = 4  # idle zygotes beyond this are stopped first (busy ones are never cut)
START_DEADLINE = 60.0  # to load every scanner, under load
GRACE = 10.0  # beyond the audit timeout, before the parent gives up on the zygote itself
MSG_MAX = 1 << 16
RESULT_MAX = 8 << 20
BUFFER_MAX = 64 << 20  # files up to this are read once into memory, larger ones streamed
_PR_SET_DUMPABLE = 4
# Two kinds of warm sandbox. A child's cost is mostly the memory it shares with its zygote
# (page tables copied at fork, pages copied on write, all of it torn down at exit), so plain
# files are forked from a zygote that loaded only libmagic, YARA and the clamd client (about
# half the memory), and documents and archives from one that also loaded oletools and pypdf.
LIGHT = "light"
FULL = "full"


def flavor_for(head: bytes) -> str:
    """Which zygote should fork the child for a file starting with `head` (pure). Only a
    matter of speed: a light child still audits a document completely, importing the
    parsers it lacks."""
    if (
        head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00"))
        or head.startswith((b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"\xd0\xcf\x11\xe0", b"{\\rt"))
        or head.startswith(b"ID;P")
        or head[257:262] == b"ustar"
        or b"%PDF-" in head[:1024]
        or head[:4096].lower().lstrip().startswith(b"<?xml")
    ):
        return FULL
    return LIGHT


# --- the parent side --------------------------------------------------------------------------


@dataclass
class _Zygote:
    key: str
    source: str
    flavor: str
    proc: subprocess.Popen[bytes]
    ctrl: socket.socket
    versions: dict[str, Any]
    cgroup: str | None  # where it was accounted, or why not
    started: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    served: int = 0
    inflight: int = 0
    retired: bool = False
    dead: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alive(self) -> bool:
        return not self.dead and self.proc.poll() is None


@dataclass(frozen=True)
class _Outcome:
    report: AuditReport | None  # None: the zygote went away, retry elsewhere
    crashed: bool = False  # the child did not end normally: recycle its zygote


class ZygotePool:
    """Warm audit sandboxes, one per source, shared by the service's audit threads."""

    def __init__(
        self,
        max_files: int = MAX_FILES,
        max_zygotes: int = MAX_ZYGOTES,
        idle_seconds: float = IDLE_SECONDS,
        cgroups: Callable[[str], Sequence[str]] | None = None,
    ) -> None:
        self.max_files = max_files
        self.max_zygotes = max_zygotes
        self.idle_seconds = idle_seconds
        self.cgroups = cgroups  # source desktop -> cgroup.procs files its audits go to
        self._lock = threading.Lock()
        self._zygotes: dict[tuple[str, str], _Zygote] = {}
        self._retiring: list[_Zygote] = []
        self.started = 0
        self.closed = False

    # -- public --

    def audit(
        self,
        file_fd: int,
        name: str,
        settings: Any,
        source: str = "",
        extra: str = "",
        flavor: str = FULL,
    ) -> AuditReport:
        """Audit one open file in a fresh child of a warm sandbox; never raises for anything
        the file does. `extra` joins the zygote's key (for example a rules fingerprint): a
        change starts fresh zygotes. `flavor` (see `flavor_for`) only picks which sandbox
        forks the child; any of them audits any file completely."""
        from zionwm.quarantine.worker import _reopen_read_only, complete  # noqa: PLC0415

        try:
            ro = _reopen_read_only(file_fd)
        except (OSError, ValueError) as exc:
            return _failed("worker-start", f"the audit could not start: {exc}")
        try:
            for attempt in (1, 2):
                try:
                    z = self._zygote_for(source, settings, extra, flavor)
                except (OSError, RuntimeError, ValueError) as exc:
                    log.warning("cannot start an audit sandbox for %s: %s", source or "-", exc)
                    return _failed("worker-start", f"the audit sandbox could not start: {exc}")
                outcome = self._run(z, ro, name, settings)
                self._done_with(z, crashed=outcome.crashed)
                if outcome.report is not None:
                    # a failure of the sandbox stands alone; a report is checked for
                    # every scanner it should have
                    failed = any(f.scanner == SCANNER for f in outcome.report.findings)
                    return outcome.report if failed else complete(outcome.report, settings)
                log.warning("audit sandbox of %s went away (attempt %d)", source or "-", attempt)
            return _failed(
                "worker-crashed", "the audit sandbox died twice while this file was in it"
            )
        finally:
            os.close(ro)

    def probe(self, file_fd: int, settings: Any, paths: Sequence[str] = ()) -> dict[str, Any]:
        """What a child that audits a file can see and do, from inside; for tests."""
        from zionwm.quarantine.worker import _reopen_read_only  # noqa: PLC0415

        z = self._zygote_for("", settings, "probe", LIGHT)
        ro = _reopen_read_only(file_fd)
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                with z.lock:
                    msg = json.dumps({"name": "probe", "probe": list(paths)}).encode()
                    socket.send_fds(z.ctrl, [msg], [ro, w])
            finally:
                os.close(w)
                os.close(ro)
            data, complete = _read_until_eof(r, time.monotonic() + settings.timeout + GRACE)
        finally:
            os.close(r)
            self._done_with(z, crashed=False)
        body, _, trailer = data.partition(b"\0")
        if not complete or json.loads(trailer or b"{}").get("rc") != 0:
            raise RuntimeError(f"probe failed: {trailer!r}")
        result: dict[str, Any] = json.loads(body)
        return result

    def sweep(self) -> None:
        """Stop zygotes idle for longer than `idle_seconds` (called on a timer: without it an
        idle zygote would be noticed only at the next audit)."""
        now = time.monotonic()
        to_stop: list[_Zygote] = []
        with self._lock:
            for z in list(self._zygotes.values()):
                if z.inflight == 0 and now - z.last_used > self.idle_seconds:
                    self._retire_locked(z, to_stop)
        for z in to_stop:
            self._stop(z, wait=0.5)

    def stats(self) -> dict[str, Any]:
        """What the audit side holds now: zygotes, files in flight, resident memory."""
        with self._lock:
            zs = list(self._zygotes.values()) + list(self._retiring)
        out = []
        total = 0
        for z in zs:
            rss = _tree_rss_kib(z.proc.pid)
            total += rss
            out.append(
                {
                    "source": z.source,
                    "flavor": z.flavor,
                    "pid": z.proc.pid,
                    "served": z.served,
                    "inflight": z.inflight,
                    "rss_kib": rss,
                    "cgroup": z.cgroup,
                    "age_s": round(time.monotonic() - z.started, 1),
                }
            )
        return {"zygotes": out, "rss_kib": total, "started": self.started}

    def versions(self) -> dict[str, Any]:
        with self._lock:
            for z in self._zygotes.values():
                return dict(z.versions)
        return {}

    def close(self) -> None:
        with self._lock:
            self.closed = True
            zs = list(self._zygotes.values()) + self._retiring
            self._zygotes.clear()
            self._retiring = []
        for z in zs:
            self._stop(z, wait=2.0)

    # -- zygotes --

    def _zygote_for(self, source: str, settings: Any, extra: str, flavor: str) -> _Zygote:
        key = json.dumps([source, settings.to_json(), extra, flavor], sort_keys=True)
        slot = (source, flavor)
        now = time.monotonic()
        to_stop: list[_Zygote] = []
        with self._lock:
            if self.closed:
                raise RuntimeError("the audit pool is closed")
            z = self._zygotes.get(slot)
            if z is not None and (z.key != key or not z.alive() or z.served >= self.max_files):
                self._retire_locked(z, to_stop)
                z = None
            # idle ones: over their idle time, or beyond the count when a new one is needed
            idle = sorted(
                (y for y in self._zygotes.values() if y.inflight == 0), key=lambda y: y.last_used
            )
            for y in idle:
                too_many = z is None and len(self._zygotes) >= self.max_zygotes
                if now - y.last_used > self.idle_seconds or too_many:
                    self._retire_locked(y, to_stop)
            if z is None:
                z = self._start(source, settings, key, flavor)
                self._zygotes[slot] = z
            z.served += 1
            z.inflight += 1
            z.last_used = now
        for y in to_stop:
            self._stop(y, wait=0.5)
        return z

    def _retire_locked(self, z: _Zygote, to_stop: list[_Zygote]) -> None:
        if self._zygotes.get((z.source, z.flavor)) is z:
            del self._zygotes[(z.source, z.flavor)]
        z.retired = True
        if z.inflight == 0:
            to_stop.append(z)
        else:
            self._retiring.append(z)

    def _done_with(self, z: _Zygote, crashed: bool) -> None:
        stop = False
        with self._lock:
            z.inflight -= 1
            if (crashed or not z.alive()) and not z.retired:
                self._retire_locked(z, [])
            if z.retired and z.inflight == 0:
                with contextlib.suppress(ValueError):
                    self._retiring.remove(z)
                stop = True
        if stop:
            self._stop(z, wait=2.0)

    def _start(self, source: str, settings: Any, key: str, flavor: str) -> _Zygote:
        from zionwm.quarantine import worker  # noqa: PLC0415

        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        procs = list(self.cgroups(source)) if self.cgroups is not None and source else []
        try:
            with contextlib.ExitStack() as fds:
                fds.callback(child.close)
                seccomp_fd = worker._seccomp_fd()
                if seccomp_fd is not None:
                    fds.callback(os.close, seccomp_fd)
                plan = worker._host_plan(child.fileno(), settings, None, False, seccomp_fd)
                plan = worker.dataclasses.replace(
                    plan,
                    module=ZYGOTE_MODULE,
                    fd_flag="--ctrl-fd",
                    readonly_tmp=True,
                    # the zygote's own CPU over its whole life; each child sets its own
                    cpu_seconds=3600,
                )
                argv = worker.sandbox_argv(plan)
                pass_fds = [child.fileno()] + ([seccomp_fd] if seccomp_fd is not None else [])
                stdin: int = subprocess.DEVNULL
                gate_w = -1
                if procs:
                    # held at a shell's `read` (on its stdin) until it is in the audit
                    # cgroup, so bwrap and everything it forks are accounted there from
                    # their first instruction
                    stdin, gate_w = os.pipe2(os.O_CLOEXEC)
                    fds.callback(os.close, stdin)
                    argv = ["sh", "-c", 'read -r _; exec "$@" </dev/null', "zionwm-audit", *argv]
                proc = subprocess.Popen(
                    argv,
                    stdin=stdin,
                    stdout=subprocess.DEVNULL,
                    pass_fds=tuple(pass_fds),
                    start_new_session=True,
                    env=worker.sandbox_env(plan),
                )
                cgroup: str | None = None
                if procs:
                    cgroup = _join_cgroup(proc.pid, procs)
                    os.write(gate_w, b"go\n")
                    os.close(gate_w)
        except BaseException:
            parent.close()
            raise
        self.started += 1
        try:
            parent.settimeout(START_DEADLINE)
            hello = {"settings": worker.sandbox_settings(settings).to_json(), "flavor": flavor}
            parent.send(json.dumps(hello).encode())
            msg = parent.recv(MSG_MAX)
            ready = json.loads(msg or b"{}")
            if not ready.get("ready"):
                why = ready.get("error", "no answer")
                raise RuntimeError(f"the audit sandbox did not start: {why}")
            parent.settimeout(None)
        except (OSError, ValueError, RuntimeError) as exc:
            parent.close()
            _kill_group(proc)
            raise RuntimeError(f"audit sandbox start failed: {exc}") from exc
        where = cgroup or "no cgroup"
        log.info("audit sandbox %d for %s ready (%s)", proc.pid, source or "-", where)
        versions = dict(ready.get("versions", {}))
        return _Zygote(key, source, flavor, proc, parent, versions, cgroup)

    def _stop(self, z: _Zygote, wait: float) -> None:
        # closing the control socket is the zygote's signal to finish and exit
        z.dead = True
        with contextlib.suppress(OSError):
            z.ctrl.close()
        try:
            z.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            _kill_group(z.proc)

    def _run(self, z: _Zygote, ro: int, name: str, settings: Any) -> _Outcome:
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                with z.lock:
                    socket.send_fds(z.ctrl, [json.dumps({"name": name}).encode()], [ro, w])
            except OSError as exc:
                log.warning("audit sandbox %d refused a file: %s", z.proc.pid, exc)
                z.dead = True
                return _Outcome(None)
            finally:
                os.close(w)
            data, complete = _read_until_eof(r, time.monotonic() + settings.timeout + GRACE)
        finally:
            os.close(r)
        if not complete:
            # the zygote did not kill its child in time: it is wedged; so is this file
            log.warning("audit sandbox %d stopped answering: killed", z.proc.pid)
            z.dead = True
            _kill_group(z.proc)
            return _Outcome(
                _failed(
                    "worker-timeout",
                    f"the audit did not finish within {settings.timeout:g} s and was killed",
                ),
                crashed=True,
            )
        body, sep, trailer = data.partition(b"\0")
        if not sep:
            return _Outcome(None)  # no status from the zygote: it died with the child
        return interpret_child(body, trailer, settings.timeout)


def interpret_child(body: bytes, trailer: bytes, timeout: float) -> _Outcome:
    """The report one child's output and exit status stand for (pure): anything short of a
    full report from a child that exited normally is not clean."""
    try:
        status = json.loads(trailer)
        rc = int(status["rc"])
        timed_out = bool(status.get("timed_out"))
    except (ValueError, KeyError, TypeError):
        return _Outcome(_failed("worker-garbage", "the audit sandbox's status is unreadable"), True)
    if timed_out:
        return _Outcome(
            _failed(
                "worker-timeout", f"the audit did not finish within {timeout:g} s and was killed"
            ),
            True,
        )
    if rc != 0:
        how = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exited with status {rc}"
        if rc in (-signal.SIGKILL, -signal.SIGSEGV):
            how += " (out of memory or crashed on this file)"
        return _Outcome(_failed("worker-crashed", f"the scanning process {how}"), True)
    try:
        d = json.loads(body)
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        report = AuditReport.from_json(d)
        if not all(isinstance(s, str) for s in report.scanners):
            raise ValueError("bad scanner list")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return _Outcome(_failed("worker-garbage", f"the scanner output is not a report: {exc}"))
    return _Outcome(report)


def _read_until_eof(fd: int, deadline: float) -> tuple[bytes, bool]:
    buf = bytearray()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return bytes(buf), False
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return bytes(buf), True
            if len(buf) < RESULT_MAX:
                buf += chunk


def _join_cgroup(pid: int, procs: Sequence[str]) -> str:
    done = []
    for f in procs:
        try:
            with open(f, "w") as fh:
                fh.write(str(pid))
            done.append(os.path.dirname(f))
        except OSError as exc:
            log.warning("audit sandbox %d: cannot join %s: %s", pid, f, exc)
    return ", ".join(done) if done else "not accounted: cgroup not writable"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants (through /proc children lists)."""
    total = 0
    todo = [pid]
    seen: set[int] = set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return total


def _failed(rule: str, detail: str) -> AuditReport:
    return AuditReport(findings=(Finding(SCANNER, rule, detail, Verdict.CANNOT_INSPECT),))


# --- the zygote side (inside the sandbox) ------------------------------------------------------


def _prctl_get_dumpable() -> int:
    return int(ctypes.CDLL(None, use_errno=True).prctl(3, 0, 0, 0, 0))  # PR_GET_DUMPABLE


def _not_dumpable() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _preload(settings: Any, flavor: str) -> dict[str, Any]:
    """Load every scanner once (what each child would otherwise load again) and say which
    versions are in force."""
    from zionwm.quarantine.audit import magic_type, yara_scan  # noqa: PLC0415

    if flavor == FULL:
        # the parsers' libraries, which the office, pdf and archive scanners import lazily
        import oletools.olevba  # noqa: PLC0415, F401
        import pypdf  # noqa: PLC0415
        import pypdf.generic  # noqa: PLC0415, F401

    in_memory = magic_type.preload()
    magic_type.identify(b"%PDF-1.4\n")
    magic_type.identify(b"plain text\n")
    yara_scan.preload(settings.yara_rule_dirs)
    versions = scanner_versions()
    versions["magic_database"] = "in memory" if in_memory else "mapped"
    # what is loaded now stays untouched by the collector: a child's collection would
    # otherwise write to (and so copy) every page of the zygote's objects
    gc.collect()
    gc.freeze()
    return versions


def scanner_versions() -> dict[str, Any]:
    """Versions of the in-process scanners' libraries (the clamd side is asked separately);
    the Python packages' from their metadata, without importing them."""
    from importlib import metadata  # noqa: PLC0415

    import magic  # noqa: PLC0415
    import yara  # noqa: PLC0415

    def dist(name: str) -> str:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            return f"{name} (version unknown)"

    lib = magic.version() if hasattr(magic, "version") else None
    return {
        "magic": f"libmagic {lib // 100}.{lib % 100}" if isinstance(lib, int) else "libmagic",
        "yara": f"YARA {yara.__version__}",
        "office": dist("oletools"),
        "pdf": dist("pypdf"),
    }


def _child(
    file_fd: int, result_fd: int, name: str, settings: Any, probe: list[str] | None = None
) -> int:
    from zionwm.quarantine.worker import _probe, audit_open_file  # noqa: PLC0415

    gc.disable()  # short-lived: the whole heap goes at exit
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    devnull = os.open("/dev/null", os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(devnull, target)
    # only its own file and its own result channel: nothing of the zygote or of a sibling
    keep = sorted({0, 1, 2, file_fd, result_fd})
    top = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    for lo, hi in zip(keep, [*keep[1:], top], strict=True):
        if hi > lo + 1:
            os.closerange(lo + 1, hi)
    cpu = int(settings.timeout) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    if probe is not None:
        # evidence for tests, from exactly where a file's audit runs: what it can see and do
        seen = _probe(file_fd, probe)
        seen["fds"] = sorted(int(f) for f in os.listdir("/proc/self/fd"))
        seen["file_fd"], seen["result_fd"] = file_fd, result_fd
        try:
            with open("/tmp/zionwm-probe", "w"):
                seen["tmp_writable"] = True
        except OSError:
            seen["tmp_writable"] = False
        seen["dumpable"] = int(_prctl_get_dumpable())
        out = seen
    else:
        out = audit_open_file(file_fd, name, settings).to_json()
    data = memoryview(json.dumps(out).encode())
    while data:
        data = data[os.write(result_fd, data) :]
    return 0


def serve(ctrl: socket.socket) -> int:
    from zionwm.quarantine.worker import AuditSettings  # noqa: PLC0415

    _not_dumpable()
    try:
        hello = json.loads(ctrl.recv(MSG_MAX) or b"{}")
        settings = AuditSettings.from_json(hello.get("settings", {}))
        versions = _preload(settings, str(hello.get("flavor", FULL)))
    except Exception as exc:
        with contextlib.suppress(OSError):
            error = f"{type(exc).__name__}: {exc}"
            ctrl.send(json.dumps({"ready": False, "error": error}).encode())
        return 1
    ctrl.send(json.dumps({"ready": True, "versions": versions}).encode())

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda _s, _f: None)
    children: dict[int, list[Any]] = {}  # pid -> [result_fd, deadline, timed_out]
    sel = selectors.DefaultSelector()
    sel.register(ctrl, selectors.EVENT_READ, "ctrl")
    sel.register(wake_r, selectors.EVENT_READ, "wake")
    accepting = True
    while accepting or children:
        now = time.monotonic()
        for pid, entry in children.items():
            if not entry[2] and entry[1] <= now:
                entry[2] = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        deadlines = [e[1] for e in children.values() if not e[2]]
        timeout = max(0.0, min(deadlines) - now) if deadlines else None
        for key, _ in sel.select(timeout):
            if key.data == "wake":
                with contextlib.suppress(BlockingIOError):
                    while os.read(wake_r, 512):
                        pass
                continue
            try:
                msg, fds, _flags, _addr = socket.recv_fds(ctrl, MSG_MAX, 2)
            except OSError:
                msg, fds = b"", []
            if not msg:
                for fd in fds:
                    os.close(fd)
                accepting = False
                sel.unregister(ctrl)
                continue
            if len(fds) != 2:
                for fd in fds:
                    os.close(fd)
                continue
            file_fd, result_fd = fds
            request = json.loads(msg)
            name = str(request.get("name", ""))
            probe = request.get("probe")
            pid = os.fork()
            if pid == 0:
                rc = 1
                try:
                    rc = _child(file_fd, result_fd, name, settings, probe)
                finally:
                    os._exit(rc)
            os.close(file_fd)
            children[pid] = [result_fd, time.monotonic() + settings.timeout, False]
        _reap(children)
    return 0


def _reap(children: dict[int, list[Any]]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        entry = children.pop(pid, None)
        if entry is None:
            continue
        result_fd, _deadline, timed_out = entry
        trailer = json.dumps({"rc": os.waitstatus_to_exitcode(status), "timed_out": timed_out})
        with contextlib.suppress(OSError):
            os.write(result_fd, b"\0" + trailer.encode())
        os.close(result_fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zionwm.quarantine.zygote")
    parser.add_argument("--ctrl-fd", type=int, required=True, help="inherited control socket")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    ctrl = socket.socket(fileno=args.ctrl_fd)
    return serve(ctrl)


if __name__ == "__main__":
    sys.exit(main())
