"""Desktop networks built, changed and removed off the compositor's thread.

Building a desktop's network takes tens of milliseconds (a few hundred when the
network-ops process has to start first), and a change of policy, `zionctl net DESKTOP
on|off` or a removal costs a few more `nft` runs. Each of them runs as a job in the
desktop's lane (`offload.desktop_lane`) of the offload it is given (the compositor gives
the networks one of their own), so the frames and the answers to other requests go on
meanwhile, and one desktop's changes happen in the order asked.

A program is never started in a desktop whose network is not what its policy says (fail
closed): a launch into a desktop whose network is not ready, or still changing, waits in
that desktop's queue and starts on the loop once the last queued change is done, in the
order the launches came; if that change failed, every launch waiting for it fails with the
network's error. While nothing of the desktop's network is queued and it is built as its
policy says, a launch starts at once.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from zionwm.isolation.network.manager import NetworkManager
from zionwm.isolation.network.model import DesktopNet
from zionwm.isolation.spec import DesktopSpec, NetworkPolicy

from .ipc import Deferred
from .offload import Offload, desktop_lane

log = logging.getLogger(__name__)

T = TypeVar("T")


class NetworkLanes:
    """The desktops' network changes in their lanes, and the launches waiting for them."""

    def __init__(
        self,
        net: NetworkManager,
        offload: Offload,
        notify: Callable[[str], None],
        spec_of: Callable[[str], DesktopSpec | None],
    ) -> None:
        self.net = net
        self.offload = offload
        self._notify = notify
        self._spec_of = spec_of
        self._queued: dict[str, int] = {}  # desktop -> its network jobs queued or running
        self._waiting: dict[str, deque[tuple[Callable[[], Any], Deferred[Any]]]] = {}
        self._warned: dict[str, str] = {}
        self._recent: list[Deferred[Any]] = []  # changes queued since `take_recent`
        self._rebuilds: dict[str, int] = {}  # builds in a row for launches still waiting
        self.closing = False

    # ---- launches ----

    def ready(self, spec: DesktopSpec) -> bool:
        """Nothing of the desktop's network is queued, and it is built as its policy says."""
        name = spec.name
        if self._queued.get(name) or self._waiting.get(name):
            return False
        return self.net.settled(name, spec.network)

    def when_ready(self, spec: DesktopSpec, start: Callable[[], T]) -> T | Deferred[T]:
        """`start()` now if the desktop's network is ready; otherwise a Deferred of what it
        returns once the network is, in the order of the calls (or of the network's error,
        in which case `start` is never called)."""
        if self.ready(spec):
            return start()
        pending: Deferred[T] = Deferred()
        self._waiting.setdefault(spec.name, deque()).append((start, pending))
        if not self._queued.get(spec.name):
            self.build(spec)
        return pending

    def busy(self, desktop: str) -> bool:
        return bool(self._queued.get(desktop) or self._waiting.get(desktop))

    # ---- changes ----

    def build(self, spec: DesktopSpec) -> Deferred[DesktopNet]:
        """Build (or bring to `spec`'s policy) the desktop's network."""
        name, policy = spec.name, spec.network
        self._reporter(name)
        return self._submit(
            name,
            f"building the network of {name}",
            lambda: self.net.ensure(name, policy),
            tell=True,
        )

    def switch(self, desktop: str, policy: NetworkPolicy, on: bool) -> Deferred[None]:
        """Switch the desktop's network on or off (building it first if it has none)."""
        net = self.net
        self._reporter(desktop)

        def work() -> None:
            if net.get(desktop) is None:
                net.ensure(desktop, policy)
            net.set_enabled(desktop, on)

        what = f"switching the network of {desktop} {'on' if on else 'off'}"
        unbuilt = net.get(desktop) is None or bool(self._queued.get(desktop))
        return self._submit(desktop, what, work, netlink=unbuilt)

    def _reporter(self, desktop: str) -> None:
        """Make the socket the desktop's DNS forwarder reports refusals into, here: its
        reader joins the event loop, which a worker must not touch."""
        if self.net.refusal_reporter is not None:
            self.net.refusal_reporter(desktop)

    def remove(self, desktop: str) -> Deferred[None]:
        """Remove the desktop's network (a deleted or dropped desktop)."""
        return self._submit(
            desktop, f"removing the network of {desktop}", lambda: self.net.teardown(desktop)
        )

    def _submit(
        self,
        desktop: str,
        what: str,
        fn: Callable[[], T],
        *,
        netlink: bool = True,
        tell: bool = False,
    ) -> Deferred[T]:
        """Queue `fn` in the desktop's lane; `netlink`: it may need the ops process; `tell`:
        its failure is notified (a change asked by a command fails that command instead)."""
        done: Deferred[T] = Deferred()
        self._recent.append(done)
        self._queued[desktop] = self._queued.get(desktop, 0) + 1
        if netlink:
            self.net.prestart()  # from this thread: the worker's would end it with itself
        self.offload.submit(
            desktop_lane(desktop),
            what,
            fn,
            on_done=lambda value: self._finished(desktop, done, True, value, tell),
            on_error=lambda exc: self._finished(desktop, done, False, exc, tell),
        )
        return done

    def _finished(
        self, desktop: str, done: Deferred[Any], ok: bool, value: Any, tell: bool
    ) -> None:
        left = self._queued.get(desktop, 1) - 1
        if left:
            self._queued[desktop] = left
        else:
            self._queued.pop(desktop, None)
        if ok:
            self._warn_once(desktop, value)
            done.resolve(value)
        else:
            log.warning("network of %s: %s", desktop, value)
            if tell:
                self._notify(f"Network of {desktop}: {value}")
            done.fail(value)
        if not left:
            self._release(desktop, None if ok else value)

    def _warn_once(self, desktop: str, value: Any) -> None:
        warning = value.warning if isinstance(value, DesktopNet) else None
        if warning and warning != self._warned.get(desktop):
            self._warned[desktop] = warning
            self._notify(f"Network of {desktop}: {warning}")

    def _release(self, desktop: str, error: BaseException | None) -> None:
        """The desktop's last queued change is done: start or fail the launches waiting."""
        waiting = self._waiting.pop(desktop, None)
        if not waiting:
            return
        spec = self._spec_of(desktop)
        rebuild = (
            not self.closing
            and spec is not None
            and error is None
            and not self.net.settled(desktop, spec.network, whole=False)
        )
        tries = self._rebuilds.pop(desktop, 0) + 1  # builds in a row for these launches
        if self.closing:
            self._fail_all(waiting, RuntimeError("the compositor is shutting down"))
        elif spec is None:
            self._fail_all(waiting, RuntimeError(f"desktop {desktop} no longer exists"))
        elif error is not None:
            self._fail_all(waiting, RuntimeError(f"network of {desktop}: {error}"))
        elif rebuild:
            # its policy changed after the last change was queued: build it again first
            # (a network that does not come out as asked after that fails them instead)
            if tries > 3:
                error = RuntimeError(
                    f"network of {desktop}: not as its policy says after {tries - 1} builds"
                )
                self._fail_all(waiting, error)
                return
            self._rebuilds[desktop] = tries
            self._waiting[desktop] = waiting
            self.build(spec)
        else:
            for start, pending in waiting:
                try:
                    pending.resolve(start())
                except Exception as exc:
                    pending.fail(exc)

    @staticmethod
    def _fail_all(
        waiting: deque[tuple[Callable[[], Any], Deferred[Any]]], error: Exception
    ) -> None:
        for _start, pending in waiting:
            pending.fail(error)

    def take_recent(self) -> Deferred[None] | None:
        """What the changes queued since the last call add up to: a Deferred known when all
        of them are done (failed or not), or None if there were none."""
        recent, self._recent = self._recent, []
        if not recent:
            return None
        return gather(recent)

    def forget(self, desktop: str) -> None:
        """A desktop deleted: launches still waiting for its network fail."""
        waiting = self._waiting.pop(desktop, None)
        if waiting:
            self._fail_all(waiting, RuntimeError(f"desktop {desktop} was deleted"))

    def close(self) -> None:
        """Shutting down: no waiting launch starts any more (the queued changes still run;
        the offload's close waits for them)."""
        self.closing = True
        for waiting in self._waiting.values():
            self._fail_all(waiting, RuntimeError("the compositor is shutting down"))
        self._waiting.clear()


def gather(items: list[Deferred[Any]]) -> Deferred[None]:
    """Known when every one of `items` is (their failures are told by their own waiters)."""
    out: Deferred[None] = Deferred()
    left = [len(items)]

    def one(_value: object) -> None:
        left[0] -= 1
        if left[0] == 0:
            out.resolve(None)

    for item in items:
        item.then(one, one)
    if not items:
        out.resolve(None)
    return out
