"""Runs INSIDE a desktop's sandbox (started with `zionctl launch`): a program using the
portal (org.freedesktop.portal.Desktop) on its session bus, as GTK, Qt or a browser would.

    portal_probe.py settings OUT
    portal_probe.py notify TITLE BODY OUT
    portal_probe.py open-uri URI OUT
    portal_probe.py open-file PATH OUT          OpenURI.OpenFile with an fd of PATH
    portal_probe.py choose open|save OPTIONS_JSON OUT
        OPTIONS_JSON: {"current_folder": path, "current_file": path, "current_name": name,
                       "multiple": bool}; paths go as NUL-terminated byte strings
    portal_probe.py screenshot OUT

Findings go to $HOME/OUT as JSON: the Response code and results, and for every file URI
returned, whether this program could then read it and the first bytes it read.
jeepney is bound in beside this file.
"""

import json
import os
import sys
from urllib.parse import unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from jeepney import DBusAddress, MatchRule, MessageType, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

PORTAL = DBusAddress("/org/freedesktop/portal/desktop", bus_name="org.freedesktop.portal.Desktop")
TOKEN = "probe" + str(os.getpid())


def write(out: str, doc: object) -> None:
    path = os.path.join(os.environ["HOME"], out)
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f)
    os.rename(path + ".tmp", path)


def call(conn, iface: str, member: str, sig: str, body: tuple):
    msg = new_method_call(PORTAL.with_interface(iface), member, sig, body)
    reply = conn.send_and_get_reply(msg, timeout=30)
    if reply.header.message_type is MessageType.error:
        raise RuntimeError(f"{reply.header.fields.get(4)}: {reply.body}")
    return reply.body


def request(conn, iface: str, member: str, sig: str, body: tuple, timeout: float) -> dict:
    """Call a portal method that answers through a Request object, as libportal does:
    subscribe to the Response on the handle first, then call, then wait."""
    sender = conn.unique_name.lstrip(":").replace(".", "_")
    handle = f"/org/freedesktop/portal/desktop/request/{sender}/{TOKEN}"
    rule = MatchRule(
        type="signal",
        interface="org.freedesktop.portal.Request",
        member="Response",
        path=handle,
    )
    conn.send_and_get_reply(message_bus.AddMatch(rule), timeout=10)
    with conn.filter(rule) as queue:
        got = call(conn, iface, member, sig, body)
        doc: dict = {"handle": got[0], "expected_handle": handle}
        try:
            sig_msg = conn.recv_until_filtered(queue, timeout=timeout)
        except TimeoutError:
            doc["timeout"] = True
            return doc
    code, results = sig_msg.body
    doc["code"] = code
    doc["results"] = {k: v[1] for k, v in results.items()}
    return doc


def read_uris(doc: dict) -> None:
    uris = list(doc.get("results", {}).get("uris", []))
    if "uri" in doc.get("results", {}):
        uris.append(doc["results"]["uri"])
    doc["read"] = {}
    for uri in uris:
        path = unquote(urlsplit(uri).path)
        try:
            with open(path, "rb") as f:
                doc["read"][uri] = f.read(64).decode("latin-1")
        except OSError as exc:
            doc["read"][uri] = f"error: {exc.strerror}"


def main() -> None:
    mode, *rest = sys.argv[1:]
    out = rest[-1]
    doc: dict = {}
    try:
        conn = open_dbus_connection(bus="SESSION", enable_fds=True)
        opts = {"handle_token": ("s", TOKEN)}
        if mode == "settings":
            s = "org.freedesktop.portal.Settings"
            doc["all"] = {
                ns: {k: v[1] for k, v in kv.items()}
                for ns, kv in call(conn, s, "ReadAll", "as", ([],))[0].items()
            }
            doc["read"] = call(
                conn, s, "Read", "ss", ("org.freedesktop.appearance", "color-scheme")
            )
            doc["read_one"] = call(
                conn, s, "ReadOne", "ss", ("org.gnome.desktop.interface", "font-name")
            )
            doc["version"] = call(
                conn, "org.freedesktop.DBus.Properties", "Get", "ss", (s, "version")
            )
        elif mode == "notify":
            title, body = rest[:2]
            n = {"title": ("s", title), "body": ("s", body)}
            call(
                conn, "org.freedesktop.portal.Notification", "AddNotification", "sa{sv}", ("n1", n)
            )
            doc["sent"] = True
        elif mode == "open-uri":
            doc = request(
                conn,
                "org.freedesktop.portal.OpenURI",
                "OpenURI",
                "ssa{sv}",
                ("", rest[0], opts),
                30,
            )
        elif mode == "open-file":
            fd = os.open(rest[0], os.O_RDONLY)
            doc = request(
                conn, "org.freedesktop.portal.OpenURI", "OpenFile", "sha{sv}", ("", fd, opts), 30
            )
        elif mode == "choose":
            kind, raw = rest[:2]
            given = json.loads(raw)
            for key in ("current_folder", "current_file"):
                if key in given:
                    opts[key] = ("ay", given[key].encode() + b"\0")
            if "current_name" in given:
                opts["current_name"] = ("s", given["current_name"])
            if given.get("multiple"):
                opts["multiple"] = ("b", True)
            member = "SaveFile" if kind == "save" else "OpenFile"
            doc = request(
                conn,
                "org.freedesktop.portal.FileChooser",
                member,
                "ssa{sv}",
                ("", "Pick a file", opts),
                120,
            )
            read_uris(doc)
        elif mode == "screenshot":
            doc = request(
                conn, "org.freedesktop.portal.Screenshot", "Screenshot", "sa{sv}", ("", opts), 60
            )
            uri = doc.get("results", {}).get("uri")
            if uri:
                doc["file"] = unquote(urlsplit(uri).path)
                doc["readable"] = os.access(doc["file"], os.R_OK)
    except Exception as exc:  # the finding is the failure itself
        doc["error"] = f"{type(exc).__name__}: {exc}"
    write(out, doc)


main()
