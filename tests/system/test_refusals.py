"""Refusals reach the control socket: a program in a real sandbox of a filtered desktop looks
up a host its list does not name; the desktop's real DNS forwarder refuses it and tells the
compositor, which lists it (`zionctl desktop refusals`) and emits a `refusal` event. The
exact settings change the manager offers, applied through `desktop set`, then lets the
name resolve. The test network is the one of test_network.py (its own namespace, DNS and
web servers)."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Compositor, wait_for
from tests.system.test_network import BAD, GOOD, _lab_env, lab, needs_privileged  # noqa: F401
from zionwm.ctl import ControlClient
from zionwm.manager import refusals as refmodel

LOOKUP = textwrap.dedent(
    r"""
    import json, os, socket, struct, sys

    def raw(name):
        # a query built by hand, so names no resolver library would send still go out
        ns = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
        q = struct.pack("!HHHHHH", 4242, 0x0100, 1, 0, 0, 0)
        for label in name.split("."):
            b = label.encode()
            q += bytes([len(b)]) + b
        q += b"\0" + struct.pack("!HH", 1, 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(q, (ns, 53))
        rcode = s.recv(512)[3] & 0xF
        return "refused: rcode %d" % rcode if rcode else "answered"

    out = {}
    for name in sys.argv[2:]:
        try:
            out[name] = raw(name[4:]) if name.startswith("raw:") else socket.gethostbyname(name)
        except Exception as exc:
            out[name] = "refused: " + type(exc).__name__
    path = os.path.expanduser("~/" + sys.argv[1])
    open(path + ".tmp", "w").write(json.dumps(out))
    os.rename(path + ".tmp", path)
    """
)


def _config() -> str:
    return textwrap.dedent(
        """
        from zionwm.config import Network, desktop
        desktop("web", colour="#ef4444", network=Network.filtered(["good.zw.test"]))
        desktop("work", colour="#22c55e")
        """
    )


def _lookup(comp: Compositor, tag: str, *names: str) -> dict[str, str]:
    out = comp.data / "zionwm" / "desktops" / "web" / "home" / tag
    comp.zionctl("launch", "web", "--", "python3", "-c", LOOKUP, tag, *names)
    wait_for(out.exists, 60, f"the lookups {tag} in web")
    return dict(json.loads(out.read_text()))


@pytest.mark.security
@needs_privileged
def test_a_refused_host_is_listed_and_the_offered_change_grants_exactly_it(
    lab: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    lab.set_zone({"good.zw.test": (GOOD, 300), "bad.zw.test": (BAD, 300)})
    comp = Compositor(tmp_path, _config(), extra_env=_lab_env(lab)).start()
    try:
        events = ControlClient(comp.runtime / "zionwm" / "ipc.sock", timeout=60)
        events.request("subscribe", events=["refusal"])
        first = _lookup(comp, "one.json", "good.zw.test", "bad.zw.test")
        assert first["good.zw.test"] == GOOD
        assert first["bad.zw.test"].startswith("refused"), first

        event = next(events.events(["refusal"]))
        assert event["payload"]["desktop"] == "web"
        assert event["payload"]["what"] == "bad.zw.test"
        listed = comp.zjson("desktop", "refusals", "web")["refusals"]
        assert [(r["kind"], r["what"]) for r in listed] == [("host", "bad.zw.test")]
        events.close()

        # the manager's offer, from what `desktop show` says is in force now
        show = comp.zjson("desktop", "show", "web")
        offer = refmodel.offer(refmodel.Refusal.from_event(listed[0]), show)
        assert offer is not None
        assert offer.argv == ["desktop", "set", "web", "network=filtered:good.zw.test,bad.zw.test"]
        assert offer.diff == [
            "- network = filtered:good.zw.test",
            "+ network = filtered:good.zw.test,bad.zw.test",
        ]
        comp.zionctl(*offer.argv)
        after = _lookup(comp, "two.json", "bad.zw.test")
        assert after["bad.zw.test"] == BAD, after
        comp.zionctl("desktop", "refusals", "web", "--clear", "bad.zw.test")
        assert comp.zjson("desktop", "refusals", "web")["refusals"] == []
    finally:
        comp.stop()


@pytest.mark.security
@needs_privileged
def test_a_flood_of_refused_names_stays_bounded_and_the_compositor_answers(
    lab: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    comp = Compositor(tmp_path, _config(), extra_env=_lab_env(lab)).start()
    try:
        names = [f"n{i}.flood.test" for i in range(150)]
        odd = ["raw:bad\u202ename.test", "raw:" + "x" * 63 + "y.test", "raw:4.3.2.1.in-addr.arpa"]
        result = _lookup(comp, "flood.json", *names, *odd)
        assert all(v.startswith("refused") for v in result.values())
        wait_for(
            lambda: len(comp.zjson("desktop", "refusals", "web")["refusals"]) == 64,
            30,
            "64 (the bound) of the refused names listed",
        )
        listed = {r["what"] for r in comp.zjson("desktop", "refusals", "web")["refusals"]}
        assert "n149.flood.test" in listed and "n0.flood.test" not in listed
        assert not any("arpa" in w or "\u202e" in w or "xy" in w for w in listed)
        assert comp.zjson("desktops")
    finally:
        comp.stop()


def _pidfd_getfd(pid: int, fd: int) -> int:
    """A copy of another process's descriptor (pidfd_getfd, Linux 5.6+; needs ptrace rights)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        got = libc.syscall(438, pidfd, fd, 0)  # SYS_pidfd_getfd
        if got < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return int(got)
    finally:
        os.close(pidfd)


@pytest.mark.security
@needs_privileged
def test_a_forwarder_speaks_only_for_its_own_desktop(
    lab: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """As if a program of `web` had taken over web's DNS forwarder (it parses what programs
    send): a report it writes naming another desktop is put on web, never on work."""
    config = _config().replace(
        'desktop("work", colour="#22c55e")',
        'desktop("work", colour="#22c55e", network=Network.filtered(["example.org"]))',
    )
    comp = Compositor(tmp_path, config, extra_env=_lab_env(lab)).start()
    try:
        _lookup(comp, "start.json", "good.zw.test")  # web's forwarder runs
        helpers = []
        for p in Path("/proc").iterdir():
            try:
                argv = (p / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"zionwm.isolation.network.dnshelper" in argv and b'"desktop": "web"' in argv[-2]:
                helpers.append((int(p.name), json.loads(argv[-2])))
        assert helpers, "web's DNS forwarder is not running"
        pid, cfg = helpers[0]
        try:
            fd = _pidfd_getfd(pid, int(cfg["refusal_fd"]))
        except OSError as exc:
            pytest.skip(f"cannot take a descriptor of another process here: {exc}")
        with socket.socket(fileno=fd) as s:
            s.send(json.dumps({"desktop": "work", "kind": "host", "what": "forged.test"}).encode())
        wait_for(
            lambda: comp.zjson("desktop", "refusals", "web")["refusals"],
            30,
            "the forged report listed",
        )
        assert [r["what"] for r in comp.zjson("desktop", "refusals", "web")["refusals"]] == [
            "forged.test"
        ]
        assert comp.zjson("desktop", "refusals", "work")["refusals"] == []
    finally:
        comp.stop()


def _bus_tools_missing() -> str | None:
    for tool in ("bwrap", "dbus-daemon", "xdg-dbus-proxy", "dbus-send"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def _refused_bus_call(comp: Compositor, desktop: str) -> list[dict[str, Any]]:
    """Have a program of `desktop` call the keyring, which its bus hides; wait for it to be
    listed, and return the desktop's list."""
    call = [
        "dbus-send",
        "--session",
        "--print-reply",
        # the keyring: outside the names a desktop bus lets programs see
        "--dest=org.freedesktop.secrets",
        "/org/freedesktop/secrets",
        "org.freedesktop.Secret.Service.OpenSession",
        "string:plain",
    ]
    comp.zionctl("launch", desktop, "--", *call)

    def listed() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = comp.zjson("desktop", "refusals", desktop)["refusals"]
        return items if any(r["what"] == "org.freedesktop.secrets" for r in items) else []

    return wait_for(listed, 60, "the hidden name listed")


@pytest.mark.skipif(_bus_tools_missing() is not None, reason=str(_bus_tools_missing()))
def test_a_bus_name_the_desktop_bus_hides_is_listed_with_no_change_offered(
    tmp_path: Path,
) -> None:
    config = "from zionwm.config import desktop\n" + (
        'desktop("personal", colour="#3b82f6")\ndesktop("work", colour="#22c55e")\n'
    )
    comp = Compositor(tmp_path, config, extra_env={"ZIONWM_NO_QUARANTINE": "1"}).start()
    try:
        listed = _refused_bus_call(comp, "work")
        assert ("dbus", "org.freedesktop.secrets") in [(r["kind"], r["what"]) for r in listed]
        assert comp.zjson("desktop", "refusals", "personal")["refusals"] == []
        (item,) = [
            r
            for r in comp.zjson("desktop", "refusals", "work")["refusals"]
            if r["what"] == "org.freedesktop.secrets"
        ]
        show = comp.zjson("desktop", "show", "work")
        assert refmodel.offer(refmodel.Refusal.from_event(item), show) is None
        assert "D-Bus" in refmodel.NO_OFFER["dbus"]
    finally:
        comp.stop()


@pytest.mark.skipif(_bus_tools_missing() is not None, reason=str(_bus_tools_missing()))
def test_refusals_outlive_a_restart_and_a_bad_list_is_set_aside(tmp_path: Path) -> None:
    config = "from zionwm.config import desktop\n" + (
        'desktop("personal", colour="#3b82f6")\ndesktop("work", colour="#22c55e")\n'
    )
    env = {"ZIONWM_NO_QUARANTINE": "1"}
    stored = tmp_path / "state" / "zionwm" / "refusals"

    comp = Compositor(tmp_path, config, extra_env=env).start()
    try:
        before = _refused_bus_call(comp, "work")
        # written while the compositor runs (a crash loses at most the last second)
        wait_for(
            lambda: (
                (stored / "work.json").exists()
                and "org.freedesktop.secrets" in (stored / "work.json").read_text()
            ),
            30,
            "work's list on disk",
        )
    finally:
        comp.stop()
    bad = b'{"version": 1, "refusals": [{"kind": "host", "what": "bad\\u202ename"}]}'
    (stored / "personal.json").write_bytes(bad)

    comp = Compositor(tmp_path, config, extra_env=env).start()
    try:
        assert comp.zjson("desktop", "refusals", "work")["refusals"] == before
        # a list that does not pass is kept aside as it was, and nothing of it is shown
        assert comp.zjson("desktop", "refusals", "personal")["refusals"] == []
        assert not (stored / "personal.json").exists()
        assert (stored / "personal.json.bad").read_bytes() == bad
        assert "refusal list" in comp.log() and "unreadable" in comp.log()
        comp.zionctl("desktop", "refusals", "work", "--clear")
    finally:
        comp.stop()
    assert not (stored / "work.json").exists()

    comp = Compositor(tmp_path, config, extra_env=env).start()
    try:
        assert comp.zjson("desktop", "refusals")["refusals"] == []
    finally:
        comp.stop()
