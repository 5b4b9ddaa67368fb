"""Attach the isolation layers to a running server: sandboxed launches, cgroup limits and
freezing, and per-desktop networks.

Each layer is optional at run time: a machine without delegated cgroups, or without root for
network namespaces, still runs zionwm, says exactly what it lacks (log, notification,
`zionctl status`), and disables that feature cleanly. Nothing here blocks the event loop:
the writes that cost the kernel time per task (freeze, thaw, memory reclaim) run in the
desktop's lane of `offload` (a freeze and a thaw never overtake each other), and a freeze
in progress is polled from a timer. So do the desktops' network changes (`netlanes`): a
launch into a desktop whose network is not ready yet waits for it in that lane.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zionwm.isolation import outputlog
from zionwm.isolation.cgroups.desktop import DesktopCgroup
from zionwm.isolation.cgroups.freezer import FreezeOp
from zionwm.isolation.cgroups.manager import CgroupManager
from zionwm.isolation.instance import cgroup_root_name, instance_id, network_prefix
from zionwm.isolation.launcher import Launcher, LaunchError, Sandbox
from zionwm.isolation.network.manager import NetworkManager
from zionwm.isolation.network.model import NetworkError
from zionwm.isolation.spec import DesktopSpec
from zionwm.isolation.storage import UnsafePathError
from zionwm.isolation.usr_keeper import UsrKeeper

from . import refusals
from .autostart import Autostarter
from .children import Child
from .desktopbus_link import DesktopBusLink
from .ipc import Deferred
from .loop import FdHandle, Timer
from .netlanes import NetworkLanes
from .offload import RECLAIM_LANE, Job, Offload, desktop_lane
from .quarantine_link import QuarantineLink
from .xwayland import XwaylandManager

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)


def instance_ident(server: Server) -> str:
    """This run's id in machine-wide names (cgroups, network objects): per user and per
    instance, so two compositors (two users, a nested one, parallel test runs) never touch
    each other's objects (see zionwm.isolation.instance)."""
    return instance_id(
        os.getuid(),
        os.environ.get("XDG_RUNTIME_DIR", ""),
        str(server.socket_name or ""),
        os.environ.get("ZIONWM_INSTANCE", ""),
    )


