"""Archive scanner: zip, tar (plain, gz, bz2, xz) and single-file gz/bz2/xz, walked without
ever unpacking to disk and without decompressing more than a byte budget.

What it checks, and the verdicts:
- entry names with `..` components: *malicious* (zip-slip; no honest archive needs to write
  outside the directory it is unpacked in); absolute names: *suspicious*;
- symlinks and hard links whose target leaves the archive (absolute or `..`-escaping):
  *malicious*; links that stay inside: a *clean* note (source trees have them);
- device nodes and FIFOs: *suspicious*; setuid/setgid bits: *suspicious*;
- zip bombs: the declared sizes are summed before anything is read; a total above
  `archive_max_total` or more entries than `archive_max_entries` is *cannot-inspect* (we
  stopped looking); a compression ratio above `archive_max_ratio` is *suspicious*; nesting
  deeper than `archive_max_depth` is *suspicious* (that is how recursive bombs work).
  Actual reads are capped by the declared sizes (zipfile stops there) and by the budget,
  so a 600 MB bomb costs a few kilobytes of reading;
- encrypted members, 7z and rar (no reader here): *cannot-inspect*;
- every member's head goes through the type scanner; members up to `MEMBER_MAX` bytes are
  read whole (within the budget) and also go through YARA, PDF, Office and, if they are
  archives, this scanner again. Findings inside carry the member's path
  (`outer.zip!dir/inner.tar!evil.pdf`) and keep their verdict: the archive is as bad as
  the worst thing in it.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import lzma
import posixpath
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, cast

from zionwm.quarantine.audit import magic_type, office, pdf, yara_scan
from zionwm.quarantine.audit.common import HEAD_SIZE, Source, read_head, source_path, source_size
from zionwm.quarantine.report import Finding, Verdict

if TYPE_CHECKING:
    from zionwm.quarantine.worker import AuditSettings

SCANNER = "archive"
MEMBER_MAX = 32 << 20  # members read whole for deep inspection
MIN_RATIO_SIZE = 1 << 20  # tiny members compress absurdly well and mean nothing
SAME_RULE_KEPT = 5  # findings kept per rule; the rest are counted


@dataclass(frozen=True)
class ArchiveLimits:
    max_total: int = 1 << 30
    max_ratio: float = 100.0
    max_depth: int = 3
    max_entries: int = 10000

    @classmethod
    def from_settings(cls, settings: AuditSettings | None) -> ArchiveLimits:
        if settings is None:
            return cls()
        return cls(
            settings.archive_max_total,
            settings.archive_max_ratio,
            settings.archive_max_depth,
            settings.archive_max_entries,
        )


@dataclass
class Walk:
    """State shared by one archive and everything nested in it."""

    limits: ArchiveLimits
    yara_dirs: tuple[str, ...] = ()
    budget: int = 0  # bytes we may still decompress
    entries: int = 0
    findings: list[Finding] = field(default_factory=list)

    def add(self, where: str, rule: str, detail: str, verdict: Verdict) -> None:
        self.findings.append(Finding(SCANNER, rule, f"{where}: {detail}", verdict))


class StopWalk(Exception):
    """A limit was reached: stop looking (the finding is already recorded)."""


def archive_kind(head: bytes) -> str | None:
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head[257:262] == b"ustar":
        return "tar"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head.startswith(b"Rar!\x1a\x07"):
        return "rar"
    return None


# --- pure checks on one entry ---------------------------------------------------------------


def name_findings(walk: Walk, where: str, name: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        walk.add(where, "path-traversal", f"entry {name!r} climbs out with '..'", Verdict.MALICIOUS)
    elif name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        walk.add(where, "absolute-path", f"entry {name!r} has an absolute path", Verdict.SUSPICIOUS)


def link_escapes(entry: str, target: str, hard: bool) -> bool:
    """Does a link named `entry` pointing at `target` reach outside the archive root?"""
    if target.startswith("/"):
        return True
    base = "" if hard else posixpath.dirname(entry.lstrip("/"))
    resolved = posixpath.normpath(posixpath.join(base, target))
    return resolved == ".." or resolved.startswith("../")


def link_findings(walk: Walk, where: str, name: str, target: str, hard: bool) -> None:
    kind = "hard link" if hard else "symlink"
    rule = "hardlink" if hard else "symlink"
    if link_escapes(name, target, hard):
        walk.add(
            where,
            f"{rule}-escape",
            f"{kind} {name!r} points outside the archive, at {target!r}",
            Verdict.MALICIOUS,
        )
    else:
        walk.add(where, rule, f"{kind} {name!r} -> {target!r} stays inside", Verdict.CLEAN)


def mode_findings(walk: Walk, where: str, name: str, mode: int) -> None:
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        walk.add(where, "device-entry", f"entry {name!r} is a device/FIFO node", Verdict.SUSPICIOUS)
    if mode & (stat.S_ISUID | stat.S_ISGID):
        walk.add(
            where,
            "setid-entry",
            f"entry {name!r} is setuid/setgid ({stat.filemode(mode)})",
            Verdict.SUSPICIOUS,
        )


def count_entry(walk: Walk, where: str) -> None:
    walk.entries += 1
    if walk.entries > walk.limits.max_entries:
        walk.add(
            where,
            "too-many-entries",
            f"more than {walk.limits.max_entries} entries: stopped inspecting",
            Verdict.CANNOT_INSPECT,
        )
        raise StopWalk


def spend(walk: Walk, where: str, size: int) -> None:
    if size > walk.budget:
        walk.add(
            where,
            "too-large",
            f"unpacks to more than {walk.limits.max_total} bytes: stopped inspecting",
            Verdict.CANNOT_INSPECT,
        )
        raise StopWalk
    walk.budget -= size


def ratio_finding(walk: Walk, where: str, unpacked: int, packed: int) -> None:
    if unpacked < MIN_RATIO_SIZE:
        return
    ratio = unpacked / max(packed, 1)
    if ratio > walk.limits.max_ratio:
        walk.add(
            where,
            "compression-ratio",
            f"{unpacked} bytes from {packed} (ratio {ratio:.0f}, limit "
            f"{walk.limits.max_ratio:.0f}): a decompression bomb",
            Verdict.SUSPICIOUS,
        )


# --- members --------------------------------------------------------------------------------


def inspect_member(
    walk: Walk,
    where: str,
    *,
    mode: int | None,
    size: int,
    opener: Callable[[], IO[bytes]],
    depth: int,
) -> None:
    """Type-scan a member's head; read small members whole (within the budget) for the rest."""
    with opener() as f:
        head = f.read(HEAD_SIZE)
        spend(walk, where, len(head))
        rest = b""
        if size <= MEMBER_MAX:
            rest = _read_budgeted(walk, where, f, MEMBER_MAX - len(head))
    data = head + rest if size <= MEMBER_MAX else None
    inspect_data(walk, where, mode=mode, size=size, head=head, data=data, depth=depth)


