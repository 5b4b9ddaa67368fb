"""`zionctl quarantine ...` and `zionctl send ...`: the user's side of the quarantine.

Plugged into zionctl through `add_parser(subparsers)`; every command talks to the quarantine
service (not the compositor) over its socket. Exit status follows zionctl: 0 done, 1 the
service refused, 2 no service to talk to. Text a desktop chose (names, URLs, reasons that
quote them) is escaped before it is printed: it cannot add lines or reorder the terminal's
text. `--json` prints the data as it is (JSON escapes control characters itself).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from zionwm.cli_table import size_text, table, time_text
from zionwm.quarantine import explain
from zionwm.quarantine.client import QuarantineClient, QuarantineError, socket_path
from zionwm.untrusted import printable as _p

EXIT_REFUSED = 1
EXIT_NO_SERVICE = 2
_TERMINAL = ("released", "rejected", "deleted")


def _client(args: argparse.Namespace) -> QuarantineClient:
    path = os.environ.get("ZIONWM_QUARANTINE_SOCK")
    return QuarantineClient(Path(path) if path else socket_path())


def format_list(items: list[dict[str, Any]]) -> str:
    """The table `quarantine list` prints."""
    rows = [("ID", "STATE", "VERDICT", "FROM", "TO", "SIZE", "NAME")]
    for it in items:
        rows.append(
            (
                str(it["id"]),
                it["state"],
                it.get("verdict") or "-",
                it["source"],
                it["dest"],
                size_text(it.get("size")),
                _p(it["name"]),
            )
        )
    return table(rows)


def format_item(it: dict[str, Any]) -> str:
    """The report `quarantine show` prints."""
    lines = [
        f"item {it['id']}: {_p(it['name'])}",
        f"  state      {it['state']}" + (" (forced)" if it.get("forced") else ""),
        f"  verdict    {it.get('verdict') or '-'}",
        f"  from       {it['source']} ({it['kind']})",
        f"  to         {it['dest']}/{it['subdir']}",
        f"  size       {size_text(it.get('size'))}",
        f"  sha256     {it.get('sha256') or '-'}",
        f"  received   {time_text(it.get('received_at'))}",
    ]
    claimed = f" (claimed by {it['source']}, not verified)"
    if it.get("origin_url"):
        lines.append(f"  origin     {_p(it['origin_url'])}{claimed}")
    if it.get("referrer_url"):
        lines.append(f"  referrer   {_p(it['referrer_url'])}{claimed}")
    if it["state"] == "held":
        lines.append(f"  release at {time_text(it.get('hold_until'))}")
    if it.get("release_name") and it["state"] == "released":
        lines.append(f"  released   {time_text(it.get('released_at'))} as {_p(it['release_name'])}")
    if it.get("reason"):
        lines.append(f"  reason     {_p(it['reason'])}")
    report = it.get("report")
    if it.get("verdict"):
        lines.append(f"  meaning    {explain.verdict_words(it.get('verdict'))}")
    if report:
        for n, line in enumerate(explain.scanner_lines(report)):
            lines.append(f"  {'checks' if n == 0 else '':<10} {line}")
        kept = explain.why_kept(it)
        for n, line in enumerate(kept if it["state"] != "released" or kept else []):
            lines.append(f"  {'why' if n == 0 else '':<10} {line}")
        for line in explain.rescan_lines(report):
            lines.append(f"  rescan     {line}")
        for f in report.get("findings", []):
            lines.append(
                f"  finding    [{f['verdict']}] {f['scanner']}/{_p(f['rule'])}: {_p(f['detail'])}"
            )
    return "\n".join(lines)


def _run(args: argparse.Namespace, fn: Any) -> int:
    try:
        with _client(args) as client:
            return int(fn(client))
    except QuarantineError as e:
        print(f"zionctl: {_p(str(e), 2000)}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as e:
        print(f"zionctl: no quarantine service ({e})", file=sys.stderr)
        return EXIT_NO_SERVICE


def _out(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2))
    else:
        print(text)


def cmd_list(args: argparse.Namespace) -> int:
    def go(c: QuarantineClient) -> int:
        reply = c.request("list", all=args.all)
        counts = reply.get("counts", {})
        _out(
            args,
            reply,
            format_list(reply["items"]) + f"\n{counts.get('pending', 0)} pending,"
            f" {counts.get('kept', 0)} kept",
        )
        return 0

    return _run(args, go)


def cmd_show(args: argparse.Namespace) -> int:
    def go(c: QuarantineClient) -> int:
        item = c.request("show", id=args.id)["item"]
        _out(args, item, format_item(item))
        return 0

    return _run(args, go)


def cmd_action(args: argparse.Namespace) -> int:
    def go(c: QuarantineClient) -> int:
        extra = {"i_understand": True} if getattr(args, "i_understand", False) else {}
        item = c.request(args.action, id=args.id, **extra)["item"]
        text = f"item {item['id']}: {item['state']}"
        if item["state"] == "released":
            text += f" to {item['dest']} as {_p(item['release_name'])}"
        _out(args, item, text)
        return 0

    return _run(args, go)


def cmd_convert(args: argparse.Namespace) -> int:
    """Ask for a safe copy and wait until it is released (or kept) as a new item."""

    def go(c: QuarantineClient) -> int:
        c.request("convert", id=args.id)
        marker = f"safe copy of item {args.id} "
        end = time.monotonic() + args.timeout
        while time.monotonic() < end:
            for it in c.request("list", all=True)["items"]:
                if (it.get("reason") or "").startswith(marker) and it["state"] in _TERMINAL:
                    text = f"item {it['id']}: {it['name']}: {it['state']}"
                    if it["state"] == "released":
                        text += f" to {it['dest']} as {it['release_name']}"
                    _out(args, it, text)
                    return 0 if it["state"] == "released" else EXIT_REFUSED
            time.sleep(0.2)
        print(f"item {args.id}: no safe copy within {args.timeout:g} s", file=sys.stderr)
        return EXIT_REFUSED

    return _run(args, go)


def _wait_terminal(c: QuarantineClient, ids: set[int], timeout: float) -> dict[int, Any]:
    """After `subscribe`: wait for each id's terminal event (or its state if already there)."""
    done: dict[int, Any] = {}
    for item_id in ids:
        item = c.request("show", id=item_id)["item"]
        if item["state"] in _TERMINAL:
            done[item_id] = item
    end = time.monotonic() + timeout
    while len(done) < len(ids):
        left = end - time.monotonic()
        if left <= 0:
            break
        try:
            ev = c.next_event(left)
        except TimeoutError:
            break
        item = ev.get("item", {})
        if item.get("id") in ids and item.get("state") in _TERMINAL:
            done[item["id"]] = item
    return done


