"""What every scanner shares: the audit settings, and how a subject (an open fd, a path, or
bytes in memory) is read.

Scanners take a `Source` so the same code audits the quarantined file (an inherited fd in
the sandboxed worker), a file in a test (a path), and a member of an archive (bytes read
with a budget). Nothing here writes anything.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

Source = int | str | bytes  # open fd, path, or content already in memory

HEAD_SIZE = 8192


@dataclass(frozen=True)
class AuditSettings:  # defaults must work out of the box
    clamd_socket: str | None = None  # unix socket path of a clamd; None = skip clamd
    yara_rule_dirs: tuple[str, ...] = ()  # user's extra rules, besides the bundled set
    timeout: float = 60.0
    memory_max: int = 512 * 2**20
    archive_max_total: int = 1 << 30  # bytes unpacked
    archive_max_ratio: float = 100.0
    archive_max_depth: int = 3
    archive_max_entries: int = 10000
    # what happens to a file no antivirus looked at: "required" keeps it waiting for one,
    # "if-available" releases it after the hold, marked "no antivirus scan"
    antivirus: str = "required"
    clamd_database_dir: str | None = None  # to notice signature updates of a local database

    def __post_init__(self) -> None:
        # configs hand over lists (JSON); the scanners cache on this value, so keep it hashable
        object.__setattr__(self, "yara_rule_dirs", tuple(str(d) for d in self.yara_rule_dirs))

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["yara_rule_dirs"] = list(self.yara_rule_dirs)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AuditSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        if "yara_rule_dirs" in values:
            values["yara_rule_dirs"] = tuple(str(p) for p in values["yara_rule_dirs"])
        return cls(**values)


class Loaded(bytes):
    """A whole file read once into memory, with the mode of the file it came from (so the
    type scanner still sees exec bits while every scanner reads the same buffer)."""

    mode: int | None = None

    @classmethod
    def of(cls, data: bytes, mode: int | None) -> Loaded:
        loaded = cls(data)
        loaded.mode = mode
        return loaded


def read_head(src: Source, size: int = HEAD_SIZE) -> bytes:
    """The first `size` bytes, read without moving any shared file offset."""
    if isinstance(src, bytes):
        return src[:size]
    if isinstance(src, int):
        return os.pread(src, size, 0)
    with open(src, "rb") as f:
        return f.read(size)


def source_size(src: Source) -> int:
    if isinstance(src, bytes):
        return len(src)
    if isinstance(src, int):
        return os.fstat(src).st_size
    return os.stat(src).st_size


def source_mode(src: Source) -> int | None:
    """st_mode of a file; None for bytes in memory (they carry no mode)."""
    if isinstance(src, bytes):
        return getattr(src, "mode", None)
    if isinstance(src, int):
        return os.fstat(src).st_mode
    return os.stat(src).st_mode


def source_path(src: int | str) -> str:
    """A path naming the same open file: /proc/self/fd/N stays tied to the inode, not a name."""
    if isinstance(src, int):
        return f"/proc/self/fd/{src}"
    return src


def iter_chunks(src: Source, chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """The content in order, `chunk_size` bytes at a time, never all in memory at once."""
    if isinstance(src, bytes):
        for i in range(0, len(src), chunk_size):
            yield src[i : i + chunk_size]
        return
    if isinstance(src, int):
        offset = 0
        while chunk := os.pread(src, chunk_size, offset):
            offset += len(chunk)
            yield chunk
        return
    with open(src, "rb") as f:
        while chunk := f.read(chunk_size):
            yield chunk


def extension(name: str) -> str:
    """Lower-case last suffix of a display name ('' if none), e.g. 'report.PDF' -> '.pdf'."""
    return PurePosixPath(name.replace("\\", "/")).suffix.lower()
