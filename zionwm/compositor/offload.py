"""Slow kernel writes off the compositor's thread: ordered lanes served by a few workers.

Some writes cost the kernel time in proportion to what they touch: `cgroup.freeze` visits
every task of a desktop (about 5 us each: 5 ms and more at a thousand processes), and
`memory.reclaim` walks its memory. Made on the compositor's thread, each one delays the
frame and every answer behind it. `Offload.submit(lane, what, fn)` runs `fn` on a worker
thread instead and delivers its result (or its exception) back on the event loop, through
an eventfd the loop watches like any other fd.

A lane is a queue whose jobs run one at a time and in the order submitted (one lane per
desktop, so its freeze and thaw never overtake each other); different lanes run side by
side on at most `workers` threads. A job still queued can be called off (`Job.cancel`): a
freeze that a switch back made pointless is then never written at all.

Jobs do kernel I/O only: no wlroots, no Wayland objects, no compositor state (their
results are applied, and logged, by the callbacks on the loop). A worker holds none of
this module's locks while it runs a job, so a child the compositor forks meanwhile (whose
`preexec_fn` runs a few lines of Python) finds none held; logging's own locks are reset
in a forked child by the logging module itself.
A job that fails is logged and told to the user (`report`) unless its submitter handles
the failure itself (`on_error`). `close()` waits, bounded, for what was queued, then
delivers the last results on the caller's thread; a job submitted after that runs at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

from .listeners import guarded
from .loop import FdHandle, Loop

log = logging.getLogger(__name__)

T = TypeVar("T")

# Memory reclaim of every desktop shares one lane: a long reclaim then holds at most one
# worker, and the other stays free for freezes and thaws.
RECLAIM_LANE = "memory reclaim"


def desktop_lane(desktop: str) -> str:
    """The lane of a desktop's freeze and thaw."""
    return f"desktop {desktop}"


JobState = Literal["queued", "running", "done", "cancelled"]


class Job(Generic[T]):
    """One piece of slow work in a lane; `state` is read on the loop's thread."""

    def __init__(
        self,
        offload: Offload,
        lane: str,
        what: str,
        fn: Callable[[], T],
        on_done: Callable[[T], None] | None,
        on_error: Callable[[BaseException], None] | None,
    ) -> None:
        self._offload = offload
        self.lane = lane
        self.what = what
        self.fn = fn
        self.on_done = on_done
        self.on_error = on_error
        self.state: JobState = "queued"

    def cancel(self) -> bool:
        """Call the job off if no worker has started it; True if it will never run."""
        return self._offload._cancel(self)

    @property
    def started(self) -> bool:
        """A worker has begun it (its write may have reached the kernel)."""
        return self.state in ("running", "done")

    def __repr__(self) -> str:
        return f"Job({self.lane!r}, {self.what!r}, {self.state})"


_Outcome = tuple[Job[Any], bool, Any]  # the job, whether it returned, its value or exception


