"""Long-lived audit sandboxes ("zygotes") that fork one fresh child per file.

Starting a sandbox and an interpreter and loading libmagic, YARA and oletools costs far more
than scanning a file, so the quarantine keeps a few sandboxes warm and forks from them:

- a zygote is `python -m zionwm.quarantine.zygote_inside` in exactly the sandbox the one-shot
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

import contextlib
import json
import logging
import os
import queue
import selectors
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from zionwm.quarantine.report import AuditReport, Finding, Verdict
from zionwm.quarantine.zygote_inside import FULL, LIGHT, MSG_MAX

# A third kind: the native zygote (native/audit_zygote.c) serves what would go to LIGHT when
# it is built and no user YARA rules are configured (it loads only the bundled ones).
NATIVE = "native"

log = logging.getLogger(__name__)

ZYGOTE_MODULE = "zionwm.quarantine.zygote_inside"
SCANNER = "worker"
# Files one zygote forks for before it is replaced. The zygote never reads a file, so the
# quota is hygiene, not isolation; each replacement costs a start (about 0.4 s of CPU), so a
# quota of 500 added about 1 ms of CPU to every file of a flood.
MAX_FILES = 2000
SPARE_AT = 100  # files before that, its successor is started beside it
IDLE_SECONDS = 120.0  # an unused zygote is stopped after this long
MAX_ZYGOTES = 4  # idle zygotes beyond this are stopped first (busy ones are never cut)
START_DEADLINE = 60.0  # to load every scanner, under load
STOP_WAIT = 10.0  # for a retired zygote to exit by itself before it is killed
GRACE = 10.0  # beyond the audit timeout, before the parent gives up on the zygote itself
RESULT_MAX = 8 << 20
BUFFER_MAX = 64 << 20  # files up to this are read once into memory, larger ones streamed


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
    key: Hashable
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
    python: bool = False  # a native child found the file needs the Python scanners


class ZygotePool:
    """Warm audit sandboxes, one per source, shared by the service's audit threads."""

    def __init__(
        self,
        max_files: int = MAX_FILES,
        max_zygotes: int = MAX_ZYGOTES,
        idle_seconds: float = IDLE_SECONDS,
        cgroups: Callable[[str], Sequence[str]] | None = None,
        spare_at: int = SPARE_AT,
        native: bool = True,
    ) -> None:
        self.native = native  # use the native zygote where it is built and fits
        self.max_files = max_files
        self.max_zygotes = max_zygotes
        self.idle_seconds = idle_seconds
        self.cgroups = cgroups  # source desktop -> cgroup.procs files its audits go to
        self._lock = threading.Lock()
        self._zygotes: dict[tuple[str, str], _Zygote] = {}
        self._retiring: list[_Zygote] = []
        # (source, flavor) -> (key, the zygote being started for it): a first one, or the
        # successor of one that is near its `max_files`
        self._starting: dict[tuple[str, str], tuple[Hashable, Future[_Zygote]]] = {}
        self.spare_at = spare_at
        self._spares: queue.SimpleQueue[Any] | None = None  # the successors' starter's jobs
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
        if flavor == LIGHT and self._native_fits(settings):
            flavor = NATIVE
        try:
            attempt = 0
            while attempt < 2:
                try:
                    z = self._zygote_for(source, settings, extra, flavor)
                except (OSError, RuntimeError, ValueError) as exc:
                    log.warning("cannot start an audit sandbox for %s: %s", source or "-", exc)
                    return _failed("worker-start", f"the audit sandbox could not start: {exc}")
                outcome = self._run(z, ro, name, settings)
                self._done_with(z, crashed=outcome.crashed)
                if outcome.python and flavor == NATIVE:
                    # the native child saw a document or an archive: the Python scanners'
                    flavor = FULL
                    continue
                if outcome.report is not None:
                    # a failure of the sandbox stands alone; a report is checked for
                    # every scanner it should have
                    failed = any(f.scanner == SCANNER for f in outcome.report.findings)
                    report = outcome.report if failed else complete(outcome.report, settings)
                    # which libraries judged this file (the native zygote's are the
                    # system's, the Python one's yara-python brings its own libyara)
                    return AuditReport(
                        report.findings,
                        report.scanners,
                        report.durations,
                        {"versions": dict(z.versions)},
                        report.rescan,
                    )
                attempt += 1
                log.warning("audit sandbox of %s went away (attempt %d)", source or "-", attempt)
            return _failed(
                "worker-crashed", "the audit sandbox died twice while this file was in it"
            )
        finally:
            os.close(ro)

    def _native_fits(self, settings: Any) -> bool:
        from zionwm.quarantine import native  # noqa: PLC0415

        return self.native and not settings.yara_rule_dirs and native.program() is not None

    def probe(
        self, file_fd: int, settings: Any, paths: Sequence[str] = (), flavor: str = LIGHT
    ) -> dict[str, Any]:
        """What a child that audits a file can see and do, from inside; for tests."""
        from zionwm.quarantine.worker import _reopen_read_only  # noqa: PLC0415

        z = self._zygote_for("", settings, "probe", flavor)
        ro = _reopen_read_only(file_fd)
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                with z.lock:
                    if flavor == NATIVE:
                        msg = b"\1probe\0" + b"\0".join(os.fsencode(p) for p in paths)
                    else:
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
            self._stop_soon(z)

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
            zs = sorted(self._zygotes.values(), key=lambda z: z.flavor == NATIVE)
        for z in zs:
            return dict(z.versions)
        return {}

    def close(self) -> None:
        with self._lock:
            self.closed = True
            zs = list(self._zygotes.values()) + self._retiring
            starting = [f for _k, f in self._starting.values()]
            self._zygotes.clear()
            self._retiring = []
            self._starting.clear()
        for z in zs:
            self._stop(z, wait=2.0)
        for f in starting:
            # a start in flight sees `closed` when it ends and stops what it started
            if f.done() and f.exception() is None:
                self._stop(f.result(), wait=2.0)
        if self._spares is not None:
            self._spares.put(None)

    # -- zygotes --

    def _zygote_for(self, source: str, settings: Any, extra: str, flavor: str) -> _Zygote:
        # the settings are a frozen dataclass: the tuple itself is the key, no encoding
        key: Hashable = (source, settings, extra, flavor)
        slot = (source, flavor)
        while True:
            to_stop: list[_Zygote] = []
            unused: list[Future[_Zygote]] = []
            mine: Future[_Zygote] | None = None
            with self._lock:
                if self.closed:
                    raise RuntimeError("the audit pool is closed")
                now = time.monotonic()
                z = self._zygotes.get(slot)
                if z is not None and (z.key != key or not z.alive() or z.served >= self.max_files):
                    self._retire_locked(z, to_stop)
                    z = None
                # idle ones: over their idle time, or beyond the count when a new one is needed
                idle = sorted(
                    (y for y in self._zygotes.values() if y.inflight == 0),
                    key=lambda y: y.last_used,
                )
                for y in idle:
                    too_many = z is None and len(self._zygotes) >= self.max_zygotes
                    if now - y.last_used > self.idle_seconds or too_many:
                        self._retire_locked(y, to_stop)
                pending = self._starting.get(slot)
                if z is None and pending is not None and pending[0] != key:
                    # a successor started for settings that are no longer asked for
                    del self._starting[slot]
                    unused.append(pending[1])
                    pending = None
                if z is None and pending is not None and pending[1].done():
                    del self._starting[slot]
                    if pending[1].exception() is None:
                        z = self._zygotes[slot] = pending[1].result()
                        z.last_used = now
                    else:
                        pending = None  # its start failed: this caller tries once more
                if z is not None:
                    z.served += 1
                    z.inflight += 1
                    z.last_used = now
                    due = self.max_files - self.spare_at
                    if (
                        0 < self.spare_at < self.max_files
                        and z.served == due
                        and (slot not in self._starting)
                    ):
                        # start its successor now, so that recycling it costs no wait
                        spare: Future[_Zygote] = Future()
                        self._starting[slot] = (key, spare)
                        self._start_spare((spare, source, settings, key, flavor))
                elif pending is None:
                    mine = Future()
                    self._starting[slot] = (key, mine)
                    pending = (key, mine)
            for y in to_stop:
                self._stop_soon(y)
            for f in unused:  # outside the lock: a done one stops at once
                f.add_done_callback(self._stop_unused)
            if z is not None:
                return z
            assert pending is not None
            if mine is not None:
                # started here, outside the lock: audits of other sources go on meanwhile
                self._start_into(mine, source, settings, key, flavor)
            try:
                pending[1].result()
            except (OSError, RuntimeError, ValueError):
                with self._lock:
                    if self._starting.get(slot) == pending:
                        del self._starting[slot]
                raise
            # loop: take it from the slot like any caller (counted, checked, kept)

    def _start_spare(self, job: tuple[Future[_Zygote], str, Any, Hashable, str]) -> None:
        # from one thread that lives as long as the pool: a sandbox dies with the thread
        # that started it (bwrap's --die-with-parent is the parent thread's death signal)
        if self._spares is None:
            self._spares = queue.SimpleQueue()
            threading.Thread(
                target=self._spare_starter, args=(self._spares,), name="audit-spares", daemon=True
            ).start()
        self._spares.put(job)

    def _spare_starter(self, jobs: queue.SimpleQueue[Any]) -> None:
        while (job := jobs.get()) is not None:
            self._start_into(*job)

    def _start_into(
        self, fut: Future[_Zygote], source: str, settings: Any, key: Hashable, flavor: str
    ) -> None:
        try:
            z = self._start(source, settings, key, flavor)
        except BaseException as exc:  # handed to whoever waits for it
            fut.set_exception(exc)
            return
        with self._lock:
            closed = self.closed
        if closed:
            self._stop(z, wait=0.5)
            fut.set_exception(RuntimeError("the audit pool is closed"))
            return
        fut.set_result(z)

    def _stop_unused(self, fut: Future[_Zygote]) -> None:
        if fut.exception() is None:
            self._stop_soon(fut.result())

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
            self._stop_soon(z)

    def _start(self, source: str, settings: Any, key: Hashable, flavor: str) -> _Zygote:
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
                    command=_native_command(settings) if flavor == NATIVE else (),
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

    def _stop_soon(self, z: _Zygote) -> None:
        """Stop a retired zygote without making the caller (an audit, the service's loop)
        wait for it: it is told to finish at once and waited for in a thread of its own,
        and stays in `stats()` until it is gone. A generous wait lets it exit by itself
        (and be reaped, its CPU accounted) rather than be killed."""
        with self._lock:
            if z not in self._retiring:
                self._retiring.append(z)
        z.dead = True
        with contextlib.suppress(OSError):
            z.ctrl.close()

        def stop() -> None:
            self._stop(z, wait=STOP_WAIT)
            with self._lock, contextlib.suppress(ValueError):
                self._retiring.remove(z)

        threading.Thread(target=stop, name="audit-stop", daemon=True).start()

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
        if z.flavor == NATIVE:
            return interpret_native(body, trailer, settings, name, _mode(ro))
        return interpret_child(body, trailer, settings.timeout)


