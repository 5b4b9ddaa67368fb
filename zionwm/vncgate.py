"""A gate in front of wayvnc on loopback: only the session's own user gets through.

wayvnc without authentication gives whoever connects a full view of, and input into, every
desktop. On loopback, "whoever" is every local account of the machine, not just the user
(a shared server, a lab machine). So wayvnc listens on a UNIX socket in the user's private
runtime directory, and this small process listens on the loopback TCP port instead: for
each connection it looks up which user owns the connecting socket (the kernel's socket
table, ``/proc/net/tcp`` and ``tcp6``) and forwards it to wayvnc only when that is the
session's user; an SSH tunnel (``ssh -L``) arrives as the user's own sshd process and
passes. Anything else is closed before a byte of VNC is sent.

Desktops never get here at all: their networks do not reach the host's loopback (see
docs/network.md). Run as ``python -m zionwm.vncgate JSON`` (see `gate_argv`); the pure
socket-table parser is `owner_uid`.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

ESTABLISHED = "01"
PR_SET_PDEATHSIG = 1


def _addr(field: str) -> tuple[str, int]:
    """An address:port field of /proc/net/tcp{,6} (address words in host byte order)."""
    hexaddr, _, hexport = field.partition(":")
    raw = bytes.fromhex(hexaddr)
    words = [raw[i : i + 4] for i in range(0, len(raw), 4)]
    packed = b"".join(struct.pack("=I", struct.unpack(">I", w)[0]) for w in words)
    addr = ipaddress.ip_address(packed)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr), int(hexport, 16)


def _norm(addr: tuple[str, int]) -> tuple[str, int]:
    ip = ipaddress.ip_address(addr[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), int(addr[1])


def owner_uid(tables: list[str], client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The uid owning the connected socket `client` -> `server`, from the text of
    /proc/net/tcp and /proc/net/tcp6; None when no such connection is listed."""
    want_local, want_remote = _norm(client), _norm(server)
    for text in tables:
        for line in text.splitlines()[1:]:
            parts = line.split()
            if len(parts) < 8 or parts[3] != ESTABLISHED:
                continue
            try:
                local, remote = _addr(parts[1]), _addr(parts[2])
            except ValueError:
                continue
            if local == want_local and remote == want_remote:
                return int(parts[7])
    return None


def _socket_tables() -> list[str]:
    out = []
    for name in ("tcp", "tcp6"):
        try:
            out.append(Path("/proc/net", name).read_text())
        except OSError:
            continue
    return out


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


def _handle(conn: socket.socket, peer: tuple[str, int], target: str, uid: int) -> None:
    server = conn.getsockname()[:2]
    owner = owner_uid(_socket_tables(), peer[:2], server)
    if owner != uid:
        log.warning("VNC: refused a connection from %s:%d (uid %s)", peer[0], peer[1], owner)
        conn.close()
        return
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        up.connect(target)
    except OSError as exc:
        log.warning("VNC: wayvnc is not reachable at %s: %s", target, exc)
        up.close()
        conn.close()
        return
    back = threading.Thread(target=_pump, args=(up, conn), daemon=True)
    back.start()
    _pump(conn, up)
    back.join()
    up.close()
    conn.close()


def serve(host: str, port: int, target: str, uid: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    lsock = socket.socket(family, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, port))
    lsock.listen(16)
    while True:
        conn, peer = lsock.accept()
        threading.Thread(target=_handle, args=(conn, peer, target, uid), daemon=True).start()


def gate_argv(host: str, port: int, target: str, uid: int) -> list[str]:
    cfg = {"host": host, "port": port, "target": target, "uid": uid, "parent": os.getpid()}
    return [sys.executable, "-m", "zionwm.vncgate", json.dumps(cfg)]


def _die_with(parent: int) -> None:
    # The port must not stay open (and refuse the user) after the compositor is gone,
    # even when it was killed.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        sys.exit(0)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = json.loads(argv[0])
    _die_with(int(cfg["parent"]))
    try:
        serve(str(cfg["host"]), int(cfg["port"]), str(cfg["target"]), int(cfg["uid"]))
    except OSError as exc:
        log.error("VNC gate on %s:%s: %s", cfg["host"], cfg["port"], exc)
        return 1
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main(sys.argv[1:]))
