"""A desktop's writable /usr: one keeper per desktop that holds the layer mounted, and that
every sandbox of the desktop enters.

The keeper is `zionwm-enter --keep-usr` (enter.c), started by the launcher when the desktop
starts (`Launcher.desktop_started`, for a persistent layer) or else at its first sandbox with
a writable /usr. It joins the desktop's cgroups, unshares a user namespace
(the user is uid 0 there) and a mount namespace whose mounts are all slaves of the host's,
mounts a tmpfs
for an ephemeral layer, and runs fuse-overlayfs (lower /usr, upper the desktop's layer,
every file reported as the user's) on the layer's `merged` dir, inside that namespace only:
nothing is mounted on the host. Once the mount is there it closes its ready pipe.

A sandbox's placement helper (the same `zionwm-enter`) waits for the end of that pipe and
enters the keeper's user and mount namespaces through the keeper's pidfd, after the
cgroups and the network namespace, and then execs bwrap, which binds `merged` as /usr: no
Python and no mount per sandbox, and one overlay daemon over an upper dir, so two terminals
of a desktop see each other's installs at once (two daemons over one upper dir, as each
sandbox used to have, is a set-up overlayfs leaves undefined).

Lifetime: a persistent layer's keeper lives until the desktop stops (a reload drops it) or
the launcher shuts down; an ephemeral layer's keeper until the last sandbox on it ends, and
its tmpfs with it. A keeper that died (the daemon crashed, or it was killed) is seen when it
dies: `Keepers.watch` hands each keeper's pidfd to the compositor's event loop, which calls
`Launcher.keeper_exited`; that logs it, tells the user and starts a new keeper for a
persistent layer at once, so the next launch does not wait for a mount (without a watch,
the next launch replaces it). The dead keeper's daemon got SIGTERM with its death and
unmounts; the new keeper starts its own only once that one has exited (bounded, then it
is killed): never two daemons over one upper dir. Its sandboxes see /usr fail ("Transport
endpoint is not connected"), and a sandbox that tried to enter it as it died fails to
start with a clear error. What was written to a persistent layer is in its upper dir on
disk, and the next keeper serves it again. An ephemeral layer died with its keeper: the next
sandbox on one starts a new keeper with a new, empty layer, as it would anyway.

Why fuse-overlayfs and not the kernel's overlayfs: see `overlay.py`.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zionwm.isolation import storage
from zionwm.isolation.storage import LayerDirs

log = logging.getLogger(__name__)

LOWER = "/usr"
STOP_TIMEOUT = 5.0


class KeeperError(RuntimeError):
    """The keeper could not be started or is not usable."""


# fuse-overlayfs 1.10 to 1.14 (Debian 12 has 1.10) print "unknown argument ignored:
# lazytime" at each start, to the compositor's log: a daemon whose effective uid is 0 puts
# its own defaults first ("default_permissions,allow_other,suid,noatime,lazytime") and its
# own option parser does not know `lazytime` (a mount flag, not a FUSE option; 1.15 dropped
# it from those defaults). zionwm passes no such option: the daemon is uid 0 of the
# keeper's user namespace, where the sandboxes enter as that uid. It is harmless: nothing
# is ignored that zionwm asked for.
def fuse_overlayfs() -> str:
    return shutil.which("fuse-overlayfs") or "/usr/bin/fuse-overlayfs"


def _ns_id(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    st = os.stat(path)
    return st.st_dev, st.st_ino


def describe_failure(report: bytes, returncode: int | None) -> str:
    """The keeper's "<step> <code>" (see enter.c) and exit code in words."""
    step, _, num = report.decode(errors="replace").strip().partition(" ")
    if step == "mount":
        return "fuse-overlayfs did not mount the layer in time"
    if step == "daemon":
        status = int(num) if num.lstrip("-").isdigit() else 0
        if os.WIFSIGNALED(status):
            return f"fuse-overlayfs was killed by signal {os.WTERMSIG(status)} before mounting"
        return f"fuse-overlayfs exited with {os.WEXITSTATUS(status)} before mounting"
    if step:
        try:
            return f"{step}: {os.strerror(int(num))}"
        except ValueError:
            return report.decode(errors="replace")
    if returncode is None:
        return "still running"
    if returncode < 0:
        return f"killed by signal {-returncode}"
    if returncode > 128:
        return f"its overlay daemon was killed by signal {returncode - 128}"
    return f"exited with {returncode}"