def inspect_data(
    walk: Walk,
    where: str,
    *,
    mode: int | None,
    size: int,
    head: bytes,
    data: bytes | None,
    depth: int,
) -> None:
    member_name = where.rsplit("!", 1)[-1]
    for finding in magic_type.classify(head, member_name, mode, *magic_type.identify(head)):
        walk.findings.append(_tainted(where, finding))
    deep = archive_kind(head) is not None or pdf.is_pdf(head) or office.office_kind(head)
    if data is None:
        if deep:
            walk.add(
                where,
                "member-too-large",
                f"{size} bytes is more than the {MEMBER_MAX} this scanner reads whole",
                Verdict.CANNOT_INSPECT,
            )
        return
    found = yara_scan.scan_data(data, where, walk.yara_dirs)
    found += pdf.scan(data, where)
    found += office.scan(data, where)
    walk.findings.extend(_tainted(where, f) for f in found)
    if archive_kind(head) is not None:
        walk_source(walk, data, where, depth + 1)


def _read_budgeted(walk: Walk, where: str, f: IO[bytes], limit: int) -> bytes:
    chunks = []
    total = 0
    while total < limit:
        chunk = f.read(min(1 << 20, limit - total))
        if not chunk:
            break
        spend(walk, where, len(chunk))
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _tainted(where: str, finding: Finding) -> Finding:
    if finding.scanner == SCANNER:
        return finding
    detail = finding.detail if where in finding.detail else f"{where}: {finding.detail}"
    return Finding(SCANNER, f"{finding.scanner}:{finding.rule}", detail, finding.verdict)


# --- formats --------------------------------------------------------------------------------


