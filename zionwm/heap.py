"""What start-up leaves behind: freed C heap pages, and objects the cycle collector rescans;
and how many heaps the C library may keep.

Importing several hundred modules and compiling the config leave megabytes of freed memory
in glibc's heap that `free` keeps for reuse rather than returning; the compositor then runs
for days with it resident. One `malloc_trim(0)` once start-up is done returns those pages
(about 2 MiB measured).

The same start-up leaves about 30,000 objects (modules, classes, functions) that live as long
as the process; every full pass of Python's cycle collector walked them all, about 8 ms on a
loaded 2-core machine: half a frame, landing on whatever key press or frame it met.
`gc.freeze()` moves them out of the collector's sight after one last collection; objects made
later (windows, clients) are collected as before.

glibc gives each thread that allocates its own heap (an "arena", up to eight per CPU), and
keeps an arena's free pages for that thread. Worker threads in the compositor (for writes that
may block) allocate little, under the GIL, one at a time: one arena serves them all, and its
free pages are the ones `malloc_trim` returns. `limit_arenas` runs first thing in `main`,
before any thread exists.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # <malloc.h>


def _libc() -> ctypes.CDLL:
    # the process's own symbols, the C library's among them (find_library would run ldconfig)
    return ctypes.CDLL(None)


def limit_arenas() -> None:
    """One malloc arena for the whole process (see the module's docstring); nothing where the
    C library has no mallopt (e.g. musl), or where the environment already chose
    (MALLOC_ARENA_MAX)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):
        log.debug("no mallopt in this C library: arenas left as they are")
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if not mallopt(M_ARENA_MAX, 1):
        log.debug("mallopt(M_ARENA_MAX) refused: arenas left as they are")


def trim_after_startup() -> None:
    """Collect start-up's garbage cycles, freeze what survives (see the module's docstring),
    then return the heap's free pages to the kernel (not where the C library has no
    malloc_trim, e.g. musl)."""
    gc.collect()
    gc.freeze()
    try:
        trim = _libc().malloc_trim
    except (OSError, AttributeError):
        log.debug("no malloc_trim in this C library: start-up heap kept")
        return
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
