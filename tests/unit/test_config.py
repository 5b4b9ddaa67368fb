"""The config file: units, every kind of problem (message and line), defaults, fallback."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

from zionwm import config as cfg
from zionwm.config import (
    ConfigError,
    load_config,
    load_or_fallback,
    parse_colour,
    parse_cpu_max,
    parse_cpuset,
    parse_duration,
    parse_key,
    parse_size,
)
from zionwm.config.load import DEFAULT_CONFIG
from zionwm.config.model import TEXT_MIME_TYPES
from zionwm.isolation import spec

REPO = Path(__file__).resolve().parents[2]
HEADER = "from zionwm.config import *\n"


@pytest.fixture(autouse=True)
def _private_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def write(tmp_path: Path, body: str, name: str = "config.py") -> Path:
    """A config file whose line 1 is the import; `body` starts on line 2."""
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def problems(tmp_path: Path, body: str) -> list[tuple[int, str, str]]:
    config, errors = load_config(write(tmp_path, body))
    assert (config is None) == any(e.is_error for e in errors)
    return [(e.line, e.severity, e.message) for e in errors]


def only(tmp_path: Path, body: str) -> tuple[int, str]:
    """The single error a file has: (line, message)."""
    found = [(line, msg) for line, sev, msg in problems(tmp_path, body) if sev == "error"]
    assert len(found) == 1, found
    return found[0]


OK_DESKTOP = 'desktop("a", colour="#112233")\n'


# --- units -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (4096, 4096),
        ("64M", 64 << 20),
        ("4G", 4 << 30),
        ("4g", 4 << 30),
        ("1.5G", 3 << 29),
        ("512KiB", 512 << 10),
        ("64MB", 64 << 20),
        ("1T", 1 << 40),
        ("100", 100),
        ("max", None),
        (None, None),
    ],
)
def test_sizes(text: object, expected: int | None) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4X", "'4X' is not a size"),
        ("G", "'G' is not a size"),
        (0, "at least 1 byte"),
        (-5, "at least 1 byte"),
        (True, "not True"),
        (1.5, "not 1.5"),
    ],
)
def test_bad_sizes(text: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (30, 30.0),
        (0.5, 0.5),
        ("30s", 30.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("250ms", 0.25),
        ("2d", 172800.0),
        ("45", 45.0),
        (0, 0.0),
        ("never", None),
        (None, None),
    ],
)
def test_durations(text: object, expected: float | None) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10x", "'10x' is not a duration"),
        ("m", "'m' is not a duration"),
        ("", "'' is not a duration"),
        ("5m30", "'5m30' is not a duration"),
        (-1, "0 or more seconds"),
        ("inf", "0 or more seconds"),
        (True, "not True"),
        ([30], "not [30]"),
    ],
)
def test_bad_durations(text: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("20%", 0.2), ("200%", 2.0), (0.5, 0.5), (2, 2.0), ("1.5", 1.5), ("max", None)],
)
def test_cpu_max(text: object, expected: float | None) -> None:
    got = parse_cpu_max(text)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0%", "more than 0"),
        (0, "more than 0"),
        (-0.5, "more than 0"),
        ("lots", "'lots' is not a CPU share"),
        (True, "not True"),
    ],
)
def test_bad_cpu_max(text: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_cpu_max(text)


def test_cpusets() -> None:
    assert parse_cpuset([1, 0, 1]) == (0, 1)
    assert parse_cpuset("0-3,6") == (0, 1, 2, 3, 6)
    assert parse_cpuset(None) is None
    for bad, message in [
        ("3-1", "runs backwards"),
        ([], "cpuset is empty"),
        ([-1], "integers from 0, not -1"),
        ("a", "'a' is not a CPU list"),
        (3, "not 3"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_cpuset(bad)


def test_colours() -> None:
    assert parse_colour("#ff8000") == (1.0, 128 / 255, 0.0, 1.0)
    assert parse_colour("#3B82F680")[3] == pytest.approx(128 / 255)
    for bad in ("#12345", "red", 0x123456, "#gg0000", "ff8000", "#ff800"):
        with pytest.raises(ValueError, match="write '#rrggbb' or '#rrggbbaa'"):
            parse_colour(bad)


def test_colour_round_trips_through_the_spec() -> None:
    desktop = spec.DesktopSpec(name="a", colour=parse_colour("#3b82f6"))
    assert desktop.colour_hex == "#3b82f6"


@pytest.mark.parametrize(
    ("keys", "mods", "keysym"),
    [
        ("Super+Return", {"super"}, "Return"),
        ("super+return", {"super"}, "Return"),
        ("Super+Shift+Q", {"super", "shift"}, "q"),
        ("Super+q", {"super"}, "q"),
        ("Ctrl+Alt+Delete", {"ctrl", "alt"}, "Delete"),
        ("Logo+Mod1+Control+a", {"super", "alt", "ctrl"}, "a"),
        ("Super++", {"super"}, "plus"),
        ("Super+1", {"super"}, "1"),
        ("F5", set(), "F5"),
    ],
)
def test_keys(keys: str, mods: set[str], keysym: str) -> None:
    assert parse_key(keys) == (frozenset(mods), keysym)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("Super+Retrun", "bad key name 'Retrun' in 'Super+Retrun': xkbcommon knows no such "),
        ("Super+Retrun", "did you mean 'Return'?"),
        ("Super+zzqx", "bad key name 'zzqx'"),
        ("Hyper+a", "'Hyper' in 'Hyper+a' is not a modifier"),
        ("Super+Logo+a", "names the Super modifier twice"),
        ("Super+", "has no key after the modifiers"),
        (42, "not 42"),
    ],
)
def test_bad_keys(keys: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_key(keys)


# --- every kind of problem, with its line -------------------------------------------------


def test_unknown_desktop_field_names_line_and_suggests(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        desktop(
            "a",
            colr="#112233",
        )
        """,
    )
    assert [(line, sev) for line, sev, _ in found] == [(2, "error"), (2, "error")]
    assert "desktop 'a': unknown field 'colr' in desktop(); did you mean 'colour'?" in found[0][2]
    assert "desktop 'a': no colour" in found[1][2]