def walk_zip(walk: Walk, zf: zipfile.ZipFile, where: str, packed_size: int, depth: int) -> None:
    infos = zf.infolist()
    declared = 0
    for info in infos:
        count_entry(walk, where)
        declared += info.file_size
    if declared > walk.limits.max_total:
        walk.add(
            where,
            "too-large",
            f"declares {declared} bytes unpacked, more than {walk.limits.max_total}: not unpacked",
            Verdict.CANNOT_INSPECT,
        )
    ratio_finding(walk, where, declared, packed_size)
    names = {i.filename for i in infos}
    if "META-INF/MANIFEST.MF" in names:
        walk.add(where, "java-archive", "a Java archive (runnable code)", Verdict.SUSPICIOUS)
    if "AndroidManifest.xml" in names and "classes.dex" in names:
        walk.add(where, "android-package", "an Android package (APK)", Verdict.SUSPICIOUS)
    for info in infos:
        member = f"{where}!{info.filename}"
        name_findings(walk, where, info.filename)
        mode = info.external_attr >> 16 if info.create_system == 3 else 0
        if mode and not stat.S_IFMT(mode):
            mode |= stat.S_IFREG  # writers often store permission bits without a file type
        if info.compress_size and info.file_size > MIN_RATIO_SIZE:
            ratio_finding(walk, member, info.file_size, info.compress_size)
        if info.flag_bits & 0x1:
            walk.add(
                member, "encrypted-member", "encrypted: cannot look inside", Verdict.CANNOT_INSPECT
            )
            continue
        if mode and stat.S_ISLNK(mode):
            with zf.open(info) as f:
                target = f.read(4096).decode("utf-8", "replace")
            link_findings(walk, where, info.filename, target, hard=False)
            continue
        if mode:
            mode_findings(walk, where, info.filename, mode)
        if info.is_dir() or (mode and not stat.S_ISREG(mode)):
            continue
        if declared > walk.limits.max_total:
            # names and modes are checked for every entry; contents of an over-size archive
            # are not read at all
            continue
        inspect_member(
            walk,
            member,
            mode=mode or None,
            size=info.file_size,
            opener=functools.partial(zf.open, info),
            depth=depth,
        )


def walk_tar(walk: Walk, tf: tarfile.TarFile, where: str, packed_size: int, depth: int) -> None:
    unpacked = 0
    for ti in _iter_tar(tf):
        count_entry(walk, where)
        member = f"{where}!{ti.name}"
        name_findings(walk, where, ti.name)
        if ti.issym() or ti.islnk():
            link_findings(walk, where, ti.name, ti.linkname, hard=ti.islnk())
        mode_findings(walk, where, ti.name, _tar_mode(ti))
        if not ti.isreg():
            continue
        unpacked += ti.size
        if unpacked > walk.limits.max_total:
            walk.add(
                where,
                "too-large",
                f"unpacks to more than {walk.limits.max_total} bytes: stopped inspecting",
                Verdict.CANNOT_INSPECT,
            )
            raise StopWalk
        if unpacked > MIN_RATIO_SIZE and unpacked / max(packed_size, 1) > walk.limits.max_ratio:
            # skipping past the member would decompress all of it: stop here
            ratio_finding(walk, where, unpacked, packed_size)
            raise StopWalk

        def opener(t: tarfile.TarInfo = ti) -> IO[bytes]:
            f = tf.extractfile(t)
            if f is None:
                raise tarfile.ReadError(f"cannot read {t.name}")
            return f

        inspect_member(walk, member, mode=_tar_mode(ti), size=ti.size, opener=opener, depth=depth)


