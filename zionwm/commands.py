"""The one command language shared by key bindings, IPC (`zionctl`) and the config file.

This module owns the table of commands (name -> argument shape and one-line help), the
parser that turns text or an argv into a frozen `Command`, and the help listing. It knows
nothing about the compositor: the compositor dispatches on `Command.name` through its own
table, and the config validator checks that desktop names in commands exist.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from zionwm.suggest import close_matches

# A desktop name ends up in paths, socket names and cgroup names, hence the narrow alphabet.
DESKTOP_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


# The step of a keyboard move or resize when the command names none.
DEFAULT_STEP = 40
MAX_STEP = 10000


class CommandError(ValueError):
    """A command that cannot be parsed; the message is meant for the user as is."""


class Shape(Enum):
    """The argument shape of a command; one small parser per shape."""

    NONE = "none"  # no arguments
    DESKTOP = "desktop"  # one desktop name
    DESKTOP_OR_INDEX = "desktop-or-index"  # a desktop name or its 1-based position
    ARGV = "argv"  # a program and its arguments
    ON_OFF_TOGGLE = "on-off-toggle"  # [on|off|toggle]
    FOCUS = "focus"  # next|prev
    SIDE = "side"  # left|right
    MOVE = "move"  # left|right|up|down [N [px]]
    RESIZE = "resize"  # grow|shrink width|height [N [px]]
    LAYOUT = "layout"  # tile|float|toggle
    LAUNCH = "launch"  # DESKTOP [--ephemeral] [--] ARGV...
    DESKTOP_ON_OFF = "desktop-on-off"  # DESKTOP on|off [--for DURATION]
    WORDS = "words"  # a sub-command and its words, parsed by whoever runs it


@dataclass(frozen=True)
class CommandInfo:
    usage: str
    shape: Shape
    help: str
    # Set for commands that exist only so that asking for them gets a clear "no".
    refused: str | None = None


COMMANDS: dict[str, CommandInfo] = {
    "switch": CommandInfo(
        "switch NAME|N", Shape.DESKTOP_OR_INDEX, "show desktop NAME, or the Nth desktop"
    ),
    "switch-prev": CommandInfo("switch-prev", Shape.NONE, "show the previously shown desktop"),
    "spawn": CommandInfo("spawn ARGV...", Shape.ARGV, "start a program on the active desktop"),
    "launch": CommandInfo(
        "launch DESKTOP [--ephemeral] [--] ARGV...",
        Shape.LAUNCH,
        "start a program on DESKTOP (--ephemeral: with a throw-away home)",
    ),
    "close": CommandInfo("close", Shape.NONE, "ask the focused window to close"),
    "fullscreen": CommandInfo("fullscreen", Shape.NONE, "toggle fullscreen on the focused window"),
    "maximize": CommandInfo(
        "maximize [on|off|toggle]",
        Shape.ON_OFF_TOGGLE,
        "maximize the focused window (no argument: toggle)",
    ),
    "overview": CommandInfo(
        "overview", Shape.NONE, "show or hide every desktop at once (arrows, 1-9, Enter, Esc)"
    ),
    "lock": CommandInfo(
        "lock", Shape.NONE, "lock the screen until your password is typed (nothing unlocks it)"
    ),
    "quit": CommandInfo("quit", Shape.NONE, "stop the compositor and every desktop's programs"),
    "reload": CommandInfo(
        "reload", Shape.NONE, "reload the config file; keep the old one if the new one fails"
    ),
    "clipboard-copy": CommandInfo(
        "clipboard-copy",
        Shape.NONE,
        "copy the focused desktop's clipboard into the compositor's buffer",
    ),
    "clipboard-paste": CommandInfo(
        "clipboard-paste", Shape.NONE, "offer the compositor's buffer once to the focused desktop"
    ),
    "restore": CommandInfo(
        "restore",
        Shape.NONE,
        "put the focused window back where it was before it was snapped or maximized",
    ),
    "focus": CommandInfo(
        "focus next|prev",
        Shape.FOCUS,
        "focus the next/previous window of the shown desktop, most recent first (Alt+Tab)",
    ),
    "snap": CommandInfo(
        "snap left|right", Shape.SIDE, "put the focused window on the left/right half"
    ),
    "move": CommandInfo(
        "move left|right|up|down [N [px]]",
        Shape.MOVE,
        f"move the focused window N px (default {DEFAULT_STEP}); tiled: swap it with its neighbour",
    ),
    "resize": CommandInfo(
        "resize grow|shrink width|height [N [px]]",
        Shape.RESIZE,
        f"resize the focused window by N px (default {DEFAULT_STEP}); tiled: the master's width",
    ),
    "layout": CommandInfo(
        "layout tile|float|toggle",
        Shape.LAYOUT,
        "tile the shown desktop's windows (master and stack) or let them float",
    ),
    "freeze": CommandInfo("freeze NAME", Shape.DESKTOP, "freeze every program of desktop NAME"),
    "thaw": CommandInfo("thaw NAME", Shape.DESKTOP, "resume the programs of desktop NAME"),
    "kill": CommandInfo("kill NAME", Shape.DESKTOP, "kill every program of desktop NAME"),
    "net": CommandInfo(
        "net NAME on|off [--for DURATION]",
        Shape.DESKTOP_ON_OFF,
        "connect or cut desktop NAME's network (--for: only that long, e.g. 15m)",
    ),
    "desktop": CommandInfo(
        "desktop create|set|unset|delete|show|deleted|restore|hibernate|refusals ...",
        Shape.WORDS,
        "create, change, show and delete desktops while zionwm runs",
    ),
    "manager": CommandInfo(
        "manager", Shape.NONE, "open zionwm-manager (desktops, apps, quarantine) on the host"
    ),
    "move-to": CommandInfo(
        "move-to DESKTOP",
        Shape.DESKTOP,
        "refused: windows never change desktop",
        refused=(
            "windows never change desktop: a window belongs to the compartment whose "
            "program drew it; start the program on the other desktop instead "
            "(launch DESKTOP -- ARGV...)"
        ),
    ),
}


@dataclass(frozen=True)
class Command:
    """One parsed command. `args` are the raw words after the name; the other fields are
    the parsed meaning, filled in where the command has one."""

    name: str
    args: tuple[str, ...] = ()
    desktop: str | None = None  # switch NAME, launch, freeze, thaw, kill, net
    index: int | None = None  # switch N: 1-based position in the config's desktop order
    argv: tuple[str, ...] = ()  # spawn, launch
    word: str | None = None  # focus next|prev, snap/move DIRECTION, resize grow|shrink, layout
    axis: str | None = None  # resize width|height
    amount: int | None = None  # move/resize N px
    # enable (below) is also maximize on|off, None meaning toggle
    ephemeral: bool = False  # launch --ephemeral
    enable: bool | None = None  # net NAME on|off
    for_time: str | None = None  # net NAME on|off --for DURATION, as typed

    def __str__(self) -> str:
        return shlex.join((self.name, *self.args))


def parse(text_or_argv: str | Sequence[str]) -> Command:
    """Parse a command from text (split like a shell) or from an already split argv."""
    if isinstance(text_or_argv, str):
        try:
            words = shlex.split(text_or_argv, comments=False)
        except ValueError as exc:
            raise CommandError(f"cannot split command {text_or_argv!r}: {exc}") from None
    else:
        words = list(text_or_argv)
        for w in words:
            if not isinstance(w, str):
                raise CommandError(f"command words must be strings, not {type(w).__name__}")
    if not words:
        raise CommandError("empty command")
    name, args = words[0], tuple(words[1:])
    info = COMMANDS.get(name)
    if info is None:
        raise CommandError(_unknown(name))
    if info.refused is not None:
        raise CommandError(f"{name}: {info.refused}")
    parser = _PARSERS[info.shape]
    return parser(name, info, args)


def help_text() -> str:
    """Every command, its usage and one line of help, for `zionctl help` and the docs."""
    width = max(len(i.usage) for i in COMMANDS.values())
    return "\n".join(f"{i.usage:<{width}}  {i.help}" for i in COMMANDS.values())


def _unknown(name: str) -> str:
    close = close_matches(name, COMMANDS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; commands: {', '.join(COMMANDS)}"
    return f"unknown command {name!r}{hint}"


def _usage(info: CommandInfo) -> str:
    return f"usage: {info.usage}"


def _desktop_name(name: str, info: CommandInfo, word: str) -> str:
    if not DESKTOP_NAME.fullmatch(word):
        raise CommandError(
            f"{name}: {word!r} is not a desktop name (lower-case letters, digits, '_' and '-', "
            f"at most 32, starting with a letter or digit); {_usage(info)}"
        )
    return word


def _parse_none(name: str, info: CommandInfo, args: tuple[str, ...]) -> Command:
    if args:
        raise CommandError(f"{name} takes no arguments (got {shlex.join(args)}); {_usage(info)}")
    return Command(name)


def _parse_desktop(name: str, info: CommandInfo, args: tuple[str, ...]) -> Command:
    if len(args) != 1:
        raise CommandError(f"{name} needs exactly one desktop name; {_usage(info)}")
    return Command(name, args, desktop=_desktop_name(name, info, args[0]))


def _parse_desktop_or_index(name: str, info: CommandInfo, args: tuple[str, ...]) -> Command:
    if len(args) != 1:
        raise CommandError(f"{name} needs exactly one desktop name or number; {_usage(info)}")
    word = args[0]
    if word.isdigit():
        index = int(word)
        if index < 1:
            raise CommandError(f"{name}: desktops are numbered from 1, not {index}")
        return Command(name, args, index=index)
    return Command(name, args, desktop=_desktop_name(name, info, word))


def _parse_argv(name: str, info: CommandInfo, args: tuple[str, ...]) -> Command:
    if args and args[0] == "--":
        args = args[1:]
    if not args or not args[0]:
        raise CommandError(f"{name} needs a program to start; {_usage(info)}")
    return Command(name, args, argv=args)


def _parse_launch(name: str, info: CommandInfo, args: tuple[str, ...]) -> Command:
    if not args:
        raise CommandError(f"{name} needs a desktop and a program; {_usage(info)}")
    desktop = _desktop_name(name, info, args[0])
    ephemeral = False
    rest = list(args[1:])
    # Options are only recognised before the program, so `launch web firefox --new-window`
    # passes --new-window to firefox.
    while rest and rest[0].startswith("--"):
        opt = rest.pop(0)
        if opt == "--":
            break
        if opt == "--ephemeral":
            ephemeral = True
            continue
        raise CommandError(
            f"{name}: unknown option {opt!r} (only --ephemeral; put '--' before a program "
            f"whose name starts with '--'); {_usage(info)}"
        )
    if not rest or not rest[0]:
        raise CommandError(f"{name} needs a program to start on {desktop}; {_usage(info)}")
    return Command(name, args, desktop=desktop, argv=tuple(rest), ephemeral=ephemeral)


def _parse_desktop_on_off(name: str, info: CommandInfo, args: tuple[str, ...]) -> Command:
    for_time = None
    if len(args) == 4 and args[2] == "--for":
        for_time = args[3]
    elif len(args) != 2:
        raise CommandError(f"{name} needs a desktop and 'on' or 'off'; {_usage(info)}")
    desktop = _desktop_name(name, info, args[0])
    state = args[1].lower()
    if state not in ("on", "off"):
        raise CommandError(f"{name}: expected 'on' or 'off', not {args[1]!r}; {_usage(info)}")
    return Command(name, args, desktop=desktop, enable=state == "on", for_time=for_time)


def _parse_words(name: str, info: CommandInfo, args: tuple[str, ...]) -> Command:
    if not args:
        raise CommandError(f"{name} needs a sub-command; {_usage(info)}")
    return Command(name, args)


def _choice(name: str, info: CommandInfo, word: str, choices: tuple[str, ...]) -> str:
    if word.lower() not in choices:
        raise CommandError(
            f"{name}: expected {' or '.join(repr(c) for c in choices)}, not {word!r}; "
            f"{_usage(info)}"
        )
    return word.lower()


def _parse_on_off_toggle(name: str, info: CommandInfo, args: tuple[str, ...]) -> Command:
    if not args:
        return Command(name)
    if len(args) > 1 or args[0].lower() not in ("on", "off", "toggle"):
        raise CommandError(
            f"{name} takes no arguments, or one of 'on', 'off', 'toggle' (got "
            f"{shlex.join(args)}); {_usage(info)}"
        )
    state = args[0].lower()
    return Command(name, args, enable=None if state == "toggle" else state == "on")


def _one_word(choices: tuple[str, ...]) -> _Parser:
    def parse_word(name: str, info: CommandInfo, args: tuple[str, ...]) -> Command:
        if len(args) != 1:
            raise CommandError(f"{name} needs exactly one of {', '.join(choices)}; {_usage(info)}")
        return Command(name, args, word=_choice(name, info, args[0], choices))

    return parse_word


def _amount(name: str, info: CommandInfo, rest: tuple[str, ...]) -> int:
    """The optional `N [px]` at the end of move and resize (sway writes `10 px`)."""
    if not rest:
        return DEFAULT_STEP
    if len(rest) > 2 or (len(rest) == 2 and rest[1].lower() != "px"):
        raise CommandError(f"{name}: expected 'N' or 'N px' at the end; {_usage(info)}")
    word = rest[0].lower().removesuffix("px")
    if not word.isdigit() or not 1 <= int(word) <= MAX_STEP:
        raise CommandError(
            f"{name}: {rest[0]!r} is not a number of pixels from 1 to {MAX_STEP}; {_usage(info)}"
        )
    return int(word)


def _parse_move(name: str, info: CommandInfo, args: tuple[str, ...]) -> Command:
    if not args:
        raise CommandError(f"{name} needs a direction; {_usage(info)}")
    if args[0].lower() in ("container", "window", "workspace", "to"):
        raise CommandError(
            f"{name}: windows never change desktop (a window belongs to the compartment whose "
            f"program drew it); {_usage(info)}"
        )
    word = _choice(name, info, args[0], ("left", "right", "up", "down"))
    return Command(name, args, word=word, amount=_amount(name, info, args[1:]))


def _parse_resize(name: str, info: CommandInfo, args: tuple[str, ...]) -> Command:
    if len(args) < 2:
        raise CommandError(f"{name} needs grow|shrink and width|height; {_usage(info)}")
    word = _choice(name, info, args[0], ("grow", "shrink"))
    axis = _choice(name, info, args[1], ("width", "height"))
    return Command(name, args, word=word, axis=axis, amount=_amount(name, info, args[2:]))


_Parser = Callable[[str, CommandInfo, tuple[str, ...]], Command]

_PARSERS: dict[Shape, _Parser] = {
    Shape.ON_OFF_TOGGLE: _parse_on_off_toggle,
    Shape.FOCUS: _one_word(("next", "prev")),
    Shape.SIDE: _one_word(("left", "right")),
    Shape.MOVE: _parse_move,
    Shape.RESIZE: _parse_resize,
    Shape.LAYOUT: _one_word(("tile", "float", "toggle")),
    Shape.NONE: _parse_none,
    Shape.DESKTOP: _parse_desktop,
    Shape.DESKTOP_OR_INDEX: _parse_desktop_or_index,
    Shape.ARGV: _parse_argv,
    Shape.LAUNCH: _parse_launch,
    Shape.DESKTOP_ON_OFF: _parse_desktop_on_off,
    Shape.WORDS: _parse_words,
}
