"""zionwm's portal backend on one desktop's bus: org.freedesktop.portal.Desktop at
/org/freedesktop/portal/desktop, served on zionwm's own connection to that desktop's daemon.

There is no xdg-desktop-portal in between. That program exists to find out which sandboxed
app is asking (from its Flatpak metadata) and to hand the request to a desktop environment's
backend; here the asking desktop is the bus itself (one bus per desktop, and zionwm's
connection to it was made for that desktop), and zionwm is the backend. So zionwm owns the
portal name directly, no program can own it (the proxy only lets programs talk to it), and
nothing a program sends can make a request count as another desktop's.

What each interface does (docs/desktop-bus.md):

- Settings: the user's appearance settings from zionwm's config (colour scheme, accent,
  fonts), read-only;
- OpenURI: http(s) links go where `open_links_in` says, exactly as `xdg-open`; files go
  through the audited send path to where `open_files_in` says;
- Notification: into the same per-desktop notification path as org.freedesktop.Notifications;
- FileChooser: a chooser drawn by a trusted host program, showing only the desktop's own
  folders (the compositor starts it; see desktopbus/chooser.py and files.py);
- Screenshot: the desktop's own windows, drawn alone by the compositor.

The slow ones (FileChooser, Screenshot) answer with a request object path at once and send
`org.freedesktop.portal.Request.Response` on it when done, to the caller only. This module
parses and answers; what the compositor must do is returned as an event.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jeepney import DBusAddress, HeaderFields, Message, MessageType, new_signal
from jeepney.wrappers import new_error, new_method_return

from . import policy
from .events import (
    ChooseRequest,
    CloseRequest,
    OpenFileRequest,
    OpenRequest,
    Refused,
    ScreenshotRequest,
)

PORTAL_NAME = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"
REQUEST_PREFIX = PORTAL_PATH + "/request/"
REQUEST_IFACE = "org.freedesktop.portal.Request"
FILECHOOSER = "org.freedesktop.portal.FileChooser"
OPENURI = "org.freedesktop.portal.OpenURI"
SETTINGS = "org.freedesktop.portal.Settings"
NOTIFICATION = "org.freedesktop.portal.Notification"
SCREENSHOT = "org.freedesktop.portal.Screenshot"
REGISTRY = "org.freedesktop.host.portal.Registry"
PROPERTIES = "org.freedesktop.DBus.Properties"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"

VERSIONS = {FILECHOOSER: 3, OPENURI: 4, SETTINGS: 2, NOTIFICATION: 1, SCREENSHOT: 2}

ERR_NOT_FOUND = "org.freedesktop.portal.Error.NotFound"
ERR_INVALID_ARGUMENT = "org.freedesktop.portal.Error.InvalidArgument"
ERR_NOT_ALLOWED = "org.freedesktop.portal.Error.NotAllowed"
ERR_UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"
ERR_UNKNOWN_INTERFACE = "org.freedesktop.DBus.Error.UnknownInterface"
ERR_UNKNOWN_PROPERTY = "org.freedesktop.DBus.Error.UnknownProperty"

# Response codes of org.freedesktop.portal.Request.Response
SUCCESS, CANCELLED, FAILED = 0, 1, 2

MAX_PENDING = 16  # requests of one desktop waiting for an answer
_TOKEN = re.compile(r"[A-Za-z0-9_]{1,64}")
TITLE_MAX = 80


@dataclass(frozen=True)
class Method:
    """A method of the portal's table: its in and out signatures (D-Bus signature strings).
    A call is dispatched only when its interface, member and signature are in the table."""

    name: str
    args: str
    returns: str = ""


@dataclass(frozen=True)
class Signal:
    name: str
    args: str


SETTING_CHANGED = Signal("SettingChanged", "ssv")

# What the portal serves: the one table that both dispatch and Introspect read.
INTERFACES: dict[str, tuple[Method | Signal, ...]] = {
    FILECHOOSER: (Method("OpenFile", "ssa{sv}", "o"), Method("SaveFile", "ssa{sv}", "o")),
    OPENURI: (
        Method("OpenURI", "ssa{sv}", "o"),
        Method("OpenFile", "sha{sv}", "o"),
        Method("OpenDirectory", "sha{sv}", "o"),
    ),
    SETTINGS: (
        Method("ReadAll", "as", "a{sa{sv}}"),
        Method("Read", "ss", "v"),
        Method("ReadOne", "ss", "v"),
        SETTING_CHANGED,
    ),
    NOTIFICATION: (Method("AddNotification", "sa{sv}"), Method("RemoveNotification", "s")),
    SCREENSHOT: (Method("Screenshot", "sa{sv}", "o"),),
}
METHODS = {
    (iface, m.name): m
    for iface, items in INTERFACES.items()
    for m in items
    if isinstance(m, Method)
}


def single_types(signature: str) -> list[str]:
    """A D-Bus signature cut into its complete types: "ssa{sv}" -> ["s", "s", "a{sv}"]."""
    out: list[str] = []
    i = 0
    while i < len(signature):
        start, depth = i, 0
        while True:
            c = signature[i]
            i += 1
            if c in "({":
                depth += 1
            elif c in ")}":
                depth -= 1
            if depth == 0 and c != "a":
                break
        out.append(signature[start:i])
    return out


def introspection() -> str:
    """The Introspect answer, written from INTERFACES and VERSIONS."""
    lines = [
        '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"',
        ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">',
        "<node>",
    ]
    for iface, items in INTERFACES.items():
        lines.append(f'  <interface name="{iface}">')
        for item in items:
            if isinstance(item, Method):
                args = [f'<arg type="{t}" direction="in"/>' for t in single_types(item.args)]
                args += [f'<arg type="{t}" direction="out"/>' for t in single_types(item.returns)]
                lines.append(f'    <method name="{item.name}">{"".join(args)}</method>')
            else:
                args = [f'<arg type="{t}"/>' for t in single_types(item.args)]
                lines.append(f'    <signal name="{item.name}">{"".join(args)}</signal>')
        if iface in VERSIONS:
            lines.append('    <property name="version" type="u" access="read"/>')
        lines.append("  </interface>")
    lines.append("</node>")
    return "\n".join(lines) + "\n"


INTROSPECTION = introspection()


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class Appearance:
    """The user's preferences as the config gives them (Settings of zionwm's config)."""

    color_scheme: str = "default"  # "default" | "dark" | "light"
    accent_colour: str | None = None  # "#rrggbb"
    font: str = ""  # e.g. "Cantarell 11"; "" = the toolkit's own
    monospace_font: str = ""
    document_font: str = ""


_SCHEME_CODE = {"default": 0, "dark": 1, "light": 2}
_GNOME_SCHEME = {"default": "default", "dark": "prefer-dark", "light": "prefer-light"}


def settings_values(a: Appearance) -> dict[str, dict[str, tuple[str, Any]]]:
    """namespace -> key -> (D-Bus signature, value), as Settings.ReadAll gives them."""
    appearance: dict[str, tuple[str, Any]] = {
        "color-scheme": ("u", _SCHEME_CODE.get(a.color_scheme, 0)),
        "contrast": ("u", 0),
    }
    if a.accent_colour:
        c = a.accent_colour.lstrip("#")
        appearance["accent-color"] = (
            "(ddd)",
            tuple(round(int(c[i : i + 2], 16) / 255, 4) for i in (0, 2, 4)),
        )
    gnome: dict[str, tuple[str, Any]] = {
        "color-scheme": ("s", _GNOME_SCHEME.get(a.color_scheme, "default"))
    }
    for key, value in (
        ("font-name", a.font),
        ("monospace-font-name", a.monospace_font),
        ("document-font-name", a.document_font),
    ):
        if value:
            gnome[key] = ("s", value)
    return {"org.freedesktop.appearance": appearance, "org.gnome.desktop.interface": gnome}


def _ns_matches(namespace: str, patterns: list[str]) -> bool:
    if not patterns:
        return True
    for p in patterns:
        if p in ("", namespace):
            return True
        if p.endswith("*") and namespace.startswith(p[:-1]):
            return True
    return False


# ------------------------------------------- requests waiting (their events are in events.py)


@dataclass
class Pending:
    sender: str
    kind: str
    extra: dict[str, Any] = field(default_factory=dict)


def request_path(sender: str, token: str) -> str:
    return REQUEST_PREFIX + sender.lstrip(":").replace(".", "_") + "/" + token


def _options(body_opts: object) -> dict[str, Any]:
    """a{sv} as jeepney gives it ({key: (signature, value)}) -> {key: value}."""
    if not isinstance(body_opts, dict):
        return {}
    out: dict[str, Any] = {}
    for k, v in body_opts.items():
        if isinstance(v, tuple) and len(v) == 2:
            out[k] = v[1]
    return out


def _path_option(value: object) -> str | None:
    """current_folder / current_file: a NUL-terminated byte array."""
    if isinstance(value, bytes):
        raw = value.split(b"\0", 1)[0]
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return None
    return None


Send = Callable[[Message], None]


class Portal:
    """The portal of one desktop. `send` queues a message on zionwm's connection."""

    def __init__(self, desktop: str, send: Send, appearance: Appearance | None = None) -> None:
        self.desktop = desktop
        self._send = send
        self.appearance = appearance or Appearance()
        self.pending: dict[str, Pending] = {}
        self._counter = 0
        self.calls: dict[str, int] = {}  # "Interface.Member" -> count, for `zionctl status`
        # each screenshot is drawn and encoded by the compositor itself, each file sent starts
        # a copy: a program asks for a few, not a flood
        self.shot_rate = policy.RateLimit(burst=2, per_second=0.5)
        # what it drops is refused to the program, and the user is told how many
        # (`files_dropped`, compositor/desktopbus_link.py)
        self.file_rate = policy.RateLimit(burst=3, per_second=0.5)
        # links, through this portal or org.zionwm.Open (desktopbus/service.py): one budget
        self.link_rate = policy.RateLimit(burst=5, per_second=1.0)

    @property
    def files_dropped(self) -> int:
        """Files this desktop asked to open that the rate limit refused, since it started."""
        return self.file_rate.dropped

    def files_ready(self) -> int:
        """How many files this desktop may hand over at once now (`zionctl status`)."""
        return self.file_rate.available()

    # ---- replies ----

    def _reply(self, msg: Message, signature: str | None, body: tuple[Any, ...]) -> None:
        self._send(new_method_return(msg, signature, body))

    def _error(self, msg: Message, name: str, text: str) -> None:
        self._send(new_error(msg, name, "s", (text,)))

    def respond(self, handle: str, code: int, results: Mapping[str, tuple[str, Any]]) -> None:
        """Send Request.Response for a pending request, to its caller only."""
        p = self.pending.pop(handle, None)
        if p is None:
            return
        sig = new_signal(
            DBusAddress(handle, interface=REQUEST_IFACE),
            "Response",
            "ua{sv}",
            (code, dict(results)),
        )
        sig.header.fields[HeaderFields.destination] = p.sender
        self._send(sig)

    def forget_sender(self, sender: str) -> list[CloseRequest]:
        """The caller left the bus: its requests end unanswered."""
        gone = [h for h, p in self.pending.items() if p.sender == sender]
        for h in gone:
            del self.pending[h]
        return [CloseRequest(self.desktop, h) for h in gone]

    def _new_request(self, msg: Message, opts: dict[str, Any], kind: str) -> str | None:
        """Register a request and answer the call with its handle (None: refused)."""
        sender = msg.header.fields.get(HeaderFields.sender)
        if not isinstance(sender, str) or not sender.startswith(":"):
            self._error(msg, ERR_INVALID_ARGUMENT, "no sender")
            return None
        if len(self.pending) >= MAX_PENDING:
            self._error(msg, ERR_NOT_ALLOWED, "too many requests waiting")
            return None
        token = opts.get("handle_token")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            self._counter += 1
            token = f"zionwm{self._counter}"
        handle = request_path(sender, token)
        if handle in self.pending:
            self._error(msg, ERR_INVALID_ARGUMENT, "handle_token already in use")
            return None
        self.pending[handle] = Pending(sender, kind)
        self._reply(msg, "o", (handle,))  # every method that starts a request returns "o"
        return handle

    # ---- dispatch ----

    def handle(self, msg: Message, fds: list[int] | None = None) -> Any:
        """Answer one method call addressed to the portal; return what the compositor must
        do (an event of this module, a policy.Notice, an events.OpenRequest) or None."""
        fields = msg.header.fields
        path = fields.get(HeaderFields.path)
        iface = fields.get(HeaderFields.interface)
        member = fields.get(HeaderFields.member)
        sig = fields.get(HeaderFields.signature, "")
        if isinstance(path, str) and path.startswith(REQUEST_PREFIX):
            return self._request_object(msg, path, iface, member)
        key = f"{str(iface).rsplit('.', 1)[-1]}.{member}"
        if key in self.calls or len(self.calls) < 64:
            self.calls[key] = self.calls.get(key, 0) + 1
        if path != PORTAL_PATH:
            self._error(msg, ERR_UNKNOWN_METHOD, f"no object at {path}")
            return None
        if iface == INTROSPECTABLE and member == "Introspect":
            self._reply(msg, "s", (INTROSPECTION,))
            return None
        if iface == PROPERTIES:
            self._properties(msg, member, sig)
            return None
        if iface == REGISTRY and member == "Register" and sig == "sa{sv}":
            # a host program naming its app id (Chromium does); the desktop is what counts
            self._reply(msg, None, ())
            return None
        method = METHODS.get((str(iface), str(member)))
        if method is None or sig != method.args:
            self._error(msg, ERR_UNKNOWN_METHOD, f"no method {iface}.{member}({sig})")
            return None
        # from here on, the call is one of the table's, with its signature
        if iface == SETTINGS:
            self._settings(msg, method)
            return None
        if iface == NOTIFICATION:
            return self._notification(msg, method)
        if iface == OPENURI:
            return self._openuri(msg, method, fds or [])
        if iface == FILECHOOSER:
            return self._filechooser(msg, method)
        return self._screenshot(msg, method)

    def _request_object(self, msg: Message, path: str, iface: Any, member: Any) -> Any:
        p = self.pending.get(path)
        sender = msg.header.fields.get(HeaderFields.sender)
        if p is None or p.sender != sender:
            self._error(msg, ERR_UNKNOWN_METHOD, f"no request at {path}")
            return None
        if member == "Close" and iface in (None, REQUEST_IFACE):
            del self.pending[path]
            self._reply(msg, None, ())
            return CloseRequest(self.desktop, path)
        self._error(msg, ERR_UNKNOWN_METHOD, f"no method {member}")
        return None

    def _properties(self, msg: Message, member: Any, sig: str) -> None:
        if member == "Get" and sig == "ss":
            iface, prop = msg.body
            if iface in VERSIONS and prop == "version":
                self._reply(msg, "v", (("u", VERSIONS[iface]),))
            else:
                self._error(msg, ERR_UNKNOWN_PROPERTY, f"no property {iface}.{prop}")
        elif member == "GetAll" and sig == "s":
            (iface,) = msg.body
            props = {"version": ("u", VERSIONS[iface])} if iface in VERSIONS else {}
            self._reply(msg, "a{sv}", (props,))
        elif member == "Set":
            self._error(msg, ERR_NOT_ALLOWED, "read-only")
        else:
            self._error(msg, ERR_UNKNOWN_METHOD, f"no method {member}")

    def _settings(self, msg: Message, method: Method) -> None:
        values = settings_values(self.appearance)
        if method.name == "ReadAll":
            (patterns,) = msg.body
            pats = [p for p in patterns if isinstance(p, str)]
            out = {ns: kv for ns, kv in values.items() if _ns_matches(ns, pats)}
            self._reply(msg, method.returns, (out,))
            return
        ns, key = msg.body  # Read, ReadOne
        found = values.get(ns, {}).get(key)
        if found is None:
            self._error(msg, ERR_NOT_FOUND, f"no setting {ns} {key}")
        elif method.name == "ReadOne":
            self._reply(msg, method.returns, (found,))
        else:  # the old Read wraps the value in one more variant
            self._reply(msg, method.returns, (("v", found),))

    def _notification(self, msg: Message, method: Method) -> Any:
        if method.name == "RemoveNotification":
            # shown notices expire by themselves; nothing to take back
            self._reply(msg, None, ())
            return None
        _id, raw = msg.body
        opts = _options(raw)
        self._reply(msg, None, ())
        urgent = opts.get("priority") == "urgent"
        hints = {"urgency": ("y", 2)} if urgent else {}
        return policy.make_notice(
            self.desktop, "", opts.get("title", ""), opts.get("body", ""), hints
        )

    def _openuri(self, msg: Message, method: Method, fds: list[int]) -> Any:
        from .files import from_uri  # noqa: PLC0415

        if method.name == "OpenURI":
            _parent, uri, raw = msg.body
            path = from_uri(uri) if isinstance(uri, str) else None
            if path is not None:
                handle = self._new_request(msg, _options(raw), "open-file")
                if handle is None:
                    return None
                return OpenFileRequest(self.desktop, self._sender(msg), handle, path)
            try:
                url = policy.check_url(uri)
            except policy.RefusedLink as exc:
                self._error(msg, ERR_NOT_ALLOWED, f"link refused: {exc}")
                return Refused(
                    self.desktop, policy.short(uri if isinstance(uri, str) else ""), str(exc)
                )
            if not self.link_rate.allow():
                # refused to the program, not answered "done" with nothing opened; the user
                # is told once per burst of refusals, not once per link
                self._error(msg, ERR_NOT_ALLOWED, "too many links at once")
                if self.link_rate.dropped % 20 == 1:
                    return Refused(self.desktop, policy.short(url), "too many links at once")
                return None
            handle = self._new_request(msg, _options(raw), "open-uri")
            if handle is None:
                return None
            self.respond(handle, SUCCESS, {})
            return OpenRequest(self.desktop, url)
        # OpenFile, OpenDirectory: the connection closes what arrived once the call is
        # handled, so keep a copy
        fd = os.dup(fds[0]) if fds else -1
        _parent, _index, raw = msg.body
        handle = self._new_request(msg, _options(raw), "open-file")
        if handle is None:
            return None
        return OpenFileRequest(self.desktop, self._sender(msg), handle, "", fd)

    def _filechooser(self, msg: Message, method: Method) -> Any:
        _parent, title, raw = msg.body
        opts = _options(raw)
        if any(p.kind == "choose" for p in self.pending.values()):
            # one chooser per desktop on screen at a time: a program cannot bury the user
            self._error(msg, ERR_NOT_ALLOWED, "a file chooser of this desktop is already open")
            return None
        handle = self._new_request(msg, opts, "choose")
        if handle is None:
            return None
        save = method.name == "SaveFile"
        return ChooseRequest(
            desktop=self.desktop,
            sender=self._sender(msg),
            handle=handle,
            save=save,
            title=policy.clean_text(title, TITLE_MAX),
            multiple=bool(opts.get("multiple")) and not save,
            directory=bool(opts.get("directory")) and not save,
            accept_label=policy.clean_text(opts.get("accept_label", ""), 30),
            current_name=policy.clean_text(opts.get("current_name", ""), 255) if save else "",
            current_folder=_path_option(opts.get("current_folder")),
            current_file=_path_option(opts.get("current_file")),
        )

    def _screenshot(self, msg: Message, method: Method) -> Any:
        _parent, raw = msg.body  # Screenshot, the one method
        if not self.shot_rate.allow():
            self._error(msg, ERR_NOT_ALLOWED, "too many screenshots at once")
            return None
        handle = self._new_request(msg, _options(raw), "screenshot")
        if handle is None:
            return None
        return ScreenshotRequest(self.desktop, self._sender(msg), handle)

    @staticmethod
    def _sender(msg: Message) -> str:
        return str(msg.header.fields.get(HeaderFields.sender, ""))


def is_portal_call(msg: Message) -> bool:
    if msg.header.message_type is not MessageType.method_call:
        return False
    path = msg.header.fields.get(HeaderFields.path)
    return isinstance(path, str) and (path == PORTAL_PATH or path.startswith(REQUEST_PREFIX))
