"""A minimal Wayland client speaking the wire protocol directly, for tests that need a
client to do something precise (or wrong) that no real application does on demand:
truncate its shm pool, send garbage, map and vanish in a tight loop, drive a virtual pointer.
"""

from __future__ import annotations

import array
import mmap
import os
import select
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path


def _string(s: str) -> bytes:
    b = s.encode() + b"\0"
    return struct.pack("=I", len(b)) + b + b"\0" * (-len(b) % 4)


@dataclass
class Event:
    obj: int
    opcode: int
    payload: bytes

    def u32(self, i: int) -> int:
        return int(struct.unpack_from("=I", self.payload, 4 * i)[0])

    def string(self, offset: int = 0) -> tuple[str, int]:
        (n,) = struct.unpack_from("=I", self.payload, offset)
        s = self.payload[offset + 4 : offset + 4 + n - 1].decode()
        return s, offset + 4 + n + (-n % 4)


@dataclass
class WireClient:
    path: Path
    sock: socket.socket = field(init=False)
    next_id: int = 2
    globals: dict[str, tuple[int, int]] = field(default_factory=dict)  # iface -> (name, ver)
    events: list[Event] = field(default_factory=list)
    errors: list[Event] = field(default_factory=list)
    _buf: bytes = b""

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self.path))
        self.registry = self.new_id()
        self.send(1, 1, struct.pack("=I", self.registry))  # wl_display.get_registry
        self.roundtrip()
        for ev in self.events:
            if ev.obj == self.registry and ev.opcode == 0:
                name = ev.u32(0)
                iface, off = ev.string(4)
                (ver,) = struct.unpack_from("=I", ev.payload, off)
                self.globals[iface] = (name, ver)
        self.events.clear()

    def new_id(self) -> int:
        i = self.next_id
        self.next_id += 1
        return i

    def send(self, obj: int, opcode: int, args: bytes = b"", fds: tuple[int, ...] = ()) -> None:
        msg = struct.pack("=II", obj, ((8 + len(args)) << 16) | opcode) + args
        anc = (
            [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
        )
        self.sock.sendmsg([msg], anc)

    def read(self, timeout: float = 5.0) -> bool:
        """Read what is available; False once the compositor closed the connection."""
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return True
        data = self.sock.recv(65536)
        if not data:
            return False
        self._buf += data
        while len(self._buf) >= 8:
            obj, word = struct.unpack_from("=II", self._buf)
            size = word >> 16
            if len(self._buf) < size:
                break
            ev = Event(obj, word & 0xFFFF, self._buf[8:size])
            self._buf = self._buf[size:]
            (self.errors if obj == 1 and ev.opcode == 0 else self.events).append(ev)
        return True

    def roundtrip(self, timeout: float = 5.0) -> None:
        cb = self.new_id()
        self.send(1, 0, struct.pack("=I", cb))  # wl_display.sync
        while True:
            if not self.read(timeout):
                raise ConnectionError("compositor closed the connection")
            if any(e.obj == cb for e in self.events):
                self.events = [e for e in self.events if e.obj != cb]
                return

    def bind(self, iface: str, version: int = 1) -> int:
        name, ver = self.globals[iface]
        oid = self.new_id()
        self.send(
            self.registry,
            0,
            struct.pack("=I", name) + _string(iface) + struct.pack("=II", min(version, ver), oid),
        )
        return oid

    def disconnected(self, timeout: float = 5.0) -> bool:
        """True if, within `timeout`, the compositor closes the connection or sends the fatal
        wl_display.error (after which libwayland ignores the client until it hangs up)."""
        import time

        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self.read(max(0.0, deadline - time.monotonic())) or self.errors:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        return False

    def close(self) -> None:
        self.sock.close()

    # ---- a mapped toplevel with one shm buffer ----

    def new_toplevel(self) -> tuple[int, int, int, int]:
        """(wl_shm, wl_surface, xdg_surface, xdg_toplevel): a toplevel made, nothing
        committed yet (the caller may set its sizes first, then `configure` it)."""
        comp = self.bind("wl_compositor", 4)
        shm = self.bind("wl_shm", 1)
        wm = self.bind("xdg_wm_base", 1)
        surface = self.new_id()
        self.send(comp, 0, struct.pack("=I", surface))  # create_surface
        xsurf = self.new_id()
        self.send(wm, 2, struct.pack("=II", xsurf, surface))  # get_xdg_surface
        top = self.new_id()
        self.send(xsurf, 1, struct.pack("=I", top))  # get_toplevel
        return shm, surface, xsurf, top

    def configure(self, surface: int, xsurf: int) -> None:
        """Commit the bare surface, wait for the first configure and ack it."""
        self.send(surface, 6)  # commit: ask for the first configure
        self.send(xsurf, 4, struct.pack("=I", self._wait_configure(xsurf)))  # ack_configure

    def show(self, surface: int, buffer: int, width: int, height: int) -> None:
        """Attach `buffer`, damage all of it and commit."""
        self.send(surface, 1, struct.pack("=Iii", buffer, 0, 0))  # attach
        self.send(surface, 2, struct.pack("=iiii", 0, 0, width, height))  # damage
        self.send(surface, 6)  # commit

    def map_toplevel(self, width: int = 64, height: int = 64, colour: int = 0xFF00FF00) -> int:
        shm, surface, xsurf, top = self.new_toplevel()
        self.toplevel = top
        self.configure(surface, xsurf)
        self.show(surface, self.shm_buffer(shm, width, height, colour), width, height)
        self.roundtrip()
        return surface

    def wait_event(self, obj: int, opcode: int, timeout: float = 10.0) -> Event:
        """The next event `opcode` on object `obj` (reading until it comes)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if e.obj == obj and e.opcode == opcode:
                    self.events.remove(e)
                    return e
            if not self.read(max(0.0, deadline - time.monotonic())):
                raise ConnectionError("closed while waiting for an event")
        raise TimeoutError(f"no event {opcode} on object {obj}")

    def _wait_configure(self, xsurf: int) -> int:
        while True:
            for e in self.events:
                if e.obj == xsurf and e.opcode == 0:
                    self.events.remove(e)
                    return e.u32(0)
            if not self.read():
                raise ConnectionError("closed while waiting for configure")

    def shm_buffer(
        self,
        shm: int,
        width: int,
        height: int,
        colour: int,
        truncate_after: bool = False,
        fmt: int = 0,
    ) -> int:
        """One buffer of `colour` in its own pool; `fmt` 0 is ARGB8888, 1 XRGB8888 (opaque)."""
        stride = width * 4
        size = stride * height
        fd = os.memfd_create("wire-shm", os.MFD_CLOEXEC)
        os.ftruncate(fd, size)
        with mmap.mmap(fd, size) as m:
            m.write(struct.pack("=I", colour) * (width * height))
        pool = self.new_id()
        self.send(shm, 0, struct.pack("=Ii", pool, size), fds=(fd,))
        buffer = self.new_id()
        self.send(pool, 0, struct.pack("=IiiiiI", buffer, 0, width, height, stride, fmt))
        if truncate_after:
            os.ftruncate(fd, 0)
        os.close(fd)
        return buffer
