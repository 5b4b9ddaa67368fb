"""The quarantine service's control requests: what each one does to the items (list, show,
release, delete, rescan, convert, send, subscribe, status, reload), and the arrival of a
safe copy. The socket I/O is control.py's; the pipeline these requests act on is the
service's, reached through the small `Pipeline` interface below.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

from zionwm import paths
from zionwm.quarantine.control import Conn
from zionwm.quarantine.inbox import take_copy
from zionwm.quarantine.jobs import ConvertResult, convert_job, effective_audit, engines_now
from zionwm.quarantine.machine import SAFE_COPY, release_refusal
from zionwm.quarantine.policy import ServiceConfig
from zionwm.quarantine.report import Verdict
from zionwm.quarantine.store import PENDING_STATES, Item, Kind, State, Store, StoreError

log = logging.getLogger(__name__)


class Pipeline(Protocol):
    """What the requests need of the service."""

    store: Store
    config: ServiceConfig
    audits: Any  # zygote.ZygotePool: stats() and versions()

    def antivirus(self) -> str: ...
    def emit(self, event: str, item: Item) -> None: ...
    def enqueue(self, item_id: int) -> None: ...
    def dequeue(self, item_id: int) -> None: ...
    def pump(self) -> None: ...
    def submit(self, fn: Callable[..., Any], *args: Any) -> None: ...
    def release(self, item_id: int, forced: bool = False) -> Item: ...
    def unlink_content(self, item_id: int) -> None: ...
    def finish_delete(self, item: Item) -> Item: ...
    def reload(self) -> None: ...


def summary(item: Item) -> dict[str, Any]:
    d = item.to_json()
    d.pop("report", None)
    return d


class Commands:
    def __init__(self, svc: Pipeline) -> None:
        self.svc = svc

    def handle(self, req: dict[str, Any], conn: Conn | None = None) -> dict[str, Any]:
        """One control request -> its reply. Errors the user should see come back as text."""
        cmd = req.get("cmd")
        try:
            if cmd == "ping":
                return {"ok": True, "pid": os.getpid(), "counts": self.svc.store.counts()}
            if cmd == "status":
                return {"ok": True, "pid": os.getpid(), **self.audit_status()}
            if cmd == "list":
                every = bool(req.get("all", False))
                items = self.svc.store.list()
                if not every:
                    items = [
                        i
                        for i in items
                        if i.state in PENDING_STATES or (i.state is State.REJECTED and i.content)
                    ]
                return {
                    "ok": True,
                    "items": [summary(i) for i in items],
                    "counts": self.svc.store.counts(),
                }
            if cmd == "show":
                return {"ok": True, "item": self.svc.store.get(int(req["id"])).to_json()}
            if cmd == "release":
                return self._cmd_release(int(req["id"]), bool(req.get("i_understand")))
            if cmd == "delete":
                return self._cmd_delete(int(req["id"]))
            if cmd == "rescan":
                return self._cmd_rescan(int(req["id"]))
            if cmd == "convert":
                return self.convert(int(req["id"]))
            if cmd == "send":
                return self._cmd_send(
                    str(req["from"]), str(req["to"]), [str(p) for p in req["paths"]]
                )
            if cmd == "subscribe":
                if conn is None:
                    return {"ok": False, "error": "subscribe needs a connection"}
                conn.subscriber = True
                reply: dict[str, Any] = {"ok": True, "counts": self.svc.store.counts()}
                if req.get("items"):
                    # what a subscriber that was away may not have been told: the items
                    # held or kept now (every later change comes as an event)
                    reply["items"] = [
                        summary(i)
                        for i in self.svc.store.list(frozenset({State.HELD, State.REJECTED}))
                        if i.state is State.HELD or i.content
                    ]
                return reply
            if cmd == "reload":
                self.svc.reload()
                return {"ok": True}
        except StoreError as e:
            return {"ok": False, "error": str(e)}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def audit_status(self) -> dict[str, Any]:
        """Is antivirus scanning active, how old are its signatures, what the audit side
        holds (for `zionctl status`)."""
        audit = effective_audit(self.svc.config.audit)
        return {
            "antivirus": self.svc.antivirus(),
            "engines": engines_now(audit),
            "audit_sandboxes": self.svc.audits.stats(),
            "scanners": self.svc.audits.versions(),
        }

    def _cmd_release(self, item_id: int, i_understand: bool) -> dict[str, Any]:
        item = self.svc.store.get(item_id)
        refusal = release_refusal(item, i_understand)
        if refusal is not None:
            return {"ok": False, "error": f"item {item_id}: {refusal}"}
        forced = item.verdict is not Verdict.CLEAN
        item = self.svc.release(item_id, forced=forced)
        if item.state is not State.RELEASED:
            return {"ok": False, "error": f"item {item_id}: {item.reason}", "item": item.to_json()}
        return {"ok": True, "item": item.to_json()}

    def _cmd_delete(self, item_id: int) -> dict[str, Any]:
        item = self.svc.store.get(item_id)
        if item.state is State.AUDITING:
            return {"ok": False, "error": f"item {item_id} is being audited; try again"}
        if not item.content:
            return {"ok": False, "error": f"item {item_id} has no content in quarantine"}
        self.svc.dequeue(item_id)
        item = self.svc.store.transition(item_id, State.DELETING, then_state=None)
        self.svc.unlink_content(item_id)
        item = self.svc.finish_delete(item)
        self.svc.emit("deleted", item)
        return {"ok": True, "item": item.to_json()}

    def _cmd_rescan(self, item_id: int) -> dict[str, Any]:
        item = self.svc.store.get(item_id)
        if item.state not in (State.HELD, State.REJECTED) or not item.content:
            return {
                "ok": False,
                "error": f"item {item_id} is {item.state.value}"
                f"{'' if item.content else ' without content'}: nothing to rescan",
            }
        item = self.svc.store.transition(
            item_id,
            State.RECEIVED,
            verdict=None,
            report=None,
            hold_until=None,
            reason="rescan requested",
        )
        self.svc.enqueue(item_id)
        self.svc.pump()
        return {"ok": True, "item": item.to_json()}

    def convert(self, item_id: int) -> dict[str, Any]:
        """Start making a safe copy of an item (see convert.py); it arrives as a new item."""
        from zionwm.quarantine.convert import kind_of  # noqa: PLC0415

        item = self.svc.store.get(item_id)
        if item.state not in (State.HELD, State.REJECTED) or not item.content:
            return {
                "ok": False,
                "error": f"item {item_id} is {item.state.value}: nothing to convert",
            }
        try:
            fd = os.open(
                str(item_id),
                os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                dir_fd=self.svc.store.items_fd,
            )
        except OSError as e:
            return {"ok": False, "error": f"item {item_id}: {e.strerror}"}
        if kind_of(os.pread(fd, 8192, 0)) is None:
            os.close(fd)
            return {
                "ok": False,
                "error": f"item {item_id}: only PDFs, images and office documents can be converted",
            }
        self.svc.submit(convert_job, item_id, fd)
        return {"ok": True, "converting": item_id}

    def on_converted(self, res: ConvertResult) -> None:
        from zionwm.quarantine.convert import safe_name  # noqa: PLC0415

        item = self.svc.store.get(res.item_id)
        if res.error is not None or res.pdf is None:
            log.warning("item %d: no safe copy: %s", item.id, res.error)
            self.svc.emit("convert-failed", dataclasses.replace(item, reason=res.error))
            return
        out = os.open(
            ".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=self.svc.store.items_fd
        )
        try:
            view = memoryview(res.pdf)
            while view:
                view = view[os.write(out, view) :]
            if item.origin_url:
                os.setxattr(out, "user.xdg.origin.url", item.origin_url.encode())
            st = os.fstat(out)
            new_id = self.svc.store.begin_take(
                kind=Kind.SEND,
                source=item.source,
                dest=item.dest,
                subdir=item.subdir,
                name=safe_name(item.name),
                size=st.st_size,
                dev=st.st_dev,
                ino=st.st_ino,
                inbox_name=None,
                origin_url=item.origin_url,
                referrer_url=item.referrer_url,
            )
            os.link(f"/proc/self/fd/{out}", str(new_id), dst_dir_fd=self.svc.store.items_fd)
        finally:
            os.close(out)
        copy = self.svc.store.transition(
            new_id,
            State.RECEIVED,
            content=True,
            reason=f"{SAFE_COPY} {item.id} ({item.name}): {res.pages} pages rendered to "
            f"pixels and rebuilt as a plain PDF in {res.seconds:.1f} s; the original stays "
            "in quarantine",
        )
        log.info("item %d: safe copy is item %d (%d pages)", item.id, new_id, res.pages)
        self.svc.emit("received", copy)
        self.svc.enqueue(new_id)

    def _cmd_send(self, source: str, dest: str, rels: list[str]) -> dict[str, Any]:
        for name in (source, dest):
            if name not in self.svc.config.desktops:
                return {"ok": False, "error": f"unknown desktop {name!r}"}
        if source == dest:
            return {"ok": False, "error": "source and destination are the same desktop"}
        results: list[dict[str, Any]] = []
        ok = True
        for rel in rels:
            try:
                res = take_copy(
                    self.svc.store,
                    source=source,
                    home=paths.desktop_home(source),
                    rel=rel,
                    dest=dest,
                    subdir=("home", "Incoming", source),
                )
            except OSError as e:  # UnsafeEntry included
                ok = False
                results.append({"path": rel, "ok": False, "error": e.strerror or str(e)})
                continue
            assert res.item_id is not None
            item = self.svc.store.get(res.item_id)
            self.svc.emit("received", item)
            self.svc.enqueue(item.id)
            results.append({"path": rel, "ok": True, "id": item.id})
        self.svc.pump()
        return {
            "ok": ok,
            "results": results,
            **({} if ok else {"error": "some files were refused"}),
        }