def test_unknown_field_in_a_value_type_is_at_its_own_line(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        desktop(
            "a",
            colour="#112233",
            limits=Limits(
                memory="4G",
            ),
            devices=Devices(gpus=True),
        )
        """,
    )
    assert found[0][:2] == (5, "error")
    assert "unknown field 'memory' in Limits(); did you mean 'memory_max'?" in found[0][2]
    assert found[1][0] == 8
    assert "unknown field 'gpus' in Devices(); did you mean 'gpu'?" in found[1][2]
    assert len(found) == 2


def test_bad_types(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        desktop("a", colour="#112233", ephemeral="yes")
        desktop("b", colour="#112233", devices={"gpu": True})
        desktop("c", colour="#112233", limits="4G")
        desktop("d", colour="#112233", fonts="/usr/share/fonts")
        desktop("e", colour="#112233", env=["SSH AUTH"])
        """,
    )
    assert found == [
        (2, "error", "desktop 'a': ephemeral: must be True or False, not 'yes'"),
        (3, "error", "desktop 'b': devices must be Devices(...), not dict"),
        (4, "error", "desktop 'c': limits must be Limits(...), not str"),
        (
            5,
            "error",
            "desktop 'd': fonts: must be a list of strings, not '/usr/share/fonts'",
        ),
        (6, "error", "desktop 'e': env: 'SSH AUTH' is not an environment variable name"),
    ]


