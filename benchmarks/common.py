"""What every side-by-side benchmark shares: the statistics (pure functions, unit-tested),
process accounting from /proc, a raw Wayland probe (screencopy, virtual keyboard and
pointer, static marker windows) and the two compositors under test: zionwm, and sway 1.7
as the peer, run headless as a throw-away unprivileged user because sway refuses root.

Both compositors are driven through the same protocols and clients, so a figure for one is
comparable with the figure for the other.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import pwd
import secrets
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import i3ipc
from xkbcommon import xkb

from benchmarks.stats import (  # noqa: F401 (re-exported: the runner and tests use them here)
    budget_check,
    cpu_percent,
    parse_kib,
    parse_stat_ticks,
    percentile,
    ratio,
    summarize,
)
from tests.harness import Compositor
from tests.wire import WireClient, _string
from zionwm import layout

log = logging.getLogger(__name__)
T = TypeVar("T")

# ================================================================ statistics (pure)


# ================================================================ processes

CLK_TCK = os.sysconf("SC_CLK_TCK")


# How cpu_seconds reads a process's CPU time; the reports name it.
CPU_CLOCK = "the process's CPU-time clock (clock_gettime, ns)"


def process_cpu_clock(pid: int) -> int:
    """The clock id clock_getcpuclockid(3) gives for `pid`: the kernel's CPU-time clock of the
    whole process (CPUCLOCK_SCHED, every thread, those that have exited included), readable
    for any process this one can see."""
    return ((~pid) << 3) | 2


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads, living or exited), in seconds,
    to the nanosecond. /proc/PID/stat counts the same time in clock ticks (10 ms), which
    blurs a figure of a tenth of a second by 10 %: it is only the fallback."""
    try:
        return time.clock_gettime(process_cpu_clock(pid))
    except OSError:
        return parse_stat_ticks(Path(f"/proc/{pid}/stat").read_text()) / CLK_TCK


def rss_kib(pid: int) -> int:
    v = parse_kib(Path(f"/proc/{pid}/status").read_text(), "VmRSS")
    return v or 0


def pss_kib(pid: int) -> int:
    v = parse_kib(Path(f"/proc/{pid}/smaps_rollup").read_text(), "Pss")
    return v or 0


# what a compositor's figures depend on, read from the running process, not assumed
PEER_LIBRARIES = ("libwlroots", "libwayland-server", "libpixman-1")


def mapped_libraries(maps: str, names: tuple[str, ...] = PEER_LIBRARIES) -> dict[str, str]:
    """{library name: the path mapped} for each of `names` in a /proc/PID/maps text."""
    out: dict[str, str] = {}
    for line in maps.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        path = parts[5].strip()
        base = path.rsplit("/", 1)[-1]
        for name in names:
            if base.startswith(name + ".so") or base.startswith(name + "-"):
                out.setdefault(name, path)
    return out


def loaded_libraries(pid: int) -> dict[str, dict[str, str | None]]:
    """The libraries a running compositor loaded (/proc/PID/maps), each with the file it
    resolves to and the version of the Debian package that owns it."""
    out: dict[str, dict[str, str | None]] = {}
    for name, path in mapped_libraries(Path(f"/proc/{pid}/maps").read_text()).items():
        real = os.path.realpath(path)
        pkg = version = None
        owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True, check=False)
        if owner.returncode == 0 and ":" in owner.stdout:
            pkg = owner.stdout.split(":", 1)[0].strip()
            q = subprocess.run(
                ["dpkg-query", "-W", "-f", "${Version}", pkg],
                capture_output=True,
                text=True,
                check=False,
            )
            version = q.stdout.strip() or None if q.returncode == 0 else None
        out[name] = {
            "path": path,
            "file": os.path.basename(real),
            "package": pkg,
            "version": version,
        }
    return out


