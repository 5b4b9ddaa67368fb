"""The events the quarantine service sends to its subscribers (the compositor's notifications
and pending badge), coalesced: queued as the loop works and sent once per turn of it (and
before any reply to a request), with the counts read once for all of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from zionwm.quarantine.control import ControlSocket
from zionwm.quarantine.store import Item


class Events:
    def __init__(self, control: ControlSocket, counts: Callable[[], dict[str, int]]) -> None:
        self.control = control
        self.counts = counts
        self.queued: list[tuple[str, Item]] = []  # to send at the end of the batch

    def emit(self, event: str, item: Item) -> None:
        """Queue an event for the subscribers; `flush` sends it with its batch's."""
        if self.control.has_subscribers():
            self.queued.append((event, item))

    def flush(self) -> None:
        """Send the queued events, each with the counts as they are now (read once): at
        the end of each turn of the loop, and before a reply."""
        if not self.queued:
            return
        events, self.queued = self.queued, []
        if not self.control.has_subscribers():
            return
        counts = self.counts()
        data = "".join(
            json.dumps({"event": event, "item": item.to_json(), "counts": counts}) + "\n"
            for event, item in events
        )
        self.control.broadcast(data.encode())
