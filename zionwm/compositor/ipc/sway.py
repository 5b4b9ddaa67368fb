"""The i3/sway IPC protocol on `paths.sway_ipc_socket()`, exported to host tools as `SWAYSOCK`,
so that `swaymsg`, the `i3ipc` library and status bars see desktops as workspaces: the wire
format (`i3-ipc` magic, u32 length, u32 type, native endian), requests, events, and sway's
command strings translated into zionwm's command language.
"""

from __future__ import annotations

import contextlib
import json
import logging
import struct
from collections.abc import Sequence
from typing import Any

from zionwm import __version__, paths
from zionwm.compositor.ipc.interfaces import Deferred
from zionwm.compositor.ipc.sway_tree import (
    WORKSPACE_ID_BASE,
    Layout,
    base_node,
    i3_int,
    i3_rect,
    window_node,
)
from zionwm.compositor.ipc.transport import MAX_REQUEST, Client, ServerBase, dumps

log = logging.getLogger(__name__)

I3_MAGIC = b"i3-ipc"
I3_HEADER = struct.Struct("=6sII")

RUN_COMMAND = 0
GET_WORKSPACES = 1
SUBSCRIBE = 2
GET_OUTPUTS = 3
GET_TREE = 4
GET_MARKS = 5
GET_BAR_CONFIG = 6
GET_VERSION = 7
GET_BINDING_MODES = 8
GET_CONFIG = 9
SEND_TICK = 10
SYNC = 11
GET_BINDING_STATE = 12
GET_INPUTS = 100
GET_SEATS = 101

EVENT_BIT = 0x80000000
I3_EVENTS = {
    "workspace": 0,
    "output": 1,
    "mode": 2,
    "window": 3,
    "barconfig_update": 4,
    "binding": 5,
    "shutdown": 6,
    "tick": 7,
    "bar_state_update": 0x14,
    "input": 0x15,
}


# sway answers a successful SUBSCRIBE with this literal text, and some clients (waybar 0.9)
# compare the reply byte for byte instead of parsing it
SUBSCRIBE_OK = b'{"success": true}'


def i3_frame(msg_type: int, payload: object) -> bytes:
    if msg_type == SUBSCRIBE and payload == {"success": True}:
        body = SUBSCRIBE_OK
    else:
        body = dumps(payload).encode()
    return I3_HEADER.pack(I3_MAGIC, len(body), msg_type) + body


def split_sway_commands(text: str) -> list[list[str]]:
    """Split a sway command string into commands (at `;` and `,` outside quotes) and words.

    Quotes group words as in sway; a leading `[criteria]` block stays one word."""
    commands: list[list[str]] = []
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
                word.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
            else:
                word.append(ch)
        elif ch in "\"'":
            quote = ch
            in_word = True
        elif ch == "[" and not in_word:
            end = text.find("]", i)
            end = len(text) - 1 if end < 0 else end
            word.append(text[i : end + 1])
            in_word = True
            i = end
        elif ch.isspace() or ch in ";,":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            if ch in ";," and words:
                commands.append(words)
                words = []
        else:
            word.append(ch)
            in_word = True
        i += 1
    if in_word:
        words.append("".join(word))
    if words:
        commands.append(words)
    return commands


def resolve_workspace_command(
    args: Sequence[str], desktops: Sequence[dict[str, Any]]
) -> list[str] | str:
    """Translate the arguments of sway's `workspace` command into zionwm argv.

    Returns the argv to run (possibly empty: already there) or an error message."""
    words = [a for a in args if a not in ("--no-auto-back-and-forth",)]
    names = [str(d.get("name")) for d in desktops]
    active = next((str(d.get("name")) for d in desktops if d.get("active")), None)
    if not words:
        return "workspace: expected a desktop name"
    if words[0] == "number":
        if len(words) < 2:
            return "workspace number: expected a number"
        digits = ""
        for ch in words[1]:
            if not ch.isdigit():
                break
            digits += ch
        if not digits or not 1 <= int(digits) <= len(names):
            return f"workspace number: no desktop number {words[1]!r} (there are {len(names)})"
        target = names[int(digits) - 1]
    elif words[0] == "back_and_forth" and len(words) == 1:
        return ["switch-prev"]
    elif words[0] in ("next", "prev", "next_on_output", "prev_on_output") and len(words) == 1:
        if active is None or active not in names:
            return f"workspace {words[0]}: no active desktop"
        step = 1 if words[0].startswith("next") else -1
        target = names[(names.index(active) + step) % len(names)]
    else:
        name = " ".join(words)
        if name in names:
            target = name
        elif name.isdigit() and 1 <= int(name) <= len(names):
            # Old status bars switch with `workspace "<num>"`.
            target = names[int(name) - 1]
        else:
            return (
                f"workspace: no desktop named {name!r}; zionwm desktops come from its config "
                f"({', '.join(names)})"
            )
    if target == active:
        return []
    return ["switch", target]


