"""Safe-copy conversion speed: pages per second through both sandboxes (render to pixels with
pdftoppm at 100 dpi, rebuild as a plain PDF with Pillow).

    .venv/bin/python -m benchmarks.convert [--pages 20] [--reps 3] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

from zionwm.quarantine.convert import convert


def _pdf(pages: int) -> bytes:
    """`pages` A4 pages, each with boxes and a line of text in a standard font."""
    objs: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    font = 3
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for n in range(pages):
        content = (
            b"0 0 1 rg 50 600 300 150 re f 1 0 0 rg 200 200 250 100 re f "
            b"BT /F1 24 Tf 72 760 Td (Page %d of a benchmark document) Tj ET" % (n + 1)
        )
        objs.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        cid = len(objs)
        objs.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents %d 0 R"
            b" /Resources << /Font << /F1 %d 0 R >> >> >>" % (cid, font)
        )
        kids.append(len(objs))
    objs[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        pages,
    )
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    )
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="zionwm-convert-") as d:
        path = Path(d) / "doc.pdf"
        path.write_bytes(_pdf(args.pages))
        runs = []
        for _ in range(args.reps):
            fd = os.open(path, os.O_RDONLY)
            try:
                t0 = time.monotonic()
                done = convert(fd)
                runs.append(time.monotonic() - t0)
            finally:
                os.close(fd)
        best = min(runs)
        result = {
            "pages": done.pages,
            "seconds": [round(r, 3) for r in runs],
            "pages_per_s": round(done.pages / best, 2),
            "safe_copy_bytes": len(done.pdf),
            "original_bytes": path.stat().st_size,
        }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['pages']} A4 pages at 100 dpi: best {min(runs):.2f} s ="
            f" {result['pages_per_s']} pages/s (runs {result['seconds']});"
            f" {result['original_bytes']} -> {result['safe_copy_bytes']} bytes"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
