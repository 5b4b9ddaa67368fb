"""The inside of a warm audit sandbox ("zygote"): load every scanner once, then fork one
child per file (the parent side, `zygote.ZygotePool`, starts it and talks to it).

Runs as `python -m zionwm.quarantine.zygote_inside --ctrl-fd N` in the audit sandbox (see
`zygote`'s docstring for the sandbox and the protocol). The zygote never reads a file's
content: for each request (a JSON header with two fds, the file read-only and the write end
of that file's result pipe) it forks a child that keeps only those two fds, sets its own CPU
limit, audits the file and writes its report; the zygote reaps it (killing it at the
timeout) and appends the child's exit status to the same pipe.
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
import sys
import time
from typing import Any

MSG_MAX = 1 << 16
_PR_SET_DUMPABLE = 4
# Two kinds of warm sandbox. A child's cost is mostly the memory it shares with its zygote
# (page tables copied at fork, pages copied on write, all of it torn down at exit), so plain
# files are forked from a zygote that loaded only libmagic, YARA and the clamd client (about
# half the memory), and documents and archives from one that also loaded oletools and pypdf.
LIGHT = "light"
FULL = "full"


def _prctl_get_dumpable() -> int:
    return int(ctypes.CDLL(None, use_errno=True).prctl(3, 0, 0, 0, 0))  # PR_GET_DUMPABLE


def _not_dumpable() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _preload(settings: Any, flavor: str) -> dict[str, Any]:
    """Load every scanner once (what each child would otherwise load again) and say which
    versions are in force."""
    # every scanner module (SCANNERS imports them) and the worker's audit body, so that no
    # child imports a module again
    from zionwm.quarantine import worker  # noqa: PLC0415, F401
    from zionwm.quarantine.audit import SCANNERS, magic_type, yara_scan  # noqa: PLC0415, F401

    if flavor == FULL:
        # the parsers' libraries, which the office, pdf and archive scanners import lazily
        import oletools.olevba  # noqa: PLC0415, F401
        import pypdf  # noqa: PLC0415
        import pypdf.filters  # noqa: PLC0415 - what a child reading a PDF imports
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
    from zionwm.quarantine.audit.common import AuditSettings  # noqa: PLC0415

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
    parser = argparse.ArgumentParser(prog="python -m zionwm.quarantine.zygote_inside")
    parser.add_argument("--ctrl-fd", type=int, required=True, help="inherited control socket")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    ctrl = socket.socket(fileno=args.ctrl_fd)
    return serve(ctrl)


if __name__ == "__main__":
    sys.exit(main())
