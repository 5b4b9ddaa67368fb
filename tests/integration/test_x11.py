"""X11 programs per desktop: each x11 desktop has its own rootless Xwayland, started on
first use inside that desktop's sandbox and cgroup, with the compositor as its window
manager: every X11 toplevel is an ordinary window of its desktop (framed in its colour,
listed with title and class), menus land where X put them, the clipboard is bridged with the
desktop's Wayland programs; X11 programs cannot see or reach another desktop's X server, and
desktops without x11 get no X at all. Real compositor, real Xwayland, real X clients
(x11-apps, x11-utils, xterm, xdotool, xclip)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.harness import Compositor, colour_near, require, wait_for
from zionwm.compositor.xwayland import is_failed_start, rootless_argv, xwayland_argv
from zionwm.isolation.bwrap import X11_SOCKET_DIR, HostFacts, MountKind, plan_sandbox
from zionwm.isolation.spec import DesktopSpec

WORK = "#22c55e"
CONFIG = """\
from zionwm.config import desktop
desktop("personal", colour="#3b82f6")
desktop("work", colour="#22c55e", x11=True, freeze_after=1)
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
    assert "-rootless" not in argv and "-wm" not in argv  # the rootful fallback


def test_rootless_xwayland_gets_only_the_compositors_descriptors() -> None:
    argv = rootless_argv(7, 8, 9, 10, "/usr/bin/Xwayland", idle_exit=15)
    assert argv[:3] == ["env", "WAYLAND_SOCKET=8", "/usr/bin/Xwayland"]
    assert argv[3] == ":0" and "-rootless" in argv
    assert argv[argv.index("-listenfd") + 1] == "7"  # one socket: no abstract, no TCP
    assert argv.count("-listenfd") == 1 and "-listen" not in argv
    assert argv[argv.index("-wm") + 1] == "9"
    assert argv[argv.index("-displayfd") + 1] == "10"
    assert argv[argv.index("-terminate") + 1] == "15"


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
    m = re.search(r"running (?:\w+ )?\(pid (\d+)\)", _x11_state(comp, desktop))
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


def _run_in(comp: Compositor, desktop: str, script: str, name: str, timeout: float = 20) -> str:
    """Run `script` in a sandbox of `desktop`; its output lands in that desktop's home."""
    out = comp.desktop_home(desktop) / name
    out.unlink(missing_ok=True)
    comp.zionctl(
        "launch",
        desktop,
        "--",
        "sh",
        "-c",
        f"({script}) > ~/{name}.tmp 2>&1; mv ~/{name}.tmp ~/{name}",
    )
    wait_for(out.exists, timeout, f"{name} from {desktop}")
    return out.read_text()


