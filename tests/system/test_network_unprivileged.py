"""Attacks from inside desktops of a compositor run by an ordinary user: the unprivileged
network path (pasta), as a real login session has it.

The test creates a user account, starts the real compositor as that user (serving VNC on
loopback, as a headless `make run` does), and runs its attackers with `zionctl launch` in
real sandboxes of its desktops. Its "host services" are listeners it opens on the host's
loopback (TCP, UDP, IPv6); its "internet" and "LAN" are addresses it puts on a veth of its
own. pasta is told to give the desktops documentation-range addresses and to bind its
outbound sockets to 127.0.0.1, so no packet can leave the machine.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute

from tests.harness import require, wait_for
from tests.system.test_network import (
    ATTACKER,
    LISTENER,
    PASTA_GW,
    PASTA_TEST_ARGS,
    _pasta_missing,
)
from tests.system.test_session import (
    SessionUser,
    _choose_interpreter,
    _read_ready,
    _stop,
    _user_facility,
    _user_pids,
    _useradd,
)

pytestmark = pytest.mark.root

CONFIG = """\
from zionwm.config import Network, desktop
desktop("web", colour="#ef4444", network=Network.{web})
desktop("lan", colour="#22c55e", network=Network.full(block_lan=True))
"""


def _grant_tun(uid: int) -> int:
    """Let `uid` open /dev/net/tun (an ACL entry: mode 0666 on desktop systems, root-only
    on this machine kind); returns the mode to put back."""
    mode = os.stat("/dev/net/tun").st_mode & 0o7777
    entries = [(1, 6, 0xFFFFFFFF), (2, 6, uid), (4, 0, 0xFFFFFFFF), (0x10, 6, 0xFFFFFFFF)]
    entries.append((0x20, 0, 0xFFFFFFFF))
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    try:
        os.setxattr("/dev/net/tun", "system.posix_acl_access", acl)
    except OSError as e:
        pytest.skip(f"cannot grant the test user /dev/net/tun (pasta's tap device): {e}")
    return mode


def _revoke_tun(mode: int) -> None:
    with contextlib.suppress(OSError):
        os.removexattr("/dev/net/tun", "system.posix_acl_access")
    os.chmod("/dev/net/tun", mode)


class _Listeners:
    """Banner servers: each answers every connection or datagram with its own secret."""

    def __init__(self) -> None:
        self.socks: list[socket.socket] = []
        self.stop = threading.Event()

    def tcp(self, addr: str, secret: str, family: int = socket.AF_INET) -> int:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, 0))
        s.listen(16)
        s.settimeout(0.2)
        self.socks.append(s)

        def serve() -> None:
            while not self.stop.is_set():
                try:
                    c, _ = s.accept()
                except OSError:
                    continue
                with c, contextlib.suppress(OSError):
                    c.sendall(secret.encode() + b"\n")

        threading.Thread(target=serve, daemon=True).start()
        return int(s.getsockname()[1])

    def udp(self, addr: str, secret: str) -> int:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, 0))
        s.settimeout(0.2)
        self.socks.append(s)

        def serve() -> None:
            while not self.stop.is_set():
                try:
                    _, peer = s.recvfrom(2048)
                except OSError:
                    continue
                s.sendto(secret.encode(), peer)

        threading.Thread(target=serve, daemon=True).start()
        return int(s.getsockname()[1])

    def close(self) -> None:
        self.stop.set()
        for s in self.socks:
            s.close()


@dataclass
class Session:
    user: SessionUser
    proc: subprocess.Popen[bytes]
    config: Path
    inet: str
    lan: str
    ports: dict[str, int]

    @property
    def data(self) -> Path:
        return self.user.home / ".local" / "share"

    def zionctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.user.ctl(*args)

    def zjson(self, *args: str) -> Any:
        return self.user.ctl_json(*args)

    def reload(self, web: str) -> None:
        self.config.write_text(CONFIG.format(web=web))
        self.zionctl("reload")


def _home(s: Session, desktop: str) -> Path:
    return s.data / "zionwm" / "desktops" / desktop / "home"


def _attack(s: Session, desktop: str, probes: list[list[object]], name: str) -> list[Any]:
    import json

    out = _home(s, desktop) / name
    out.unlink(missing_ok=True)
    s.zionctl("launch", desktop, "--", "python3", "-c", ATTACKER, "once", name, json.dumps(probes))
    wait_for(out.exists, 60, f"{name} from {desktop}")
    return list(json.loads(out.read_text()))


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    reason = _user_facility() or _pasta_missing()
    if reason:
        pytest.skip(reason)
    require("wayvnc")
    name = f"zn{uuid.uuid4().hex[:10]}"
    root = Path(tempfile.mkdtemp(prefix="zionwm-netuser-"))
    root.chmod(0o755)
    tag = "zn" + secrets.token_hex(3)
    listeners = _Listeners()
    proc: subprocess.Popen[bytes] | None = None
    mode: int | None = None
    _useradd(name, root / "home")
    try:
        pw = pwd.getpwnam(name)
        user = SessionUser(name, pw.pw_uid, pw.pw_gid, root)
        for d in (user.home, root / "run"):
            d.mkdir(mode=0o700)
            os.chown(d, user.uid, user.gid)
        why = _choose_interpreter(user)
        if why:
            pytest.skip(why)
        mode = _grant_tun(user.uid)
        # The "internet" and the "LAN": addresses on a veth of the test's own.
        inet = f"198.51.100.{100 + secrets.randbelow(100)}"
        lan = f"172.31.254.{10 + secrets.randbelow(200)}"
        with IPRoute() as ip:
            ip.link("add", ifname=tag + "h", kind="veth", peer={"ifname": tag + "p"})
            idx = ip.link_lookup(ifname=tag + "h")[0]
            for addr in (inet, lan):
                ip.addr("add", index=idx, address=addr, prefixlen=32)
            ip.link("set", index=idx, state="up")
        ports = {
            "inet": listeners.tcp(inet, "INTERNET"),
            "lan": listeners.tcp(lan, "LAN"),
            "lo_tcp": listeners.tcp("127.0.0.1", "LOOPBACK"),
            "lo_udp": listeners.udp("127.0.0.1", "LOOPBACK"),
            "lo6_tcp": listeners.tcp("::1", "LOOPBACK", socket.AF_INET6),
        }
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports["vnc"] = probe.getsockname()[1]
        config = root / "config.py"
        config.write_text(CONFIG.format(web="full()"))
        config.chmod(0o666)
        env = user.env(
            WLR_RENDERER="pixman",
            WLR_LIBINPUT_NO_DEVICES="1",
            WLR_BACKENDS="headless",
            ZIONWM_NO_QUARANTINE="1",
            ZIONWM_PASTA_ARGS=" ".join(PASTA_TEST_ARGS),
        )
        rfd, wfd = os.pipe()
        argv = [*user.zionwm, "--headless", "--socket", "wayland-zn", "--config", str(config)]
        argv += ["--vnc", f"127.0.0.1:{ports['vnc']}"]
        with open(root / "zionwm.log", "wb") as log:
            proc = subprocess.Popen(
                user.argv(*argv),
                env={**env, "ZIONWM_READY_FD": str(wfd)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(wfd,),
                cwd=root,
            )
        os.close(wfd)
        if not _read_ready(rfd, 60):
            raise AssertionError((root / "zionwm.log").read_text())
        yield Session(user, proc, config, inet, lan, ports)
    finally:
        listeners.close()
        if proc is not None:
            _stop(proc)
        with IPRoute() as ip:
            found = ip.link_lookup(ifname=tag + "h")
            if found:
                ip.link("del", index=found[0])
        if mode is not None:
            _revoke_tun(mode)
        uid = pwd.getpwnam(name).pw_uid
        for pid in _user_pids(uid):  # only processes of the account this test created
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _user_pids(uid), 10, "the test user's processes to end")
        subprocess.run(["userdel", name], check=True, capture_output=True)
        shutil.rmtree(root)


def _by_target(results: list[Any]) -> dict[str, bool]:
    return {f"{r['probe'][0]} {r['probe'][1]}:{r['probe'][2]}": r["ok"] for r in results}


def _assert_pasta_full(s: Session, desktop: str) -> None:
    state = {d["name"]: d for d in s.zjson("desktops")}[desktop]
    assert state["net"]["backend"] == "pasta" and state["net"]["effective"] == "full", state


@pytest.mark.security
def test_a_pasta_desktop_reaches_nothing_on_the_hosts_loopback(session: Session) -> None:
    """From a `full` desktop on the unprivileged path: the gateway address, IPv6 loopback
    and a v4-mapped gateway lead to none of the host's loopback services, VNC included;
    the test's "internet" is reached (the desktop does have a network)."""
    s, p = session, session.ports
    banner = (
        "import socket, sys; "
        "print(socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2).recv(12))"
    )

    def user_banner() -> bool:
        done = s.user.run("/usr/bin/python3", "-c", banner, str(p["vnc"]))
        return "RFB " in done.stdout

    wait_for(user_banner, 30, "wayvnc to serve the session's user on loopback")
    # Any other account of the machine (root here) is turned away before a byte of VNC.
    with socket.create_connection(("127.0.0.1", p["vnc"]), timeout=5) as other:
        other.settimeout(5)
        assert other.recv(12) == b""
    gw = PASTA_GW
    mapped = "::ffff:" + gw
    probes: list[list[object]] = [
        ["tcp", s.inet, p["inet"], "INTERNET"],
        ["tcp", gw, p["lo_tcp"], "LOOPBACK"],
        ["udp", gw, p["lo_udp"], "LOOPBACK"],
        ["tcp6", "::1", p["lo6_tcp"], "LOOPBACK"],
        ["tcp6", mapped, p["lo_tcp"], "LOOPBACK"],
        ["tcp", gw, p["vnc"], "RFB"],
        ["tcp", "127.0.0.1", p["vnc"], "RFB"],
    ]
    got = _by_target(_attack(s, "web", probes, "loopback.json"))
    _assert_pasta_full(s, "web")
    assert got.pop(f"tcp {s.inet}:{p['inet']}") is True, got
    assert not any(got.values()), got


