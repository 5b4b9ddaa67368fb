"""Desktops as compartments: switching, what a desktop's clients can see and do, the
clipboard wall and its one-shot door, and config fallback/reload. Each security promise is
tested as an attack by a program running inside a desktop's sandbox (tests/inside.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Compositor, colour_near, require, wait_for
from tests.inside import launch_inside, run_inside
from tests.wire import WireClient

PRIVILEGED = {
    "zwlr_screencopy_manager_v1",
    "zwlr_export_dmabuf_manager_v1",
    "zwp_virtual_keyboard_manager_v1",
    "zwlr_virtual_pointer_manager_v1",
    "zwlr_data_control_manager_v1",
    "zwlr_foreign_toplevel_manager_v1",
    "zwlr_layer_shell_v1",
    "zwlr_output_manager_v1",
    "zwlr_output_power_manager_v1",
    "zwlr_gamma_control_manager_v1",
    "zwlr_input_inhibit_manager_v1",
    "zwp_keyboard_shortcuts_inhibit_manager_v1",
}


def _shows(comp: Compositor, win: dict[str, Any]) -> bool:
    """Is the window's frame on screen now (in its desktop's colour)?"""
    img = comp.screenshot()
    colour = comp.desktops()[win["desktop"]]["colour"]
    return colour_near(
        img.getpixel((win["x"] - 1, win["y"] + win["height"] // 2)), colour
    ) and colour_near(img.getpixel((win["x"] + win["width"], win["y"] + 10)), colour)


def test_switching_hides_and_shows_a_desktop(compositor: Compositor) -> None:
    require("weston-simple-shm")
    compositor.zionctl("launch", "work", "--", "weston-simple-shm")
    (win,) = compositor.wait_window("work")
    assert win["desktop"] == "work"
    compositor.zionctl("switch", "work")
    assert _shows(compositor, win)
    compositor.zionctl("switch", "personal")
    assert not _shows(compositor, win)
    # Super+2 typed on the host socket, as a person would
    compositor.type_keys("-M", "logo", "2", "-m", "logo")
    wait_for(lambda: compositor.desktops()["work"]["active"], 10, "Super+2 to show work")
    assert _shows(compositor, win)
    # focus came back to the window that had it on that desktop
    assert compositor.windows("work")[0]["focused"]
    # Super+Tab goes back to the previous desktop
    compositor.type_keys("-M", "logo", "-k", "Tab", "-m", "logo")
    wait_for(lambda: compositor.desktops()["personal"]["active"], 10, "Super+Tab")
    assert not _shows(compositor, win)


def test_each_switch_is_timed_with_its_wait_for_the_frame_clock(compositor: Compositor) -> None:
    """`status` keeps, for each switch, its latency to the frame that showed it and how much
    of it was the wait for the output's next frame event (the benchmark subtracts it)."""

    def record() -> dict[str, Any]:
        return dict(compositor.zjson("status")["switch_latency_ms"])

    for name in ("work", "personal", "work"):
        compositor.zionctl("switch", name)
    rec = wait_for(lambda: (r := record())["count"] >= 3 and r, 10, "three switches timed")
    assert len(rec["frame_wait_samples"]) == len(rec["samples"]) == rec["count"]
    for total, wait in zip(rec["samples"], rec["frame_wait_samples"], strict=True):
        assert 0 <= wait <= total


def test_a_request_made_while_hidden_is_answered_when_the_desktop_is_shown(
    compositor: Compositor,
) -> None:
    """A hidden desktop's clients are not resized (they may be frozen); what they asked for
    meanwhile is done by the switch that shows them, and only then."""
    app = WireClient(compositor.desktop_socket("work"))
    app.map_toplevel(200, 150)
    (win,) = compositor.wait_window("work")
    app.send(app.toplevel, 9)  # xdg_toplevel.set_maximized
    app.roundtrip()
    sizes = [(e.u32(0), e.u32(1)) for e in app.events if e.obj == app.toplevel and e.opcode == 0]
    assert all(size == (0, 0) for size in sizes), f"resized while hidden: {sizes}"
    assert not compositor.windows("work")[0]["maximized"]
    app.events.clear()
    compositor.zionctl("switch", "work")
    configure = app.wait_event(app.toplevel, 0)  # xdg_toplevel.configure
    size = (configure.u32(0), configure.u32(1))
    assert size[0] > win["width"] and size[1] > win["height"], f"not maximized: {size}"
    wait_for(lambda: compositor.windows("work")[0]["maximized"], 10, "maximized once shown")
    app.close()


