"""`zionctl desktop ...`: create, change, show and delete desktops of a running zionwm.

A zionctl plugin (see `zionwm.ctl.PLUGINS`). It turns options into the command language's
`desktop SUB NAME KEY=VALUE...` words and prints what the compositor answers; every value
is validated by the compositor, with the config file's rules.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from zionwm import ctl
from zionwm.cli_table import size_text
from zionwm.desktops_model import SETTINGS


def _request(args: argparse.Namespace, words: list[str]) -> dict[str, Any]:
    with ctl.connect(args) as c:
        result = c.command(["desktop", *words])
    data = result.get("data")
    return data if isinstance(data, dict) else {"message": result.get("message", "")}


def _print(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True))
    elif text:
        print(text)


def format_show(d: dict[str, Any]) -> str:
    rows = [[s["key"], s["value"], s["layer"], s["applies"]] for s in d.get("settings", [])]
    lines = [f"desktop {d['name']} (from {d.get('origin')})"]
    if d.get("config_line"):
        lines[0] += f", declared at {d['config_line']}"
    lines.append(ctl.format_table(rows, ["SETTING", "VALUE", "FROM", "APPLIES"]))
    grant = d.get("grant")
    if grant:
        until = time.strftime("%H:%M:%S", time.localtime(float(grant["until"])))
        what = ", ".join(f"{k}={v}" for k, v in grant.items() if k != "until")
        lines.append(f"temporary grant: {what} until {until}")
    lines.append("on disk:")
    lines += [f"  {k}: {v}" for k, v in d.get("paths", {}).items()]
    for p in d.get("problems", []):
        lines.append(f"not applied: {p}")
    return "\n".join(lines)


def format_deleted(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no deleted desktops"
    rows = [
        [
            i["id"],
            i["name"],
            time.strftime("%Y-%m-%d %H:%M", time.localtime(i["deleted_at"])),
            i["path"],
        ]
        for i in items
    ]
    return ctl.format_table(rows, ["ID", "NAME", "DELETED", "PATH"])


def cmd_create(args: argparse.Namespace) -> int:
    words = [args.name]
    for key, setting in SETTINGS.items():
        value = getattr(args, key, None)
        if setting.kind == "bool":
            if value:
                words.append(f"{key}=yes")
        elif value is not None:
            words.append(f"{key}={value}")
    words += args.settings
    if args.clone:
        words += ["--from", args.clone]
    if not args.with_home:
        data = _request(args, ["create", *words])
        _print(args, data, str(data.get("message", "")))
        return 0
    # The home is copied in the background: wait until the desktop exists, or the failure.
    with ctl.connect(args, timeout=None) as c:
        watched = ["desktop-created", "notification"]
        c.request("subscribe", events=watched)
        result = c.command(["desktop", "create", *words, "--with-home"])
        data = result.get("data") or {}
        if not data.get("pending"):
            _print(args, data, str(data.get("message", "")))
            return 0
        if not getattr(args, "json", False):
            print(data.get("message", ""), flush=True)
        for msg in c.events(watched):
            payload = msg.get("payload") or {}
            if msg["event"] == "desktop-created" and payload.get("name") == args.name:
                _print(args, payload, f"created desktop {args.name}")
                return 0
            text = str(payload.get("text", ""))
            if msg["event"] == "notification" and text.startswith(f"Could not create {args.name}:"):
                print(f"zionctl: {text}", file=sys.stderr)
                return ctl.EXIT_FAILED
    return ctl.EXIT_FAILED


def cmd_set(args: argparse.Namespace) -> int:
    data = _request(args, ["set", args.name, *args.settings])
    _print(args, data, str(data.get("message", "")))
    return 0


def cmd_unset(args: argparse.Namespace) -> int:
    data = _request(args, ["unset", args.name, *args.keys])
    _print(args, data, str(data.get("message", "")))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    words = ["delete", args.name]
    words += ["--stop"] if args.stop else []
    words += ["--erase"] if args.erase else []
    data = _request(args, words)
    _print(args, data, str(data.get("message", "")))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    data = _request(args, ["show", args.name])
    _print(args, data, format_show(data))
    return 0


def cmd_deleted(args: argparse.Namespace) -> int:
    data = _request(args, ["deleted"])
    _print(args, data, format_deleted(list(data.get("deleted", []))))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    words = ["restore", args.id] + (["--as", args.new_name] if args.new_name else [])
    data = _request(args, words)
    _print(args, data, str(data.get("message", "")))
    return 0


def cmd_hibernate(args: argparse.Namespace) -> int:
    if args.estimate:
        data = _request(args, ["hibernate", args.name, "--estimate"])
        _print(args, data, str(data.get("message", "")))
        return 0
    # The freeze finishes after the answer: the push's result comes as a `hibernate` event.
    with ctl.connect(args, timeout=60.0) as c:
        c.request("subscribe", events=["hibernate"])
        result = c.command(["desktop", "hibernate", args.name])
        data = result.get("data") or {}
        if data.get("done"):
            _print(args, data, str(data.get("message", "")))
            return 0
        if not getattr(args, "json", False):
            print(data.get("message", ""), flush=True)
        for msg in c.events(["hibernate"]):
            payload = msg.get("payload") or {}
            if payload.get("desktop") != args.name:
                continue
            if payload.get("error"):
                print(f"zionctl: {args.name}: {payload['error']}", file=sys.stderr)
                return ctl.EXIT_FAILED
            freed = payload.get("freed_bytes")
            text = (
                f"hibernated {args.name}: freed {size_text(int(freed))}"
                if freed is not None
                else f"froze {args.name}; memory.reclaim is unavailable, nothing pushed out"
            )
            _print(args, payload, text)
            return 0
    return ctl.EXIT_FAILED


def format_refusals(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no refusals"
    rows = [
        [
            i["desktop"],
            i["kind"],
            i["what"],
            i["count"],
            time.strftime("%H:%M:%S", time.localtime(float(i["last"]))),
        ]
        for i in items
    ]
    return ctl.format_table(rows, ["DESKTOP", "KIND", "WHAT", "TIMES", "LAST"])


def cmd_refusals(args: argparse.Namespace) -> int:
    words = ["refusals", *([args.name] if args.name else [])]
    if args.clear is not None:
        words += ["--clear", *([args.clear] if args.clear else [])]
    data = _request(args, words)
    text = format_refusals(list(data.get("refusals", [])))
    _print(args, data, str(data.get("message")) if args.clear is not None else text)
    return 0


def add_parser(sub: Any) -> None:
    common = ctl.common_options()
    top = sub.add_parser(
        "desktop",
        help="create, change, show and delete desktops while zionwm runs",
        description="Create, change, show and delete desktops while zionwm runs.",
    )

    def usage(_args: argparse.Namespace) -> int:
        top.print_help()
        return ctl.EXIT_NO_COMPOSITOR

    top.set_defaults(func=usage)
    verbs = top.add_subparsers(dest="verb", metavar="VERB")

    def verb(name: str, text: str, func: Any) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = verbs.add_parser(
            name, help=text, description=text, parents=[common]
        )
        p.set_defaults(func=func)
        return p

    p = verb("create", "make a new desktop", cmd_create)
    p.add_argument("name", metavar="NAME")
    for key, setting in SETTINGS.items():
        flag = "--" + key.replace("_", "-")
        if setting.kind == "bool":
            p.add_argument(
                flag, dest=key, action="store_true", help=setting.help.replace("%", "%%")
            )
        else:
            p.add_argument(flag, dest=key, metavar="VALUE", help=setting.help.replace("%", "%%"))
    p.add_argument("--from", dest="clone", metavar="OTHER", help="copy OTHER's settings")
    p.add_argument("--with-home", action="store_true", help="with --from: copy its home too")
    p.add_argument("settings", nargs="*", metavar="KEY=VALUE", help="more settings")

    p = verb("set", "change settings (limits, network, colour... apply at once)", cmd_set)
    p.add_argument("name", metavar="NAME")
    p.add_argument("settings", nargs="+", metavar="KEY=VALUE")

    p = verb("unset", "drop run-time changes (back to config.py or the default)", cmd_unset)
    p.add_argument("name", metavar="NAME")
    p.add_argument("keys", nargs="+", metavar="KEY")

    p = verb("delete", "delete a desktop made at run time; its data is kept", cmd_delete)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--stop", action="store_true", help="stop its running programs first")
    p.add_argument("--erase", action="store_true", help="remove its data instead of keeping it")

    p = verb("show", "every setting, the layer it comes from, and where data lives", cmd_show)
    p.add_argument("name", metavar="NAME")

    verb("deleted", "list deleted desktops whose data is kept", cmd_deleted)

    p = verb("hibernate", "freeze a desktop and push its memory out", cmd_hibernate)
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--estimate", action="store_true", help="only say how much it would free, do nothing"
    )

    p = verb("refusals", "what programs of a desktop were refused (hosts...)", cmd_refusals)
    p.add_argument("name", metavar="NAME", nargs="?")
    p.add_argument(
        "--clear",
        nargs="?",
        const="",
        metavar="WHAT",
        help="forget the refusals of NAME (or only WHAT)",
    )

    p = verb("restore", "bring a deleted desktop back with its data", cmd_restore)
    p.add_argument("id", metavar="ID|NAME")
    p.add_argument("--as", dest="new_name", metavar="NEWNAME", help="under another name")