@pytest.mark.security
def test_block_lan_holds_on_the_pasta_path_and_the_desktop_cannot_lift_it(
    session: Session,
) -> None:
    s, p = session, session.ports
    probes: list[list[object]] = [
        ["tcp", s.inet, p["inet"], "INTERNET"],
        ["tcp", s.lan, p["lan"], "LAN"],
    ]
    got = _by_target(_attack(s, "lan", probes, "lan.json"))
    _assert_pasta_full(s, "lan")
    assert got == {f"tcp {s.inet}:{p['inet']}": True, f"tcp {s.lan}:{p['lan']}": False}, got
    # The attacker tries to remove the rules from inside its sandbox, then tries again.
    out = _home(s, "lan") / "nft.out"
    s.zionctl(
        "launch", "lan", "--", "sh", "-c",
        "(nft flush ruleset; nft delete table inet zionwm_guard; ip link set lo down;"
        " echo done) > ~/nft.tmp 2>&1; mv ~/nft.tmp ~/nft.out",
    )  # fmt: skip
    wait_for(out.exists, 60, "the attacker's nft attempt")
    tried = out.read_text()
    assert "done" in tried and "Operation not permitted" in tried, tried  # it ran, was refused
    got = _by_target(_attack(s, "lan", probes, "lan-again.json"))
    assert got[f"tcp {s.lan}:{p['lan']}"] is False, (got, out.read_text())
    assert ipaddress.ip_address(s.lan).is_private