def test_a_window_never_changes_desktop(compositor: Compositor) -> None:
    r = compositor.zionctl("move-to", "work", check=False)
    assert r.returncode != 0
    r = compositor.zionctl("switch", "nosuchdesk", check=False)
    assert r.returncode != 0 and "nosuchdesk" in (r.stderr + r.stdout)


def _globals(comp: Compositor, desktop: str | None) -> set[str]:
    """The globals wayland-info lists: on the host socket, or run inside `desktop`."""
    require("wayland-info")
    if desktop is None:
        r = comp.run(["wayland-info"])
        assert r.returncode == 0, r.stderr
        text = r.stdout.decode()
    else:
        inside = run_inside(comp, desktop, ["wayland-info"])
        assert inside.rc == 0, inside.err
        text = inside.out
    out = set()
    for line in text.splitlines():
        if "interface:" in line:
            out.add(line.split("interface:")[1].split(",")[0].strip().strip("'"))
    return out


@pytest.mark.security
def test_desktop_clients_see_no_privileged_protocols(compositor: Compositor) -> None:
    host = _globals(compositor, None)
    assert {"zwlr_screencopy_manager_v1", "zwp_virtual_keyboard_manager_v1"} <= host
    for desktop in ("personal", "work"):
        seen = _globals(compositor, desktop)
        assert "wl_compositor" in seen and "xdg_wm_base" in seen
        assert not seen & PRIVILEGED, seen & PRIVILEGED


@pytest.mark.security
def test_screen_capture_and_key_injection_fail_from_inside_a_desktop(
    compositor: Compositor, tmp_path: Path
) -> None:
    """grim and wtype, run in `work`'s sandbox as a user's program, while a terminal of
    `personal` waits for input: no screenshot, and not one key reaches the terminal."""
    grim, wtype = require("grim"), require("wtype")
    require("foot")
    typed = compositor.desktop_home("personal") / "typed.txt"
    compositor.zionctl("launch", "personal", "--", "foot", "sh", "-c", "cat > ~/typed.txt")
    compositor.wait_window("personal", "foot")
    shot = run_inside(compositor, "work", ["grim", "stolen.png"])
    assert shot.rc != 0 and not (shot.dir / "stolen.png").exists()
    assert "screencopy" in shot.err
    keys = run_inside(compositor, "work", ["wtype", "rm -rf ~\n"])
    assert keys.rc != 0
    assert "virtual" in keys.err.lower() or "keyboard" in keys.err.lower(), keys.err
    # the same tools on the trusted host socket work (the controls), and the terminal got
    # exactly what the host typed
    assert compositor.run([grim, str(tmp_path / "ok.png")]).returncode == 0
    assert compositor.run([wtype, "ok\n"]).returncode == 0
    compositor.type_keys("-M", "ctrl", "d", "-m", "ctrl")
    wait_for(lambda: typed.exists() and typed.read_text() == "ok\n", 15, "the host's keys")


def _paste(comp: Compositor, desktop: str) -> str:
    """What wl-paste, run inside `desktop`, reads from the clipboard."""
    require("wl-paste")
    return run_inside(comp, desktop, ["wl-paste", "--no-newline"]).out


