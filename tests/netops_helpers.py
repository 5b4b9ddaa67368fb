"""Finding the network-ops process (`zionwm.isolation.network.opsd`) a compositor or a
network manager started, by its parent and command line in /proc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zionwm.isolation.network.caps import probe

OPSD = b"zionwm.isolation.network.opsd"


def _ppid_and_state(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[1]), fields[0]


def ops_processes(parent: int) -> list[int]:
    """Live (not zombie) network-ops processes whose parent is `parent`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        info = _ppid_and_state(pid)
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if info is not None and info[0] == parent and info[1] != "Z" and OPSD in cmd:
            found.append(pid)
    return found


def gone(pid: int) -> bool:
    """The process has exited (a zombie, or reaped)."""
    info = _ppid_and_state(pid)
    return info is None or info[1] == "Z"


def skip_unless_privileged_network() -> None:
    caps = probe()
    if not caps.privileged:
        pytest.skip(f"the privileged network path is unavailable: {caps.describe()}")
