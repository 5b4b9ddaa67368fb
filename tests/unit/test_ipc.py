"""The IPC servers on real sockets, driven by the real clients: zionctl, swaymsg and i3ipc.

The compositor is not started here: a small controller stands in for it, and runs commands
through the real command parser (`zionwm.commands`). The servers run on a SelectorReactor in
a background thread, as they would on the compositor's event loop.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.harness import stop_main, wait_for
from zionwm import commands, paths
from zionwm.compositor import ipc
from zionwm.compositor.ipc import sway, transport
from zionwm.ctl import ControlClient, format_desktops, format_event

T = TypeVar("T")

SWAYMSG = shutil.which("swaymsg")
needs_swaymsg = pytest.mark.skipif(SWAYMSG is None, reason="swaymsg (Debian package sway) missing")


class FakeCompositor:
    """Desktops, windows and one output; commands parsed by the real command language."""

    def __init__(self) -> None:
        self.names = ["personal", "work", "web"]
        self.active = "personal"
        self.previous: str | None = None
        self.frozen: set[str] = set()
        self.launched: list[commands.Command] = []
        self.later: list[ipc.Deferred[ipc.CommandOutcome]] = []  # `thaw`: answered later
        self.hub: ipc.IpcHub | None = None
        self.win = [
            {"id": 7, "app_id": "foot", "title": "shell", "desktop": "work", "focused": True,
             "x": 10, "y": 20, "width": 640, "height": 480, "fullscreen": False},
            {"id": 9, "app_id": "firefox", "title": "news", "desktop": "web", "focused": True,
             "x": 0, "y": 0, "width": 1280, "height": 720, "fullscreen": True},
        ]  # fmt: skip

    def desktops(self) -> list[dict[str, Any]]:
        colours = {"personal": "#3366ff", "work": "#22aa44", "web": "#dd2222"}
        return [
            {
                "name": n,
                "index": i,
                "colour": colours.get(n, "#888888"),
                "active": n == self.active,
                "visible": n == self.active,
                "frozen": n in self.frozen,
                "windows": sum(1 for w in self.win if w["desktop"] == n),
                "focused_window": next((w["id"] for w in self.win if w["desktop"] == n), None),
                "network": "none" if n != "web" else "full",
            }
            for i, n in enumerate(self.names)
        ]

    def windows(self) -> list[dict[str, Any]]:
        return [dict(w) for w in self.win]

    def outputs(self) -> list[dict[str, Any]]:
        return [
            {"name": "HEADLESS-1", "x": 0, "y": 0, "width": 1280, "height": 720, "scale": 1.0,
             "active": True, "desktop": self.active},
        ]  # fmt: skip

    def status(self) -> dict[str, Any]:
        return {"version": "test", "desktops": len(self.names), "active": self.active}

    def run_command(self, argv: list[str]) -> ipc.CommandOutcome | ipc.Deferred[ipc.CommandOutcome]:
        try:
            cmd = commands.parse(argv)
        except commands.CommandError as exc:
            return ipc.CommandResult(False, str(exc))
        if cmd.name in ("switch", "switch-prev"):
            if cmd.name == "switch-prev":
                target = self.previous
            elif cmd.index is not None:
                target = self.names[cmd.index - 1] if cmd.index <= len(self.names) else None
            else:
                target = cmd.desktop
            if target not in self.names:
                return ipc.CommandResult(False, f"no desktop {cmd.args!r}")
            old, self.active, self.previous = self.active, target, self.active
            assert self.hub is not None
            self.hub.emit("switch", {"old": old, "new": target})
            return ipc.CommandResult(True, f"switched to {target}")
        if cmd.name == "launch":
            self.launched.append(cmd)
            return ipc.CommandResult(True, f"started {cmd.argv[0]}", {"pid": 4242})
        if cmd.name == "freeze" and cmd.desktop:
            self.frozen.add(cmd.desktop)
            return ipc.CommandResult(True, "")
        if cmd.name == "reload":
            return ipc.CommandResult(True, "config reloaded")
        if cmd.name == "thaw":  # answered later (as a launch waiting for a network is)
            pending: ipc.Deferred[ipc.CommandOutcome] = ipc.Deferred()
            self.later.append(pending)
            return pending
        return ipc.CommandResult(False, f"{cmd.name}: not supported by this test compositor")


class Harness:
    def __init__(self, runtime: Path, max_pending: int) -> None:
        self.runtime = runtime
        self.comp = FakeCompositor()
        self.reactor = ipc.SelectorReactor()
        self.hub = ipc.IpcHub(self.comp, self.reactor, max_pending=max_pending)
        self.comp.hub = self.hub
        self.hub.start()
        self.thread = threading.Thread(target=self.reactor.run, daemon=True)
        self.thread.start()

    def on_loop(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run fn on the reactor thread (where the compositor would run it); return its value."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        self.reactor.call_soon(call)
        return fut.result(timeout)

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        self.on_loop(lambda: self.hub.emit(event, payload))

    def subscribers(self, server: transport.ServerBase) -> int:
        return self.on_loop(lambda: sum(1 for c in server.clients if c.subscriptions))

    def close(self) -> None:
        self.on_loop(self.hub.close)
        self.reactor.stop()
        self.thread.join(5)
        self.reactor.close()


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    monkeypatch.delenv("ZIONWM_SOCK", raising=False)
    monkeypatch.delenv("SWAYSOCK", raising=False)
    monkeypatch.delenv("I3SOCK", raising=False)
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    return run


@pytest.fixture
def harness(runtime: Path) -> Iterator[Harness]:
    h = Harness(runtime, ipc.DEFAULT_MAX_PENDING)
    yield h
    h.close()


def zionctl(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("zionctl")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "zionwm.ctl"]
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=check,
        env=os.environ,
    )


def swaymsg(*args: str) -> subprocess.CompletedProcess[str]:
    assert SWAYMSG is not None
    return subprocess.run(
        [SWAYMSG, "-s", str(paths.sway_ipc_socket()), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )


# --------------------------------------------------------------------------------------------
# Sockets and their security


def test_sockets_are_private_and_removed_on_close(runtime: Path) -> None:
    h = Harness(runtime, ipc.DEFAULT_MAX_PENDING)
    try:
        for path in (paths.ipc_socket(), paths.sway_ipc_socket()):
            st = path.lstat()
            assert stat.S_ISSOCK(st.st_mode)
            assert stat.S_IMODE(st.st_mode) == 0o600
        assert stat.S_IMODE(paths.runtime_dir().stat().st_mode) == 0o700
        assert h.hub.environ() == {
            "ZIONWM_SOCK": str(paths.ipc_socket()),
            "SWAYSOCK": str(paths.sway_ipc_socket()),
        }
    finally:
        h.close()
    assert not paths.ipc_socket().exists()
    assert not paths.sway_ipc_socket().exists()


def test_runtime_dir_is_tightened_to_0700(runtime: Path) -> None:
    paths.runtime_dir().mkdir(mode=0o755)
    paths.runtime_dir().chmod(0o755)
    h = Harness(runtime, ipc.DEFAULT_MAX_PENDING)
    h.close()
    assert stat.S_IMODE(paths.runtime_dir().stat().st_mode) == 0o700


def test_stale_socket_is_replaced_live_one_and_plain_file_are_not(runtime: Path) -> None:
    transport.ensure_private_dir(paths.runtime_dir())
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(paths.ipc_socket()))
    stale.close()  # the file stays; nobody answers on it
    h = Harness(runtime, ipc.DEFAULT_MAX_PENDING)
    try:
        with ControlClient(paths.ipc_socket()) as c:
            assert c.request("ping")["name"] == "zionwm"
        # A second compositor must not steal the sockets of the first.
        other_reactor = ipc.SelectorReactor()
        try:
            with pytest.raises(ipc.SocketInUseError):
                ipc.IpcHub(FakeCompositor(), other_reactor).start()
        finally:
            other_reactor.close()
        assert paths.ipc_socket().exists()
    finally:
        h.close()
    paths.sway_ipc_socket().write_text("not a socket")
    with pytest.raises(FileExistsError):
        transport.remove_stale_socket(paths.sway_ipc_socket())
    assert paths.sway_ipc_socket().read_text() == "not a socket"


def test_peer_allowed_only_for_own_uid_and_root() -> None:
    assert transport.peer_allowed(1000, 1000)
    assert transport.peer_allowed(0, 1000)
    assert not transport.peer_allowed(1001, 1000)
    assert not transport.peer_allowed(65534, 0)


def _can_setpriv_ambient() -> str | None:
    if os.geteuid() != 0:
        return "needs root to run a client as another uid"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) missing"
    probe = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         "--inh-caps=+dac_override", "--ambient-caps=+dac_override", "true"],
        check=False, capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    if probe.returncode != 0:
        return f"setpriv cannot grant ambient capabilities here: {probe.stderr.strip()}"
    return None


CONNECT_AND_READ = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("EACCES"); sys.exit(0)
s.settimeout(5)
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
    data = s.recv(4096)
except (ConnectionResetError, BrokenPipeError):
    data = b""
print("EOF" if not data else "DATA " + repr(data))
"""


