"""The one launcher: start a program of a desktop in its sandbox, and track it until it exits.

Owns spawning and supervising sandboxes. Key bindings, `zionctl launch` and autostart all come
here. A launch:

1. probes the host once (`probe_host`) and resolves the policy (`bwrap.plan_sandbox`, pure);
2. opens what the plan's fd slots name: storage dirs walked without following symlinks
   (`storage`), memfds for synthesized /etc files, the seccomp program (`seccomp`);
3. starts the placement helper (`zionwm-enter`, enter.c) with vfork+exec: it joins the
   desktop's cgroup(s) (so nothing the program does can escape them, not even bwrap itself)
   and, when the desktop has a prepared network namespace, enters it with setns(2); without
   one bwrap unshares the network (loopback only). Where the helper was not built, the same
   steps run in Python between fork and exec;
   for a desktop with a writable /usr it also enters the namespaces of the desktop's /usr
   keeper (`usr_keeper`, started with the desktop or at its first such sandbox), where the
   layer is mounted;
4. execs bwrap (through the template's overlay helper for a desktop on a template); where the
   helper is built, bwrap runs it first inside the sandbox (`zionwm-enter --mask-proc`): it
   makes the /proc masks and ends the set-up as bwrap would (`procmask.masks_inside`);
5. returns a `Sandbox`, tracked by pidfd. The compositor adds `sandbox.pidfd` to its event
   loop and calls `sandbox.poll()` when it becomes readable; the child is reaped by its pid
   only (never waitpid(-1), which would steal other subsystems' children), and exits are
   reported to `on_exit(sandbox, returncode)`.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from zionwm import paths
from zionwm.isolation import bwrap, etc_tree, procmask, seccomp, sound, storage, usr_keeper
from zionwm.isolation.bwrap import HostFacts, SandboxPlan, SlotKind
from zionwm.isolation.host_probe import probe_host, refresh_devices
from zionwm.isolation.spec import DesktopSpec
from zionwm.isolation.templates import launch as templates

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000

CgroupProcs = Callable[[str], list[Path]]
NetnsPath = Callable[[str], "Path | None"]
UsernsPath = Callable[[str], "Path | None"]
OnExit = Callable[["Sandbox", int], None]
# The desktop's session bus for a program about to start (started on first use), or None.
SessionBusFor = Callable[[DesktopSpec], "bwrap.SessionBus | None"]
Background = Callable[[str, str, Callable[[], object]], object]


class LaunchError(RuntimeError):
    """The sandbox could not be started; nothing of it is running."""


_libc: ctypes.CDLL | None = None


def _setns(fd: int, nstype: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


# Built by `make setup` beside this module (enter.c).
ENTER_HELPER = Path(__file__).with_name("zionwm-enter")


@functools.cache
def enter_helper() -> str | None:
    """The placement helper's path, or None when it was not built: then the launcher places
    the child from Python between fork and exec, correct but several milliseconds slower."""
    if os.access(ENTER_HELPER, os.X_OK):
        return str(ENTER_HELPER)
    log.warning("%s is missing (make setup builds it): sandboxes start slower", ENTER_HELPER)
    return None


def _read_to_end(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 256):
        data += chunk
    return data


def _placement_error(report: bytes) -> str:
    """The helper's "<step> <errno>" as words."""
    step, _, num = report.decode(errors="replace").partition(" ")
    try:
        return f"{step}: {os.strerror(int(num))}"
    except ValueError:
        return report.decode(errors="replace")


def _no_tty(chosen: int | None, inherited: int) -> int | None:
    if chosen is not None:
        return chosen
    try:
        return subprocess.DEVNULL if os.isatty(inherited) else None
    except OSError:
        return subprocess.DEVNULL


