"""The pure parts of the trusted UI: the overview's grid, what a cell says, the strip's chips
and the thumbnail scaler (our own C, called directly)."""

from __future__ import annotations

import pytest

from zionwm.compositor import native
from zionwm.compositor.native.text import text_width
from zionwm.compositor.overview import (
    FRAME,
    HEADER_GAP,
    HEADER_H,
    HEADER_LEFT,
    HEADER_RIGHT,
    INFO_H,
    Cell,
    cell_state,
    fit_text,
    grid_layout,
    header_texts,
    network_label,
    well_note,
)
from zionwm.compositor.strip import Chip, StripState, chip_label, render_chips
from zionwm.isolation.spec import NetMode, NetworkPolicy

BLUE = (0.23, 0.51, 0.96, 1.0)
GREEN = (0.13, 0.77, 0.37, 1.0)


@pytest.mark.parametrize(
    ("n", "cols", "rows"), [(1, 1, 1), (2, 2, 1), (4, 2, 2), (5, 3, 2), (9, 3, 3)]
)
def test_grid_shape(n: int, cols: int, rows: int) -> None:
    layout = grid_layout(n, 1280, 696, (1280, 696))
    assert (layout.cols, layout.rows, len(layout.cells)) == (cols, rows, n)


@pytest.mark.parametrize("n", range(1, 13))
def test_cells_fit_do_not_overlap_and_keep_the_screen_shape(n: int) -> None:
    w, h = 1280, 696
    layout = grid_layout(n, w, h, (w, h))
    boxes = layout.cells
    for x, y, cw, ch in boxes:
        assert 0 <= x <= x + cw <= w
        assert 0 <= y <= y + ch <= h
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert (
                a[0] + a[2] <= b[0]
                or b[0] + b[2] <= a[0]
                or a[1] + a[3] <= b[1]
                or b[1] + b[3] <= a[1]
            )
    tw, th = layout.thumb
    assert abs(tw / th - w / h) < 0.05  # no thumbnail is stretched
    x, y, cw, ch = boxes[0]
    assert (tw + 2 * FRAME, th + HEADER_H + INFO_H) == (cw, ch)


def test_a_desktop_keeps_its_place_in_reading_order() -> None:
    layout = grid_layout(4, 1280, 696, (1280, 696))
    (x0, y0, _, _), (x1, y1, _, _), (x2, y2, _, _), (x3, y3, _, _) = layout.cells
    assert y0 == y1 < y2 == y3 and x0 == x2 < x1 == x3


def test_cell_state_and_network_label() -> None:
    assert cell_state(True, 3) == "frozen"
    assert cell_state(False, 2) == "running"
    assert cell_state(False, 0) == "no programs"
    # a desktop without a window says why its slot has no picture
    assert well_note(cell_state(False, 0)) == "empty"
    assert well_note(cell_state(False, 2)) == "no windows"
    assert well_note(cell_state(True, 2)) == "no windows"
    assert network_label(NetworkPolicy(NetMode.FULL, block_lan=True)) == "full, no LAN"
    assert network_label(NetworkPolicy(NetMode.NONE, block_lan=True)) == "none"
    assert network_label(NetworkPolicy(NetMode.FILTERED)) == "filtered"


def test_chips_in_order_with_the_frozen_mark() -> None:
    chips = (Chip("personal", BLUE), Chip("work", GREEN, frozen=True))
    state = StripState(chips, "personal", BLUE, pending=2, clock="12:00")
    pixels, spans = render_chips(state, 800)
    assert len(pixels) == 800 * 24 * 4
    assert [s[0] for s in spans] == ["personal", "work"]
    assert spans[0][1] < spans[0][2] <= spans[1][1] < spans[1][2]
    assert chip_label(2, chips[1]).endswith("\u2744")
    # a frozen chip is wider than the same chip thawed
    thawed = StripState((chips[0], Chip("work", GREEN)), "personal", BLUE, 2, "12:00")
    _, spans2 = render_chips(thawed, 800)
    assert spans[1][2] - spans[1][1] > spans2[1][2] - spans2[1][1]


def test_chips_that_do_not_fit_are_left_out() -> None:
    chips = tuple(Chip(f"desktop{i}", BLUE) for i in range(30))
    _, spans = render_chips(StripState(chips, "desktop0", BLUE), 400)
    assert 0 < len(spans) < 30 and spans[-1][2] <= 400


def test_box_filter_averages_and_is_opaque() -> None:
    # 4x2 pixels: left half white, right half black (B, G, R, A bytes)
    white, black = bytes([255, 255, 255, 255]), bytes([0, 0, 0, 255])
    src = (white * 2 + black * 2) * 2
    out = native.scale_pixels(src, 4, 2, 2, 1)
    assert out == white + black
    out = native.scale_pixels(src, 4, 2, 1, 1)
    assert out[3] == 255 and 126 <= out[0] <= 128


def _ten_each(text: str) -> int:
    return 10 * len(text)


@pytest.mark.parametrize(
    ("room", "fitted"),
    [
        (110, "no programs"),  # fits: unchanged
        (109, "no progra\u2026"),  # the longest start that fits with the ellipsis
        (40, "no\u2026"),  # "no " loses its trailing space before the ellipsis
        (30, "no\u2026"),
        (29, ""),  # fewer than two characters would be left: the text goes
        (0, ""),
    ],
)
def test_fit_text_shortens_or_drops_what_does_not_fit(room: int, fitted: str) -> None:
    got = fit_text("no programs", room, _ten_each)
    assert got == fitted
    assert _ten_each(got) <= room


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("state", ["running", "frozen", "no programs"])
@pytest.mark.parametrize("n", [4, 9])
def test_header_texts_never_overlap_in_a_small_screens_cells(
    scale: int, state: str, n: int
) -> None:
    """640x360 logical (1280x720 at 200 %), below a 24 px strip: the name and the state
    drawn in a header keep HEADER_GAP between them, whatever is cut."""
    layout = grid_layout(n, 640, 336, (640, 336))
    cw = layout.cells[0][2]
    cell = Cell("personal", 1, BLUE, state, 0, 0, "full", False)
    label, right = header_texts(cell, cw, scale)
    label_right = HEADER_LEFT * scale + text_width(label, 15 * scale)
    if right:
        state_left = (cw - HEADER_RIGHT) * scale - text_width(right, 12 * scale)
        assert label_right + HEADER_GAP * scale <= state_left, (label, right, cw)
    assert label_right <= (cw - HEADER_RIGHT) * scale, (label, cw)
    if right:
        assert label == "1  personal", (label, right)  # the state gives way first


@pytest.mark.parametrize("scale", [1, 2])
def test_the_state_is_whole_shortened_or_gone_and_never_overlaps(scale: int) -> None:
    """Cells from narrow to wide: the state is shown whole, cut to what fits beside the name
    with an ellipsis, or left out; the name and it always keep HEADER_GAP apart."""
    seen = set()
    for cw in range(40, 260, 2):
        label, right = header_texts(
            Cell("web", 4, BLUE, "no programs", 0, 0, "full", False), cw, scale
        )
        label_right = HEADER_LEFT * scale + text_width(label, 15 * scale)
        if right:
            w = text_width(right, 12 * scale)
            assert label_right + HEADER_GAP * scale <= (cw - HEADER_RIGHT) * scale - w, cw
        if right == "no programs":
            seen.add("whole")
        elif right:
            assert right.endswith("\u2026") and "no programs".startswith(right[:-1]), right
            seen.add("shortened")
        else:
            seen.add("gone")
    assert seen == {"whole", "shortened", "gone"}
