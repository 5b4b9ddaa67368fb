"""The compositor's trusted UI against real clients: the strip of desktop chips, the overview
of every desktop, fullscreen that cannot hide the strip by itself, and host window frames.

Programs of desktops run in their real sandboxes (`zionctl launch`); keys come from wtype on
the host socket, as from a person at the keyboard; what is on screen is read with grim.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.harness import Compositor, colour_near, require, wait_for
from tests.integration.test_core import VirtualPointer

COLOURS = {  # the default config's desktops, in order
    "personal": "#3b82f6",
    "work": "#22c55e",
    "gaming": "#a855f7",
    "web": "#ef4444",
}
STRIP = 24
CHIP_ROW = 18
BACKDROP = "#0d0d12"  # the overview's own background (a desktop's frame never has it)
DOCS = Path(__file__).resolve().parents[2] / "docs"


def pixels_of(img: Image.Image) -> list[tuple[int, int, int]]:
    raw = img.convert("RGB").tobytes()
    return [(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, len(raw), 3)]


def runs_of(img: Image.Image, y: int, hex_colour: str) -> list[tuple[int, int]]:
    """Horizontal runs of `hex_colour` on row y, as (start, end)."""
    runs: list[tuple[int, int]] = []
    start = None
    for x in range(img.width):
        near = colour_near(img.getpixel((x, y)), hex_colour, tol=10)
        if near and start is None:
            start = x
        elif not near and start is not None:
            runs.append((start, x))
            start = None
    if start is not None:
        runs.append((start, img.width))
    return runs


def chip_spans(img: Image.Image) -> dict[str, tuple[int, int]]:
    """Where each desktop's chip is on the strip: the widest run of its colour on a row
    through the chips below their text (no letter breaks a run there), left of the clock
    (a run reaching the clock is the strip's own background)."""
    out = {}
    for name, colour in COLOURS.items():
        runs = [r for r in runs_of(img, CHIP_ROW, colour) if r[1] < img.width - 80]
        if runs:
            out[name] = max(runs, key=lambda r: r[1] - r[0])
    return out


def status(comp: Compositor) -> dict[str, Any]:
    result: dict[str, Any] = comp.zjson("status")
    return result


def overview_open(comp: Compositor) -> bool:
    return bool(status(comp)["overview"]["open"])


def park_pointer(comp: Compositor) -> None:
    """The pointer to the bottom-right corner, out of the way of the strip and the cells."""
    vp = VirtualPointer(comp)
    vp.move(1270, 715)
    vp.c.roundtrip()


def save_doc_picture(img: Image.Image, name: str, box: tuple[int, int, int, int]) -> None:
    """Keep a small picture for the README (only when asked: ZIONWM_DOC_SHOTS=1)."""
    if os.environ.get("ZIONWM_DOC_SHOTS") == "1":
        img.crop(box).save(DOCS / name, optimize=True)


# ---- the strip -------------------------------------------------------------------------


def test_strip_shows_a_chip_per_desktop_and_freezing_changes_it(compositor: Compositor) -> None:
    require("weston-simple-shm")
    park_pointer(compositor)
    compositor.zionctl("launch", "work", "--", "weston-simple-shm")
    compositor.wait_window("work")
    img = compositor.screenshot()
    spans = chip_spans(img)
    # every desktop has its chip, in its colour, in the config's order
    assert list(spans) == list(COLOURS), spans
    assert [s[0] for s in spans.values()] == sorted(s[0] for s in spans.values())
    # the strip's background is the colour of the desktop shown
    assert colour_near(img.getpixel((img.width - 3, 2)), COLOURS["personal"])
    # the current desktop's chip has a white ring; the others a dark one
    x0, x1 = spans["personal"]
    assert colour_near(img.getpixel(((x0 + x1) // 2, 1)), "#ffffff", tol=30)
    wx0, wx1 = spans["work"]
    assert not colour_near(img.getpixel(((wx0 + wx1) // 2, 1)), "#ffffff", tol=30)
    before = img.crop((wx0, 0, wx1 + 30, STRIP))

    compositor.zionctl("freeze", "work")
    wait_for(lambda: compositor.desktops()["work"]["frozen"], 10, "work to freeze")

    def chip_changed() -> Image.Image | None:
        shot = compositor.screenshot()
        span = chip_spans(shot).get("work")
        if span is None:
            return None
        return shot if shot.crop((wx0, 0, wx1 + 30, STRIP)).tobytes() != before.tobytes() else None

    frozen = wait_for(chip_changed, 10, "the work chip to show that it is frozen")
    # still in its colour, wider by the frozen mark, every chip still there
    spans2 = chip_spans(frozen)
    assert list(spans2) == list(COLOURS), spans2
    assert spans2["work"][1] - spans2["work"][0] > wx1 - wx0
    save_doc_picture(frozen, "strip.png", (0, 0, frozen.width, STRIP))

    compositor.zionctl("thaw", "work")
    wait_for(
        lambda: chip_spans(compositor.screenshot()).get("work", (0, 0))[1] == wx1,
        10,
        "the work chip to lose its frozen mark",
    )


def test_a_click_on_a_chip_switches_desktop(compositor: Compositor) -> None:
    park_pointer(compositor)
    spans = chip_spans(compositor.screenshot())
    x0, x1 = spans["gaming"]
    vp = VirtualPointer(compositor)
    vp.click((x0 + x1) // 2, STRIP // 2)
    wait_for(lambda: status(compositor)["active"] == "gaming", 10, "the click to show gaming")
    wait_for(
        lambda: colour_near(compositor.screenshot().getpixel((1279, 2)), COLOURS["gaming"]),
        10,
        "the strip in gaming's colour",
    )


# ---- fullscreen: the strip is not a client's to hide ----------------------------------

FULLSCREEN_CONFIG = """
from zionwm.config import Network, bind, desktop
desktop("personal", colour="#3b82f6", network=Network.none())
desktop("gaming", colour="#a855f7", network=Network.none(), allow_fullscreen=True)
bind("Super+F", "fullscreen")
bind("Super+M", "maximize")
for n in range(1, 10):
    bind(f"Super+{n}", f"switch {n}")
"""


def _fullscreen_window(comp: Compositor, desktop: str) -> dict[str, Any]:
    ws = [w for w in comp.windows(desktop) if w["fullscreen"]]
    return ws[0] if ws else {}


@pytest.mark.security
def test_a_sandboxed_client_cannot_hide_the_strip_by_going_fullscreen(
    make_compositor: Any,
) -> None:
    """The attack: a program in a desktop that allows fullscreen asks for fullscreen on its
    own (foot --fullscreen, in its sandbox) and could then paint a fake strip. It gets
    fullscreen below the real strip, framed; only the user's key hides the strip, and any
    binding brings it back."""
    require("foot")
    comp: Compositor = make_compositor(FULLSCREEN_CONFIG)
    park_pointer(comp)
    comp.zionctl("switch", "gaming")
    # a bright background, so that the window is told apart from the black scene
    comp.zionctl("launch", "gaming", "--", "foot", "--fullscreen", "-o", "colors.background=ffaa00")
    win = wait_for(lambda: _fullscreen_window(comp, "gaming"), 20, "foot to be fullscreen")
    img = comp.screenshot()
    # the strip is still there, in gaming's colour, with both chips, above the window
    assert colour_near(img.getpixel((img.width - 3, 2)), COLOURS["gaming"])
    spans = {n: s for n, s in chip_spans(img).items() if n in ("personal", "gaming")}
    assert set(spans) == {"personal", "gaming"}, spans
    assert win["y"] >= STRIP, win
    # and the window keeps its frame in the desktop's colour
    x, y, w, h = win["x"], win["y"], win["width"], win["height"]
    for px in ((x - 1, y + h // 2), (x + w, y + h // 2), (x + w // 2, y + h)):
        assert colour_near(img.getpixel(px), COLOURS["gaming"]), (px, img.getpixel(px))
    assert colour_near(img.getpixel((x + w // 2, y + h // 2)), "#ffaa00", tol=40)

    # the user's own gesture: true fullscreen, the strip may go
    comp.type_keys("-M", "logo", "f", "-m", "logo")

    def true_fullscreen() -> bool:
        w2 = _fullscreen_window(comp, "gaming")
        if (w2.get("width"), w2.get("height")) != (1280, 720):
            return False
        return colour_near(comp.screenshot().getpixel((1279, 2)), "#ffaa00", tol=40)

    wait_for(true_fullscreen, 15, "true fullscreen over the whole output after Super+F")
    # any compositor binding brings the strip back (here one that changes nothing else)
    comp.type_keys("-M", "logo", "m", "-m", "logo")
    wait_for(
        lambda: colour_near(comp.screenshot().getpixel((1279, 2)), COLOURS["gaming"]),
        15,
        "the strip to come back on the next binding",
    )


@pytest.mark.security
def test_fullscreen_keeps_the_frame_where_the_desktop_does_not_allow_it(
    make_compositor: Any,
) -> None:
    require("foot")
    comp: Compositor = make_compositor(FULLSCREEN_CONFIG)
    comp.zionctl("launch", "personal", "--", "foot", "--fullscreen")
    win = wait_for(lambda: _fullscreen_window(comp, "personal"), 20, "foot to be fullscreen")
    comp.type_keys("-M", "logo", "f", "-m", "logo")  # the user's toggle: fullscreen off
    wait_for(lambda: not _fullscreen_window(comp, "personal"), 15, "fullscreen off")
    comp.type_keys("-M", "logo", "f", "-m", "logo")  # and on again, by the user's key
    win = wait_for(lambda: _fullscreen_window(comp, "personal"), 15, "fullscreen on")
    img = comp.screenshot()
    assert win["y"] >= STRIP and win["width"] < 1280, win
    x, y, w, h = win["x"], win["y"], win["width"], win["height"]
    for px in ((x - 1, y + h // 2), (x + w, y + h // 2), (x + w // 2, y - 1)):
        assert colour_near(img.getpixel(px), COLOURS["personal"]), (px, img.getpixel(px))
    assert colour_near(img.getpixel((img.width - 3, 2)), COLOURS["personal"])


# ---- the overview ----------------------------------------------------------------------


def cell_box(img: Image.Image, hex_colour: str) -> tuple[int, int, int, int] | None:
    """An overview cell in a colour: its header is the first wide run of that colour below
    the strip; its left frame edge goes down from there to the cell's bottom."""
    for y in range(STRIP + 2, img.height, 2):
        wide = [r for r in runs_of(img, y, hex_colour) if r[1] - r[0] >= 150]
        if wide:
            x0, x1 = wide[0]
            break
    else:
        return None
    y1 = y
    while y1 < img.height and colour_near(img.getpixel((x0 + 1, y1)), hex_colour, tol=10):
        y1 += 1
    return (x0, y, x1, y1)


def picture_pixels(img: Image.Image, box: tuple[int, int, int, int], hex_colour: str) -> int:
    """Pixels inside a cell's thumbnail well that are bright or coloured, and not its frame
    colour: the desktop's last frame (the dim grey note of an empty cell does not count)."""
    x0, y0, x1, y1 = box
    well = img.crop((x0 + 8, y0 + 40, x1 - 8, y1 - 34))
    return sum(
        1
        for p in pixels_of(well)
        if (max(p) > 140 or max(p) - min(p) > 40) and not colour_near(p, hex_colour, tol=30)
    )


def test_overview_shows_every_desktop_with_its_last_frame_and_switches(
    compositor: Compositor,
) -> None:
    require("weston-simple-shm")
    require("weston-flower")
    park_pointer(compositor)
    compositor.zionctl("launch", "personal", "--", "weston-simple-shm")
    compositor.wait_window("personal")
    compositor.zionctl("switch", "work")
    # weston-flower's colour is random (it may be dim); simple-shm's pattern is always bright
    compositor.zionctl("launch", "work", "--", "weston-flower")
    compositor.zionctl("launch", "work", "--", "weston-simple-shm")
    compositor.wait_window("work", count=2)
    compositor.zionctl("freeze", "personal")
    wait_for(lambda: compositor.desktops()["personal"]["frozen"], 10, "personal to freeze")
    compositor.zionctl("net", "personal", "off")

    compositor.type_keys("-M", "logo", "-k", "Escape", "-m", "logo")
    wait_for(lambda: overview_open(compositor), 10, "the overview to open")
    img = wait_for(
        lambda: (s := compositor.screenshot()) and cell_box(s, COLOURS["web"]) and s,
        10,
        "the overview on screen",
    )
    boxes = {}
    for name, colour in COLOURS.items():
        box = cell_box(img, colour)
        assert box is not None, f"no cell in {name}'s colour"
        boxes[name] = box
    # the desktop on screen gets its thumbnail right after the overview's first frame
    img = wait_for(
        lambda: (
            (s := compositor.screenshot())
            and picture_pixels(s, boxes["work"], COLOURS["work"]) > 500
            and s
        ),
        10,
        "work's thumbnail, taken when the overview opened",
    )
    # a stable grid: the cells in the desktops' order, two by two
    assert boxes["personal"][0] < boxes["work"][0] and boxes["personal"][1] < boxes["gaming"][1]
    assert boxes["gaming"][0] < boxes["web"][0]
    # the thumbnails: the desktops that were shown have their last frame in their cell;
    # the ones never shown have none (so the check can tell)
    assert picture_pixels(img, boxes["personal"], COLOURS["personal"]) > 500
    assert picture_pixels(img, boxes["gaming"], COLOURS["gaming"]) < 50
    # the strip stays above the overview
    assert colour_near(img.getpixel((img.width - 3, 2)), COLOURS["work"])
    save_doc_picture(img, "overview.png", (0, 0, img.width, img.height))

    ov = status(compositor)["overview"]
    assert ov["selected"] == "work" and ov["desktops"] == list(COLOURS)
    cells = {c["name"]: c for c in ov["cells"]}
    assert cells["web"]["network"] == "full, no LAN" and cells["work"]["network"] == "full"
    assert cells["personal"]["network"] == "off (cut by hand)"
    states = [cells[n]["state"] for n in COLOURS]
    assert states == ["frozen", "running", "no programs", "no programs"]
    # arrows move the choice (work -> web below it), Enter switches
    compositor.type_keys("-k", "Down")
    wait_for(lambda: status(compositor)["overview"]["selected"] == "web", 10, "web chosen")
    compositor.type_keys("-k", "Left")
    wait_for(lambda: status(compositor)["overview"]["selected"] == "gaming", 10, "gaming")
    compositor.type_keys("-k", "Return")
    wait_for(lambda: status(compositor)["active"] == "gaming", 10, "Enter to show gaming")
    assert not overview_open(compositor)
    # the desktop left from the overview keeps its own last frame, not a picture of the
    # overview (which would hold every desktop's colour)
    compositor.zionctl("overview")
    wait_for(lambda: overview_open(compositor), 10, "the overview to open again")
    again = compositor.screenshot()
    work = cell_box(again, COLOURS["work"])
    assert work is not None
    x0, y0, x1, y1 = work
    well = pixels_of(again.crop((x0 + 8, y0 + 40, x1 - 8, y1 - 34)))
    assert sum(1 for p in well if colour_near(p, BACKDROP, tol=3)) < 100
    assert picture_pixels(again, work, COLOURS["work"]) > 500
    compositor.type_keys("-k", "Escape")
    wait_for(lambda: not overview_open(compositor), 10, "Escape to close it")
    # a digit switches at once; Escape closes without switching
    compositor.type_keys("-M", "logo", "-k", "Escape", "-m", "logo")
    wait_for(lambda: overview_open(compositor), 10, "the overview to open again")
    compositor.type_keys("1")
    wait_for(lambda: status(compositor)["active"] == "personal", 10, "1 to show personal")
    compositor.type_keys("-M", "logo", "-k", "Escape", "-m", "logo")
    wait_for(lambda: overview_open(compositor), 10, "the overview to open again")
    compositor.type_keys("-k", "Escape")
    wait_for(lambda: not overview_open(compositor), 10, "Escape to close it")
    assert status(compositor)["active"] == "personal"
    # zionctl opens it too; a click on a cell switches
    compositor.zionctl("overview")
    wait_for(lambda: overview_open(compositor), 10, "zionctl overview")
    shot = compositor.screenshot()
    x0, y0, x1, y1 = cell_box(shot, COLOURS["work"]) or (0, 0, 0, 0)
    VirtualPointer(compositor).click((x0 + x1) // 2, (y0 + y1) // 2)
    wait_for(lambda: status(compositor)["active"] == "work", 10, "the click to show work")
    assert not overview_open(compositor)


def red_pixels(img: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Pixels of an urgent notification's red (160, 30, 30) in `box`."""
    return sum(1 for p in pixels_of(img.crop(box)) if colour_near(p, "#a01e1e", tol=25))


def test_a_thumbnail_shows_the_desktops_windows_only_and_desktops_never_shown_get_one(
    compositor: Compositor,
) -> None:
    require("weston-simple-shm")
    park_pointer(compositor)
    # work is left while an urgent notice is on top of it, at the top right
    compositor.zionctl("switch", "work")
    compositor.zionctl("launch", "work", "--", "/nonexistent/zionwm-test-program", check=False)
    top_right = (640, STRIP, 1280, 200)
    wait_for(
        lambda: red_pixels(compositor.screenshot(), top_right) > 200,
        10,
        "the notice that the program could not start, on screen",
    )
    # gaming gets a window while it was never on screen
    compositor.zionctl("launch", "gaming", "--", "weston-simple-shm")
    compositor.wait_window("gaming")
    compositor.zionctl("switch", "personal")
    # the notice is gone from the screen before the overview opens (it would cover a cell)
    wait_for(
        lambda: red_pixels(compositor.screenshot(), top_right) == 0, 20, "the notice to expire"
    )
    compositor.zionctl("overview")
    # the pictures are drawn after the overview's first frame, the shown desktop's last
    wait_for(
        lambda: {"work", "gaming", "personal"} <= set(status(compositor)["overview"]["thumbnails"]),
        10,
        "the thumbnails drawn",
    )
    img = wait_for(
        lambda: (
            (s := compositor.screenshot())
            and (g := cell_box(s, COLOURS["gaming"]))
            and picture_pixels(s, g, COLOURS["gaming"]) > 500
            and s
        ),
        10,
        "gaming's picture in its cell",
    )
    work, gaming = cell_box(img, COLOURS["work"]), cell_box(img, COLOURS["gaming"])
    assert work is not None and gaming is not None
    x0, y0, x1, y1 = work
    # nothing of the notice in work's picture: work had no window, so it is all black
    assert red_pixels(img, (x0 + 8, y0 + 40, x1 - 8, y1 - 34)) == 0
    assert picture_pixels(img, work, COLOURS["work"]) < 50
    # gaming's window is in its cell although gaming was never shown
    assert picture_pixels(img, gaming, COLOURS["gaming"]) > 500
    compositor.zionctl("overview")


def test_a_hidden_desktops_picture_follows_its_windows(compositor: Compositor) -> None:
    """A desktop that is not shown keeps no window that is gone in its picture: gaming's
    picture shows its window; its programs are killed while it is hidden; the next opening
    of the overview shows its cell without the window."""
    require("weston-simple-shm")
    park_pointer(compositor)
    compositor.zionctl("switch", "personal")
    compositor.zionctl("launch", "gaming", "--", "weston-simple-shm")
    compositor.wait_window("gaming")

    def gaming_picture() -> int:
        s = compositor.screenshot()
        box = cell_box(s, COLOURS["gaming"])
        return -1 if box is None else picture_pixels(s, box, COLOURS["gaming"])

    compositor.zionctl("overview")
    wait_for(lambda: gaming_picture() > 500, 10, "gaming's window in its picture")
    compositor.zionctl("overview")
    wait_for(lambda: not overview_open(compositor), 10, "the overview to close")

    compositor.zionctl("kill", "gaming")
    wait_for(lambda: not compositor.windows("gaming"), 10, "gaming's window to go")
    compositor.zionctl("overview")
    wait_for(lambda: 0 <= gaming_picture() < 50, 10, "gaming's picture without the window")
    compositor.zionctl("overview")


def test_notifications_show_on_the_output_the_pointer_is_on(make_compositor: Any) -> None:
    """Two outputs: with the pointer on the right one, a notice shows at that output's top
    right, and a second one while it is up stacks under it there (the stack never splits)."""
    from tests.integration.test_windows import _point_at

    comp: Compositor = make_compositor(outputs=2)
    _point_at(comp, 1280 + 640, 600)
    comp.zionctl("launch", "personal", "--", "/nonexistent/zionwm-test-program", check=False)
    right_top = (1280 + 640, STRIP, 2560, 200)
    left_top = (640, STRIP, 1280, 200)
    img = wait_for(
        lambda: (s := comp.screenshot()) and red_pixels(s, right_top) > 200 and s,
        10,
        "the notice at the right output's top right",
    )
    assert red_pixels(img, left_top) == 0
    column = (1280 + 640, STRIP, 2560, 720)
    first = red_pixels(img, column)
    _point_at(comp, 640, 600)
    comp.zionctl("launch", "personal", "--", "/nonexistent/zionwm-other-program", check=False)
    wait_for(
        lambda: red_pixels(comp.screenshot(), column) > 1.5 * first,
        10,
        "the second notice under the first, on the same output",
    )
    assert red_pixels(comp.screenshot(), (640, STRIP, 1280, 720)) == 0


def test_the_overview_opens_on_the_output_the_pointer_is_on(make_compositor: Any) -> None:
    """Two outputs, a window on the right one: with the pointer there, the overview opens
    on the right output, and personal's picture there shows the window."""
    from tests.integration.test_windows import _point_at

    require("weston-simple-shm")
    comp: Compositor = make_compositor(outputs=2)
    _point_at(comp, 1280 + 640, 600)
    comp.zionctl("launch", "personal", "--", "weston-simple-shm")
    comp.wait_window("personal")
    comp.zionctl("overview")

    def right() -> Image.Image:
        return comp.screenshot().crop((1280, 0, 2560, 720))

    img = wait_for(
        lambda: (
            (r := right())
            and (box := cell_box(r, COLOURS["personal"]))
            and picture_pixels(r, box, COLOURS["personal"]) > 500
            and r
        ),
        10,
        "personal's cell, with its window, on the right output",
    )
    assert cell_box(img, COLOURS["work"]) is not None
    left = comp.screenshot().crop((0, STRIP, 1280, 720))
    assert cell_box(left, COLOURS["work"]) is None, "the overview is on the left output too"
    # the left output is covered below its strip: no program is under the pointer there
    assert all(colour_near(p, BACKDROP, tol=3) for p in pixels_of(left.crop((0, 0, 1280, 40))))
    comp.zionctl("overview")
    wait_for(lambda: not overview_open(comp), 10, "the overview to close")

    # opened from the left output, personal's cell says its window is on another screen
    # (a note in a dark well, not a black picture)
    _point_at(comp, 640, 600)
    comp.zionctl("overview")

    def well_pixels() -> int:
        s = comp.screenshot().crop((0, 0, 1280, 720))
        box = cell_box(s, COLOURS["personal"])
        if box is None:
            return -1
        x0, y0, x1, y1 = box
        well = s.crop((x0 + 8, y0 + 40, x1 - 8, y1 - 34))
        return sum(1 for p in pixels_of(well) if colour_near(p, "#14141a", tol=4))

    wait_for(
        lambda: overview_open(comp) and not status(comp)["overview"]["drawing"],
        10,
        "the pictures drawn after the opening",
    )
    wait_for(lambda: well_pixels() > 1000, 10, "personal's cell with the note, on the left")
    comp.zionctl("overview")


@pytest.mark.security
def test_keys_meant_for_the_overview_never_reach_a_sandboxed_client(
    compositor: Compositor,
) -> None:
    """A terminal in personal's sandbox writes every key it gets to a file; while the
    overview is open, what is typed must not reach it."""
    require("foot")
    out = compositor.desktop_home("personal") / "keys.txt"
    compositor.zionctl("launch", "personal", "--", "foot", "sh", "-c", "cat > ~/keys.txt")
    compositor.wait_window("personal", "foot")
    compositor.type_keys("a")
    compositor.type_keys("-M", "logo", "-k", "Escape", "-m", "logo")
    wait_for(lambda: overview_open(compositor), 10, "the overview to open")
    compositor.type_keys("secret")  # no overview key: dropped, never the client's
    # a program of the shown desktop that maps a window now (and asks for focus by doing
    # so) draws nothing over the overview and gets no key either
    park_pointer(compositor)
    wait_for(
        lambda: "personal" in status(compositor)["overview"]["thumbnails"],
        10,
        "the shown desktop's thumbnail (taken after the overview's first frame)",
    )
    before = compositor.screenshot().crop((0, STRIP, 1280, 720)).tobytes()
    compositor.zionctl("launch", "personal", "--", "weston-simple-shm")
    compositor.wait_window("personal", "org.freedesktop.weston.simple-shm")
    after = compositor.screenshot().crop((0, STRIP, 1280, 720)).tobytes()
    assert after == before, "a desktop's window showed through the overview"
    compositor.zionctl("close")  # the new window has the focus (no keyboard): close it
    wait_for(lambda: not compositor.windows("personal")[1:], 10, "simple-shm to go")
    compositor.type_keys("more")
    compositor.type_keys("-k", "Escape")
    wait_for(lambda: not overview_open(compositor), 10, "Escape to close it")
    compositor.type_keys("b\n")
    compositor.type_keys("-M", "ctrl", "d", "-m", "ctrl")
    wait_for(lambda: out.exists() and out.read_text().endswith("\n"), 15, "foot to write")
    assert out.read_text() == "ab\n"


# ---- host windows ----------------------------------------------------------------------


@pytest.mark.security
def test_host_windows_have_a_frame_no_desktop_has(compositor: Compositor) -> None:
    require("weston-simple-shm")
    park_pointer(compositor)
    compositor.client(["weston-simple-shm"])  # on the host socket: a trusted tool
    (win,) = compositor.wait_window("host")
    img = compositor.screenshot()
    x, y, w, h = win["x"], win["y"], win["width"], win["height"]
    # its frame: light grey outside, a dark line next to the window (a desktop's frame is one
    # plain colour), in no desktop's colour
    for outer, inner in (
        ((x - 3, y + h // 2), (x - 1, y + h // 2)),
        ((x + w + 2, y + h // 2), (x + w, y + h // 2)),
        ((x + w // 2, y + h + 2), (x + w // 2, y + h)),
    ):
        light, dark = img.getpixel(outer), img.getpixel(inner)
        assert min(light[:3]) > 180 and max(dark[:3]) < 90, (outer, light, inner, dark)
        for name, colour in COLOURS.items():
            assert not colour_near(light, colour, tol=60), (name, light)
    # and a "host" tab sits on its top edge: light, with dark text in it
    tab = img.crop((x - 3, y - 3 - 18, x + 60, y - 3))
    pixels = pixels_of(tab)
    assert sum(1 for p in pixels if min(p[:3]) > 180) > 300
    assert sum(1 for p in pixels if max(p[:3]) < 90) > 20


def test_strip_and_overview_follow_a_desktop_list_changed_by_reload(make_compositor: Any) -> None:
    """Desktops may come and go while zionwm runs: the strip and the overview are built from
    the current list every time."""
    cfg = """
from zionwm.config import Network, bind, desktop
desktop("personal", colour="#3b82f6", network=Network.none())
desktop("work", colour="#22c55e", network=Network.none())
bind("Super+Escape", "overview")
"""
    comp: Compositor = make_compositor(cfg)
    park_pointer(comp)
    assert set(chip_spans(comp.screenshot())) == {"personal", "work"}
    assert comp.config_path is not None
    comp.config_path.write_text(cfg + 'desktop("web", colour="#ef4444", network=Network.none())\n')
    comp.zionctl("reload")
    wait_for(
        lambda: set(chip_spans(comp.screenshot())) == {"personal", "work", "web"},
        10,
        "a chip for the new desktop",
    )
    comp.zionctl("overview")
    wait_for(lambda: overview_open(comp), 10, "the overview")
    assert status(comp)["overview"]["desktops"] == ["personal", "work", "web"]
    assert cell_box(comp.screenshot(), COLOURS["web"]) is not None
    comp.zionctl("overview")
    wait_for(lambda: not overview_open(comp), 10, "the overview to close")
    comp.config_path.write_text(cfg)
    comp.zionctl("reload")
    wait_for(
        lambda: set(chip_spans(comp.screenshot())) == {"personal", "work"},
        10,
        "the chip of the removed desktop to go",
    )


def test_overview_cells_tell_state_windows_network_and_a_hit_limit(make_compositor: Any) -> None:
    """What each cell says comes from the live desktops: a frozen one, one with a window,
    an empty one, and one whose program the memory limit killed."""
    require("weston-simple-shm")
    cfg = """
from zionwm.config import Limits, Network, bind, desktop
desktop("personal", colour="#3b82f6", network=Network.none())
desktop("work", colour="#22c55e", network=Network.none(), limits=Limits(memory_max="48M"))
desktop("web", colour="#ef4444", network=Network.none())
desktop("spare", colour="#f59e0b", network=Network.none())
bind("Super+Escape", "overview")
"""
    comp: Compositor = make_compositor(cfg)
    comp.zionctl("launch", "personal", "--", "weston-simple-shm")
    comp.wait_window("personal")
    comp.zionctl("launch", "web", "--", "weston-simple-shm")
    comp.wait_window("web")
    comp.zionctl("freeze", "web")
    wait_for(lambda: comp.desktops()["web"]["frozen"], 10, "web to freeze")
    # a program in work's sandbox that keeps memory until the limit kills it
    comp.zionctl("launch", "work", "--", "sh", "-c", "head -c 300M /dev/zero | tail")

    def killed() -> bool:
        cg = comp.desktops()["work"].get("cgroup") or {}
        return bool(cg.get("oom_kills"))

    wait_for(killed, 30, "the memory limit to kill work's program")
    comp.type_keys("-M", "logo", "-k", "Escape", "-m", "logo")
    wait_for(lambda: overview_open(comp), 10, "the overview to open")
    cells = {c["name"]: c for c in status(comp)["overview"]["cells"]}
    assert list(cells) == ["personal", "work", "web", "spare"]
    assert (cells["personal"]["state"], cells["personal"]["windows"]) == ("running", 1)
    assert (cells["web"]["state"], cells["web"]["windows"]) == ("frozen", 1)
    assert (cells["spare"]["state"], cells["spare"]["windows"]) == ("no programs", 0)
    assert cells["work"]["oom_kills"] >= 1
    assert {c["network"] for c in cells.values()} == {"none"}
    # a grid of four, two by two, every cell in its colour
    img = comp.screenshot()
    boxes = {
        n: cell_box(img, c)
        for n, c in zip(cells, ("#3b82f6", "#22c55e", "#ef4444", "#f59e0b"), strict=True)
    }
    assert all(boxes.values()), boxes


def test_downloads_waiting_in_quarantine_show_on_the_strip_and_in_the_overview(
    make_compositor: Any,
) -> None:
    """A file the web desktop saves is held in quarantine (for ten minutes here): the strip
    counts it and the overview shows it on web's cell."""
    cfg = """
from zionwm.config import Downloads, Network, bind, desktop
desktop("personal", colour="#3b82f6", network=Network.none())
desktop("web", colour="#ef4444", network=Network.none(),
        downloads=Downloads(release_to="personal", hold="10m"))
bind("Super+Escape", "overview")
"""
    comp: Compositor = make_compositor(cfg)
    park_pointer(comp)

    def status_text_pixels() -> int:
        # the part of the strip between the chips and the clock: only the count is drawn there
        region = comp.screenshot().crop((600, 0, 1280 - 70, STRIP))
        return sum(1 for p in pixels_of(region) if not colour_near(p, COLOURS["personal"]))

    assert status_text_pixels() == 0
    comp.zionctl("launch", "web", "--", "sh", "-c", "echo report > ~/Downloads/report.txt")
    wait_for(lambda: status_text_pixels() > 30, 30, "the strip to count the held download")
    comp.zionctl("overview")
    wait_for(lambda: overview_open(comp), 10, "the overview")
    cells = {c["name"]: c["pending"] for c in status(comp)["overview"]["cells"]}
    assert cells == {"personal": 0, "web": 1}
