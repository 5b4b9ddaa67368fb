"""The quarantine's batched paths under a real `kill -9`.

Files that arrive together are taken in one batch, their verdicts recorded in one
transaction and their releases started and finished in one commit each. These tests kill
the real service process with SIGKILL at a chosen call inside such a batch (the k-th file
of it), start a normal service on what is left, and check the crash promise: nothing lost,
nothing released unaudited, nothing released twice.

The kill point is set by a small wrapper that patches one function of the service before
running its `main` and sends SIGKILL to itself on its k-th call: a window a few
microseconds wide, hit every time.
"""

from __future__ import annotations

import json
import os
import select
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness import wait_for
from tests.system.test_quarantine import (  # noqa: F401 - fixtures
    QService,
    all_items,
    browser_save,
    db_states,
    downloads,
    policy,
    service,
    wait_terminal,
    xdg,
)
from zionwm import paths

FILES = 20

# Runs the service with SIGKILL at the k-th call of one function (argv: where, k, then the
# service's own arguments).
KILLER = r"""
import os, signal, sys
from zionwm.quarantine import inbox, releasing, service, store

where, k = sys.argv[1], int(sys.argv[2])
calls = [0]

def hit():
    if calls[0] == k:
        os.kill(os.getpid(), signal.SIGKILL)
    calls[0] += 1

if where.startswith("transition:"):
    to = where.split(":", 1)[1]
    transition = store.Store.transition

    def patched(self, item_id, state, **fields):
        if state.value == to:
            hit()
        return transition(self, item_id, state, **fields)

    store.Store.transition = patched
elif where == "begin_take":
    begin_take = store.Store.begin_take

    def patched(self, **fields):
        hit()
        return begin_take(self, **fields)

    store.Store.begin_take = patched
else:
    module = releasing if where == "release_file" else inbox
    original = getattr(module, where)

    def patched(*args, **kwargs):
        hit()
        return original(*args, **kwargs)

    setattr(module, where, patched)
sys.exit(service.main(sys.argv[3:]))
"""


def run_until_killed(svc: QService, where: str, k: int, timeout: float = 120.0) -> None:
    """Run the service with a kill point; return once it died of it."""
    r, w = os.pipe()
    with open(svc.log, "ab") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLER, where, str(k), *svc.arguments(w, workers=4)],
            pass_fds=(w,),
            stdout=logf,
            stderr=logf,
        )
    os.close(w)
    try:
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise AssertionError(f"the service never reached call {k} of {where}") from None
    finally:
        select.select([r], [], [], 0)
        os.close(r)
    assert rc == -9, f"the service ended with {rc}, not at its kill point"


def _fill_inbox(count: int) -> dict[str, bytes]:
    inbox = paths.desktop_inbox("web")
    inbox.mkdir(parents=True, exist_ok=True)
    sent = {}
    for n in range(count):
        name = f"b{n:02d}.txt"
        sent[name] = b"batch file %d\n" % n + os.urandom(16).hex().encode()
        browser_save(inbox, name, sent[name])
    return sent


def _end_every_hold() -> None:
    """As if the holds had run out while the service was down."""
    con = sqlite3.connect(paths.quarantine_dir() / "quarantine.db")
    try:
        with con:
            con.execute("UPDATE items SET hold_until = 0 WHERE state = 'held'")
    finally:
        con.close()


def _check_released_once(svc: QService, sent: dict[str, bytes]) -> None:
    items = wait_terminal(svc, len(sent), 120)
    names = sorted(i["name"] for i in items)
    assert names == sorted(sent), "an item was lost or recorded twice"
    assert all(i["state"] == "released" for i in items), [
        (i["name"], i["state"], i["reason"]) for i in items if i["state"] != "released"
    ]
    assert all(i["verdict"] for i in items), "released without a verdict"
    dl = downloads("personal")
    assert sorted(os.listdir(dl)) == sorted(sent), "released twice (a clash name) or lost"
    for name, data in sent.items():
        assert (dl / name).read_bytes() == data
    assert not os.listdir(paths.quarantine_dir() / "items")
    assert not os.listdir(paths.desktop_inbox("web"))


# Intake and verdicts: the files are in the inbox before the service starts, so its first
# scan takes all of them in one batch.
@pytest.mark.parametrize(
    "where",
    [
        "begin_take",  # inside the transaction of the batch's intents: none committed
        "_link_into_store",  # intents committed, a part of the copies placed
        "_remove_entry",  # every copy placed, a part of the inbox entries removed
        "transition:received",  # inside the transaction of the batch's arrival
        "transition:held",  # inside the transaction of a batch of verdicts
    ],
)
def test_kill9_inside_an_intake_or_verdict_batch(
    where: str,
    xdg: Path,  # noqa: F811
    service: Callable[..., QService],  # noqa: F811
) -> None:
    sent = _fill_inbox(FILES)
    svc = QService(xdg, policy(hold=0.0))
    run_until_killed(svc, where, 5 if where != "transition:held" else 1)
    svc = service(policy(hold=0.0))
    _check_released_once(svc, sent)


# Releases: the files are held with their hold over while the service is down, so its first
# round of timers releases all of them in one batch.
@pytest.mark.parametrize(
    "where",
    [
        "transition:releasing",  # inside the transaction of the batch's intents
        "release_file",  # intents committed, a part of the files moved
        "transition:released",  # every file moved, inside the transaction of the outcomes
    ],
)
def test_kill9_inside_a_release_batch(
    where: str,
    service: Callable[..., QService],  # noqa: F811
) -> None:
    sent = _fill_inbox(FILES)
    svc = service(policy(hold=600.0))
    wait_for(lambda: list(db_states().values()).count("held") == FILES, 120, f"{FILES} items held")
    svc.stop()
    _end_every_hold()
    run_until_killed(svc, where, 5)
    states = list(db_states().values())
    if where == "transition:releasing":
        assert states.count("held") == FILES, "intents of an unfinished batch were committed"
    else:
        assert states.count("releasing") == FILES, states
    svc = service(policy(hold=600.0))
    _check_released_once(svc, sent)
    moved = svc.log.read_text().count("-> to-released")
    # the files the killed service had moved are recognised as released, not moved again
    assert moved == {"transition:releasing": 0, "release_file": 5}.get(where, FILES), moved


def test_events_of_a_batch_come_once_each_with_counts(
    service: Callable[..., QService],  # noqa: F811
) -> None:
    """Coalesced events: every item's received/held/released once, in that order."""
    from zionwm.quarantine.client import EventStream

    svc = service(policy(hold=0.0))
    stream = EventStream()
    sent = _fill_inbox(FILES)
    seen: list[dict[str, Any]] = []

    def all_released() -> bool:
        select.select([stream], [], [], 0.5)
        seen.extend(stream.read_events())
        return sum(e["event"] == "released" for e in seen) >= FILES

    wait_for(all_released, 120, "every file released")
    by_item: dict[int, list[str]] = {}
    for e in seen:
        by_item.setdefault(e["item"]["id"], []).append(e["event"])
        assert set(e["counts"]) == {"pending", "kept"}
    assert len(by_item) == FILES
    assert all(v == ["received", "held", "released"] for v in by_item.values()), by_item
    assert seen[-1]["counts"] == {"pending": 0, "kept": 0}
    assert sorted(os.listdir(downloads("personal"))) == sorted(sent)
    stream.close()
    assert json.dumps(all_items(svc))  # the service still answers
