"""Start and stop one desktop's bus: a `dbus-daemon --session` of its own and the filtering
`xdg-dbus-proxy` in front of it, both placed in the desktop's cgroup(s) before they exec
(so they are counted, limited and frozen with the desktop).

Layout, in the desktop's host-only runtime directory (never bound into a sandbox):

    <runtime>/zionwm/<desktop>/dbus/daemon.conf   the daemon's configuration
    <runtime>/zionwm/<desktop>/dbus/bus           the daemon's socket: zionwm's side only
    <runtime>/zionwm/<desktop>/dbus/proxy         the proxy's socket: bound into sandboxes

Starting waits (bounded) until both processes say they are ready, so the first program of a
desktop never finds a bus that is not there yet.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import pwd
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zionwm import paths

from . import policy

log = logging.getLogger(__name__)

START_TIMEOUT = 5.0
PR_SET_PDEATHSIG = 1


@functools.cache
def _libc() -> ctypes.CDLL:
    # ctypes.util (with tempfile and random) here, not at the top: the compositor imports
    # this module at start, and needs the C library only when a bus starts
    import ctypes.util  # noqa: PLC0415

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class BusStartError(RuntimeError):
    """The desktop's bus could not be started; nothing of it is left running."""


def bus_dir(desktop: str) -> Path:
    return paths.desktop_socket_dir(desktop) / "dbus"