class Isolation:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.ident = instance_ident(server)
        self.cgroups = CgroupManager.probe(root_name=cgroup_root_name(self.ident))
        st = self.cgroups.status
        log.info("cgroups: %s", st.describe())
        # a missing memory.reclaim matters only to desktops that ask for it
        wants_reclaim = any(d.spec.reclaim_when_frozen for d in server.desktops.values())
        problems = [p for p in st.problems if wants_reclaim or "reclaim" not in p]
        if problems:
            server.notify(
                "Desktop limits/freezing are limited here:\n" + "\n".join(problems),
                seconds=15,
                urgent=True,
            )
        self.net: NetworkManager | None
        try:
            self.net = NetworkManager.from_environ(network_prefix(self.ident), os.environ)
            if self.net.privileged:
                removed = self.net.cleanup_stale_at_start()
                if removed:
                    log.info("network: removed what a crashed run left: %s", ", ".join(removed))
            log.info("network: %s", self.net.caps.describe())
        except (NetworkError, OSError) as e:
            log.warning("network namespaces unavailable (%s): sandboxes get loopback only", e)
            self.net = None
        # slow kernel writes (freeze, thaw, reclaim, clean-up) run on its workers
        self.offload = Offload(
            server.loop, report=lambda text: server.notify(text[:1].upper() + text[1:], urgent=True)
        )
        self.launcher = Launcher(
            cgroup_procs=self._cgroup_procs,
            netns_path=self.net.netns_path if self.net else None,
            userns_path=self.net.userns_path if self.net else None,
            on_exit=self._on_sandbox_exit,
        )
        self.launcher.background = self.offload.submit
        # the prepared /etc is built there too (a desktop start must not stall frames)
        self.launcher.etc.background = self.offload.submit
        # a /usr keeper that dies is seen at once (not at the next launch), and replaced
        self.launcher.keepers.watch = self._watch_keeper
        # Every change of a desktop's network runs in its lane; launches wait for it there.
        # The networks have a worker of their own (the manager makes one change at a time
        # anyway): a freeze or a thaw never waits behind a network change.
        self.lanes: NetworkLanes | None = None
        self.net_offload: Offload | None = None
        if self.net is not None:
            self.net_offload = Offload(server.loop, workers=1)
            self.lanes = NetworkLanes(
                self.net,
                self.net_offload,
                lambda text: server.notify(text, urgent=True),
                self._spec_of,
            )
        self._freeze_timers: dict[str, Timer] = {}
        self._freezing: dict[str, _Freezing] = {}
        self._reclaims: dict[str, Job[int | None]] = {}

        self._freeze_starting: dict[str, Timer] = {}  # before_freeze told, freeze not begun
        self._logs: dict[str, outputlog.DesktopLog] = {}
        self._outputs: dict[int, tuple[outputlog.ProgramOutput, FdHandle]] = {}
        server.launch_hook = self.launch
        for d in server.desktops.values():
            self._desktop_cgroup(d.spec)
            self.launcher.desktop_started(d.spec)

    # ---- launching ----

    def _desktop_cgroup(self, spec: DesktopSpec) -> DesktopCgroup | None:
        cg = self.cgroups.get(spec.name)
        if cg is None:
            cg = self.cgroups.desktop(spec.name, spec.limits)
        return cg

    def _watch_keeper(self, keeper: UsrKeeper) -> Callable[[], None]:
        name = f"/usr keeper of {keeper.desktop}"
        exit_watch = self.server.loop.add_reader(
            keeper.pidfd, lambda: self._on_keeper_exit(keeper), name
        )
        ready_watch: list[FdHandle] = []

        def on_ready() -> None:  # mounted (or failed): its daemon is known from now on
            ready_watch.pop().remove()
            keeper.find_daemon()

        ready_watch.append(self.server.loop.add_reader(keeper.ready_fd, on_ready, name))

        def unwatch() -> None:
            exit_watch.remove()
            if ready_watch:
                ready_watch.pop().remove()

        return unwatch

    def _on_keeper_exit(self, keeper: UsrKeeper) -> None:
        text = self.launcher.keeper_exited(keeper)
        if text is not None:
            self.server.notify(text, urgent=True)

    def _cgroup_procs(self, desktop: str) -> list[Path]:
        cg = self.cgroups.get(desktop)
        return cg.procs_files() if cg else []

    def _spec_of(self, desktop: str) -> DesktopSpec | None:
        runtime = self.server.desktops.get(desktop)
        return runtime.spec if runtime is not None else None

    def launch(
        self, spec: DesktopSpec, argv: list[str], ephemeral: bool
    ) -> Child | Deferred[Child]:
        """Start `argv` in the desktop's sandbox, now if its network is ready, otherwise
        (a Deferred) once it is; never without it."""
        self._desktop_cgroup(spec)
        if self.lanes is None:
            return self._start(spec.name, argv, ephemeral)
        return self.lanes.when_ready(spec, lambda: self._start(spec.name, argv, ephemeral))

    def _start(self, desktop: str, argv: list[str], ephemeral: bool) -> Child:
        spec = self.server.desktops[desktop].spec  # as it is now, if it changed while waiting
        try:
            sandbox = self.launch_sandbox(spec, argv, ephemeral=ephemeral or None)
        except (LaunchError, UnsafePathError) as e:
            self.server.notify(f"Could not start {argv[0]} on {spec.name}: {e}", urgent=True)
            raise RuntimeError(str(e)) from e
        return self.server.children.adopt(
            sandbox.pid,
            list(argv),
            spec.name,
            sandbox.poll,
            sandbox.kill,
            pidfd=os.dup(sandbox.pidfd),
        )

    def launch_sandbox(
        self,
        spec: DesktopSpec,
        argv: list[str],
        *,
        ephemeral: bool | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> Sandbox:
        """The launcher's launch, with the program's stdout and stderr on a pipe of its own
        that the event loop copies into its desktop's log (never the compositor's fds)."""
        r, w = outputlog.output_pipe()
        try:
            sandbox = self.launcher.launch(
                spec, argv, ephemeral=ephemeral, stdout=w, stderr=w, pass_fds=pass_fds
            )
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        desktop_log = self._logs.get(spec.name)
        if desktop_log is None:
            desktop_log = self._logs[spec.name] = outputlog.DesktopLog(spec.name)
        program = f"{os.path.basename(argv[0])}[{sandbox.pid}]"
        out = outputlog.ProgramOutput(desktop_log, program, r)
        handle = self.server.loop.add_reader(r, lambda: self._on_output(r), f"output {program}")
        self._outputs[r] = (out, handle)
        return sandbox

    def _on_output(self, fd: int) -> None:
        out, handle = self._outputs[fd]
        n = out.read()
        if n < 0:
            self._close_output(fd)
            return
        pause = out.log.budget.charge(n, time.monotonic())
        if pause > 0:
            # Over the desktop's budget: stop reading; the program blocks on its full pipe.
            handle.remove()
            self.server.loop.call_later(
                max(1, int(pause * 1000)), lambda: self._resume_output(fd, out), "output resume"
            )

    def _resume_output(self, fd: int, out: outputlog.ProgramOutput) -> None:
        entry = self._outputs.get(fd)
        if entry is None or entry[0] is not out:  # closed at shutdown meanwhile
            return
        handle = self.server.loop.add_reader(fd, lambda: self._on_output(fd), out.program)
        self._outputs[fd] = (out, handle)

    def _close_output(self, fd: int) -> None:
        out, handle = self._outputs.pop(fd)
        handle.remove()  # before the fd is closed: its number may be reused at once
        out.close()

    def _on_sandbox_exit(self, sandbox: Sandbox, returncode: int) -> None:
        cg = self.cgroups.get(sandbox.desktop)
        if cg is not None and returncode in (-9, 137):
            kills = cg.oom_kills()
            if kills:
                self.server.notify(
                    f"A program on {sandbox.desktop} was killed: out of memory "
                    f"({kills} OOM kills so far)",
                    urgent=True,
                )

    def reload(self) -> None:
        """A reloaded config's limits apply to running desktops at once."""
        for d in self.server.desktops.values():
            cg = self.cgroups.get(d.spec.name)
            if cg is not None:
                for warning in cg.apply_limits(d.spec.limits):
                    log.warning("desktop %s: %s", d.spec.name, warning)
            else:
                self._desktop_cgroup(d.spec)
            self.launcher.desktop_started(d.spec)  # a no-op where its keeper runs already
        # A desktop the new config dropped gives up its /usr keeper.
        for keeper in self.launcher.keepers.all():
            if keeper.desktop not in self.server.desktops:
                self.launcher.desktop_stopped(keeper.desktop)
        # A tightened policy reaches running programs at once (same namespace, new rules);
        # waiting for the next launch would leave them the old network. The change runs
        # in the desktop's lane: launches asked meanwhile wait for it.
        if self.net is not None and self.lanes is not None:
            for name in list(self.net.state()):
                desk = self.server.desktops.get(name)
                if desk is None:
                    self.lanes.remove(name)
                elif not self.lanes.ready(desk.spec):
                    self.lanes.build(desk.spec)

    # ---- hiding, showing, freezing ----

    def after_hide(self, desktop: str) -> None:
        spec = self.server.desktops[desktop].spec
        if spec.freeze_after is None or not self.cgroups.status.can_freeze:
            return
        timer = self._freeze_timers.get(desktop)
        if timer is None:
            timer = self.server.loop.timer(
                lambda: self._freeze_quietly(desktop), f"freeze {desktop}"
            )
            self._freeze_timers[desktop] = timer
        timer.schedule(max(1, int(spec.freeze_after * 1000)))

    def before_show(self, desktop: str) -> None:
        timer = self._freeze_timers.get(desktop)
        if timer is not None:
            timer.schedule(0)
        # the thaw is queued at once and the switch does not wait for it: the desktop's
        # last frames are still in the scene
        self.thaw(desktop)

    def _freeze_quietly(self, desktop: str) -> None:
        self.freeze(desktop)

    def freeze(self, desktop: str) -> str:
        if desktop == self.server.model.active:
            return f"{desktop} is shown: not freezing it"
        cg = self.cgroups.get(desktop)
        if cg is None:
            raise RuntimeError(
                f"{desktop} has no cgroup here: " + "; ".join(self.cgroups.status.problems)
            )
        if desktop in self._freezing or desktop in self._freeze_starting:
            return f"{desktop} is already being frozen"
        self._tell("before_freeze", desktop)
        # The freeze itself starts on a later turn of the event loop: an extension that
        # stopped reading a socket in before_freeze may still have one of its events in
        # this turn's batch, and must be able to handle it before its peer is frozen.
        start = self.server.loop.timer(lambda: self._start_freeze(desktop), f"freeze {desktop}")
        self._freeze_starting[desktop] = start
        start.schedule(1)
        return f"freezing {desktop}"

    def _start_freeze(self, desktop: str) -> None:
        start = self._freeze_starting.pop(desktop, None)
        if start is not None:
            start.remove()
        cg = self.cgroups.get(desktop)
        if cg is None or desktop == self.server.model.active:
            self._tell("after_thaw", desktop)
            return
        # the write (the kernel visits every task) runs on a worker, in the desktop's lane
        freezing = _Freezing()
        freezing.job = self.offload.submit(
            desktop_lane(desktop),
            f"freezing {desktop}",
            cg.start_freeze,
            on_done=lambda op: self._freeze_written(desktop, freezing, op),
        )
        self._freezing[desktop] = freezing

    def _freeze_written(self, desktop: str, freezing: _Freezing, op: FreezeOp) -> None:
        if self._freezing.get(desktop) is not freezing:  # thawed meanwhile (thaw() undid it)
            op.cancel()
            op.close()
            return
        op.defer_rollback = True
        freezing.op = op
        freezing.poller = self.server.loop.timer(
            lambda: self._step_freeze(desktop), f"freeze {desktop}"
        )
        self._step_freeze(desktop)

    def _step_freeze(self, desktop: str) -> None:
        freezing = self._freezing[desktop]
        op, poller = freezing.op, freezing.poller
        assert op is not None and poller is not None
        state = op.poll()
        if state == "pending":
            poller.schedule(op.next_poll_ms())
            return
        poller.remove()
        op.close()
        del self._freezing[desktop]
        if state == "frozen":
            log.info("desktop %s frozen in %.1f ms", desktop, op.elapsed * 1000)
            self.server.set_frozen(desktop, True)
            cg = self.cgroups.get(desktop)
            if cg is not None and self.server.desktops[desktop].spec.reclaim_when_frozen:
                self._reclaims[desktop] = self.offload.submit(
                    RECLAIM_LANE,
                    f"reclaiming the memory of {desktop}",
                    cg.reclaim,
                    on_done=lambda freed: self._reclaimed(desktop, freed),
                )
        else:
            if op.needs_rollback:
                self._queue_thaw(desktop, cg=self.cgroups.get(desktop))
            self.server.notify(
                f"Could not freeze {desktop}: {op.reason} (rolled back)", urgent=True
            )

    def _reclaimed(self, desktop: str, freed: int | None) -> None:
        self._reclaims.pop(desktop, None)
        if freed is None:
            log.info("desktop %s: memory.reclaim is not available here", desktop)
        else:
            log.info("desktop %s: reclaimed %d bytes while frozen", desktop, freed)

    def _call_off_freeze(self, desktop: str) -> bool:
        """Stop whatever freeze of `desktop` is under way; True if its write may already
        have reached the kernel (so a thaw must follow it)."""
        start = self._freeze_starting.pop(desktop, None)
        if start is not None:
            start.remove()
            self._tell("after_thaw", desktop)  # a freeze asked for, not started yet
        reclaim = self._reclaims.pop(desktop, None)
        if reclaim is not None:
            reclaim.cancel()  # one already running ends by itself; thawing need not wait
        freezing = self._freezing.pop(desktop, None)
        if freezing is None:
            return False
        if freezing.poller is not None:
            freezing.poller.remove()
        if freezing.op is not None:
            freezing.op.cancel()
            freezing.op.close()
        if freezing.job is not None and freezing.job.cancel():
            self._tell("after_thaw", desktop)  # never written: nothing to undo
            return False
        return True

    def thaw(self, desktop: str) -> str:
        written = self._call_off_freeze(desktop)
        cg = self.cgroups.get(desktop)
        if cg is None:
            return f"{desktop} has no cgroup"
        if written or self.server.model.desktops[desktop].frozen or cg.frozen:
            # the model says thawed at once (the indicator, IPC); the kernel's write follows
            # in the desktop's lane, after any freeze written before it
            if self.server.model.desktops[desktop].frozen:
                self.server.set_frozen(desktop, False)
            self._queue_thaw(desktop, cg)
            return f"thawed {desktop}"
        return f"{desktop} was not frozen"

    def _queue_thaw(self, desktop: str, cg: DesktopCgroup | None) -> None:
        if cg is None:
            return

        def write() -> None:
            try:
                cg.thaw(strict=True)
            except FileNotFoundError:
                pass  # the desktop's cgroup was removed meanwhile: nothing left to thaw

        self.offload.submit(
            desktop_lane(desktop),
            f"thawing {desktop}",
            write,
            on_done=lambda _none: self._tell("after_thaw", desktop),
        )

    def _tell(self, hook: str, desktop: str) -> None:
        """Extensions that must act around a freeze (the X window manager must not wait on
        a frozen X server): `before_freeze` just before it starts, `after_thaw` after."""
        for ext in self.server.extensions:
            fn = getattr(ext, hook, None)
            if fn is not None and ext is not self:
                fn(desktop)

    def kill(self, desktop: str) -> str:
        cg = self.cgroups.get(desktop)
        if cg is None:
            raise RuntimeError(f"{desktop} has no cgroup here")
        written = self._call_off_freeze(desktop)
        n = cg.kill(timeout=0)  # never wait on the event loop; cgroup.kill is immediate
        if written or self.offload.busy(desktop_lane(desktop)):
            # a freeze written by a worker may land after the kill's own thaw
            self._queue_thaw(desktop, cg)
        if self.server.model.desktops[desktop].frozen:
            self.server.set_frozen(desktop, False)
        return f"killed {n} processes of {desktop}"

    def set_network(self, desktop: str, on: bool) -> Deferred[str]:
        """Switch the desktop's network on or off, in its lane; the message once done."""
        if self.lanes is None:
            raise RuntimeError("network namespaces are not available here")
        spec = self.server.desktops[desktop].spec
        done = self.lanes.switch(desktop, spec.network, on)
        return done.map(lambda _none: f"network of {desktop} {'on' if on else 'off'}")

    def forget_network(self, desktop: str) -> None:
        """A deleted desktop: its network is removed (in its lane), and launches still
        waiting for it fail."""
        if self.lanes is None or self.net is None:
            return
        self.lanes.forget(desktop)
        if self.net.get(desktop) is not None or self.lanes.busy(desktop):
            self.lanes.remove(desktop)

    # ---- what zionctl shows ----

    def describe_desktop(self, desktop: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        cg = self.cgroups.get(desktop)
        out["cgroup"] = cg.usage() if cg else None
        if self.net is not None:
            net = self.net.get(desktop)
            busy = self.lanes is not None and self.lanes.busy(desktop)
            out["net"] = (
                net.state()
                if net
                else {
                    "policy": self.server.desktops[desktop].spec.network.mode.value,
                    "state": "being built" if busy else "not started",
                }
            )
            if busy:
                out["net"]["changing"] = True  # a change is queued or under way
        return out

    def status(self) -> dict[str, Any]:
        return {
            "instance": {
                "id": self.ident,
                "cgroup_root": self.cgroups.root_name,
                "net_prefix": self.net.prefix if self.net else None,
            },
            "cgroups": self.cgroups.status.to_json(),
            "network": self.net.caps.describe() if self.net else "unavailable",
            "sandboxes": len(self.launcher.running),
            "sound": self.launcher.sound.status(),
        }

    def close(self) -> None:
        if self.lanes is not None:
            self.lanes.close()  # launches still waiting for a network never start now
        self.launcher.sound.stop()
        for timer in self._freeze_timers.values():
            timer.remove()
        for desktop in list(self._freezing) + list(self._freeze_starting):
            self.thaw(desktop)
        self.offload.close()  # the thaws just queued, and whatever ran, finish first
        if self.net_offload is not None:
            self.net_offload.close()  # network changes queued still run, then stop here
        for name in self.server.desktops:
            cg = self.cgroups.get(name)
            if cg is not None and cg.frozen:
                cg.thaw()
        self.launcher.shutdown(timeout=3)
        for fd in list(self._outputs):
            out, _ = self._outputs[fd]
            while out.read() > 0:  # what the programs printed last
                pass
            self._close_output(fd)
        for desktop_log in self._logs.values():
            desktop_log.close()
        if self.net is not None:
            self.net.teardown()
        self.cgroups.cleanup()


class _Freezing:
    """One desktop's freeze under way: its write (a job), then the op polled on the loop."""

    def __init__(self) -> None:
        self.job: Job[FreezeOp] | None = None
        self.op: FreezeOp | None = None
        self.poller: Timer | None = None


def attach(server: Server) -> None:
    iso = Isolation(server)
    server.extensions.append(iso)
    server.isolation = iso
    refusals.attach(server, iso.net)  # before any desktop's DNS forwarder starts
    server.extensions.append(DesktopBusLink(server, iso.launcher, iso._cgroup_procs))
    if os.environ.get("ZIONWM_NO_QUARANTINE") != "1":
        server.extensions.append(QuarantineLink(server))
    # after Isolation: both launch through it
    server.extensions.append(XwaylandManager(server))
    server.extensions.append(Autostarter(server))