def cmd_send(args: argparse.Namespace) -> int:
    def go(c: QuarantineClient) -> int:
        if args.wait:
            c.subscribe()  # before sending: no event can be missed
        status = 0
        ids: set[int] = set()
        for r in c.send(args.src, args.dst, args.paths):
            if r["ok"]:
                ids.add(int(r["id"]))
                print(f"{_p(r['path'])}: queued as item {r['id']}")
            else:
                status = EXIT_REFUSED
                print(f"zionctl: {_p(r['path'])}: refused: {_p(r['error'])}", file=sys.stderr)
        if args.wait and ids:
            done = _wait_terminal(c, ids, args.timeout)
            for item_id in sorted(ids):
                item = done.get(item_id)
                if item is None:
                    print(f"item {item_id}: still in quarantine after {args.timeout:.0f} s")
                    status = EXIT_REFUSED
                elif item["state"] == "released":
                    print(
                        f"item {item_id}: delivered to {args.dst} as "
                        f"Incoming/{args.src}/{_p(item['release_name'])}"
                    )
                else:
                    print(f"item {item_id}: {item['state']}: {_p(item.get('reason') or '')}")
                    status = EXIT_REFUSED
        return status

    return _run(args, go)


def add_parser(subparsers: Any) -> None:
    """Add `quarantine` and `send` to zionctl's subcommands."""
    q = subparsers.add_parser(
        "quarantine",
        help="list, inspect and release quarantined files",
        description="The download quarantine: list, inspect, release.",
    )
    # SUPPRESS: without the flag here, zionctl's own `--json` (before the command) stands.
    q.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    qsub = q.add_subparsers(dest="qcommand", metavar="ACTION", required=True)
    p = qsub.add_parser("list", help="items still in quarantine (--all: every item ever)")
    p.add_argument("--all", action="store_true")
    p.set_defaults(func=cmd_list)
    p = qsub.add_parser("show", help="one item with its audit report")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_show)
    p = qsub.add_parser("release", help="release an item now")
    p.add_argument("id", type=int)
    p.add_argument(
        "--i-understand",
        action="store_true",
        help="release even though the audit did not find it clean",
    )
    p.set_defaults(func=cmd_action, action="release")
    p = qsub.add_parser("delete", help="delete an item's content (its record stays)")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_action, action="delete")
    p = qsub.add_parser("rescan", help="audit an item again")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_action, action="rescan")
    p = qsub.add_parser(
        "convert",
        help="make a safe copy (pixels rebuilt as a plain PDF) of a PDF or image",
    )
    p.add_argument("id", type=int)
    p.add_argument("--timeout", type=float, default=300.0)
    p.set_defaults(func=cmd_convert)

    s = subparsers.add_parser(
        "send",
        help="send files from one desktop to another through the audit",
        description="Copy files from desktop A's home, audit them, and deliver them into "
        "desktop B's ~/Incoming/A/.",
    )
    s.add_argument("--from", dest="src", required=True, metavar="A")
    s.add_argument("--to", dest="dst", required=True, metavar="B")
    s.add_argument("--wait", action="store_true", help="wait until each file is delivered")
    s.add_argument("--timeout", type=float, default=120.0, help="with --wait (seconds)")
    s.add_argument(
        "paths", nargs="+", metavar="PATH", help="relative to A's home, or absolute inside it"
    )
    s.set_defaults(func=cmd_send)
