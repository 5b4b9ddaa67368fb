"""The compositor's offload lanes on a real Wayland event loop with real worker threads.

A job that blocks in the kernel here is a read() on a pipe the test holds: the test decides
when it returns, so every assertion is about the order of events, never about time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pywayland.server import Display

from zionwm.compositor.loop import Loop
from zionwm.compositor.offload import Offload


class World:
    def __init__(self) -> None:
        self.display = Display()
        self.loop = Loop(self.display)
        self.reports: list[str] = []
        self.offload = Offload(self.loop, report=self.reports.append)
        self.seen: list[str] = []  # what the loop was told, in order
        self.threads: list[int] = []  # the thread each callback ran on
        self.pipes: list[tuple[int, int]] = []

    def dispatch_until(self, cond: Callable[[], bool], what: str, turns: int = 500) -> None:
        """Turn the event loop until `cond` holds (each turn waits at most 100 ms for an fd)."""
        for _ in range(turns):
            if cond():
                return
            self.loop.event_loop.dispatch(100)
        raise AssertionError(f"the loop never saw {what}")

    def gate(self) -> tuple[Callable[[], bytes], Callable[[], None]]:
        """A job body that blocks in read() until `release()` writes to its pipe."""
        r, w = os.pipe()
        self.pipes.append((r, w))
        return (lambda: os.read(r, 1)), (lambda: os.write(w, b"x") and None)

    def told(self, name: str) -> Callable[[Any], None]:
        def record(_value: Any) -> None:
            self.seen.append(name)
            self.threads.append(threading.get_ident())

        return record

    def close(self) -> None:
        for _, w in self.pipes:
            os.write(w, b"x")  # nothing stays blocked
        self.offload.close()
        for r, w in self.pipes:
            os.close(r)
            os.close(w)
        self.display.destroy()


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.close()


def test_loop_runs_while_a_job_blocks_and_a_lane_keeps_its_order(world: World) -> None:
    block, release = world.gate()
    first = world.offload.submit("desktop work", "freezing work", block, on_done=world.told("a1"))
    second = world.offload.submit(
        "desktop work", "thawing work", lambda: None, on_done=world.told("a2")
    )
    world.offload.submit("desktop web", "freezing web", lambda: None, on_done=world.told("b"))
    # the other lane finishes and is delivered while the first job still blocks
    world.dispatch_until(lambda: world.seen == ["b"], "the other lane's result")
    assert first.state == "running" and second.state == "queued"
    # a timer of the loop fires meanwhile too: the loop is not held up
    fired: list[bool] = []
    world.loop.call_later(1, lambda: fired.append(True), "test timer")
    world.dispatch_until(lambda: bool(fired), "a timer while a job blocks")
    assert second.state == "queued", "a lane's second job overtook its first"
    release()
    world.dispatch_until(lambda: len(world.seen) == 3, "the work lane's results")
    assert world.seen == ["b", "a1", "a2"]
    assert set(world.threads) == {threading.get_ident()}, "a result was delivered off the loop"


def test_at_most_two_workers(world: World) -> None:
    gates = [world.gate() for _ in range(3)]
    jobs = [
        world.offload.submit(f"lane {i}", f"job {i}", block, on_done=world.told(f"j{i}"))
        for i, (block, _) in enumerate(gates)
    ]
    world.dispatch_until(lambda: sum(j.state == "running" for j in jobs) == 2, "two jobs running")
    assert jobs[2].state == "queued"
    gates[0][1]()
    world.dispatch_until(lambda: "j0" in world.seen, "the first result")
    world.dispatch_until(lambda: jobs[2].state == "running", "the third job to start")
    gates[1][1]()
    gates[2][1]()
    world.dispatch_until(lambda: len(world.seen) == 3, "every result")


def test_a_queued_job_called_off_never_runs(world: World) -> None:
    block, release = world.gate()
    ran: list[str] = []
    world.offload.submit("desktop work", "freezing work", block)
    freeze_again = world.offload.submit("desktop work", "freezing work", lambda: ran.append("x"))
    assert freeze_again.cancel() is True
    thaw = world.offload.submit(
        "desktop work", "thawing work", lambda: None, on_done=world.told("t")
    )
    release()
    world.dispatch_until(lambda: world.seen == ["t"], "the thaw")
    assert ran == [] and freeze_again.state == "cancelled"
    assert thaw.cancel() is False  # done: too late to call off


def test_failures_are_reported_or_handed_to_the_submitter(world: World) -> None:
    def refuse() -> None:
        raise PermissionError(13, "Permission denied")

    world.offload.submit("desktop work", "thawing work", refuse)
    handled: list[BaseException] = []
    world.offload.submit("desktop web", "freezing web", refuse, on_error=handled.append)
    world.dispatch_until(lambda: bool(world.reports) and bool(handled), "both failures")
    assert world.reports == ["thawing work failed: Permission denied"]
    assert isinstance(handled[0], PermissionError)


def test_close_drains_the_queue_then_runs_later_jobs_at_once(world: World) -> None:
    block, release = world.gate()
    world.offload.submit("desktop work", "freezing work", block, on_done=world.told("freeze"))
    world.offload.submit("desktop work", "thawing work", lambda: None, on_done=world.told("thaw"))
    threading.Thread(target=release).start()  # while close() waits, or just before
    world.offload.close()  # waits for the blocked job, then the one behind it
    assert world.seen == ["freeze", "thaw"]
    world.offload.submit("desktop work", "thawing work", lambda: None, on_done=world.told("late"))
    assert world.seen == ["freeze", "thaw", "late"]
