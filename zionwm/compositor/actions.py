"""The compositor's side of the command language (zionwm.commands), as key bindings, zionctl
and the sway socket send it: one `_cmd_<name>` per command, looked up by name (window
management commands live in windows.py), and the programs the commands start.
"""

from __future__ import annotations

import logging
import shlex
from typing import Any

from zionwm import commands as cmdlang

from .children import Child
from .core import ServerCore
from .desktops import SwitchError
from .ipc import Deferred

log = logging.getLogger(__name__)


_FAILURES = (SwitchError, LookupError, ValueError, OSError, RuntimeError)


def _failed(cmd: Any, e: Exception) -> dict[str, Any]:
    log.info("command %s failed: %s", cmd, e)
    return {"ok": False, "message": str(e).strip("'\"")}


def _succeeded(message: Any) -> dict[str, Any]:
    if isinstance(message, dict):
        return {"ok": True, "message": message.get("message", ""), "data": message}
    return {"ok": True, "message": message or ""}


class CommandHandling(ServerCore):
    """`run_command_text` and the commands it runs; launching programs into a desktop."""

    def run_command_text(self, text: str | list[str]) -> dict[str, Any] | Deferred[dict[str, Any]]:
        """`{"ok", "message"[, "data"]}`; a `Deferred` of it for a command whose result comes
        later (a launch waiting for its desktop's network)."""
        try:
            cmd = cmdlang.parse(text)
        except cmdlang.CommandError as e:
            return {"ok": False, "message": str(e)}
        attr = "_cmd_" + cmd.name.replace("-", "_")
        handler = getattr(self, attr, None) or getattr(self.wm, attr, None)
        if handler is None:
            return {"ok": False, "message": f"{cmd.name}: not supported by this compositor"}
        lanes = getattr(self.isolation, "lanes", None)
        if lanes is not None:
            lanes.take_recent()  # queued by others (timers): not this command's to wait for
        try:
            message = handler(cmd)
        except _FAILURES as e:
            return _failed(cmd, e)
        # A command that changed a desktop's network (reload, desktop set/delete, net) is
        # answered once the change is in force, as it was when it ran on this thread.
        changes = lanes.take_recent() if lanes is not None else None
        if changes is not None and not isinstance(message, Deferred):
            message = changes.map(lambda _none, message=message: message)
        if isinstance(message, Deferred):
            out: Deferred[dict[str, Any]] = Deferred()
            message.then(
                lambda value: out.resolve(_succeeded(value)),
                lambda e: out.resolve(_failed(cmd, e)),
            )
            return out
        return _succeeded(message)

    def _cmd_switch(self, cmd: Any) -> str:
        target = cmd.desktop or str(cmd.index)
        return self.switch_to(target)

    def _cmd_switch_prev(self, cmd: Any) -> str:
        prev = self.model.previous
        return self.switch_to(prev) if prev else "no previous desktop"

    def _cmd_spawn(self, cmd: Any) -> str | Deferred[str]:
        return self.launch(self.model.active, list(cmd.argv))

    def _cmd_launch(self, cmd: Any) -> str | Deferred[str]:
        return self.launch(cmd.desktop, list(cmd.argv), ephemeral=cmd.ephemeral)

    def _cmd_close(self, cmd: Any) -> str:
        if self.focused_view is None:
            return "no focused window"
        self.focused_view.close()
        return "asked the window to close"

    def _cmd_fullscreen(self, cmd: Any) -> str:
        v = self.focused_view
        if v is None:
            return "no focused window"
        # a key binding is the user's own gesture: only it may give true fullscreen (and it
        # turns a client's own, framed fullscreen into true fullscreen where allowed)
        if self.in_binding and self.fullscreen_allowed(v.desktop):
            v.request_state("fullscreen", not v.true_fullscreen, by_user=True)
        else:
            v.request_state("fullscreen", not v.fullscreen)
        if v.true_fullscreen:
            self.strip_recalled = False
        return "fullscreen " + ("on" if v.fullscreen else "off")

    def _cmd_overview(self, cmd: Any) -> str:
        if self.locker.locked:
            return "locked: the overview opens once unlocked"
        return self.overview.toggle()

    def _cmd_lock(self, cmd: Any) -> str:
        return self.locker.lock()

    def _cmd_maximize(self, cmd: Any) -> str:
        v = self.focused_view
        if v is None:
            return "no focused window"
        v.request_state("maximize", not v.maximized if cmd.enable is None else cmd.enable)
        self.wm.state_changed(v)
        return "maximized " + ("on" if v.maximized else "off")

    def _cmd_quit(self, cmd: Any) -> str:
        self.loop.call_later(1, self.display.terminate, "quit")
        return "quitting"

    def _cmd_reload(self, cmd: Any) -> str:
        return self.reload_config()

    def _cmd_clipboard_copy(self, cmd: Any) -> str:
        desktop = self.focused_view.desktop if self.focused_view else self.model.active
        return self.clipboard.copy(desktop)

    def _cmd_clipboard_paste(self, cmd: Any) -> str:
        desktop = self.focused_view.desktop if self.focused_view else self.model.active
        return self.clipboard.paste(desktop)

    def _isolation_for(self, desktop: str) -> Any:
        if desktop not in self.desktops:
            raise LookupError(f"no desktop named {desktop!r}")
        if self.isolation is None:
            raise RuntimeError("the isolation layer is not running")
        return self.isolation

    def _cmd_freeze(self, cmd: Any) -> str:
        return str(self._isolation_for(cmd.desktop).freeze(cmd.desktop))

    def _cmd_thaw(self, cmd: Any) -> str:
        return str(self._isolation_for(cmd.desktop).thaw(cmd.desktop))

    def _cmd_kill(self, cmd: Any) -> str:
        return str(self._isolation_for(cmd.desktop).kill(cmd.desktop))

    def _cmd_net(self, cmd: Any) -> str | Deferred[str]:
        """Answered once the change is in force (it runs in the desktop's lane)."""
        done: str | Deferred[str]
        if cmd.for_time is not None and self.desktop_data is not None:
            done = self.desktop_data.grant_network(cmd.desktop, bool(cmd.enable), cmd.for_time)
        else:
            done = self._isolation_for(cmd.desktop).set_network(cmd.desktop, bool(cmd.enable))
        return done

    def _cmd_desktop(self, cmd: Any) -> Any:
        if self.desktop_data is None:
            raise RuntimeError("run-time desktops are not available in this compositor")
        return self.desktop_data.command(list(cmd.args))

    def _cmd_manager(self, cmd: Any) -> str:
        from . import manager_link  # noqa: PLC0415 - only when asked for

        return manager_link.start(self)

    def _cmd_move_to(self, cmd: Any) -> str:
        raise ValueError("windows never change desktop: their programs live in its sandbox")

    def launch(self, desktop: str, argv: list[str], ephemeral: bool = False) -> str | Deferred[str]:
        """Start `argv` in `desktop`'s sandbox (`start_child`): what to answer, or a
        `Deferred` of it."""
        started = self.start_child(desktop, argv, ephemeral)
        if isinstance(started, Deferred):
            return started.map(lambda child: self._started_text(desktop, argv, child))
        return self._started_text(desktop, argv, started)

    def start_child(
        self, desktop: str, argv: list[str], ephemeral: bool = False
    ) -> Child | Deferred[Child]:
        """Start `argv` in `desktop`'s sandbox: its child, or a `Deferred` of it when the
        start waits for the desktop's network (then it fails if the network cannot be
        built: nothing runs without it)."""
        if desktop not in self.desktops:
            raise LookupError(f"no desktop named {desktop!r}")
        if not argv:
            raise ValueError("nothing to launch")
        spec = self.desktops[desktop].spec
        if self.launch_hook is None:
            # Never started another way: outside a sandbox a program would have the host's
            # home, runtime dir and sockets.
            text = f"Not starting {argv[0]} on {desktop}: the sandbox launcher is not running"
            self.notify(text, urgent=True)
            raise RuntimeError(text)
        started = self.launch_hook(spec, argv, ephemeral)
        if isinstance(started, Deferred):
            return started.map(lambda child: self._launched(desktop, argv, child))
        return self._launched(desktop, argv, started)

    def _launched(self, desktop: str, argv: list[str], child: Child) -> Child:
        self.emit("launch", {"desktop": desktop, "argv": argv, "pid": child.pid})
        return child

    @staticmethod
    def _started_text(desktop: str, argv: list[str], child: Child) -> str:
        return f"started {argv[0]} on {desktop} (pid {child.pid})"

    def _on_child_exit(self, child: Child) -> None:
        quick = child.ended_right_after_start()
        quiet = child.extra.get("quiet_exit") or child.extra.get("exit_notified")
        if child.returncode and quick and child.desktop is not None and not quiet:
            child.extra["exit_notified"] = True
            self.notify(
                f"{shlex.join(child.argv)} on {child.desktop} exited with {child.returncode} "
                f"right after starting (is it installed? zionctl log {child.desktop})",
                urgent=True,
            )
        for ext in self.extensions:
            hook = getattr(ext, "child_exited", None)
            if hook:
                hook(child)
        self.emit(
            "exit",
            {
                "desktop": child.desktop,
                "argv": child.argv,
                "pid": child.pid,
                "returncode": child.returncode,
            },
        )
