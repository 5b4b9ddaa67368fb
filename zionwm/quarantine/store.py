"""The quarantine store: the SQLite record of every item's life, and the directory of contents.

Layout under `paths.quarantine_dir()`: `items/<id>` holds an item's content while it is in
quarantine, `quarantine.db` (SQLite, WAL) holds its record.

Life of an item::

    taking -> received -> auditing -> held -> releasing -> released
                                   \\-> rejected (content kept or deleted by policy)
    held | rejected -> deleting -> deleted          (the user's `delete`)
    auditing -> deleting -> rejected                (a verdict whose policy is "delete")
    held | rejected -> received                     (the user's `rescan`)
    rejected -> releasing                           (forced release, `--i-understand`)

A file move is always bracketed by two commits: the intent (`taking`, `releasing`,
`deleting`, with everything needed to find the file afterwards) is durable before the move,
and the outcome after it. `recovery_action` is the pure rule that, after a crash, looks at
where the file actually is and decides the state each item resumes in; the service applies
it at start. Only the service's main thread touches a `Store` (sqlite3 connections are not
shared across threads here).

The service is the only writer, so the store keeps the items still in the pipeline in memory
as it last wrote them (`get` and `transition` then cost no read and no decoding of a row),
and `batch()` groups the writes of many items into one transaction: a flood of files costs
a commit per stage of a batch, not per file. A batch is only for writes whose order with
file operations does not matter: an intent that must be durable before a file moves is
committed (the batch left) before that move.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from zionwm.quarantine.report import AuditReport, Verdict
from zionwm.quarantine.states import (  # noqa: F401 (re-exported: the service side uses them here)
    PENDING_STATES,
    SHARED_DEST,
    State,
)

log = logging.getLogger(__name__)


class Kind(StrEnum):
    DOWNLOAD = "download"  # from a desktop's Downloads inbox
    OUTBOX = "outbox"  # from a desktop's outbox, to Shared
    SEND = "send"  # `zionctl send`: copied from one desktop's home to another's Incoming


TERMINAL_STATES = frozenset({State.RELEASED, State.REJECTED, State.DELETED})

# Which state may follow which. Everything else is a bug or a race with the user, and is
# refused by `Store.transition` rather than silently applied.
ALLOWED: dict[State, frozenset[State]] = {
    State.TAKING: frozenset({State.RECEIVED, State.REJECTED}),
    State.RECEIVED: frozenset({State.AUDITING, State.REJECTED, State.DELETING}),
    State.AUDITING: frozenset({State.HELD, State.REJECTED, State.RECEIVED, State.DELETING}),
    State.HELD: frozenset({State.RELEASING, State.DELETING, State.RECEIVED, State.REJECTED}),
    State.RELEASING: frozenset({State.RELEASED, State.HELD, State.REJECTED}),
    State.REJECTED: frozenset({State.RELEASING, State.DELETING, State.RECEIVED}),
    State.DELETING: frozenset({State.DELETED, State.REJECTED}),
    State.RELEASED: frozenset(),
    State.DELETED: frozenset(),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    dest TEXT NOT NULL,
    subdir TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER,
    sha256 TEXT,
    origin_url TEXT,
    referrer_url TEXT,
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    state TEXT NOT NULL,
    content INTEGER NOT NULL DEFAULT 0,
    dev INTEGER,
    ino INTEGER,
    inbox_name TEXT,
    verdict TEXT,
    report TEXT,
    hold_until REAL,
    release_name TEXT,
    released_at REAL,
    reason TEXT,
    forced INTEGER NOT NULL DEFAULT 0,
    then_state TEXT,
    src_dev INTEGER,
    src_ino INTEGER
);
CREATE INDEX IF NOT EXISTS items_state ON items(state);
"""
# Columns added after the first release, for stores created before them.
_ADDED_COLUMNS = {"src_dev": "INTEGER", "src_ino": "INTEGER"}


# Items kept in memory at most (the pending ones, oldest written first out): a flood of many
# thousand files must not hold every report in memory.
CACHE_MAX = 4096
_CACHED_STATES = PENDING_STATES | {State.DELETING}

# UPDATE ... RETURNING came with SQLite 3.35
_HAS_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)


class StoreError(Exception):
    """A transition the item's current state does not allow, or an unknown item."""


