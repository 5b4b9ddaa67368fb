"""Sample documents the quarantine tests and benchmarks build at run time: PDFs written object
by object (so a test controls exactly what is in them), a PNG from zlib alone, and office
documents as the zip packages Word and LibreOffice write."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Sequence
from xml.sax.saxutils import escape


def pdf(
    contents: Sequence[bytes],
    *,
    size: tuple[int, int] = (200, 200),
    catalog: bytes = b"",
    page: bytes = b"",
    extra: Sequence[bytes] = (),
    font: bool = False,
) -> bytes:
    """A valid PDF (xref offsets computed) with one page per content stream in `contents`
    (b"" gives an empty page). `catalog` and `page` are added inside the catalog's and each
    page's dictionary; `extra` objects are numbered from 3 on, so they can be referred to
    from there; `font` gives every page Helvetica as /F1."""
    objs: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R %s>>" % catalog, b""]
    objs += extra
    resources = b""
    if font:
        objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
        resources = b" /Resources << /Font << /F1 %d 0 R >> >>" % len(objs)
    kids = []
    for content in contents:
        stream = b""
        if content:
            objs.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
            stream = b" /Contents %d 0 R" % len(objs)
        objs.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d]%s%s %s>>"
            % (size[0], size[1], stream, resources, page)
        )
        kids.append(len(objs))
    refs = b" ".join(b"%d 0 R" % k for k in kids)
    objs[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (refs, len(kids))
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


def blank_pdf() -> bytes:
    """One empty 200x200 page."""
    return pdf([b""])


def pdf_with_javascript() -> bytes:
    """Two pages with coloured boxes, a JavaScript OpenAction and a page action."""
    return pdf(
        [
            b"0 0 1 rg 20 20 100 60 re f 1 0 0 rg 60 100 80 40 re f",
            b"0 1 0 rg 10 10 150 150 re f",
        ],
        catalog=b"/OpenAction 3 0 R ",
        page=b"/AA << /O 3 0 R >> ",
        extra=[b"<< /S /JavaScript /JS (app.alert('pwned');) >>"],
    )


def text_pdf(pages: int) -> bytes:
    """`pages` A4 pages, each with boxes and a line of text in a standard font."""
    return pdf(
        [
            b"0 0 1 rg 50 600 300 150 re f 1 0 0 rg 200 200 250 100 re f "
            b"BT /F1 24 Tf 72 760 Td (Page %d of a benchmark document) Tj ET" % (n + 1)
            for n in range(pages)
        ],
        size=(595, 842),
        font=True,
    )


def png_8x8() -> bytes:
    """An 8x8 RGB PNG, built with zlib (no image library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
        )

    raw = b"".join(
        b"\x00" + b"".join(bytes([x * 30, y * 30, 120]) for x in range(8)) for y in range(8)
    )
    ihdr = (8).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


# --- office documents ------------------------------------------------------------------------

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_PKG = "http://schemas.openxmlformats.org/package/2006"
_DOC_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_OFFICE_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"


def docx_pages(pages: int, words: str = "A page of a document with text") -> bytes:
    """A Word document (.docx) with a line of text on each of `pages` pages, separated by
    page breaks."""
    paras = []
    for n in range(pages):
        if n:
            paras.append('<w:p><w:r><w:br w:type="page"/></w:r></w:p>')
        paras.append(f"<w:p><w:r><w:t>{escape(words)}, number {n + 1}.</w:t></w:r></w:p>")
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<w:document xmlns:w="{_W}"><w:body>{"".join(paras)}</w:body></w:document>'
    )
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<Types xmlns="{_PKG}/content-types">'
        f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/word/document.xml" ContentType="{_DOC_MAIN}"/></Types>'
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<Relationships xmlns="{_PKG}/relationships">'
        f'<Relationship Id="rId1" Type="{_OFFICE_DOC}" Target="word/document.xml"/>'
        "</Relationships>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", content_types)
        z.writestr("_rels/.rels", rels)
        z.writestr("word/document.xml", document)
    return out.getvalue()


