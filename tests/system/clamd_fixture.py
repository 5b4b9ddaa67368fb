"""A real clamd (Debian's clamav-daemon) for tests and benchmarks, with a test-time database.

The signature database is built when the fixture starts, with `sigtool`, from the EICAR
bytes assembled here in pieces (no signature file and no EICAR file are ever committed).
clamd listens on a unix socket in a temporary directory, runs in the foreground as our
child, and is stopped (and waited for) at the end. Tests that need it skip, naming the
missing program, only where clamd or sigtool are not installed.

Use from a test module:
    from tests.system.clamd_fixture import clamd  # noqa: F401  (the fixture)
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# Split so that this source file is not itself detected as the EICAR test file.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!" + b"$H+H*"
SIGNATURE_NAME = "Zionwm-Test-Eicar"
START_DEADLINE = 30.0


@dataclass(frozen=True)
class Clamd:
    socket_path: str
    pid: int
    stream_max: int  # clamd's StreamMaxLength in bytes


def missing_programs() -> list[str]:
    return [p for p in ("clamd", "sigtool") if shutil.which(p) is None]


def _build_database(db_dir: Path) -> None:
    sample = db_dir.parent / "eicar.sample"
    sample.write_bytes(EICAR)
    hexdump = (
        subprocess.run(["sigtool", "--hex-dump"], input=EICAR, capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )
    # body signature anchored at offset 0 of any file type; an .hdb hash as well
    (db_dir / "zionwm-test.ndb").write_text(f"{SIGNATURE_NAME}:0:0:{hexdump}\n")
    md5 = subprocess.run(
        ["sigtool", "--md5", str(sample)], capture_output=True, check=True, text=True
    ).stdout.strip()
    digest, size, _ = md5.split(":", 2)
    (db_dir / "zionwm-test.hdb").write_text(f"{digest}:{size}:{SIGNATURE_NAME}-Hash\n")
    sample.unlink()


def ping(socket_path: str, timeout: float = 1.0) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(socket_path)
            s.sendall(b"zPING\0")
            reply = b""
            while b"\0" not in reply:
                data = s.recv(64)
                if not data:
                    break
                reply += data
            return reply.startswith(b"PONG")
    except OSError:
        return False


@contextmanager
def running_clamd(workdir: Path, stream_max: int = 2 << 20) -> Iterator[Clamd]:
    """Start clamd in `workdir`, wait for PING/PONG (bounded), stop it on exit."""
    db_dir = workdir / "db"
    tmp_dir = workdir / "tmp"
    db_dir.mkdir(parents=True)
    tmp_dir.mkdir()
    _build_database(db_dir)
    sock = workdir / "clamd.sock"
    conf = workdir / "clamd.conf"
    conf.write_text(
        "\n".join(
            [
                f"LocalSocket {sock}",
                "LocalSocketMode 600",
                "Foreground yes",
                f"DatabaseDirectory {db_dir}",
                f"TemporaryDirectory {tmp_dir}",
                f"StreamMaxLength {stream_max}",
                f"LogFile {workdir / 'clamd.log'}",
                "SelfCheck 0",
                "",
            ]
        )
    )
    proc = subprocess.Popen(
        ["clamd", f"--config-file={conf}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_DEADLINE
        while not ping(str(sock)):
            if proc.poll() is not None:
                log = (workdir / "clamd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"clamd exited with {proc.returncode}: {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"clamd did not answer PING within {START_DEADLINE} s")
            time.sleep(0.05)
        yield Clamd(str(sock), proc.pid, stream_max)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def clamd() -> Iterator[Clamd]:
    missing = missing_programs()
    if missing:
        pytest.skip(f"ClamAV not installed here: {', '.join(missing)} not found (clamav-daemon)")
    with tempfile.TemporaryDirectory(prefix="zionwm-clamd-") as d, running_clamd(Path(d)) as c:
        yield c
