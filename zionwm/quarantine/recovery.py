"""Bringing the store back to a consistent state after a crash, from where each unfinished
item's file is (`store.recovery_action` decides; this module looks at the files and applies
it), and the file operations recovery shares with the service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

from zionwm import paths
from zionwm.quarantine.machine import destination
from zionwm.quarantine.release import is_released_copy, open_dir_chain
from zionwm.quarantine.store import (
    PENDING_STATES,
    Item,
    Kind,
    RecoveryAction,
    State,
    Store,
    StoreError,
    recovery_action,
)

log = logging.getLogger(__name__)


def finish_delete(store: Store, item: Item) -> Item:
    then = State(item.then_state) if item.then_state else State.DELETED
    return store.transition(item.id, then, content=False)


def in_store(store: Store, item: Item) -> bool:
    try:
        st = os.stat(str(item.id), dir_fd=store.items_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == (item.dev, item.ino)


def at_destination(item: Item) -> bool:
    if not item.release_name:
        return False
    dest = destination(item)
    try:
        dir_fd = open_dir_chain(dest.root, dest.parts, create=False)
    except OSError:
        return False
    try:
        return is_released_copy(dir_fd, item.release_name, item.id, item.sha256)
    finally:
        os.close(dir_fd)


def remove_taken_entry(item: Item) -> None:
    """A take that crashed after its copy was placed: the inbox entry it copied goes,
    if it is still that file (otherwise the rescan would take it a second time)."""
    if item.inbox_name is None or item.src_ino is None:
        return
    inbox = (
        paths.desktop_outbox(item.source)
        if item.kind is Kind.OUTBOX
        else paths.desktop_inbox(item.source)
    )
    try:
        dir_fd = os.open(inbox, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        st = os.stat(item.inbox_name, dir_fd=dir_fd, follow_symlinks=False)
        if (st.st_dev, st.st_ino) == (item.src_dev, item.src_ino):
            os.unlink(item.inbox_name, dir_fd=dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def unlink_content(store: Store, item_id: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(str(item_id), dir_fd=store.items_fd)


def resolve(store: Store, item: Item) -> None:
    """Bring one unfinished item to a consistent state from where its file is."""
    action = recovery_action(item.state, in_store(store, item), at_destination(item))
    if action is RecoveryAction.KEEP:
        return
    log.info("recovery: item %d (%s) -> %s", item.id, item.state.value, action.value)
    if action is RecoveryAction.DROP:
        store.drop_taking(item.id)
    elif action is RecoveryAction.TO_RECEIVED:
        if item.state is State.TAKING:
            remove_taken_entry(item)
        store.transition(item.id, State.RECEIVED, content=True)
    elif action is RecoveryAction.TO_HELD:
        store.transition(item.id, State.HELD)
    elif action is RecoveryAction.TO_RELEASED:
        unlink_content(store, item.id)  # a copy-release that crashed before its unlink
        store.transition(item.id, State.RELEASED, content=False, released_at=time.time())
    elif action is RecoveryAction.TO_DELETED:
        unlink_content(store, item.id)
        finish_delete(store, item)
    elif action is RecoveryAction.TO_LOST:
        store.transition(
            item.id,
            State.REJECTED,
            content=False,
            reason=f"content missing at recovery (was {item.state.value})",
        )


def recover(store: Store) -> None:
    for item in store.list(PENDING_STATES | {State.DELETING}):
        try:
            resolve(store, item)
        except (OSError, StoreError) as e:  # one bad record must not stop the service
            log.error("recovery of item %d failed: %s", item.id, e)
    # Content in items/ that no record claims (never expected): reported, not touched.
    known = {str(i.id) for i in store.list() if i.content}
    for name in os.listdir(store.items_fd):
        if name not in known:
            log.warning("quarantine store: %r has no record; left in place", name)