@dataclass(eq=False)
class UsrKeeper:
    """One running keeper: its process (pidfd) and the read end of its ready pipe."""

    desktop: str
    ephemeral: bool
    layer: LayerDirs
    proc: subprocess.Popen[bytes]
    pidfd: int
    ready_fd: int
    parent_userns: tuple[int, int] | None
    users: set[int] = field(default_factory=set)  # pids of sandboxes started on it
    # ends the watch on `pidfd` (see Keepers.watch); called before the pidfd is closed
    unwatch: Callable[[], None] | None = None
    # its overlay daemon (see `find_daemon`): a keeper that dies leaves it to exit on its
    # own, and a new keeper of the layer waits for that
    daemon_pidfd: int = -1

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        if self.pidfd < 0:
            return False
        readable, _, _ = select.select([self.pidfd], [], [], 0)
        return not readable

    def ready(self) -> bool:
        """Mounted and serving (a non-blocking look)."""
        return self._ended(0) and self.running()

    def _ended(self, timeout_ms: int) -> bool:
        # Only the pipe's end is looked for, never read: a failure report stays for failure().
        if self.ready_fd < 0:
            return False
        p = select.poll()
        p.register(self.ready_fd, 0)
        return bool(p.poll(timeout_ms))

    def wait_ready(self, timeout: float) -> None:
        """Block until mounted (tests, the benchmark); raises KeeperError when it failed."""
        self._ended(int(timeout * 1000))
        if not self.ready():
            raise KeeperError(f"desktop {self.desktop}: /usr keeper: {self.failure()}")

    def failure(self) -> str:
        """Why the keeper is not serving (reads its report once it has exited)."""
        rc = self.proc.poll()
        report = b""
        if rc is not None and self.ready_fd >= 0:
            os.set_blocking(self.ready_fd, False)
            try:
                report = os.read(self.ready_fd, 256)
            except OSError:
                report = b""
        return describe_failure(report, rc)

    def find_daemon(self) -> None:
        """Take hold of the overlay daemon (the keeper's one child) once it is mounted."""
        if self.daemon_pidfd >= 0 or not self.running():
            return
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                children = f.read().split()
            if children:
                self.daemon_pidfd = os.pidfd_open(int(children[0]))
        except (OSError, ValueError):
            pass  # gone meanwhile: nothing to wait for later

    def stop(self) -> None:
        """Ask the keeper to stop: its daemon unmounts, and both exit."""
        if self.pidfd >= 0 and self.proc.returncode is None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def reap(self, timeout: float = 0.0) -> int | None:
        """Its exit code once it has exited (waiting up to `timeout`), or None."""
        if self.pidfd >= 0 and timeout > 0:
            select.select([self.pidfd], [], [], timeout)
        rc = self.proc.poll()
        if rc is not None:
            self.close()
        return rc

    def close(self) -> None:
        if self.unwatch is not None:
            unwatch, self.unwatch = self.unwatch, None
            unwatch()
        for attr in ("pidfd", "ready_fd", "daemon_pidfd"):
            fd = getattr(self, attr)
            if fd >= 0:
                os.close(fd)
                setattr(self, attr, -1)


