"""What hibernating a desktop would free, from memory.stat and the swap (pure)."""

from __future__ import annotations

from zionwm.isolation.hibernate import estimate

MiB = 1 << 20


def test_without_swap_only_the_file_cache_can_go_and_the_text_says_why() -> None:
    est = estimate(
        {"file": 80 * MiB, "anon": 40 * MiB, "shmem": 10 * MiB}, 130 * MiB, 0, None, True
    )
    assert est.file_bytes == 70 * MiB  # shared memory is in `file` but needs swap
    assert est.swap_only_bytes == 50 * MiB
    assert est.freeable_bytes == 70 * MiB
    assert "no swap to put it in" in est.text()
    assert est.text().startswith("up to 70.0 MiB of 130.0 MiB")


def test_swap_takes_program_memory_up_to_the_room_the_desktop_has() -> None:
    stat = {"file": 10 * MiB, "anon": 100 * MiB}
    assert estimate(stat, 110 * MiB, 1 << 30, None, True).freeable_bytes == 110 * MiB
    limited = estimate(stat, 110 * MiB, 1 << 30, 30 * MiB, True)
    assert limited.freeable_bytes == 40 * MiB
    assert "no room for more" in limited.text()


def test_without_a_reclaim_interface_nothing_is_promised() -> None:
    est = estimate({"file": 10 * MiB}, 10 * MiB, 0, None, False, "memory.reclaim is missing")
    assert est.freeable_bytes == 0
    assert est.text() == "nothing can be pushed out: memory.reclaim is missing"
    assert est.as_dict()["freeable_bytes"] == 0
