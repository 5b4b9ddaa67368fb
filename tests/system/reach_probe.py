"""Socket-reach attacker, run *inside* a desktop's sandbox by Debian's /usr/bin/python3
(stdlib only; the test passes this file's text with `python3 -c`).

Usage: python3 -c SRC OUT TARGET ...   with TARGET `path:/some/socket` or `abstract:name`
Writes one JSON object to OUT (renamed into place when complete):
    {"TARGET": {"ok": bool, "errno": "ENOENT" | None, "exists": bool | None, "stream": bool}}
A target counts as reached when a stream or datagram connect to it succeeds.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys


def reach(target: str) -> dict[str, object]:
    kind, _, name = target.partition(":")
    address = name if kind == "path" else "\0" + name
    exists = os.path.lexists(name) if kind == "path" else None
    first: OSError | None = None
    for sock_type in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET):
        s = socket.socket(socket.AF_UNIX, sock_type)
        s.settimeout(5)
        try:
            s.connect(address)
        except OSError as exc:
            first = first or exc
            continue
        finally:
            s.close()
        return {"ok": True, "errno": None, "exists": exists, "type": int(sock_type)}
    code = errno.errorcode.get(first.errno or 0, str(first.errno)) if first else None
    return {"ok": False, "errno": code, "exists": exists, "type": None}


def main(argv: list[str]) -> None:
    out, targets = argv[0], argv[1:]
    result = {t: reach(t) for t in targets}
    result["_env"] = {  # type: ignore[assignment]
        k: v
        for k, v in os.environ.items()
        if k
        in (
            "DISPLAY",
            "WAYLAND_DISPLAY",
            "XDG_RUNTIME_DIR",
            "DBUS_SESSION_BUS_ADDRESS",
            "SWAYSOCK",
            "I3SOCK",
        )
        or k.startswith("ZIONWM")
    }
    with open(out + ".tmp", "w") as f:
        json.dump(result, f)
    os.rename(out + ".tmp", out)


if __name__ == "__main__":
    main(sys.argv[1:])
