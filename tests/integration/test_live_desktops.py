"""Desktops created, changed and deleted while zionwm runs: real compositor, real clients,
real sandboxes and cgroups, the real desktops file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.harness import VENV_BIN, Compositor, colour_near, require, wait_for
from zionwm.ctl import ControlClient
from zionwm.desktops_store import HOLD_ENV

CONFIG = """\
from zionwm.config import desktop, Network
desktop("personal", colour="#3b82f6")
desktop("work", colour="#22c55e", network=Network.none())
"""
QUIET = {"ZIONWM_NO_QUARANTINE": "1", "PYTHONFAULTHANDLER": "1"}


def _file(comp: Compositor) -> Path:
    return comp.config_dir / "zionwm" / "desktops.toml"


def _kernel_memory_max(pid: int) -> int | None:
    """The memory limit the kernel holds for `pid`'s cgroup (v1 memory controller or v2)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            text = Path(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes").read_text()
            return int(text)
        if controllers == "" and Path(f"/sys/fs/cgroup{path}/memory.max").exists():
            text = Path(f"/sys/fs/cgroup{path}/memory.max").read_text().strip()
            return None if text == "max" else int(text)
    return None


def _cgroups_or_skip(comp: Compositor, desktop: str) -> None:
    if not comp.desktops()[desktop].get("cgroup"):
        pytest.skip(
            "no writable cgroups on this machine: "
            + "; ".join(comp.zjson("status")["cgroups"].get("problems", []))
        )


def _frame_colour_is(comp: Compositor, win: dict[str, Any], colour: str) -> bool:
    return colour_near(comp.screenshot().getpixel((win["x"] - 1, win["y"] + 20)), colour)


def test_a_created_desktop_frames_its_client_and_takes_new_limits_while_it_runs(
    make_compositor: Any,
) -> None:
    require("weston-simple-shm")
    comp = make_compositor(CONFIG, extra_env=QUIET)
    comp.zionctl("desktop", "create", "banking", "--colour", "#f59e0b", "--memory-max", "256M")
    assert "banking" in comp.desktops()
    _cgroups_or_skip(comp, "banking")
    comp.zionctl("switch", "banking")
    out = comp.zionctl("launch", "banking", "--", "weston-simple-shm").stdout
    pid = int(out.rsplit("pid ", 1)[1].rstrip(")\n"))
    (win,) = comp.wait_window("banking")
    wait_for(lambda: _frame_colour_is(comp, win, "#f59e0b"), 10, "the frame in banking's colour")
    assert _kernel_memory_max(pid) == 256 << 20

    r = comp.zionctl("desktop", "set", "banking", "memory_max=384M", "colour=#14b8a6")
    assert "applied now" in r.stdout
    assert _kernel_memory_max(pid) == 384 << 20, "the new limit did not reach the kernel"
    assert os.path.exists(f"/proc/{pid}"), "the program was stopped by the change"
    assert [w["id"] for w in comp.windows("banking")] == [win["id"]]
    wait_for(lambda: _frame_colour_is(comp, win, "#14b8a6"), 10, "the frame in the new colour")

    r = comp.zionctl("desktop", "set", "banking", "gpu=yes")
    assert "next start" in r.stdout
    shown = comp.zjson("desktop", "show", "banking")
    rows = {s["key"]: s for s in shown["settings"]}
    assert (rows["memory_max"]["value"], rows["memory_max"]["layer"]) == ("384M", "run-time")
    assert rows["gpu"]["applies"] == "at next start"
    assert rows["network"]["layer"] == "default"
    assert shown["paths"]["home"].endswith("/desktops/banking/home")
    saved = tomllib.loads(_file(comp).read_text())
    assert saved["desktops"]["banking"] == {
        "colour": "#14b8a6",
        "memory_max": "384M",
        "gpu": True,
    }