@pytest.mark.security
def test_a_policy_change_keeps_a_switched_off_pasta_desktop_off(session: Session) -> None:
    s, p = session, session.ports
    inet: list[list[object]] = [["tcp", s.inet, p["inet"], "INTERNET"]]
    assert _attack(s, "web", inet, "on.json")[0]["ok"] is True
    s.zionctl("net", "web", "off")
    assert _attack(s, "web", inet, "off.json")[0]["ok"] is False
    s.reload("full(block_lan=True)")
    assert _attack(s, "web", inet, "off-changed.json")[0]["ok"] is False  # still off
    s.zionctl("net", "web", "on")
    assert _attack(s, "web", inet, "on-again.json")[0]["ok"] is True
    s.reload("none()")
    assert _attack(s, "web", inet, "none.json")[0]["ok"] is False
    s.reload("full()")
    assert _attack(s, "web", inet, "full-again.json")[0]["ok"] is True


@pytest.mark.security
def test_a_pasta_desktop_cannot_reach_another_desktops_programs(session: Session) -> None:
    """`lan` serves TCP and UDP on every address of its namespace; `web` tries it through
    the gateway, the desktops' address and loopback, and the host cannot reach it either."""
    s = session
    port = 20000 + secrets.randbelow(20000)
    ready = _home(s, "lan") / "listening"
    ready.unlink(missing_ok=True)
    s.zionctl("launch", "lan", "--", "python3", "-c", LISTENER, str(port))
    wait_for(ready.exists, 60, "the listener in lan")
    own = _attack(s, "lan", [["tcp", "127.0.0.1", port, "DESK"]], "own.json")
    assert own[0]["ok"], own  # it answers inside its own desktop
    inside = PASTA_TEST_ARGS[PASTA_TEST_ARGS.index("-a") + 1]
    probes: list[list[object]] = [
        ["tcp", PASTA_GW, port, "DESK"],
        ["udp", PASTA_GW, port, "DESK"],
        ["tcp", inside, port, "DESK"],
        ["tcp", "127.0.0.1", port, "DESK"],
    ]
    got = _attack(s, "web", probes, "desk.json")
    assert not any(r["ok"] for r in got), got
    answer = b""
    # no inbound forwarding to the host either
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 3) as c:
        answer = c.recv(8)
    assert b"DESK" not in answer