def wait_for(cond: Callable[[], T | None], timeout: float, what: str, interval: float = 0.005) -> T:
    """Poll `cond` until it returns something truthy; TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ================================================================ a raw Wayland probe

KEY_1 = 2  # evdev keycodes of the digits 1.. on a pc keyboard
SHM_XRGB8888 = 1


def _keymap_bytes() -> tuple[bytes, int]:
    """A default (us) keymap as text, and the modifier mask of Super (Mod4) in it."""
    km = xkb.Context().keymap_new_from_names()
    return km.get_as_bytes() + b"\0", 1 << km.mod_get_index("Mod4")


@dataclass
class Frame:
    """One copied output frame: its presentation time and the pixels."""

    when_ns: int  # the compositor's CLOCK_MONOTONIC time of the output commit
    received_ns: int  # when this client had the pixels
    width: int
    height: int
    stride: int
    y_invert: bool
    data: bytes
    damage: list[tuple[int, int, int, int]] = field(default_factory=list)

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        if self.y_invert:
            y = self.height - 1 - y
        off = y * self.stride + x * 4
        b, g, r = self.data[off], self.data[off + 1], self.data[off + 2]
        return r, g, b


class Probe:
    """A trusted host client that types (zwp_virtual_keyboard_v1, the protocol wtype uses),
    moves the pointer (zwlr_virtual_pointer_v1) and reads frames (zwlr_screencopy_v1,
    copy_with_damage: the compositor answers with the next frame that has damage)."""

    def __init__(self, socket_path: Path) -> None:
        self.c = WireClient(socket_path)
        self.shm = self.c.bind("wl_shm", 1)
        self.output = self.c.bind("wl_output", 1)
        self.copier = self.c.bind("zwlr_screencopy_manager_v1", 2)
        self._buffer: tuple[int, mmap.mmap, tuple[int, int, int, int]] | None = None
        self._keyboard: int | None = None
        self._pointer: int | None = None
        self._mod4 = 0
        self.time_ms = 1

    # ---- keyboard ----

    def keyboard(self) -> None:
        """Make the virtual keyboard now (the seat then has a keyboard)."""
        self._ensure_keyboard()

    def _ensure_keyboard(self) -> int:
        if self._keyboard is None:
            seat = self.c.bind("wl_seat", 1)
            mgr = self.c.bind("zwp_virtual_keyboard_manager_v1", 1)
            self._keyboard = self.c.new_id()
            self.c.send(mgr, 0, struct.pack("=II", seat, self._keyboard))
            keymap, self._mod4 = _keymap_bytes()
            fd = os.memfd_create("probe-keymap", os.MFD_CLOEXEC)
            os.write(fd, keymap)
            self.c.send(self._keyboard, 0, struct.pack("=II", 1, len(keymap)), fds=(fd,))
            os.close(fd)
            self.c.roundtrip()
        return self._keyboard

    def super_digit(self, digit: int) -> int:
        """Press and release Super+digit; returns CLOCK_MONOTONIC ns just before the press
        left this process."""
        kb = self._ensure_keyboard()
        code = KEY_1 + digit - 1
        self.time_ms += 1
        msgs = [
            (2, struct.pack("=IIII", self._mod4, 0, 0, 0)),
            (1, struct.pack("=III", self.time_ms, code, 1)),
            (1, struct.pack("=III", self.time_ms + 1, code, 0)),
            (2, struct.pack("=IIII", 0, 0, 0, 0)),
        ]
        t0 = time.monotonic_ns()
        for opcode, args in msgs:
            self.c.send(kb, opcode, args)
        return t0

    def tap(self, code: int) -> int:
        """Press and release the key of evdev `code`, no modifiers; returns CLOCK_MONOTONIC
        ns just before the press left this process."""
        kb = self._ensure_keyboard()
        self.time_ms += 1
        press = struct.pack("=III", self.time_ms, code, 1)
        release = struct.pack("=III", self.time_ms + 1, code, 0)
        t0 = time.monotonic_ns()
        self.c.send(kb, 1, press)
        self.c.send(kb, 1, release)
        return t0

    # ---- pointer ----

    def _ensure_pointer(self) -> int:
        if self._pointer is None:
            mgr = self.c.bind("zwlr_virtual_pointer_manager_v1", 1)
            self._pointer = self.c.new_id()
            self.c.send(mgr, 0, struct.pack("=II", 0, self._pointer))
            self.c.roundtrip()
        return self._pointer

    def pointer_to(self, x: int, y: int, width: int, height: int) -> None:
        ptr = self._ensure_pointer()
        self.time_ms += 1
        self.c.send(ptr, 1, struct.pack("=IIIII", self.time_ms & 0xFFFFFFFF, x, y, width, height))
        self.c.send(ptr, 4)  # frame

    # ---- screencopy ----

    def arm(self) -> int:
        """Ask for the next damaged frame; returns the frame object to `collect`."""
        frame = self.c.new_id()
        self.c.send(self.copier, 0, struct.pack("=IiI", frame, 0, self.output))
        if self._buffer is None:
            fmt, w, h, stride = self._wait_buffer_event(frame)
            if fmt not in (0, SHM_XRGB8888):
                raise RuntimeError(f"screencopy offers shm format {fmt:#x}, not (X|A)RGB8888")
            size = stride * h
            fd = os.memfd_create("probe-frame", os.MFD_CLOEXEC)
            os.ftruncate(fd, size)
            m = mmap.mmap(fd, size)
            pool = self.c.new_id()
            self.c.send(self.shm, 0, struct.pack("=Ii", pool, size), fds=(fd,))
            buf = self.c.new_id()
            self.c.send(pool, 0, struct.pack("=Iiiiii", buf, 0, w, h, stride, fmt))
            os.close(fd)
            self._buffer = (buf, m, (fmt, w, h, stride))
        # the compositor answers capture_output at once with the same buffer parameters,
        # so the copy request can follow without waiting for them
        self.c.send(frame, 2, struct.pack("=I", self._buffer[0]))  # copy_with_damage
        return frame

    def _wait_buffer_event(self, frame: int) -> tuple[int, int, int, int]:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for e in self.c.events:
                if e.obj == frame and e.opcode == 0:
                    self.c.events.remove(e)
                    return struct.unpack_from("=IIII", e.payload)
            if not self.c.read(1.0):
                raise ConnectionError("compositor closed the probe connection")
        raise TimeoutError("no screencopy buffer event")

    def collect(self, frame: int, timeout: float = 5.0) -> Frame:
        assert self._buffer is not None
        _buf, m, (_fmt, w, h, stride) = self._buffer
        flags = 0
        damage: list[tuple[int, int, int, int]] = []
        deadline = time.monotonic() + timeout
        while True:
            for e in list(self.c.events):
                if e.obj != frame:
                    continue
                self.c.events.remove(e)
                if e.opcode == 1:
                    flags = e.u32(0)
                elif e.opcode == 4:
                    damage.append(struct.unpack_from("=IIII", e.payload))
                elif e.opcode == 2:
                    received = time.monotonic_ns()
                    hi, lo, ns = struct.unpack_from("=III", e.payload)
                    self.c.send(frame, 1)  # destroy
                    when = ((hi << 32) | lo) * 1_000_000_000 + ns
                    return Frame(when, received, w, h, stride, bool(flags & 1), m[:], damage)
                elif e.opcode == 3:
                    self.c.send(frame, 1)
                    raise RuntimeError("screencopy failed")
            # events of other objects (delete_id, buffer release) are dropped
            self.c.events = [e for e in self.c.events if e.obj == frame]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no damaged frame arrived")
            if not self.c.read(left):
                raise ConnectionError("compositor closed the probe connection")

    def close(self) -> None:
        if self._buffer is not None:
            self._buffer[1].close()
        self.c.close()


class Marker:
    """A static toplevel of one solid colour, re-drawn at whatever size it is configured
    to, so the switch benchmark can tell from pixels which desktop a frame shows."""

    def __init__(self, socket_path: Path, app_id: str, argb: int) -> None:
        self.c = WireClient(socket_path)
        self.app_id = app_id
        self.argb = argb
        self.size = (64, 64)
        comp = self.c.bind("wl_compositor", 4)
        self.shm = self.c.bind("wl_shm", 1)
        self.wm = self.c.bind("xdg_wm_base", 1)
        self.surface = self.c.new_id()
        self.c.send(comp, 0, struct.pack("=I", self.surface))
        self.xsurf = self.c.new_id()
        self.c.send(self.wm, 2, struct.pack("=II", self.xsurf, self.surface))
        self.top = self.c.new_id()
        self.c.send(self.xsurf, 1, struct.pack("=I", self.top))
        self.c.send(self.top, 3, _string(app_id))  # set_app_id
        self.c.send(self.surface, 6)  # commit: ask for the first configure
        self.pending: tuple[int, int] = (0, 0)
        self._drawn = False
        self.pump(5.0, until_drawn=True)

    def _draw(self) -> None:
        w, h = self.size
        buf = self.c.shm_buffer(self.shm, w, h, self.argb)
        self.c.send(self.surface, 1, struct.pack("=Iii", buf, 0, 0))
        self.c.send(self.surface, 2, struct.pack("=iiii", 0, 0, w, h))
        self.c.send(self.surface, 6)
        self._drawn = True

    def pump(self, timeout: float = 0.0, until_drawn: bool = False) -> None:
        """Answer what the compositor sent: pings, configures (redrawn at the new size)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.c.read(max(0.0, deadline - time.monotonic()) if until_drawn else 0):
                raise ConnectionError(f"{self.app_id}: compositor closed the connection")
            for e in self.c.events:
                if e.obj == self.wm and e.opcode == 0:  # ping
                    self.c.send(self.wm, 3, struct.pack("=I", e.u32(0)))
                elif e.obj == self.top and e.opcode == 0:  # toplevel configure
                    self.pending = (e.u32(0), e.u32(1))
                elif e.obj == self.xsurf and e.opcode == 0:  # surface configure
                    self.c.send(self.xsurf, 4, struct.pack("=I", e.u32(0)))
                    want = self.pending if self.pending[0] and self.pending[1] else self.size
                    if want != self.size or not self._drawn:
                        self.size = want
                        self._draw()
                    else:
                        self.c.send(self.surface, 6)
            self.c.events.clear()
            if not until_drawn or self._drawn or time.monotonic() > deadline:
                return

    def close(self) -> None:
        self.c.close()