class Sandbox:
    """One running sandboxed program (the bwrap process and everything inside it)."""

    def __init__(
        self,
        launcher: Launcher,
        proc: subprocess.Popen[bytes],
        plan: SandboxPlan,
        status_fd: int,
    ) -> None:
        self._launcher = launcher
        self._proc = proc
        self._status_fd = status_fd
        self._status = b""
        self.plan = plan
        self.desktop = plan.desktop
        self.argv = plan.argv
        self.ephemeral = plan.ephemeral
        self.pid = proc.pid
        self.pidfd = os.pidfd_open(proc.pid)
        self.started_at = time.monotonic()
        self.returncode: int | None = None
        self.usr_keeper: usr_keeper.UsrKeeper | None = None
        self._init_pid: int | None = None
        self._init_pidfd = -1

    def __repr__(self) -> str:
        return f"<Sandbox {self.desktop} pid={self.pid} argv={list(self.argv)!r}>"

    def poll(self) -> int | None:
        """Reap the sandbox if it exited (non-blocking); report the exit once."""
        if self.returncode is not None:
            return self.returncode
        rc = self._proc.poll()
        if rc is None:
            return None
        self.returncode = rc
        self._close_fds()
        self._launcher._sandbox_exited(self, rc)
        return rc

    def wait(self, timeout: float | None = None) -> int:
        """Block until exit (for the CLI and tests; the compositor uses pidfd + poll)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            rc = self.poll()
            if rc is not None:
                return rc
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if left == 0.0:
                raise TimeoutError(f"{self!r} still running after {timeout} s")
            select.select([self.pidfd], [], [], left)

    def inner_init_pid(self) -> int | None:
        """Host pid of the sandbox's pid-namespace init (bwrap's reaper), once reported."""
        if self._init_pid is not None:
            return self._init_pid
        self._read_status()
        for raw in self._status.decode(errors="replace").splitlines():
            line = raw.strip()
            if not line:
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if "child-pid" in doc:
                self._init_pid = int(doc["child-pid"])
                try:
                    # Held so a later signal cannot hit a recycled pid.
                    self._init_pidfd = os.pidfd_open(self._init_pid)
                except ProcessLookupError:
                    self._init_pidfd = -1
                return self._init_pid
        return None

    def _read_status(self) -> None:
        if self._status_fd < 0:
            return
        while True:
            try:
                chunk = os.read(self._status_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                return
            if not chunk:
                return
            self._status += chunk

    def terminate(self) -> None:
        """Ask the program to quit: SIGTERM to the processes under the sandbox's init.

        The init of a pid namespace ignores SIGTERM and bwrap does not forward it, so the
        signal goes to init's children; when the program exits, init exits and the kernel
        kills whatever is left in the namespace. Before the program has started there is
        nobody to ask, and the sandbox is killed instead.
        """
        if self.returncode is not None:
            return
        init = self.inner_init_pid()
        targets: list[int] = []
        if init is not None:
            try:
                with open(f"/proc/{init}/task/{init}/children") as f:
                    targets = [int(p) for p in f.read().split()]
            except OSError:
                targets = []
        if not targets:
            self.kill()
            return
        for pid in targets:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """Kill the whole sandbox: its namespace init (which takes every process in the
        namespace with it) and bwrap.

        bwrap 0.8 arms --die-with-parent in the namespace init only once setup is done, so
        killing bwrap alone during setup would leave the sandbox running, orphaned. bwrap is
        stopped first so it cannot clone while its children are collected and killed; its
        children cannot be reaped (hence their pids not reused) while it is stopped.
        """
        if self.returncode is not None:
            return
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGSTOP)
        except ProcessLookupError:
            return
        self.inner_init_pid()
        victims: list[int] = []
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                for pid in f.read().split():
                    try:
                        victims.append(os.pidfd_open(int(pid)))
                    except ProcessLookupError:
                        pass
        except OSError:
            pass
        try:
            for fd in (self._init_pidfd, *victims, self.pidfd):
                if fd >= 0:
                    try:
                        signal.pidfd_send_signal(fd, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        finally:
            for fd in victims:
                os.close(fd)

    def _close_fds(self) -> None:
        for attr in ("pidfd", "_status_fd", "_init_pidfd"):
            fd = getattr(self, attr)
            if fd >= 0:
                os.close(fd)
                setattr(self, attr, -1)


class Launcher:
    """Starts sandboxes. The cgroup and network managers plug in through two callables.

    `cgroup_procs(desktop)` returns the cgroup.procs files the child must join (one on a pure
    cgroup v2 system, several on a v1/hybrid one); `netns_path(desktop)` returns a network
    namespace to enter (e.g. /run/netns/zionwm-web) or None for a loopback-only sandbox;
    `userns_path(desktop)`, for an unprivileged launcher whose network namespace belongs to a
    user namespace of its own (pasta), returns that user namespace, entered just before it.
    """

    def __init__(
        self,
        *,
        cgroup_procs: CgroupProcs | None = None,
        netns_path: NetnsPath | None = None,
        userns_path: UsernsPath | None = None,
        on_exit: OnExit | None = None,
        host: HostFacts | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._cgroup_procs = cgroup_procs
        self._netns_path = netns_path
        self._userns_path = userns_path
        self._on_exit = on_exit
        self._environ = dict(os.environ if environ is None else environ)
        # The devices and sound sockets are probed again at each launch unless the facts are
        # given: a camera plugged in or a sound server started after the compositor should be
        # found. The rest (the /etc pieces, links, bwrap) is probed once: a few dozen stat
        # calls a launch does not need to repeat.
        self._fixed_host = host
        self.host = host or probe_host(self._environ)
        self.sound = sound.SoundRelays(self._environ)
        self.running: dict[int, Sandbox] = {}
        self.keepers = usr_keeper.Keepers()
        self.etc = etc_tree.EtcTrees()
        self.session_bus: SessionBusFor | None = None
        # Where slow clean-up runs (`background(lane, what, fn)`): the compositor passes its
        # worker lanes; without one it runs at once.
        self.background: Background | None = None

    def sandboxes(self, desktop: str | None = None) -> list[Sandbox]:
        return [s for s in self.running.values() if desktop is None or s.desktop == desktop]

    def plan(
        self,
        spec: DesktopSpec,
        argv: Sequence[str],
        *,
        ephemeral: bool | None = None,
        cwd: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        seed: storage.Seed | None = None,
        share_net: bool = False,
    ) -> SandboxPlan:
        if self._fixed_host is None:
            self.host = refresh_devices(self.host, self._environ)
        sock = paths.desktop_socket(spec.name)
        x11_dir = paths.desktop_x11_dir(spec.name)
        usr_source = None
        eph = spec.ephemeral if ephemeral is None else ephemeral
        template = None
        if spec.template:
            # The template's layer replaces the writable /usr layer: one overlay, not two.
            try:
                template = templates.template_facts(spec.name, spec.template, ephemeral=eph)
            except templates.TemplateError as exc:
                raise LaunchError(f"desktop {spec.name}: {exc}") from exc
        elif spec.writable_usr:
            usr_source = str(storage.prepare_layer(spec.name, ephemeral=eph).merged)
        return bwrap.plan_sandbox(
            spec,
            argv,
            self.host,
            host_env=self._environ,
            wayland_socket=str(sock) if sock.exists() else None,
            ephemeral=ephemeral,
            share_net=share_net,
            session_bus=self.session_bus(spec) if self.session_bus else None,
            writable_usr_source=usr_source,
            seed=seed.entries if seed else (),
            cwd=cwd,
            extra_env=extra_env,
            x11_socket_dir=str(x11_dir) if spec.x11 and x11_dir.is_dir() else None,
            template=template,
            sound_socket=self.sound.socket_for(spec),
            etc_tree=None if template is not None else self.etc.ensure(spec, self.host),
        )

    def launch(
        self,
        spec: DesktopSpec,
        argv: Sequence[str],
        *,
        ephemeral: bool | None = None,
        cwd: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | None = subprocess.DEVNULL,
        stderr: int | None = subprocess.DEVNULL,
        pass_fds: Sequence[int] = (),
    ) -> Sandbox:
        """Start `argv` in a sandbox of `spec`'s desktop. Raises LaunchError (or
        storage.UnsafePathError) with nothing started when any step fails.

        stdin, stdout and stderr default to /dev/null: the launcher's own fds (the
        compositor's log) are never handed over by accident, as a program could reopen them
        through /proc/self/fd to read, forge or truncate what they lead to. None inherits
        them, except that a terminal is never handed to a sandbox (it could read what is
        typed there, or write to it): /dev/null then. `pass_fds` are inherited by the
        program under the same numbers (bwrap passes on what it inherits), e.g. a listening
        socket the compositor made.
        """
        stdout = _no_tty(stdout, 1)
        stderr = _no_tty(stderr, 2)
        eph = spec.ephemeral if ephemeral is None else ephemeral
        cg_files, netns, userns = self._placement(spec.name)
        seed = storage.scan_seed(spec.name) if eph else None
        opened: list[int] = []
        status_r = -1
        keeper: usr_keeper.UsrKeeper | None = None
        try:
            plan = self.plan(
                spec,
                argv,
                ephemeral=eph,
                cwd=cwd,
                extra_env=extra_env,
                seed=seed,
                share_net=netns is not None,
            )
            for note in plan.notes:
                log.warning("desktop %s: %s", spec.name, note)
            if enter_helper() is not None:
                # the /proc masks made inside by the helper: bwrap would read the whole
                # mount table again for each of them (see procmask.masks_inside)
                plan = procmask.masks_inside(plan)
            status_r, status_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            opened.append(status_w)
            os.set_blocking(status_w, True)
            fds = self._open_slots(plan, seed, opened, status_w)
            plan = plan.with_fds(fds)
            full = bwrap.build_argv(plan)
            if plan.template is not None:
                full = templates.helper_argv(plan.template, python=sys.executable) + full
            if plan.writable_usr:
                keeper = self._keeper(spec, eph, cg_files, userns)
            cg_fds = [os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in cg_files]
            opened += cg_fds
            ns_fd = user_fd = -1
            if netns is not None:
                ns_fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
                opened.append(ns_fd)
            if userns is not None:
                user_fd = os.open(userns, os.O_RDONLY | os.O_CLOEXEC)
                opened.append(user_fd)

            def enter_placement() -> None:
                # Runs in the child between fork and exec: cgroup first (so even a failing
                # setns leaves nothing outside), then the network namespace (after its
                # owning user namespace, when that is not the launcher's own).
                for fd in cg_fds:
                    os.write(fd, b"0")
                if user_fd >= 0:
                    _setns(user_fd, CLONE_NEWUSER)
                if ns_fd >= 0:
                    _setns(ns_fd, CLONE_NEWNET)

            placed = bool(cg_fds) or ns_fd >= 0
            helper = enter_helper() if placed or keeper is not None else None
            report_r = -1
            if helper is not None:
                # The same steps in the same order, in a small native program exec'd first:
                # the child of a vfork then runs no Python (see enter.c).
                report_r, report_w = os.pipe2(os.O_CLOEXEC)
                opened += [report_r, report_w]
                prefix = [helper]
                for fd in cg_fds:
                    prefix += ["--cgroup-fd", str(fd)]
                if user_fd >= 0:
                    prefix += ["--userns-fd", str(user_fd)]
                if ns_fd >= 0:
                    prefix += ["--netns-fd", str(ns_fd)]
                if keeper is not None:
                    # the keeper's own fds, inherited by the helper only (close-on-exec here)
                    prefix += ["--usr-ready-fd", str(keeper.ready_fd)]
                    prefix += ["--usr-keeper-fd", str(keeper.pidfd)]
                full = [*prefix, "--report-fd", str(report_w), "--", *full]
                helper_fds = [*cg_fds, user_fd, ns_fd, report_w]
                if keeper is not None:
                    helper_fds += [keeper.ready_fd, keeper.pidfd]
            try:
                proc = subprocess.Popen(
                    full,
                    stdin=stdin,
                    stdout=stdout,
                    stderr=stderr,
                    env=dict(plan.env),
                    pass_fds=(
                        *fds.values(),
                        *pass_fds,
                        *(fd for fd in (helper_fds if helper else ()) if fd >= 0),
                    ),
                    close_fds=True,
                    # Placement must happen between fork and exec. preexec_fn is safe here
                    # although the compositor has worker threads (compositor/offload.py):
                    # it only writes to fds already open and calls setns, taking no lock.
                    preexec_fn=enter_placement if placed and helper is None else None,  # noqa: PLW1509
                    cwd="/",
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise LaunchError(
                    f"desktop {spec.name}: cannot start {list(argv)!r}: {exc}"
                ) from exc
            if helper is not None:
                os.close(report_w)
                opened.remove(report_w)
                failed = _read_to_end(report_r)
                if failed:
                    proc.wait()
                    why = _placement_error(failed)
                    if keeper is not None and failed.startswith(b"usr-"):
                        why = f"the desktop's /usr keeper is not running ({keeper.failure()})"
                    raise LaunchError(
                        f"desktop {spec.name}: cannot start {list(argv)!r}: placement failed: {why}"
                    )
        except BaseException:
            if status_r >= 0:
                os.close(status_r)
            if keeper is not None:
                self.keepers.launch_failed(keeper)
            raise
        finally:
            for fd in opened:
                os.close(fd)
            if seed is not None:
                seed.close()
        sandbox = Sandbox(self, proc, plan, status_r)
        self.running[sandbox.pid] = sandbox
        if keeper is not None:
            sandbox.usr_keeper = keeper
            self.keepers.sandbox_started(keeper, sandbox.pid)
        log.info(
            "desktop %s: started %r in sandbox pid %d%s%s",
            spec.name,
            list(argv),
            sandbox.pid,
            " (ephemeral)" if eph else "",
            f" netns {netns}" if netns else "",
        )
        return sandbox

    def _placement(self, desktop: str) -> tuple[list[Path], Path | None, Path | None]:
        """The cgroup.procs files, network namespace and its user namespace of `desktop`."""
        cg_files = list(self._cgroup_procs(desktop)) if self._cgroup_procs else []
        netns = self._netns_path(desktop) if self._netns_path else None
        userns = self._userns_path(desktop) if (self._userns_path and netns) else None
        return cg_files, netns, userns

    def _open_slots(
        self, plan: SandboxPlan, seed: storage.Seed | None, opened: list[int], status_w: int
    ) -> dict[str, int]:
        fds: dict[str, int] = {}
        for slot in plan.slots:
            if slot.kind is SlotKind.STORAGE:
                fd = storage.open_storage(slot.storage, plan.desktop)
                opened.append(fd)
            elif slot.kind is SlotKind.DATA:
                fd = os.memfd_create(f"zionwm-{slot.name}", os.MFD_CLOEXEC)
                opened.append(fd)
                os.write(fd, slot.data)
                os.lseek(fd, 0, os.SEEK_SET)
            elif slot.kind is SlotKind.SECCOMP:
                fd = seccomp.filter_fd(nested=plan.nested_sandbox)
                opened.append(fd)
            elif slot.kind is SlotKind.STATUS:
                fd = status_w
            elif slot.kind is SlotKind.MASKER:
                # exec'd by bwrap inside as /proc/self/fd/N (nothing mounts it in)
                fd = os.open(ENTER_HELPER, os.O_PATH | os.O_CLOEXEC)
                opened.append(fd)
            else:
                if seed is None or slot.name not in seed.fds:
                    raise LaunchError(f"seed slot {slot.name} has no open file")
                fd = seed.fds[slot.name]
            fds[slot.name] = fd
        return fds

    def _keeper(
        self, spec: DesktopSpec, eph: bool, cg_files: list[Path], userns: Path | None
    ) -> usr_keeper.UsrKeeper:
        """The desktop's /usr keeper, started when it has none (see usr_keeper)."""
        try:
            return self.keepers.for_launch(
                spec.name, eph, helper=enter_helper(), cgroup_files=cg_files, userns=userns
            )
        except (OSError, usr_keeper.KeeperError) as exc:
            raise LaunchError(f"desktop {spec.name}: /usr keeper: {exc}") from exc

    def desktop_started(self, spec: DesktopSpec) -> None:
        """Prepare the desktop's /etc (on a worker when `etc.background` is set), and start
        the /usr keeper of a desktop with a persistent writable /usr now: even its first
        program need not wait for the mount. A keeper that cannot start is logged; the first
        launch tries again, and fails clearly."""
        if not spec.template:
            self.etc.ensure(spec, self.host)
        if not spec.writable_usr or spec.template or spec.ephemeral:
            return
        cg_files, _, userns = self._placement(spec.name)
        try:
            self._keeper(spec, False, cg_files, userns)
        except (LaunchError, OSError) as exc:
            log.warning("desktop %s: %s", spec.name, exc)

    def keeper_exited(self, keeper: usr_keeper.UsrKeeper) -> str | None:
        """A /usr keeper's process ended (see usr_keeper). When it died while serving its
        layer: a persistent layer gets a new keeper now (the next launch need not wait for
        a mount), and the words to tell the user are returned; None when it was stopped."""
        why = self.keepers.exited(keeper)
        if why is None:
            return None
        lost = len(keeper.users)
        running = f"; {lost} program(s) started before have lost /usr" if lost else ""
        if keeper.ephemeral:
            return f"{keeper.desktop}: its /usr keeper died ({why}){running}"
        cg_files, _, userns = self._placement(keeper.desktop)
        try:
            new = self.keepers.for_launch(
                keeper.desktop, False, helper=enter_helper(), cgroup_files=cg_files, userns=userns
            )
        except (OSError, usr_keeper.KeeperError) as exc:
            log.error("desktop %s: cannot start a new /usr keeper: %s", keeper.desktop, exc)
            return (
                f"{keeper.desktop}: its /usr keeper died ({why}) and no new one started "
                f"({exc}){running}"
            )
        log.warning(
            "desktop %s: new /usr keeper (pid %d) on the same layer", keeper.desktop, new.pid
        )
        return (
            f"{keeper.desktop}: its /usr keeper died ({why}); a new one serves the same "
            f"/usr layer{running}"
        )

    def service_pids(self, desktop: str) -> set[int]:
        """Processes the launcher runs in the desktop's cgroups that are not its programs."""
        return self.keepers.pids(desktop)

    def desktop_stopped(self, desktop: str) -> None:
        """The desktop is gone: stop what the launcher keeps for it (its /usr keepers)."""
        self.keepers.stop_desktop(desktop)

    def _sandbox_exited(self, sandbox: Sandbox, returncode: int) -> None:
        self.running.pop(sandbox.pid, None)
        if sandbox.usr_keeper is not None:
            self.keepers.sandbox_ended(sandbox.usr_keeper, sandbox.pid)
        facts = sandbox.plan.template
        if facts is not None:
            # waits (bounded) for the sandbox's overlay daemon to end, then removes files
            ended = functools.partial(templates.sandbox_ended, facts, sandbox.pid)
            if self.background is not None:
                self.background(
                    f"template {facts.name}",
                    f"removing old generations of template {facts.name}",
                    ended,
                )
            else:
                try:
                    ended()
                except OSError:
                    log.exception("template %s: removing old generations failed", facts.name)
        runtime = time.monotonic() - sandbox.started_at
        log.info(
            "desktop %s: %r (pid %d) exited with %d after %.1f s",
            sandbox.desktop,
            list(sandbox.argv),
            sandbox.pid,
            returncode,
            runtime,
        )
        if self._on_exit is not None:
            try:
                self._on_exit(sandbox, returncode)
            except Exception:
                log.exception("on_exit callback failed for %r", sandbox)

    def poll_all(self) -> None:
        """Reap every exited sandbox (for callers without an event loop)."""
        for sandbox in list(self.running.values()):
            sandbox.poll()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Terminate every sandbox, then kill what is left after `timeout` seconds."""
        for sandbox in list(self.running.values()):
            sandbox.terminate()
        deadline = time.monotonic() + timeout
        for sandbox in list(self.running.values()):
            try:
                sandbox.wait(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                sandbox.kill()
                sandbox.wait()
        self.keepers.stop_all(timeout)