class Keepers:
    """The launcher's keepers, one per (desktop, ephemeral) layer."""

    def __init__(self) -> None:
        self._live: dict[tuple[str, bool], UsrKeeper] = {}
        self._stopping: list[UsrKeeper] = []
        # overlay daemons of keepers that died, by layer, until they have exited
        self._orphans: dict[tuple[str, bool], list[int]] = {}
        # Called with each keeper started: watches its pidfd (readable once it has exited)
        # and returns what ends the watch. The compositor's event loop then calls
        # `Launcher.keeper_exited` when a keeper ends.
        self.watch: Callable[[UsrKeeper], Callable[[], None]] | None = None

    def get(self, desktop: str, ephemeral: bool) -> UsrKeeper | None:
        return self._live.get((desktop, ephemeral))

    def all(self) -> list[UsrKeeper]:
        return list(self._live.values())

    def pids(self, desktop: str) -> set[int]:
        """The keepers' processes of `desktop` (keeper and daemon; also those stopping):
        they run in its cgroups but are not its programs."""
        out: set[int] = set()
        for keeper in [*self._live.values(), *self._stopping]:
            if keeper.desktop == desktop:
                out.add(keeper.pid)
                try:
                    with open(f"/proc/{keeper.pid}/task/{keeper.pid}/children") as f:
                        out.update(int(p) for p in f.read().split())
                except OSError:
                    pass
        return out

    def for_launch(
        self,
        desktop: str,
        ephemeral: bool,
        *,
        helper: str | None,
        cgroup_files: Sequence[Path],
        userns: Path | None,
    ) -> UsrKeeper:
        """The running keeper of this layer, started (or replaced) when needed. `helper` is
        zionwm-enter's path (None: not built)."""
        if helper is None:
            raise KeeperError("a writable /usr needs zionwm-enter (make setup builds it)")
        self._reap_stopped()
        key = (desktop, ephemeral)
        keeper = self._live.get(key)
        if keeper is not None and not keeper.running():
            log.error(
                "desktop %s: the /usr keeper (pid %d) is gone (%s); programs still running "
                "on it have lost /usr; starting a new one",
                desktop,
                keeper.pid,
                keeper.failure(),
            )
            self._orphan_daemon(keeper)
            keeper.reap()
            keeper.close()
            del self._live[key]
            keeper = None
        if keeper is not None and keeper.parent_userns != _ns_id(userns):
            # The desktop's network moved to another user namespace (its pasta restarted):
            # a keeper there is needed for sandboxes to enter both.
            log.warning(
                "desktop %s: the network's user namespace changed: new /usr keeper "
                "(%d program(s) on the old one lose /usr)",
                desktop,
                len(keeper.users),
            )
            self._retire(key)
            keeper = None
        if keeper is None:
            if not ephemeral:
                # Never two daemons over one upper dir: one on its way out is waited for.
                self._wait_stopping(desktop, ephemeral)
                self._wait_orphans(key)
            layer = storage.prepare_layer(desktop, ephemeral=ephemeral)
            keeper = self._start(desktop, ephemeral, layer, helper, cgroup_files, userns)
            self._live[key] = keeper
            if self.watch is not None:
                keeper.unwatch = self.watch(keeper)
        return keeper

    def exited(self, keeper: UsrKeeper) -> str | None:
        """`keeper`'s process has ended (its pidfd is readable). Returns why when it was
        serving its layer (it died: the caller tells the user), None when it had been asked
        to stop. Either way it is reaped and its fds closed."""
        key = (keeper.desktop, keeper.ephemeral)
        if self._live.get(key) is not keeper:
            keeper.reap()
            keeper.close()
            self._reap_stopped()
            return None
        why = keeper.failure()
        del self._live[key]
        self._orphan_daemon(keeper)
        log.error(
            "desktop %s: the /usr keeper (pid %d) died (%s); %d program(s) running on it "
            "have lost /usr",
            keeper.desktop,
            keeper.pid,
            why,
            len(keeper.users),
        )
        keeper.reap()
        keeper.close()
        return why

    def _start(
        self,
        desktop: str,
        ephemeral: bool,
        layer: LayerDirs,
        helper: str,
        cgroup_files: Sequence[Path],
        userns: Path | None,
    ) -> UsrKeeper:
        opened: list[int] = []
        ready_r = -1
        try:
            argv = [helper]
            for path in cgroup_files:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                opened.append(fd)
                argv += ["--cgroup-fd", str(fd)]
            parent = _ns_id(userns)
            if userns is not None:
                fd = os.open(userns, os.O_RDONLY | os.O_CLOEXEC)
                opened.append(fd)
                argv += ["--userns-fd", str(fd)]
            ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
            opened.append(ready_w)
            argv += ["--keep-usr", "--lower", LOWER]
            argv += ["--upper", str(layer.upper), "--work", str(layer.work)]
            argv += ["--merged", str(layer.merged)]
            if ephemeral:
                argv += ["--scratch", str(layer.upper.parent)]
            argv += ["--report-fd", str(ready_w), "--", fuse_overlayfs()]
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    pass_fds=opened,
                    close_fds=True,
                    cwd="/",
                )
            except OSError as exc:
                raise KeeperError(f"cannot start the /usr keeper: {exc}") from exc
        except BaseException:
            if ready_r >= 0:
                os.close(ready_r)
            raise
        finally:
            for fd in opened:
                os.close(fd)
        pidfd = os.pidfd_open(proc.pid)
        keeper = UsrKeeper(desktop, ephemeral, layer, proc, pidfd, ready_r, parent)
        log.info(
            "desktop %s: /usr keeper started (pid %d%s)",
            desktop,
            proc.pid,
            ", ephemeral layer" if ephemeral else "",
        )
        return keeper

    def sandbox_started(self, keeper: UsrKeeper, pid: int) -> None:
        keeper.users.add(pid)

    def sandbox_ended(self, keeper: UsrKeeper, pid: int) -> None:
        """A sandbox on `keeper` exited: an ephemeral layer's keeper with no sandbox left is
        stopped, and its layer is gone."""
        keeper.users.discard(pid)
        if keeper.ephemeral and not keeper.users:
            key = (keeper.desktop, keeper.ephemeral)
            if self._live.get(key) is keeper:
                self._retire(key)
        self._reap_stopped()

    def launch_failed(self, keeper: UsrKeeper) -> None:
        """A launch on `keeper` failed before its sandbox ran: an ephemeral layer's keeper
        that nobody uses is not kept for later."""
        if keeper.ephemeral and not keeper.users:
            key = (keeper.desktop, keeper.ephemeral)
            if self._live.get(key) is keeper:
                self._retire(key)

    def stop_desktop(self, desktop: str) -> None:
        """The desktop stopped: stop its keepers (their sandboxes lose /usr)."""
        for key in [k for k in self._live if k[0] == desktop]:
            self._retire(key)

    def stop_all(self, timeout: float = STOP_TIMEOUT) -> None:
        for key in list(self._live):
            self._retire(key)
        for fds in self._orphans.values():
            for pidfd in fds:
                os.close(pidfd)  # each was told to stop when its keeper died
        self._orphans.clear()
        deadline = time.monotonic() + timeout
        for keeper in list(self._stopping):
            if keeper.reap(max(0.0, deadline - time.monotonic())) is None:
                log.warning("/usr keeper pid %d did not stop: killed", keeper.pid)
                if keeper.pidfd >= 0:
                    try:
                        signal.pidfd_send_signal(keeper.pidfd, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                keeper.proc.wait()
                keeper.close()
        self._stopping.clear()

    def _retire(self, key: tuple[str, bool]) -> None:
        keeper = self._live.pop(key)
        keeper.stop()
        self._stopping.append(keeper)
        log.info("desktop %s: /usr keeper (pid %d) stopping", keeper.desktop, keeper.pid)

    def _wait_stopping(self, desktop: str, ephemeral: bool) -> None:
        for keeper in list(self._stopping):
            same = (keeper.desktop, keeper.ephemeral) == (desktop, ephemeral)
            if same and keeper.reap(STOP_TIMEOUT) is None:
                raise KeeperError(
                    f"desktop {desktop}: the previous /usr keeper (pid {keeper.pid}) "
                    "has not stopped yet"
                )
        self._reap_stopped()

    def _orphan_daemon(self, keeper: UsrKeeper) -> None:
        # The daemon of a keeper that died got SIGTERM with it (enter.c), and unmounts
        if keeper.daemon_pidfd >= 0:
            self._orphans.setdefault((keeper.desktop, keeper.ephemeral), []).append(
                keeper.daemon_pidfd
            )
            keeper.daemon_pidfd = -1

    def _wait_orphans(self, key: tuple[str, bool]) -> None:
        """Wait (bounded) for the daemons a dead keeper of this layer left; killed after."""
        for pidfd in self._orphans.pop(key, []):
            try:
                readable, _, _ = select.select([pidfd], [], [], STOP_TIMEOUT)
                if not readable:
                    log.warning("desktop %s: the old overlay daemon did not stop: killed", key[0])
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    select.select([pidfd], [], [], STOP_TIMEOUT)
            except ProcessLookupError:
                pass
            finally:
                os.close(pidfd)
            log.debug("desktop %s: the overlay daemon of the keeper that died has exited", key[0])

    def _reap_stopped(self) -> None:
        self._stopping = [k for k in self._stopping if k.reap() is None]
