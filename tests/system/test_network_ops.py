"""The network-ops process on its own: it offers its verbs and nothing else, refuses names
that are paths, tells a verb's error as the same error, never leaves its caller hanging,
and is replaced when it stops answering. Root: its verbs are netlink calls."""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.harness import wait_for
from tests.netops_helpers import gone, skip_unless_privileged_network
from zionwm.isolation.network.caps import NETNS_DIR
from zionwm.isolation.network.model import NetworkError
from zionwm.isolation.network.opsclient import RootOpsClient
from zionwm.isolation.network.opswire import recv_frame, send_frame
from zionwm.isolation.network.policy import plan_for

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def opsd() -> Iterator[tuple[socket.socket, subprocess.Popen[bytes]]]:
    """An ops process started by hand, and our end of its socket."""
    skip_unless_privileged_network()
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zionwm.isolation.network.opsd",
            "--fd",
            str(theirs.fileno()),
            "--parent",
            str(os.getpid()),
        ],
        pass_fds=(theirs.fileno(),),
        cwd=REPO,
    )
    theirs.close()
    ours.settimeout(30)
    try:
        yield ours, proc
    finally:
        ours.close()
        proc.wait(timeout=10)


@contextmanager
def started_client(**options: Any) -> Iterator[tuple[RootOpsClient, int]]:
    """A client whose ops process has answered one verb, and that process's pid."""
    skip_unless_privileged_network()
    client = RootOpsClient("nft", **options)
    try:
        client.interfaces_of_default_routes()
        assert client.pid is not None
        yield client, client.pid
    finally:
        client.close()


def _ask(sock: socket.socket, request: dict[str, Any]) -> dict[str, Any]:
    send_frame(sock, request)
    reply = recv_frame(sock)
    assert reply is not None
    return reply


def test_only_its_verbs_exist_and_names_never_are_paths(
    opsd: tuple[socket.socket, subprocess.Popen[bytes]],
) -> None:
    sock, proc = opsd
    for verb in ("__import__", "exec", "_iproute", "nft_apply", "__init__"):
        reply = _ask(sock, {"verb": verb, "args": {"text": "flush ruleset"}})
        assert reply == {"error": f"no such verb: {verb!r}", "type": "WireError"}
    target = Path("/tmp") / f"zionwm-opsd-{os.getpid()}"
    for name in (f"../../{target}", "..", ".", "a b", "", 7):
        reply = _ask(sock, {"verb": "create_netns", "args": {"name": name}})
        assert reply["type"] == "WireError" and "not a name" in reply["error"], reply
    assert not target.exists()
    reply = _ask(sock, {"verb": "delete_rules", "args": {"table": "main", "ifnames": None}})
    assert reply["type"] == "WireError", reply
    # a verb that works, after all that: the process is still serving
    assert isinstance(_ask(sock, {"verb": "interfaces_of_default_routes"})["ok"], list)
    # a frame that is not one ends the process (the stream is out of step)
    sock.sendall(b"\xff\xff\xff\xff")
    assert proc.wait(timeout=10) == 2


def test_the_end_of_its_socket_ends_it(
    opsd: tuple[socket.socket, subprocess.Popen[bytes]],
) -> None:
    sock, proc = opsd
    assert "ok" in _ask(sock, {"verb": "used_networks"})
    sock.shutdown(socket.SHUT_WR)
    assert proc.wait(timeout=10) == 0


def test_errors_come_back_as_the_same_errors() -> None:
    skip_unless_privileged_network()
    client = RootOpsClient("nft")
    try:
        plan = plan_for(ipaddress.IPv4Network("10.255.255.0/30"))
        with pytest.raises(NetworkError, match=r"^interface lo exists and is not this"):
            client.create_veth("nsx", "lo", "eth0", "zwx:web", plan)
        missing = f"zwnone{os.getpid()}"
        assert not (NETNS_DIR / missing).exists()
        with pytest.raises(OSError) as caught:
            client.configure_inside(missing, None, None)
        assert caught.value.errno == errno.ENOENT
        assert client.starts == 1  # errors of verbs are answers, not deaths
    finally:
        client.close()


def test_one_that_stops_answering_is_replaced() -> None:
    """Stopped (SIGSTOP), the process never answers: the verb fails after the timeout,
    the process is killed, and the next verb gets a new one."""
    with started_client(timeout=2.0) as (client, first):
        os.kill(first, signal.SIGSTOP)
        with pytest.raises(NetworkError, match=r"did not answer interfaces_of_default_routes"):
            client.interfaces_of_default_routes()
        wait_for(lambda: gone(first), 10, "the stopped process to be killed")
        assert isinstance(client.used_networks(), list)
        assert client.pid not in (None, first) and client.starts == 2


def test_one_that_died_between_verbs_is_replaced_before_the_next() -> None:
    with started_client() as (client, first):
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: gone(first), 10, "the process to die")
        assert isinstance(client.used_networks(), list)
        assert client.pid != first and client.starts == 2


def test_an_idle_one_leaves_and_the_next_verb_starts_another() -> None:
    with started_client(idle=0.5) as (client, first):
        wait_for(lambda: gone(first), 10, "the idle process to leave")
        assert isinstance(client.used_networks(), list)
        assert client.pid != first and client.starts == 2


def _waiting_in_poll(tid: int) -> bool:
    # the client waits for its answer in poll(2) (a socket with a timeout): syscall 7
    return Path(f"/proc/self/task/{tid}/syscall").read_text().split()[0] == "7"


def test_one_that_dies_during_a_verb_fails_that_verb_clearly() -> None:
    """Killed while a verb waits for its answer: that verb fails with a NetworkError that
    says so (never a hang, never a silent retry: it may have been half done); the next verb
    gets a new process."""
    outcome: list[BaseException | object] = []
    with started_client() as (client, first):
        os.kill(first, signal.SIGSTOP)  # holds the request unanswered

        def call() -> None:
            try:
                outcome.append(client.used_networks())
            except BaseException as exc:
                outcome.append(exc)

        t = threading.Thread(target=call)
        t.start()
        wait_for(lambda: t.native_id and _waiting_in_poll(t.native_id), 10, "the verb to wait")
        os.kill(first, signal.SIGKILL)
        t.join(timeout=30)
        assert not t.is_alive()
        (exc,) = outcome
        assert isinstance(exc, NetworkError), exc
        assert f"(pid {first}) ended during used_networks" in str(exc)
        assert isinstance(client.used_networks(), list)
        assert client.pid != first and client.starts == 2