def test_changes_to_a_config_desktop_are_overrides_and_config_py_is_untouched(
    make_compositor: Any,
) -> None:
    comp = make_compositor(CONFIG, extra_env=QUIET)
    assert comp.config_path is not None
    before = comp.config_path.read_bytes()
    comp.zionctl("desktop", "set", "work", "memory-max=1G")
    rows = {s["key"]: s for s in comp.zjson("desktop", "show", "work")["settings"]}
    assert (rows["memory_max"]["value"], rows["memory_max"]["layer"]) == ("1G", "run-time")
    assert (rows["colour"]["value"], rows["colour"]["layer"]) == ("#22c55e", "config.py")
    assert tomllib.loads(_file(comp).read_text())["overrides"] == {"work": {"memory_max": "1G"}}
    # a reload keeps the override; config.py is never rewritten
    comp.zionctl("reload")
    rows = {s["key"]: s for s in comp.zjson("desktop", "show", "work")["settings"]}
    assert rows["memory_max"]["value"] == "1G"
    assert comp.config_path.read_bytes() == before
    r = comp.zionctl("desktop", "delete", "work", check=False)
    assert r.returncode == 1 and "config.py" in r.stderr
    comp.zionctl("desktop", "unset", "work", "memory_max")
    rows = {s["key"]: s for s in comp.zjson("desktop", "show", "work")["settings"]}
    assert (rows["memory_max"]["value"], rows["memory_max"]["layer"]) == ("none", "default")


def test_delete_keeps_the_home_until_restored(make_compositor: Any) -> None:
    comp = make_compositor(CONFIG, extra_env=QUIET)
    comp.zionctl("desktop", "create", "scratch", "--colour", "#ec4899")
    _cgroups_or_skip(comp, "scratch")
    home = comp.desktop_home("scratch")
    comp.zionctl("launch", "scratch", "--", "sh", "-c", "echo kept > ~/note; exec sleep 300")
    wait_for((home / "note").exists, 20, "the program to write into its home")
    sleeper = wait_for(lambda: comp.desktops()["scratch"]["cgroup"]["pids"], 10, "it to run")

    r = comp.zionctl("desktop", "delete", "scratch", check=False)
    assert r.returncode == 1 and "running" in r.stderr and "--stop" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "scratch" in comp.desktops() and (home / "note").exists()

    events = _Subscriber(comp, ["desktop-created", "desktop-deleted"])
    r = comp.zionctl("desktop", "delete", "scratch", "--stop")
    assert "kept in" in r.stdout
    assert "scratch" not in comp.desktops()
    assert not comp.desktop_socket("scratch").exists()
    assert not home.exists()
    (gone,) = comp.zjson("desktop", "deleted")["deleted"]
    assert gone["name"] == "scratch"
    assert (Path(gone["path"]) / "home" / "note").read_text() == "kept\n"
    assert sleeper
    events.wait(lambda e: e["event"] == "desktop-deleted" and e["payload"]["name"] == "scratch")

    comp.zionctl("desktop", "restore", gone["id"])
    assert comp.desktops()["scratch"]["colour"] == "#ec4899"
    assert (home / "note").read_text() == "kept\n"
    assert comp.zjson("desktop", "deleted")["deleted"] == []
    events.wait(lambda e: e["event"] == "desktop-created" and e["payload"]["name"] == "scratch")
    events.close()
    # a client can use the restored desktop at once
    comp.zionctl("launch", "scratch", "--", "sh", "-c", "cat ~/note > ~/again")
    wait_for((home / "again").exists, 20, "the restored desktop to run a program")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("create", "bad", "--memory-max", "lots"), "is not a size"),
        (("create", "bad", "--template", "nope"), "no template named 'nope'"),
        (("create", "one"), "already exists"),
        (("create", "work"), "already exists"),
        (("create", "a/b"), "not a valid name"),
        (("create", "bad", "--network", "filtered:not a host"), "not a host name"),
        (("create", "bad", "--downloads-to", "nowhere"), "release_to names 'nowhere'"),
        (("set", "one", "cpu_max=fast"), "is not a CPU share"),
        (("set", "work", "memory_high=2G", "memory_max=1G"), "above memory_max"),
        (("set", "one", "gpu=perhaps"), "yes or no"),
        (("set", "one", "colur=#ffffff"), "did you mean 'colour'"),
        (("set", "nosuch", "gpu=yes"), "no desktop named 'nosuch'"),
    ],
)
def test_a_bad_value_is_one_clear_line_and_changes_nothing(
    make_compositor: Any, args: tuple[str, ...], needle: str
) -> None:
    comp = make_compositor(CONFIG, extra_env=QUIET)
    comp.zionctl("desktop", "create", "one", "--colour", "#f59e0b", "--memory-max", "1G")
    before = _file(comp).read_bytes()
    desktops = comp.desktops()
    r = comp.zionctl("desktop", *args, check=False)
    assert r.returncode == 1
    assert needle in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert _file(comp).read_bytes() == before
    tomllib.loads(before.decode())
    assert comp.desktops() == desktops
    assert comp.alive()


