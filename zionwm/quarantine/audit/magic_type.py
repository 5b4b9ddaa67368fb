"""Type scanner: what the content really is (libmagic and byte signatures) versus its name.

Verdicts, and why:
- an executable (ELF, AppImage, PE, Mach-O, shebang script, .desktop launcher, MSI, Windows
  shortcut, Java class) is *suspicious*: running programs from the internet is the user's
  explicit decision, so it is held for them, but it is not evidence of malice by itself;
- an executable whose name claims a document or media type (an ELF named `.pdf`, a
  `.desktop` launcher named `.txt`) is *malicious*: no honest download disguises a program
  as a document, the only purpose of the disguise is to be run by someone who meant to
  open it;
- exec bits on a download are *suspicious* (browsers never set them: something inside the
  desktop did);
- active content (HTML, SVG) named as a passive type is *suspicious*; other
  mismatches (a JPEG named `.png`) are common and harmless, kept as a *clean* note.

`classify` is the pure core; `scan` only reads the head of the file and its mode.
"""

from __future__ import annotations

import ctypes
import os
import re
import stat
from typing import TYPE_CHECKING, Any

from zionwm.quarantine.audit.common import AuditSettings, Source, extension, read_head, source_mode
from zionwm.quarantine.report import Finding, Verdict

if TYPE_CHECKING:
    import magic

SCANNER = "magic"

# Names that promise something to be opened, viewed or played, never run.
DOCUMENT_EXTENSIONS = frozenset(
    {
        ".pdf", ".doc", ".docx", ".docm", ".xls", ".xlsx", ".xlsm", ".ppt", ".pptx", ".odt",
        ".ods", ".odp", ".rtf", ".txt", ".md", ".csv", ".html", ".htm", ".jpg", ".jpeg",
        ".png", ".gif", ".bmp", ".webp", ".svg", ".tif", ".tiff", ".ico", ".mp3", ".mp4",
        ".mkv", ".avi", ".mov", ".wav", ".ogg", ".flac", ".webm", ".epub", ".json", ".xml",
    }
)  # fmt: skip

WINDOWS_RUNNABLE_EXTENSIONS = frozenset(
    {
        ".exe", ".dll", ".scr", ".com", ".pif", ".bat", ".cmd", ".ps1", ".psm1", ".vbs",
        ".vbe", ".jse", ".wsf", ".wsh", ".hta", ".lnk", ".msi", ".msp", ".cpl", ".reg",
    }
)  # fmt: skip

# Expected MIME prefixes per extension; files whose extension is not listed are not compared.
EXPECTED_MIME: dict[str, tuple[str, ...]] = {
    ".pdf": ("application/pdf",),
    ".png": ("image/png",),
    ".jpg": ("image/jpeg",),
    ".jpeg": ("image/jpeg",),
    ".gif": ("image/gif",),
    ".webp": ("image/webp",),
    ".bmp": ("image/bmp", "image/x-ms-bmp"),
    ".txt": ("text/",),
    ".csv": ("text/", "application/csv"),
    ".md": ("text/",),
    ".zip": ("application/zip",),
    ".gz": ("application/gzip", "application/x-gzip"),
    ".mp3": ("audio/mpeg",),
    ".mp4": ("video/mp4",),
    ".docx": ("application/vnd.openxmlformats", "application/zip", "application/octet-stream"),
    ".xlsx": ("application/vnd.openxmlformats", "application/zip", "application/octet-stream"),
    ".pptx": ("application/vnd.openxmlformats", "application/zip", "application/octet-stream"),
}

# Content a browser or viewer renders with scripts; JavaScript itself is not on the list:
# libmagic calls many Markdown and text files JavaScript, and nothing runs a .txt as code.
ACTIVE_MIMES = ("text/html", "image/svg")

_DESKTOP_ENTRY = re.compile(rb"^\s*\[Desktop Entry\]", re.MULTILINE)
_DESKTOP_EXEC = re.compile(rb"^\s*(Exec|TryExec)\s*=", re.MULTILINE)
_MACHO_MAGICS = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")


def head_kind(head: bytes) -> str | None:
    """The runnable kinds the bytes alone reveal, in the order `executable_kind` tries them
    (the native audit child computes the same in C)."""
    if head.startswith(b"\x7fELF"):
        return "appimage" if head[8:10] == b"AI" else "elf"
    if head.startswith(b"#!"):
        return "script"
    if head.startswith(b"MZ"):
        return "pe"
    if head[:4] in _MACHO_MAGICS:
        return "macho"
    if _DESKTOP_ENTRY.search(head[:4096]) and _DESKTOP_EXEC.search(head):
        return "desktop"
    return None


def kind_from(byte_kind: str | None, description: str) -> str | None:
    """Which kind of runnable thing the content is, from `head_kind` and libmagic's words."""
    if byte_kind in ("elf", "appimage", "script", "pe", "macho"):
        return byte_kind
    if "Mach-O" in description:
        return "macho"
    if byte_kind == "desktop":
        return "desktop"
    if "MSI Installer" in description:
        return "msi"
    if "MS Windows shortcut" in description:
        return "lnk"
    if "compiled Java class" in description:
        return "java-class"
    return None


def executable_kind(head: bytes, description: str) -> str | None:
    """Which kind of runnable thing the content is, or None; from bytes first, libmagic second."""
    return kind_from(head_kind(head), description)


