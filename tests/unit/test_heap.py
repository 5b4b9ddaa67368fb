"""heap.limit_arenas: threads that allocate share the one malloc arena (glibc's own count,
from malloc_stats, in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import ctypes, sys, threading
from zionwm import heap
if sys.argv[1] == "limit":
    heap.limit_arenas()
ready = threading.Barrier(5)
def work():
    kept = [bytearray(64 * 1024) for _ in range(8)]  # malloc, not Python's small-object pool
    ready.wait()
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
ready.wait()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per arena, on stderr
for t in threads:
    t.join()
"""


def _arenas(mode: str) -> int:
    r = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},  # no MALLOC_ARENA_MAX from the caller
    )
    return sum(1 for line in r.stderr.splitlines() if line.startswith("Arena "))


def test_threads_share_one_arena() -> None:
    if sys.platform != "linux":
        pytest.skip("malloc arenas and malloc_stats are glibc's")
    # without the limit the same program gets an arena per allocating thread
    assert _arenas("default") > 1
    assert _arenas("limit") == 1
