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

The lists outlive a restart: a desktop's list is written (refusal_store.py, on a thread of
its own) at most once every `SAVE_DELAY_MS` while it changes, and when the compositor
stops; what is read back at start is judged like a new report.
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

from zionwm import paths
from zionwm.desktopbus.policy import ProxyLog

from .refusal_store import RefusalStore

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
SAVE_DELAY_MS = 1000  # changes within this are written together
FILE_VERSION = 1
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


def encode(entries: list[Refusal]) -> bytes:
    """One desktop's list as its file holds it (its newest PER_DESKTOP, oldest first)."""
    items = [
        {"kind": r.kind, "what": r.what, "count": r.count, "first": r.first, "last": r.last}
        for r in entries[-PER_DESKTOP:]
    ]
    return json.dumps({"version": FILE_VERSION, "refusals": items}).encode() + b"\n"


def decode(desktop: str, data: bytes) -> list[Refusal]:
    """A list read back: every entry judged as a new report would be; ValueError says what
    is wrong with one that is not."""
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("version") != FILE_VERSION:
        raise ValueError(f"not a version {FILE_VERSION} refusal list")
    items = doc.get("refusals")
    if not isinstance(items, list):
        raise ValueError("'refusals' is not a list")
    out: list[Refusal] = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"entry {n} is not an object")
        kind, count, first, last = (item.get(k) for k in ("kind", "count", "first", "last"))
        what = clean_what(kind, item.get("what")) if kind in KINDS else None
        if what is None:
            raise ValueError(f"entry {n}: not a refusal this list keeps")
        if type(count) is not int or count < 1:
            raise ValueError(f"entry {n}: bad count {count!r}")
        if not isinstance(first, int | float) or not isinstance(last, int | float):
            raise ValueError(f"entry {n}: bad times")
        out.append(Refusal(desktop, str(kind), what, count, float(first), float(last)))
    return out[-PER_DESKTOP:]


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

    def restore(self, desktop: str, entries: list[Refusal]) -> None:
        """Put back a list read at start (no events: they were announced when new)."""
        kept = self._by_desktop.setdefault(desktop, OrderedDict())
        for r in entries:
            kept.pop((r.kind, r.what), None)
            kept[(r.kind, r.what)] = r
        while len(kept) > PER_DESKTOP:
            kept.popitem(last=False)

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
        self.store = RefusalStore(paths.state_home() / "refusals")
        self._unsaved: set[str] = set()
        self._save_timer: Any = None
        for desktop, entries in self.store.load(decode).items():
            self.log.restore(desktop, entries)

    def _changed(self, desktop: str) -> None:
        self._unsaved.add(desktop)
        if self._save_timer is None:
            self._save_timer = self.server.loop.call_later(SAVE_DELAY_MS, self._save, "refusals")

    def _save(self) -> None:
        self._save_timer = None
        for desktop in sorted(self._unsaved):
            entries = self.log.list(desktop)
            self.store.save(desktop, encode(entries) if entries else None)
        self._unsaved.clear()

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
        self._changed(desktop)
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
            self._changed(name)
            return {"message": f"forgot {n} refusal(s) of {name}", "refusals": []}
        # a desktop deleted since keeps no list
        for gone in [d for d in self.log.desktops() if d not in self.server.desktops]:
            self.log.forget(gone)
            self._changed(gone)
        items = [asdict(r) for r in self.log.list(name)]
        return {"message": f"{len(items)} refusal(s)", "refusals": items}

    def close(self) -> None:
        if self._save_timer is not None:
            self._save_timer.remove()
        self._save()
        self.store.close()
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