def test_bad_and_missing_colour(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        desktop("a", colour="#12345")
        desktop("b")
        """,
    )
    assert found[0][0] == 2
    assert "desktop 'a': colour: bad colour '#12345'" in found[0][2]
    assert found[1][0] == 3
    assert "desktop 'b': no colour" in found[1][2]


def test_duplicate_desktop(tmp_path: Path) -> None:
    line, msg = only(
        tmp_path,
        """\
        desktop("a", colour="#112233")

        desktop("a", colour="#445566")
        """,
    )
    assert (line, msg) == (4, "duplicate desktop 'a': already declared at line 2")


@pytest.mark.parametrize("name", ["Work", "a/b", "", "-x", "x" * 33, "wörk"])
def test_invalid_desktop_name(tmp_path: Path, name: str) -> None:
    line, msg = only(tmp_path, f"desktop({name!r}, colour='#112233')\n")
    assert line == 2
    assert f"bad desktop name: {name!r} is not a valid name" in msg


def test_no_desktops_is_an_error_for_the_whole_file(tmp_path: Path) -> None:
    config, errors = load_config(write(tmp_path, 'bind("Super+q", "close")\n'))
    assert config is None
    assert [(e.line, e.message) for e in errors] == [
        (0, "no desktops: declare at least one with desktop(NAME, colour=...)")
    ]
    assert str(errors[0]) == f"{tmp_path / 'config.py'}: {errors[0].message}"


def test_bad_key_name(tmp_path: Path) -> None:
    line, msg = only(tmp_path, OK_DESKTOP + 'bind("Super+Retrun", "close")\n')
    assert line == 3
    assert "bad key name 'Retrun'" in msg


def test_duplicate_binding_ignores_letter_case(tmp_path: Path) -> None:
    line, msg = only(
        tmp_path,
        """\
        desktop("a", colour="#112233")
        bind("Super+q", "close")
        bind("Super+Q", "quit")
        """,
    )
    assert (line, msg) == (
        4,
        "duplicate binding 'Super+Q': Super+q is already bound at line 3 (to 'close')",
    )


def test_shift_makes_a_different_binding(tmp_path: Path) -> None:
    config, errors = load_config(
        write(tmp_path, OK_DESKTOP + 'bind("Super+q", "close")\nbind("Super+Shift+q", "quit")\n')
    )
    assert errors == []
    assert config is not None
    assert config.binding_for(frozenset({"super", "shift"}), "q").command == "quit"  # type: ignore[union-attr]
    assert config.binding_for(frozenset({"super"}), "q").command == "close"  # type: ignore[union-attr]
    assert config.binding_for(frozenset({"super"}), "w") is None


def test_unknown_and_invalid_commands(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        desktop("a", colour="#112233")
        bind("Super+a", "swtich a")
        bind("Super+b", "switch")
        bind("Super+c", "move-to a")
        bind("Super+d", "switch nosuch")
        bind("Super+e", ["launch", "a", "--", "foot"])
        bind("Super+f", 42)
        """,
    )
    assert found == [
        (3, "error", "binding 'Super+a': unknown command 'swtich'; did you mean 'switch'?"),
        (
            4,
            "error",
            "binding 'Super+b': switch needs exactly one desktop name or number; "
            "usage: switch NAME|N",
        ),
        (5, "error", found[2][2]),
        (6, "error", "binding 'Super+d': switch: no desktop named 'nosuch' (desktops: a)"),
        (8, "error", "binding 'Super+f': a command is a string or a list of strings, not 42"),
    ]
    assert "windows never change desktop" in found[2][2]


def test_a_key_bound_without_modifier_warns(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        desktop("a", colour="#112233")
        bind("a", "close")
        bind("Print", "clipboard-copy")
        bind("XF86AudioMute", "net a off")
        """,
    )
    assert [(line, sev) for line, sev, _ in found] == [(3, "warning")]
    assert "binding 'a' has no modifier: programs never receive that key" in found[0][2]


def test_reclaim_without_freezing_warns(tmp_path: Path) -> None:
    found = problems(tmp_path, 'desktop("a", colour="#112233", reclaim_when_frozen=True)\n')
    assert found == [
        (
            2,
            "warning",
            "desktop 'a': reclaim_when_frozen has no effect: freeze_after is None, "
            "it never freezes",
        )
    ]


def test_switch_number_beyond_the_desktops_is_fine(tmp_path: Path) -> None:
    config, errors = load_config(write(tmp_path, OK_DESKTOP + 'bind("Super+9", "switch 9")\n'))
    assert errors == []
    assert config is not None
    assert config.desktop_at(9) is None
    assert config.desktop_at(1) is config.desktops[0]


def test_release_to_unknown_and_self(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        desktop("personal", colour="#112233")
        desktop(
            "web",
            colour="#ff0000",
            downloads=Downloads(release_to="persnal"),
        )
        desktop("loop", colour="#00ff00", downloads=Downloads(release_to="loop"))
        """,
    )
    assert found[0][:2] == (6, "error")
    assert "release_to names 'persnal', which is not a declared desktop" in found[0][2]
    assert "did you mean 'personal'?" in found[0][2]
    assert found[1][:2] == (8, "error")
    assert "release_to must name another desktop" in found[1][2]


def test_release_to_a_later_desktop_is_fine(tmp_path: Path) -> None:
    config, errors = load_config(
        write(
            tmp_path,
            """\
            desktop("web", colour="#ff0000", downloads=Downloads(release_to="home", hold=0))
            desktop("home", colour="#00ff00")
            """,
        )
    )
    assert errors == []
    assert config is not None
    web = config.desktop("web")
    assert web is not None and web.downloads == spec.DownloadsPolicy("home", hold=0.0)


