"""Text the compositor draws (the strip's chips and clock, the host windows' tab, the
notifications, the overview's labels and thumbnails) on an
output at scale 2: drawn at the output's density, so it is as sharp as the screen and the
same size, in layout pixels, as at scale 1.

Two real compositors, one at each scale, each with a host window (weston-simple-shm); grim
reads the screen in the output's own pixels, so at scale 2 everything should measure twice
what it measures at scale 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.harness import Compositor, require, wait_for

STRIP = 24
CHIP_ROW = 18  # a row through the chips, below their text
WORK = (0x22, 0xC5, 0x5E)  # the default config's "work" desktop: white text on it
BORDER = 3  # a window frame's width
TAB = 18  # the host tab's height


NOTICE_TOP = STRIP + 8  # the first notification box, at the top right
NOTICE_ROW = 22
NOTICE_TEXT = 200
URGENT = (160, 30, 30)  # an urgent notification's box
TITLE_TOP, TITLE_TEXT = 4, 32  # the overview's "Desktops" title (above the cells' rings)
MISSING = "/nonexistent/hidpi-notice"


def notice_ink(img: Image.Image, scale: int) -> tuple[int, int, int, int]:
    """The white text of the first (urgent, red) notification's first row, its first
    `NOTICE_TEXT` layout pixels (the box is cut to fit a narrow output)."""
    y0 = NOTICE_TOP * scale
    left = next(x for x in range(img.width) if _near(img.getpixel((x, y0 + 1)), URGENT, 30))
    area = (left, y0, left + NOTICE_TEXT * scale, y0 + NOTICE_ROW * scale)
    return _bbox(img, area, lambda p: min(p[:3]) > 200)


def title_ink(img: Image.Image, scale: int) -> tuple[int, int, int, int]:
    """The overview's title, white on its dark backdrop, in the middle at the top."""
    y0 = (STRIP + TITLE_TOP) * scale
    mid = img.width // 2
    area = (mid - 100 * scale, y0, mid + 100 * scale, y0 + TITLE_TEXT * scale)
    return _bbox(img, area, lambda p: min(p[:3]) > 200)


Shots = tuple[Image.Image, dict[str, int], Image.Image, Image.Image]


def _shot(root: Path, scale: int) -> Shots:
    comp = Compositor(root, extra_env={"ZIONWM_OUTPUT_SCALE": str(scale)}).start()
    try:
        assert comp.zjson("outputs")[0]["scale"] == scale
        comp.client([require("weston-simple-shm")])  # on the host socket: it gets a tab
        (win,) = comp.wait_window("host")
        img = comp.screenshot(root / f"scale{scale}.png")
        # a notification: a program that is not there is refused with one
        comp.zionctl("launch", "work", "--", MISSING, check=False)
        wait_for(
            lambda: any(MISSING in n for n in comp.zjson("status")["notifications"]),
            30,
            "the notification",
        )
        notice = wait_for(
            lambda: (
                (s := comp.screenshot(root / f"notice{scale}.png")) and notice_ink(s, scale) and s
            ),
            10,
            "the notification on screen",
        )
        comp.zionctl("overview")
        wait_for(lambda: comp.zjson("status")["overview"]["open"], 10, "the overview to open")
        overview = wait_for(
            lambda: (
                (s := comp.screenshot(root / f"overview{scale}.png")) and title_ink(s, scale) and s
            ),
            10,
            "the overview on screen",
        )
    finally:
        comp.stop()
    return img, win, notice, overview


@pytest.fixture(scope="module")
def shots(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[int, Shots]]:
    root = tmp_path_factory.mktemp("hidpi")
    out = {}
    for scale in (1, 2):
        (root / str(scale)).mkdir()
        out[scale] = _shot(root / str(scale), scale)
    yield out


def _near(p: tuple[int, ...], rgb: tuple[int, int, int], tol: int = 10) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(p[:3], rgb, strict=True))


def _bbox(
    img: Image.Image, box: tuple[int, int, int, int], ink: object
) -> tuple[int, int, int, int]:
    """The smallest box around the pixels inside `box` that `ink` accepts."""
    xs, ys = [], []
    for y in range(box[1], box[3]):
        for x in range(box[0], box[2]):
            if ink(img.getpixel((x, y))):  # type: ignore[operator]
                xs.append(x)
                ys.append(y)
    assert xs, f"no ink in {box}"
    return min(xs), min(ys), max(xs) + 1, max(ys) + 1


