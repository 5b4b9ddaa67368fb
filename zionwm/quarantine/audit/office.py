"""Office scanner (oletools): VBA and XLM macros, remote templates, DDE fields, encryption.

Only runs on content that is an Office container (OLE2, OOXML zip, RTF, Office XML, SYLK);
other files get no findings. Verdicts, and why:
- VBA or XLM macros present: *suspicious* (macros run code; most downloads have none);
- a macro that runs by itself (AutoOpen, Document_Open, Workbook_Open, Auto_Open...) and
  also calls what droppers call (Shell, CreateObject, downloads: olevba's "Suspicious"
  keywords): *malicious*, the shape of a macro dropper;
- a remote attached template (`attachedTemplate` relationship to http(s) or a UNC path):
  *malicious*, this is template injection: the document fetches code when opened;
  other external relationships (linked OLE objects, frames): *suspicious*;
- DDE fields: *suspicious* (they run commands on the user's say-so);
- encrypted: *cannot-inspect*, nothing inside can be seen without the password.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from typing import TYPE_CHECKING

from zionwm.quarantine.audit.common import Source, read_head, source_path
from zionwm.quarantine.report import Finding, Verdict

if TYPE_CHECKING:
    from oletools.olevba import VBA_Parser

    from zionwm.quarantine.worker import AuditSettings

# oletools is imported where it is used: its import costs ~150 ms, paid only for Office files.

log = logging.getLogger(__name__)

SCANNER = "office"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

MAX_RTF = 64 << 20  # RTF is parsed in memory

_REL = re.compile(rb"<Relationship\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(rb'(\w+)\s*=\s*"([^"]*)"')
_REMOTE = re.compile(rb"^(https?:|ftp:|\\\\|//|file://)", re.IGNORECASE)


def office_kind(head: bytes) -> str | None:
    """The Office container the head belongs to, or None if it is not Office content."""
    if head.startswith(OLE_MAGIC):
        return "ole"
    if head.startswith(b"{\\rt"):
        return "rtf"
    if head.startswith(b"PK\x03\x04") and (
        b"[Content_Types].xml" in head or b"word/" in head or b"xl/" in head or b"ppt/" in head
    ):
        return "ooxml"
    if head.startswith(b"ID;P"):
        return "slk"
    lowered = head[:4096].lower()
    # Word 2003 XML, Excel 2003 XML and flat-OPC documents; not every XML part that merely
    # names an Office namespace (the .rels inside a docx do)
    if lowered.lstrip().startswith(b"<?xml") and (
        b"<?mso-application" in lowered
        or b"<w:worddocument" in lowered
        or b"<pkg:package" in lowered
    ):
        return "xml"
    return None


def external_relationships(zf: zipfile.ZipFile) -> list[Finding]:
    """External targets in the OOXML package's .rels parts (pure on the archive)."""
    findings: list[Finding] = []
    for info in zf.infolist():
        if not info.filename.endswith(".rels") or info.file_size > 4 << 20:
            continue
        for rel in _REL.findall(zf.read(info)):
            attrs = {k.lower(): v for k, v in _ATTR.findall(rel)}
            if attrs.get(b"targetmode", b"").lower() != b"external":
                continue
            rtype = attrs.get(b"type", b"").rsplit(b"/", 1)[-1].decode("ascii", "replace")
            target = attrs.get(b"target", b"")
            shown = target[:200].decode("utf-8", "replace")
            if rtype in ("hyperlink",):
                continue
            if rtype == "attachedTemplate" and _REMOTE.match(target):
                findings.append(
                    Finding(
                        SCANNER,
                        "remote-template",
                        f"{info.filename} loads a template from {shown} when opened "
                        "(template injection)",
                        Verdict.MALICIOUS,
                    )
                )
            else:
                findings.append(
                    Finding(
                        SCANNER,
                        f"external-{rtype}",
                        f"{info.filename} links external {rtype} {shown}",
                        Verdict.SUSPICIOUS,
                    )
                )
    return findings