def test_downloads_fields(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        desktop("p", colour="#112233")
        desktop("w", colour="#112233",
                downloads=Downloads("p", hold=None, on_malicious="explode", keep=True))
        """,
    )
    messages = [m for _, _, m in found]
    assert all(line == 4 for line, _, _ in found)
    assert any("unknown field 'keep' in Downloads()" in m for m in messages)
    assert "desktop 'w': downloads: hold: cannot be never" in messages[1] + messages[0]
    assert any(
        "desktop 'w': downloads: on_malicious: must be one of 'release', 'keep', 'delete', "
        "not 'explode'" in m
        for m in messages
    )


def test_invalid_limits(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        desktop("a", colour="#112233", limits=Limits(cpu_weight=0))
        desktop("b", colour="#112233", limits=Limits(cpu_weight=10001))
        desktop("c", colour="#112233", limits=Limits(cpu_max="0%"))
        desktop("d", colour="#112233", limits=Limits(memory_high="4G", memory_max="2G"))
        desktop("e", colour="#112233", limits=Limits(pids_max=0))
        desktop("f", colour="#112233", limits=Limits(memory_max="lots"))
        """,
    )
    assert [(line, sev) for line, sev, _ in found] == [(n, "error") for n in range(2, 8)]
    assert found[0][2] == "desktop 'a': limits: cpu_weight: must be 1..10000, not 0"
    assert found[1][2] == "desktop 'b': limits: cpu_weight: must be 1..10000, not 10001"
    assert found[2][2] == "desktop 'c': limits: cpu_max: cpu_max must be more than 0, not '0%'"
    assert found[3][2].startswith(
        "desktop 'd': limits: memory_high ('4G') is above memory_max ('2G')"
    )
    assert found[4][2] == "desktop 'e': limits: pids_max: must be 1..2147483648, not 0"
    assert found[5][2].startswith("desktop 'f': limits: memory_max: 'lots' is not a size")


def test_cpuset_on_cpus_this_machine_lacks_only_warns(tmp_path: Path) -> None:
    config, errors = load_config(
        write(tmp_path, 'desktop("g", colour="#112233", limits=Limits(cpuset=[0, 4095]))\n')
    )
    assert config is not None
    assert config.desktops[0].limits.cpuset == (0, 4095)
    assert [(e.line, e.severity) for e in errors] == [(2, "warning")]
    assert "cpuset names CPU 4095, which this machine does not have" in errors[0].message
    assert str(errors[0]).endswith(":2: warning: " + errors[0].message)


def test_cpu_max_above_the_machine_only_warns(tmp_path: Path) -> None:
    config, errors = load_config(
        write(tmp_path, 'desktop("g", colour="#112233", limits=Limits(cpu_max="100000%"))\n')
    )
    assert config is not None
    assert [(e.line, e.severity) for e in errors] == [(2, "warning")]
    assert "never limits anything here" in errors[0].message