def _px(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    p = img.getpixel(xy)
    assert isinstance(p, tuple), p
    return p


def _x_window(comp: Compositor, desktop: str, cls: str, argv: list[str]) -> dict[str, Any]:
    """The window of X11 class `cls` on `desktop`, started with `argv` if it is not there."""
    if not [w for w in comp.windows(desktop) if w.get("class") == cls]:
        comp.zionctl("launch", desktop, "--", *argv)
    (win,) = comp.wait_window(desktop, app_id=cls, timeout=30)
    return win


def _uncovered_point(comp: Compositor, win: dict[str, Any]) -> tuple[int, int]:
    """A point of `win` that no other window of its desktop (with its frame) covers."""
    others = [w for w in comp.windows(win["desktop"]) if w["id"] != win["id"]]
    for dy in range(5, int(win["height"]) - 4, 5):
        for dx in range(5, int(win["width"]) - 4, 5):
            x, y = int(win["x"]) + dx, int(win["y"]) + dy
            if not any(
                o["x"] - 4 <= x <= o["x"] + o["width"] + 4
                and o["y"] - 4 <= y <= o["y"] + o["height"] + 4
                for o in others
            ):
                return x, y
    raise AssertionError(f"{win['title']} is covered by {others}")


def _xeyes_on_work(comp: Compositor) -> dict[str, Any]:
    return _x_window(comp, "work", "XEyes", [require("xeyes")])


def test_x11_program_is_its_own_framed_window_with_title_and_class(comp: Compositor) -> None:
    require("grim")
    win = _xeyes_on_work(comp)
    assert (win["title"], win["class"], win["instance"]) == ("xeyes", "XEyes", "xeyes")
    assert win["shell"] == "xwayland"
    assert (win["width"], win["height"]) == (150, 100)  # xeyes' own size, not the screen's
    assert "running rootless" in _x11_state(comp, "work")
    comp.zionctl("switch", "work")
    x, y, w, h = (int(win[k]) for k in ("x", "y", "width", "height"))

    def drawn() -> bool:
        img = comp.screenshot()
        # the frame on all four sides, in work's colour, hugging xeyes' own 150x100
        if not all(
            colour_near(_px(img, p), WORK)
            for p in (
                (x - 1, y + h // 2),
                (x + w, y + h // 2),
                (x + w // 2, y - 1),
                (x + w // 2, y + h),
            )
        ):
            return False
        # xeyes' white eyes inside it
        eyes = img.crop((x, y, x + w, y + h))
        white = eyes.convert("L").point(lambda v: 255 if v > 230 else 0).histogram()[255]
        return bool(white > 1000)

    wait_for(drawn, 15, "xeyes drawn in its own window framed in work's colour")


def test_two_x11_programs_are_two_windows_listed_by_sway_ipc(comp: Compositor) -> None:
    from tests.integration.test_ipc import swaymsg

    _xeyes_on_work(comp)
    clock = _x_window(comp, "work", "XClock", [require("xclock")])
    eyes = _xeyes_on_work(comp)
    assert clock["id"] != eyes["id"]
    assert (clock["title"], clock["class"]) == ("xclock", "XClock")
    out = swaymsg(comp, "-t", "get_tree", "-r")
    assert out.returncode == 0, out.stderr
    nodes: list[dict[str, Any]] = []
    todo = [json.loads(out.stdout)]
    while todo:
        n = todo.pop()
        nodes.append(n)
        todo += n.get("nodes", []) + n.get("floating_nodes", [])
    xwin = {n["name"]: n for n in nodes if n.get("shell") == "xwayland"}
    assert {"xeyes", "xclock"} <= set(xwin), [n.get("name") for n in nodes]
    assert xwin["xclock"]["app_id"] == "XClock"


def test_x11_window_is_focused_and_fullscreened_like_any_other(comp: Compositor) -> None:
    require("xprop")
    comp.zionctl("switch", "work")
    clock = _x_window(comp, "work", "XClock", [require("xclock")])
    # a real click (the compositor's pointer) focuses it
    from tests.integration.test_core import VirtualPointer

    VirtualPointer(comp).click(*_uncovered_point(comp, clock))
    wait_for(
        lambda: next(w for w in comp.windows("work") if w["id"] == clock["id"])["focused"],
        10,
        "xclock to have the focus",
    )
    comp.zionctl("fullscreen")

    def fullscreen() -> dict[str, Any] | None:
        w = next(w for w in comp.windows("work") if w["id"] == clock["id"])
        return w if w["fullscreen"] and w["width"] > 600 and w["height"] > 400 else None

    big = wait_for(fullscreen, 10, "xclock fullscreen")
    state = _run_in(
        comp, "work", "xprop -name xclock _NET_WM_STATE; xwininfo -name xclock", "state.txt"
    )
    assert "_NET_WM_STATE_FULLSCREEN" in state, state
    # X has the window at the place and size the compositor gave it
    for key, field in (("x", "Absolute upper-left X"), ("y", "Absolute upper-left Y"),
                       ("width", "Width"), ("height", "Height")):  # fmt: skip
        m = re.search(rf"{field}:\s+(-?\d+)", state)
        assert m and int(m.group(1)) == big[key], (key, big, state)
    comp.zionctl("fullscreen")
    wait_for(
        lambda: next(w for w in comp.windows("work") if w["id"] == clock["id"])["width"] == 164,
        10,
        "xclock back to its size",
    )


def test_x11_popup_appears_where_x_put_it_next_to_its_window(comp: Compositor) -> None:
    """A popup (an override-redirect X window, as menus are) placed the way toolkits place
    menus: from the toplevel's position on the X root. The compositor must tell X where it
    put the toplevel, and draw the popup where X put it."""
    comp.zionctl("switch", "work")
    probe = Path(__file__).resolve().parents[1] / "system" / "x11_popup.py"
    out = comp.desktop_home("work") / "popup.json"
    out.unlink(missing_ok=True)
    comp.zionctl("launch", "work", "--", "/usr/bin/python3", "-c", probe.read_text(), "popup.json")
    wait_for(out.exists, 30, "the popup program's report")
    seen = json.loads(out.read_text())
    (top,) = [w for w in comp.windows("work") if w["title"] == "zt-popup"]
    # X knows the toplevel where the compositor put it (not where the program asked)
    assert seen["toplevel"] == [top["x"], top["y"]], (seen, top)
    assert seen["popup"][:2] == [top["x"] + 30, top["y"] + 40]
    # the popup is not a window of its own: no frame, not listed
    assert len([w for w in comp.windows("work") if w["title"] == "zt-popup"]) == 1

    def drawn_exactly_at(box: list[int], colour: str) -> bool:
        x, y, w, h = box
        img = comp.screenshot()
        inside = [
            _px(img, (x + dx, y + dy)) for dx in (2, w // 2, w - 3) for dy in (2, h // 2, h - 3)
        ]
        # just outside it: the toplevel's white, not the popup's colour
        outside = [_px(img, (x - 3, y + h // 2)), _px(img, (x + w // 2, y - 3))]
        return all(colour_near(c, colour) for c in inside) and not any(
            colour_near(c, colour) for c in outside
        )

    wait_for(lambda: drawn_exactly_at(seen["popup"], "#ff0000"), 15, "the popup where X put it")
    # made override-redirect after it was created: still a popup, not a framed window
    assert seen["late"][:2] == [top["x"] + 140, top["y"] + 40]
    wait_for(lambda: drawn_exactly_at(seen["late"], "#0000ff"), 15, "the late popup, unframed")
    titles = [w["title"] for w in comp.windows("work")]
    assert titles.count("zt-popup") == 1 and "" not in titles, titles  # neither is listed
    # closing the window the compositor's way: the program does not speak WM_DELETE_WINDOW,
    # so the window manager disconnects it from its X server, and it is gone
    assert next(w for w in comp.windows("work") if w["id"] == top["id"])["focused"]
    comp.zionctl("close")
    wait_for(
        lambda: not [w for w in comp.windows("work") if w["title"] == "zt-popup"],
        15,
        "the popup program's window to close",
    )


@pytest.mark.security
def test_xwayland_runs_in_the_desktops_sandbox_and_cgroup_and_freezes(comp: Compositor) -> None:
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
    # frozen with its desktop, and thawed with it
    from tests.integration.test_freeze import _really_frozen

    comp.zionctl("switch", "personal")
    wait_for(lambda: comp.desktops()["work"]["frozen"], 10, "work to freeze")
    wait_for(lambda: _really_frozen(pid), 10, "the kernel to report Xwayland frozen")
    assert comp.alive()
    comp.zionctl("switch", "work")
    wait_for(lambda: not _really_frozen(pid), 10, "Xwayland to thaw")
    # and the compositor's XWM still talks to it
    _x_window(comp, "work", "XClock", [require("xclock")])


@pytest.mark.security
def test_another_desktops_x11_client_cannot_see_works_windows(comp: Compositor) -> None:
    require("xdotool")
    require("xprop")
    _xeyes_on_work(comp)
    seen = _run_in(
        comp,
        "gaming",
        "xwininfo -root -tree; echo ==; xdotool search --name . getwindowname %@; echo ==; "
        "xprop -root _NET_CLIENT_LIST",
        "tree.txt",
    )
    assert "Root window id" in seen, seen  # it did reach an X server: gaming's own
    assert "xeyes" not in seen.lower() and "xclock" not in seen.lower(), seen
    assert "running" in _x11_state(comp, "gaming")
    assert _sandbox_pid(comp, "gaming") != _sandbox_pid(comp, "work")
    # while work's own X clients see them
    mine = _run_in(comp, "work", "xdotool search --class XEyes getwindowname %@", "mine.txt")
    assert "xeyes" in mine, mine


@pytest.mark.security
def test_another_desktops_x11_socket_is_out_of_reach_by_path_and_abstract_name(
    comp: Compositor,
) -> None:
    """From inside gaming: work's X socket by its host path, and every abstract X name."""
    _xeyes_on_work(comp)
    work_socket = comp.runtime / "zionwm" / "work" / "x11" / "X0"
    probe = Path(__file__).resolve().parents[1] / "system" / "reach_probe.py"
    targets = [f"path:{work_socket}", "abstract:/tmp/.X11-unix/X0", "abstract:/tmp/.X11-unix/X1"]
    # live from the host, by path: the attack has a real target
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(work_socket))
    out = comp.desktop_home("gaming") / "reach.json"
    out.unlink(missing_ok=True)
    comp.zionctl("launch", "gaming", "--", "/usr/bin/python3", "-c", probe.read_text(),
                 "reach.json", *targets)  # fmt: skip
    wait_for(out.exists, 30, "the probe's answer from gaming")
    result = json.loads(out.read_text())
    reached = {t: result[t] for t in targets if result[t]["ok"]}
    assert not reached, reached


@pytest.mark.security
def test_the_compositor_itself_holds_no_x11_socket(comp: Compositor) -> None:
    """The window manager runs in the compositor, the X server does not: the compositor
    process has no socket bound to an X11 name (path or abstract) besides the desktops'
    private listening sockets it hands to their servers."""
    _xeyes_on_work(comp)
    mine = set()
    for fd in Path(f"/proc/{comp.proc.pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            mine.add(link[8:-1])
    named = []
    for line in Path(f"/proc/{comp.proc.pid}/net/unix").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 8 and parts[6] in mine and ".X11-unix" in parts[7]:
            named.append(parts[7])
    assert not named, named
    assert not list(Path("/tmp").glob(".X*-lock")) or all(
        int(p.read_text().split()[0]) != comp.proc.pid for p in Path("/tmp").glob(".X*-lock")
    )


def test_clipboard_is_bridged_between_x11_and_wayland_within_the_desktop(
    comp: Compositor,
) -> None:
    require("xclip")
    wl_copy, wl_paste = require("wl-copy"), require("wl-paste")
    comp.zionctl("switch", "work")
    _xeyes_on_work(comp)

    def paste(desktop: str) -> bytes:
        return comp.run([wl_paste, "--no-newline"], desktop=desktop, timeout=15).stdout

    # gaming has its own clipboard, set before and checked after (wl-paste and wl-copy
    # need their desktop shown: they take the keyboard focus for a moment)
    comp.zionctl("switch", "gaming")
    comp.client([wl_copy, "--foreground", "gaming-own"], desktop="gaming")
    wait_for(lambda: paste("gaming") == b"gaming-own", 15, "gaming's own clipboard")
    comp.zionctl("switch", "work")
    # X11 -> Wayland
    # -quiet: xclip stays in the foreground, owning the selection (its sandbox ends with it)
    comp.zionctl(
        "launch", "work", "--", "sh", "-c", "printf from-x11 | xclip -selection clipboard -i -quiet"
    )
    # each wl-paste takes the focus from xeyes for a moment: if xclip (slow under load) answers
    # the window manager then, wlroots drops the copy, and it reaches the seat only when xeyes
    # has the focus back (see the next test)
    wait_for(lambda: paste("work") == b"from-x11", 15, "wl-paste on work to see xclip's copy")
    # Wayland -> X11: wlroots' XWM serves X programs the Wayland clipboard only while an X
    # window has the focus (as when the user pastes into it)
    comp.client([wl_copy, "--foreground", "from-wayland"], desktop="work")
    wait_for(lambda: paste("work") == b"from-wayland", 15, "wl-copy's copy on work")
    from tests.integration.test_core import VirtualPointer

    eyes = _xeyes_on_work(comp)
    VirtualPointer(comp).click(*_uncovered_point(comp, eyes))
    wait_for(
        lambda: next(w for w in comp.windows("work") if w["id"] == eyes["id"])["focused"],
        10,
        "xeyes to have the focus",
    )
    wait_for(
        lambda: (
            _run_in(comp, "work", "xclip -selection clipboard -o", "xpaste.txt") == "from-wayland"
        ),
        20,
        "xclip on work to see wl-copy's copy",
    )
    comp.zionctl("switch", "gaming")
    assert paste("gaming") == b"gaming-own"
    gaming_x = _run_in(comp, "gaming", "xclip -selection clipboard -o; echo rc=$?", "gx.txt")
    assert "from-" not in gaming_x, gaming_x


def test_an_x_copy_made_while_a_wayland_window_has_the_focus_is_bridged_on_x_focus(
    comp: Compositor,
) -> None:
    """wlroots bridges an X program's copy only if an X window has the focus when the
    program answers with its types: a copy answered while a Wayland window had the focus
    (the user clicked one right after copying, with the X program slow under load) was
    lost, even once the user came back to X. It is bridged when an X window gets the focus."""
    for tool in ("xclip", "xwininfo", "xprop", "weston-simple-shm"):
        require(tool)
    wl_paste = require("wl-paste")
    comp.zionctl("switch", "work")
    eyes = _xeyes_on_work(comp)
    shm = comp.client(["weston-simple-shm"], desktop="work")
    try:
        (win,) = comp.wait_window("work", app_id="org.freedesktop.weston.simple-shm")
        wait_for(
            lambda: next(w for w in comp.windows("work") if w["id"] == win["id"])["focused"],
            10,
            "the Wayland window to have the focus",
        )
        comp.zionctl(
            "launch",
            "work",
            "--",
            "sh",
            "-c",
            "printf from-x11-late | xclip -selection clipboard -i -quiet",
        )
        # xclip has answered the window manager's request for its types: the answer waits
        # on one of the window manager's windows, unread, since no X window has the focus
        probe = (
            "for w in $(xwininfo -root -children | awk '/^ +0x/ {print $1}');"
            " do xprop -id $w _WL_SELECTION; done"
        )
        wait_for(
            lambda: "_WL_SELECTION(ATOM) = " in _run_in(comp, "work", probe, "wls.txt"),
            20,
            "xclip to answer the window manager",
        )

        def paste() -> bytes:
            return comp.run([wl_paste, "--no-newline"], desktop="work", timeout=15).stdout

        assert paste() != b"from-x11-late"  # wlroots' rule: not while Wayland has the focus
        from tests.integration.test_core import VirtualPointer

        VirtualPointer(comp).click(*_uncovered_point(comp, eyes))
        wait_for(lambda: paste() == b"from-x11-late", 15, "wl-paste to see xclip's copy")
    finally:
        shm.terminate()
        shm.wait()


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
    comp.zionctl("switch", "work")  # a frozen sandbox would not even reap the killed server
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


def test_idle_x_server_stops_after_its_last_program_and_comes_back(comp: Compositor) -> None:
    require("xwininfo")
    comp.zionctl("switch", "gaming")  # a frozen desktop's server would not count idle time
    _run_in(comp, "gaming", "xwininfo -root", "idle1.txt")
    first = _sandbox_pid(comp, "gaming")
    wait_for(
        lambda: _x11_state(comp, "gaming") == "waiting for the first X11 client",
        60,
        "gaming's Xwayland to stop once its last X11 program is gone",
    )
    out = _run_in(comp, "gaming", "xwininfo -root", "idle2.txt")
    assert "(the root window)" in out, out
    assert "running rootless" in _x11_state(comp, "gaming")
    assert _sandbox_pid(comp, "gaming") != first


@pytest.mark.security
def test_a_busy_x_program_of_a_freezing_desktop_cannot_hang_the_compositor(
    comp: Compositor,
) -> None:
    """The window manager answers X events with round trips to the X server. A program of
    work renames its window without pause while work is hidden and frozen, again and again:
    a round trip sent to a frozen X server would never be answered, and the compositor
    would hang. It must keep answering, and catch up once work is shown."""
    probe = Path(__file__).resolve().parents[1] / "system" / "x11_titles.py"
    comp.zionctl("switch", "work")
    comp.zionctl("launch", "work", "--", "/usr/bin/python3", "-c", probe.read_text())
    wait_for(
        lambda: [w for w in comp.windows("work") if w["title"].startswith("zt-title-")],
        30,
        "the renaming program's window",
    )
    for _ in range(6):
        comp.zionctl("switch", "personal")
        wait_for(lambda: comp.desktops()["work"]["frozen"], 15, "work to freeze")
        for _ in range(5):
            assert comp.zionctl("status", check=False).returncode == 0, "the compositor hung"
        comp.zionctl("switch", "work")
        wait_for(lambda: not comp.desktops()["work"]["frozen"], 15, "work to thaw")
    (win,) = [w for w in comp.windows("work") if w["title"].startswith("zt-title-")]
    first = int(win["title"].rsplit("-", 1)[1])
    wait_for(
        lambda: (
            int(
                next(w for w in comp.windows("work") if w["id"] == win["id"])["title"].rsplit(
                    "-", 1
                )[1]
            )
            > first
        ),
        15,
        "the title to move on after the thaw",
    )
    comp.zionctl("close")  # the renaming program's window has the focus: it goes
