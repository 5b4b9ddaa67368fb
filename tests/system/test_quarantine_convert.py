"""Safe copies end to end: a PDF with JavaScript, kept by the audit, is turned into pixels in
one sandbox and rebuilt as a plain PDF in another, released as a new item, and the original
stays in quarantine. Office documents go through LibreOffice in the first sandbox, where a
document's macros never run."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.documents import docx_pages, odt_with_onload_macro, pdf_with_javascript, text_pdf
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
from zionwm.quarantine.convert import ConvertError, convert, parse_ppm_stream

pytestmark = pytest.mark.skipif(
    shutil.which("pdftoppm") is None, reason="poppler-utils (pdftoppm) is not installed"
)


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


SCRIPT_TOKENS = (b"/JavaScript", b"/JS", b"/OpenAction", b"/AA", b"/Launch", b"/URI")


def pdf_pages(data: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(data)).pages)


def convert_file(path: Path) -> tuple[bytes, int]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        done = convert(fd)
    finally:
        os.close(fd)
    return done.pdf, done.pages


def test_a_two_page_word_document_becomes_a_plain_pdf_with_its_two_pages(tmp_path: Path) -> None:
    doc = tmp_path / "letter.docx"
    doc.write_bytes(docx_pages(2))
    pdf, pages = convert_file(doc)
    assert pages == 2 and pdf_pages(pdf) == 2
    for token in SCRIPT_TOKENS:
        assert token not in pdf, token
    # pixels, not text: the copy has no font left
    assert b"/Font" not in pdf
    # and the text was drawn: every page has dark pixels
    (tmp_path / "copy.pdf").write_bytes(pdf)
    for _w, _h, px in render(tmp_path / "copy.pdf"):
        dark = sum(1 for v in px[::3] if v < 100)
        assert dark > 100, "a page with no dark pixel: the text is missing"


# Each office format as LibreOffice itself writes it, from a source with a known page count:
# (file made, source, source's import filter or "", pages)
OFFICE_FORMATS = [
    ("letter.doc", "letter.docx", "", 2),
    ("letter.odt", "letter.docx", "", 2),
    ("sheet.xlsx", "sheet.csv", "", 1),
    ("sheet.xls", "sheet.csv", "", 1),
    ("sheet.ods", "sheet.csv", "", 1),
    ("slides.pptx", "slides.pdf", "impress_pdf_import", 3),
    ("slides.odp", "slides.pdf", "impress_pdf_import", 3),
]


@pytest.fixture(scope="module")
def office_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The formats of OFFICE_FORMATS, made by LibreOffice on the host (they are the test's
    input, not what is tested)."""
    d = tmp_path_factory.mktemp("office")
    (d / "letter.docx").write_bytes(docx_pages(2))
    (d / "sheet.csv").write_text("name,amount\nrent,1200\nfood,300\n")
    (d / "slides.pdf").write_bytes(text_pdf(3))
    for made, source, infilter, _pages in OFFICE_FORMATS:
        subprocess.run(
            ["soffice", f"-env:UserInstallation=file://{d}/profile", "--headless",
             *([f"--infilter={infilter}"] if infilter else []),
             "--convert-to", made.rsplit(".", 1)[1], "--outdir", str(d / "made"),
             str(d / source)],
            env={**os.environ, "HOME": str(d)},
            capture_output=True,
            check=True,
            timeout=120,
        )  # fmt: skip
        (d / "made" / f"{source.rsplit('.', 1)[0]}.{made.rsplit('.', 1)[1]}").rename(d / made)
    return d


@pytest.mark.parametrize(("name", "pages"), [(f[0], f[3]) for f in OFFICE_FORMATS])
def test_every_office_format_becomes_a_plain_pdf_with_its_pages(
    office_files: Path, name: str, pages: int
) -> None:
    pdf, got = convert_file(office_files / name)
    assert got == pages and pdf_pages(pdf) == pages
    assert b"/Font" not in pdf and not any(token in pdf for token in SCRIPT_TOKENS)


def _office_with_macros_allowed(profile: Path, document: Path, witness: Path) -> None:
    """Open `document` in LibreOffice on the host, with a profile whose macro security is
    lowest, until its macro has written `witness` (the proof that the sample is a working
    attack); then stop that LibreOffice."""
    (profile / "user").mkdir(parents=True)
    (profile / "user" / "registrymodifications.xcu").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<oor:items xmlns:oor="http://openoffice.org/2001/registry">'
        '<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop'
        ' oor:name="MacroSecurityLevel" oor:op="fuse"><value>0</value></prop></item>'
        "</oor:items>"
    )
    office = subprocess.Popen(
        ["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--norestore",
         str(document)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(profile)},
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(witness.exists, 120, "the sample's macro to run where macros are allowed")
    finally:
        os.killpg(office.pid, signal.SIGKILL)
        office.wait()


@pytest.mark.security
def test_a_documents_load_macro_never_runs_in_the_conversion_sandbox(tmp_path: Path) -> None:
    """The attacker is the document: a Basic macro bound to its load event, which adds pages
    and writes a file. Converted, the copy has the document's one page only."""
    witness = tmp_path / "macro-ran"
    doc = tmp_path / "minutes.odt"
    doc.write_bytes(odt_with_onload_macro(str(witness)))
    _office_with_macros_allowed(tmp_path / "profile", doc, witness)
    witness.unlink()
    pdf, pages = convert_file(doc)
    assert pages == 1 and pdf_pages(pdf) == 1, f"the macro ran: {pages} pages"
    assert not witness.exists()
    assert not any(token in pdf for token in SCRIPT_TOKENS)


def test_a_kept_office_document_gets_a_safe_copy_through_the_service(
    service: Callable[..., QService],  # noqa: F811
) -> None:
    svc = service(policy(hold=600.0))
    browser_save(paths.desktop_inbox("web"), "report.docx", docx_pages(2), ORIGIN)
    held = wait_for(
        lambda: next(
            (i for i in svc.client().request("list")["items"] if i["state"] == "held"), None
        ),
        60,
        "the document held",
    )
    with svc.client() as c:
        assert c.request("convert", id=held["id"])["ok"]

    def the_copy() -> dict[str, object] | None:
        items = svc.client().request("list", all=True)["items"]
        return next((i for i in items if i["name"] == "report.safe.pdf"), None)

    copy = wait_for(the_copy, 120, "the safe copy of the document")
    assert f"safe copy of item {held['id']} " in str(copy["reason"])
    assert "2 pages rendered to pixels" in str(copy["reason"])
    assert item(svc, held["id"])["state"] == "held"  # the original is untouched


def test_a_broken_office_document_gets_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.docx"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("[Content_Types].xml", "not the package's content types")
    with pytest.raises(ConvertError, match="LibreOffice made no PDF of it"):
        convert_file(broken)