def _iter_tar(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (ti := tf.next()) is not None:
        yield ti


def _tar_mode(ti: tarfile.TarInfo) -> int:
    kind = {
        tarfile.CHRTYPE: stat.S_IFCHR,
        tarfile.BLKTYPE: stat.S_IFBLK,
        tarfile.FIFOTYPE: stat.S_IFIFO,
        tarfile.SYMTYPE: stat.S_IFLNK,
        tarfile.DIRTYPE: stat.S_IFDIR,
    }.get(ti.type, stat.S_IFREG)
    return kind | (ti.mode & 0o7777)


def _is_tar(head: bytes) -> bool:
    return head[257:262] == b"ustar"


_DECOMPRESSORS: dict[str, Callable[[], object]] = {
    "gz": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    "bz2": bz2.BZ2Decompressor,
    "xz": lzma.LZMADecompressor,
}


def _decompressed_head(kind: str, fileobj: IO[bytes]) -> bytes:
    d = _DECOMPRESSORS[kind]()
    out = b""
    while len(out) < 512:
        chunk = fileobj.read(1 << 16)
        if not chunk:
            break
        out += d.decompress(chunk, 4096)  # type: ignore[attr-defined]
    return out


def walk_compressed(walk: Walk, fileobj: IO[bytes], kind: str, where: str, depth: int) -> None:
    """A gz/bz2/xz stream: a tarball, or one compressed file (walked as one member)."""
    fileobj.seek(0, io.SEEK_END)
    packed = fileobj.tell()
    fileobj.seek(0)
    head = _decompressed_head(kind, fileobj)
    fileobj.seek(0)
    if _is_tar(head):
        with tarfile.open(fileobj=fileobj, mode="r|*") as tf:
            walk_tar(walk, tf, where, packed, depth)
        return
    opener = {"gz": _gz, "bz2": _bz2, "xz": _xz}[kind]
    inner = where.rsplit("!", 1)[-1]
    inner = inner[: -len(kind) - 1] if inner.lower().endswith("." + kind) else inner
    member = f"{where}!{inner}"
    # the single member's size is unknown in advance: stream it once through the budget,
    # stop at the first sign of a bomb, keep only what deep inspection needs
    kept: list[bytes] = []
    kept_len = 0
    total = 0
    with opener(fileobj) as f:
        while chunk := f.read(1 << 20):
            total += len(chunk)
            spend(walk, member, len(chunk))
            if kept_len <= MEMBER_MAX:
                kept.append(chunk[: MEMBER_MAX + 1 - kept_len])
                kept_len += len(kept[-1])
            if total > MIN_RATIO_SIZE and total / max(packed, 1) > walk.limits.max_ratio:
                ratio_finding(walk, member, total, packed)
                return
    data = b"".join(kept)
    inspect_data(
        walk,
        member,
        mode=None,
        size=total,
        head=data[:HEAD_SIZE],
        data=data if total <= MEMBER_MAX else None,
        depth=depth,
    )


def _gz(f: IO[bytes]) -> IO[bytes]:
    return cast(IO[bytes], gzip.GzipFile(fileobj=f, mode="rb"))


def _bz2(f: IO[bytes]) -> IO[bytes]:
    return bz2.BZ2File(f, "rb")


def _xz(f: IO[bytes]) -> IO[bytes]:
    return lzma.LZMAFile(f, "rb")


def walk_source(walk: Walk, src: Source, where: str, depth: int) -> None:
    head = read_head(src, 1024)
    kind = archive_kind(head)
    if kind is None:
        return
    if depth > walk.limits.max_depth:
        walk.add(
            where,
            "nesting-too-deep",
            f"archives nested more than {walk.limits.max_depth} deep",
            Verdict.SUSPICIOUS,
        )
        return
    if kind in ("7z", "rar"):
        walk.add(
            where,
            f"unsupported-{kind}",
            f"{kind} archives cannot be opened here: content not inspected",
            Verdict.CANNOT_INSPECT,
        )
        return
    with _open(src) as fileobj:
        try:
            if kind == "zip":
                with zipfile.ZipFile(fileobj) as zf:
                    walk_zip(walk, zf, where, source_size(src), depth)
            elif kind == "tar":
                with tarfile.open(fileobj=fileobj, mode="r|") as tf:
                    walk_tar(walk, tf, where, source_size(src), depth)
            else:
                walk_compressed(walk, fileobj, kind, where, depth)
        except StopWalk:
            raise
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, zlib.error,
                lzma.LZMAError, ValueError) as exc:  # fmt: skip
            walk.add(
                where,
                "corrupt-archive",
                f"cannot be read as {kind} ({type(exc).__name__}: {exc})",
                Verdict.CANNOT_INSPECT,
            )


def _open(src: Source) -> IO[bytes]:
    if isinstance(src, bytes):
        return io.BytesIO(src)
    return open(source_path(src), "rb")


def scan(src: Source, name: str, settings: AuditSettings | None = None) -> list[Finding]:
    if archive_kind(read_head(src, 1024)) is None:
        return []
    limits = ArchiveLimits.from_settings(settings)
    yara_dirs = settings.yara_rule_dirs if settings is not None else ()
    walk = Walk(limits, yara_dirs, budget=limits.max_total)
    try:
        walk_source(walk, src, name, depth=1)
    except StopWalk:
        pass
    return condense(walk.findings)


def condense(findings: list[Finding], keep: int = SAME_RULE_KEPT) -> list[Finding]:
    """At most `keep` findings per (rule, verdict), plus one that counts the rest: a jar of
    3000 classes is one fact, not 3000."""
    counts: dict[tuple[str, Verdict], int] = {}
    out: list[Finding] = []
    for f in findings:
        key = (f.rule, f.verdict)
        counts[key] = counts.get(key, 0) + 1
        if counts[key] <= keep:
            out.append(f)
    for (rule, verdict), n in counts.items():
        if n > keep:
            out.append(
                Finding(SCANNER, rule, f"... and {n - keep} more entries like the above", verdict)
            )
    return out