@dataclass
class DesktopBus:
    desktop: str
    daemon: subprocess.Popen[bytes]
    proxy: subprocess.Popen[bytes]
    daemon_socket: Path
    proxy_socket: Path
    proxy_ready_fd: int  # the proxy stops when this closes
    started_ms: float

    def alive(self) -> bool:
        return self.daemon.poll() is None and self.proxy.poll() is None

    def pids(self) -> list[int]:
        """The daemon's and the proxy's whole process trees (each runs under its bwrap)."""
        out: list[int] = []
        todo = [self.daemon.pid, self.proxy.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except (OSError, ValueError):
                pass
        return out

    def memory_kib(self, field: str = "Rss") -> int:
        """Memory of the bus's processes together, from smaps_rollup (Rss or Pss)."""
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith(field + ":"):
                            total += int(line.split()[1])
            except (OSError, ValueError):
                pass
        return total

    def stop(self) -> None:
        if self.proxy_ready_fd >= 0:
            os.close(self.proxy_ready_fd)
            self.proxy_ready_fd = -1
        # Nothing to save in either (the bus is stateless), and a frozen desktop's daemon
        # could not act on a gentler signal.
        for proc in (self.proxy, self.daemon):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for p in (self.daemon_socket, self.proxy_socket):
            try:
                p.unlink()
            except OSError:
                pass


def tools() -> tuple[str, str, str] | str:
    """(dbus-daemon, xdg-dbus-proxy, bwrap), or what is missing, said for the user."""
    found = {n: shutil.which(n) for n in ("dbus-daemon", "xdg-dbus-proxy", "bwrap")}
    missing = [n for n, p in found.items() if p is None]
    daemon, proxy, bwrap = found.values()
    if missing or daemon is None or proxy is None or bwrap is None:
        return " and ".join(missing) + " not installed (Debian: dbus-daemon, xdg-dbus-proxy)"
    return daemon, proxy, bwrap


def _identity_files(d: Path) -> list[tuple[str, str]]:
    """passwd and group with only this user: the daemon looks its own uid up, and nothing
    else of the host's user database needs to be in its sandbox."""
    uid, gid = os.getuid(), os.getgid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = f"user{uid}"
    (d / "passwd").write_text(f"{name}:x:{uid}:{gid}::/nonexistent:/usr/sbin/nologin\n")
    (d / "group").write_text(f"{name}:x:{gid}:\n")
    return [(str(d / "passwd"), "/etc/passwd"), (str(d / "group"), "/etc/group")]


@functools.cache
def _root_links() -> tuple[tuple[str, str | None], ...]:
    """/bin, /lib, ... as symlinks into /usr (merged /usr) or directories: fixed while the
    system runs, so looked at once."""
    out: list[tuple[str, str | None]] = []
    for p in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(p):
            out.append((p, os.readlink(p)))
        elif os.path.isdir(p):
            out.append((p, None))
    return tuple(out)


def start(
    desktop: str,
    cgroup_procs: Sequence[Path] = (),
    *,
    confine: bool = True,
    log_fd: int | None = None,
) -> DesktopBus:
    """Start the desktop's daemon and proxy; return once both accept connections.
    `confine=False` runs them without their bwrap (benchmarks compare the two). `log_fd`:
    the proxy logs each message there, one write a line (refusals are read from it)."""
    found = tools()
    if isinstance(found, str):
        raise BusStartError(found)
    daemon_bin, proxy_bin, bwrap_bin = found
    t0 = time.monotonic()
    d = bus_dir(desktop)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    daemon_sock, proxy_sock = d / "bus", d / "proxy"
    for stale in (daemon_sock, proxy_sock):
        try:
            stale.unlink()
        except FileNotFoundError:
            pass
    conf = d / "daemon.conf"
    conf.write_text(policy.daemon_config(str(daemon_sock)))
    etc = _identity_files(d)

    def confined(argv: list[str]) -> list[str]:
        if not confine:
            return argv
        return policy.confine_argv(bwrap_bin, str(d), _root_links(), argv, etc)

    cg_fds = [os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in cgroup_procs]

    def placement() -> None:
        # in the child, before exec: into the desktop's cgroups, and gone with zionwm
        for fd in cg_fds:
            os.write(fd, b"0")
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    started: list[subprocess.Popen[bytes]] = []
    pipes: list[int] = []
    try:
        addr_r, addr_w = os.pipe2(os.O_CLOEXEC)
        pipes += [addr_r, addr_w]
        started.append(
            subprocess.Popen(
                confined(
                    [
                        daemon_bin,
                        f"--config-file={conf}",
                        "--nofork",
                        "--nopidfile",
                        "--nosyslog",
                        f"--print-address={addr_w}",
                    ]
                ),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(addr_w,),
                close_fds=True,
                # preexec_fn is safe here: it takes no lock a compositor worker could hold
                preexec_fn=placement,  # noqa: PLW1509
                cwd="/",
            )
        )
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        pipes += [ready_r, ready_w]
        # The proxy stops when the read end of its --fd pipe closes: zionwm keeps ready_r.
        started.append(
            subprocess.Popen(
                confined(
                    policy.proxy_argv(
                        proxy_bin,
                        f"unix:path={daemon_sock}",
                        str(proxy_sock),
                        ready_w,
                        log=log_fd is not None,
                    )
                ),
                stdin=subprocess.DEVNULL,
                stdout=log_fd if log_fd is not None else subprocess.DEVNULL,
                pass_fds=(ready_w,),
                close_fds=True,
                preexec_fn=placement,  # noqa: PLW1509
                cwd="/",
            )
        )
        for fd in (addr_w, ready_w):
            os.close(fd)
            pipes.remove(fd)
        _wait_ready(desktop, addr_r, ready_r, started)
    except BaseException as exc:
        for proc in started:
            proc.kill()
            proc.wait()
        for fd in pipes:
            os.close(fd)
        if isinstance(exc, (OSError, subprocess.SubprocessError)):
            raise BusStartError(f"desktop {desktop}: cannot start its bus: {exc}") from exc
        raise
    finally:
        for fd in cg_fds:
            os.close(fd)
    os.close(addr_r)
    bus = DesktopBus(
        desktop,
        started[0],
        started[1],
        daemon_sock,
        proxy_sock,
        ready_r,
        (time.monotonic() - t0) * 1000,
    )
    log.info(
        "desktop %s: session bus ready in %.1f ms (daemon %d, proxy %d)",
        desktop,
        bus.started_ms,
        bus.daemon.pid,
        bus.proxy.pid,
    )
    return bus


def _wait_ready(
    desktop: str, addr_r: int, ready_r: int, procs: list[subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    waiting = {addr_r: "dbus-daemon", ready_r: "xdg-dbus-proxy"}
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BusStartError(
                f"desktop {desktop}: {' and '.join(waiting.values())} not ready in "
                f"{START_TIMEOUT:.0f} s"
            )
        readable, _, _ = select.select(list(waiting), [], [], left)
        for fd in readable:
            if not os.read(fd, 4096):
                codes = [p.poll() for p in procs]
                raise BusStartError(
                    f"desktop {desktop}: {waiting[fd]} exited before it was ready "
                    f"(exit codes {codes})"
                )
            del waiting[fd]