def interpret_native(
    body: bytes, trailer: bytes, settings: Any, name: str, mode: int | None
) -> _Outcome:
    """`interpret_child` for a native child, whose output is facts, not a report (pure)."""
    from zionwm.quarantine import native_report  # noqa: PLC0415

    status = interpret_child(b"{}", trailer, settings.timeout)
    if status.crashed:
        return status  # a crash, a kill or a timeout: cannot-inspect, whatever it wrote
    try:
        facts = json.loads(body)
        if native_report.needs_python(facts):
            return _Outcome(None, python=True)
        return _Outcome(native_report.report_from_facts(facts, name, mode, settings))
    except (ValueError, TypeError, AttributeError) as exc:
        return _Outcome(_failed("worker-garbage", f"the scanner output is not a report: {exc}"))


def _mode(fd: int) -> int | None:
    try:
        return os.fstat(fd).st_mode
    except OSError:
        return None


def _native_command(settings: Any) -> tuple[str, ...]:
    from zionwm.quarantine import native, worker  # noqa: PLC0415
    from zionwm.quarantine.audit.yara_scan import BUNDLED_RULES_DIR  # noqa: PLC0415

    program = native.program()
    if program is None:
        raise RuntimeError("the native audit zygote is not built")
    cmd = [
        program,
        "--rules",
        str(BUNDLED_RULES_DIR),
        "--timeout",
        repr(float(settings.timeout)),
    ]
    if settings.clamd_socket is not None:
        cmd += ["--clamd", worker.SANDBOX_CLAMD]
    return tuple(cmd)


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