def work_chip_ink(img: Image.Image, scale: int) -> tuple[int, int, int, int]:
    """The white text on the work desktop's chip: the widest run of its green on a row
    below the text is the chip; the white in it, the text."""
    y = CHIP_ROW * scale
    runs, start = [], None
    for x in range(img.width // 2):
        green = _near(img.getpixel((x, y)), WORK)
        if green and start is None:
            start = x
        elif not green and start is not None:
            runs.append((start, x))
            start = None
    x0, x1 = max(runs, key=lambda r: r[1] - r[0])
    return _bbox(img, (x0, 0, x1, STRIP * scale), lambda p: min(p[:3]) > 200)


def host_tab_ink(img: Image.Image, win: dict[str, int], scale: int) -> tuple[int, int, int, int]:
    """The dark text in the light tab above a host window."""
    x, y = win["x"] - BORDER, win["y"] - BORDER - TAB
    area = (x * scale, y * scale, (x + 80) * scale, (y + TAB) * scale)
    tab = _bbox(img, area, lambda p: min(p[:3]) > 180)
    return _bbox(img, tab, lambda p: max(p[:3]) < 90)


def blocky(img: Image.Image, box: tuple[int, int, int, int]) -> float:
    """The share of the 2x2 blocks (on even pixels) in `box` whose four pixels are alike:
    near 1 for an image drawn at scale 1 and blown up, well below for one drawn at 2."""
    same = total = 0
    for y in range(box[1] // 2 * 2, box[3] - 1, 2):
        for x in range(box[0] // 2 * 2, box[2] - 1, 2):
            px = [img.getpixel((x + dx, y + dy))[:3] for dx in (0, 1) for dy in (0, 1)]
            total += 1
            same += all(_near(p, px[0], 4) for p in px)
    return same / total


def _size(box: tuple[int, int, int, int]) -> tuple[int, int]:
    return box[2] - box[0], box[3] - box[1]


def _ink(shot: Shots, scale: int, what: str) -> tuple[Image.Image, tuple[int, int, int, int]]:
    img, win, notice, overview = shot
    if what == "chip":
        return img, work_chip_ink(img, scale)
    if what == "tab":
        return img, host_tab_ink(img, win, scale)
    if what == "notice":
        return notice, notice_ink(notice, scale)
    return overview, title_ink(overview, scale)


@pytest.mark.parametrize("what", ["chip", "tab", "notice", "overview"])
def test_labels_at_scale_2_are_the_same_size_and_drawn_at_its_density(
    shots: dict[int, Shots], what: str
) -> None:
    (img1, ink1), (img2, ink2) = _ink(shots[1], 1, what), _ink(shots[2], 2, what)
    (w1, h1), (w2, h2) = _size(ink1), _size(ink2)
    # the same layout size: twice the output pixels (give or take the glyphs' hinting)
    assert abs(w2 - 2 * w1) <= 4 and abs(h2 - 2 * h1) <= 3, (what, ink1, ink2)
    # crisp: not the scale-1 drawing blown up (its 2x2 blocks would all be uniform)
    up = img1.crop(ink1).resize((w1 * 2, h1 * 2), Image.Resampling.NEAREST)
    assert blocky(up, (0, 0, *up.size)) > 0.95  # the measure does see a blown-up one
    assert blocky(img2, ink2) < 0.8, (what, blocky(img2, ink2))


NOTICE_MARGIN = 8  # layout pixels between a notification box and the output's edges
NOTICE_MAX = 900  # a notification box's widest, on a wide enough output


@pytest.mark.parametrize("scale", [1, 2])
def test_a_long_notification_lies_wholly_inside_the_screen(tmp_path: Path, scale: int) -> None:
    """A notice far wider than the output is cut to fit: the whole box, flush right with the
    margin, inside the output's logical width at its scale (no window behind it)."""
    comp = Compositor(tmp_path, extra_env={"ZIONWM_OUTPUT_SCALE": str(scale)}).start()
    try:
        missing = "/nonexistent/" + "a-long-program-name-" * 10
        comp.zionctl("launch", "work", "--", missing, check=False)
        wait_for(
            lambda: any(missing in n for n in comp.zjson("status")["notifications"]),
            30,
            "the notification",
        )
        row = (NOTICE_TOP * scale, (NOTICE_TOP + NOTICE_ROW) * scale)

        def box() -> tuple[Image.Image, tuple[int, int, int, int]]:
            s = comp.screenshot(tmp_path / "notice.png")  # _bbox fails until the box is there
            return s, _bbox(s, (0, row[0], s.width, row[1]), lambda p: _near(p, URGENT, 30))

        shot = wait_for(box, 10, "the notification on screen")
    finally:
        comp.stop()
    img, (x0, y0, x1, y1) = shot
    margin = NOTICE_MARGIN * scale
    width = min(NOTICE_MAX * scale, img.width - 2 * margin)  # the text is longer than that
    assert (y0, y1) == row, (y0, y1)
    assert x1 == img.width - margin, (x1, img.width)  # flush right, the margin kept
    assert x0 >= margin and x1 - x0 == width, (x0, x1, width)


THUMB_BG = 0  # a thumbnail slot's own background: black, as is the desktop's (no wallpaper)
NOTE_GREY = (110, 110, 120)  # the note in an empty slot


def test_overview_thumbnails_fill_their_slot_at_scale_2(tmp_path: Path) -> None:
    """At scale 2 a thumbnail is drawn in the output's pixels and covers its whole slot: a
    window's picture lands where the window was on screen, shrunk to the slot (the strip's
    rows cut off, in output pixels), and an empty slot's note sits in the slot's middle."""
    scale = 2
    comp = Compositor(tmp_path, extra_env={"ZIONWM_OUTPUT_SCALE": str(scale)}).start()
    try:
        comp.zionctl("launch", "work", "--", require("weston-simple-shm"))
        comp.wait_window("work")
        comp.zionctl("switch", "work")
        desk = wait_for(
            lambda: (s := comp.screenshot(tmp_path / "desk.png")) and _window_box(s) and s,
            10,
            "work's window on screen",
        )
        comp.zionctl("overview")
        wait_for(lambda: "work" in comp.zjson("status")["overview"]["thumbnails"], 10, "thumb")
        ov = comp.zjson("status")["overview"]
        slots = dict(zip(ov["desktops"], ov["thumbnail_boxes"], strict=True))
        sx, sy, sw, sh = (v * scale for v in slots["work"])
        img = wait_for(
            lambda: (
                (s := comp.screenshot(tmp_path / "overview.png"))
                and _bbox(s, (sx, sy, sx + sw, sy + sh), lambda p: max(p[:3]) > 40)
                and s
            ),
            10,
            "work's thumbnail on screen",
        )
    finally:
        comp.stop()
    # where the window was, in the frame below the strip, mapped onto the slot's pixels
    top = STRIP * scale
    x0, y0, x1, y1 = _window_box(desk)
    fx, fy = sw / desk.width, sh / (desk.height - top)
    want = (sx + x0 * fx, sy + (y0 - top) * fy, sx + x1 * fx, sy + (y1 - top) * fy)
    got = _bbox(img, (sx, sy, sx + sw, sy + sh), lambda p: max(p[:3]) > 40)
    assert all(abs(g - w) <= 3 for g, w in zip(got, want, strict=True)), (got, want)
    # no strip in the picture: its top rows are the desktop's black, not the strip's green
    for x in range(sx, sx + sw):
        assert max(img.getpixel((x, sy))) <= 40, (x, img.getpixel((x, sy)))
    # the slot's edges are the picture's (black), not the overview's backdrop beside a
    # half-size picture
    for x, y in ((sx + sw - 2, sy + sh - 2), (sx + 1, sy + sh - 2), (sx + sw - 2, sy + 1)):
        assert img.getpixel((x, y)) == (THUMB_BG,) * 3, (x, y, img.getpixel((x, y)))
    # an empty desktop's note, drawn at the slot's size: in the middle of its slot
    gx, gy, gw, gh = (v * scale for v in slots["gaming"])
    nx0, ny0, nx1, ny1 = _bbox(img, (gx, gy, gx + gw, gy + gh), lambda p: _near(p, NOTE_GREY, 30))
    assert abs((nx0 + nx1) / 2 - (gx + gw / 2)) <= 3 * scale, (nx0, nx1, gx, gw)
    assert abs((ny0 + ny1) / 2 - (gy + gh / 2)) <= 3 * scale, (ny0, ny1, gy, gh)
    assert ny1 - ny0 >= 9 * scale, (ny0, ny1)  # a 13 px font's x-height and more, at 2


def _window_box(img: Image.Image) -> tuple[int, int, int, int]:
    """The lone window on the black desktop, frame and all (below the strip)."""
    return _bbox(img, (0, STRIP * 2, img.width, img.height), lambda p: max(p[:3]) > 40)