@dataclass(frozen=True)
class Item:
    id: int
    kind: Kind
    source: str  # desktop the content came from
    dest: str  # destination desktop, or SHARED_DEST
    subdir: tuple[str, ...]  # path under the destination root, e.g. ("home", "Downloads")
    name: str  # the file's name as it arrived (a single path component)
    size: int | None
    sha256: str | None  # computed from the stored fd before the audit
    origin_url: str | None
    referrer_url: str | None
    received_at: float
    updated_at: float
    state: State
    content: bool  # items/<id> holds the content
    dev: int | None  # identity of the stored file, to recognise it after a crash
    ino: int | None
    inbox_name: str | None
    src_dev: int | None  # identity of the inbox file it was copied from (while taking)
    src_ino: int | None
    verdict: Verdict | None
    report: AuditReport | None
    hold_until: float | None
    release_name: str | None  # name at the destination (intent while releasing)
    released_at: float | None
    reason: str | None  # why rejected / why a state was forced
    forced: bool  # released by the user despite a non-clean verdict
    then_state: str | None  # while deleting: "rejected" (policy) or None (the user: deleted)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "source": self.source,
            "dest": self.dest,
            "subdir": "/".join(self.subdir),
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "origin_url": self.origin_url,
            "referrer_url": self.referrer_url,
            "received_at": self.received_at,
            "updated_at": self.updated_at,
            "state": self.state.value,
            "content": self.content,
            "verdict": self.verdict.value if self.verdict else None,
            "report": self.report.to_json() if self.report else None,
            "hold_until": self.hold_until,
            "release_name": self.release_name,
            "released_at": self.released_at,
            "reason": self.reason,
            "forced": self.forced,
        }


def _row_to_item(row: sqlite3.Row) -> Item:
    report = AuditReport.from_json(json.loads(row["report"])) if row["report"] else None
    return Item(
        id=row["id"],
        kind=Kind(row["kind"]),
        source=row["source"],
        dest=row["dest"],
        subdir=tuple(p for p in row["subdir"].split("/") if p),
        name=row["name"],
        size=row["size"],
        sha256=row["sha256"],
        origin_url=row["origin_url"],
        referrer_url=row["referrer_url"],
        received_at=row["received_at"],
        updated_at=row["updated_at"],
        state=State(row["state"]),
        content=bool(row["content"]),
        dev=row["dev"],
        ino=row["ino"],
        inbox_name=row["inbox_name"],
        src_dev=row["src_dev"],
        src_ino=row["src_ino"],
        verdict=Verdict(row["verdict"]) if row["verdict"] else None,
        report=report,
        hold_until=row["hold_until"],
        release_name=row["release_name"],
        released_at=row["released_at"],
        reason=row["reason"],
        forced=bool(row["forced"]),
        then_state=row["then_state"],
    )


class RecoveryAction(StrEnum):
    KEEP = "keep"  # state is consistent as it is
    DROP = "drop"  # a `taking` that never landed: forget it, the inbox still has the file
    TO_RECEIVED = "to-received"  # audit (again)
    TO_HELD = "to-held"  # the release did not happen: release again
    TO_RELEASED = "to-released"  # the release happened (remove a leftover store copy)
    TO_DELETED = "to-deleted"  # finish the deletion
    TO_LOST = "to-lost"  # content is nowhere: record it as rejected, loudly


def recovery_action(state: State, in_store: bool, at_destination: bool) -> RecoveryAction:
    """Decide how an item resumes after a crash, from where its content actually is.

    `in_store`: items/<id> exists and is the file recorded (same device and inode).
    `at_destination`: the destination holds a file stamped with this item's id.
    """
    if state is State.TAKING:
        return RecoveryAction.TO_RECEIVED if in_store else RecoveryAction.DROP
    if state is State.RECEIVED:
        return RecoveryAction.KEEP if in_store else RecoveryAction.TO_LOST
    if state is State.AUDITING:
        return RecoveryAction.TO_RECEIVED if in_store else RecoveryAction.TO_LOST
    if state is State.HELD:
        return RecoveryAction.KEEP if in_store else RecoveryAction.TO_LOST
    if state is State.RELEASING:
        if at_destination:
            return RecoveryAction.TO_RELEASED
        return RecoveryAction.TO_HELD if in_store else RecoveryAction.TO_LOST
    if state is State.DELETING:
        return RecoveryAction.TO_DELETED
    return RecoveryAction.KEEP


def _item_value(key: str, value: Any) -> Any:
    """A column's new value as an `Item` holds it (what `_row_to_item` would decode)."""
    if key == "verdict":
        return Verdict(value) if value is not None else None
    if key in ("content", "forced"):
        return bool(value)
    if key == "report":
        if value is not None and not isinstance(value, AuditReport):
            raise TypeError("report must be an AuditReport")
        return value
    if isinstance(value, Enum):
        return value.value
    return value