@pytest.mark.security
@pytest.mark.parametrize("which", ["control", "sway"])
def test_other_uid_is_refused(harness: Harness, which: str) -> None:
    reason = _can_setpriv_ambient()
    if reason:
        pytest.skip(reason)
    if which == "control":
        path, request = paths.ipc_socket(), b'{"id":1,"type":"desktops"}\n'
    else:
        path = paths.sway_ipc_socket()
        request = sway.I3_MAGIC + struct.pack("=II", 0, sway.GET_WORKSPACES)
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    # Without privileges, the 0700 directory and 0600 socket already keep uid 65534 out.
    out = subprocess.run(
        [*as_nobody, sys.executable, "-c", CONNECT_AND_READ, str(path), request.hex()],
        check=False, capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert out.stdout.strip() == "EACCES", out.stderr
    # With CAP_DAC_OVERRIDE it gets through the file system; SO_PEERCRED must stop it.
    caps = ["--inh-caps=+dac_override", "--ambient-caps=+dac_override"]
    out = subprocess.run(
        [*as_nobody, *caps, sys.executable, "-c", CONNECT_AND_READ, str(path), request.hex()],
        check=False, capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert out.stdout.strip() == "EOF", (out.stdout, out.stderr)
    # And the same request from our own uid is answered.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(request)
        assert s.recv(4096)


# --------------------------------------------------------------------------------------------
# The control protocol and zionctl


def test_zionctl_lists_desktops_windows_outputs_status(harness: Harness) -> None:
    out = zionctl("desktops", "--json", check=True)
    assert json.loads(out.stdout) == harness.comp.desktops()
    table = zionctl("desktops", check=True).stdout
    assert table.splitlines()[0].split()[:3] == ["#", "NAME", "COLOUR"]
    assert "NETWORK" in table.splitlines()[0]  # extra fields from later layers are shown
    assert [line.split()[1] for line in table.splitlines()[1:]] == ["personal", "work", "web"]
    assert table == format_desktops(harness.comp.desktops()) + "\n"

    windows = json.loads(zionctl("--json", "windows", check=True).stdout)
    assert [w["id"] for w in windows] == [7, 9]
    text = zionctl("windows", check=True).stdout
    assert "640x480+10+20" in text and "firefox" in text and "fullscreen" in text
    outputs = json.loads(zionctl("outputs", "--json", check=True).stdout)
    assert outputs[0]["name"] == "HEADLESS-1"
    status = zionctl("status", check=True).stdout
    assert "active: personal" in status


def test_zionctl_commands_reach_the_compositor(harness: Harness) -> None:
    out = zionctl("switch", "work")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "switched to work"
    assert harness.comp.active == "work"

    out = zionctl("switch", "nosuch")
    assert out.returncode == 1
    assert "no desktop" in out.stderr and out.stdout == ""
    assert harness.comp.active == "work"

    out = zionctl("launch", "--ephemeral", "web", "--", "foot", "-e", "--flag")
    assert out.returncode == 0, out.stderr
    launched = harness.comp.launched[-1]
    assert (launched.desktop, launched.argv, launched.ephemeral) == (
        "web",
        ("foot", "-e", "--flag"),
        True,
    )
    out = zionctl("launch", "work", "--", "foot", "--json")
    assert out.returncode == 0 and harness.comp.launched[-1].argv == ("foot", "--json")
    assert zionctl("launch", "work", "--json", "--", "true").stdout.strip().startswith("{")

    assert zionctl("freeze", "web").returncode == 0 and "web" in harness.comp.frozen
    assert zionctl("reload").stdout.strip() == "config reloaded"
    out = zionctl("net", "web", "off")
    assert out.returncode == 1 and "not supported" in out.stderr


def test_zionctl_passes_the_rest_of_the_command_language_through(harness: Harness) -> None:
    out = zionctl("move-to", "work")
    assert out.returncode == 1
    assert "windows never change desktop" in out.stderr
    assert zionctl("switch", "web").returncode == 0
    out = zionctl("switch-prev")
    assert out.returncode == 0, out.stderr
    assert harness.comp.active == "personal"


def test_zionctl_without_compositor_says_so(runtime: Path) -> None:
    out = zionctl("desktops")
    assert out.returncode == 2
    assert "is zionwm running?" in out.stderr and str(paths.ipc_socket()) in out.stderr
    out = zionctl("--socket", str(runtime / "elsewhere.sock"), "desktops")
    assert out.returncode == 2 and "elsewhere.sock" in out.stderr


def test_zionctl_socket_from_environment(harness: Harness, tmp_path: Path) -> None:
    env = dict(os.environ, ZIONWM_SOCK=str(paths.ipc_socket()), XDG_RUNTIME_DIR=str(tmp_path))
    script = Path(sys.executable).with_name("zionctl")
    out = subprocess.run(
        [str(script), "desktops", "--json"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == 3


def test_zionctl_plugin_groups_degrade_to_not_available(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plugin module that is missing (a partial install) costs the rest nothing: its
    subcommand says so and exits 2."""
    from zionwm import ctl

    monkeypatch.setitem(ctl.PLUGINS, "zionwm.no_such_plugin_module", ("gadget",))
    assert ctl.main(["gadget", "list"]) == 2
    assert "not available" in capsys.readouterr().err


def test_zionctl_events_stream(harness: Harness) -> None:
    script = Path(sys.executable).with_name("zionctl")
    proc = subprocess.Popen(
        [str(script), "events", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: harness.subscribers(harness.hub.control) == 1, what="subscription")
        assert zionctl("switch", "web").returncode == 0
        harness.emit("map", {"id": 11, "app_id": "foot", "title": "t", "desktop": "web"})
        harness.emit("freeze", {"desktop": "work"})
        assert proc.stdout is not None
        got = [json.loads(proc.stdout.readline()) for _ in range(3)]
        assert [g["event"] for g in got] == ["switch", "map", "freeze"]
        assert got[0]["payload"] == {"old": "personal", "new": "web"}
        assert got[1]["payload"]["id"] == 11
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def test_events_filter_and_readable_format(harness: Harness) -> None:
    with ControlClient(paths.ipc_socket()) as c:
        c.request("subscribe", events=["switch"])
        harness.emit("map", {"id": 1})
        harness.emit("switch", {"old": "personal", "new": "work"})
        stream = c.events(["switch"])
        msg = next(stream)
    assert msg["event"] == "switch"

    assert format_event(msg).split()[1:] == ["switch", "personal", "->", "work"]


def _raw_control(lines: bytes) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(paths.ipc_socket()))
    s.sendall(lines)
    return s


def _read_lines(s: socket.socket, n: int) -> list[dict[str, Any]]:
    buf = b""
    while buf.count(b"\n") < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return [json.loads(line) for line in buf.splitlines()[:n]]


def test_control_malformed_requests_get_errors_and_connection_survives(harness: Harness) -> None:
    with _raw_control(
        b"{not json\n[1,2]\n\n\xff\xfe\n"
        b'{"id": 5, "type": "nope"}\n'
        b'{"id": 6, "type": "command", "argv": "switch work"}\n'
        b'{"id": 7, "type": "command", "argv": ["frobnicate"]}\n'
        b'{"id": 8, "type": "subscribe", "events": "all"}\n'
        b'{"id": 9, "type": "ping"}\n'
    ) as s:
        replies = _read_lines(s, 8)
    assert [r["ok"] for r in replies] == [False] * 7 + [True]
    assert "malformed JSON" in replies[0]["error"]
    assert "JSON object" in replies[1]["error"]
    assert "unknown request type 'nope'" in replies[3]["error"] and replies[3]["id"] == 5
    assert "argv" in replies[4]["error"]
    assert "unknown command 'frobnicate'" in replies[5]["error"] and replies[5]["id"] == 7
    assert replies[7]["id"] == 9 and replies[7]["result"]["name"] == "zionwm"


def test_a_command_answered_later_does_not_hold_up_other_requests(harness: Harness) -> None:
    with _raw_control(
        b'{"id": 1, "type": "command", "argv": ["thaw", "web"]}\n'
        b'{"id": 2, "type": "command", "argv": ["thaw", "work"]}\n'
        b'{"id": 3, "type": "ping"}\n'
    ) as s:
        (first,) = _read_lines(s, 1)
        assert first["id"] == 3 and first["ok"]  # served while the two wait
        later = harness.on_loop(lambda: list(harness.comp.later))
        assert len(later) == 2
        harness.on_loop(lambda: later[1].resolve(ipc.CommandResult(False, "work: no")))
        (second,) = _read_lines(s, 1)
        assert second == {"id": 2, "ok": False, "error": "work: no"}
        harness.on_loop(lambda: later[0].resolve(ipc.CommandResult(True, "thawed web")))
        (third,) = _read_lines(s, 1)
        assert third["id"] == 1 and third["result"]["message"] == "thawed web"
    # a client gone before its answer: the answer is dropped, the compositor goes on
    with _raw_control(b'{"id": 4, "type": "command", "argv": ["thaw", "web"]}\n') as s:
        wait_for(lambda: len(harness.on_loop(lambda: harness.comp.later)) == 3, 5, "the request")
    harness.on_loop(lambda: harness.comp.later[2].resolve(ipc.CommandResult(True, "off")))
    with _raw_control(b'{"id": 5, "type": "ping"}\n') as s:
        assert _read_lines(s, 1)[0]["id"] == 5


def test_control_reply_survives_half_close(harness: Harness) -> None:
    with _raw_control(b'{"id": 3, "type": "windows"}\n') as s:
        s.shutdown(socket.SHUT_WR)
        reply = _read_lines(s, 1)[0]
        assert s.recv(100) == b""  # and then the server closes its side
    assert reply["id"] == 3 and [w["id"] for w in reply["result"]] == [7, 9]


def test_format_event_is_readable() -> None:
    def fmt(event: str, payload: dict[str, Any]) -> str:
        return format_event({"event": event, "payload": payload, "time": 0}).split(None, 1)[1]

    assert fmt("switch", {"old": "a", "new": "b"}).split() == ["switch", "a", "->", "b"]
    line = fmt("map", {"id": 3, "app_id": "foot", "title": "sh", "desktop": "work"})
    assert line.split() == ["map", "work", "#3", "foot", "'sh'"]
    assert fmt("notification", {"text": "hello", "urgent": True}).split() == [
        "notification",
        "hello",
        "(urgent)",
    ]
    assert fmt("error", {"what": "config", "errors": ["line 3: bad"]}).split()[1:] == [
        "config:",
        "line",
        "3:",
        "bad",
    ]
    line = fmt("launch", {"desktop": "web", "argv": ["firefox", "a b"], "pid": 12})
    assert line == "launch       web pid 12: firefox 'a b'"
    assert json.loads(fmt("quarantine", {"id": 4, "state": "held"}).split(None, 1)[1]) == {
        "id": 4,
        "state": "held",
    }


def test_control_oversize_request_is_refused_then_disconnected(harness: Harness) -> None:
    with _raw_control(b"") as s:
        s.settimeout(10)
        chunk = b"x" * 65536
        sent = 0
        try:
            while sent <= ipc.MAX_REQUEST + len(chunk):
                s.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while True:
                part = s.recv(65536)
                if not part:
                    break
                data += part
        except ConnectionResetError:
            pass
    reply = json.loads(data.splitlines()[0])
    assert reply["ok"] is False and "longer than" in reply["error"]
    with ControlClient(paths.ipc_socket()) as c:
        assert c.request("ping")["name"] == "zionwm"


def test_emit_never_raises_when_the_controller_fails(harness: Harness) -> None:
    with ControlClient(paths.ipc_socket(), timeout=10) as c:
        c.request("subscribe", events=["switch"])
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.settimeout(5)
        raw.connect(str(paths.sway_ipc_socket()))
        payload = b'["workspace"]'
        raw.sendall(sway.I3_MAGIC + struct.pack("=II", len(payload), sway.SUBSCRIBE) + payload)
        assert raw.recv(100).endswith(b'{"success": true}')  # sway's literal reply

        def broken() -> list[dict[str, Any]]:
            raise RuntimeError("torn down")

        harness.comp.desktops = broken  # type: ignore[method-assign]
        ev = {"old": "personal", "new": "work"}
        # Each server on its own, as the compositor's own fan-out calls them.
        harness.on_loop(lambda: harness.hub.sway.emit("switch", ev))
        harness.on_loop(lambda: harness.hub.control.emit("switch", ev))
        # The control socket still delivered it.
        assert next(c.events(["switch"]))["payload"]["new"] == "work"
        raw.close()


def test_controller_exception_is_an_error_reply(harness: Harness) -> None:
    def broken() -> list[dict[str, Any]]:
        raise RuntimeError("boom")

    harness.comp.windows = broken  # type: ignore[method-assign]
    with ControlClient(paths.ipc_socket()) as c:
        with pytest.raises(Exception, match="internal error: RuntimeError: boom"):
            c.request("windows")
        assert len(c.request("desktops")) == 3


def test_subscriber_that_never_reads_is_disconnected_without_blocking(runtime: Path) -> None:
    h = Harness(runtime, max_pending=64 * 1024)
    try:
        lazy = _raw_control(b'{"id": 1, "type": "subscribe", "events": ["*"]}\n')
        lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert _read_lines(lazy, 1)[0]["ok"]
        reader = ControlClient(paths.ipc_socket())
        got: list[int] = []
        stream = reader.events(["notification"])

        def read_all() -> None:
            for msg in stream:
                got.append(msg["payload"]["n"])
                if msg["payload"]["n"] == 1999:
                    return

        t = threading.Thread(target=read_all, daemon=True)
        t.start()
        wait_for(lambda: h.subscribers(h.hub.control) == 2, what="two subscribers")
        payload = {"message": "y" * 900}

        def burst(first: int) -> float:
            start = time.monotonic()
            for n in range(first, first + 50):
                h.hub.emit("notification", {**payload, "n": n})
            return time.monotonic() - start

        elapsed = 0.0
        for first in range(0, 2000, 50):
            elapsed += h.on_loop(functools.partial(burst, first))
            # The reading subscriber keeps up between bursts, as a live client would.
            wait_for(functools.partial(lambda n: len(got) >= n, first + 50), what="reader")
        # 2 MB of events to a client that reads nothing: well past 64 KiB + socket buffers.
        assert h.on_loop(lambda: len(h.hub.control.clients)) == 1
        assert elapsed < 5.0
        t.join(20)
        assert got == list(range(2000))  # the reading subscriber lost nothing
        lazy.settimeout(5)
        drained = 0
        while chunk := lazy.recv(65536):
            drained += len(chunk)
        assert drained < 2000 * 900  # cut off, not delivered in full
        lazy.close()
        reader.close()
    finally:
        h.close()


# --------------------------------------------------------------------------------------------
# The sway/i3 protocol: pure parts


def test_split_sway_commands() -> None:
    assert sway.split_sway_commands('workspace "my desk"; nop, workspace number 2') == [
        ["workspace", "my desk"],
        ["nop"],
        ["workspace", "number", "2"],
    ]
    assert sway.split_sway_commands('[app_id=foot title="a b"] kill') == [
        ['[app_id=foot title="a b"]', "kill"]
    ]
    assert sway.split_sway_commands("  ;; ") == []
    assert sway.split_sway_commands("workspace 'a;b'") == [["workspace", "a;b"]]


def test_resolve_workspace_command() -> None:
    desks = [
        {"name": "personal", "active": False},
        {"name": "work", "active": True},
        {"name": "web", "active": False},
    ]
    r = sway.resolve_workspace_command
    assert r(["web"], desks) == ["switch", "web"]
    assert r(["--no-auto-back-and-forth", "personal"], desks) == ["switch", "personal"]
    assert r(["work"], desks) == []  # already there: success, nothing to do
    assert r(["number", "3"], desks) == ["switch", "web"]
    assert r(["number", "1:personal"], desks) == ["switch", "personal"]
    assert r(["3"], desks) == ["switch", "web"]
    assert r(["next"], desks) == ["switch", "web"]
    assert r(["prev"], desks) == ["switch", "personal"]
    on_web = [{**d, "active": d["name"] == "web"} for d in desks]
    assert r(["next_on_output"], on_web) == [
        "switch",
        "personal",
    ]
    assert r(["back_and_forth"], desks) == ["switch-prev"]
    assert isinstance(r(["number", "9"], desks), str)
    assert "no desktop named 'gaming'" in str(r(["gaming"], desks))
    assert isinstance(r([], desks), str)


# --------------------------------------------------------------------------------------------
# swaymsg (Debian's sway package)


@needs_swaymsg
def test_swaymsg_get_workspaces_and_switch(harness: Harness) -> None:
    out = swaymsg("-t", "get_workspaces")
    assert out.returncode == 0, out.stderr
    workspaces = json.loads(out.stdout)
    assert [(w["num"], w["name"]) for w in workspaces] == [(1, "personal"), (2, "work"), (3, "web")]
    assert [w["focused"] for w in workspaces] == [True, False, False]
    assert all(w["output"] == "HEADLESS-1" for w in workspaces)
    assert workspaces[0]["rect"] == {"x": 0, "y": 0, "width": 1280, "height": 720}

    out = swaymsg("workspace", "work")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"success": True}]
    assert harness.comp.active == "work"
    focused = [
        w["name"] for w in json.loads(swaymsg("-t", "get_workspaces").stdout) if w["focused"]
    ]
    assert focused == ["work"]

    assert swaymsg("workspace", "number", "3").returncode == 0 and harness.comp.active == "web"
    assert swaymsg("workspace", "back_and_forth").returncode == 0
    assert harness.comp.active == "work"
    out = swaymsg("workspace", "gaming")
    assert out.returncode == 2
    assert json.loads(out.stdout)[0]["success"] is False
    assert harness.comp.active == "work"
    out = swaymsg("workspace web; workspace nope")
    assert out.returncode == 2
    assert [r["success"] for r in json.loads(out.stdout)] == [True, False]


@needs_swaymsg
def test_waybar_workspace_commands(harness: Harness) -> None:
    """The exact commands waybar's sway/workspaces module sends on a click (waybar 0.9)."""
    out = swaymsg('workspace --no-auto-back-and-forth "work"')
    assert out.returncode == 0, out.stdout
    assert harness.comp.active == "work"
    out = swaymsg('workspace  "web"')
    assert out.returncode == 0 and harness.comp.active == "web"
    persistent = (
        'workspace --no-auto-back-and-forth "personal"; move workspace to output "HEADLESS-1"; '
        'workspace --no-auto-back-and-forth "personal"'
    )
    out = swaymsg(persistent)
    assert out.returncode == 0, out.stdout
    assert harness.comp.active == "personal"
    # waybar builds its buttons from GET_TREE: root -> outputs -> workspaces (+ floating).
    tree = json.loads(swaymsg("-t", "get_tree").stdout)
    output = tree["nodes"][0]
    assert output["name"] == "HEADLESS-1" and output["floating_nodes"] == []
    assert [w["name"] for w in output["nodes"]] == ["personal", "work", "web"]
    assert all(w["type"] == "workspace" and "floating_nodes" in w for w in output["nodes"])


@needs_swaymsg
def test_swaymsg_pretty_output_and_other_types(harness: Harness) -> None:
    out = swaymsg("-p", "-t", "get_workspaces")
    assert out.returncode == 0, out.stderr
    assert "Workspace personal (focused)" in out.stdout
    assert "Workspace work (off-screen)" in out.stdout
    out = swaymsg("-p", "-t", "get_outputs")
    assert "Output HEADLESS-1" in out.stdout and "1280x720" in out.stdout, out.stdout
    out = swaymsg("-p", "-t", "get_tree")
    assert out.returncode == 0, out.stderr
    if out.stdout.startswith("{"):  # sway 1.7's swaymsg prints the tree as JSON even with -p
        tree = json.loads(out.stdout)
        work = tree["nodes"][0]["nodes"][1]
        assert (work["name"], work["nodes"][0]["name"]) == ("work", "shell")
    else:
        assert 'workspace "work"' in out.stdout and 'con "shell"' in out.stdout, out.stdout
        assert 'app_id: "foot"' in out.stdout
    out = swaymsg("-p", "-t", "get_version")
    assert "zionwm" in out.stdout
    for msg_type, expected in (
        ("get_marks", []),
        ("get_bar_config", []),
        ("get_binding_modes", ["default"]),
        ("get_binding_state", {"name": "default"}),
        ("get_inputs", []),
        ("get_seats", []),
        ("send_tick", {"success": True}),
    ):
        out = swaymsg("-t", msg_type)
        assert out.returncode == 0, (msg_type, out.stderr)
        assert json.loads(out.stdout) == expected, msg_type
    assert "config" in json.loads(swaymsg("-t", "get_config").stdout)


@needs_swaymsg
def test_swaymsg_subscribe_receives_workspace_focus(harness: Harness) -> None:
    assert SWAYMSG is not None
    proc = subprocess.Popen(
        [SWAYMSG, "-s", str(paths.sway_ipc_socket()), "-t", "subscribe", '["workspace"]'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: harness.subscribers(harness.hub.sway) == 1, what="swaymsg subscribe")
        assert swaymsg("workspace", "web").returncode == 0
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    event = json.loads(out)
    assert event["change"] == "focus"
    assert event["current"]["name"] == "web" and event["old"]["name"] == "personal"
    assert event["current"]["nodes"][0]["app_id"] == "firefox"


# --------------------------------------------------------------------------------------------
# The i3ipc library


def test_i3ipc_lists_switches_and_reads_the_tree(
    harness: Harness, i3connect: Callable[[str], Any]
) -> None:
    conn = i3connect(str(paths.sway_ipc_socket()))
    names = [w.name for w in conn.get_workspaces()]
    assert names == ["personal", "work", "web"]
    assert [w.num for w in conn.get_workspaces()] == [1, 2, 3]
    tree = conn.get_tree()
    assert [w.name for w in tree.workspaces()] == names
    assert sorted(c.app_id for c in tree.leaves()) == ["firefox", "foot"]
    work = tree.find_named("^work$")[0]
    assert work.type == "workspace" and work.nodes[0].name == "shell"
    assert work.nodes[0].rect.width == 640
    assert work.nodes[0].workspace().name == "work"
    assert tree.find_focused() is not None
    assert conn.get_outputs()[0].current_workspace == "personal"
    version = conn.get_version()
    assert "zionwm" in version.human_readable and version.major == 0

    reply = conn.command("workspace number 2")
    assert reply[0].success and harness.comp.active == "work"
    reply = conn.command("workspace nowhere")
    assert not reply[0].success and "nowhere" in reply[0].error
    assert conn.get_tree().find_focused().name == "shell"


def test_i3ipc_receives_workspace_and_window_events(
    harness: Harness, i3connect: Callable[[str], Any]
) -> None:
    conn = i3connect(str(paths.sway_ipc_socket()))
    seen: list[tuple[str, str, str | None]] = []
    done = threading.Event()

    def on_workspace(_c: object, e: Any) -> None:
        seen.append(("workspace", e.change, e.current.name))

    def on_window(_c: object, e: Any) -> None:
        seen.append(("window", e.change, e.container.app_id))
        if e.change == "close":
            done.set()

    conn.on("workspace::focus", on_workspace)
    conn.on("window", on_window)
    loop = threading.Thread(target=conn.main, daemon=True)
    loop.start()
    try:
        wait_for(lambda: harness.subscribers(harness.hub.sway) == 1, what="i3ipc subscription")
        other = i3connect(str(paths.sway_ipc_socket()))
        assert other.command("workspace web")[0].success
        win = {"id": 12, "app_id": "imv", "title": "pic", "desktop": "web", "focused": True,
               "x": 1, "y": 2, "width": 300, "height": 200}  # fmt: skip
        harness.emit("map", win)
        harness.emit("title", {**win, "title": "pic 2"})
        harness.emit("unmap", win)
        assert done.wait(10), seen
    finally:
        stop_main(conn, loop)
    assert seen == [
        ("workspace", "focus", "web"),
        ("window", "new", "imv"),
        ("window", "title", "imv"),
        ("window", "close", "imv"),
    ]


def _raw_i3(data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(paths.sway_ipc_socket()))
        s.sendall(data)
        got = b""
        try:
            while chunk := s.recv(65536):
                got += chunk
                if len(got) >= 14 and len(got) >= 14 + struct.unpack("=I", got[6:10])[0]:
                    break
        except ConnectionResetError:
            pass
        return got


def test_i3_malformed_input(harness: Harness) -> None:
    assert _raw_i3(b"not-i3-at-all, at all") == b""  # bad magic: disconnected
    header = sway.I3_MAGIC + struct.pack("=II", ipc.MAX_REQUEST + 1, sway.RUN_COMMAND)
    assert _raw_i3(header) == b""  # oversize: disconnected before reading the payload
    reply = _raw_i3(sway.I3_MAGIC + struct.pack("=II", 2, sway.RUN_COMMAND) + b"\xff\xfe")
    assert json.loads(reply[14:]) == {"success": False, "error": "payload is not UTF-8"}
    reply = _raw_i3(sway.I3_MAGIC + struct.pack("=II", 3, sway.SUBSCRIBE) + b"[x]")
    assert json.loads(reply[14:])["success"] is False
    reply = _raw_i3(sway.I3_MAGIC + struct.pack("=II", 0, 77))
    assert struct.unpack("=I", reply[10:14])[0] == 77
    assert "unsupported message type 77" in json.loads(reply[14:])["error"]
    # A request split into single bytes is reassembled.
    msg = sway.I3_MAGIC + struct.pack("=II", 0, sway.GET_VERSION)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(paths.sway_ipc_socket()))
        for b in msg:
            s.sendall(bytes([b]))
        head = s.recv(14, socket.MSG_WAITALL)
        body = s.recv(struct.unpack("=I", head[6:10])[0], socket.MSG_WAITALL)
    assert json.loads(body)["variant"] == "zionwm"


def test_desktop_added_sends_workspace_init(
    harness: Harness, i3connect: Callable[[str], Any]
) -> None:
    conn = i3connect(str(paths.sway_ipc_socket()))
    seen: list[tuple[str, str | None]] = []
    got = threading.Event()

    def on_ws(_c: object, e: Any) -> None:
        seen.append((e.change, e.current.name if e.current else None))
        got.set()

    conn.on("workspace", on_ws)
    loop = threading.Thread(target=conn.main, daemon=True)
    loop.start()
    try:
        wait_for(lambda: harness.subscribers(harness.hub.sway) == 1, what="i3ipc subscription")

        def add_desktop() -> None:
            harness.comp.names.append("gaming")
            harness.comp.names.remove("web")
            harness.hub.emit("desktops", {})

        harness.on_loop(add_desktop)
        wait_for(lambda: len(seen) >= 2, what="init and empty events")
    finally:
        stop_main(conn, loop)
    assert ("init", "gaming") in seen and ("empty", "web") in seen


def test_subscribe_reply_is_swaylike_to_the_byte() -> None:
    """waybar 0.9 compares the SUBSCRIBE reply with sway's literal text instead of parsing."""
    frame = sway.i3_frame(sway.SUBSCRIBE, {"success": True})
    assert frame.endswith(b'{"success": true}')
    assert sway.i3_frame(sway.SUBSCRIBE, {"success": False, "error": "x"}).endswith(b'"x"}')
