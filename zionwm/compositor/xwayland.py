"""X11 for desktops that allow it: each gets its own Xwayland, inside its own sandbox.

Owns the per-desktop X server's life: the listening socket, the socket-activated start, the
restart after an exit and the give-up after repeated failures.

One X server per desktop, never shared: the X11 protocol lets any client of a server read
every other client's windows, keystrokes and selections, so a shared server would undo the
wall between desktops. Each desktop with `x11=True` has:

- a socket `X0` the compositor creates in `paths.desktop_x11_dir(desktop)`, a private host
  directory that every sandbox of that desktop (and no other) sees as `/tmp/.X11-unix`, with
  `DISPLAY=:0` (see isolation/bwrap.py);
- its own Xwayland, started the moment the first X11 client connects (socket activation:
  the compositor watches the listening socket, then hands it over with `-listenfd`; the
  client's connection waits in the backlog meanwhile). It runs through the ordinary
  launcher, so it is in the desktop's cgroup (limits, freezing), sandbox and network
  namespace, with its output in the desktop's log.

Rootless (the default): each X window is its own window of the desktop. The compositor is
the X window manager: one wlroots XWM per desktop, bound to that desktop's seat (so the
clipboard bridge between X and Wayland stays inside the desktop). wlroots 0.15 would fork
Xwayland itself, outside any sandbox; instead the compositor starts it in the sandbox with
three descriptors of its own making: a Wayland connection (`WAYLAND_SOCKET`, accepted as a
client of this desktop), the window-manager socket (`-wm`) and a readiness pipe
(`-displayfd`). When Xwayland writes its display number, the XWM is attached to the wm
socket (native/build.py: a wlr_xwayland whose server record is ours). See docs/x11.md.

Rootful (the fallback when the XWM cannot be set up): Xwayland's root window is one
toplevel of the desktop and X11 programs live inside it, with no window manager.

Xwayland exits by itself a while after its last X client leaves (`-terminate`), and the
next connection starts a new one.

No X authority cookie: the only way to the socket is a directory bound into this desktop's
sandboxes, and anything there could read a cookie file as easily as use the socket.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zionwm import paths
from zionwm.isolation.launcher import LaunchError
from zionwm.isolation.spec import NetMode
from zionwm.isolation.storage import UnsafePathError

from . import native
from .children import Child
from .clients import ensure_private_dir
from .ipc import Deferred
from .loop import FdHandle, Timer

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)

XWAYLAND = "Xwayland"
SOCKET_NAME = "X0"  # display :0 inside the sandbox
IDLE_EXIT = 15  # seconds Xwayland stays up after its last X client left
QUICK_EXIT = 5.0  # an exit this soon after the start counts as a failed start
MAX_FAILURES = 3  # failed starts in a row before giving up until the next reload
RETRY_MS = 1000  # pause before a restart after a failed start


def xwayland_argv(listen_fd: int, binary: str = XWAYLAND, idle_exit: int = IDLE_EXIT) -> list[str]:
    """Rootful Xwayland's command line (the fallback): its root window is one Wayland
    toplevel, display :0, listening only on the socket it is handed (which also turns off
    the abstract and TCP sockets), black root, gone `idle_exit` seconds after its last
    client."""
    return [
        binary,
        ":0",
        "-listenfd",
        str(listen_fd),
        "-terminate",
        str(idle_exit),
        "-br",
    ]


def rootless_argv(
    listen_fd: int,
    wayland_fd: int,
    wm_fd: int,
    ready_fd: int,
    binary: str = XWAYLAND,
    idle_exit: int = IDLE_EXIT,
) -> list[str]:
    """Rootless Xwayland's command line: display :0 on the listening socket it is handed
    (no abstract or TCP socket), the compositor's Wayland connection on `wayland_fd`, the
    window manager on `wm_fd`, its display number written to `ready_fd` once it serves.
    `env` puts WAYLAND_SOCKET in its environment (the launcher passes no extra variables)."""
    return [
        "env",
        f"WAYLAND_SOCKET={wayland_fd}",
        binary,
        ":0",
        "-rootless",
        "-listenfd",
        str(listen_fd),
        "-wm",
        str(wm_fd),
        "-displayfd",
        str(ready_fd),
        "-terminate",
        str(idle_exit),
    ]


def is_failed_start(runtime: float, returncode: int) -> bool:
    """Did an Xwayland that exited with `returncode` after `runtime` seconds fail to start?"""
    return returncode != 0 and runtime < QUICK_EXIT


@dataclass
class X11Desktop:
    """The X server slot of one desktop."""

    name: str
    sock: socket.socket | None = None
    watch: FdHandle | None = None
    child: Child | None = None
    started_at: float = 0.0
    starts: int = 0
    failures: int = 0  # failed starts in a row
    disabled: str = ""  # why X11 is off for this desktop until the next reload
    retry: Timer | None = None
    wm: Any = None  # the desktop's XWM (RootlessWM), made on the first rootless start
    ready: FdHandle | None = None  # the readiness pipe of a starting rootless Xwayland
    ready_fd: int = -1
    ready_text: bytes = b""
    ready_pending: bool = False  # ready while hidden: the XWM is attached when shown
    wm_sock: socket.socket | None = None  # our end of the wm socket until Xwayland is ready
    client: int = 0  # Xwayland's Wayland client (address), tagged with the desktop

    @property
    def state(self) -> str:
        if self.disabled:
            return f"disabled: {self.disabled}"
        if self.child is not None:
            mode = "rootful" if self.wm is None else "rootless"
            return f"running {mode} (pid {self.child.pid})"
        return "waiting for the first X11 client" if self.sock is not None else "off"


class XwaylandManager:
    """One `X11Desktop` per desktop with `x11=True`; an extension of the server (hooks:
    `child_exited`, `reload`, `describe_desktop`, `status`, `close`)."""

    def __init__(self, server: Server, binary: str | None = None) -> None:
        self.server = server
        self.binary = binary or shutil.which(XWAYLAND) or ""
        self.desktops: dict[str, X11Desktop] = {}
        self.freezing: set[str] = set()  # desktops frozen or being frozen
        # Rootless needs the XWM hooks of native/; without them X11 runs rootful.
        self.rootless = os.environ.get("ZIONWM_X11_ROOTFUL", "") != "1" and self.binary != ""
        if self.rootless and not native.xwayland_prepare(server.display, server.compositor):
            log.warning("the X window manager cannot be set up: X11 desktops run rootful")
            self.rootless = False
        self._sync()

    # ---- offering the socket ----

    def _sync(self) -> None:
        """Offer X11 to every desktop that allows it now; withdraw it from the others."""
        wanted = {n for n, d in self.server.desktops.items() if d.spec.x11}
        for name in list(self.desktops):
            if name not in wanted:
                self._withdraw(self.desktops.pop(name))
        for name in sorted(wanted):
            x = self.desktops.get(name)
            if x is None:
                x = self.desktops[name] = X11Desktop(name)
            elif x.disabled:
                x.disabled, x.failures = "", 0  # a reload is the user's "try again"
            if x.sock is None:
                self._offer(x)

    def _offer(self, x: X11Desktop) -> None:
        if not self.binary:
            self._disable(x, f"{XWAYLAND} is not installed")
            return
        directory = paths.desktop_x11_dir(x.name)
        ensure_private_dir(directory.parent)
        ensure_private_dir(directory)
        path = directory / SOCKET_NAME
        if path.exists() or path.is_symlink():
            path.unlink()  # left by a crashed run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(str(path))
            os.chmod(path, 0o600)
            sock.listen(64)
        except OSError as e:
            sock.close()
            self._disable(x, f"cannot create {path}: {e}")
            return
        x.sock = sock
        self._arm(x)
        log.info("desktop %s: X11 socket ready (Xwayland starts on first use)", x.name)

    def _arm(self, x: X11Desktop) -> None:
        if x.sock is not None and x.watch is None:
            x.watch = self.server.loop.add_reader(
                x.sock.fileno(), lambda: self._on_x11_socket_connect(x), f"x11 {x.name}"
            )

    def _disarm(self, x: X11Desktop) -> None:
        if x.watch is not None:
            x.watch.remove()
            x.watch = None

    def _on_x11_socket_connect(self, x: X11Desktop) -> None:
        # From here until Xwayland exits the socket is Xwayland's to accept on.
        self._disarm(x)
        self._start(x)

    # ---- the server's life ----

    def _start(self, x: X11Desktop) -> None:
        if x.sock is None:  # disabled while its start waited for the desktop's network
            return
        iso = self.server.isolation
        runtime = self.server.desktops.get(x.name)
        if iso is None or runtime is None:
            self._disable(x, "the sandbox launcher is not running")
            return
        spec = runtime.spec
        lanes = iso.lanes
        if lanes is not None and spec.network.mode != NetMode.NONE and not lanes.ready(spec):
            # Built in the desktop's lane, off this thread; the start comes back here then.
            waiting = lanes.when_ready(spec, lambda: self._start(x))
            if isinstance(waiting, Deferred):
                waiting.then(lambda _none: None, lambda e: self._failed(x, f"its network: {e}"))
            return
        fd = x.sock.fileno()
        theirs: list[int] = []
        try:
            if self.rootless:
                argv, theirs = self._rootless_fds(x, fd)
            else:
                argv = xwayland_argv(fd, self.binary)
            # What Isolation.launch does, plus the descriptors passed through.
            if iso.cgroups.get(spec.name) is None:
                iso.cgroups.desktop(spec.name, spec.limits)
            sandbox = iso.launch_sandbox(spec, argv, pass_fds=(fd, *theirs))
        except (LaunchError, UnsafePathError, OSError, RuntimeError) as e:
            self._drop_start(x)
            self._failed(x, f"could not start {XWAYLAND}: {e}")
            return
        finally:
            for t in theirs:
                os.close(t)
        x.child = self.server.children.adopt(
            sandbox.pid, argv, spec.name, sandbox.poll, sandbox.kill, pidfd=os.dup(sandbox.pidfd)
        )
        # This module reports X server failures itself (once, when it gives up), not each exit.
        x.child.extra["quiet_exit"] = True
        x.started_at = time.monotonic()
        x.starts += 1
        log.info("desktop %s: started its own %s (sandbox pid %d)", x.name, XWAYLAND, sandbox.pid)

    # ---- rootless: the descriptors, the readiness, the window manager ----

    def _rootless_fds(self, x: X11Desktop, listen_fd: int) -> tuple[list[str], list[int]]:
        """Make the Wayland connection, wm socket and readiness pipe of a rootless start;
        returns the argv and the descriptors the sandbox inherits (closed here after)."""
        runtime = self.server.desktops[x.name]
        wl_ours, wl_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        wm_ours, wm_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        for sk in (wl_ours, wl_theirs, wm_ours, wm_theirs):
            sk.set_inheritable(False)  # pass_fds makes the sandbox's ends inheritable
        theirs = [wl_theirs.detach(), wm_theirs.detach(), ready_w]
        # Xwayland's connection is a client of this desktop, like one accepted on its socket:
        # the global filter, its seat and every check by desktop apply to it.
        client = native.client_create(self.server.display, wl_ours.detach(), runtime.slot)
        if not client:
            wm_ours.close()
            os.close(ready_r)
            for t in theirs:
                os.close(t)
            raise RuntimeError("could not create Xwayland's Wayland client")
        self.server._on_desktop_client(x.name, client)
        x.client = client
        x.wm_sock = wm_ours
        x.ready_fd = ready_r
        x.ready = self.server.loop.add_reader(
            ready_r, lambda: self._on_ready(x), f"xwayland ready {x.name}"
        )
        argv = rootless_argv(listen_fd, theirs[0], theirs[1], theirs[2], self.binary)
        return argv, theirs

    def _drop_start(self, x: X11Desktop) -> None:
        """Forget a start's readiness pipe and wm socket (its Wayland client goes with the
        process: libwayland destroys it when the connection closes)."""
        if x.ready is not None:
            x.ready.remove()
            x.ready = None
        if x.ready_fd >= 0:
            os.close(x.ready_fd)
            x.ready_fd = -1
        if x.wm_sock is not None:
            x.wm_sock.close()
            x.wm_sock = None
        x.ready_text = b""
        x.ready_pending = False

    def _on_ready(self, x: X11Desktop) -> None:
        try:
            data = os.read(x.ready_fd, 32)
        except OSError:
            data = b""
        x.ready_text += data
        if data and b"\n" not in x.ready_text:
            # Xwayland writes the number and the newline separately; closing our end
            # between the two would make its second write fail and kill it.
            return
        data = x.ready_text
        x.ready_text = b""
        x.ready_pending = False
        wm_sock = x.wm_sock
        x.wm_sock = None
        self._drop_start(x)
        if not data or wm_sock is None or x.child is None:
            # it exited before it was ready; child_exited counts the failure
            if wm_sock is not None:
                wm_sock.close()
            return
        if x.name in self.freezing:
            # frozen or being frozen: the window manager's first round trips would not be
            # answered; attach once the desktop is thawed
            x.wm_sock = wm_sock
            x.ready_pending = True
            return
        self._attach(x, wm_sock)

    def _attach(self, x: X11Desktop, wm_sock: socket.socket) -> None:
        x.ready_pending = False
        runtime = self.server.desktops.get(x.name)
        if runtime is None or x.child is None:
            wm_sock.close()
            return
        if x.wm is None:
            # the XWM (with pywlroots' xwayland module) is imported at the first X11 start
            from . import xwm  # noqa: PLC0415

            x.wm = xwm.RootlessWM(self.server, x.name)
        if not x.wm.attach(runtime.seat, x.client, wm_sock.detach(), x.child.pid):
            log.warning("desktop %s: the X window manager could not start", x.name)
            x.child.kill()
            return
        log.info(
            "desktop %s: %s ready in %.0f ms, managed by the compositor",
            x.name,
            XWAYLAND,
            (time.monotonic() - x.started_at) * 1000,
        )

    def child_exited(self, child: Child) -> None:
        x = next((x for x in self.desktops.values() if x.child is child), None)
        if x is None:
            return
        x.child = None
        self._drop_start(x)
        x.client = 0
        code = child.returncode if child.returncode is not None else -1
        runtime = time.monotonic() - x.started_at
        if self.server.shutting_down:
            return
        if is_failed_start(runtime, code):
            self._failed(x, f"{XWAYLAND} exited with {code} after {runtime:.1f} s (see the log)")
            return
        x.failures = 0
        if code != 0:
            self.server.notify(
                f"The X server of {x.name} exited with {code}; X11 programs there lost it",
                urgent=True,
            )
        log.info("desktop %s: %s exited (%d) after %.1f s", x.name, XWAYLAND, code, runtime)
        self._arm(x)  # a connection already waiting starts the next one at once

    def _failed(self, x: X11Desktop, reason: str) -> None:
        x.failures += 1
        log.warning("desktop %s: %s (failure %d)", x.name, reason, x.failures)
        if x.failures >= MAX_FAILURES:
            self._disable(x, reason)
            return
        # Pause before retrying: the connection that triggered the start still waits in the
        # backlog, and re-arming at once would spin.
        if x.retry is None:
            x.retry = self.server.loop.timer(lambda: self._arm(x), f"x11 retry {x.name}")
        x.retry.schedule(RETRY_MS)

    def _disable(self, x: X11Desktop, reason: str) -> None:
        x.disabled = reason
        self._close_socket(x)
        self.server.notify(
            f"X11 programs cannot run on {x.name}: {reason}. Fix it and reload the config.",
            seconds=12,
            urgent=True,
        )

    def _close_socket(self, x: X11Desktop) -> None:
        """Stop offering X11: waiting and later clients get an error instead of hanging."""
        self._disarm(x)
        if x.retry is not None:
            x.retry.remove()
            x.retry = None
        if x.sock is not None:
            x.sock.close()  # closes the backlog: clients still waiting see the connection end
            x.sock = None
        try:
            (paths.desktop_x11_dir(x.name) / SOCKET_NAME).unlink()
        except FileNotFoundError:
            pass

    def _withdraw(self, x: X11Desktop) -> None:
        # A running server keeps serving the programs it has; new sandboxes get no DISPLAY.
        self._close_socket(x)
        log.info("desktop %s: X11 withdrawn", x.name)

    # ---- server extension hooks ----

    def before_freeze(self, desktop: str) -> None:
        self.freezing.add(desktop)
        x = self.desktops.get(desktop)
        if x is not None and x.wm is not None:
            x.wm.pause(True)

    def after_thaw(self, desktop: str) -> None:
        self.freezing.discard(desktop)
        x = self.desktops.get(desktop)
        if x is None:
            return
        if x.ready_pending and x.wm_sock is not None:
            wm_sock, x.wm_sock = x.wm_sock, None
            self._attach(x, wm_sock)
        elif x.wm is not None:
            x.wm.pause(False)

    def reload(self) -> None:
        self._sync()

    def describe_desktop(self, desktop: str) -> dict[str, Any]:
        x = self.desktops.get(desktop)
        return {"x11": x.state if x else "off"}

    def status(self) -> dict[str, Any]:
        return {"x11": {n: x.state for n, x in self.desktops.items()}}

    def close(self) -> None:
        # Running servers lost their Wayland connection already (clients are disconnected
        # first at shutdown) and exit; the launcher's shutdown collects them.
        for x in self.desktops.values():
            self._drop_start(x)
            if x.wm is not None:
                x.wm.close()
            self._close_socket(x)
            try:
                paths.desktop_x11_dir(x.name).rmdir()
            except OSError:
                pass
