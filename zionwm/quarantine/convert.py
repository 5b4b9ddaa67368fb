"""Safe copies: a risky PDF or image turned into pixels, then into a plain new PDF.

Two sandboxes, each the audit worker's (no network, uid 65534, no capabilities, the seccomp
filter, rlimits, read-only everything), one after the other:

1. `--render`: the original, as an inherited read-only fd, is drawn to pixels — a PDF by
   poppler's `pdftoppm`, an image by Pillow — and written to stdout as a stream of PPM
   images, one per page. Whatever the document does to its renderer stays in there; what
   comes out is only pixels;
2. the parent reads the stream with a strict parser of its own (bounded page count and
   sizes) and hands the pages to `--rebuild`, which makes a PDF with one image per page and
   nothing else (no scripts, no links, no forms, no fonts), written to stdout.

The safe copy then enters the quarantine as a new item (audited like any file) named
`<name>.safe.pdf`; the original stays where it is until the user deletes or releases it.
`parse_ppm_stream` and `safe_name` are pure; the rest is the thin shell around the sandboxes.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import PurePosixPath

MODULE = "zionwm.quarantine.convert"
DPI = 100
MAX_PAGES = 500
MAX_PAGE_PIXELS = 40_000_000  # 8,000 x 5,000: an A0 poster at 100 dpi is 4,700 x 3,300
MAX_OUTPUT = 1 << 30
IMAGE_MAGICS = (
    b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
)  # fmt: skip


class ConvertError(Exception):
    """The document could not be turned into a safe copy (said in words for the user)."""


@dataclass(frozen=True)
class Page:
    width: int
    height: int
    rgb: bytes


def kind_of(head: bytes) -> str | None:
    """'pdf', 'image', or None when this kind of file has no safe conversion here."""
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(IMAGE_MAGICS) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    return None


def safe_name(name: str) -> str:
    """'report.pdf' -> 'report.safe.pdf', 'photo.png' -> 'photo.safe.pdf' (pure)."""
    stem = PurePosixPath(name).stem or "document"
    return f"{stem}.safe.pdf"


def _token(data: bytes, pos: int) -> tuple[bytes, int]:
    while pos < len(data) and data[pos : pos + 1].isspace():
        pos += 1
    end = pos
    while end < len(data) and not data[end : end + 1].isspace():
        end += 1
    return data[pos:end], end


def parse_ppm_stream(data: bytes) -> list[Page]:
    """Binary PPM images (P6, maxval 255) one after the other; anything else is refused."""
    pages: list[Page] = []
    pos = 0
    while pos < len(data):
        if data[pos:].strip() == b"":
            break
        magic, pos = _token(data, pos)
        if magic != b"P6":
            raise ConvertError(f"page {len(pages) + 1}: not a PPM image")
        fields = []
        for _ in range(3):
            tok, pos = _token(data, pos)
            if not tok.isdigit():
                raise ConvertError(f"page {len(pages) + 1}: bad PPM header")
            fields.append(int(tok))
        width, height, maxval = fields
        if maxval != 255 or width <= 0 or height <= 0 or width * height > MAX_PAGE_PIXELS:
            raise ConvertError(f"page {len(pages) + 1}: {width}x{height} is not a page size")
        pos += 1  # the single whitespace after maxval
        size = width * height * 3
        if pos + size > len(data):
            raise ConvertError(f"page {len(pages) + 1}: truncated")
        pages.append(Page(width, height, data[pos : pos + size]))
        pos += size
        if len(pages) > MAX_PAGES:
            raise ConvertError(f"more than {MAX_PAGES} pages")
    if not pages:
        raise ConvertError("the renderer produced no page")
    return pages


def ppm_stream(pages: list[Page]) -> bytes:
    return b"".join(b"P6\n%d %d\n255\n" % (p.width, p.height) + p.rgb for p in pages)


# --- the parent side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Converted:
    pdf: bytes
    pages: int
    seconds: float


def _run(stage: list[str], fd: int, stdin: bytes, timeout: float, memory: int) -> bytes:
    from zionwm.quarantine import worker  # noqa: PLC0415

    seccomp_fd = worker._seccomp_fd()
    try:
        plan = worker._host_plan(fd, worker.AuditSettings(), None, False, seccomp_fd)
        extra = tuple(p for p in ("/etc/fonts",) if os.path.isdir(p))  # poppler's fonts
        plan = dataclasses.replace(
            plan,
            module=MODULE,
            ro_paths=plan.ro_paths + extra,
            memory_max=memory,
            cpu_seconds=int(timeout) + 1,
            readonly_tmp=True,
        )
        argv = worker.sandbox_argv(plan) + stage
        pass_fds = tuple(f for f in (fd, seccomp_fd) if f is not None and f > 2)
        try:
            run = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                timeout=timeout,
                pass_fds=pass_fds,
                env=worker.sandbox_env(plan),
                start_new_session=True,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ConvertError(f"{stage[0]} did not finish within {timeout:g} s") from exc
    finally:
        if seccomp_fd is not None:
            os.close(seccomp_fd)
    if run.returncode != 0:
        tail = run.stderr[-300:].decode("utf-8", "replace").strip()
        raise ConvertError(f"{stage[0]} failed ({run.returncode}): {tail or 'no message'}")
    if len(run.stdout) > MAX_OUTPUT:
        raise ConvertError("the output is too large")
    return run.stdout


def convert(fd: int, timeout: float = 300.0, memory: int = 1 << 30) -> Converted:
    """A safe PDF copy of the open file `fd` (a PDF or an image). Raises ConvertError."""
    from zionwm.quarantine.worker import _reopen_read_only  # noqa: PLC0415

    t0 = time.monotonic()
    kind = kind_of(os.pread(fd, 8192, 0))
    if kind is None:
        raise ConvertError("only PDFs and images can be converted here")
    ro = _reopen_read_only(fd)
    try:
        rendered = _run(["--render", kind], ro, b"", timeout, memory)
    finally:
        os.close(ro)
    pages = parse_ppm_stream(rendered)
    # the rebuild sees only pixels that passed our own parser, and no file at all
    pdf = _run(["--rebuild"], 0, ppm_stream(pages), timeout, memory)
    if not pdf.startswith(b"%PDF-"):
        raise ConvertError("the rebuilt document is not a PDF")
    return Converted(pdf, len(pages), time.monotonic() - t0)


# --- the sandbox side --------------------------------------------------------------------------


def _render(fd: int, kind: str) -> int:
    if kind == "pdf":
        # pdftoppm writes every page as PPM to stdout when given no output name
        return subprocess.run(
            ["pdftoppm", "-r", str(DPI), f"/proc/self/fd/{fd}"], pass_fds=(fd,), check=False
        ).returncode
    from PIL import Image  # noqa: PLC0415

    Image.MAX_IMAGE_PIXELS = MAX_PAGE_PIXELS
    with open(f"/proc/self/fd/{fd}", "rb") as f, Image.open(f) as img:
        out = io.BytesIO()
        frames = getattr(img, "n_frames", 1)
        for n in range(min(frames, MAX_PAGES)):
            img.seek(n)
            img.convert("RGB").save(out, format="PPM")
    sys.stdout.buffer.write(out.getvalue())
    return 0


def _rebuild() -> int:
    from PIL import Image  # noqa: PLC0415

    pages = parse_ppm_stream(sys.stdin.buffer.read())
    images = [Image.frombytes("RGB", (p.width, p.height), p.rgb) for p in pages]
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=DPI)
    sys.stdout.buffer.write(out.getvalue())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zionwm.quarantine.convert")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--render", choices=("pdf", "image"))
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args(argv)
    if args.render:
        return _render(args.fd, args.render)
    if args.rebuild:
        return _rebuild()
    parser.error("--render KIND or --rebuild")
    return 2


if __name__ == "__main__":
    sys.exit(main())
