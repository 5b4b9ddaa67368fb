"""The clamd client's protocol handling. The real clamd is exercised in
tests/system/test_audit_worker.py; here: the pure reply interpretation, a missing socket,
and a peer that answers with a truncated line (the real clamd cannot be made to do that,
so a local unix socket server plays that one part)."""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

import pytest

from zionwm.quarantine.audit import clamd
from zionwm.quarantine.report import Verdict
from zionwm.quarantine.worker import AuditSettings


@pytest.mark.parametrize(
    ("reply", "rule", "verdict"),
    [
        ("stream: Eicar-Test-Signature FOUND", "Eicar-Test-Signature", Verdict.MALICIOUS),
        ("stream: Win.Trojan.Agent-1 FOUND", "Win.Trojan.Agent-1", Verdict.MALICIOUS),
        (
            "stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND",
            "Heuristics.Limits.Exceeded.MaxFileSize",
            Verdict.CANNOT_INSPECT,
        ),
        (
            "stream: Heuristics.Encrypted.Zip FOUND",
            "Heuristics.Encrypted.Zip",
            Verdict.CANNOT_INSPECT,
        ),
        (
            "stream: Heuristics.Phishing.Email FOUND",
            "Heuristics.Phishing.Email",
            Verdict.SUSPICIOUS,
        ),
        ("INSTREAM size limit exceeded. ERROR", "clamd-size-limit", Verdict.CANNOT_INSPECT),
        ("stream: Can't allocate memory ERROR", "clamd-error", Verdict.CANNOT_INSPECT),
        ("something unexpected", "clamd-error", Verdict.CANNOT_INSPECT),
    ],
)
def test_interpret(reply: str, rule: str, verdict: Verdict) -> None:
    [finding] = clamd.interpret(reply, "f.bin")
    assert (finding.rule, finding.verdict) == (rule, verdict)


def test_ok_is_the_only_clean_answer() -> None:
    assert clamd.interpret("stream: OK", "f.bin") == []


def test_not_configured_means_not_run() -> None:
    assert clamd.scan(b"data", "f.bin", AuditSettings()) == []


def test_absent_clamd_is_cannot_inspect(tmp_path: Path) -> None:
    settings = AuditSettings(clamd_socket=str(tmp_path / "no-such.sock"), timeout=2)
    [finding] = clamd.scan(b"data", "f.bin", settings)
    assert finding.verdict is Verdict.CANNOT_INSPECT
    assert finding.rule == "clamd-unavailable"


def _serve_once(path: Path, answer: bytes, received: list[bytes]) -> threading.Thread:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)

    def run() -> None:
        with srv, srv.accept()[0] as conn:
            conn.settimeout(5)
            buf = b""
            while not buf.endswith(struct.pack(">I", 0)) or len(buf) < 14:
                data = conn.recv(65536)
                if not data:
                    break
                buf += data
            received.append(buf)
            conn.sendall(answer)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_truncated_answer_is_cannot_inspect_and_framing_is_right(tmp_path: Path) -> None:
    received: list[bytes] = []
    sock = tmp_path / "c.sock"
    t = _serve_once(sock, b"stream: O", received)  # no NUL terminator, then close
    settings = AuditSettings(clamd_socket=str(sock), timeout=5)
    [finding] = clamd.scan(b"abc" * 10, "f.bin", settings)
    t.join(5)
    assert finding.verdict is Verdict.CANNOT_INSPECT
    assert "truncated" in finding.detail
    # zINSTREAM\0, one chunk of 30 bytes with its big-endian length, zero terminator
    assert received == [b"zINSTREAM\0" + struct.pack(">I", 30) + b"abc" * 10 + bytes(4)]
