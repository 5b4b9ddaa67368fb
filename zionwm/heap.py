"""What start-up leaves behind: freed C heap pages, and objects the cycle collector rescans.

Importing several hundred modules and compiling the config leave megabytes of freed memory
in glibc's heap that `free` keeps for reuse rather than returning; the compositor then runs
for days with it resident. One `malloc_trim(0)` once start-up is done returns those pages
(about 2 MiB measured).

The same start-up leaves about 30,000 objects (modules, classes, functions) that live as long
as the process; every full pass of Python's cycle collector walked them all, about 8 ms on a
loaded 2-core machine: half a frame, landing on whatever key press or frame it met.
`gc.freeze()` moves them out of the collector's sight after one last collection; objects made
later (windows, clients) are collected as before.
"""

from __future__ import annotations

import ctypes
import gc
import logging

log = logging.getLogger(__name__)


def trim_after_startup() -> None:
    """Collect start-up's garbage cycles, freeze what survives (see the module's docstring),
    then return the heap's free pages to the kernel (not where the C library has no
    malloc_trim, e.g. musl)."""
    gc.collect()
    gc.freeze()
    try:
        # the process's own symbols, the C library's among them (find_library would run
        # ldconfig)
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        log.debug("no malloc_trim in this C library: start-up heap kept")
        return
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
