"""Kernel helpers without netlink, used on both sides of the network-ops process: a thread
that enters a network namespace, sysctls, and the host-wide lock of address allocation.

Nothing here imports pyroute2: the compositor uses these itself (the DNS forwarder's
sockets are bound inside a desktop's namespace, sysctls are recorded and restored by the
manager), and `rootops` uses them inside the ops process.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from zionwm.isolation.network.children import libc

ALLOC_LOCK = Path("/run/lock/zionwm-net.lock")
CLONE_NEWNET = 0x40000000
_T = TypeVar("_T")


def in_netns(path: Path, fn: Callable[[], _T]) -> _T:
    """Run `fn` in a throw-away thread that setns()ed into `path` (only that thread moves)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc().setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err), str(path))
                box["value"] = fn()
            finally:
                os.close(fd)
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=run, name="zionwm-setns")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def write_sysctl(key: str, value: str) -> None:
    Path("/proc/sys", *key.split(".")).write_text(value)


def read_sysctl(key: str) -> str:
    return Path("/proc/sys", *key.split(".")).read_text().strip()


@contextmanager
def alloc_lock() -> Iterator[None]:
    # Two managers (two test runs) must not pick the same /30 between look and add. Taken by
    # the manager, in its own process, around the ops process's look (`used_networks`) and
    # add (`create_veth`): the lock is the caller's, whichever process runs the verbs.
    ALLOC_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(ALLOC_LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
