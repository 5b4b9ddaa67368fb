"""Safe-copy conversion speed: pages per second through both sandboxes (render to pixels with
pdftoppm at 100 dpi, rebuild as a plain PDF with Pillow), for a PDF and for a Word document
of the same number of pages (LibreOffice headless turns it into a PDF first, in the render
sandbox).

    .venv/bin/python -m benchmarks.convert [--pages 20] [--reps 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from tests.documents import docx_pages, text_pdf
from zionwm.quarantine.convert import convert


def _measure(path: Path, reps: int) -> dict[str, object]:
    runs = []
    pages = 0
    size = 0
    for _ in range(reps):
        fd = os.open(path, os.O_RDONLY)
        try:
            t0 = time.monotonic()
            done = convert(fd)
            runs.append(time.monotonic() - t0)
            pages, size = done.pages, len(done.pdf)
        finally:
            os.close(fd)
    return {
        "pages": pages,
        "seconds": [round(r, 3) for r in runs],
        "best_s": round(min(runs), 3),
        "pages_per_s": round(pages / min(runs), 2),
        "safe_copy_bytes": size,
        "original_bytes": path.stat().st_size,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    samples = {
        "pdf": ("doc.pdf", text_pdf(args.pages), "A4 PDF pages"),
        "docx": ("doc.docx", docx_pages(args.pages), "Word pages (LibreOffice, then pixels)"),
    }
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="zionwm-convert-") as d:
        for kind, (name, data, _what) in samples.items():
            if kind == "docx" and shutil.which("soffice") is None:
                continue  # said below: LibreOffice is not installed here
            path = Path(d) / name
            path.write_bytes(data)
            results[kind] = _measure(path, args.reps)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for kind, (_name, _data, what) in samples.items():
        r = results.get(kind)
        if r is None:
            print(f"{what}: not measured, LibreOffice (soffice) is not installed")
            continue
        print(
            f"{r['pages']} {what} at 100 dpi: best {r['best_s']} s ="
            f" {r['pages_per_s']} pages/s (runs {r['seconds']});"
            f" {r['original_bytes']} -> {r['safe_copy_bytes']} bytes"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
