"""`zionctl`: the command-line client of the zionwm control socket.

This module owns the `zionctl` argument parser and its table output; the client side of the
control protocol is `zionwm.control_client`, shared with the manager. Subcommand groups
written elsewhere plug in through `add_parser(subparsers)` functions in the modules listed in
`PLUGINS`, imported only when their subcommand is used, so a missing or broken module costs
the rest nothing.

Exit status: 0 done, 1 the compositor refused or failed the request, 2 no compositor to talk
to (or a usage error, as argparse does).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zionwm import commands
from zionwm.cli_table import table
from zionwm.control_client import (
    REQUEST_TIMEOUT,
    CompositorError,
    ConnectError,
    ControlClient,
    default_socket,
)

# module -> the subcommands it adds; imported only when one of them is asked for.
PLUGINS: dict[str, tuple[str, ...]] = {
    "zionwm.desktops_cli": ("desktop",),
    "zionwm.quarantine.cli": ("quarantine", "send"),
    "zionwm.isolation.templates.cli": ("template",),
    "zionwm.isolation.outputlog": ("log",),
}
PLUGIN_HELP = {
    "desktop": "create, change, show and delete desktops while zionwm runs",
    "quarantine": "list, inspect and release quarantined downloads",
    "send": "send a file to another desktop through the audited path",
    "template": "manage root-filesystem templates",
    "log": "show what a desktop's programs printed",
}

EXIT_FAILED = 1
EXIT_NO_COMPOSITOR = 2


def socket_path(args: argparse.Namespace) -> Path:
    """--socket, else $ZIONWM_SOCK, else the default place under $XDG_RUNTIME_DIR."""
    if getattr(args, "socket", None):
        return Path(args.socket)
    return default_socket()


def connect(args: argparse.Namespace, timeout: float | None = REQUEST_TIMEOUT) -> ControlClient:
    return ControlClient(socket_path(args), timeout)


# --------------------------------------------------------------------------------------------
# Output


def format_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    return table([[str(h) for h in header]] + [[_cell(v) for v in row] for row in rows])


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


_DESKTOP_KEYS = ("index", "name", "colour", "active", "visible", "frozen", "windows")


def format_desktops(desktops: list[dict[str, Any]]) -> str:
    extra: list[str] = []
    for d in desktops:
        for key, value in d.items():
            scalar = isinstance(value, str | int | float | bool) or value is None
            if scalar and key not in (*_DESKTOP_KEYS, "focused_window", *extra):
                extra.append(key)
    header = ["#", "NAME", "COLOUR", "ACTIVE", "VISIBLE", "FROZEN", "WINDOWS"]
    header += [k.upper() for k in extra]
    rows = []
    for pos, d in enumerate(desktops, 1):
        row: list[object] = [pos] + [d.get(k) for k in _DESKTOP_KEYS[1:]]
        row += [d.get(k) for k in extra]
        rows.append(row)
    return format_table(rows, header)


def format_windows(windows: list[dict[str, Any]]) -> str:
    rows = []
    for w in windows:
        geometry = f"{w.get('width', 0)}x{w.get('height', 0)}+{w.get('x', 0)}+{w.get('y', 0)}"
        flags = ",".join(
            f
            for f, on in (("focused", w.get("focused")), ("fullscreen", w.get("fullscreen")))
            if on
        )
        rows.append(
            [w.get("id"), w.get("desktop"), w.get("app_id"), geometry, flags, w.get("title")]
        )
    return format_table(rows, ["ID", "DESKTOP", "APP_ID", "GEOMETRY", "FLAGS", "TITLE"])


def format_outputs(outputs: list[dict[str, Any]]) -> str:
    rows = [
        [
            o.get("name"),
            f"{o.get('width', 0)}x{o.get('height', 0)}+{o.get('x', 0)}+{o.get('y', 0)}",
            o.get("scale"),
            o.get("active"),
            o.get("desktop"),
        ]
        for o in outputs
    ]
    return format_table(rows, ["NAME", "GEOMETRY", "SCALE", "ACTIVE", "DESKTOP"])


def format_mapping(data: dict[str, Any], indent: str = "") -> str:
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines.append(format_mapping(value, indent + "  "))
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            lines.append(f"{indent}{key}: {json.dumps(value)}")
        elif isinstance(value, list):
            lines.append(f"{indent}{key}: {', '.join(_cell(v) for v in value)}")
        else:
            lines.append(f"{indent}{key}: {_cell(value)}")
    return "\n".join(line for line in lines if line)


def format_event(msg: dict[str, Any]) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(float(msg.get("time") or time.time())))
    event = str(msg.get("event"))
    payload = msg.get("payload")
    p: dict[str, Any] = payload if isinstance(payload, dict) else {"value": payload}
    if event == "switch":
        detail = f"{_named(p.get('old'))} -> {_named(p.get('new'))}"
    elif event in ("map", "unmap", "focus", "title"):
        detail = f"{p.get('desktop')} #{p.get('id')} {p.get('app_id') or '-'} {p.get('title')!r}"
    elif event in ("freeze", "thaw") and ("desktop" in p or "name" in p):
        detail = str(p.get("desktop") or p.get("name"))
    elif isinstance(p.get("argv"), list) and "desktop" in p:
        pid = f" pid {p['pid']}" if p.get("pid") is not None else ""
        detail = f"{p['desktop']}{pid}: {shlex.join(str(a) for a in p['argv'])}"
    elif event == "error" and isinstance(p.get("errors"), list):
        detail = f"{p.get('what') or ''}: " + "; ".join(str(e) for e in p["errors"])
    elif isinstance(p.get("text") or p.get("message"), str):
        urgent = " (urgent)" if p.get("urgent") else ""
        detail = str(p.get("text") or p.get("message")) + urgent
    else:
        detail = json.dumps(p, sort_keys=True)
    return f"{stamp} {event:<12} {detail}"


def _named(value: object) -> str:
    if isinstance(value, dict):
        value = value.get("name")
    return "-" if value is None else str(value)


def _emit(args: argparse.Namespace, result: object, text: Callable[[], str]) -> None:
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        out = text()
        if out:
            print(out)


# --------------------------------------------------------------------------------------------
# Subcommands: each takes the parsed args and returns the exit status


def cmd_desktops(args: argparse.Namespace) -> int:
    with connect(args) as c:
        result = c.request("desktops")
    _emit(args, result, lambda: format_desktops(result))
    return 0


def cmd_windows(args: argparse.Namespace) -> int:
    with connect(args) as c:
        result = c.request("windows")
    _emit(args, result, lambda: format_windows(result))
    return 0


def cmd_outputs(args: argparse.Namespace) -> int:
    with connect(args) as c:
        result = c.request("outputs")
    _emit(args, result, lambda: format_outputs(result))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with connect(args) as c:
        result = c.request("status")
    if isinstance(result, dict):
        result.update(_audit_status())
    _emit(args, result, lambda: format_mapping(result) if isinstance(result, dict) else str(result))
    return 0


def _audit_status() -> dict[str, str]:
    """Whether downloads are scanned by an antivirus, and what the audit side holds, asked
    of the quarantine service."""
    from zionwm.quarantine import explain  # noqa: PLC0415
    from zionwm.quarantine.client import QuarantineClient  # noqa: PLC0415

    try:
        with QuarantineClient(timeout=5.0) as q:
            st = q.request("status")
    except Exception as exc:  # the compositor's status stands without it
        return {"antivirus": f"unknown: the quarantine service does not answer ({exc})"}
    boxes = st.get("audit_sandboxes") or {}
    return {
        "antivirus": explain.antivirus_summary(st.get("engines") or {}, str(st.get("antivirus"))),
        "audit sandboxes": f"{len(boxes.get('zygotes', []))} running, "
        f"{(boxes.get('rss_kib') or 0) // 1024} MiB resident",
    }


def _command_argv(args: argparse.Namespace) -> list[str]:
    name = args.command
    if name == "launch":
        argv = list(args.argv)
        if argv and argv[0] == "--":
            argv = argv[1:]
        if not argv:
            raise _UsageError("launch needs a program after '--': zionctl launch NAME -- CMD...")
        return ["launch", args.desktop, *(["--ephemeral"] if args.ephemeral else []), "--", *argv]
    if name == "net":
        limit = ["--for", args.for_time] if args.for_time else []
        return ["net", args.desktop, args.state, *limit]
    if name in ("switch", "freeze", "thaw", "kill"):
        return [name, args.desktop]
    return [name, *getattr(args, "args", [])]


def cmd_command(args: argparse.Namespace) -> int:
    argv = _command_argv(args)
    with connect(args) as c:
        result = c.command(argv)
    _emit(args, result, lambda: str(result.get("message") or ""))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    names = args.names or ["*"]
    with connect(args) as c:
        try:
            for msg in c.events(names):
                if args.json:
                    print(json.dumps(msg, sort_keys=True), flush=True)
                else:
                    print(format_event(msg), flush=True)
        except KeyboardInterrupt:
            return 0
    print("zionctl: zionwm closed the connection", file=sys.stderr)
    return EXIT_FAILED


def cmd_unavailable(args: argparse.Namespace) -> int:
    print(f"zionctl: '{args.command}' is not available: {args.unavailable}", file=sys.stderr)
    return EXIT_NO_COMPOSITOR


class _UsageError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# The parser


def common_options() -> argparse.ArgumentParser:
    """--json and --socket, accepted after any subcommand (plugins may use it as a parent)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print raw JSON"
    )
    common.add_argument(
        "--socket",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="control socket (default: $ZIONWM_SOCK, else $XDG_RUNTIME_DIR/zionwm/ipc.sock)",
    )
    return common


