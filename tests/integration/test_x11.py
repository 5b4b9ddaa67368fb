"""X11 programs per desktop: each x11 desktop has its own Xwayland, started on first use
inside that desktop's sandbox and cgroup; X11 programs show framed in the desktop's colour,
cannot see another desktop's X11 windows, and desktops without x11 get no X at all.
Real compositor, real Xwayland, real X clients (x11-apps, x11-utils)."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.harness import Compositor, colour_near, require, wait_for
from zionwm.compositor.xwayland import is_failed_start, xwayland_argv
from zionwm.isolation.bwrap import X11_SOCKET_DIR, HostFacts, MountKind, plan_sandbox
from zionwm.isolation.spec import DesktopSpec

WORK = "#22c55e"
CONFIG = """\
from zionwm.config import desktop
desktop("personal", colour="#3b82f6")
desktop("work", colour="#22c55e", x11=True)
desktop("gaming", colour="#a855f7", x11=True)
"""

# ---- pure parts ----

HOST = HostFacts(uid=1000, gid=1000, user="alice")


def _plan(x11: bool, x11_dir: str | None) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    spec = DesktopSpec("work", (0, 1, 0, 1), x11=x11)
    plan = plan_sandbox(
        spec,
        ["xeyes"],
        HOST,
        host_env={"DISPLAY": ":1"},
        wayland_socket="/run/zw/work/wayland-0",
        x11_socket_dir=x11_dir,
    )
    return dict(plan.env), [(m.kind.value, m.source, m.dest) for m in plan.mounts]


def test_plan_binds_only_the_desktops_x_socket_dir_read_only() -> None:
    env, mounts = _plan(True, "/run/zw/work/x11")
    assert env["DISPLAY"] == ":0"
    binds = [m for m in mounts if m[2] == X11_SOCKET_DIR]
    assert binds == [(MountKind.RO_BIND.value, "/run/zw/work/x11", X11_SOCKET_DIR)]
    # after the /tmp tmpfs, or the tmpfs would hide it
    dests = [m[2] for m in mounts]
    assert dests.index("/tmp") < dests.index(X11_SOCKET_DIR)


@pytest.mark.parametrize(("x11", "x11_dir"), [(False, "/run/zw/work/x11"), (True, None)])
def test_plan_without_x11_has_no_display(x11: bool, x11_dir: str | None) -> None:
    env, mounts = _plan(x11, x11_dir)
    assert "DISPLAY" not in env  # not even the host's
    assert not [m for m in mounts if ".X11-unix" in m[2]]


def test_xwayland_listens_only_on_the_socket_it_is_given() -> None:
    argv = xwayland_argv(7, "/usr/bin/Xwayland", idle_exit=15)
    assert argv[:2] == ["/usr/bin/Xwayland", ":0"]
    assert argv[argv.index("-listenfd") + 1] == "7"
    assert argv[argv.index("-terminate") + 1] == "15"
    assert "-rootless" not in argv and "-wm" not in argv  # rootful: no host-side XWM


def test_failed_start_is_a_quick_error_exit() -> None:
    assert is_failed_start(0.5, 1)
    assert is_failed_start(0.5, -9)
    assert not is_failed_start(0.5, 0)  # idle exit of a server nobody used
    assert not is_failed_start(60.0, 1)  # it ran: an exit later is not a failed start


# ---- the real thing ----


@pytest.fixture(scope="module")
def comp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compositor]:
    require("Xwayland")
    c = Compositor(tmp_path_factory.mktemp("x11"), config_text=CONFIG).start()
    try:
        yield c
    finally:
        c.stop()


def _x11_state(comp: Compositor, desktop: str) -> str:
    return str(comp.zjson("status")["x11"][desktop])


def _sandbox_pid(comp: Compositor, desktop: str) -> int:
    m = re.search(r"running \(pid (\d+)\)", _x11_state(comp, desktop))
    assert m, _x11_state(comp, desktop)
    return int(m.group(1))


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _xwayland_pid(comp: Compositor, desktop: str) -> int:
    """The Xwayland process itself, somewhere under its desktop's bwrap."""
    todo = [_sandbox_pid(comp, desktop)]
    while todo:
        pid = todo.pop()
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "Xwayland":
                return pid
        except OSError:
            continue
        todo += _children(pid)
    raise AssertionError(f"no Xwayland process under {desktop}'s sandbox")


def _run_in(comp: Compositor, desktop: str, script: str, name: str) -> str:
    """Run `script` in a sandbox of `desktop`; its output lands in that desktop's home."""
    out = comp.data / "zionwm" / "desktops" / desktop / "home" / name
    out.unlink(missing_ok=True)
    comp.zionctl(
        "launch",
        desktop,
        "--",
        "sh",
        "-c",
        f"({script}) > ~/{name}.tmp 2>&1; mv ~/{name}.tmp ~/{name}",
    )
    wait_for(out.exists, 20, f"{name} from {desktop}")
    return out.read_text()