MACRO_PAGES = 3  # pages the macro of `odt_with_onload_macro` adds, when it runs


def odt_with_onload_macro(witness: str) -> bytes:
    """A one-page OpenDocument text whose Basic macro is bound to the document's load
    event: when it runs it adds MACRO_PAGES pages (seen in any rendering of it) and then
    writes the file `witness`."""
    office = "urn:oasis:names:tc:opendocument:xmlns"
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<office:document-content xmlns:office="{office}:office:1.0"'
        f' xmlns:text="{office}:text:1.0" xmlns:script="{office}:script:1.0"'
        ' xmlns:xlink="http://www.w3.org/1999/xlink"'
        # the event name below is a QName: without its prefix bound, the binding is dropped
        ' xmlns:dom="http://www.w3.org/2001/xml-events"'
        ' xmlns:ooo="http://openoffice.org/2004/office" office:version="1.2">'
        "<office:scripts><office:event-listeners><script:event-listener"
        ' script:language="ooo:script" script:event-name="dom:load" xlink:type="simple"'
        ' xlink:href="vnd.sun.star.script:Standard.Module1.OnLoad?language=Basic&amp;'
        'location=document"/></office:event-listeners></office:scripts>'
        "<office:body><office:text><text:p>One page, unless a macro ran.</text:p>"
        "</office:text></office:body></office:document-content>"
    )
    basic = f"""Sub OnLoad
  Dim oText As Object, oCursor As Object, i As Integer, n As Integer
  oText = ThisComponent.getText()
  oCursor = oText.createTextCursor()
  oCursor.gotoEnd(False)
  For i = 1 To {MACRO_PAGES}
    oText.insertControlCharacter(oCursor, com.sun.star.text.ControlCharacter.PARAGRAPH_BREAK, False)
    oCursor.BreakType = com.sun.star.style.BreakType.PAGE_BEFORE
    oText.insertString(oCursor, "a page the macro added", False)
  Next i
  n = FreeFile
  Open "{witness}" For Output As #n
  Print #n, "the macro ran"
  Close #n
End Sub
"""
    dtd = '<!DOCTYPE {0} PUBLIC "-//OpenOffice.org//DTD OfficeDocument 1.0//EN" "{1}">'
    library_ns = 'xmlns:library="http://openoffice.org/2000/library"'
    module = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        + dtd.format("script:module", "module.dtd")
        + '<script:module xmlns:script="http://openoffice.org/2000/script"'
        f' script:name="Module1" script:language="StarBasic">{escape(basic)}</script:module>'
    )
    libraries = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        + dtd.format("library:libraries", "libraries.dtd")
        + f'<library:libraries {library_ns} xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<library:library library:name="Standard" library:link="false"/></library:libraries>'
    )
    library = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        + dtd.format("library:library", "library.dtd")
        + f'<library:library {library_ns} library:name="Standard" library:readonly="false"'
        ' library:passwordprotected="false"><library:element library:name="Module1"/>'
        "</library:library>"
    )
    parts = {
        "content.xml": content,
        "Basic/script-lc.xml": libraries,
        "Basic/Standard/script-lb.xml": library,
        "Basic/Standard/Module1.xml": module,
    }
    entries = "".join(
        f'<manifest:file-entry manifest:full-path="{name}" manifest:media-type="text/xml"/>'
        for name in parts
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest'
        f' xmlns:manifest="{office}:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/"'
        ' manifest:media-type="application/vnd.oasis.opendocument.text"/>'
        f"{entries}</manifest:manifest>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        # the mimetype first and stored, as ODF requires (and as type detection reads it)
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text", zipfile.ZIP_STORED)
        z.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
        for name, text in parts.items():
            z.writestr(name, text, zipfile.ZIP_DEFLATED)
    return out.getvalue()
