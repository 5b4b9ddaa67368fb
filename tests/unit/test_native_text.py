"""The compositor's text, drawn by our own C with pango-cairo (native/text.py): names in any
script get glyphs from a fallback font, widths measured are widths drawn, a line too long
for its box ends in an ellipsis inside the box, and the pixels are premultiplied ARGB."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from zionwm.compositor.capture import png_rgb
from zionwm.compositor.native.text import Canvas, text_width, unknown_glyphs
from zionwm.compositor.overview import (
    INFO_PAD,
    WELL_BG,
    Cell,
    grid_layout,
    header_texts,
    info_text,
    render_header,
    render_well_note,
)
from zionwm.compositor.ui import render_label

BLUE = (0.23, 0.51, 0.96, 1.0)
BG = (30, 30, 30, 255)


def ink(pixels: bytes, width: int, x0: int = 0, x1: int | None = None) -> int:
    """Pixels in columns x0..x1 of a canvas that are not the background BG."""
    x1 = width if x1 is None else x1
    n = 0
    for i in range(0, len(pixels), 4):
        if x0 <= (i // 4) % width < x1 and pixels[i : i + 3] != bytes(BG[2::-1]):
            n += 1
    return n


@pytest.mark.parametrize(
    "name",
    ["工作", "日本語のデスクトップ", "한국어", "عمل", "personal \u2744"],
)
def test_a_name_in_any_script_gets_glyphs_not_boxes(name: str) -> None:
    assert unknown_glyphs(name) == 0, name
    canvas = Canvas(200, 24, BG)
    assert canvas.text(4, 0, 24, name, 13, (255, 255, 255, 255)) > 0
    assert ink(canvas.pixels(), 200) > 20


def test_a_character_no_font_has_is_counted() -> None:
    """The check above can fail: an unassigned code point is a box, and counted."""
    assert unknown_glyphs("\u0378") == 1
    assert unknown_glyphs("ok \U000ffffd") == 1


def test_a_cjk_label_does_not_draw_the_missing_glyph_box() -> None:
    """The same label with a missing glyph in place of each CJK character draws other
    pixels: what is on screen is not the box."""

    def drawn(text: str) -> bytes:
        canvas = Canvas(120, 24, BG)
        canvas.text(4, 0, 24, text, 13, (255, 255, 255, 255))
        return canvas.pixels()

    assert drawn("工作") != drawn("\u0378\u0378")


@pytest.mark.parametrize("scale", [1, 2])
def test_an_overview_header_named_in_cjk_draws_its_glyphs(scale: int) -> None:
    """A name the main face lacks (config names are ASCII today; titles and notices are
    not) goes through the header's own path: fitted, shaped, and drawn with glyphs."""
    cjk = Cell("工作桌面", 1, BLUE, "running", 1, 0, "full", False)
    label, _state = header_texts(cjk, 300, scale)
    assert label == "1  工作桌面" and unknown_glyphs(label, 15 * scale) == 0
    tofu = Cell("\u0378\u0378\u0378\u0378", 1, BLUE, "running", 1, 0, "full", False)
    assert render_header(cjk, 300, scale) != render_header(tofu, 300, scale)


def test_width_follows_the_size() -> None:
    for text in ("personal", "1 work \u2744", "工作"):
        w1, w2 = text_width(text, 12), text_width(text, 24)
        assert w1 > 0 and abs(w2 - 2 * w1) <= 2, (text, w1, w2)


def test_a_label_too_long_ends_inside_its_box() -> None:
    long = "a-long-program-name-" * 20
    whole = render_label(long, (255, 255, 255), BG, 22, size=13)
    assert whole.width > 400
    cut = render_label(long, (255, 255, 255), BG, 22, size=13, max_width=300)
    assert cut.width == 300
    # the ellipsized text ends before the right padding: its last 8 columns are background
    assert ink(cut.pixels, 300, 0, 292) > 100
    assert ink(cut.pixels, 300, 292, 300) == 0


def test_a_translucent_box_is_premultiplied() -> None:
    canvas = Canvas(2, 1)
    canvas.box(0, 0, 2, 1, (200, 100, 0, 128))
    b, g, r, a = canvas.pixels()[:4]
    assert a == 128 and abs(r - 100) <= 1 and abs(g - 50) <= 1 and b == 0


@pytest.mark.parametrize("scale", [1, 2])
def test_the_info_line_fits_its_cell(scale: int) -> None:
    """Whole parts while they fit, an ellipsis for the rest; the first part shortened in a
    cell too narrow for it."""
    cell = Cell("web", 1, BLUE, "running", 3, 2, "filtered, no LAN", False, oom_kills=4)
    wide = info_text(cell, 2000, scale)
    assert wide.endswith("4 killed at the memory limit")
    seen = set()
    for width in range(40, 700, 10):
        text = info_text(cell, width, scale)
        assert text_width(text, 12 * scale, bold=False) <= (width - 2 * INFO_PAD) * scale
        if text == wide:
            seen.add("whole")
        elif text.endswith("  \u2026") and wide.startswith(text[:-3]):
            seen.add("parts")
        elif text and text != "3 windows":
            assert text.endswith("\u2026") and "3 windows".startswith(text[:-1]), text
            seen.add("shortened")
    assert seen == {"whole", "parts", "shortened"}


def test_png_without_pillow_reads_back() -> None:
    argb = bytes([10, 20, 30, 255, 40, 50, 60, 255, 70, 80, 90, 255] * 2)
    img = Image.open(io.BytesIO(png_rgb(3, 2, argb)))
    assert img.mode == "RGB" and img.size == (3, 2)
    assert [img.getpixel((x, 1)) for x in range(3)] == [(30, 20, 10), (60, 50, 40), (90, 80, 70)]


@pytest.mark.parametrize(("n", "screen", "scale"), [(4, (1280, 696), 1), (4, (640, 336), 2)])
def test_a_slot_with_no_picture_is_a_well_with_its_whole_note(
    n: int, screen: tuple[int, int], scale: int
) -> None:
    """Not a plain black box: a rimmed well fills most of the slot and the note is whole
    (not ellipsized), in the middle, even in the small slots of four desktops at 200 %."""
    tw, th = grid_layout(n, *screen, screen).thumb
    w, h = tw * scale, th * scale
    px = render_well_note("not shown yet", tw, th, scale)
    pixel = lambda x, y: tuple(px[(y * w + x) * 4 : (y * w + x) * 4 + 3][::-1])  # noqa: E731
    well = sum(1 for y in range(h) for x in range(w) if pixel(x, y) == WELL_BG)
    assert well > w * h // 2
    inked = [x for y in range(h) for x in range(w) if max(pixel(x, y)) > 90]
    assert inked, "no note"
    drawn = max(inked) - min(inked) + 1
    whole = text_width("not shown yet", 13 * scale, bold=False)
    assert abs(drawn - whole) <= 3 * scale, (drawn, whole)
    assert abs((max(inked) + min(inked)) / 2 - w / 2) <= 2 * scale
