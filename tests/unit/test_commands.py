"""The command language: every command parses, and every malformed one is refused plainly."""

from __future__ import annotations

import pytest

from zionwm import commands
from zionwm.commands import Command, CommandError, parse


def test_switch_by_name_and_by_number() -> None:
    assert parse("switch work") == Command("switch", ("work",), desktop="work")
    cmd = parse("switch 3")
    assert cmd.index == 3
    assert cmd.desktop is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("switch", "switch needs exactly one desktop name or number"),
        ("switch a b", "switch needs exactly one desktop name or number"),
        ("switch 0", "numbered from 1"),
        ("switch Work", "'Work' is not a desktop name"),
        ("switch -1", "'-1' is not a desktop name"),
    ],
)
def test_switch_rejects(text: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse(text)


def test_spawn_splits_like_a_shell() -> None:
    cmd = parse("spawn foot -e 'htop -d 5'")
    assert cmd.name == "spawn"
    assert cmd.argv == ("foot", "-e", "htop -d 5")


def test_spawn_from_argv_keeps_words_as_given() -> None:
    cmd = parse(["spawn", "foot", "-T", "a b"])
    assert cmd.argv == ("foot", "-T", "a b")


def test_spawn_needs_a_program() -> None:
    with pytest.raises(CommandError, match="spawn needs a program"):
        parse("spawn")
    with pytest.raises(CommandError, match="spawn needs a program"):
        parse(["spawn", "--"])


def test_launch_with_and_without_separator() -> None:
    a = parse("launch work --ephemeral -- firefox --private-window")
    assert (a.desktop, a.ephemeral, a.argv) == ("work", True, ("firefox", "--private-window"))
    b = parse("launch web firefox --new-window")
    assert (b.desktop, b.ephemeral, b.argv) == ("web", False, ("firefox", "--new-window"))
    c = parse("launch web -- --weird-name")
    assert c.argv == ("--weird-name",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("launch", "launch needs a desktop and a program"),
        ("launch work", "launch needs a program to start on work"),
        ("launch work --ephemeral --", "needs a program to start on work"),
        ("launch work --private firefox", "unknown option '--private'"),
        ("launch Work foot", "'Work' is not a desktop name"),
    ],
)
def test_launch_rejects(text: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse(text)


@pytest.mark.parametrize(
    "name",
    [
        "switch-prev",
        "close",
        "fullscreen",
        "maximize",
        "overview",
        "quit",
        "reload",
        "clipboard-copy",
        "clipboard-paste",
        "restore",
    ],
)
def test_commands_without_arguments(name: str) -> None:
    assert parse(name) == Command(name)
    with pytest.raises(CommandError, match=f"{name} takes no arguments"):
        parse(f"{name} now")


@pytest.mark.parametrize("name", ["freeze", "thaw", "kill"])
def test_desktop_commands(name: str) -> None:
    assert parse(f"{name} web").desktop == "web"
    with pytest.raises(CommandError, match="needs exactly one desktop name"):
        parse(name)
    with pytest.raises(CommandError, match="is not a desktop name"):
        parse(f"{name} ../etc")


def test_net_on_off() -> None:
    assert parse("net web off").enable is False
    assert parse("net web ON").enable is True
    with pytest.raises(CommandError, match="expected 'on' or 'off', not 'maybe'"):
        parse("net web maybe")
    with pytest.raises(CommandError, match="net needs a desktop and 'on' or 'off'"):
        parse("net web")


def test_move_to_is_refused_with_a_reason() -> None:
    with pytest.raises(CommandError, match="windows never change desktop"):
        parse("move-to work")


def test_unknown_command_suggests_the_nearest() -> None:
    with pytest.raises(CommandError, match="unknown command 'swtich'; did you mean 'switch'"):
        parse("swtich work")
    with pytest.raises(CommandError, match="unknown command 'xyzzy'; commands: switch"):
        parse("xyzzy")


def test_empty_and_unsplittable() -> None:
    with pytest.raises(CommandError, match="empty command"):
        parse("   ")
    with pytest.raises(CommandError, match="empty command"):
        parse([])
    with pytest.raises(CommandError, match="cannot split command"):
        parse("spawn foot 'unclosed")


def test_argv_words_must_be_strings() -> None:
    with pytest.raises(CommandError, match="must be strings, not int"):
        parse(["switch", 3])  # type: ignore[list-item]


def test_str_round_trips() -> None:
    cmd = parse(["launch", "work", "--", "foot", "-T", "a b"])
    assert parse(str(cmd)) == cmd


def test_help_lists_every_command() -> None:
    text = commands.help_text()
    lines = text.splitlines()
    assert len(lines) == len(commands.COMMANDS)
    for name, info in commands.COMMANDS.items():
        assert any(line.startswith(info.usage) and info.help in line for line in lines), name


def test_window_commands_parse() -> None:
    assert parse("focus next").word == "next"
    assert parse("focus PREV").word == "prev"
    assert parse("snap right").word == "right"
    assert parse("layout toggle").word == "toggle"
    assert parse("restore") == Command("restore")
    assert parse("maximize").enable is None
    assert parse("maximize on").enable is True
    assert parse("maximize off").enable is False
    move = parse("move left")
    assert (move.word, move.amount) == ("left", commands.DEFAULT_STEP)
    assert parse("move up 10 px").amount == 10  # sway's spelling
    assert parse("move down 25px").amount == 25
    resize = parse(["resize", "shrink", "height", "30"])
    assert (resize.word, resize.axis, resize.amount) == ("shrink", "height", 30)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("focus", "focus needs exactly one of next, prev"),
        ("focus left", "expected 'next' or 'prev', not 'left'"),
        ("snap up", "expected 'left' or 'right', not 'up'"),
        ("layout grid", "expected 'tile' or 'float' or 'toggle', not 'grid'"),
        ("maximize maybe", "maximize takes no arguments, or one of 'on', 'off', 'toggle'"),
        ("move", "move needs a direction"),
        ("move sideways", "expected 'left' or 'right' or 'up' or 'down'"),
        ("move left 0", "not a number of pixels from 1 to 10000"),
        ("move left ten", "not a number of pixels"),
        ("move left 10 cm", "expected 'N' or 'N px'"),
        ("move container to workspace 2", "windows never change desktop"),
        ("resize grow", "resize needs grow|shrink and width|height"),
        ("resize grow depth", "expected 'width' or 'height', not 'depth'"),
    ],
)
def test_window_commands_reject(text: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse(text)
