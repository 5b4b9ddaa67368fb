"""ClamAV scanner: a small client for clamd's INSTREAM command over its unix socket.

Protocol (clamd(8)): send `zINSTREAM\\0`, then chunks each prefixed by their length as a
4-byte big-endian integer, then a zero length; clamd answers one NUL-terminated line:
`stream: OK`, `stream: <signature> FOUND`, or `... ERROR`. Only `OK` is clean. A signature
is malicious, except ClamAV's own "limits exceeded" heuristics, which mean it stopped
looking (cannot-inspect). Errors, a size limit, a truncated or unreadable answer, a socket
that is not there: cannot-inspect, never clean.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from zionwm.quarantine.audit.common import Source, iter_chunks
from zionwm.quarantine.report import Finding, Verdict

if TYPE_CHECKING:
    from zionwm.quarantine.worker import AuditSettings

SCANNER = "clamd"
CHUNK = 1 << 16
MAX_REPLY = 4096


class ClamdError(Exception):
    """clamd could not be reached or its answer could not be read."""


def instream(sock_path: str, chunks: Iterable[bytes], timeout: float) -> str:
    """Stream the content to clamd and return its reply line (without the NUL)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(sock_path)
        except OSError as exc:
            raise ClamdError(f"cannot connect to clamd at {sock_path}: {exc}") from exc
        try:
            s.sendall(b"zINSTREAM\0")
            for chunk in chunks:
                if time.monotonic() > deadline:
                    raise ClamdError("clamd scan timed out while sending")
                s.sendall(struct.pack(">I", len(chunk)) + chunk)
            s.sendall(struct.pack(">I", 0))
        except (BrokenPipeError, ConnectionResetError):
            # clamd closes early when the stream exceeds StreamMaxLength; its reason is
            # usually still waiting to be read
            pass
        except TimeoutError as exc:
            raise ClamdError("clamd scan timed out while sending") from exc
        return _read_reply(s, deadline)


def _read_reply(s: socket.socket, deadline: float) -> str:
    buf = b""
    while b"\0" not in buf and len(buf) < MAX_REPLY:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = s.recv(MAX_REPLY)
        except TimeoutError as exc:
            raise ClamdError("clamd did not answer in time") from exc
        except OSError as exc:
            if buf:
                break
            raise ClamdError(f"reading clamd's answer failed: {exc}") from exc
        if not data:
            break
        buf += data
    if b"\0" not in buf:
        raise ClamdError(f"truncated answer from clamd: {buf[:200]!r}")
    return buf.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def interpret(reply: str, name: str) -> list[Finding]:
    """Findings for one clamd reply line (pure)."""
    body = reply.split(":", 1)[1].strip() if reply.startswith("stream:") else reply.strip()
    if body == "OK":
        return []
    if body.endswith(" FOUND"):
        signature = body[: -len(" FOUND")].strip()
        if signature.startswith("Heuristics.Limits.Exceeded"):
            return [
                Finding(
                    SCANNER,
                    signature,
                    f"clamd stopped scanning {name!r}: a scan limit was exceeded",
                    Verdict.CANNOT_INSPECT,
                )
            ]
        if signature.startswith(("Heuristics.Encrypted", "Heuristics.Broken")):
            return [
                Finding(
                    SCANNER, signature, f"clamd cannot look inside {name!r}", Verdict.CANNOT_INSPECT
                )
            ]
        verdict = Verdict.SUSPICIOUS if signature.startswith("Heuristics.") else Verdict.MALICIOUS
        return [Finding(SCANNER, signature, f"clamd found {signature} in {name!r}", verdict)]
    lowered = body.lower()
    rule = "size-limit" if "size limit" in lowered else "error"
    return [
        Finding(
            SCANNER,
            f"clamd-{rule}",
            f"clamd could not scan {name!r}: {body}",
            Verdict.CANNOT_INSPECT,
        )
    ]


def scan(src: Source, name: str, settings: AuditSettings | None = None) -> list[Finding]:
    if settings is None or settings.clamd_socket is None:
        return []
    try:
        reply = instream(settings.clamd_socket, iter_chunks(src, CHUNK), settings.timeout)
    except ClamdError as exc:
        return [Finding(SCANNER, "clamd-unavailable", str(exc), Verdict.CANNOT_INSPECT)]
    return interpret(reply, name)