def classify(
    head: bytes, name: str, mode: int | None, mime: str, description: str
) -> list[Finding]:
    """Findings about one subject from its first bytes, display name, mode and libmagic result."""
    return classify_kind(executable_kind(head, description), name, mode, mime, description)


def classify_kind(
    kind: str | None, name: str, mode: int | None, mime: str, description: str
) -> list[Finding]:
    """`classify` once the runnable kind is known (the native audit child sends its
    `head_kind`, not the head)."""
    findings: list[Finding] = []
    ext = extension(name)
    if kind is not None:
        if ext in DOCUMENT_EXTENSIONS or (kind == "desktop" and ext not in ("", ".desktop")):
            findings.append(
                Finding(
                    SCANNER,
                    f"{kind}-named-as-{ext.lstrip('.') or 'none'}",
                    f"{name!r} is a {kind} executable ({description}) named like a {ext} document",
                    Verdict.MALICIOUS,
                )
            )
        else:
            findings.append(
                Finding(
                    SCANNER,
                    f"executable-{kind}",
                    f"{name!r} is an executable ({kind}: {description})",
                    Verdict.SUSPICIOUS,
                )
            )
    if mode is not None and stat.S_ISREG(mode) and mode & 0o111:
        findings.append(
            Finding(
                SCANNER,
                "exec-bit",
                f"{name!r} has execute permission bits ({stat.filemode(mode)})",
                Verdict.SUSPICIOUS,
            )
        )
    if mode is not None and mode & (stat.S_ISUID | stat.S_ISGID):
        findings.append(
            Finding(SCANNER, "setid-bit", f"{name!r} is setuid/setgid", Verdict.SUSPICIOUS)
        )
    if ext in WINDOWS_RUNNABLE_EXTENSIONS and kind is None:
        findings.append(
            Finding(
                SCANNER,
                "windows-runnable-extension",
                f"{name!r} has an extension Windows runs directly ({ext})",
                Verdict.SUSPICIOUS,
            )
        )
    expected = EXPECTED_MIME.get(ext)
    if kind is None and expected is not None and not mime.startswith(expected):
        if mime.startswith(ACTIVE_MIMES):
            findings.append(
                Finding(
                    SCANNER,
                    "active-content-mismatch",
                    f"{name!r} is {mime}, which can run script, but is named {ext}",
                    Verdict.SUSPICIOUS,
                )
            )
        else:
            findings.append(
                Finding(
                    SCANNER,
                    "type-mismatch",
                    f"{name!r} is {mime} but is named {ext}",
                    Verdict.CLEAN,
                )
            )
    return findings


MAGIC_SAMPLE = 2048  # libmagic's text tests cost ~2 ms per KiB; 2 KiB decide every type here


_COOKIES: dict[bool, magic.Magic] = {}
_DATABASE: list[Any] = []  # the database in our own memory, alive as long as the cookies


def _magic(mime: bool) -> magic.Magic:
    m = _COOKIES.get(mime)
    if m is None:
        import magic  # noqa: PLC0415 - loads libmagic: only where files are typed

        m = _COOKIES[mime] = magic.Magic(mime=mime)
    return m


def preload() -> bool:
    """Load libmagic's database into this process's own memory rather than a mapping of
    the file: a forked child then reads it through the page tables it inherited, instead
    of faulting in every page of the 8 MB file again (that made a child's first type
    check cost 4 ms instead of 0.7). False where libmagic cannot (it keeps its mapping)."""
    import magic  # noqa: PLC0415 - loads libmagic: only where files are typed

    lib = magic.libmagic
    try:
        getpath = lib.magic_getpath
        getpath.restype = ctypes.c_char_p
        getpath.argtypes = [ctypes.c_char_p, ctypes.c_int]
        # "/etc/magic:/usr/share/misc/magic": the compiled database is the one with .mgc
        # (/etc/magic is the admin's uncompiled additions, usually empty)
        bases = (getpath(None, 0) or b"").decode().split(":")
        path = next(b + ".mgc" for b in bases if b and os.path.isfile(b + ".mgc"))
        with open(path, "rb") as f:
            data = f.read()
        load = lib.magic_load_buffers
    except (AttributeError, OSError, StopIteration, UnicodeDecodeError):
        return False
    load.restype = ctypes.c_int
    load.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.c_size_t,
    ]
    buf = ctypes.create_string_buffer(data, len(data))
    bufs = (ctypes.c_void_p * 1)(ctypes.addressof(buf))
    sizes = (ctypes.c_size_t * 1)(len(data))
    for mime in (True, False):
        m = _magic(mime)
        if load(m.cookie, bufs, sizes, 1) != 0:
            return False
    _DATABASE[:] = [buf, bufs, sizes]
    return True


def identify(head: bytes) -> tuple[str, str]:
    """(mime, description) from libmagic; for text the MIME type is description enough."""
    sample = head[:MAGIC_SAMPLE]
    mime = _magic(True).from_buffer(sample)
    if mime.startswith("text/"):
        return mime, mime
    return mime, _magic(False).from_buffer(sample)


def scan(src: Source, name: str, settings: AuditSettings | None = None) -> list[Finding]:
    head = read_head(src)
    mime, description = identify(head)
    return classify(head, name, source_mode(src), mime, description)