def build_parser(
    argv: Sequence[str] = (), program_after_dashes: bool = False
) -> argparse.ArgumentParser:
    """The whole parser. `argv` only decides which plugin modules are worth importing;
    `program_after_dashes`: main() has already cut `launch ... -- CMD` at the '--'."""
    common = common_options()
    # Not `parents=[common]`: that would share its actions, and set_defaults() here would
    # then overwrite their SUPPRESS default, so `zionctl --json windows` would lose --json.
    parser = argparse.ArgumentParser(
        prog="zionctl", description="Control a running zionwm compositor."
    )
    parser.add_argument("--json", action="store_true", help="print raw JSON")
    parser.add_argument(
        "--socket",
        metavar="PATH",
        help="control socket (default: $ZIONWM_SOCK, else $XDG_RUNTIME_DIR/zionwm/ipc.sock)",
    )
    parser.set_defaults(func=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str, func: Callable[[argparse.Namespace], int]) -> Any:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        p.set_defaults(func=func)
        return p

    add("desktops", "list desktops", cmd_desktops)
    add("windows", "list windows", cmd_windows)
    add("outputs", "list outputs", cmd_outputs)
    add("status", "show the compositor's status", cmd_status)
    add("switch", "show desktop NAME (or the Nth desktop)", cmd_command).add_argument(
        "desktop", metavar="NAME"
    )
    p = add("launch", "start a program on desktop NAME", cmd_command)
    p.add_argument("--ephemeral", action="store_true", help="with a throw-away home")
    p.add_argument("desktop", metavar="NAME")
    if program_after_dashes:
        p.add_argument("argv", nargs="*", help=argparse.SUPPRESS)
    else:
        p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD...")
    add("reload", "reload the config file", cmd_command)
    for name, text in (
        ("freeze", "freeze every program of desktop NAME"),
        ("thaw", "resume the programs of desktop NAME"),
        ("kill", "kill every program of desktop NAME"),
    ):
        add(name, text, cmd_command).add_argument("desktop", metavar="NAME")
    p = add("net", "connect or cut desktop NAME's network", cmd_command)
    p.add_argument("desktop", metavar="NAME")
    p.add_argument("state", choices=("on", "off"))
    p.add_argument(
        "--for",
        dest="for_time",
        metavar="DURATION",
        help="only for this long (e.g. 15m), then back as it was, even across a restart",
    )
    p = add("events", "print events as they happen (switch, map, unmap, ...)", cmd_events)
    p.add_argument("names", nargs="*", metavar="EVENT", help="only these events (default: all)")

    # The rest of the command language (close, fullscreen, switch-prev, quit, ...) passes
    # through as is, so zionctl never lags behind it and refusals come back explained.
    plugged = {n for names in PLUGINS.values() for n in names}
    for name, info in commands.COMMANDS.items():
        if name not in sub.choices and name not in plugged:
            p = add(name, info.help, cmd_command)
            p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    at = _subcommand_index(argv)
    wanted = argv[at] if at is not None else None
    for module, names in PLUGINS.items():
        if wanted in names:
            _load_plugin(sub, module, names)
    for names in PLUGINS.values():
        for name in names:
            if name not in sub.choices:
                p = sub.add_parser(name, help=PLUGIN_HELP.get(name), add_help=False)
                p.add_argument("rest", nargs=argparse.REMAINDER)
                p.set_defaults(func=cmd_unavailable, unavailable="module not installed")
    return parser