def test_network_problems(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        desktop("a", colour="#112233", network=Network.filtered([
            Allow("exa mple.org"),
            Allow("192.0.2.1/24"),
            Allow("example.org", ports=[0]),
            Allow("example.org", proto="icmp"),
        ]))
        desktop("b", colour="#112233", network=Network("full", allow=["example.org"]))
        desktop("c", colour="#112233", network="bogus")
        desktop("d", colour="#112233", network=Network.full(block_lan="yes"))
        """,
    )
    by_line = {line: msg for line, _, msg in found}
    assert "'exa mple.org' is not a host name" in by_line[3]
    assert "'192.0.2.1/24' is not a valid address: 192.0.2.1/24 has host bits set" in by_line[4]
    assert "Allow ports are 1..65535, not 0" in by_line[5]
    assert "Allow proto must be 'tcp', 'udp' or 'any', not 'icmp'" in by_line[6]
    assert "allow rules only apply to Network.filtered(), not 'full'" in by_line[8]
    assert "network: mode must be 'none', 'full' or 'filtered', not 'bogus'" in by_line[9]
    assert "network: block_lan: must be True or False, not 'yes'" in by_line[10]
    assert all(sev == "error" for _, sev, _ in found)


def test_network_rules_are_normalised(tmp_path: Path) -> None:
    config, errors = load_config(
        write(
            tmp_path,
            """\
            desktop("a", colour="#112233", network=Network.filtered(
                [
                    "Example.ORG",
                    Allow("192.0.2.7", ports=443),
                    Allow("*.example.net", ports=[80, 443, 80], proto="any"),
                ],
                block_lan=True,
            ))
            """,
        )
    )
    assert errors == []
    assert config is not None
    assert config.desktops[0].network == spec.NetworkPolicy(
        mode=spec.NetMode.FILTERED,
        allow=(
            spec.AllowRule("example.org"),
            spec.AllowRule("192.0.2.7", ports=(443,)),
            spec.AllowRule("*.example.net", ports=(80, 443), proto="any"),
        ),
        block_lan=True,
    )


def test_autostart(tmp_path: Path) -> None:
    config, errors = load_config(
        write(
            tmp_path,
            """\
            desktop("a", colour="#112233", autostart=[
                "foot -e 'htop -d 5'",
                ["weston-terminal"],
                Autostart("nm-applet --indicator", at_start=True),
            ])
            """,
        )
    )
    assert errors == []
    assert config is not None
    assert config.desktops[0].autostart == (
        spec.Autostart(("foot", "-e", "htop -d 5")),
        spec.Autostart(("weston-terminal",)),
        spec.Autostart(("nm-applet", "--indicator"), at_start=True),
    )
    line, msg = only(tmp_path, 'desktop("a", colour="#112233", autostart=["", "x"])\n')
    assert (line, msg) == (2, "desktop 'a': autostart: the command is empty")
    line, msg = only(tmp_path, 'desktop("a", colour="#112233", autostart="foot")\n')
    assert "autostart must be a list" in msg


def test_paths_must_be_absolute_and_missing_ones_warn(tmp_path: Path) -> None:
    line, msg = only(tmp_path, 'desktop("a", colour="#112233", app_dirs=["opt/apps"])\n')
    assert (line, msg) == (2, "desktop 'a': app_dirs: 'opt/apps' is not an absolute path")
    missing = tmp_path / "no-fonts"
    config, errors = load_config(
        write(tmp_path, f'desktop("a", colour="#112233", fonts=[{str(missing)!r}])\n')
    )
    assert config is not None
    assert [(e.line, e.severity) for e in errors] == [(2, "warning")]
    assert f"fonts: {missing} is not a directory" in errors[0].message


def test_syntax_error_has_its_line(tmp_path: Path) -> None:
    line, msg = only(tmp_path, OK_DESKTOP + "\n" + 'desktop("b", colour="#112233"\n')
    assert line == 4
    assert msg.startswith("syntax error: ")


def test_exception_in_user_code_has_its_line_and_earlier_problems_still_show(
    tmp_path: Path,
) -> None:
    found = problems(
        tmp_path,
        """\
        desktop("a", colour="nope")
        def helper():
            return 1 / 0
        helper()
        desktop("b", colour="#112233")
        """,
    )
    assert [(line, sev) for line, sev, _ in found] == [(2, "error"), (4, "error")]
    assert "bad colour 'nope'" in found[0][2]
    assert found[1][2] == "ZeroDivisionError: division by zero"


def test_misspelt_import_suggests_the_name(tmp_path: Path) -> None:
    path = tmp_path / "c.py"
    path.write_text('\nfrom zionwm.config import Limit, desktop\ndesktop("a", colour="#fff")\n')
    config, errors = load_config(path)
    assert config is None
    assert [e.line for e in errors] == [2]
    assert "cannot import name 'Limit'" in errors[0].message
    assert "(did you mean 'Limits'?)" in errors[0].message


def test_wrong_call_is_reported_not_raised(tmp_path: Path) -> None:
    line, msg = only(tmp_path, OK_DESKTOP + "desktop(colour='#112233')\n")
    assert line == 3
    assert "TypeError: desktop() missing 1 required positional argument: 'name'" in msg


def test_exit_in_the_config_is_reported(tmp_path: Path) -> None:
    line, msg = only(tmp_path, OK_DESKTOP + "import sys\nsys.exit(3)\n")
    assert (line, msg) == (4, "the config called exit(): it must only declare, not exit")


def test_unreadable_file(tmp_path: Path) -> None:
    config, errors = load_config(tmp_path / "missing.py")
    assert config is None
    assert len(errors) == 1
    assert errors[0].line == 0
    assert "cannot read the config file: No such file or directory" in errors[0].message


def test_every_problem_is_reported_in_line_order(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        settings(repeat_rate=-1)
        desktop("Bad", colour="#112233")
        desktop("a", colour="#zz0000", freeze_after="soon")
        desktop("a", colour="#112233")
        bind("Super+Nope", "close")
        bind("Super+x", "dance")
        """,
    )
    assert [line for line, _, _ in found] == [2, 3, 4, 4, 5, 6, 7]
    assert all(sev == "error" for _, sev, _ in found)


