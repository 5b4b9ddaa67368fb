"""The pure window geometry: tiling, snapping, maximizing, cascading, dialogs, keyboard moves
and resizes keep every frame inside the usable area and never overlap tiles."""

from __future__ import annotations

import itertools

import pytest

from zionwm import layout
from zionwm.layout import SizeHints, fit, tile

B = 3  # the frame's width, as the compositor draws it
AREA = (0, 24, 1280, 696)  # a 1280x720 output below the 24 px strip
FREE = SizeHints()


def frame(r: layout.Rect) -> layout.Rect:
    x, y, w, h = r
    return x - B, y - B, w + 2 * B, h + 2 * B


def inside(r: layout.Rect, area: layout.Rect = AREA) -> bool:
    fx, fy, fw, fh = frame(r)
    ax, ay, aw, ah = area
    return fx >= ax and fy >= ay and fx + fw <= ax + aw and fy + fh <= ay + ah


def overlap(a: layout.Rect, b: layout.Rect) -> bool:
    ax, ay, aw, ah = frame(a)
    bx, by, bw, bh = frame(b)
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def test_one_window_fills_the_area() -> None:
    assert tile(AREA, [FREE], B) == [(3, 27, 1274, 690)]


def test_two_windows_are_master_and_stack() -> None:
    master, stack = tile(AREA, [FREE, FREE], B)
    assert master == (3, 27, 634, 690)
    assert stack == (643, 27, 634, 690)


def test_three_windows_split_the_stack_in_rows() -> None:
    master, top, bottom = tile(AREA, [FREE] * 3, B)
    assert master == (3, 27, 634, 690)
    assert top == (643, 27, 634, 342)
    assert bottom == (643, 375, 634, 342)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 12, 30, 60, 120])
def test_many_windows_never_overlap_and_stay_inside(n: int) -> None:
    rects = tile(AREA, [FREE] * n, B)
    assert len(rects) == n
    for r in rects:
        assert inside(r), r
        assert r[2] >= layout.MIN_TILE and r[3] >= layout.MIN_TILE
    for a, b in itertools.combinations(rects, 2):
        assert not overlap(a, b), (a, b)


def test_a_stack_longer_than_the_screen_opens_columns() -> None:
    rects = tile(AREA, [FREE] * 60, B)
    xs = {r[0] for r in rects[1:]}
    assert len(xs) > 1  # more than one stack column


def test_more_windows_than_cells_share_the_last_cell_but_stay_inside() -> None:
    small = (0, 0, 100, 60)
    rects = tile(small, [FREE] * 50, B)
    assert all(inside(r, small) for r in rects)


def test_max_size_is_respected_and_centred_in_its_tile() -> None:
    master, stack = tile(AREA, [SizeHints(max_w=300, max_h=200), FREE], B)
    assert master[2:] == (300, 200)
    assert master[0] == 3 + (634 - 300) // 2
    assert master[1] == 27 + (690 - 200) // 2
    assert stack == (643, 27, 634, 690)


def test_min_size_bigger_than_the_tile_is_capped_to_the_tile() -> None:
    rects = tile(AREA, [FREE, SizeHints(min_w=2000, min_h=2000), FREE], B)
    assert all(inside(r) for r in rects)
    assert rects[1] == (643, 27, 634, 342)


def test_area_smaller_than_the_windows() -> None:
    tiny = (10, 10, 200, 120)
    rects = tile(tiny, [SizeHints(min_w=800, min_h=600)] * 3, B)
    assert all(inside(r, tiny) for r in rects)
    for a, b in itertools.combinations(rects, 2):
        assert not overlap(a, b)
    assert fit(tiny, (0, 0, 1920, 1080), B) == (13, 13, 194, 114)


def test_master_share_moves_the_split_within_bounds() -> None:
    master, stack = tile(AREA, [FREE, FREE], B, master=0.7)
    assert master[2] == round(1280 * 0.7) - 2 * B
    assert not overlap(master, stack)
    assert layout.adjust_master(0.5, 128, 1280) == pytest.approx(0.6)
    assert layout.adjust_master(0.85, 1000, 1280) == layout.MASTER_RANGE[1]
    assert layout.adjust_master(0.15, -1000, 1280) == layout.MASTER_RANGE[0]


def test_halves_meet_without_overlap_and_maximized_fills() -> None:
    left = layout.half(AREA, "left", B)
    right = layout.half(AREA, "right", B)
    assert left == (3, 27, 634, 690)
    assert right == (643, 27, 634, 690)
    assert not overlap(left, right)
    assert layout.maximized(AREA, B) == (3, 27, 1274, 690)
    with pytest.raises(ValueError, match="left' or 'right"):
        layout.half(AREA, "up", B)


def test_cascade_steps_and_wraps_never_off_screen() -> None:
    first = layout.cascade(AREA, (700, 500), None, B)
    assert first == (290, 122, 700, 500)
    second = layout.cascade(AREA, (700, 500), first, B)
    assert second[:2] == (first[0] + layout.CASCADE_STEP, first[1] + layout.CASCADE_STEP)
    r = first
    for _ in range(40):
        r = layout.cascade(AREA, (700, 500), r, B)
        assert inside(r)


def test_cascade_of_a_window_bigger_than_the_area_shrinks_it() -> None:
    assert layout.cascade(AREA, (4000, 3000), None, B) == (3, 27, 1274, 690)


def test_dialog_centred_on_its_parent_and_kept_inside() -> None:
    parent = (100, 100, 600, 400)
    assert layout.centre_on(parent, (200, 100), AREA, B) == (300, 250, 200, 100)
    near_edge = (1000, 500, 270, 200)
    d = layout.centre_on(near_edge, (400, 300), AREA, B)
    assert inside(d)


def test_keyboard_move_stops_at_the_edges() -> None:
    r = (100, 100, 400, 300)
    assert layout.moved(r, 40, 0, AREA, B) == (140, 100, 400, 300)
    assert layout.moved(r, -400, 0, AREA, B)[0] == 3
    assert layout.moved(r, 0, -400, AREA, B)[1] == 27
    assert inside(layout.moved(r, 5000, 5000, AREA, B))


def test_keyboard_resize_respects_limits_and_the_area() -> None:
    r = (100, 100, 400, 300)
    assert layout.resized(r, 40, 0, FREE, AREA, B) == (100, 100, 440, 300)
    assert layout.resized(r, 0, -40, FREE, AREA, B) == (100, 100, 400, 260)
    assert layout.resized(r, 0, 0, SizeHints(max_w=350), AREA, B)[2] == 350
    assert layout.resized(r, -1000, -1000, FREE, AREA, B)[2:] == (16, 16)
    grown = layout.resized((1000, 100, 200, 200), 200, 0, FREE, AREA, B)
    assert grown[2] == 400 and inside(grown)  # moved away from the edge to grow
    assert layout.resized(r, 5000, 5000, FREE, AREA, B) == (3, 27, 1274, 690)


def test_fixed_size_windows_are_dialogs() -> None:
    assert SizeHints(300, 200, 300, 200).fixed
    assert not SizeHints(300, 200, 0, 0).fixed
    assert not FREE.fixed