@pytest.mark.security
def test_clipboards_are_per_desktop_and_cross_only_by_the_user(compositor: Compositor) -> None:
    """wl-copy and wl-paste run inside the desktops' sandboxes: `work` can neither read nor
    replace what `personal` copied; only the user's own gesture carries it across, once."""
    require("wl-copy")
    launch_inside(compositor, "personal", ["wl-copy", "--foreground", "secret"])
    wait_for(
        lambda: _paste(compositor, "personal") == "secret",
        15,
        "the copy to be pasteable on its own desktop",
    )
    compositor.zionctl("switch", "work")
    assert _paste(compositor, "work") == "", "another desktop read personal's clipboard"
    # a program's sandbox ends with it, so the copy stays in the foreground
    launch_inside(compositor, "work", ["wl-copy", "--foreground", "planted"])
    wait_for(lambda: _paste(compositor, "work") == "planted", 15, "work's own copy (control)")
    compositor.zionctl("switch", "personal")
    assert _paste(compositor, "personal") == "secret", "work replaced personal's clipboard"
    # the user's explicit gesture: Super+Shift+C on personal, Super+Shift+V on work
    compositor.type_keys("-M", "logo", "-M", "shift", "c", "-m", "shift", "-m", "logo")
    wait_for(
        lambda: any("Copied 6 bytes" in n for n in compositor.zjson("status")["notifications"]),
        10,
        "the compositor to hold the copied text",
    )
    compositor.zionctl("switch", "work")
    compositor.type_keys("-M", "logo", "-M", "shift", "v", "-m", "shift", "-m", "logo")
    assert _paste(compositor, "work") == "secret"
    # once only: the buffer is wiped after delivery
    assert _paste(compositor, "work") == ""
    assert "clipboard transfer: from=personal to=work size=6" in compositor.log()


@pytest.mark.security
def test_the_primary_selection_is_per_desktop_too(compositor: Compositor) -> None:
    """Selected text (middle-click paste) is a second clipboard: same wall, from inside."""
    require("wl-copy")
    require("wl-paste")
    launch_inside(compositor, "personal", ["wl-copy", "--primary", "--foreground", "selected"])

    def primary(desktop: str) -> str:
        return run_inside(compositor, desktop, ["wl-paste", "--primary", "--no-newline"]).out

    wait_for(lambda: primary("personal") == "selected", 15, "the selection on its desktop")
    compositor.zionctl("switch", "work")
    assert primary("work") == "", "another desktop read personal's primary selection"


BROKEN = """\
from zionwm.config import desktop
desktop("personal", colour="#123456")
desktop("personal", colour="#zzzzzz")
"""

GOOD = """\
from zionwm.config import desktop, bind
desktop("alpha", colour="#112233")
desktop("beta", colour="#445566")
bind("Super+1", "switch alpha")
"""


def test_broken_config_falls_back_to_default_and_says_so(make_compositor: Any) -> None:
    comp = make_compositor(BROKEN)
    assert set(comp.desktops()) >= {"personal", "work", "web"}
    notes = "\n".join(comp.zjson("status")["notifications"])
    assert "default config" in notes and "config.py:3" in notes


def test_failed_reload_keeps_the_running_config(make_compositor: Any) -> None:
    comp = make_compositor(GOOD)
    assert list(comp.desktops()) == ["alpha", "beta"]
    assert comp.config_path is not None
    comp.config_path.write_text(BROKEN)
    r = comp.zionctl("reload", check=False)
    assert r.returncode != 0 and "config.py:3" in (r.stderr + r.stdout)
    assert list(comp.desktops()) == ["alpha", "beta"]
    comp.config_path.write_text(GOOD.replace('"beta"', '"gamma"'))
    comp.zionctl("reload")
    assert list(comp.desktops()) == ["alpha", "gamma"]
    assert (comp.runtime / "zionwm" / "gamma" / "wayland-0").exists()
    assert not (comp.runtime / "zionwm" / "beta" / "wayland-0").exists()


def test_check_config_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    import sys

    cfg = tmp_path / "config.py"
    cfg.write_text(BROKEN)
    r = subprocess.run(
        [str(Path(sys.executable).parent / "zionwm"), "--check-config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1
    assert f"{cfg}:3:" in r.stdout
