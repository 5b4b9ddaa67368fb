"""Runs INSIDE a desktop's sandbox (started with `zionctl launch`): what can it reach on D-Bus?

    bus_probe.py list [PATH...] OUT   the names on its session bus, and whether each PATH
                                      (a host bus socket) can be connected to
    bus_probe.py own NAME OUT         own NAME on its session bus, then stay connected

Findings go to $HOME/OUT as JSON. jeepney is bound in beside this file.
"""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from jeepney import DBusAddress, MessageType, new_method_call, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

OPEN = "org.zionwm.Open"


def write(out: str, doc: object) -> None:
    path = os.path.join(os.environ["HOME"], out)
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f)
    os.rename(path + ".tmp", path)


def main() -> None:
    mode, *rest = sys.argv[1:]
    doc: dict = {"env": os.environ.get("DBUS_SESSION_BUS_ADDRESS")}
    if mode == "list":
        *paths, out = rest
        try:
            conn = open_dbus_connection(bus="SESSION")
            reply = conn.send_and_get_reply(message_bus.ListNames(), timeout=10)
            doc["names"] = sorted(reply.body[0])
        except Exception as exc:  # the finding is the failure itself
            doc["error"] = f"{type(exc).__name__}: {exc}"
        doc["connect"] = {}
        for p in paths:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(p)
                doc["connect"][p] = "connected"
            except OSError as exc:
                doc["connect"][p] = f"refused: {exc}"
            finally:
                s.close()
        write(out, doc)
    elif mode == "own":
        name, out = rest
        conn = open_dbus_connection(bus="SESSION")
        reply = conn.send_and_get_reply(message_bus.RequestName(name, 4), timeout=10)
        doc["reply"] = list(reply.body)
        write(out, doc)
        # stay on the bus, answering whoever calls (a peer program of the same desktop)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                msg = conn.receive(timeout=deadline - time.monotonic())
            except TimeoutError:
                break
            if msg.header.message_type is MessageType.method_call:
                conn.send(new_method_return(msg))
    elif mode == "open":
        url, out = rest
        if url.startswith("@"):
            url = "https://x.example/" + "a" * int(url[1:])
        conn = open_dbus_connection(bus="SESSION")
        msg = new_method_call(
            DBusAddress(
                "/org/zionwm/Open", bus_name="org.zionwm.Open", interface="org.zionwm.Open"
            ),
            "OpenURI",
            "s",
            (url,),
        )
        reply = conn.send_and_get_reply(msg, timeout=10)
        doc["reply"] = [reply.header.message_type.name, list(reply.body)[:1]]
        write(out, doc)
    elif mode == "call":
        dest, out = rest
        conn = open_dbus_connection(bus="SESSION")
        msg = new_method_call(
            DBusAddress("/", bus_name=dest, interface="org.freedesktop.DBus.Peer"), "Ping"
        )
        reply = conn.send_and_get_reply(msg, timeout=10)
        doc["reply"] = [reply.header.message_type.name, list(reply.body)]
        write(out, doc)


main()