def _sql_value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, AuditReport):
        return json.dumps(value.to_json())
    if isinstance(value, bool):
        return int(value)
    return value


class Store:
    """The record of every item. Owns the database connection and the items/ directory fd."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        (root / "items").mkdir(exist_ok=True, mode=0o700)
        self.items_fd = os.open(root / "items", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._db = sqlite3.connect(root / "quarantine.db", isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # WAL with synchronous=NORMAL: every commit survives a crash of this process (the
        # kill -9 case); only a power cut may lose the last commits.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        have = {r["name"] for r in self._db.execute("PRAGMA table_info(items)")}
        for col, kind in _ADDED_COLUMNS.items():
            if col not in have:
                self._db.execute(f"ALTER TABLE items ADD COLUMN {col} {kind}")
        # pending items as last written (this process is the only writer); see the docstring
        self._cache: dict[int, Item] = {}
        self._in_batch = False
        self._touched: set[int] = set()  # written in the open batch: forgotten if it fails

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Every write inside is one transaction, committed on leaving (rolled back, with
        what the store remembers of the items it touched, if it raises). Nested batches
        join the outer one."""
        if self._in_batch:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._in_batch = True
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            for item_id in self._touched:
                self._cache.pop(item_id, None)
            raise
        finally:
            self._in_batch = False
            self._touched.clear()

    @property
    def in_batch(self) -> bool:
        return self._in_batch

    def _remember(self, item: Item) -> Item:
        if self._in_batch:
            self._touched.add(item.id)
        if item.state in _CACHED_STATES:
            self._cache.pop(item.id, None)  # re-inserted last: the oldest go first
            self._cache[item.id] = item
            if len(self._cache) > CACHE_MAX:
                del self._cache[next(iter(self._cache))]
        else:
            self._cache.pop(item.id, None)
        return item

    def forget(self) -> None:
        """Drop what is remembered: the next reads come from the database."""
        self._cache.clear()

    def close(self) -> None:
        self._db.close()
        os.close(self.items_fd)

    # -- queries ---------------------------------------------------------------------------

    def get(self, item_id: int) -> Item:
        cached = self._cache.get(item_id)
        if cached is not None:
            return cached
        return self._remember(self.read(item_id))

    def read(self, item_id: int) -> Item:
        """The item as the database has it (never what is remembered)."""
        row = self._db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise StoreError(f"no quarantine item {item_id}")
        return _row_to_item(row)

    def list(self, states: frozenset[State] | None = None) -> list[Item]:
        if states is None:
            rows = self._db.execute("SELECT * FROM items ORDER BY id").fetchall()
        else:
            marks = ",".join("?" * len(states))
            rows = self._db.execute(
                f"SELECT * FROM items WHERE state IN ({marks}) ORDER BY id",
                [s.value for s in states],
            ).fetchall()
        return [self._cache.get(r["id"]) or self._remember(_row_to_item(r)) for r in rows]

    def counts(self) -> dict[str, int]:
        """`pending`: still in the pipeline; `kept`: rejected with content the user may act on."""
        pending = self._db.execute(
            f"SELECT count(*) FROM items WHERE state IN ({','.join('?' * len(PENDING_STATES))})",
            [s.value for s in PENDING_STATES],
        ).fetchone()[0]
        kept = self._db.execute(
            "SELECT count(*) FROM items WHERE state = ? AND content = 1",
            (State.REJECTED.value,),
        ).fetchone()[0]
        return {"pending": int(pending), "kept": int(kept)}

    def find_taking(self, source: str, inbox_name: str) -> Item | None:
        row = self._db.execute(
            "SELECT * FROM items WHERE state = ? AND source = ? AND inbox_name = ?",
            (State.TAKING.value, source, inbox_name),
        ).fetchone()
        return _row_to_item(row) if row else None

    # -- transitions -----------------------------------------------------------------------

    def begin_take(
        self,
        *,
        kind: Kind,
        source: str,
        dest: str,
        subdir: tuple[str, ...],
        name: str,
        size: int,
        dev: int,
        ino: int,
        inbox_name: str | None,
        origin_url: str | None = None,
        referrer_url: str | None = None,
        src_dev: int | None = None,
        src_ino: int | None = None,
    ) -> int:
        """Record the intent to place a file as items/<id>; returns the new id."""
        now = time.time()
        cur = self._db.execute(
            "INSERT INTO items (kind, source, dest, subdir, name, size, dev, ino, inbox_name,"
            " origin_url, referrer_url, received_at, updated_at, state, content, src_dev,"
            " src_ino) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,?,?)",
            (
                kind.value,
                source,
                dest,
                "/".join(subdir),
                name,
                size,
                dev,
                ino,
                inbox_name,
                origin_url,
                referrer_url,
                now,
                now,
                State.TAKING.value,
                src_dev,
                src_ino,
            ),
        )
        assert cur.lastrowid is not None
        item_id = int(cur.lastrowid)
        self._remember(
            Item(
                id=item_id,
                kind=kind,
                source=source,
                dest=dest,
                subdir=tuple(p for p in "/".join(subdir).split("/") if p),
                name=name,
                size=size,
                sha256=None,
                origin_url=origin_url,
                referrer_url=referrer_url,
                received_at=now,
                updated_at=now,
                state=State.TAKING,
                content=False,
                dev=dev,
                ino=ino,
                inbox_name=inbox_name,
                src_dev=src_dev,
                src_ino=src_ino,
                verdict=None,
                report=None,
                hold_until=None,
                release_name=None,
                released_at=None,
                reason=None,
                forced=False,
                then_state=None,
            )
        )
        return item_id

    def drop_taking(self, item_id: int) -> None:
        """Forget a take that did not land (the file is still where it was)."""
        self._cache.pop(item_id, None)
        if self._in_batch:
            self._touched.add(item_id)
        self._db.execute(
            "DELETE FROM items WHERE id = ? AND state = ?", (item_id, State.TAKING.value)
        )

    def record_refused(
        self,
        *,
        kind: Kind,
        source: str,
        dest: str,
        subdir: tuple[str, ...],
        name: str,
        reason: str,
    ) -> int:
        """Record an entry that was never taken (a symlink, a hard link, a device...)."""
        now = time.time()
        cur = self._db.execute(
            "INSERT INTO items (kind, source, dest, subdir, name, received_at, updated_at,"
            " state, content, reason) VALUES (?,?,?,?,?,?,?,?,0,?)",
            (
                kind.value,
                source,
                dest,
                "/".join(subdir),
                name,
                now,
                now,
                State.REJECTED.value,
                reason,
            ),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def transition(self, item_id: int, to: State, **fields: Any) -> Item:
        """Move an item to `to` (checked against ALLOWED) and set `fields` in one commit
        (or in the open batch's)."""
        cached = self._cache.get(item_id)
        if cached is not None:
            state = cached.state
        else:
            # only the state is read before (a whole item, with its report, costs as much
            # as the update), and the updated row comes back from the update itself
            row = self._db.execute("SELECT state FROM items WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                raise StoreError(f"no quarantine item {item_id}")
            state = State(row["state"])
        if to not in ALLOWED[state]:
            raise StoreError(f"item {item_id} is {state.value}; it cannot become {to.value}")
        now = time.time()
        cols = {"state": to.value, "updated_at": now}
        for key, value in fields.items():
            cols[key] = _sql_value(value)
        sets = ", ".join(f"{k} = ?" for k in cols)
        update = f"UPDATE items SET {sets} WHERE id = ? AND state = ?"
        args = [*cols.values(), item_id, state.value]
        if cached is not None:
            # the row is what was last written here: it is not read back
            if self._db.execute(update, args).rowcount != 1:
                self._cache.pop(item_id, None)
                raise StoreError(f"item {item_id} changed state concurrently")
            changes = {k: _item_value(k, v) for k, v in fields.items()}
            return self._remember(dataclasses.replace(cached, state=to, updated_at=now, **changes))
        if _HAS_RETURNING:
            # fetchall: the statement runs to its end, so its commit is done on return
            rows = self._db.execute(update + " RETURNING *", args).fetchall()
            if len(rows) != 1:
                raise StoreError(f"item {item_id} changed state concurrently")
            return self._remember(_row_to_item(rows[0]))
        if self._db.execute(update, args).rowcount != 1:
            raise StoreError(f"item {item_id} changed state concurrently")
        return self._remember(self.read(item_id))

    def set_release_name(self, item_id: int, name: str) -> None:
        """Record the destination name about to be tried (the intent of one attempt)."""
        now = time.time()
        done = self._db.execute(
            "UPDATE items SET release_name = ?, updated_at = ? WHERE id = ? AND state = ?",
            (name, now, item_id, State.RELEASING.value),
        ).rowcount
        cached = self._cache.get(item_id)
        if cached is not None:
            if done == 1 and cached.state is State.RELEASING:
                self._remember(dataclasses.replace(cached, release_name=name, updated_at=now))
            else:
                self._cache.pop(item_id, None)
