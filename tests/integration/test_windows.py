"""Window management with real clients, driven as a person would: Alt+Tab, Super+arrows and
Super+T typed with wtype, zionctl and sway IPC; geometry read back through `zionctl windows
--json`, and the tiled screen checked with grim."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from tests.harness import Compositor, colour_near, require, wait_for
from tests.wire import WireClient
from zionwm.compositor.ui import STRIP_HEIGHT

B = 3  # frame width
W, H = 1280, 720  # the headless output
TOP = STRIP_HEIGHT  # the usable area starts below the strip
PERSONAL = "#3b82f6"

TILE_CONFIG = """\
from zionwm.config import bind, desktop
desktop("personal", colour="#3b82f6", layout="tile")
desktop("work", colour="#22c55e")
bind("Super+T", "layout toggle")
"""


def geometry(w: dict[str, Any]) -> tuple[int, int, int, int]:
    return w["x"], w["y"], w["width"], w["height"]


def by_app(comp: Compositor, app_id: str) -> dict[str, Any]:
    return next(w for w in comp.windows() if w["app_id"] == app_id)


def wait_geometry(
    comp: Compositor, app_id: str, want: tuple[int, int, int, int], timeout: float = 20
) -> dict[str, Any]:
    return wait_for(
        lambda: (w := by_app(comp, app_id)) and geometry(w) == want and w,
        timeout,
        f"{app_id} at {want} (now {geometry(by_app(comp, app_id))})",
    )


def focused(comp: Compositor) -> str | None:
    return next((w["app_id"] for w in comp.windows() if w["focused"]), None)


def wait_focused(comp: Compositor, app_id: str) -> None:
    wait_for(lambda: focused(comp) == app_id, 15, f"{app_id} focused (now {focused(comp)})")


def foot(comp: Compositor, desktop: str, app_id: str) -> dict[str, Any]:
    comp.zionctl("launch", desktop, "--", "foot", f"--app-id={app_id}")
    return wait_for(
        lambda: next((w for w in comp.windows(desktop) if w["app_id"] == app_id), None),
        20,
        f"foot {app_id} on {desktop}",
    )


def close_window(comp: Compositor, wid: int) -> None:
    """Focus a window with the keyboard commands, then close it as a person would."""
    for _ in range(10):
        ws = {w["id"]: w for w in comp.windows()}
        if wid not in ws:
            return  # gone already (a toolkit may close a dialog with its parent)
        if ws[wid]["focused"]:
            comp.zionctl("close")
            break
        comp.zionctl("focus", "next")
    else:
        raise AssertionError(f"window {wid} never took the focus")
    wait_for(lambda: all(w["id"] != wid for w in comp.windows()), 20, f"window {wid} closed")


def frame_inside_area(w: dict[str, Any]) -> bool:
    x, y, width, height = geometry(w)
    return x - B >= 0 and y - B >= TOP and x + width + B <= W and y + height + B <= H


def test_alt_tab_cycles_the_windows_of_the_shown_desktop_only(compositor: Compositor) -> None:
    require("foot")
    require("wtype")
    foot(compositor, "work", "elsewhere")  # a window of another desktop, never to be focused
    compositor.zionctl("switch", "personal")
    for name in ("one", "two", "three"):
        foot(compositor, "personal", name)
        wait_focused(compositor, name)
    wins = compositor.windows("personal")
    # new windows cascade: each one step from the last, all inside the usable area
    assert len({(w["x"], w["y"]) for w in wins}) == 3
    assert all(frame_inside_area(w) for w in wins)

    # Alt+Tab once goes back to the previous window, and once more returns
    compositor.type_keys("-M", "alt", "-k", "Tab", "-m", "alt")
    wait_focused(compositor, "two")
    compositor.type_keys("-M", "alt", "-k", "Tab", "-m", "alt")
    wait_focused(compositor, "three")
    # Alt held, Tab twice: the third most recent; Alt+Shift+Tab goes back one
    compositor.type_keys("-M", "alt", "-k", "Tab", "-k", "Tab", "-m", "alt")
    wait_focused(compositor, "one")
    compositor.type_keys("-M", "alt", "-M", "shift", "-k", "Tab", "-m", "shift", "-m", "alt")
    wait_focused(compositor, "three")
    # a long cycle with Alt held visits only this desktop's three windows, then wraps
    seen = []
    for _ in range(6):
        before = focused(compositor)
        compositor.type_keys("-M", "alt", "-k", "Tab", "-m", "alt")
        wait_for(lambda b=before: focused(compositor) != b, 15, "focus to move")
        seen.append(focused(compositor))
        assert not by_app(compositor, "elsewhere")["focused"]
    assert set(seen) == {"one", "three"}  # each lone Alt+Tab toggles the two most recent
    # zionctl (no key held): `focus next` visits every window in turn, `prev` goes back
    visited = []
    for _ in range(3):
        compositor.zionctl("focus", "next")
        visited.append(focused(compositor))
        assert not by_app(compositor, "elsewhere")["focused"]
    assert sorted(visited) == ["one", "three", "two"]
    compositor.zionctl("focus", "prev")
    assert focused(compositor) == visited[-2]


def test_snap_maximize_restore_move_and_resize(compositor: Compositor) -> None:
    require("foot")
    require("wtype")
    before = geometry(foot(compositor, "personal", "snappy"))
    wait_focused(compositor, "snappy")
    half_w = W // 2 - 2 * B
    left = (B, TOP + B, half_w, H - TOP - 2 * B)
    right = (W // 2 + B, TOP + B, W - W // 2 - 2 * B, H - TOP - 2 * B)
    full = (B, TOP + B, W - 2 * B, H - TOP - 2 * B)

    compositor.type_keys("-M", "logo", "-k", "Left", "-m", "logo")  # Super+Left
    assert wait_geometry(compositor, "snappy", left)["snapped"] == "left"
    compositor.zionctl("snap", "right")
    wait_geometry(compositor, "snappy", right)
    compositor.type_keys("-M", "logo", "-k", "Up", "-m", "logo")  # Super+Up
    assert wait_geometry(compositor, "snappy", full)["maximized"]
    compositor.type_keys("-M", "logo", "-k", "Down", "-m", "logo")  # Super+Down: restore
    w = wait_geometry(compositor, "snappy", before)  # where it was before snapping
    assert not w["maximized"] and w["snapped"] is None

    # keyboard move: 40 px per press, stopping at the edge of the usable area
    x, y, width, height = before
    compositor.type_keys("-M", "logo", "-M", "shift", "-k", "Right", "-m", "shift", "-m", "logo")
    wait_geometry(compositor, "snappy", (x + 40, y, width, height))
    compositor.zionctl("move", "up", "5000")
    wait_geometry(compositor, "snappy", (x + 40, TOP + B, width, height))
    # keyboard resize: 40 px per press
    compositor.type_keys("-M", "logo", "-M", "ctrl", "-k", "Right", "-m", "ctrl", "-m", "logo")
    wait_geometry(compositor, "snappy", (x + 40, TOP + B, width + 40, height))
    compositor.zionctl("resize", "shrink", "height", "100", "px")
    w = wait_geometry(compositor, "snappy", (x + 40, TOP + B, width + 40, height - 100))
    assert frame_inside_area(w)

    # bad input: a clear error, nothing changes, the compositor keeps running
    r = compositor.zionctl("snap", "up", check=False)
    assert r.returncode != 0 and "expected 'left' or 'right'" in r.stderr + r.stdout
    assert geometry(by_app(compositor, "snappy")) == (x + 40, TOP + B, width + 40, height - 100)


def sway_command(comp: Compositor, text: str) -> Any:
    i3ipc = __import__("pytest").importorskip("i3ipc")
    conn = i3ipc.Connection(socket_path=str(comp.runtime / "zionwm" / "sway-ipc.sock"))
    try:
        return conn.command(text)
    finally:
        conn._cmd_socket.close()


def frame_drawn(img: Any, w: dict[str, Any], colours: tuple[str, ...]) -> bool:
    """The four frame edges of a window are on screen in its desktop's colour."""
    x, y, width, height = geometry(w)
    points = [
        (x + width // 2, y - B + 1),  # top
        (x + width // 2, y + height + 1),  # bottom
        (x - B + 1, y + height // 2),  # left
        (x + width + 1, y + height // 2),  # right
    ]
    return all(any(colour_near(img.getpixel(p), c, 20) for c in colours) for p in points)


def test_tiling_master_and_stack_dialog_close_and_switch(
    make_compositor: Any, tmp_path: Path
) -> None:
    require("foot")
    require("wtype")
    require("weston-stacking")
    comp: Compositor = make_compositor(TILE_CONFIG)
    area_h = H - TOP - 2 * B
    full = (B, TOP + B, W - 2 * B, area_h)
    master = (B, TOP + B, W // 2 - 2 * B, area_h)
    stack = (W // 2 + B, TOP + B, W - W // 2 - 2 * B, area_h)
    top_h = (H - TOP) // 2
    stack_top = (W // 2 + B, TOP + B, W - W // 2 - 2 * B, top_h - 2 * B)
    stack_bottom = (W // 2 + B, TOP + top_h + B, W - W // 2 - 2 * B, H - TOP - top_h - 2 * B)

    foot(comp, "personal", "a")
    assert wait_geometry(comp, "a", full)["tiled"]
    foot(comp, "personal", "b")
    wait_geometry(comp, "a", master)
    wait_geometry(comp, "b", stack)
    foot(comp, "personal", "c")
    wait_geometry(comp, "a", master)
    wait_geometry(comp, "b", stack_top)
    wait_geometry(comp, "c", stack_bottom)

    # a dialog (a toplevel with a parent: weston-stacking's transient window) floats,
    # centred on its parent, and the tiles stay as they are
    comp.zionctl("launch", "personal", "--", "weston-stacking")
    app = "org.freedesktop.weston.stacking-test"
    wait_for(lambda: len(comp.windows("personal")) == 4, 20, "weston-stacking mapped")
    parent = by_app(comp, app)
    comp.type_keys("t")  # its "transient window" key
    dialog = wait_for(
        lambda: next((w for w in comp.windows("personal") if w["dialog"]), None),
        20,
        "the transient window",
    )
    assert not dialog["tiled"]
    assert frame_inside_area(dialog)
    # centred on its parent as the parent was then; the toolkit's parent window may
    # still settle its own size afterwards, so its centre is checked to lie inside it
    px, py, pw, ph = geometry(by_app(comp, app))
    cx, cy = dialog["x"] + dialog["width"] // 2, dialog["y"] + dialog["height"] // 2
    assert abs(cx - (px + pw // 2)) <= 1
    assert py <= cy <= py + ph
    assert parent["tiled"]

    # close the dialog and its parent: the three terminals are tiled as before
    close_window(comp, dialog["id"])
    close_window(comp, parent["id"])
    wait_geometry(comp, "a", master)
    wait_geometry(comp, "b", stack_top)
    wait_geometry(comp, "c", stack_bottom)

    img = comp.screenshot(tmp_path / "tiled.png")
    wins = comp.windows("personal")
    dim = "#{:02x}{:02x}{:02x}".format(
        *(round(int(PERSONAL[i : i + 2], 16) * 0.55) for i in (1, 3, 5))
    )
    for w in wins:
        assert frame_inside_area(w), w
        assert frame_drawn(img, w, (PERSONAL, dim)), w

    # closing a window re-tiles: c goes, b takes the whole stack
    close_window(comp, by_app(comp, "c")["id"])
    wait_geometry(comp, "b", stack)
    wait_geometry(comp, "a", master)

    # sway IPC: focus next works as sway's does; move swaps a tiled window with its neighbour
    replies = sway_command(comp, "focus next")
    assert all(r.success for r in replies)
    comp.zionctl("move", "left")
    wait_for(
        lambda: {geometry(by_app(comp, "a")), geometry(by_app(comp, "b"))} == {master, stack},
        20,
        "a and b tiled after the swap",
    )

    # Super+T: float; windows stay where they were and are no longer tiled
    comp.type_keys("-M", "logo", "t", "-m", "logo")
    wait_for(lambda: not any(w["tiled"] for w in comp.windows("personal")), 20, "floating")
    assert comp.desktops()["personal"]["layout"] == "float"
    comp.zionctl("layout", "tile")
    wait_for(lambda: all(w["tiled"] for w in comp.windows("personal")), 20, "tiled again")
    assert comp.desktops()["work"]["layout"] == "float"


def test_hidden_desktop_is_tiled_when_shown_and_reload_applies_layout(
    make_compositor: Any,
) -> None:
    require("foot")
    comp: Compositor = make_compositor(TILE_CONFIG)
    area_h = H - TOP - 2 * B
    master = (B, TOP + B, W // 2 - 2 * B, area_h)
    stack = (W // 2 + B, TOP + B, W - W // 2 - 2 * B, area_h)

    # windows that map while their tiled desktop is hidden get their tiles when it is shown
    comp.zionctl("switch", "work")
    foot(comp, "personal", "p1")
    foot(comp, "personal", "p2")
    # no configure reaches a hidden desktop's (possibly frozen) clients: foot's own size
    assert geometry(by_app(comp, "p1"))[2:] == (700, 500)
    comp.zionctl("switch", "personal")
    wait_geometry(comp, "p1", master)
    wait_geometry(comp, "p2", stack)

    # work floats; a reload that makes it tile applies at once, personal's run-time choice
    # (float) survives because its own line did not change
    comp.zionctl("layout", "float")
    foot(comp, "work", "w1")
    assert not by_app(comp, "w1")["tiled"]
    assert comp.config_path is not None
    comp.config_path.write_text(
        TILE_CONFIG.replace(
            'desktop("work", colour="#22c55e")', 'desktop("work", colour="#22c55e", layout="tile")'
        )
    )
    comp.zionctl("reload")
    assert comp.desktops()["work"]["layout"] == "tile"
    assert comp.desktops()["personal"]["layout"] == "float"
    comp.zionctl("switch", "work")
    wait_geometry(comp, "w1", (B, TOP + B, W - 2 * B, area_h))

    # a config with a bad layout is refused with its line; the running one is kept
    comp.config_path.write_text(TILE_CONFIG.replace('layout="tile"', 'layout="grid"'))
    r = comp.zionctl("reload", check=False)
    assert r.returncode != 0
    assert "config.py:2: desktop 'personal': layout: must be one of 'float', 'tile'" in (
        r.stdout + r.stderr
    )
    assert comp.desktops()["work"]["layout"] == "tile"
    assert comp.alive()


def test_fixed_size_window_floats_centred_over_the_tiles(make_compositor: Any) -> None:
    """A window whose minimum and maximum sizes are equal (a typical dialog) is never tiled:
    it floats, centred on the desktop's focused window, and the tiles stay as they are."""
    require("foot")
    comp: Compositor = make_compositor(TILE_CONFIG)
    full = (B, TOP + B, W - 2 * B, H - TOP - 2 * B)
    foot(comp, "personal", "a")
    wait_geometry(comp, "a", full)

    c = WireClient(comp.desktop_socket("personal"))
    shm, surface, xdg, top = c.new_toplevel()
    c.send(top, 7, struct.pack("=ii", 300, 200))  # set_max_size
    c.send(top, 8, struct.pack("=ii", 300, 200))  # set_min_size
    c.configure(surface, xdg)
    c.show(surface, c.shm_buffer(shm, 300, 200, 0xFFFF0000), 300, 200)  # mapped
    c.roundtrip()
    try:
        dialog = wait_for(
            lambda: next((w for w in comp.windows("personal") if w["dialog"]), None),
            15,
            "the fixed-size window",
        )
        assert not dialog["tiled"]
        assert (dialog["width"], dialog["height"]) == (300, 200)
        ax, ay, aw, ah = full
        assert (dialog["x"] + 150, dialog["y"] + 100) == (ax + aw // 2, ay + ah // 2)
        assert geometry(by_app(comp, "a")) == full  # the one tiled window keeps its tile
    finally:
        c.close()


def test_a_tiled_window_dragged_with_the_pointer_goes_back_to_its_tile(
    make_compositor: Any,
) -> None:
    require("foot")
    from tests.integration.test_core import VirtualKeyboard, VirtualPointer

    comp: Compositor = make_compositor(TILE_CONFIG)
    area_h = H - TOP - 2 * B
    stack = (W // 2 + B, TOP + B, W - W // 2 - 2 * B, area_h)
    foot(comp, "personal", "a")
    foot(comp, "personal", "b")
    wait_geometry(comp, "b", stack)
    wait_focused(comp, "b")
    kb = VirtualKeyboard(comp)
    vp = VirtualPointer(comp)
    sx, sy = stack[0] + 50, stack[1] + 50
    kb.modifiers(kb.logo)  # Super+drag: the compositor's move
    vp.move(sx, sy)
    vp.t += 1
    vp.c.send(vp.ptr, 2, struct.pack("=III", vp.t, 0x110, 1))  # press
    vp.c.send(vp.ptr, 4)
    for step in range(1, 6):
        vp.move(sx - 40 * step, sy + 20 * step)
    vp.c.roundtrip()
    wait_for(lambda: by_app(comp, "b")["x"] < stack[0], 10, "the drag to move b")
    vp.t += 1
    vp.c.send(vp.ptr, 2, struct.pack("=III", vp.t, 0x110, 0))  # release
    vp.c.send(vp.ptr, 4)
    vp.c.roundtrip()
    kb.modifiers(0)
    wait_geometry(comp, "b", stack)
    assert by_app(comp, "b")["tiled"]


def test_alt_tab_from_a_host_window_after_a_switch(compositor: Compositor) -> None:
    """A host window (the manager) has the keyboard; the user switches desktops and back:
    it keeps the keyboard, being shown on every desktop. Alt+Tab is the user's own gesture,
    so it takes the keyboard to the desktop's window, as a click does."""
    require("foot")
    require("wtype")
    compositor.zionctl("switch", "personal")
    foot(compositor, "personal", "one")
    wait_focused(compositor, "one")
    host = WireClient(Path(compositor.runtime) / compositor.socket_name)
    host.map_toplevel(100, 50)
    wait_for(lambda: any(w["focused"] for w in compositor.windows("host")), 15, "host focused")
    compositor.zionctl("switch", "work")
    compositor.zionctl("switch", "personal")
    assert any(w["focused"] for w in compositor.windows("host")), compositor.windows()
    compositor.type_keys("-M", "alt", "-k", "Tab", "-m", "alt")
    wait_focused(compositor, "one")
    host.close()


def _point_at(comp: Compositor, x: int, y: int, layout: tuple[int, int] = (2 * W, H)) -> None:
    """The pointer to (x, y) of an output layout of size `layout`, through the virtual
    pointer of a trusted tool on the host socket."""
    from tests.integration.test_core import VirtualPointer

    vp = VirtualPointer(comp)
    vp.t += 1
    vp.c.send(vp.ptr, 1, struct.pack("=IIIII", vp.t, x, y, *layout))  # motion_absolute
    vp.c.send(vp.ptr, 4)  # frame
    vp.c.roundtrip()
    vp.c.close()


def _shade_of(pixel: tuple[int, int, int], colour: str) -> bool:
    """`pixel` is `colour` or a darker shade of it (an unfocused window's frame)."""
    want = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    k = max(pixel) / max(want)
    return k > 0.3 and all(abs(p - c * k) <= 12 for p, c in zip(pixel, want, strict=True))


def _shows_frame_on(img: Any, w: dict[str, Any], colour: str) -> bool:
    """The window's frame, in its desktop's colour, is on screen where the model says."""
    x, y, width, height = geometry(w)
    edges = [(x - 2, y + height // 2), (x + width + 1, y + height // 2), (x + width // 2, y - 2)]
    return all(_shade_of(img.getpixel(p), colour) for p in edges)


def test_a_new_window_opens_on_the_output_the_pointer_is_on(make_compositor: Any) -> None:
    """Two outputs side by side: a window started while the pointer is on the right one
    opens there, centred in its area; with the pointer back on the left, the next one opens
    on the left; each frame is seen on screen where it was placed."""
    require("weston-simple-shm")
    comp: Compositor = make_compositor(outputs=2)
    _point_at(comp, W + W // 2, H // 2)
    comp.zionctl("launch", "personal", "--", "weston-simple-shm")
    right = comp.wait_window("personal")[0]
    x, y, width, height = geometry(right)
    assert x >= W + B and x + width + B <= 2 * W, right
    assert abs((x + width // 2) - (W + W // 2)) <= 1, "centred on the right output"
    assert y >= TOP + B and y + height + B <= H

    _point_at(comp, W // 2, H // 2)
    comp.zionctl("launch", "personal", "--", "weston-simple-shm")
    both = comp.wait_window("personal", count=2)
    left = next(w for w in both if w["id"] != right["id"])
    assert left["x"] + left["width"] + B <= W, left
    img = wait_for(
        lambda: (
            (s := comp.screenshot())
            and _shows_frame_on(s, right, PERSONAL)
            and _shows_frame_on(s, left, PERSONAL)
            and s
        ),
        10,
        "both frames on screen, one on each output",
    )
    assert img.width == 2 * W


def test_each_output_tiles_the_windows_on_it(make_compositor: Any) -> None:
    """A tiled desktop on two outputs: each output's windows fill that output's area
    (master and stack there); a swap moves a window within its own output."""
    require("foot")
    comp: Compositor = make_compositor(TILE_CONFIG, outputs=2)
    area_h = H - TOP - 2 * B
    full_left = (B, TOP + B, W - 2 * B, area_h)
    full_right = (W + B, TOP + B, W - 2 * B, area_h)
    master_right = (W + B, TOP + B, W // 2 - 2 * B, area_h)
    stack_right = (W + W // 2 + B, TOP + B, W - W // 2 - 2 * B, area_h)

    _point_at(comp, W // 2, H // 2)
    foot(comp, "personal", "a")
    wait_geometry(comp, "a", full_left)
    _point_at(comp, W + W // 2, H // 2)
    foot(comp, "personal", "b")
    # b fills the right output; a keeps the whole left one
    wait_geometry(comp, "b", full_right)
    wait_geometry(comp, "a", full_left)
    foot(comp, "personal", "c")
    wait_geometry(comp, "b", master_right)
    wait_geometry(comp, "c", stack_right)
    wait_geometry(comp, "a", full_left)
    # c is focused: swapping it goes to its neighbour on its output, never across
    wait_focused(comp, "c")
    comp.zionctl("move", "left")
    wait_geometry(comp, "c", master_right)
    wait_geometry(comp, "b", stack_right)
    wait_geometry(comp, "a", full_left)