@pytest.mark.slow
def test_kill9_while_writing_the_desktops_file_leaves_the_old_file(make_compositor: Any) -> None:
    """The compositor is SIGKILLed half way through writing the new file (the writer holds
    there for the test); at the next start the file is the old version, whole."""
    comp = make_compositor(CONFIG, extra_env=QUIET)
    comp.zionctl("desktop", "create", "one", "--colour", "#f59e0b")
    old = _file(comp).read_bytes()
    comp.stop()
    marker = comp.root / "held"
    comp.env[HOLD_ENV] = str(marker)
    comp.start()
    writer = subprocess.Popen(
        [str(VENV_BIN / "zionctl"), "desktop", "create", "two", "--colour", "#14b8a6"],
        env=comp.host_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(marker.exists, 20, "the compositor to be half way through its write")
        assert comp.proc is not None
        comp.proc.send_signal(signal.SIGKILL)
        comp.proc.wait()
    finally:
        writer.wait(30)
    torn = Path(marker.read_text())
    assert torn.exists() and torn.parent == _file(comp).parent, "not killed mid-write"
    assert _file(comp).read_bytes() == old
    del comp.env[HOLD_ENV]
    comp._log.close()
    comp.start()
    assert not torn.exists(), "the torn temporary file was left behind"
    names = list(comp.desktops())
    assert "one" in names and "two" not in names
    comp.zionctl("desktop", "create", "two", "--colour", "#14b8a6")
    assert set(tomllib.loads(_file(comp).read_text())["desktops"]) == {"one", "two"}


def _net(comp: Compositor, desktop: str) -> tuple[str, str | None]:
    d = comp.desktops()[desktop]
    net = d.get("net") or {}
    return d["network"], net.get("policy")


def test_a_temporary_network_grant_reverts_by_itself_also_across_a_restart(
    make_compositor: Any,
) -> None:
    comp = make_compositor(CONFIG, extra_env=QUIET)
    if comp.zjson("status").get("network") == "unavailable":
        pytest.skip("network namespaces are unavailable on this machine")
    events = _Subscriber(comp, ["desktop-changed"])
    r = comp.zionctl("net", "work", "on", "--for", "2s")
    assert "until" in r.stdout
    assert _net(comp, "work") == ("full", "full"), "the grant did not reach the namespace"
    wait_for(lambda: _net(comp, "work") == ("none", "none"), 30, "the grant to end by itself")
    assert "grants" not in tomllib.loads(_file(comp).read_text())
    events.wait(lambda e: e["payload"]["changed"].get("network") == ["none", "full"])
    events.wait(lambda e: e["payload"]["changed"].get("network") == ["full", "none"])
    events.close()
    # and the other way: cut for a while, then back
    comp.zionctl("desktop", "set", "personal", "network=full")
    comp.zionctl("launch", "personal", "--", "sleep", "60")
    wait_for(lambda: _net(comp, "personal") == ("full", "full"), 20, "personal's network")
    comp.zionctl("net", "personal", "off", "--for", "2s")
    assert _net(comp, "personal") == ("none", "none")
    wait_for(lambda: _net(comp, "personal") == ("full", "full"), 30, "the cut to end")

    # across a restart: the expiry is kept in the file
    comp.zionctl("net", "work", "on", "--for", "6s")
    until = tomllib.loads(_file(comp).read_text())["grants"]["work"]["until"]
    comp.stop()
    comp.start()
    if time.time() < until - 1:
        assert _net(comp, "work")[0] == "full", "the grant was lost by the restart"
    wait_for(lambda: comp.desktops()["work"]["network"] == "none", 30, "the grant to end")
    assert time.time() >= until
    assert "grants" not in tomllib.loads(_file(comp).read_text())
    r = comp.zionctl("net", "work", "on", "--for", "soon", check=False)
    assert r.returncode == 1 and "not a duration" in r.stderr


class _Subscriber:
    """A control-socket subscriber on its own thread, collecting events."""

    def __init__(self, comp: Compositor, names: list[str]) -> None:
        self.client = ControlClient(comp.runtime / "zionwm" / "ipc.sock")
        self.events: list[dict[str, Any]] = []
        self.client.request("subscribe", events=names)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.client._sock.settimeout(None)
        try:
            while (msg := self.client._receive()) is not None:
                if "event" in msg:
                    self.events.append(msg)
        except Exception:
            pass  # closed by close()

    def wait(self, pred: Any, timeout: float = 15) -> dict[str, Any]:
        return wait_for(
            lambda: next((e for e in list(self.events) if pred(e)), None), timeout, "an event"
        )

    def close(self) -> None:
        # shut the socket down first: that ends the reader thread's readline, which holds
        # the buffered reader's lock that close() needs
        self.client._sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(10)
        self.client.close()


def test_the_event_stream_reports_desktop_changes_and_usage_only_while_asked(
    make_compositor: Any,
) -> None:
    comp = make_compositor(CONFIG, extra_env=QUIET)
    everything = _Subscriber(comp, ["*"])
    comp.zionctl("desktop", "create", "ev", "--colour", "#f59e0b")
    created = everything.wait(lambda e: e["event"] == "desktop-created")
    assert created["payload"]["name"] == "ev"
    assert created["payload"]["settings"]["colour"] == "#f59e0b"
    comp.zionctl("desktop", "set", "ev", "pids_max=50")
    changed = everything.wait(lambda e: e["event"] == "desktop-changed")
    assert changed["payload"]["changed"] == {"pids_max": ["none", "50"]}
    comp.zionctl("freeze", "ev")
    everything.wait(lambda e: e["event"] == "freeze" and e["payload"]["desktop"] == "ev")
    comp.zionctl("thaw", "ev")
    everything.wait(lambda e: e["event"] == "thaw" and e["payload"]["desktop"] == "ev")

    # usage is sampled only while a client asks for it by name ("*" does not start it)
    assert comp.zjson("status")["usage_sampling"] is False
    comp.zionctl("launch", "ev", "--", "sh", "-c", "while :; do :; done")
    usage = _Subscriber(comp, ["usage"])
    wait_for(lambda: comp.zjson("status")["usage_sampling"], 10, "sampling to start")
    sample = usage.wait(
        lambda e: e["event"] == "usage" and (e["payload"]["desktops"]["ev"]["cpu_percent"] or 0) > 5
    )
    ev = sample["payload"]["desktops"]["ev"]
    assert ev["pids"] >= 1 and ev["memory_bytes"] > 0
    assert set(sample["payload"]["desktops"]) == {"personal", "work", "ev"}
    usage.close()
    wait_for(lambda: not comp.zjson("status")["usage_sampling"], 10, "sampling to stop")
    comp.zionctl("kill", "ev")

    comp.zionctl("desktop", "delete", "ev", "--stop")
    everything.wait(lambda e: e["event"] == "desktop-deleted" and e["payload"]["name"] == "ev")
    everything.close()


ATTACK = r"""
import os, socket, sys
target, sock = sys.argv[1], sys.argv[2]
out = []
try:
    with open(target, "a") as f:
        f.write('\n[desktops.evil]\ncolour = "#000000"\n')
    out.append("wrote the desktops file")
except OSError as e:
    out.append(f"file errno {e.errno}")
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(b'{"id":1,"type":"command","argv":["desktop","create","evil"]}\n')
    out.append("control socket answered: " + s.recv(300).decode())
except OSError as e:
    out.append(f"socket errno {e.errno}")
open(os.path.expanduser("~/result"), "w").write("\n".join(out))
"""


@pytest.mark.security
def test_a_program_in_a_run_time_desktop_cannot_make_or_change_desktops(
    make_compositor: Any,
) -> None:
    """The attack runs in a real sandbox of a desktop made at run time: it tries to write
    the desktops file and to ask the control socket for a desktop of its own."""
    comp = make_compositor(CONFIG, extra_env=QUIET)
    comp.zionctl("desktop", "create", "untrusted", "--colour", "#e11d48", "--network", "none")
    before = _file(comp).read_bytes()
    result = comp.desktop_home("untrusted") / "result"
    sock = comp.runtime / "zionwm" / "ipc.sock"
    comp.zionctl("launch", "untrusted", "--", "/usr/bin/python3", "-c", ATTACK,
                 str(_file(comp)), str(sock))  # fmt: skip
    text = wait_for(lambda: result.exists() and result.read_text(), 20, "the attack to finish")
    assert "wrote" not in text and "answered" not in text, text
    assert "file errno" in text and "socket errno" in text, text
    assert _file(comp).read_bytes() == before
    assert "evil" not in comp.desktops()


def test_clone_copies_settings_and_only_with_home_the_data(make_compositor: Any) -> None:
    comp = make_compositor(CONFIG, extra_env=QUIET)
    comp.zionctl(
        "desktop", "create", "base", "--colour", "#6366f1", "--memory-max", "2G",
        "--network", "filtered:example.org:443", "--freeze-after", "5m",
    )  # fmt: skip
    homes = comp.data / "zionwm" / "desktops"
    (homes / "base" / "home").mkdir(parents=True, exist_ok=True)
    (homes / "base" / "home" / "notes.txt").write_text("mine\n")
    comp.zionctl("desktop", "create", "twin", "--from", "base", "--colour", "#06b6d4")
    comp.zionctl("desktop", "create", "twin2", "--from", "base", "--with-home")
    settings = {
        name: {s["key"]: s for s in comp.zjson("desktop", "show", name)["settings"]}
        for name in ("base", "twin", "twin2")
    }
    for key in ("memory_max", "network", "freeze_after"):
        assert settings["twin"][key]["value"] == settings["base"][key]["value"]
        assert settings["twin"][key]["layer"] == "run-time (cloned from base)"
    assert settings["twin"]["network"]["value"] == "filtered:example.org:443"
    assert settings["twin"]["colour"]["value"] == "#06b6d4"
    assert settings["twin2"]["colour"]["value"] == "#6366f1"
    assert not (homes / "twin" / "home" / "notes.txt").exists()
    assert (homes / "twin2" / "home" / "notes.txt").read_text() == "mine\n"
    # the copy is independent: changing the original leaves the clones alone
    comp.zionctl("desktop", "set", "base", "memory_max=3G")
    rows = {s["key"]: s for s in comp.zjson("desktop", "show", "twin")["settings"]}
    assert rows["memory_max"]["value"] == "2G"
    r = comp.zionctl("desktop", "create", "twin3", "--from", "nosuch", check=False)
    assert r.returncode == 1 and "no desktop named 'nosuch'" in r.stderr


def test_run_time_desktops_get_one_seat_of_their_own_and_survive_reload_and_restart(
    make_compositor: Any,
) -> None:
    require("wayland-info")
    comp = make_compositor(CONFIG, extra_env=QUIET)
    comp.zionctl("desktop", "create", "gone", "--colour", "#f97316")
    comp.zionctl("switch", "gone")
    comp.zionctl("desktop", "delete", "gone")  # the shown one: zionwm switches away first
    assert comp.desktops()["personal"]["active"]
    comp.zionctl("desktop", "create", "fresh", "--colour", "#84cc16")
    out = comp.run(["wayland-info"], desktop="fresh").stdout.decode()
    assert out.count("'wl_seat'") == 1, out
    assert "seat-fresh" in out
    comp.zionctl("reload")
    assert list(comp.desktops()) == ["personal", "work", "fresh"]
    comp.stop()
    comp.start()
    assert list(comp.desktops()) == ["personal", "work", "fresh"]
    assert comp.desktops()["fresh"]["origin"] == "run-time"


def test_with_a_broken_config_py_the_desktops_file_waits_untouched(make_compositor: Any) -> None:
    """The fallback config must never grant more than asked: the desktops file (which may
    give a desktop the network) is not applied, nor rewritten, until config.py is fixed."""
    comp = make_compositor(CONFIG, extra_env=QUIET)
    comp.zionctl("desktop", "create", "later", "--colour", "#8b5cf6", "--network", "full")
    saved = _file(comp).read_bytes()
    comp.stop()
    assert comp.config_path is not None
    comp.config_path.write_text(CONFIG + "desktop(\n")
    comp.start()
    assert "later" not in comp.desktops()
    r = comp.zionctl("desktop", "create", "more", "--colour", "#10b981", check=False)
    assert r.returncode == 1 and "config.py has errors" in r.stderr
    assert _file(comp).read_bytes() == saved
    comp.config_path.write_text(CONFIG)
    comp.zionctl("reload")
    assert comp.desktops()["later"]["network"] == "full"
