"""PDF scanner: active content (JavaScript, automatic actions, Launch, attachments, RichMedia,
XFA), seen both through pypdf's object model and through a raw pass over the bytes.

pypdf resolves every object, including those packed in compressed object streams, and
decodes `#xx` escapes in names, so a key written `/J#61vaScript` inside an object stream is
seen as `/JavaScript`. The raw pass reads the file and every decoded stream for names, and
is what notices the escapes themselves: an active name spelled with `#xx` escapes is an
evasion no honest producer writes, so it is *malicious*; plain JavaScript, attachments,
RichMedia and XFA are *suspicious*; `/Launch` (start a program) is *malicious*; an
OpenAction or AA on its own (e.g. "open at page 2") is a *clean* note. A file pypdf cannot
parse, or cannot decrypt with the empty password, is *cannot-inspect*.
"""

from __future__ import annotations

import io
import itertools
import logging
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from zionwm.quarantine.audit.common import Source, iter_chunks, read_head, source_path
from zionwm.quarantine.report import Finding, Verdict

if TYPE_CHECKING:
    from pypdf import PdfReader

    from zionwm.quarantine.worker import AuditSettings

# pypdf is imported where it is used: its import costs ~100 ms, paid only for PDFs.

log = logging.getLogger(__name__)

SCANNER = "pdf"
STREAM_BUDGET = 256 << 20  # decoded stream bytes examined per file
MAX_OBJECTS = 1_000_000

# name -> (rule, verdict, what it does)
ACTIVE_NAMES: dict[str, tuple[str, Verdict, str]] = {
    "JavaScript": ("pdf-javascript", Verdict.SUSPICIOUS, "runs JavaScript"),
    "JS": ("pdf-javascript", Verdict.SUSPICIOUS, "runs JavaScript"),
    "Launch": ("pdf-launch", Verdict.MALICIOUS, "asks the viewer to start a program"),
    "EmbeddedFile": ("pdf-embedded-file", Verdict.SUSPICIOUS, "carries an attached file"),
    "EmbeddedFiles": ("pdf-embedded-file", Verdict.SUSPICIOUS, "carries an attached file"),
    "RichMedia": ("pdf-richmedia", Verdict.SUSPICIOUS, "embeds Flash/RichMedia"),
    "XFA": ("pdf-xfa", Verdict.SUSPICIOUS, "has an XFA form (scriptable)"),
    "OpenAction": ("pdf-open-action", Verdict.CLEAN, "does something when opened"),
    "AA": ("pdf-additional-actions", Verdict.CLEAN, "has automatic actions"),
}

_NAME = re.compile(rb"/([A-Za-z0-9#]{2,40})")
_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")


class InspectionLimit(Exception):
    """The file is larger than this scanner looks at."""


def decode_name(raw: bytes) -> str:
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw).decode("latin-1")


def raw_names(data: bytes) -> Iterator[tuple[str, bool]]:
    """(decoded name, was it #-escaped) for every active name written in these bytes."""
    for m in _NAME.finditer(data):
        raw = m.group(1)
        name = decode_name(raw) if b"#" in raw else raw.decode("latin-1")
        if name in ACTIVE_NAMES:
            yield name, b"#" in raw


def raw_findings(blobs: Iterable[bytes], where: str) -> list[Finding]:
    seen: set[tuple[str, bool]] = set()
    for blob in blobs:
        seen.update(raw_names(blob))
    findings = []
    for name, escaped in sorted(seen):
        if escaped:
            findings.append(
                Finding(
                    SCANNER,
                    "pdf-escaped-name",
                    f"/{name} is spelled with #-escapes in {where} to hide it from scanners",
                    Verdict.MALICIOUS,
                )
            )
    return findings


def _overlapping(chunks: Iterable[bytes], overlap: int = 64) -> Iterator[bytes]:
    tail = b""
    for chunk in chunks:
        yield tail + chunk
        tail = chunk[-overlap:]


def walk_names(obj: Any, found: set[str]) -> None:
    """Collect active names used as keys or values in a direct object tree."""
    from pypdf import generic  # noqa: PLC0415

    def walk(obj: Any, depth: int) -> None:
        if depth > 64:
            return
        if isinstance(obj, generic.DictionaryObject):
            for key, value in obj.items():
                if str(key).lstrip("/") in ACTIVE_NAMES:
                    found.add(str(key).lstrip("/"))
                if not isinstance(value, generic.IndirectObject):
                    walk(value, depth + 1)
        elif isinstance(obj, generic.ArrayObject):
            for item in obj:
                if not isinstance(item, generic.IndirectObject):
                    walk(item, depth + 1)
        elif isinstance(obj, generic.NameObject) and str(obj).lstrip("/") in ACTIVE_NAMES:
            found.add(str(obj).lstrip("/"))

    walk(obj, 0)