def macro_findings(vba: VBA_Parser, name: str) -> list[Finding]:
    findings: list[Finding] = []
    has_vba = bool(vba.detect_vba_macros())
    if has_vba:
        results = vba.analyze_macros() or []
        autoexec = sorted({str(kw) for kind, kw, _ in results if kind == "AutoExec"})
        dangerous = sorted({str(kw) for kind, kw, _ in results if kind == "Suspicious"})
        if autoexec and dangerous:
            findings.append(
                Finding(
                    SCANNER,
                    "vba-autoexec-dropper",
                    f"{name!r} has a VBA macro that runs on open ({', '.join(autoexec)}) and "
                    f"calls {', '.join(dangerous[:8])}",
                    Verdict.MALICIOUS,
                )
            )
        elif autoexec:
            findings.append(
                Finding(
                    SCANNER,
                    "vba-autoexec",
                    f"{name!r} has a VBA macro that runs on open ({', '.join(autoexec)})",
                    Verdict.SUSPICIOUS,
                )
            )
        else:
            findings.append(
                Finding(SCANNER, "vba-macros", f"{name!r} contains VBA macros", Verdict.SUSPICIOUS)
            )
    try:
        has_xlm = bool(vba.detect_xlm_macros())
    except Exception:  # oletools' XLM parser is fragile on odd files; VBA result stands
        log.debug("XLM detection failed on %r", name, exc_info=True)
        has_xlm = False
    if has_xlm:
        findings.append(
            Finding(
                SCANNER, "xlm-macros", f"{name!r} contains Excel 4 (XLM) macros", Verdict.SUSPICIOUS
            )
        )
    return findings


def dde_findings(path: str, name: str) -> list[Finding]:
    from oletools import msodde  # noqa: PLC0415

    text = msodde.process_file(path, msodde.FIELD_FILTER_DDE) or ""
    if not text.strip():
        return []
    return [
        Finding(
            SCANNER,
            "dde-field",
            f"{name!r} has DDE fields that can run commands: {text.strip()[:200]}",
            Verdict.SUSPICIOUS,
        )
    ]


def scan(src: Source, name: str, settings: AuditSettings | None = None) -> list[Finding]:
    kind = office_kind(read_head(src))
    if kind is None:
        return []
    if isinstance(src, bytes):
        return _scan_bytes(src, name, kind)
    from oletools import crypto  # noqa: PLC0415
    from oletools.olevba import VBA_Parser  # noqa: PLC0415

    path = source_path(src)
    if kind in ("ole", "ooxml") and crypto.is_encrypted(path):
        return [
            Finding(
                SCANNER,
                "encrypted-document",
                f"{name!r} is an encrypted Office document: its content cannot be inspected",
                Verdict.CANNOT_INSPECT,
            )
        ]
    findings: list[Finding] = []
    if kind == "rtf":
        # RTF holds no VBA (olevba refuses it); its risk is embedded OLE objects and fields
        with open(path, "rb") as f:
            findings += rtf_object_findings(f.read(MAX_RTF), name)
        return findings + dde_findings(path, name)
    vba = VBA_Parser(path)
    try:
        findings += macro_findings(vba, name)
    finally:
        vba.close()
    if kind == "ooxml":
        with zipfile.ZipFile(path) as zf:
            findings += external_relationships(zf)
    if kind in ("ole", "ooxml", "rtf", "xml"):
        findings += dde_findings(path, name)
    return findings


def rtf_object_findings(data: bytes, name: str) -> list[Finding]:
    """Embedded OLE objects in RTF: how exploit documents carry their payload (Equation
    Editor objects, OLE Package files). Any of them is suspicious; none is normal in a
    downloaded letter."""
    from oletools import rtfobj  # noqa: PLC0415

    parser = rtfobj.RtfObjParser(data)
    parser.parse()
    findings = []
    for obj in parser.objects:
        if obj.is_ole:
            what = obj.class_name.decode("latin-1", "replace") if obj.class_name else "?"
            if obj.is_package:
                what += f" (file {obj.filename!r})"
        else:
            what = "raw data"
        findings.append(
            Finding(
                SCANNER,
                "rtf-embedded-object",
                f"{name!r} embeds an object: {what}",
                Verdict.SUSPICIOUS,
            )
        )
    return findings


def _scan_bytes(data: bytes, name: str, kind: str) -> list[Finding]:
    """Office content inside an archive: macros and external links, from memory."""
    if kind == "rtf":
        return rtf_object_findings(data, name)
    from oletools.olevba import VBA_Parser  # noqa: PLC0415

    findings: list[Finding] = []
    vba = VBA_Parser(name, data=data)
    try:
        findings += macro_findings(vba, name)
    finally:
        vba.close()
    if kind == "ooxml":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            findings += external_relationships(zf)
    return findings
