"""What each desktop was refused that the user may want to grant, for the manager to offer.

The parts that refuse report here: a desktop's DNS forwarder (a child process) writes one
datagram per refused name into that desktop's socket, whose other end this module reads; a
part running inside the compositor calls `Refusals.report`. The compositor keeps a bounded
list per desktop, answers `desktop refusals [NAME] [--clear]`, and emits a `refusal` event for
each new entry (`{"desktop", "kind", "what", "count", "first", "last"}`).

What arrives is shaped by programs inside the desktop (the names they look up), so it is
judged before it is kept: only names that a setting could grant are kept (a DNS name of
letters, digits, '-', '_' and dots), the list of a desktop holds at most `PER_DESKTOP`
entries (the oldest go), and a desktop that refuses many new names in a burst gets at most
`EVENTS_PER_WINDOW` events per `EVENT_WINDOW` seconds (the rest are only counted).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from zionwm.desktopbus.policy import ProxyLog

if TYPE_CHECKING:
    from .loop import FdHandle
    from .server import Server

log = logging.getLogger(__name__)

# "host": a name a filtered network's DNS filter refused (a setting can grant it);
# "dbus": a bus name the desktop bus's proxy hid or would not let be owned (none can)
KINDS = ("host", "dbus")
PER_DESKTOP = 64
EVENTS_PER_WINDOW = 20
EVENT_WINDOW = 10.0
READS_PER_SECOND = 400  # datagrams read per desktop and second; beyond, reading pauses
_BUS_ELEMENT = r"[A-Za-z_-][A-Za-z0-9_-]*"
_BUS_NAME = re.compile(rf"(?=.{{3,255}}$){_BUS_ELEMENT}(?:\.{_BUS_ELEMENT})+")
_HOST = re.compile(
    r"^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$"
)


@dataclass
class Refusal:
    desktop: str
    kind: str
    what: str
    count: int
    first: float
    last: float


def clean_what(kind: str, what: object) -> str | None:
    """The refused thing as kept, or None if it is not one a person could act on."""
    if not isinstance(what, str):
        return None
    if kind == "dbus":
        return what if _BUS_NAME.fullmatch(what) else None
    if kind != "host":
        return None
    name = what.strip().rstrip(".").lower()
    if not _HOST.fullmatch(name) or name.endswith((".arpa", ".local")):
        # reverse lookups and mDNS names are not hosts a filtered network lists
        return None
    return name


class RefusalLog:
    """Pure: the bounded per-desktop lists and the event budget."""

    def __init__(self) -> None:
        self._by_desktop: dict[str, OrderedDict[tuple[str, str], Refusal]] = {}
        self._events: dict[str, list[float]] = {}

    def add(self, desktop: str, kind: str, what: str, now: float) -> Refusal | None:
        """Record one refusal; returns it when it is new and within the event budget."""
        entries = self._by_desktop.setdefault(desktop, OrderedDict())
        key = (kind, what)
        entry = entries.get(key)
        if entry is not None:
            entry.count += 1
            entry.last = now
            entries.move_to_end(key)
            return None
        entries[key] = entry = Refusal(desktop, kind, what, 1, now, now)
        while len(entries) > PER_DESKTOP:
            entries.popitem(last=False)
        recent = [t for t in self._events.get(desktop, []) if now - t < EVENT_WINDOW]
        if len(recent) >= EVENTS_PER_WINDOW:
            self._events[desktop] = recent
            return None
        self._events[desktop] = [*recent, now]
        return entry

    def desktops(self) -> list[str]:
        return list(self._by_desktop)

    def list(self, desktop: str | None = None) -> list[Refusal]:
        names = [desktop] if desktop is not None else list(self._by_desktop)
        return [r for n in names for r in self._by_desktop.get(n, {}).values()]

    def clear(self, desktop: str, what: str | None = None) -> int:
        entries = self._by_desktop.get(desktop)
        if not entries:
            return 0
        gone = [k for k in entries if what is None or k[1] == what]
        for k in gone:
            del entries[k]
        return len(gone)

    def forget(self, desktop: str) -> None:
        self._by_desktop.pop(desktop, None)
        self._events.pop(desktop, None)


class Refusals:
    """The shell: one datagram socket per reporting desktop, the event loop and the
    control-socket requests.

    Each desktop's DNS forwarder gets a socket of its own, and a report is put on the
    desktop whose socket it came through: the forwarder parses what programs send, so a
    forwarder taken over by one desktop must not be able to speak for another (the
    "desktop" a report names is not believed)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.log = RefusalLog()
        # desktop -> (our end, the reporter's end, our reader)
        self._pairs: dict[str, tuple[socket.socket, socket.socket, FdHandle]] = {}
        self._proxy_logs: dict[str, ProxyLog] = {}
        self._budget: dict[str, tuple[float, int]] = {}  # desktop -> (second began, reads)

    def reporter_fd(self, desktop: str) -> int:
        """The end `desktop`'s reporter writes into (`{"kind", "what"}` datagrams); the same
        one for a restarted reporter."""
        pair = self._pairs.get(desktop)
        if pair is None:
            ours, theirs = socket.socketpair(
                socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
            )
            ours.setblocking(False)
            theirs.setblocking(False)  # a reporter never waits for us: a full queue drops
            handle = self.server.loop.add_reader(
                ours.fileno(), lambda: self._on_readable(desktop, ours), f"refusals {desktop}"
            )
            pair = self._pairs[desktop] = (ours, theirs, handle)
        return pair[1].fileno()

    def _on_readable(self, desktop: str, sock: socket.socket) -> None:
        for _ in range(256):  # at most this many per turn of the loop
            if not self._within_budget(desktop):
                return
            try:
                data = sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("refusal reports of %s: %s", desktop, exc)
                return
            if data.startswith(b"{"):  # a DNS forwarder's report
                try:
                    msg = json.loads(data)
                except ValueError:
                    continue
                if isinstance(msg, dict):
                    self.report(desktop, str(msg.get("kind")), msg.get("what"))
                continue
            # a line of the desktop bus proxy's log
            reader = self._proxy_logs.setdefault(desktop, ProxyLog())
            name = reader.feed(data.decode("utf-8", "replace"))
            if name is not None:
                self.report(desktop, "dbus", name)

    def _within_budget(self, desktop: str) -> bool:
        """At most READS_PER_SECOND datagrams a second per desktop: above it, its socket is
        not read for the rest of the second (the kernel drops what its buffer cannot
        hold), so no desktop can keep the compositor busy by getting refused."""
        now = time.monotonic()
        began, reads = self._budget.get(desktop, (now, 0))
        if now - began >= 1.0:
            began, reads = now, 0
        if reads < READS_PER_SECOND:
            self._budget[desktop] = (began, reads + 1)
            return True
        ours, theirs, handle = self._pairs[desktop]
        handle.remove()

        def resume() -> None:
            if self._pairs.get(desktop, (None,))[0] is ours:
                again = self.server.loop.add_reader(
                    ours.fileno(), lambda: self._on_readable(desktop, ours), f"refusals {desktop}"
                )
                self._pairs[desktop] = (ours, theirs, again)

        self.server.loop.call_later(int((1.0 - (now - began)) * 1000) + 1, resume, "refusals")
        return False

    def report(self, desktop: str, kind: str, what: object) -> None:
        if desktop not in self.server.desktops or kind not in KINDS:
            return
        name = clean_what(kind, what)
        if name is None:
            return
        entry = self.log.add(desktop, kind, name, time.time())
        if entry is not None:
            log.info("desktop %s was refused %s %s", desktop, kind, name)
            self.server.emit("refusal", asdict(entry))

    def command(self, words: list[str]) -> dict[str, Any]:
        """`desktop refusals [NAME] [--clear [WHAT]]`."""
        pos = [w for w in words if not w.startswith("--")]
        clear = "--clear" in words
        if any(w.startswith("--") and w != "--clear" for w in words) or len(pos) > (
            2 if clear else 1
        ):
            raise ValueError("usage: desktop refusals [NAME] [--clear [WHAT]]")
        name = pos[0] if pos else None
        if name is not None and name not in self.server.desktops:
            raise LookupError(
                f"no desktop named {name!r} (desktops: {', '.join(self.server.desktops)})"
            )
        if clear:
            if name is None:
                raise ValueError("usage: desktop refusals NAME --clear [WHAT]")
            n = self.log.clear(name, pos[1] if len(pos) > 1 else None)
            return {"message": f"forgot {n} refusal(s) of {name}", "refusals": []}
        # a desktop deleted since keeps no list
        for gone in [d for d in self.log.desktops() if d not in self.server.desktops]:
            self.log.forget(gone)
        items = [asdict(r) for r in self.log.list(name)]
        return {"message": f"{len(items)} refusal(s)", "refusals": items}

    def close(self) -> None:
        for ours, theirs, handle in self._pairs.values():
            handle.remove()
            ours.close()
            theirs.close()
        self._pairs.clear()


def attach(server: Server, net: Any) -> Refusals:
    """Start listening; `net` (the NetworkManager, or None) hands each desktop's reporting
    end to the DNS forwarder it starts for that desktop."""
    refusals = Refusals(server)
    server.refusals = refusals  # type: ignore[attr-defined]
    server.extensions.append(refusals)
    if net is not None:
        net.refusal_reporter = refusals.reporter_fd
    return refusals