class SwayIpcServer(ServerBase):
    """The i3/sway IPC protocol on `paths.sway_ipc_socket()`: desktops appear as workspaces."""

    kind = "sway-ipc"
    default_path = staticmethod(paths.sway_ipc_socket)
    # desktops last announced, for workspace init/empty events (only ever reassigned)
    _known_desktops: list[str] | None = None

    def start(self) -> None:
        super().start()
        with contextlib.suppress(Exception):
            self._known_desktops = [str(d.get("name")) for d in self.controller.desktops()]

    def close(self) -> None:
        self._broadcast("shutdown", {"change": "exit"})
        for client in list(self.clients):
            # Best effort: the shutdown event goes out if the socket buffer has room now.
            client.flush()
        super().close()

    def layout(self) -> Layout:
        c = self.controller
        return Layout(c.desktops(), c.windows(), c.outputs())

    # Events from the compositor, translated to i3 events.

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        """Translate a zionwm event into i3 events for the subscribers. Never raises: the
        compositor calls this from its handlers, and a failing controller query (say, in
        the middle of a teardown) must not become the handler's failure."""
        try:
            self._emit(event, payload)
        except Exception:
            log.exception("sway-ipc: cannot deliver event %r", event)

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        if event == "switch":
            old, new = _name(payload.get("old")), _name(payload.get("new"))
            if self._has_subscribers("workspace"):
                layout = self.layout()
                self._broadcast(
                    "workspace",
                    {
                        "change": "focus",
                        "current": layout.workspace_named(new),
                        "old": layout.workspace_named(old),
                    },
                )
        elif event in ("map", "unmap", "focus", "title"):
            change = {"map": "new", "unmap": "close"}.get(event, event)
            if self._has_subscribers("window"):
                self._broadcast("window", {"change": change, "container": window_node(payload)})
        elif event in ("desktops", "config"):
            self._desktops_changed(event)

    def _desktops_changed(self, event: str) -> None:
        layout = self.layout() if self._has_subscribers("workspace") else None
        names = [
            str(d.get("name")) for d in (layout.desktops if layout else self.controller.desktops())
        ]
        known = self._known_desktops or []
        self._known_desktops = names
        if layout is None:
            return
        for name in names:
            if name not in known:
                current = layout.workspace_named(name)
                self._broadcast("workspace", {"change": "init", "current": current, "old": None})
        for name in known:
            if name not in names:
                gone = base_node(WORKSPACE_ID_BASE, "workspace", name, i3_rect())
                self._broadcast("workspace", {"change": "empty", "current": gone, "old": None})
        if event == "config":
            self._broadcast("workspace", {"change": "reload", "current": None, "old": None})

    def _has_subscribers(self, i3_event: str) -> bool:
        return any(i3_event in c.subscriptions for c in self.clients)

    def _broadcast(self, i3_event: str, payload: dict[str, Any]) -> None:
        targets = [c for c in self.clients if i3_event in c.subscriptions]
        if targets:
            frame = i3_frame(EVENT_BIT | I3_EVENTS[i3_event], payload)
            for client in targets:
                client.send(frame)

    # Requests.

    def handle_input(self, client: Client) -> None:
        buf = client.inbuf
        while not client.closed and not client.closing and len(buf) >= I3_HEADER.size:
            magic, length, msg_type = I3_HEADER.unpack_from(buf)
            if magic != I3_MAGIC:
                log.warning("sway-ipc client fd %d: bad magic; disconnecting it", client.fd)
                client.close()
                return
            if length > MAX_REQUEST:
                log.warning("sway-ipc client fd %d: %d-byte payload refused", client.fd, length)
                client.close()
                return
            end = I3_HEADER.size + length
            if len(buf) < end:
                return
            payload = bytes(buf[I3_HEADER.size : end])
            del buf[:end]
            try:
                text = payload.decode()
                reply = self._handle(client, msg_type, text)
            except UnicodeDecodeError:
                reply = {"success": False, "error": "payload is not UTF-8"}
            except Exception as exc:
                log.exception("sway-ipc request type %d failed", msg_type)
                reply = {"success": False, "error": f"internal error: {exc}"}
            client.send(i3_frame(msg_type, reply))
            if msg_type == SUBSCRIBE and "tick" in client.subscriptions and _ok(reply):
                client.send(i3_frame(EVENT_BIT | I3_EVENTS["tick"], {"first": True, "payload": ""}))

    def _handle(self, client: Client, msg_type: int, text: str) -> object:
        if msg_type == RUN_COMMAND:
            return self.run_command(text)
        if msg_type == GET_WORKSPACES:
            return self.layout().workspaces()
        if msg_type == SUBSCRIBE:
            return self._subscribe(client, text)
        if msg_type == GET_OUTPUTS:
            return self.layout().i3_outputs()
        if msg_type == GET_TREE:
            return self.layout().tree()
        if msg_type in (GET_MARKS, GET_INPUTS, GET_SEATS):
            return []
        if msg_type == GET_BAR_CONFIG:
            if text.strip():
                return {"success": False, "error": f"no bar with id {text.strip()!r}"}
            return []
        if msg_type == GET_VERSION:
            return self._version()
        if msg_type == GET_BINDING_MODES:
            return ["default"]
        if msg_type == GET_BINDING_STATE:
            return {"name": "default"}
        if msg_type == GET_CONFIG:
            return {"config": "# zionwm is configured in Python; see `zionctl status`\n"}
        if msg_type == SEND_TICK:
            self._broadcast("tick", {"first": False, "payload": text})
            return {"success": True}
        if msg_type == SYNC:
            return {"success": False}
        return {"success": False, "error": f"unsupported message type {msg_type}"}

    def _version(self) -> dict[str, Any]:
        parts = [i3_int(p) for p in [*__version__.split("."), "0", "0", "0"][:3]]
        return {
            "human_readable": f"zionwm {__version__} (sway IPC compatible)",
            "variant": "zionwm",
            "major": parts[0],
            "minor": parts[1],
            "patch": parts[2],
            "loaded_config_file_name": "",
        }

    def _subscribe(self, client: Client, text: str) -> dict[str, Any]:
        try:
            events = json.loads(text)
        except json.JSONDecodeError:
            return {"success": False, "error": "SUBSCRIBE payload is not JSON"}
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            return {"success": False, "error": "SUBSCRIBE payload is a list of event names"}
        unknown = [e for e in events if e not in I3_EVENTS]
        if unknown:
            return {"success": False, "error": f"unknown events: {', '.join(unknown)}"}
        client.subscriptions.update(events)
        return {"success": True}

    def run_command(self, text: str) -> list[dict[str, Any]]:
        """Run a sway command string; one result per command, as sway replies."""
        results: list[dict[str, Any]] = []
        commands = split_sway_commands(text)
        if not commands:
            return [{"success": False, "parse_error": True, "error": "empty command"}]
        for words in commands:
            results.append(self._run_one(words))
        return results

    def _run_one(self, words: list[str]) -> dict[str, Any]:
        if words[0].startswith("["):
            return _fail("criteria ([...]) are not supported by zionwm")
        if words[0] == "nop":
            return {"success": True}
        if words[0] == "workspace":
            resolved = resolve_workspace_command(words[1:], self.controller.desktops())
            if isinstance(resolved, str):
                return _fail(resolved)
            if not resolved:
                return {"success": True}
            argv = resolved
        elif words[:3] == ["move", "workspace", "to"] or words[:2] == ["move", "workspace"]:
            return self._move_workspace(words)
        else:
            argv = words
        outcome = self.controller.run_command(argv)
        if isinstance(outcome, Deferred):
            # as sway's `exec`: queued (a launch waiting for its desktop's network); a
            # failure is notified when it comes
            return {"success": True}
        if outcome.ok:
            return {"success": True}
        return _fail(outcome.message or "command failed")

    def _move_workspace(self, words: list[str]) -> dict[str, Any]:
        # Status bars ask for this with persistent workspaces. A desktop's output is the
        # compositor's decision, so only the no-op case succeeds.
        target = words[-1]
        layout = self.layout()
        active = next((d for d in layout.desktops if d.get("active")), None)
        out = layout.output_of(active) if active else None
        if out is not None and out.get("name") == target:
            return {"success": True}
        return _fail("moving desktops between outputs is not supported")


def _fail(message: str) -> dict[str, Any]:
    return {"success": False, "parse_error": False, "error": message}


def _ok(reply: object) -> bool:
    return isinstance(reply, dict) and bool(reply.get("success"))


def _name(value: object) -> str | None:
    if isinstance(value, dict):
        value = value.get("name")
    return None if value is None else str(value)
