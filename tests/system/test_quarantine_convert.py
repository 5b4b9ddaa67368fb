"""Safe copies end to end: a PDF with JavaScript, kept by the audit, is turned into pixels in
one sandbox and rebuilt as a plain PDF in another, released as a new item, and the original
stays in quarantine."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness import wait_for
from tests.system.test_quarantine import (  # noqa: F401  (fixtures)
    ORIGIN,
    QService,
    browser_save,
    downloads,
    item,
    policy,
    service,
    xdg,
)
from zionwm import paths
from zionwm.quarantine.convert import parse_ppm_stream

pytestmark = pytest.mark.skipif(
    shutil.which("pdftoppm") is None, reason="poppler-utils (pdftoppm) is not installed"
)


def pdf_with_javascript() -> bytes:
    """Two pages with coloured boxes, a JavaScript OpenAction and a page action."""
    page_content = [
        b"0 0 1 rg 20 20 100 60 re f 1 0 0 rg 60 100 80 40 re f",
        b"0 1 0 rg 10 10 150 150 re f",
    ]
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R /OpenAction 5 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 6 0 R"
        b" /AA << /O 5 0 R >> >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 7 0 R >>",
        b"<< /S /JavaScript /JS (app.alert('pwned');) >>",
        *(b"<< /Length %d >>\nstream\n" % len(c) + c + b"\nendstream" for c in page_content),
    ]
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


def render(pdf: Path) -> list[tuple[int, int, bytes]]:
    ppm = subprocess.run(
        ["pdftoppm", "-r", "100", str(pdf)], capture_output=True, check=True
    ).stdout
    return [(p.width, p.height, p.rgb) for p in parse_ppm_stream(ppm)]


def test_a_pdf_with_javascript_gets_a_safe_copy_and_stays_kept(
    service: Callable[..., QService],  # noqa: F811
    tmp_path: Path,
) -> None:
    svc = service(policy())
    original = pdf_with_javascript()
    browser_save(paths.desktop_inbox("web"), "invoice.pdf", original, ORIGIN)
    kept = wait_for(
        lambda: next(
            (i for i in svc.client().request("list")["items"] if i["state"] == "rejected"), None
        ),
        60,
        "the PDF kept for its JavaScript",
    )
    assert kept["verdict"] in ("suspicious", "malicious")  # its script keeps it
    with svc.client() as c:
        assert c.request("convert", id=kept["id"])["ok"]
    safe = downloads("personal") / "invoice.safe.pdf"
    wait_for(safe.exists, 120, "the safe copy released")
    data = safe.read_bytes()
    for token in (b"/JavaScript", b"/JS", b"/OpenAction", b"/AA", b"/Launch", b"/URI"):
        assert token not in data, token
    from pypdf import PdfReader

    assert len(PdfReader(io.BytesIO(data)).pages) == 2
    # the same pixels as the original, page by page
    (tmp_path / "orig.pdf").write_bytes(original)
    before, after = render(tmp_path / "orig.pdf"), render(safe)
    assert len(before) == len(after) == 2
    for (w1, h1, px1), (w2, h2, px2) in zip(before, after, strict=True):
        assert abs(w1 - w2) <= 1 and abs(h1 - h2) <= 1
        w, h = min(w1, w2), min(h1, h2)
        diff = sum(
            abs(px1[(y * w1 + x) * 3 + k] - px2[(y * w2 + x) * 3 + k])
            for y in range(0, h, 7)
            for x in range(0, w, 7)
            for k in range(3)
        ) / (3 * len(range(0, h, 7)) * len(range(0, w, 7)))
        assert diff < 8, diff
    assert os.getxattr(safe, "user.xdg.origin.url").decode() == ORIGIN
    # the original is still in quarantine; the copy's record says what it is
    assert item(svc, kept["id"])["state"] == "rejected" and item(svc, kept["id"])["content"]
    copies = [
        i
        for i in svc.client().request("list", all=True)["items"]
        if i["name"] == "invoice.safe.pdf"
    ]
    (copy,) = copies
    assert copy["reason"].startswith(f"safe copy of item {kept['id']} ")
    assert "2 pages rendered to pixels" in copy["reason"]
    assert not [f for f in item(svc, copy["id"])["report"]["findings"] if f["scanner"] == "pdf"]


def test_a_desktop_that_asks_for_safe_copies_gets_one_for_each_kept_document(
    service: Callable[..., QService],  # noqa: F811
) -> None:
    pol = policy()
    pol["desktops"][0]["downloads"]["safe_copy"] = True
    svc = service(pol)
    browser_save(paths.desktop_inbox("web"), "invoice.pdf", pdf_with_javascript(), ORIGIN)
    browser_save(paths.desktop_inbox("web"), "notes.txt", b"meeting at noon\n")
    safe = downloads("personal") / "invoice.safe.pdf"
    wait_for(safe.exists, 120, "the safe copy made and released on its own")
    assert b"/JavaScript" not in safe.read_bytes()
    wait_for((downloads("personal") / "notes.txt").exists, 60, "the text released")
    items = {i["name"]: i for i in svc.client().request("list", all=True)["items"]}
    assert items["invoice.pdf"]["state"] == "rejected"  # the original stays kept
    assert "notes.safe.pdf" not in items  # a released file needs no safe copy