class Drainer:
    """Reads and discards what compositors send to static clients during a measurement,
    so their sockets never fill up (a full socket gets a client disconnected)."""

    def __init__(self, socks: Sequence[socket.socket]) -> None:
        self.socks = list(socks)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.socks:
            ready, _, _ = select.select(self.socks, [], [], 0.1)
            for s in ready:
                try:
                    if not s.recv(65536):
                        self.socks.remove(s)
                except OSError:
                    self.socks.remove(s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


# ================================================================ the compositors


class Session(Protocol):
    """What ZionwmSession and SwaySession both provide to the benchmarks."""

    name: str

    @property
    def pid(self) -> int: ...
    @property
    def wayland_socket(self) -> Path: ...
    def desktop_socket(self, index: int) -> Path: ...
    def show(self, index: int) -> None: ...
    def active(self) -> int: ...
    def launch(self, index: int, argv: list[str]) -> None: ...
    def window_count(self, index: int) -> int: ...
    def window_rect(self, app_id: str) -> tuple[int, int, int, int] | None: ...
    def stop(self) -> None: ...


DESKTOP_COLOURS = (
    "#3b82f6",
    "#22c55e",
    "#a855f7",
    "#ef4444",
    "#eab308",
    "#06b6d4",
    "#f97316",
    "#ec4899",
    "#84cc16",
    "#64748b",
)


def zionwm_config(desktops: int = 2, network: str = "none") -> str:
    """A config with `desktops` desktops and Super+N bound to `switch N` (as the default)."""
    lines = ["from zionwm.config import Network, bind, desktop", ""]
    for i in range(desktops):
        colour = DESKTOP_COLOURS[i % len(DESKTOP_COLOURS)]
        lines.append(f'desktop("d{i + 1}", colour="{colour}", network=Network.{network}())')
    lines += ["", "for n in range(1, 10):", '    bind(f"Super+{n}", f"switch {n}")', ""]
    return "\n".join(lines)


class ControlClient:
    """zionwm's control protocol (one JSON object per line) on one kept connection."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rwb")
        self._id = 0

    def call(self, type_: str, **fields: Any) -> Any:
        self._id += 1
        self.file.write(json.dumps({"id": self._id, "type": type_, **fields}).encode() + b"\n")
        self.file.flush()
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("zionwm closed the control connection")
            reply = json.loads(line)
            if reply.get("id") != self._id:
                continue  # an event
            if not reply.get("ok"):
                raise RuntimeError(f"{type_} {fields}: {reply.get('error')}")
            return reply.get("result")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


# zionwm's default (cli.py), the level of normal use: the figures include its logging
ZIONWM_LOG_LEVEL = "info"


class ZionwmSession:
    """`zionwm --headless` with a private XDG tree; programs launched through its own
    sandboxed launcher (the production path: cgroup, bwrap, desktop socket)."""

    name = "zionwm"

    def __init__(self, root: Path, desktops: int = 2, network: str = "none") -> None:
        self.comp = Compositor(
            root,
            config_text=zionwm_config(desktops, network),
            extra_env={"ZIONWM_LOG": ZIONWM_LOG_LEVEL},
        )
        self.comp.start()
        self.ctl = ControlClient(self.comp.runtime / "zionwm" / "ipc.sock")
        self._names = [f"d{i + 1}" for i in range(desktops)]

    @property
    def pid(self) -> int:
        assert self.comp.proc is not None
        return self.comp.proc.pid

    @property
    def wayland_socket(self) -> Path:
        return self.comp.runtime / self.comp.socket_name

    def desktop_socket(self, index: int) -> Path:
        return self.comp.desktop_socket(self._names[index - 1])

    def show(self, index: int) -> None:
        self.ctl.call("command", argv=["switch", str(index)])

    def active(self) -> int:
        return self._names.index(self.ctl.call("status")["active"]) + 1

    def launch(self, index: int, argv: list[str]) -> None:
        self.ctl.call("command", argv=["launch", self._names[index - 1], "--", *argv])

    def window_count(self, index: int) -> int:
        name = self._names[index - 1]
        return sum(1 for w in self.ctl.call("windows") if w["desktop"] == name)

    def window_rect(self, app_id: str) -> tuple[int, int, int, int] | None:
        for w in self.ctl.call("windows"):
            if w["app_id"] == app_id:
                return w["x"], w["y"], w["width"], w["height"]
        return None

    def freeze(self, index: int) -> None:
        self.ctl.call("command", argv=["freeze", self._names[index - 1]])

    def frozen(self, index: int) -> bool:
        name = self._names[index - 1]
        return any(d["name"] == name and d["frozen"] for d in self.ctl.call("desktops"))

    def switch_samples(self) -> list[float]:
        return list(self.ctl.call("status")["switch_latency_ms"]["samples"])

    def switch_frame_waits(self) -> list[float]:
        """Of each switch sample, the wait for the output's frame clock (same order)."""
        return list(self.ctl.call("status")["switch_latency_ms"].get("frame_wait_samples", []))

    def helper_pids(self) -> list[int]:
        """Processes started by zionwm other than the programs it launched."""
        kids = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return [int(k) for k in kids]

    def callback_errors(self) -> list[str]:
        return self.comp.callback_errors()

    def stop(self) -> None:
        self.ctl.close()
        self.comp.stop(check=False)


OUTPUT = (1280, 720)
BORDER = 3  # zionwm's frame width (compositor/views.py); sway gets the same
STRIP = 24  # height of zionwm's indicator strip (compositor/ui.py)

SWAY_CONFIG = f"""\
output HEADLESS-1 resolution {OUTPUT[0]}x{OUTPUT[1]} position 0 0
# zionwm places windows floating; float everything here too, so both stack the same way
for_window [app_id=".*"] floating enable
default_floating_border pixel {BORDER}
focus_follows_mouse no
"""


# zionwm's usable area on the benchmarks' output: all of it below the strip
ZIONWM_AREA = (0, STRIP, OUTPUT[0], OUTPUT[1] - STRIP)


def zionwm_position(siblings: int, width: int, height: int) -> tuple[int, int]:
    """Where zionwm places a new floating window of this size after `siblings` windows of
    the same size: its window manager's own cascade (`zionwm.layout.cascade`: centred,
    then 32 px down and right, back to the area's top-left corner where a frame would
    leave it)."""
    rect: tuple[int, int, int, int] | None = None
    for _ in range(siblings + 1):
        rect = layout.cascade(ZIONWM_AREA, (width, height), rect, BORDER)
    assert rect is not None
    return rect[0], rect[1]


class SwaySession:
    """Debian's sway 1.7, headless with the pixman renderer, as a throw-away system user.

    `-D txn-timeout=1`: sway holds a window's previous buffer during the map transaction
    (200 ms by default) while still sending frame callbacks, so weston-simple-shm (two
    buffers) aborts with "Both buffers busy"; a 1 ms transaction timeout avoids that. A
    workspace switch changes no window geometry, so no switch waits on a transaction.
    """

    name = "sway"

    def __init__(self, root: Path, workspaces: int = 2) -> None:
        if shutil.which("sway") is None:
            raise RuntimeError("sway is not installed")
        self.user = f"zbench{secrets.token_hex(3)}"
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", self.user],
            check=True,
            capture_output=True,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        # workspace -> con id -> where its window went (x, y, width, height)
        self._placed: dict[int, dict[int, tuple[int, int, int, int]]] = {}
        try:
            pw = pwd.getpwnam(self.user)
            self.runtime = root / "sway-run"
            self.runtime.mkdir(mode=0o700)
            os.chown(self.runtime, pw.pw_uid, pw.pw_gid)
            config = root / "sway.config"
            binds = "".join(
                f"bindsym Mod4+{n} workspace number {n}\n" for n in range(1, workspaces + 1)
            )
            config.write_text(SWAY_CONFIG + binds)
            config.chmod(0o644)
            root.chmod(0o755)
            self.log_path = root / "sway.log"
            env = {
                "PATH": "/usr/bin:/bin",
                "XDG_RUNTIME_DIR": str(self.runtime),
                "HOME": str(self.runtime),
                "WLR_BACKENDS": "headless",
                "WLR_RENDERER": "pixman",
                "WLR_LIBINPUT_NO_DEVICES": "1",
            }
            with open(self.log_path, "wb") as logf:
                self.proc = subprocess.Popen(
                    ["sway", "-D", "txn-timeout=1", "-c", str(config)],
                    env=env,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    user=pw.pw_uid,
                    group=pw.pw_gid,
                    extra_groups=[],
                    cwd="/",
                )
            self._sock: Path = wait_for(self._find_socket, 15, "sway's wayland socket")
            ipc = wait_for(
                lambda: next(self.runtime.glob("sway-ipc.*.sock"), None), 15, "sway's IPC socket"
            )
            self.ipc: Any = wait_for(
                lambda: _try(lambda: i3ipc.Connection(str(ipc))), 10, "sway's IPC to answer"
            )
            self.clients: list[subprocess.Popen[bytes]] = []
            self.crashed = 0
        except BaseException:
            self._cleanup_user()
            raise

    def _find_socket(self) -> Path | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"sway exited: {self.log_path.read_text()[-2000:]}")
        for p in self.runtime.glob("wayland-*"):
            if not p.name.endswith(".lock"):
                return p
        return None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def wayland_socket(self) -> Path:
        return self._sock

    def desktop_socket(self, index: int) -> Path:
        # sway has one socket: a new window goes to the focused workspace
        self.show(index)
        return self._sock

    def show(self, index: int) -> None:
        self.ipc.command(f"workspace number {index}")

    def active(self) -> int:
        return int(self.ipc.get_tree().find_focused().workspace().num)

    def launch(self, index: int, argv: list[str]) -> None:
        """Start `argv` on workspace `index` and wait until it maps. A client that dies
        before mapping (weston-simple-shm's "Both buffers busy" race, see the class
        docstring) is counted in `self.crashed` and started again, at most 3 times."""
        self.show(index)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "WAYLAND_DISPLAY": self._sock.name,
        }
        for _ in range(3):
            before = self.window_count(index)
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.clients.append(proc)

            def mapped_or_dead(p: subprocess.Popen[bytes] = proc, n: int = before) -> str:
                if self.window_count(index) > n:
                    return "mapped"
                return "dead" if p.poll() is not None else ""

            # map before the next launch, or a switch would send it to another workspace
            if wait_for(mapped_or_dead, 10, f"{argv[0]} to map on sway") == "mapped":
                self.place_like_zionwm(index)
                return
            self.crashed += 1
        raise RuntimeError(f"{argv[0]} died before mapping on sway 3 times")

    def live_clients(self) -> int:
        return sum(1 for c in self.clients if c.poll() is None)

    def place_like_zionwm(self, index: int) -> None:
        """Move the newest window of workspace `index` where zionwm would put it (its
        cascade from the window placed before it: `zionwm.layout.cascade`), so both
        compositors draw the same scene: the render cost depends on how windows overlap."""
        ws = next(w for w in self.ipc.get_tree().workspaces() if w.num == index)
        cons = sorted(ws.floating_nodes, key=lambda c: c.id)
        if not cons:
            return
        new = cons[-1]
        placed = self._placed.setdefault(index, {})
        if new.id not in placed:  # asked again for the same window: the same place
            alive = [placed[c.id] for c in cons if c.id in placed]
            size = (new.window_rect.width, new.window_rect.height)
            placed[new.id] = layout.cascade(ZIONWM_AREA, size, alive[-1] if alive else None, BORDER)
        x, y, _w, _h = placed[new.id]
        self.ipc.command(f"[con_id={new.id}] move position {x - BORDER} {y - BORDER}")

    def window_count(self, index: int) -> int:
        for ws in self.ipc.get_tree().workspaces():
            if ws.num == index:
                return len(ws.leaves()) + len(ws.floating_nodes)
        return 0

    def window_rect(self, app_id: str) -> tuple[int, int, int, int] | None:
        for con in self.ipc.get_tree().descendants():
            if con.app_id == app_id:
                r, w = con.rect, con.window_rect
                return r.x + w.x, r.y + w.y, w.width, w.height
        return None

    def callback_errors(self) -> list[str]:
        return []

    def stop(self) -> None:
        for c in self.clients:
            if c.poll() is None:
                c.kill()
            c.wait()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._cleanup_user()

    def _cleanup_user(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        subprocess.run(["userdel", self.user], capture_output=True, check=False)


def _try(fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except OSError:
        return None


@contextmanager
def session(kind: str, **kw: Any) -> Iterator[Any]:
    """A running compositor of `kind` ("zionwm" or "sway") in a private temp dir."""
    root = Path(tempfile.mkdtemp(prefix=f"zbench-{kind}-"))
    s: Any = None
    try:
        s = ZionwmSession(root, **kw) if kind == "zionwm" else SwaySession(root, **kw)
        yield s
    finally:
        if s is not None:
            s.stop()
        shutil.rmtree(root, ignore_errors=True)


def populate(s: Any, index: int, count: int, argv: list[str], timeout: float = 60) -> None:
    """Start `count` copies of `argv` on desktop/workspace `index`, wait until all mapped.

    On sway a client may still die just after mapping (see SwaySession); it is replaced,
    up to `count` replacements, so both compositors show the same number of windows."""
    if count <= 0:
        return
    target = s.window_count(index) + count
    if isinstance(s, SwaySession):
        for _ in range(2 * count):
            if s.window_count(index) >= target:
                break
            s.launch(index, argv)
        # a late death shows as a missing window: settle, then top up once more
        while s.window_count(index) < target and s.crashed < 3 * count:
            s.crashed += 1
            s.launch(index, argv)
    else:
        for _ in range(count):
            s.launch(index, argv)
    wait_for(
        lambda: s.window_count(index) >= target,
        timeout,
        f"{count} windows on {s.name} desktop {index}",
        interval=0.05,
    )