class Offload:
    def __init__(
        self,
        loop: Loop,
        *,
        workers: int = 2,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.max_workers = max(1, workers)
        self._report = report
        self._cond = threading.Condition()
        self._lanes: dict[str, deque[Job[Any]]] = {}  # lanes with queued jobs
        self._ready: deque[str] = deque()  # lanes with a queued job and none running
        self._running: set[str] = set()
        self._outcomes: deque[_Outcome] = deque()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # workers waiting for a lane
        self._stopping = False
        self._closed = False
        self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._watch: FdHandle | None = loop.add_reader(self._efd, self._on_ready, "offload")

    # ---- the loop's side ----

    def submit(
        self,
        lane: str,
        what: str,
        fn: Callable[[], T],
        *,
        on_done: Callable[[T], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Job[T]:
        """Queue `fn` at the end of `lane`; `on_done(result)` or `on_error(exc)` run on the
        loop afterwards. `what` names the work in logs and reports ("thawing work")."""
        job: Job[T] = Job(self, lane, what, fn, on_done, on_error)
        if self._closed:
            job.state = "running"
            outcome = self._run(job)
            job.state = "done"
            self._deliver(outcome)
            return job
        with self._cond:
            queue = self._lanes.get(lane)
            if queue is None:
                queue = self._lanes[lane] = deque()
            queue.append(job)
            if len(queue) == 1 and lane not in self._running:
                self._ready.append(lane)
            if self._idle == 0 and len(self._threads) < self.max_workers:
                t = threading.Thread(target=self._work, name=f"offload-{len(self._threads)}")
                t.daemon = True  # a write stuck in the kernel must not keep the process alive
                self._threads.append(t)
                t.start()
            self._cond.notify()
        return job

    def busy(self, lane: str) -> bool:
        """Something of `lane` is queued or running."""
        with self._cond:
            return lane in self._running or lane in self._lanes

    def _cancel(self, job: Job[Any]) -> bool:
        with self._cond:
            if job.state != "queued":
                return job.state == "cancelled"
            queue = self._lanes[job.lane]
            queue.remove(job)
            if not queue:
                del self._lanes[job.lane]
                if job.lane in self._ready:
                    self._ready.remove(job.lane)
            job.state = "cancelled"
            return True

    def _on_ready(self) -> None:
        try:
            os.eventfd_read(self._efd)
        except BlockingIOError:
            pass
        while True:
            with self._cond:
                if not self._outcomes:
                    return
                outcome = self._outcomes.popleft()
            self._deliver(outcome)

    def _deliver(self, outcome: _Outcome) -> None:
        job, ok, value = outcome
        if ok:
            if job.on_done is not None:
                guarded(f"after {job.what}", job.on_done)(value)
            return
        if job.on_error is not None:
            guarded(f"after {job.what} failed", job.on_error)(value)
            return
        text = value.strerror if isinstance(value, OSError) and value.strerror else str(value)
        log.warning("%s failed: %s", job.what, text or type(value).__name__)
        if self._report is not None:
            guarded("reporting a failure", self._report)(f"{job.what} failed: {text}")

    # ---- the workers' side ----

    @staticmethod
    def _run(job: Job[Any]) -> _Outcome:
        try:
            return (job, True, job.fn())
        except Exception as exc:  # delivered to the loop, which reports it
            return (job, False, exc)

    def _work(self) -> None:
        while True:
            with self._cond:
                self._idle += 1
                while not self._ready and not self._stopping:
                    self._cond.wait()
                self._idle -= 1
                if not self._ready:
                    return  # stopping, and nothing left
                lane = self._ready.popleft()
                queue = self._lanes[lane]
                job = queue.popleft()
                if not queue:
                    del self._lanes[lane]
                self._running.add(lane)
                job.state = "running"
            outcome = self._run(job)
            with self._cond:
                job.state = "done"
                self._running.discard(lane)
                if lane in self._lanes:
                    self._ready.append(lane)
                self._outcomes.append(outcome)
                self._cond.notify_all()
            try:
                os.eventfd_write(self._efd, 1)
            except OSError:
                pass  # closed at shutdown: close() delivers what is left

    # ---- shutdown ----

    def close(self, timeout: float = 5.0) -> None:
        """Wait (at most `timeout`) for every queued job, then deliver the last results
        here; later submissions run at once on the caller's thread."""
        if self._closed:
            return
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._lanes or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning(
                        "offload: still busy at shutdown: %s",
                        ", ".join(sorted(set(self._lanes) | self._running)),
                    )
                    break
                self._cond.wait(left)
            self._stopping = True
            self._cond.notify_all()
            abandoned = [j for q in self._lanes.values() for j in q]
            self._lanes.clear()
            self._ready.clear()
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._closed = True
        for job in abandoned:
            job.state = "cancelled"
            log.warning("offload: %s not done: shut down before it ran", job.what)
        self._on_ready()
        if self._watch is not None:
            self._watch.remove()
            self._watch = None
        if not any(t.is_alive() for t in self._threads):
            os.close(self._efd)
