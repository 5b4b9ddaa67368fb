"""How often a desktop may make zionwm do something: the one rate limiter every layer uses.

A desktop can make the compositor write a log line, show a notification, record a refused
file or open a link as fast as it likes; each costs the user attention or the compositor
work. `Limiter` bounds that per key (a desktop, usually): at most `burst` at once, then the
allowance comes back either

- continuously at `per_second` (a token bucket: notifications, links, log bytes), or
- whole once every `window` seconds (a fixed window: "at most 10 a minute", for records the
  user reads in a list, where a steady trickle would still flood it).

What is refused is not lost from view: it is counted per key and kind (`held`), so that the
caller can say it once ("8 more refused"), and `dropped` counts every refusal. In window mode
a new window starts only once the last window's count was handed back (`take_held`, `take_due`),
so the summary always comes before anything admitted after it.

`charge` is for costs that are already paid (bytes already read): it always takes them, and
says how long to wait until the allowance is back.

Pure: the caller gives the time. This module imports nothing of zionwm.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _State:
    level: float
    at: float  # token bucket: the last refill; window: the window's start
    held: dict[str, int] = field(default_factory=dict)


class Limiter:
    """Per key: `burst` at once, then `per_second` (token bucket) or `burst` per `window`
    seconds (fixed window); exactly one of the two is given."""

    def __init__(
        self, burst: float, *, per_second: float | None = None, window: float | None = None
    ) -> None:
        if (per_second is None) == (window is None):
            raise ValueError("a limiter refills either per_second or per window")
        if burst <= 0 or (per_second is not None and per_second <= 0) or (window or 1) <= 0:
            raise ValueError("burst, per_second and window must be positive")
        self.burst = float(burst)
        self.per_second = per_second
        self.window = window
        self.dropped = 0
        self._states: dict[str, _State] = {}

    def _refill(self, key: str, now: float) -> _State:
        st = self._states.get(key)
        if st is None:
            st = self._states[key] = _State(self.burst, now)
        elif self.per_second is not None:
            st.level = min(self.burst, st.level + max(0.0, now - st.at) * self.per_second)
            st.at = now
        elif self.window is not None and now - st.at >= self.window and not st.held:
            st.level, st.at = self.burst, now
        return st

    def admit(self, key: str, now: float, kind: str = "", cost: float = 1.0) -> bool:
        """Whether this one may go on; if not, it is counted under `kind`."""
        st = self._refill(key, now)
        if st.level >= cost:
            st.level -= cost
            return True
        st.held[kind] = st.held.get(kind, 0) + 1
        self.dropped += 1
        return False

    def charge(self, cost: float, now: float, key: str = "") -> float:
        """Take `cost`, even past the allowance; seconds until the allowance is back (0: go on)."""
        st = self._refill(key, now)
        st.level -= cost
        if st.level >= 0:
            return 0.0
        if self.per_second is not None:
            return -st.level / self.per_second
        return max(0.0, self.window_end(key) - now)

    def held(self, key: str = "") -> dict[str, int]:
        """What was refused for `key` and not handed back yet, per kind."""
        st = self._states.get(key)
        return dict(st.held) if st else {}

    def held_total(self, key: str = "") -> int:
        st = self._states.get(key)
        return sum(st.held.values()) if st else 0

    def holding(self) -> dict[str, int]:
        """Every key with something held: key -> how many."""
        return {k: sum(st.held.values()) for k, st in self._states.items() if st.held}

    def window_end(self, key: str = "") -> float:
        """When `key`'s current window ends (window mode; 0 before its first use)."""
        st = self._states.get(key)
        return st.at + (self.window or 0.0) if st else 0.0

    def take_held(self, key: str = "") -> dict[str, int]:
        """Hand back what was held for `key` (for one summary); its next window starts anew."""
        st = self._states.get(key)
        if st is None:
            return {}
        held, st.held = st.held, {}
        if self.window is not None:
            del self._states[key]
        return held

    def take_due(self, now: float) -> list[tuple[str, dict[str, int]]]:
        """Hand back what was held for each key whose window is over (window mode)."""
        return [
            (key, self.take_held(key))
            for key, st in list(self._states.items())
            if st.held and now >= self.window_end(key)
        ]
