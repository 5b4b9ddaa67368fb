"""The pure parts of the trusted UI: the overview's grid, what a cell says, the strip's chips
and the thumbnail scaler (our own C, called directly)."""

from __future__ import annotations

import pytest

from zionwm.compositor import native
from zionwm.compositor.overview import (
    FRAME,
    HEADER_H,
    INFO_H,
    cell_state,
    grid_layout,
    network_label,
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
