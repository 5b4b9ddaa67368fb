"""Where a window may be: its whole frame inside the usable area (placement.py)."""

from __future__ import annotations

from zionwm.compositor.placement import Fit, fit_window, overflow

AREA = (0, 24, 1280, 696)  # a 1280x720 output below a 24-pixel strip
B = 3


def test_a_window_that_fits_stays_where_it_is() -> None:
    assert fit_window(AREA, 100, 100, 400, 300, B) == Fit(100, 100, 400, 300, None)


def test_a_window_is_moved_until_its_frame_is_inside() -> None:
    fit = fit_window(AREA, 1200, 600, 400, 300, B)
    assert (fit.x, fit.y) == (1280 - B - 400, 720 - B - 300)
    fit = fit_window(AREA, -50, 0, 400, 300, B)
    assert (fit.x, fit.y) == (B, 24 + B)  # never under the strip


def test_a_window_bigger_than_the_area_is_asked_to_shrink_and_framed_where_visible() -> None:
    fit = fit_window(AREA, 3, 27, 1400, 900, B)
    assert fit.ask == (1280 - 2 * B, 696 - 2 * B)
    assert (fit.x, fit.y, fit.width, fit.height) == (B, 24 + B, 1274, 690)
    assert fit.clipped
    # only one dimension too big: only that one is changed
    fit = fit_window(AREA, 10, 40, 1400, 200, B)
    assert fit.ask == (1274, 200) and (fit.x, fit.y) == (B, 40)


def test_what_lies_outside_a_clipped_frame_is_covered() -> None:
    fit = fit_window(AREA, 3, 27, 1400, 900, B)
    top, bottom, left, right = overflow(fit, (0, 0, 1400, 900))
    assert top[3] == 0 and left[2] == 0  # nothing above or left of the window's origin
    assert bottom == (0, 690, 1400, 210)
    assert right == (1274, 0, 126, 690)
    # a buffer that starts before its window geometry is covered there too
    top, _b, left, _r = overflow(fit, (-20, -10, 1440, 920))
    assert top == (-20, -10, 1440, 10) and left == (-20, 0, 20, 690)


def test_a_tiny_area_still_gives_a_window_a_place() -> None:
    fit = fit_window((0, 0, 4, 4), 50, 50, 100, 100, B)
    assert fit.width >= 1 and fit.height >= 1 and fit.clipped
