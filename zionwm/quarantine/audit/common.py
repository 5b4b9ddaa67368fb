"""What every scanner shares: how a subject (an open fd, a path, or bytes in memory) is read.

Scanners take a `Source` so the same code audits the quarantined file (an inherited fd in
the sandboxed worker), a file in a test (a path), and a member of an archive (bytes read
with a budget). Nothing here writes anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import PurePosixPath

Source = int | str | bytes  # open fd, path, or content already in memory

HEAD_SIZE = 8192


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
