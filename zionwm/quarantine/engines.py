"""Which antivirus and rules are in force: availability, versions, signature identity and age.

The service asks this (outside the sandbox, it only talks to clamd's socket and stats rule
files) at every audit, to record in the report what looked at a file, and again when a
hold ends, to decide whether the file must be scanned again because the signatures or the
rules changed since. Pure parts (`parse_clamd_version`, `changes`) are separate from the
thin shells that talk to clamd and read the rule directories.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CLAMD_SOCKET = "/run/clamav/clamd.ctl"  # Debian's and Ubuntu's clamav-daemon
DEFAULT_CLAMD_DATABASE = "/var/lib/clamav"
# "required": files no antivirus looked at wait for one; "if-available": they are released
# after the hold, marked "no antivirus scan"; "off": no antivirus is used or looked for (even
# one running at the usual place), and every file is marked "no antivirus scan"
ANTIVIRUS_MODES = ("required", "if-available", "off")
ANTIVIRUS_OFF_WHY = 'the antivirus is turned off in the settings (antivirus="off")'
BUNDLED_RULES_DIR = Path(__file__).resolve().parent / "rules"
RULE_SUFFIXES = (".yar", ".yara")
CLAMD_DB_SUFFIXES = (
    ".cvd", ".cld", ".cud", ".ndb", ".hdb", ".hsb", ".mdb", ".msb", ".ldb", ".cdb", ".ign2",
    ".fp", ".sfp", ".yara", ".yar", ".pdb", ".wdb", ".ftm", ".cat", ".crb", ".idb", ".ign",
)  # fmt: skip


@dataclass(frozen=True)
class ClamdVersion:
    engine: str  # "ClamAV 1.0.7"
    db_version: int | None  # the daily database's number, when clamd says it
    db_date: float | None  # when that database was built (epoch), when clamd says it


def parse_clamd_version(reply: str) -> ClamdVersion:
    """'ClamAV 1.0.7/27345/Wed Dec  3 09:27:02 2026' (or just 'ClamAV 1.4.6' for a
    database without a version, such as one built locally with sigtool)."""
    parts = reply.strip().split("/", 2)
    db_version = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    db_date = None
    if len(parts) > 2:
        # here, not at the top: the compositor imports this module (the policy's modes) and
        # would otherwise carry the email package for a date it never parses
        import email.utils  # noqa: PLC0415

        with contextlib.suppress(TypeError, ValueError, IndexError):
            db_date = email.utils.mktime_tz(
                email.utils.parsedate_tz(parts[2].strip() + " +0000")  # type: ignore[arg-type]
            )
    return ClamdVersion(parts[0].strip(), db_version, db_date)


def clamd_version(sock_path: str, timeout: float = 2.0) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(b"zVERSION\0")
        buf = b""
        while b"\0" not in buf and len(buf) < 4096:
            data = s.recv(4096)
            if not data:
                break
            buf += data
    return buf.split(b"\0", 1)[0].decode("utf-8", "replace")


def _dir_fingerprint(directory: Path, suffixes: tuple[str, ...]) -> tuple[str, float | None]:
    """A digest of the names, sizes and modification times of a directory's signature files,
    and the newest modification time (None when there are none)."""
    import hashlib  # noqa: PLC0415 - OpenSSL (3 MiB) loaded when first hashing

    digest = hashlib.sha256()
    newest: float | None = None
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return "", None
    for p in entries:
        if p.suffix not in suffixes:
            continue
        try:
            st = p.stat()
        except OSError:
            continue
        digest.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        newest = st.st_mtime if newest is None else max(newest, st.st_mtime)
    return (digest.hexdigest()[:16] if newest is not None else ""), newest


def _content_fingerprint(directories: list[Path]) -> tuple[str, float | None]:
    import hashlib  # noqa: PLC0415 - OpenSSL (3 MiB) loaded when first hashing

    digest = hashlib.sha256()
    newest: float | None = None
    for d in directories:
        try:
            files = sorted(p for p in d.iterdir() if p.suffix in RULE_SUFFIXES and p.is_file())
        except OSError:
            continue
        for p in files:
            try:
                digest.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
                mtime = p.stat().st_mtime
            except OSError:
                continue
            newest = mtime if newest is None else max(newest, mtime)
    return digest.hexdigest()[:16], newest


def antivirus_state(
    clamd_socket: str | None, database_dir: str | None, off: bool = False
) -> dict[str, Any]:
    """Is an antivirus in force, which one, and which signatures does it use."""
    if off:
        return {"available": False, "off": True, "why": ANTIVIRUS_OFF_WHY}
    if clamd_socket is None:
        why = f"no clamd is configured, and none is running at {DEFAULT_CLAMD_SOCKET}"
        return {"available": False, "why": why}
    try:
        version = parse_clamd_version(clamd_version(clamd_socket))
    except OSError as exc:
        return {"available": False, "socket": clamd_socket, "why": f"clamd does not answer: {exc}"}
    state: dict[str, Any] = {
        "available": True,
        "socket": clamd_socket,
        "engine": version.engine,
        "signatures": None,
        "signatures_date": version.db_date,
    }
    if version.db_version is not None:
        state["signatures"] = f"daily {version.db_version}"
    db = database_dir or (DEFAULT_CLAMD_DATABASE if clamd_socket == DEFAULT_CLAMD_SOCKET else None)
    if db is not None:
        fp, newest = _dir_fingerprint(Path(db), CLAMD_DB_SUFFIXES)
        if fp:
            # the files are the truth: a local database has no version number at all
            prefix = f"{state['signatures']} " if state["signatures"] else ""
            state["signatures"] = f"{prefix}files {fp}"
            if state["signatures_date"] is None:
                state["signatures_date"] = newest
    return state


def yara_state(user_dirs: tuple[str, ...]) -> dict[str, Any]:
    fp, newest = _content_fingerprint([BUNDLED_RULES_DIR, *(Path(d) for d in user_dirs)])
    return {"signatures": fp, "signatures_date": newest}


def engine_state(
    clamd_socket: str | None,
    database_dir: str | None,
    user_dirs: tuple[str, ...],
    antivirus_off: bool = False,
) -> dict[str, Any]:
    return {
        "clamd": antivirus_state(clamd_socket, database_dir, antivirus_off),
        "yara": yara_state(user_dirs),
        "checked_at": time.time(),
    }


def changes(before: dict[str, Any] | None, now: dict[str, Any]) -> list[str]:
    """Why a file audited under `before` must be scanned again under `now` (pure); empty
    when nothing that could change a verdict changed."""
    if not before:
        return ["its first audit recorded no signature versions"]
    if before.get("checked_at") is not None and before.get("checked_at") == now.get("checked_at"):
        return []  # the very state the audit saw: nothing can have changed
    why = []
    b_av, n_av = before.get("clamd") or {}, now.get("clamd") or {}
    if n_av.get("available"):
        if not b_av.get("available"):
            why.append("an antivirus is available now and none looked at it before")
        elif n_av.get("signatures") is None:
            why.append("the antivirus signatures have no version to compare: scanned to be safe")
        elif n_av.get("signatures") != b_av.get("signatures"):
            why.append("the antivirus signatures were updated")
        elif n_av.get("engine") != b_av.get("engine"):
            why.append("the antivirus engine was updated")
    b_y, n_y = before.get("yara") or {}, now.get("yara") or {}
    if n_y.get("signatures") != b_y.get("signatures"):
        why.append("the YARA rules changed")
    return why


def resolve_clamd_socket(configured: str | None, mode: str = "required") -> str | None:
    """The configured socket, else the usual place when a clamd is running there; none at
    all when the antivirus is turned off (`mode` "off"; "" as the socket means the same)."""
    if mode == "off":
        return None
    if configured is not None:
        return configured or None
    if os.path.exists(DEFAULT_CLAMD_SOCKET):
        return DEFAULT_CLAMD_SOCKET
    return None


def age_words(ts: float | None, now: float | None = None) -> str:
    """'3 hours old' (pure)."""
    if ts is None:
        return "of unknown age"
    secs = max(0.0, (now if now is not None else time.time()) - ts)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if secs >= size:
            n = int(secs // size)
            return f"{n} {unit}{'s' if n != 1 else ''} old"
    return "less than a minute old"