def _px(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    p = img.getpixel(xy)
    assert isinstance(p, tuple), p
    return p


def _xeyes_on_work(comp: Compositor) -> dict[str, Any]:
    if not [w for w in comp.windows("work")]:
        comp.zionctl("launch", "work", "--", require("xeyes"))
    (win,) = comp.wait_window("work")
    # xeyes itself is in the server's tree (the window appears before the client maps)
    wait_for(
        lambda: "xeyes" in _run_in(comp, "work", "xwininfo -root -tree", "t.txt"),
        15,
        "xeyes on work's X server",
    )
    return win


def test_x11_program_shows_in_its_desktops_own_framed_xwayland(comp: Compositor) -> None:
    require("xwininfo")
    require("grim")
    win = _xeyes_on_work(comp)
    comp.zionctl("switch", "work")
    x, y = int(win["x"]), int(win["y"])

    def drawn() -> bool:
        img = comp.screenshot()
        # the frame (left and top edges; the root window is as large as the output)
        if not (
            colour_near(_px(img, (x - 1, y + 200)), WORK)
            and colour_near(_px(img, (x + 200, y - 1)), WORK)
        ):
            return False
        # the black root window (-br), and xeyes' white eyes at the root's top left
        if not colour_near(_px(img, (x + 600, y + 400)), "#000000"):
            return False
        eyes = img.crop((x, y, x + 150, y + 100))
        white = eyes.convert("L").point(lambda v: 255 if v > 230 else 0).histogram()[255]
        return bool(white > 1000)

    wait_for(drawn, 15, "xeyes drawn in work's framed Xwayland window")


@pytest.mark.security
def test_xwayland_runs_in_the_desktops_sandbox_and_cgroup(comp: Compositor) -> None:
    _xeyes_on_work(comp)
    pid = _xwayland_pid(comp, "work")
    # inside the sandbox: its own mount, pid and network namespaces
    for ns in ("mnt", "pid", "net"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    # in the desktop's cgroup (hybrid: every v1 controller and the unified tree)
    desk = comp.desktops()["work"]
    if not desk.get("cgroup"):
        pytest.skip(
            "no writable cgroups on this machine: "
            + "; ".join(comp.zjson("status")["cgroups"].get("problems", []))
        )
    paths = [ln.split(":", 2)[2] for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
    inst = comp.zjson("status")["instance"]["cgroup_root"]
    assert any(f"/{inst}/" in p and p.rstrip("/").endswith("/work") for p in paths), paths
    # it listens on no abstract or TCP socket, only the one it was handed
    unix = Path(f"/proc/{pid}/net/unix").read_text()
    assert "@/tmp/.X11-unix" not in unix
    assert Path(f"/proc/{pid}/net/tcp").read_text().count("\n") == 1  # header only


@pytest.mark.security
def test_another_desktops_x11_client_cannot_see_works_windows(comp: Compositor) -> None:
    # socket activation: no X server for gaming until its first X11 client connects
    assert _x11_state(comp, "gaming") == "waiting for the first X11 client"
    assert not comp.windows("gaming")
    _xeyes_on_work(comp)
    seen = _run_in(comp, "gaming", "xwininfo -root -tree", "tree.txt")
    assert "Root window id" in seen, seen  # it did reach an X server: gaming's own
    assert "xeyes" not in seen.lower(), seen
    assert "running" in _x11_state(comp, "gaming")
    assert _sandbox_pid(comp, "gaming") != _sandbox_pid(comp, "work")


def test_desktop_without_x11_gets_no_display(comp: Compositor) -> None:
    out = _run_in(
        comp,
        "personal",
        'echo "DISPLAY=[$DISPLAY]"; ls -a /tmp/.X11-unix; xeyes -display :0; echo rc=$?',
        "nox.txt",
    )
    assert "DISPLAY=[]" in out, out
    assert "No such file or directory" in out, out  # no /tmp/.X11-unix at all
    assert "rc=0" not in out, out
    assert comp.zjson("status")["x11"].get("personal") is None
    assert comp.desktops()["personal"]["x11"] == "off"


def test_a_dead_x_server_is_replaced_on_the_next_connection(comp: Compositor) -> None:
    _xeyes_on_work(comp)
    old = _sandbox_pid(comp, "work")
    os.kill(_xwayland_pid(comp, "work"), signal.SIGKILL)
    wait_for(
        lambda: "running" not in _x11_state(comp, "work") or _sandbox_pid(comp, "work") != old,
        10,
        "the old X server to be gone",
    )
    out = _run_in(comp, "work", "xwininfo -root -children", "again.txt")
    assert "Root window id" in out, out
    assert _sandbox_pid(comp, "work") != old


FAILING = """\
from zionwm.config import Limits, desktop
desktop("personal", colour="#3b82f6")
desktop("tiny", colour="#22c55e", x11=True, limits=Limits(memory_max="10M"))
"""


def test_x_server_that_cannot_start_is_given_up_until_a_reload(make_compositor: Any) -> None:
    """A real failure: Xwayland needs more memory than the desktop's limit, so the OOM killer
    ends every start. After three, X11 is off for that desktop with a notification, and the
    waiting client gets an error instead of hanging; a reload offers X11 again."""
    require("xwininfo")
    comp: Compositor = make_compositor(FAILING)
    if not comp.desktops()["tiny"].get("cgroup"):
        pytest.skip(
            "no writable cgroups (memory limits) on this machine: "
            + "; ".join(comp.zjson("status")["cgroups"].get("problems", []))
        )
    socket_path = comp.runtime / "zionwm" / "tiny" / "x11" / "X0"

    def attempt(name: str) -> None:
        out = _run_in(comp, "tiny", "xwininfo -root; echo rc=$?", name)
        assert "unable to open display" in out and "rc=1" in out, out
        state = _x11_state(comp, "tiny")
        assert state.startswith("disabled: Xwayland exited"), state
        assert not socket_path.exists()

    attempt("fail.txt")
    gave_up = [n for n in comp.zjson("status")["notifications"] if "X11 programs cannot" in n]
    assert len(gave_up) == 1, gave_up
    comp.zionctl("reload")
    assert _x11_state(comp, "tiny") == "waiting for the first X11 client"
    assert socket_path.exists()
    attempt("again.txt")  # tried again (three more starts), and gave up again
    gave_up = [n for n in comp.zjson("status")["notifications"] if "X11 programs cannot" in n]
    assert len(gave_up) == 2, gave_up
