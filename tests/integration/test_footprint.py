"""What the running compositor has loaded, read from its /proc/PID/maps and its list of
Python modules: what the first frame does not need stays out of the process until it is
used, and some of it never comes in.

Only native libraries and extension modules show in the maps; they stand for their Python
packages (`_sqlite3` for sqlite3, `libseccomp` for pyseccomp). Pure Python modules are read
from the compositor's `sys.modules`, which it writes out on SIGUSR2 through a
`sitecustomize` module these tests put on its PYTHONPATH (see `_modules`)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from tests.harness import Compositor, wait_for
from tests.netops_helpers import ops_processes, skip_unless_privileged_network
from zionwm.control_client import ControlClient

CONFIG = """\
from zionwm.config import Network, desktop

desktop("offline", colour="#3b82f6", network=Network.none())
"""


def _maps(comp: Compositor) -> str:
    assert comp.proc is not None
    return Path(f"/proc/{comp.proc.pid}/maps").read_text()


def test_start_leaves_out_the_quarantine_database_and_the_syscall_filter(
    compositor: Compositor,
) -> None:
    """The default config: its ephemeral desktop's edges are swept and the quarantine is
    linked at start, without the quarantine's store."""
    maps = _maps(compositor)
    # the quarantine's database is the quarantine service's, in its own process
    assert "_sqlite3" not in maps
    # the sandbox's syscall filter is compiled at the first sandboxed launch
    assert "libseccomp" not in maps


def test_seccomp_comes_with_the_first_launch_and_sqlite_still_not(
    make_compositor: Callable[..., Compositor],
) -> None:
    comp = make_compositor(CONFIG)
    assert "libseccomp" not in _maps(comp)
    comp.zionctl("launch", "offline", "--", "sleep", "600")
    wait_for(lambda: "libseccomp" in _maps(comp), 30, "the compositor loading libseccomp")
    assert "_sqlite3" not in _maps(comp)


def test_drawing_the_strip_overview_and_a_notification_loads_no_pillow(
    compositor: Compositor,
) -> None:
    """The compositor's text is drawn by its own C (pango-cairo): Pillow's imaging core (and
    the private libraries its wheel carries) never comes into the process, however much of
    the trusted UI it has drawn."""
    # the strip is on screen from the first frame; a refused launch makes a notification
    missing = "/nonexistent/footprint-notice"
    compositor.zionctl("launch", "work", "--", missing, check=False)
    wait_for(
        lambda: any(missing in n for n in compositor.zjson("status")["notifications"]),
        30,
        "the notification",
    )
    compositor.zionctl("overview")
    wait_for(lambda: compositor.zjson("status")["overview"]["open"], 10, "the overview")
    compositor.screenshot()  # a frame with all of it drawn went out
    maps = _maps(compositor)
    assert "PIL" not in maps and "_imaging" not in maps, [
        line for line in maps.splitlines() if "PIL" in line or "imaging" in line
    ]


NET_CONFIG = """\
from zionwm.config import Network, desktop

desktop("web", colour="#a855f7", network=Network.filtered(["example.org"]))
"""

# What pyroute2 brings (its package imports asyncio and ssl; its NDB, sqlite3): each shows
# in the maps as its extension module.
PYROUTE2_MARKS = ("_asyncio", "_ssl", "_sqlite3")


def test_a_desktop_network_leaves_pyroute2_out_of_the_compositor(
    make_compositor: Callable[..., Compositor],
) -> None:
    """A filtered desktop network built as root: the netlink work ran in the network-ops
    process, which has pyroute2's marks in its maps; the compositor has none of them."""
    skip_unless_privileged_network()
    comp = make_compositor(NET_CONFIG)
    assert comp.proc is not None
    assert ops_processes(comp.proc.pid) == []  # started on first need, not at start
    comp.zionctl("net", "web", "on")
    assert comp.desktops()["web"]["net"]["effective"] == "filtered"
    maps = _maps(comp)
    assert [m for m in PYROUTE2_MARKS if m in maps] == []
    (ops,) = ops_processes(comp.proc.pid)
    ops_maps = Path(f"/proc/{ops}/maps").read_text()
    assert [m for m in PYROUTE2_MARKS if m not in ops_maps] == []


# Run by the compositor's interpreter at its start (and by any Python it starts with this
# environment): on SIGUSR2, write the names of the loaded modules to the file named by
# ZIONWM_TEST_MODULES. It imports nothing the compositor would not import anyway.
SITECUSTOMIZE = """\
import os
import signal
import sys


def _write_modules(signum, frame):
    path = os.environ["ZIONWM_TEST_MODULES"]
    with open(path + ".tmp", "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
    os.replace(path + ".tmp", path)


if os.environ.get("ZIONWM_TEST_MODULES"):
    signal.signal(signal.SIGUSR2, _write_modules)
"""


def _module_env(root: Path) -> dict[str, str]:
    site = root / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"PYTHONPATH": str(site), "ZIONWM_TEST_MODULES": str(root / "modules.txt")}


def _modules(comp: Compositor) -> set[str]:
    """The compositor's `sys.modules` now. A Python signal handler runs when the interpreter
    next runs Python code; a status request makes sure it does."""
    assert comp.proc is not None
    out = Path(comp.env["ZIONWM_TEST_MODULES"])
    out.unlink(missing_ok=True)
    os.kill(comp.proc.pid, signal.SIGUSR2)

    def written() -> bool:
        comp.zjson("status")
        return out.exists()

    wait_for(written, 30, "the compositor writing its module list")
    return set(out.read_text().split())


# Modules the compositor does not import at start, and why each is not needed then:
KEPT_OUT_AT_START = {
    # the command line of a session is parsed without argparse (and its gettext, locale)
    "argparse": "zionwm.cli parses the session's own options; argparse only for the rest",
    "gettext": "argparse's",
    # a time stamp is only formatted by the command-line tools
    "datetime": "zionwm.cli_table.time_text",
    # a capture's PNG is base64-encoded for its control reply only
    "base64": "compositor.capture.control_request",
    # the X window manager comes with the first X11 program of a desktop with x11=True
    "zionwm.compositor.xwm": "compositor.xwayland, at the first X11 start",
    "zionwm.compositor.xviews": "compositor.xwm's",
    "wlroots.xwayland": "compositor.xwm's",
}


def test_start_leaves_out_what_the_first_frame_does_not_need(
    make_compositor: Callable[..., Compositor], tmp_path: Path
) -> None:
    """The default config (its gaming desktop has x11=True): the modules above are not in
    the running compositor, while the compositor's own are."""
    comp = make_compositor(None, extra_env=_module_env(tmp_path))
    modules = _modules(comp)
    assert {"zionwm.compositor.server", "zionwm.compositor.xwayland"} <= modules
    assert sorted(m for m in KEPT_OUT_AT_START if m in modules) == []


def test_a_capture_brings_base64_in(
    make_compositor: Callable[..., Compositor], tmp_path: Path
) -> None:
    """The module list is read from the live process: what a request imports shows up."""
    comp = make_compositor(None, extra_env=_module_env(tmp_path))
    assert "base64" not in _modules(comp)
    with ControlClient(comp.runtime / "zionwm" / "ipc.sock") as c:
        shot = c.request("capture", desktop=comp.zjson("status")["active"])
    assert shot["png"] and "base64" in _modules(comp)
