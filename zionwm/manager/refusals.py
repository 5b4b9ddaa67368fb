"""What desktops were refused, per desktop, and the exact settings change that would grant
each (shown as a diff, sent only when the user clicks). Pure: no GTK, no sockets.

The refusals come from the compositor (`desktop refusals`, then `refusal` events); the
change goes back through `desktop set`, so the compositor's validator judges it like any
other. Names were looked up by programs inside the desktop: they are shown escaped and
granted only as the one host they name.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


def visible(text: str) -> str:
    """Control, format and separator characters shown as escapes, never acted on."""
    return "".join(
        c if unicodedata.category(c)[0] not in "CZ" or c == " " else f"\\u{ord(c):04x}"
        for c in text
    )


KIND_TEXT = {
    "host": "looked up a host its network list does not name",
    "dbus": "used a D-Bus name its desktop bus does not let through",
}
NO_OFFER = {
    "host": "No setting change would allow this (it may be allowed already).",
    "dbus": "No setting grants a D-Bus name: the desktop bus lets its programs use "
    "application names (org.mozilla.*, org.gnome.*, io.github.*...) and zionwm's own "
    "services only. A program that needs this name is better run in a desktop of its own.",
}


@dataclass(frozen=True)
class Refusal:
    desktop: str
    kind: str
    what: str
    count: int = 1
    last: float = 0.0

    @classmethod
    def from_event(cls, payload: dict[str, Any]) -> Refusal:
        return cls(
            desktop=str(payload.get("desktop", "")),
            kind=str(payload.get("kind", "")),
            what=str(payload.get("what", "")),
            count=int(payload.get("count") or 1),
            last=float(payload.get("last") or 0.0),
        )

    @property
    def title(self) -> str:
        return visible(self.what)

    @property
    def subtitle(self) -> str:
        times = "once" if self.count == 1 else f"{self.count} times"
        return f"{KIND_TEXT.get(self.kind, self.kind)} ({times})"


@dataclass(frozen=True)
class Offer:
    """The change that would grant a refusal: the words to send and the diff to show."""

    argv: list[str]
    diff: list[str]  # "- key = old", "+ key = new"
    note: str = ""  # what else the change means, for the user


def _setting(show: dict[str, Any], key: str) -> str | None:
    for s in show.get("settings", []):
        if s.get("key") == key:
            return str(s.get("value"))
    return None


def offer(refusal: Refusal, show: dict[str, Any]) -> Offer | None:
    """The settings change that grants exactly this refusal, from `desktop show`'s answer;
    None when no setting grants it (or it is granted already)."""
    if refusal.kind != "host":
        return None
    current = _setting(show, "network")
    if current is None or not current.startswith("filtered"):
        return None  # none: nothing asked the DNS filter; full: nothing is refused
    hosts = [h for h in current.partition(":")[2].split(",") if h]
    if any(h.split(":")[0].split("/")[0] == refusal.what for h in hosts):
        return None
    new = "filtered:" + ",".join([*hosts, refusal.what])
    return Offer(
        argv=["desktop", "set", refusal.desktop, f"network={new}"],
        diff=[f"- network = {current}", f"+ network = {new}"],
        note=f"programs in {refusal.desktop} may then reach {refusal.what} on any port",
    )


class RefusalList:
    """The refusals of every desktop, newest first, as the manager lists them."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str, str], Refusal] = {}

    def load(self, payloads: Iterable[dict[str, Any]]) -> None:
        self._items.clear()
        for p in payloads:
            self.add(p)

    def add(self, payload: dict[str, Any]) -> Refusal:
        r = Refusal.from_event(payload)
        self._items[(r.desktop, r.kind, r.what)] = r
        return r

    def drop(self, refusal: Refusal) -> None:
        self._items.pop((refusal.desktop, refusal.kind, refusal.what), None)

    def forget_desktop(self, desktop: str) -> None:
        for key in [k for k in self._items if k[0] == desktop]:
            del self._items[key]

    def of(self, desktop: str) -> list[Refusal]:
        return sorted(
            (r for r in self._items.values() if r.desktop == desktop), key=lambda r: -r.last
        )

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self._items.values():
            out[r.desktop] = out.get(r.desktop, 0) + 1
        return out
