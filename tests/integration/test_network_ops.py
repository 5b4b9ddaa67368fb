"""The network-ops process of a running compositor: the desktops' netlink work runs there
(see zionwm.isolation.network.opsd). Killed, it is replaced and the next network is built;
it never outlives the compositor."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from tests.harness import Compositor, wait_for
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