def test_lines_inside_helpers_point_at_the_declaration(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        def browser(name):
            desktop(name, colour="#ff0000", ephemeral=1)

        browser("a")
        """,
    )
    assert found == [(3, "error", "desktop 'a': ephemeral: must be True or False, not 1")]


def test_more_than_nine_desktops_is_fine(tmp_path: Path) -> None:
    body = "".join(f'desktop("d{n}", colour="#112233")\n' for n in range(12))
    config, errors = load_config(write(tmp_path, body))
    assert errors == []
    assert config is not None
    assert [d.name for d in config.desktops] == [f"d{n}" for n in range(12)]
    assert [d.source_line for d in config.desktops] == list(range(2, 14))


def test_declarations_do_not_leak_between_loads(tmp_path: Path) -> None:
    first = write(tmp_path, 'desktop("a", colour="#112233")\ndesktop("b", colour="#112233")\n')
    second = write(tmp_path, 'desktop("c", colour="#112233")\n', "second.py")
    a, _ = load_config(first)
    c, _ = load_config(second)
    again, _ = load_config(first)
    assert a is not None and c is not None and again is not None
    assert [d.name for d in c.desktops] == ["c"]
    assert [d.name for d in again.desktops] == ["a", "b"]


def test_declaring_outside_a_load_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"desktop\(\) declares something"):
        cfg.desktop("a", colour="#112233")
    with pytest.raises(RuntimeError, match=r"bind\(\) declares something"):
        cfg.bind("Super+q", "close")


# --- settings ----------------------------------------------------------------------------


def test_settings_defaults_and_overrides(tmp_path: Path) -> None:
    config, errors = load_config(
        write(
            tmp_path,
            """\
            desktop("a", colour="#112233")
            settings(terminal="foot -e tmux", repeat_rate=30, clipboard_max_bytes="2M")
            settings(repeat_rate=40, clamd_socket="/run/clamav/clamd.ctl")
            """,
        )
    )
    assert errors == []
    assert config is not None
    s = config.settings
    assert s.terminal == ("foot", "-e", "tmux")
    assert s.repeat_rate == 40
    assert s.repeat_delay == 600
    assert s.clipboard_max_bytes == 2 << 20
    assert s.clamd_socket == Path("/run/clamav/clamd.ctl")
    assert s.clipboard_mime_types == TEXT_MIME_TYPES
    assert s.source == tmp_path / "config.py"
    assert cfg.Settings().clipboard_max_bytes == 1024 * 1024


def test_settings_problems(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        desktop("a", colour="#112233")
        settings(repeat_rat=30)
        settings(repeat_delay="soon", terminal=[])
        settings(clipboard_mime_types=["text/plain", "not a type"], cursor_size=2)
        """,
    )
    assert found == [
        (3, "error", "unknown field 'repeat_rat' in settings(); did you mean 'repeat_rate'?"),
        (4, "error", "settings: terminal: the command is empty"),
        (4, "error", "settings: repeat_delay: must be a whole number, not 'soon'"),
        (5, "error", "settings: clipboard_mime_types: 'not a type' is not a MIME type"),
        (5, "error", "settings: cursor_size: must be 8..512, not 2"),
    ]


def test_antivirus_setting(tmp_path: Path) -> None:
    assert cfg.Settings().antivirus == "required"  # files no antivirus saw wait by default
    found = problems(tmp_path, OK_DESKTOP + 'settings(antivirus="sometimes")\n')
    assert found == [
        (
            3,
            "error",
            'settings: antivirus: \'sometimes\' is not "required", "if-available" or "off"',
        )
    ]
    config, errors = load_config(
        write(tmp_path, 'desktop("a", colour="#112233")\nsettings(antivirus="if-available")\n')
    )
    assert errors == [] and config is not None
    assert config.settings.antivirus == "if-available"


def test_downloads_safe_copy_option(tmp_path: Path) -> None:
    config, errors = load_config(
        write(
            tmp_path,
            'desktop("p", colour="#112233")\n'
            'desktop("w", colour="#332211", downloads=Downloads(release_to="p", safe_copy=True))\n',
        )
    )
    assert errors == [] and config is not None
    (web,) = [d for d in config.desktops if d.name == "w"]
    assert web.downloads is not None and web.downloads.safe_copy
    assert not cfg.Downloads("p")._values["safe_copy"]


def test_keyboard_layout_is_checked_by_building_the_keymap(tmp_path: Path) -> None:
    found = problems(tmp_path, OK_DESKTOP + 'settings(keyboard_layout="xx")\n')
    if found and "no xkb data here" in found[0][2]:
        pytest.skip("this machine has no xkb keyboard data (xkb-data) to check layouts against")
    assert len(found) == 1
    assert found[0][:2] == (3, "error")
    assert "xkbcommon cannot build a keymap from layout='xx'" in found[0][2]
    good = problems(
        tmp_path, OK_DESKTOP + 'settings(keyboard_layout="us", keyboard_variant="dvorak")\n'
    )
    assert good == []
    opts = problems(tmp_path, OK_DESKTOP + 'settings(keyboard_options="nope:bad")\n')
    assert [(line, sev) for line, sev, _ in opts] == [(3, "warning")]
    assert 'Unrecognized RMLVO option "nope:bad"' in opts[0][2]