def _subcommand_index(argv: Sequence[str]) -> int | None:
    i = 0
    while i < len(argv):
        if argv[i] == "--socket":
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return i
    return None


def _split_program(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """`launch [options] NAME -- CMD...`: options before '--' are zionctl's, so that
    `zionctl launch work --json -- foot` works; without '--' every word after NAME is the
    program's (argparse REMAINDER)."""
    i = _subcommand_index(argv)
    if i is None or argv[i] != "launch" or "--" not in argv[i:]:
        return argv, None
    cut = argv.index("--", i)
    return argv[:cut], argv[cut + 1 :]


def _load_plugin(sub: Any, module: str, names: tuple[str, ...]) -> None:
    try:
        mod = importlib.import_module(module)
        mod.add_parser(sub)
    except ModuleNotFoundError as exc:
        reason = f"{module} is not installed ({exc.name} missing)"
        _unavailable(sub, names, reason)
    except Exception as exc:
        _unavailable(sub, names, f"{module} failed to load: {type(exc).__name__}: {exc}")


def _unavailable(sub: Any, names: tuple[str, ...], reason: str) -> None:
    for name in names:
        if name not in sub.choices:
            p = sub.add_parser(name, help=PLUGIN_HELP.get(name), add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(func=cmd_unavailable, unavailable=reason)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, program = _split_program(argv)
    parser = build_parser(argv, program_after_dashes=program is not None)
    args = parser.parse_args(argv)
    if program is not None:
        if args.argv:
            parser.error(f"unexpected words before '--': {' '.join(args.argv)}")
        args.argv = program
    if args.func is None:
        parser.print_help(sys.stderr)
        return EXIT_NO_COMPOSITOR
    try:
        return int(args.func(args) or 0)
    except ConnectError as exc:
        print(f"zionctl: {exc}", file=sys.stderr)
        return EXIT_NO_COMPOSITOR
    except CompositorError as exc:
        print(f"zionctl: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except _UsageError as exc:
        print(f"zionctl: {exc}", file=sys.stderr)
        return EXIT_NO_COMPOSITOR
    except BrokenPipeError:
        # `zionctl events | head`: the reader went away; that is a normal end.
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
