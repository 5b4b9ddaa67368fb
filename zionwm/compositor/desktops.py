"""The desktop model: which desktop is active, which was before, each desktop's focus order.

Pure: no wlroots. The compositor applies what this model decides (enable one scene tree,
move keyboard focus, start freeze timers). Windows never move between desktops: a window's
desktop is fixed by the socket its client connected through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

W = TypeVar("W")


class SwitchError(ValueError):
    pass


@dataclass
class DesktopState(Generic[W]):
    name: str
    index: int
    focus_stack: list[W] = field(default_factory=list)  # last = most recently focused
    frozen: bool = False
    activated_once: bool = False

    @property
    def focused(self) -> W | None:
        return self.focus_stack[-1] if self.focus_stack else None


@dataclass(frozen=True)
class SwitchPlan:
    old: str | None
    new: str


class DesktopModel(Generic[W]):
    def __init__(self, names: list[str]) -> None:
        if not names:
            raise ValueError("at least one desktop is needed")
        self.desktops: dict[str, DesktopState[W]] = {
            n: DesktopState(n, i) for i, n in enumerate(names)
        }
        self.active: str = names[0]
        self.previous: str | None = None
        self.desktops[self.active].activated_once = True

    @property
    def names(self) -> list[str]:
        return list(self.desktops)

    def resolve(self, target: str) -> str:
        """A desktop by name, or by its 1-based number as Super+N counts."""
        if target in self.desktops:
            return target
        if target.isdigit():
            n = int(target)
            names = self.names
            if 1 <= n <= len(names):
                return names[n - 1]
        raise SwitchError(f"no desktop named {target!r} (desktops: {', '.join(self.names)})")

    def switch(self, target: str) -> SwitchPlan | None:
        """Make `target` active; None if it already is."""
        name = self.resolve(target)
        if name == self.active:
            return None
        plan = SwitchPlan(self.active, name)
        self.previous, self.active = self.active, name
        self.desktops[name].activated_once = True
        return plan

    def switch_previous(self) -> SwitchPlan | None:
        if self.previous is None:
            return None
        return self.switch(self.previous)

    def add_window(self, desktop: str, window: W) -> None:
        self.desktops[desktop].focus_stack.append(window)

    def focus(self, desktop: str, window: W) -> None:
        stack = self.desktops[desktop].focus_stack
        if window in stack:
            stack.remove(window)
        stack.append(window)

    def demote(self, desktop: str, window: W) -> None:
        """Make `window` the least recently focused (it was hidden, e.g. unmapped): focus
        returning to this desktop then lands on a window that can take it."""
        stack = self.desktops[desktop].focus_stack
        if window in stack:
            stack.remove(window)
        stack.insert(0, window)

    def remove_window(self, desktop: str, window: W) -> None:
        stack = self.desktops[desktop].focus_stack
        if window in stack:
            stack.remove(window)

    def focused(self, desktop: str | None = None) -> W | None:
        return self.desktops[desktop or self.active].focused

    def update_names(self, names: list[str]) -> list[str]:
        """Apply a reloaded config's desktop list. Desktops that still hold windows are kept
        (their programs live in them); returns the names that could not be removed."""
        kept = []
        new: dict[str, DesktopState[W]] = {}
        for i, n in enumerate(names):
            st = self.desktops.get(n) or DesktopState(n, i)
            st.index = i
            new[n] = st
        for n, st in self.desktops.items():
            if n not in new and st.focus_stack:
                st.index = len(new)
                new[n] = st
                kept.append(n)
        self.desktops = new
        if self.active not in new:
            self.active = next(iter(new))
        if self.previous not in new:
            self.previous = None
        return kept
