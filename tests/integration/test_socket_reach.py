"""A program in one desktop tries to reach every socket that is not its own.

The attacker (tests/system/reach_probe.py) runs inside a real sandbox of the web desktop of
the running compositor, started with `zionctl launch` as a user's program is. Its targets
are all live, and each is first reached from the host to prove it: the compositor's control
and sway IPC sockets, the host Wayland socket, another desktop's Wayland and X11 sockets,
the quarantine service, a real session bus (dbus-daemon) in the compositor's runtime
directory, a real system bus (dbus-daemon --system) at /run/dbus/system_bus_socket, and a
real X server of the host (Xwayland) by path and by abstract name.

The system bus lives in a private mount namespace made for this compositor, so that a bus
at the standard path exists for it and its sandboxes without touching the machine's /run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Compositor, require, wait_for

PROBE = Path(__file__).resolve().parents[1] / "system" / "reach_probe.py"
SYSTEM_BUS = "/run/dbus/system_bus_socket"

CONFIG = """\
from zionwm.config import desktop, Downloads
desktop("personal", colour="#3b82f6", x11=True)
desktop("web", colour="#ef4444", x11=True, network="full",
        downloads=Downloads(release_to="personal", hold=0))
desktop("offline", colour="#a855f7", network="none")
"""

# Runs as the compositor's argv prefix: a private mount namespace with its own /run/dbus and
# a real system bus in it, then exec zionwm (its pid stays the one the harness watches).
WRAP = r"""
set -e
mkdir -p /run/dbus
mount -t tmpfs -o mode=0755,nosuid,nodev zt-dbus /run/dbus
dbus-daemon --system --fork --print-pid=1 > "$ZT_DBUS_PID"
exec "$@"
"""


def _connect(address: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        try:
            s.connect(address)
        except OSError:
            return False
        return True


class Targets:
    """The live sockets of one compositor, and the processes this test started for them."""

    def __init__(self, root: Path) -> None:
        for tool in ("dbus-daemon", "unshare", "Xwayland"):
            require(tool)
        self.root = root
        self.dbus_pid_file = root / "system-bus.pid"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.comp = Compositor(
            root,
            config_text=CONFIG,
            wrap=("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", WRAP, "sh"),
            extra_env={"ZT_DBUS_PID": str(self.dbus_pid_file)},
        )
        # The session's own bus, where a desktop session puts it: $XDG_RUNTIME_DIR/bus.
        self.session_bus = self.comp.runtime / "bus"
        self.comp.env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={self.session_bus}"

    def start(self) -> Targets:
        self.procs.append(
            subprocess.Popen(
                ["dbus-daemon", "--session", "--nofork", "--nopidfile",
                 f"--address=unix:path={self.session_bus}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        wait_for(lambda: _connect(str(self.session_bus)), 20, "the session bus")
        self.comp.start()
        # Not display 0: inside an x11 desktop's sandbox /tmp/.X11-unix/X0 is its own server.
        self.display = self._host_x_server()
        self.host_x = f"/tmp/.X11-unix/X{self.display}"
        return self

    def _host_x_server(self) -> int:
        """Start a real X server on the host socket at a free display number; return it."""
        for n in range(150, 400):
            if os.path.lexists(f"/tmp/.X{n}-lock") or os.path.lexists(f"/tmp/.X11-unix/X{n}"):
                continue
            x = self.comp.client(["Xwayland", f":{n}", "-noreset"], stderr=subprocess.DEVNULL)
            # another X server may take the number first: then this one exits, try the next
            up = wait_for(
                lambda x=x, n=n: "up" if _connect(f"/tmp/.X11-unix/X{n}") else x.poll() is not None,
                20,
                f"Xwayland :{n} to listen or give up",
            )
            if up == "up":
                self.procs.append(x)
                return n
        raise AssertionError("no free X display number between 150 and 400")

    def stop(self) -> None:
        # SIGTERM first and waited for: Xwayland removes its lock file and socket only then
        # (the harness kills clients outright), or the next run would find them.
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        try:
            self.comp.stop()
        finally:
            if self.dbus_pid_file.exists():
                pid = int(self.dbus_pid_file.read_text().split()[0])
                # the system bus this test started, in the compositor's mount namespace
                with contextlib.suppress(OSError):
                    if b"dbus-daemon" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        os.kill(pid, signal.SIGTERM)

    def in_mount_ns(self, *argv: str) -> subprocess.CompletedProcess[str]:
        assert self.comp.proc is not None
        return subprocess.run(
            ["nsenter", "-t", str(self.comp.proc.pid), "-m", "--", *argv],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    t = Targets(tmp_path_factory.mktemp("reach"))
    try:
        yield t.start()
    finally:
        t.stop()


def _attack(comp: Compositor, desktop: str, targets: list[str]) -> dict[str, Any]:
    """Run the probe in a sandbox of `desktop`; its answer lands in that desktop's home."""
    home = comp.desktop_home(desktop)
    out = home / "reach.json"
    out.unlink(missing_ok=True)
    comp.zionctl(
        "launch", desktop, "--", "/usr/bin/python3", "-c", PROBE.read_text(), "reach.json",
        *targets,
    )  # fmt: skip
    wait_for(out.exists, 30, f"the probe's answer from {desktop}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


@pytest.mark.security
@pytest.mark.parametrize("attacker", ["web", "offline"])
def test_a_desktop_reaches_no_socket_but_its_own(targets: Targets, attacker: str) -> None:
    """From web (X11, full network) and from offline (no X11, no network namespace of a
    desktop: bwrap's own empty one)."""
    comp = targets.comp
    zion = comp.runtime / "zionwm"
    quarantine = zion / "quarantine.sock"
    wait_for(lambda: _connect(str(quarantine)), 30, "the quarantine service's socket")
    hostile = {
        "control socket": f"path:{zion / 'ipc.sock'}",
        "sway IPC socket": f"path:{zion / 'sway-ipc.sock'}",
        "another desktop's Wayland socket": f"path:{zion / 'personal' / 'wayland-0'}",
        "the host Wayland socket": f"path:{comp.runtime / comp.socket_name}",
        "the session bus": f"path:{targets.session_bus}",
        "the system bus": f"path:{SYSTEM_BUS}",
        "the quarantine service": f"path:{quarantine}",
        "another desktop's X11 socket": f"path:{zion / 'personal' / 'x11' / 'X0'}",
        "the host X server by path": f"path:{targets.host_x}",
        "the host X server by abstract name": f"abstract:{targets.host_x}",
        "X0 by abstract name": "abstract:/tmp/.X11-unix/X0",
    }
    # Every target is live: reached from the host (the system bus from the compositor's
    # mount namespace, where it is), except the abstract X0 that no server of this test has.
    for what, target in hostile.items():
        kind, _, name = target.partition(":")
        if what == "the system bus":
            done = targets.in_mount_ns("/usr/bin/python3", "-c", PROBE.read_text(),
                                       str(targets.root / "sysbus.json"), target)  # fmt: skip
            assert done.returncode == 0, done.stderr
            seen = json.loads((targets.root / "sysbus.json").read_text())[target]
            assert seen["ok"], f"{what} is not live for the compositor: {seen}"
        elif what != "X0 by abstract name":
            address = name if kind == "path" else "\0" + name
            assert _connect(address), f"{what} ({name}) is not live on the host"
    result = _attack(comp, attacker, [*hostile.values()])
    env = result.pop("_env")
    reached = {what: result[t] for what, t in hostile.items() if result[t]["ok"]}
    assert not reached, f"reached from inside the {attacker} desktop: {reached}"
    assert env.get("DISPLAY") == (":0" if attacker == "web" else None), env
    bus = env.get("DBUS_SESSION_BUS_ADDRESS", "")
    assert str(targets.session_bus) not in bus, env


def test_the_probe_reaches_what_a_sandbox_may_reach(targets: Targets) -> None:
    """The attacker is able: inside, its own desktop's sockets answer it."""
    result = _attack(targets.comp, "web", ["path:/tmp/.X11-unix/X0"])
    env = result.pop("_env")
    assert result["path:/tmp/.X11-unix/X0"]["ok"], result
    wayland = env.get("WAYLAND_DISPLAY", "wayland-0")
    runtime = env.get("XDG_RUNTIME_DIR", "")
    path = wayland if wayland.startswith("/") else f"{runtime}/{wayland}"
    result = _attack(targets.comp, "web", [f"path:{path}"])
    result.pop("_env")
    assert result[f"path:{path}"]["ok"], (env, result)
