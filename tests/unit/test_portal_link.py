"""The command that opens a released file in its target desktop (compositor/portal_link.py)."""

from __future__ import annotations

from zionwm.compositor.portal_link import open_released_argv, xdg_open_failure

PATH = "/home/u/Incoming/work/a.pdf"


def _env(argv: list[str]) -> dict[str, str]:
    assert argv[0] == "/usr/bin/env" and argv[-2:] == ["/usr/bin/xdg-open", PATH]
    return dict(a.split("=", 1) for a in argv[1:-2])


def test_the_targets_browser_is_xdg_utils_fallback_not_zionwms_xdg_open() -> None:
    env = _env(open_released_argv(("chromium", "--new-window"), PATH))
    assert env["BROWSER"] == "chromium --new-window"
    assert env["XDG_CONFIG_DIRS"] == "/etc/xdg"  # zionwm's own defaults left out


def test_a_browser_command_xdg_utils_would_misread_is_not_handed_to_it() -> None:
    # xdg-utils splits $BROWSER at ':' and spaces and reads '%s' in it
    for browser in (("my browser",), ("chromium", "--x=%s"), ("a:b",), ("sh", "-c", "x;y"), ()):
        assert _env(open_released_argv(browser, PATH))["BROWSER"] == "", browser


def test_xdg_opens_statuses_are_said_in_words() -> None:
    assert xdg_open_failure(3) == "it has no program for this type of file"
    assert xdg_open_failure(4) == "its program for this type of file failed"
    assert xdg_open_failure(9) == "xdg-open exited with status 9"
