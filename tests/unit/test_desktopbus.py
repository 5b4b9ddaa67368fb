"""The desktop bus's pure parts: text cleaning, rate limits, link checks, the proxy's policy,
the sandbox plan of a desktop with a bus, and the config fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_bwrap import argv_of, plan
from zionwm.config import load_config
from zionwm.desktopbus import policy, shim
from zionwm.isolation.bwrap import BUS_BIN_DIR, SessionBus


def test_clean_text_strips_bidi_control_and_zero_width_and_bounds_length() -> None:
    assert policy.clean_text("a\u202eb\u200bc\x1b[31md\x00", 80) == "abc[31md"
    assert policy.clean_text("x" * 500, 10) == "x" * 9 + "\u2026"
    assert policy.clean_text("one\ntwo\nthree", 80, lines=2) == "one\ntwo\u2026"
    assert policy.clean_text("  spaced\t out  ", 80) == "spaced out"
    assert policy.clean_text(b"bytes", 80) == ""


def test_notice_never_names_a_desktop_from_its_text() -> None:
    n = policy.make_notice("work", "zionwm", "[personal] hi", "body", {"urgency": ("y", 2)})
    assert n.desktop == "work" and n.urgent
    assert n.text() == "zionwm: [personal] hi\nbody"


def test_rate_limit_allows_a_burst_then_refills() -> None:
    now = [0.0]
    rl = policy.RateLimit(burst=2, per_second=1.0, clock=lambda: now[0])
    assert [rl.allow() for _ in range(3)] == [True, True, False]
    assert rl.dropped == 1
    now[0] = 1.0
    assert rl.allow() and not rl.allow()


def test_frozen_queue_is_bounded() -> None:
    q = policy.FrozenQueue(limit=2)
    for i in range(3):
        q.put(policy.make_notice("work", "", f"t{i}", "", {}))
    assert [n.title for n in q.take()] == ["t0", "t1"] and q.dropped == 1
    assert q.take() == []


@pytest.mark.parametrize(
    "url",
    [
        "--help",
        "-https://x.example/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "https://x.example/\n--x",
        "https://x.example/ a",
        "https:///nohost",
        "https:x.example",
        "https://x.example/" + "a" * policy.URL_MAX,
        "https://ex\u0430mple.com/",
        "",
        None,
    ],
)
def test_hostile_links_are_refused(url: object) -> None:
    with pytest.raises(policy.RefusedLink):
        policy.check_url(url)


def test_good_links_pass_and_the_url_is_the_browsers_last_and_only_added_argument() -> None:
    url = "https://example.invalid/x?q=1#f"
    assert policy.check_url(url) == url
    assert policy.browser_argv(("chromium", "--new-window"), url) == [
        "chromium",
        "--new-window",
        url,
    ]


def test_proxy_filters_and_never_lets_programs_own_zionwms_names() -> None:
    argv = policy.proxy_argv("xdg-dbus-proxy", "unix:path=/b", "/p", 5)
    assert "--filter" in argv
    owned = [a.split("=", 1)[1] for a in argv if a.startswith("--own=")]
    for name in (policy.NOTIFICATIONS_NAME, policy.OPEN_NAME):
        assert f"--talk={name}" in argv
        assert not any(name.startswith(o.rstrip("*")) for o in owned)
    # every prefix has two elements: the proxy refuses "com.*"
    assert all(o.count(".") >= 2 for o in owned)


def test_a_sandbox_with_a_bus_gets_only_the_proxy_socket_and_the_shim() -> None:
    bus = SessionBus(socket="/run/user/1000/zionwm/work/dbus/proxy", programs=shim.PROGRAMS)
    p = plan(session_bus=bus)
    assert p.env["DBUS_SESSION_BUS_ADDRESS"] == f"unix:path={p.runtime_dir}/bus"
    assert p.env["PATH"].startswith(BUS_BIN_DIR + ":")
    assert p.env["BROWSER"] == f"{BUS_BIN_DIR}/xdg-open"
    argv = argv_of(p)
    assert "/run/user/1000/zionwm/work/dbus/proxy" in argv
    assert "/run/dbus/system_bus_socket" not in argv
    assert "DBUS_SYSTEM_BUS_ADDRESS" not in p.env


def test_a_sandbox_without_a_bus_gets_no_bus_address() -> None:
    p = plan()
    assert "DBUS_SESSION_BUS_ADDRESS" not in p.env and "BROWSER" not in p.env


def test_config_fields_and_their_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "config.py"
    cfg.write_text(
        "from zionwm.config import desktop\n"
        "desktop('work', colour='#22c55e', open_links_in='web')\n"
        "desktop('web', colour='#ef4444', browser='firefox --new-tab', "
        "notify_when_frozen='show')\n"
    )
    config, errors = load_config(cfg)
    assert config is not None, errors
    work, web = config.desktops
    assert work.dbus == "desktop" and work.open_links_in == "web"
    assert web.browser == ("firefox", "--new-tab") and web.notify_when_frozen == "show"
    cfg.write_text(
        "from zionwm.config import desktop\n"
        "desktop('work', colour='#22c55e', open_links_in='nowhere', dbus='system')\n"
    )
    config, errors = load_config(cfg)
    text = "\n".join(map(str, errors))
    assert config is None
    assert "open_links_in names 'nowhere'" in text and "dbus: 'system'" in text


def test_the_daemon_and_proxy_run_confined_to_their_bus_directory() -> None:
    argv = policy.confine_argv(
        "bwrap",
        "/run/user/1000/zionwm/work/dbus",
        [("/lib", "usr/lib"), ("/lib64", None)],
        ["dbus-daemon", "--nofork"],
        [("/run/user/1000/zionwm/work/dbus/passwd", "/etc/passwd")],
    )
    opts = argv[: argv.index("--")]
    assert {"--unshare-all", "--die-with-parent", "--new-session"} <= set(opts)
    binds = [opts[i + 1 : i + 3] for i, o in enumerate(opts) if o in ("--bind", "--ro-bind")]
    assert ["/run/user/1000/zionwm/work/dbus", "/run/user/1000/zionwm/work/dbus"] in binds
    # the only host paths: the system, the identity file and the bus directory
    assert {b[0] for b in binds} == {
        "/usr",
        "/lib64",
        "/run/user/1000/zionwm/work/dbus/passwd",
        "/run/user/1000/zionwm/work/dbus",
    }
    assert argv[argv.index("--") + 1 :] == ["dbus-daemon", "--nofork"]


def test_the_sandboxs_defaults_send_links_and_every_file_type_to_zionwms_xdg_open() -> None:
    text = shim.mimeapps(["application/pdf", " image/png", "bad line", "x/y=z.desktop", ""])
    lines = text.decode().splitlines()
    assert lines[0] == "[Default Applications]"
    for scheme in ("http", "https", "mailto"):
        assert f"x-scheme-handler/{scheme}={shim.LINK_ENTRY}" in lines
    assert f"application/pdf={shim.FILE_ENTRY}" in lines
    assert f"image/png={shim.FILE_ENTRY}" in lines
    # nothing that could add a key or a section of its own
    assert len(lines) == 6, lines
    placed = dict(shim.files())
    assert b"%f" in placed[f"{shim.SHARE_DIR}/applications/{shim.FILE_ENTRY}"]
    assert b"%u" in placed[f"{shim.SHARE_DIR}/applications/{shim.LINK_ENTRY}"]
