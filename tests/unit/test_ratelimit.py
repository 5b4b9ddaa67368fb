"""The one rate limiter (zionwm.ratelimit): token bucket and fixed window, what is refused
counted per key and kind for one summary, and costs already paid."""

from __future__ import annotations

import pytest

from zionwm.ratelimit import Limiter


def test_token_bucket_allows_a_burst_then_refills_at_its_rate_and_counts_the_rest() -> None:
    lim = Limiter(2, per_second=4.0)
    assert [lim.admit("web", 0.0) for _ in range(3)] == [True, True, False]
    assert lim.admit("work", 0.0)  # per key
    assert not lim.admit("web", 0.2, "notice")  # 0.8 of a token
    assert lim.admit("web", 0.25)
    assert lim.admit("web", 100.0) and lim.admit("web", 100.0)
    assert not lim.admit("web", 100.0)  # refilled, but never past the burst
    assert lim.dropped == 3
    assert lim.held("web") == {"": 2, "notice": 1}
    assert lim.take_held("web") == {"": 2, "notice": 1} and lim.held("web") == {}
    assert not lim.admit("web", 100.0)  # handing back the count gives no new allowance


def test_window_admits_burst_per_window_and_holds_until_the_summary_is_taken() -> None:
    lim = Limiter(3, window=10.0)
    got = [lim.admit("web", 100.0 + i, "kept") for i in range(5)]
    assert got == [True, True, True, False, False]
    assert lim.window_end("web") == 110.0
    assert lim.holding() == {"web": 2} and lim.held_total("web") == 2
    assert lim.take_due(105.0) == []
    # the window is over, but its count is not handed back yet: no new window before it
    assert not lim.admit("web", 111.0, "released")
    assert lim.take_due(111.0) == [("web", {"kept": 2, "released": 1})]
    assert lim.holding() == {}
    assert lim.admit("web", 112.0) and lim.window_end("web") == 122.0


def test_window_without_refusals_starts_anew_by_itself() -> None:
    lim = Limiter(1, window=10.0)
    assert lim.admit("a", 0.0) and not lim.admit("a", 9.9)
    assert lim.take_held("a") == {"": 1}
    assert lim.admit("a", 9.95)  # a new window began with the summary
    lim2 = Limiter(1, window=10.0)
    assert lim2.admit("a", 0.0) and lim2.admit("a", 10.0)


def test_charge_takes_costs_already_paid_and_says_how_long_to_wait() -> None:
    bucket = Limiter(4000, per_second=1000.0)
    assert bucket.charge(4000, 10.0) == 0.0
    assert bucket.charge(500, 10.0) == pytest.approx(0.5)
    assert bucket.charge(0, 10.5) == 0.0
    window = Limiter(10, window=60.0)
    assert window.charge(10, 0.0) == 0.0
    assert window.charge(1, 15.0) == pytest.approx(45.0)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"per_second": 1.0, "window": 1.0}, {"per_second": 0.0}, {"window": -1.0}],
)
def test_a_limiter_refills_one_way_with_positive_numbers(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Limiter(1, **kwargs)
    with pytest.raises(ValueError):
        Limiter(0, per_second=1.0)