def all_objects(reader: PdfReader) -> Iterator[Any]:
    """Every object the cross-reference data knows about, including object-stream members."""
    from pypdf.generic import IndirectObject  # noqa: PLC0415

    count = 0
    for gen, table in reader.xref.items():
        for idnum in table:
            yield reader.get_object(IndirectObject(idnum, gen, reader))
            count += 1
            if count > MAX_OBJECTS:
                raise ValueError("too many objects")
    for idnum in reader.xref_objStm:
        yield reader.get_object(IndirectObject(idnum, 0, reader))


def decoded_streams(reader: PdfReader, found: set[str]) -> Iterator[bytes]:
    """Walk every object, adding active names to `found`; yield each decoded stream in turn
    (one at a time: a PDF's streams together can be far larger than the worker's memory)."""
    from pypdf.generic import IndirectObject, StreamObject  # noqa: PLC0415

    budget = STREAM_BUDGET
    walk_names(reader.trailer, found)
    objects: Iterable[Any] = all_objects(reader)
    # object streams themselves are not in the xref tables: decode them for the raw pass too
    containers = (
        reader.get_object(IndirectObject(stm, 0, reader))
        for stm in sorted({v[0] for v in reader.xref_objStm.values()})
    )
    for obj in itertools.chain(objects, containers):
        if obj is None:
            continue
        walk_names(obj, found)
        if isinstance(obj, StreamObject):
            data = obj.get_data()
            budget -= len(data)
            if budget < 0:
                raise InspectionLimit(f"decoded streams exceed {STREAM_BUDGET} bytes")
            yield data


def _findings_for(found: set[str], name: str) -> list[Finding]:
    findings: dict[str, Finding] = {}
    for key in sorted(found):
        rule, verdict, what = ACTIVE_NAMES[key]
        findings.setdefault(rule, Finding(SCANNER, rule, f"{name!r} {what} (/{key})", verdict))
    if "pdf-javascript" in findings and ({"OpenAction", "AA"} & found):
        findings["pdf-auto-javascript"] = Finding(
            SCANNER,
            "pdf-auto-javascript",
            f"{name!r} has automatic actions and JavaScript: script can run on open",
            Verdict.SUSPICIOUS,
        )
    return list(findings.values())


def is_pdf(head: bytes) -> bool:
    return b"%PDF-" in head[:1024]


def scan(src: Source, name: str, settings: AuditSettings | None = None) -> list[Finding]:
    if not is_pdf(read_head(src)):
        return []
    findings = raw_findings(_overlapping(iter_chunks(src, 1 << 20)), "the file")
    from pypdf import PdfReader  # noqa: PLC0415

    try:
        if isinstance(src, bytes):
            reader = PdfReader(io.BytesIO(src), strict=False)
            return findings + _model(reader, name)
        with open(source_path(src), "rb") as f:
            reader = PdfReader(f, strict=False)
            return findings + _model(reader, name)
    except InspectionLimit as exc:
        return [
            *findings,
            Finding(SCANNER, "pdf-too-large", f"{name!r}: {exc}", Verdict.CANNOT_INSPECT),
        ]
    except Exception as exc:
        log.info("pdf parse of %r failed: %s", name, exc)
        return [
            *findings,
            Finding(
                SCANNER,
                "pdf-malformed",
                f"{name!r} could not be parsed as PDF ({type(exc).__name__}: {exc})",
                Verdict.CANNOT_INSPECT,
            ),
        ]


def _model(reader: PdfReader, name: str) -> list[Finding]:
    if reader.is_encrypted and not reader.decrypt(""):
        return [
            Finding(
                SCANNER,
                "pdf-encrypted",
                f"{name!r} is encrypted with a password: its content cannot be inspected",
                Verdict.CANNOT_INSPECT,
            )
        ]
    found: set[str] = set()
    raw = raw_findings(decoded_streams(reader, found), "a compressed stream")
    return _findings_for(found, name) + raw
