"""Safe copies: a risky PDF, image or office document turned into pixels, then into a plain
new PDF.

Two sandboxes, each the audit worker's (no network, uid 65534, no capabilities, the seccomp
filter, rlimits, read-only everything), one after the other:

1. `--render`: the original, as an inherited read-only fd, is drawn to pixels — a PDF by
   poppler's `pdftoppm`, an image by Pillow, an office document (Word, Excel, PowerPoint,
   OpenDocument) by LibreOffice headless to a PDF and that PDF by `pdftoppm` — and written to
   stdout as a stream of PPM images, one per page. Whatever the document does to its
   renderer stays in there; what comes out is only pixels. LibreOffice needs a writable
   profile: it gets a throwaway one on the sandbox's own /tmp (gone with the sandbox), set
   to run no macro at all (`OFFICE_PROFILE`; headless conversion runs none by default
   either: this is the second lock);
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
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import PurePosixPath

MODULE = "zionwm.quarantine.convert"
DPI = 100
MAX_PAGES = 500
MAX_PAGE_PIXELS = 40_000_000  # 8,000 x 5,000: an A0 poster at 100 dpi is 4,700 x 3,300
MAX_OUTPUT = 1 << 30
OFFICE_MEMORY = 2 << 30  # address space: LibreOffice maps far more than it touches
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .doc, .xls, .ppt (and other OLE files)
ZIP_MAGIC = b"PK\x03\x04"
ODF_MIMETYPE = b"mimetypeapplication/vnd.oasis.opendocument."
# part names of the first entries of a Word, Excel or PowerPoint file (OOXML)
OOXML_PARTS = (b"[Content_Types].xml", b"_rels/.rels", b"word/", b"xl/", b"ppt/")
# The macro locks of the throwaway LibreOffice profile: security "very high" (only signed
# macros from trusted places, and there are none) and macro execution switched off outright.
OFFICE_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry"
 xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop
 oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop
 oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
</oor:items>
"""
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
    """'pdf', 'image', 'office', or None when this kind of file has no safe conversion here.

    Office documents are told by their container: an OLE2 file (.doc, .xls, .ppt), or a zip
    whose first entry is an OpenDocument mimetype or an OOXML part. Any other zip is not
    handed to LibreOffice."""
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(IMAGE_MAGICS) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    if head.startswith(OLE2_MAGIC):
        return "office"
    if head.startswith(ZIP_MAGIC) and (
        head[30:].startswith(ODF_MIMETYPE) or any(p in head[30:200] for p in OOXML_PARTS)
    ):
        return "office"
    return None


def office_suffix(head: bytes) -> str:
    """The file name ending LibreOffice gets for a document of kind 'office' (pure): its
    type detection starts from the name, then checks the content."""
    if head.startswith(OLE2_MAGIC):
        return ".doc"  # the content decides between Word, Excel and PowerPoint
    if head[30:].startswith(ODF_MIMETYPE):
        sub = head[30 + len(ODF_MIMETYPE) : 30 + len(ODF_MIMETYPE) + 12]
        for name, suffix in ((b"spreadsheet", ".ods"), (b"presentation", ".odp")):
            if sub.startswith(name):
                return suffix
        return ".odt"
    for part, suffix in ((b"xl/", ".xlsx"), (b"ppt/", ".pptx")):
        if part in head:
            return suffix
    return ".docx"


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


def _run(
    stage: list[str], fd: int, stdin: bytes, timeout: float, memory: int, scratch: bool = False
) -> bytes:
    """Run one stage in its sandbox. `scratch`: the sandbox's own /tmp stays writable (a
    tmpfs of its own, gone with it), for LibreOffice's profile and its PDF."""
    from zionwm.quarantine import worker  # noqa: PLC0415

    seccomp_fd = worker._seccomp_fd()
    try:
        plan = worker._host_plan(fd, worker.AuditSettings(), None, False, seccomp_fd)
        # poppler's fonts; LibreOffice's configuration (its sofficerc points there)
        extra = tuple(p for p in ("/etc/fonts", "/etc/libreoffice") if os.path.isdir(p))
        plan = dataclasses.replace(
            plan,
            module=MODULE,
            ro_paths=plan.ro_paths + extra,
            memory_max=memory,
            cpu_seconds=int(timeout) + 1,
            readonly_tmp=not scratch,
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
    """A safe PDF copy of the open file `fd` (a PDF, an image or an office document).
    Raises ConvertError."""
    from zionwm.quarantine.worker import _reopen_read_only  # noqa: PLC0415

    t0 = time.monotonic()
    kind = kind_of(os.pread(fd, 8192, 0))
    if kind is None:
        raise ConvertError("only PDFs, images and office documents can be converted here")
    if kind == "office" and shutil.which("soffice") is None:
        raise ConvertError("office documents need LibreOffice (soffice), which is not installed")
    ro = _reopen_read_only(fd)
    try:
        if kind == "office":
            rendered = _run(
                ["--render", kind], ro, b"", timeout, max(memory, OFFICE_MEMORY), scratch=True
            )
        else:
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


def _render_office(fd: int) -> int:
    """LibreOffice turns the document into a PDF on this sandbox's own /tmp, with a profile
    that runs no macro; then that PDF is drawn to pixels like any other."""
    work = tempfile.mkdtemp(prefix="office-", dir="/tmp")
    profile = os.path.join(work, "profile")
    os.makedirs(os.path.join(profile, "user"))
    with open(os.path.join(profile, "user", "registrymodifications.xcu"), "w") as f:
        f.write(OFFICE_PROFILE)
    source = os.path.join(work, "document" + office_suffix(os.pread(fd, 8192, 0)))
    with open(f"/proc/self/fd/{fd}", "rb") as src, open(source, "wb") as dst:
        shutil.copyfileobj(src, dst)
    outdir = os.path.join(work, "out")
    office = subprocess.run(
        [
            "soffice",
            f"-env:UserInstallation=file://{profile}",
            "--headless",
            "--norestore",
            "--nolockcheck",
            "--nologo",
            "--nodefault",
            "--convert-to",
            "pdf",
            "--outdir",
            outdir,
            source,
        ],
        stdin=subprocess.DEVNULL,
        stdout=sys.stderr,  # stdout carries pixels only
        env={**os.environ, "HOME": work, "TMPDIR": work},
        check=False,
    )
    pdf = os.path.join(outdir, "document.pdf")
    if not os.path.exists(pdf):
        sys.stderr.write(f"LibreOffice made no PDF of it (exit {office.returncode})\n")
        return 3
    return subprocess.run(["pdftoppm", "-r", str(DPI), pdf], check=False).returncode


def _render(fd: int, kind: str) -> int:
    if kind == "office":
        return _render_office(fd)
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
    parser.add_argument("--render", choices=("pdf", "image", "office"))
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
