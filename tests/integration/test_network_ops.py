"""The network-ops process of a running compositor: the desktops' netlink work runs there
(see zionwm.isolation.network.opsd). Killed, it is replaced and the next network is built;
it never outlives the compositor."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

from tests.harness import VENV_BIN, Compositor, wait_for
from tests.netops_helpers import gone, ops_processes, skip_unless_privileged_network
from zionwm.isolation.network.manager import NetworkManager

CONFIG = """\
from zionwm.config import Network, desktop

desktop("web", colour="#a855f7", network=Network.filtered(["example.org"]))
desktop("work", colour="#22c55e", network=Network.full())
"""


def _effective(comp: Compositor, desktop: str) -> str | None:
    net = comp.desktops()[desktop].get("net") or {}
    return net.get("effective") if net.get("state") != "not started" else None


def test_a_killed_ops_process_is_replaced_and_the_next_network_is_built(
    make_compositor: Callable[..., Compositor],
) -> None:
    skip_unless_privileged_network()
    comp = make_compositor(CONFIG)
    assert comp.proc is not None
    comp.zionctl("net", "web", "on")
    assert _effective(comp, "web") == "filtered"
    (first,) = ops_processes(comp.proc.pid)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: gone(first), 10, "the ops process to die")

    comp.zionctl("net", "work", "on")
    assert _effective(comp, "work") == "full"
    (second,) = ops_processes(comp.proc.pid)
    assert second != first
    # and the desktop built by the first one is still managed: switched off, then on
    comp.zionctl("net", "web", "off")
    comp.zionctl("net", "web", "on")
    assert comp.desktops()["web"]["net"]["enabled"] is True
    assert comp.alive()


def test_the_ops_process_exits_with_the_compositor(tmp_path: Path) -> None:
    """Killed outright (no clean-up of its own), the compositor takes the ops process with
    it; what the desktops' networks left is then removed as after any crash."""
    skip_unless_privileged_network()
    comp = Compositor(tmp_path, config_text=CONFIG).start()
    prefix = None
    try:
        assert comp.proc is not None
        prefix = comp.zjson("status")["instance"]["net_prefix"]
        comp.zionctl("net", "web", "on")
        (ops,) = ops_processes(comp.proc.pid)
        comp.proc.kill()
        comp.proc.wait()
        wait_for(lambda: gone(ops), 10, "the ops process to exit with the compositor")
    finally:
        comp.stop(check=False)
        if prefix is not None:
            with NetworkManager(prefix) as leftovers:
                leftovers.cleanup_stale()


# What a program started in a desktop sees of its network, written into its own home.
NETNS_PROBE = textwrap.dedent(
    """
    import json, os, socket, sys
    home = os.path.expanduser("~")
    seen = {
        "netns": os.readlink("/proc/self/ns/net"),
        "links": sorted(name for _index, name in socket.if_nameindex()),
    }
    with open(os.path.join(home, sys.argv[1] + ".tmp"), "w") as fh:
        json.dump(seen, fh)
    os.rename(os.path.join(home, sys.argv[1] + ".tmp"), os.path.join(home, sys.argv[1]))
    """
)


def _launch_in_background(comp: Compositor, desktop: str, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(VENV_BIN / "zionctl"), "launch", desktop, "--", "python3", "-c", NETNS_PROBE, name],
        env=comp.host_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_compositor_goes_on_while_a_network_is_built_and_launches_wait_for_it(
    make_compositor: Callable[..., Compositor],
) -> None:
    """The network-ops process stopped (SIGSTOP) in the middle of building a desktop's
    network: the compositor still answers requests and draws frames; launches asked
    meanwhile start, in their order, only once the network is up, and inside it."""
    skip_unless_privileged_network()
    comp = make_compositor(CONFIG)
    assert comp.proc is not None
    prefix = comp.zjson("status")["instance"]["net_prefix"]
    comp.zionctl("net", "web", "on")  # builds web's network: the ops process runs from now
    (ops,) = ops_processes(comp.proc.pid)
    home = comp.desktop_home("work")
    launches: list[subprocess.Popen[str]] = []
    os.kill(ops, signal.SIGSTOP)
    try:
        launches.append(_launch_in_background(comp, "work", "first.json"))
        wait_for(
            lambda: comp.desktops()["work"]["net"].get("changing"),
            10,
            "work's network build to be under way",
        )
        launches.append(_launch_in_background(comp, "work", "second.json"))
        # the build cannot finish (its netlink requests wait in the stopped process), and
        # yet requests are answered and frames drawn
        assert comp.zjson("status")["instance"]["net_prefix"] == prefix
        comp.zionctl("switch", "work")
        comp.screenshot()  # grim gets a frame only if the compositor draws one
        assert comp.desktops()["work"]["active"]
        assert comp.desktops()["work"]["net"].get("changing")
        assert [p.poll() for p in launches] == [None, None]  # their answers wait
        assert not (home / "first.json").exists() and not (home / "second.json").exists()
    finally:
        os.kill(ops, signal.SIGCONT)
    pids = []
    for launch in launches:
        out, err = launch.communicate(timeout=30)
        assert launch.returncode == 0, f"launch failed: {err}{out}"
        pids.append(int(re.search(r"\(pid (\d+)\)", out).group(1)))  # type: ignore[union-attr]
    assert pids[0] < pids[1], "the launches started out of order"
    # from inside: both programs are in work's network namespace, not the host's
    desktop_ns = os.stat(f"/run/netns/{prefix}-work").st_ino
    host_ns = os.readlink("/proc/self/ns/net")
    for name in ("first.json", "second.json"):
        seen = json.loads(wait_for(lambda n=name: _read(home / n), 30, f"{name} from work"))
        assert seen["netns"] == f"net:[{desktop_ns}]", seen
        assert seen["netns"] != host_ns
        assert seen["links"] == ["eth0", "lo"], seen
    assert comp.alive()


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