# --- the default config, first start and fallback --------------------------------------


def test_default_config_is_shipped_in_the_package_and_in_config() -> None:
    assert (REPO / "config" / "default.py").read_bytes() == DEFAULT_CONFIG.read_bytes()


def test_default_config_validates_cleanly() -> None:
    config, errors = load_config(DEFAULT_CONFIG)
    assert errors == []
    assert config is not None


def test_default_desktops() -> None:
    config = cfg.load_default()
    assert [d.name for d in config.desktops] == ["personal", "work", "gaming", "web"]
    personal, work, gaming, web = config.desktops
    assert personal.devices == spec.Devices(gpu=True, audio=True)
    assert gaming.devices == spec.Devices(gpu=True, audio=True)
    assert work.devices == spec.Devices()
    assert web.devices == spec.Devices()
    for d in (personal, work, gaming):
        assert d.network == spec.NetworkPolicy(mode=spec.NetMode.FULL)
        assert not d.ephemeral
    assert personal.freeze_after == work.freeze_after == 300.0
    assert gaming.freeze_after is None
    assert web.ephemeral
    assert web.network == spec.NetworkPolicy(mode=spec.NetMode.FULL, block_lan=True)
    assert web.downloads is not None
    assert web.downloads.release_to == "personal"
    assert web.downloads.hold > 0
    assert web.freeze_after == 30.0
    assert not any(d.x11 for d in (personal, work, web))
    assert len({d.colour for d in config.desktops}) == 4


def test_default_bindings() -> None:
    config = cfg.load_default()
    got = {b.keys: b.command for b in config.bindings}
    expected = {f"Super+{n}": f"switch {n}" for n in range(1, 10)} | {
        "Super+Tab": "switch-prev",
        "Super+Return": "spawn foot",
        "Super+Shift+q": "close",
        "Super+f": "fullscreen",
        "Super+Escape": "overview",
        "Super+l": "lock",
        "Super+Shift+e": "quit",
        "Super+Shift+r": "reload",
        "Super+Shift+c": "clipboard-copy",
        "Super+Shift+v": "clipboard-paste",
        # window management (docs/windows.md), none of them clashing with the above
        "Alt+Tab": "focus next",
        "Alt+Shift+Tab": "focus prev",
        "Super+Left": "snap left",
        "Super+Right": "snap right",
        "Super+Up": "maximize on",
        "Super+Down": "restore",
        "Super+t": "layout toggle",
        "Super+Shift+Left": "move left 40",
        "Super+Shift+Right": "move right 40",
        "Super+Shift+Up": "move up 40",
        "Super+Shift+Down": "move down 40",
        "Super+Ctrl+Right": "resize grow width 40",
        "Super+Ctrl+Left": "resize shrink width 40",
        "Super+Ctrl+Down": "resize grow height 40",
        "Super+Ctrl+Up": "resize shrink height 40",
        "Super+m": "manager",
    }
    assert got == expected
    assert config.settings.terminal == ("foot",)


def test_default_config_path_follows_xdg(tmp_path: Path) -> None:
    assert cfg.default_config_path() == tmp_path / "xdg_config_home" / "zionwm" / "config.py"


def test_first_start_writes_the_default(tmp_path: Path) -> None:
    path = cfg.default_config_path()
    assert not path.exists()
    config, errors, fell_back = load_or_fallback(path)
    assert (errors, fell_back) == ([], False)
    assert path.read_bytes() == DEFAULT_CONFIG.read_bytes()
    assert [d.name for d in config.desktops] == ["personal", "work", "gaming", "web"]
    assert config.settings.source == path
    assert sorted(os.listdir(path.parent)) == ["config.py"]  # no temporary left behind


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = cfg.default_config_path()
    path.parent.mkdir(parents=True)
    path.write_text(HEADER + 'desktop("mine", colour="#123456")\n')
    config, errors, fell_back = load_or_fallback(path)
    assert (errors, fell_back) == ([], False)
    assert [d.name for d in config.desktops] == ["mine"]
    assert "mine" in path.read_text()


def test_broken_file_falls_back_to_the_default_with_its_errors(tmp_path: Path) -> None:
    path = write(tmp_path, 'desktop("mine", colour="blue")\n')
    before = path.read_bytes()
    config, errors, fell_back = load_or_fallback(path)
    assert fell_back
    assert [d.name for d in config.desktops] == ["personal", "work", "gaming", "web"]
    assert [(e.file, e.line) for e in errors] == [(str(path), 2)]
    assert "bad colour 'blue'" in errors[0].message
    assert path.read_bytes() == before


def test_unwritable_location_uses_the_default_and_says_why(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    config, errors, fell_back = load_or_fallback(blocker / "config.py")
    assert not fell_back
    assert config.desktops[0].name == "personal"
    assert [(e.severity, e.line) for e in errors] == [("warning", 0)]
    assert "cannot write the default config here" in errors[0].message


# --- zionwm --check-config ---------------------------------------------------------------


def test_check_reports_each_error_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, 'desktop("a", colour="#12")\nbind("Super+Nope", "close")\n')
    assert cfg.check_main([str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}:2: desktop 'a': colour: bad colour '#12'")
    assert out[1].startswith(f"{path}:3: bad key name 'Nope'")
    assert out[2] == f"{path}: 2 errors; zionwm would use the default"


def test_check_passes_a_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, OK_DESKTOP + 'bind("Super+Return", "spawn foot")\n')
    assert cfg.check_main([str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: OK: 1 desktops (a), 1 key bindings\n"


def test_check_without_a_user_file_checks_the_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cfg.check_main([]) == 0
    out = capsys.readouterr().out
    assert "no config file yet" in out
    assert "OK: 4 desktops (personal, work, gaming, web), 35 key bindings" in out


def test_check_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cfg.check_main(["a", "b"]) == 2
    assert cfg.check_main(["--help"]) == 0
    assert "usage: zionwm --check-config [PATH]" in capsys.readouterr().out


# --- the documented example ---------------------------------------------------------------


def test_the_documented_full_example_loads(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "config.md").read_text()
    example = re.search(r"## A full example\n\n```python\n(.*?)```", doc, re.S)
    assert example is not None
    path = tmp_path / "example.py"
    path.write_text(example.group(1))
    config, errors = load_config(path)
    assert [e for e in errors if e.is_error] == []
    # Only machine-dependent warnings: a font directory or CPU 1 this machine may lack.
    assert all("fonts:" in e.message or "cpuset" in e.message for e in errors), errors
    assert config is not None
    work = config.desktop("work")
    web = config.desktop("web")
    assert work is not None and web is not None
    assert work.limits == spec.Limits(memory_high=3 << 30, memory_max=4 << 30, cpu_max=2.0)
    assert work.network.mode is spec.NetMode.FILTERED
    assert work.freeze_after == 600.0
    assert work.env == ("SSH_AUTH_SOCK",)
    assert web.downloads == spec.DownloadsPolicy(
        "personal", hold=600.0, on_malicious=spec.VerdictAction.DELETE
    )
    assert config.settings.keyboard_options == "caps:escape"
    assert config.desktop("offline") == spec.DesktopSpec(
        name="offline", colour=parse_colour("#64748b"), source_line=config.desktops[-1].source_line
    )


def test_config_error_format() -> None:
    assert str(ConfigError("c.py", 7, "bad")) == "c.py:7: bad"
    assert str(ConfigError("c.py", 7, "hmm", "warning")) == "c.py:7: warning: hmm"
    assert str(ConfigError("c.py", 0, "empty")) == "c.py: empty"


# --- window layout -----------------------------------------------------------------------


def test_layout_is_float_by_default_and_tile_when_asked(tmp_path: Path) -> None:
    config, errors = load_config(
        write(tmp_path, OK_DESKTOP + 'desktop("b", colour="#445566", layout="tile")\n')
    )
    assert config is not None, errors
    assert [d.layout for d in config.desktops] == ["float", "tile"]


@pytest.mark.parametrize("value", ['"grid"', '"Tile"', "True", "None"])
def test_bad_layout_is_an_error_on_its_line(tmp_path: Path, value: str) -> None:
    body = OK_DESKTOP + f'desktop("b", colour="#445566",\n layout={value})\n'
    line, message = only(tmp_path, body)
    assert line == 3
    assert message.startswith("desktop 'b': layout: must be one of 'float', 'tile'")


def test_the_names_a_config_file_imports_are_the_ones_hints_suggest() -> None:
    """`from zionwm.config import *` and the "did you mean" hints draw on the same names,
    which the package's modules each declare for their part."""
    from zionwm.config import load

    assert sorted(cfg.__all__) == sorted(set(load._PUBLIC_NAMES))
    for name in cfg.__all__:
        assert getattr(cfg, name) is not None
