"""Each desktop's own session bus, attacked and used from inside real sandboxes.

Every program here is started the way a user's is (`zionctl launch DESKTOP -- ...`) on a real
headless zionwm, so it runs in that desktop's real sandbox and talks to the real
dbus-daemon and xdg-dbus-proxy zionwm started for it. A "host" session bus (a real
dbus-daemon at the compositor's $XDG_RUNTIME_DIR/bus, with a name owned on it) stands for
the user's own session, which no desktop may reach.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection

from tests.harness import Compositor, colour_near, processes_with, wait_for
from tests.netops_helpers import ops_processes, skip_unless_privileged_network
from tests.system.bus_apps import (
    INSIDE,
    WORK_GREEN,
    apps_dir,
    findings,
    history,
    missing,
    notice_with,
    start_probe,
)

PROBE_SRC = Path(__file__).with_name("bus_probe.py")
HOST_NAME = "org.example.HostOnly"
URL = "https://example.invalid/x"

STANDIN_BROWSER = """#!/bin/sh
# records exactly what it was handed: its arguments, its desktop, its working directory
t=$(mktemp "$HOME/.run.XXXXXXXX")
f="$HOME/browser-args.${t##*.run.}"
printf '%s\\0' "$@" > "$t"
printf 'desktop=%s\\0cwd=%s\\0' "$ZIONWM_DESKTOP" "$(pwd)" > "$f.ctx"
mv "$t" "$f"
"""


_MISSING = missing("notify-send", "grim")
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")

CONFIG = """\
from zionwm.config import desktop
APPS = [{apps!r}]
desktop("work", colour="{green}", open_links_in="web", app_dirs=APPS,
        open_files_in={{"application/pdf": "web"}})
desktop("personal", colour="#3b82f6", browser=["{inside}/standin-browser"], app_dirs=APPS)
desktop("web", colour="#ef4444", browser=["{inside}/standin-browser"], app_dirs=APPS)
desktop("trusting", colour="#a855f7", dbus="host", app_dirs=APPS)
desktop("nobus", colour="#eab308", dbus="none", app_dirs=APPS)
desktop("offline", colour="#14b8a6", browser=["{inside}/no-such-browser"], app_dirs=APPS)
"""


class HostBus:
    """A real session bus standing for the user's own, with a name owned on it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", f"--address=unix:path={path}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(path.exists, 10, "the host bus socket")
        self.conn: DBusConnection = wait_for(
            lambda: open_dbus_connection(f"unix:path={path}"), 10, "a host bus connection"
        )
        reply = self.conn.send_and_get_reply(message_bus.RequestName(HOST_NAME, 4), timeout=5)
        assert reply.body == (1,)

    def close(self) -> None:
        self.conn.close()
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def comp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compositor]:
    root = tmp_path_factory.mktemp("dbus")
    apps = apps_dir(root, PROBE_SRC, STANDIN_BROWSER)
    config = CONFIG.format(apps=str(apps), green=WORK_GREEN, inside=INSIDE)
    c = Compositor(root, config_text=config)
    host = HostBus(c.runtime / "bus")
    c.env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={host.path}"
    c.host_bus = host  # type: ignore[attr-defined]
    c.start()
    try:
        yield c
    finally:
        c.stop()
        host.close()
    # nothing of the desktops' buses outlives the compositor
    left = processes_with(str(c.runtime / "zionwm"))
    assert not left, f"bus processes left running: {left}"


def probe(comp: Compositor, desktop: str, *args: str, wait: bool = True) -> dict[str, Any]:
    out = start_probe(comp, desktop, PROBE_SRC.name, *args)
    return findings(out, 30) if wait else {}


def test_notify_send_in_work_shows_in_works_colour_and_name_while_personal_is_shown(
    comp: Compositor, tmp_path: Path
) -> None:
    comp.zionctl("switch", "personal")
    comp.zionctl("launch", "work", "--", "notify-send", "-a", "Mail", "Hello from work", "at 3")
    entry = notice_with(comp, "Hello from work")
    assert entry.startswith("[work] Mail: Hello from work")
    assert comp.desktops()["personal"]["active"]
    shot = comp.screenshot(tmp_path / "work-notice.png")
    # the header of the notification (top right, under the strip) is work's green
    green = [
        (x, y)
        for y in range(24, 120)
        for x in range(shot.width - 640, shot.width)
        if colour_near(shot.getpixel((x, y)), WORK_GREEN, tol=8)
    ]
    assert len(green) > 300, f"no work-coloured notification header on screen ({len(green)})"
    # while the strip across the top is personal's blue, not work's green
    assert not colour_near(shot.getpixel((shot.width // 2, 4)), WORK_GREEN, tol=8)


@pytest.mark.security
def test_a_desktop_cannot_pass_its_notification_off_as_another_ones(comp: Compositor) -> None:
    forged = "\u202e[personal] zionwm: Released\u200b invoice.pdf\n\n[personal]"
    comp.zionctl("launch", "work", "--", "notify-send", "-a", "zionwm", forged, "x" * 5000)
    entry = notice_with(comp, "invoice.pdf")
    assert entry.startswith("[work] "), entry
    assert "\u202e" not in entry and "\u200b" not in entry
    assert len(entry) < 700


@pytest.mark.security
def test_a_desktops_bus_shows_no_host_names_and_no_other_desktops(comp: Compositor) -> None:
    owned = probe(comp, "personal", "own", "org.mozilla.personalsecret")
    assert owned["reply"] == [1], owned
    host_socket = str(comp.host_bus.path)  # type: ignore[attr-defined]
    seen = probe(comp, "work", "list", host_socket, "/run/dbus/system_bus_socket")
    assert "error" not in seen, seen
    assert seen["env"] and "/run/user/" in seen["env"]
    names = seen["names"]
    assert "org.freedesktop.Notifications" in names and "org.zionwm.Open" in names
    assert HOST_NAME not in names
    assert "org.mozilla.personalsecret" not in names
    for path, result in seen["connect"].items():
        assert result.startswith("refused"), (path, result)


@pytest.mark.security
def test_a_program_cannot_take_over_zionwms_names(comp: Compositor) -> None:
    for name in ("org.freedesktop.Notifications", "org.zionwm.Open"):
        tried = probe(comp, "work", "own", name)
        assert tried["reply"] != [1], tried
        assert "AccessDenied" in str(tried["reply"]), tried
        # and the service on that name still answers as zionwm's, tagged with work
        comp.zionctl("launch", "work", "--", "notify-send", f"still zionwm's {name}")
        assert notice_with(comp, f"still zionwm's {name}").startswith("[work] ")


def _browser_runs(comp: Compositor) -> list[Path]:
    return sorted(
        p
        for p in comp.desktop_home("web").glob("browser-args.*")
        if p.suffix not in (".tmp", ".ctx")
    )


@pytest.mark.security
def test_xdg_open_in_work_starts_the_browser_in_web_with_only_the_url(comp: Compositor) -> None:
    before = set(_browser_runs(comp))
    comp.zionctl("launch", "work", "--", "xdg-open", URL)
    new = wait_for(lambda: set(_browser_runs(comp)) - before, 30, "the browser started in web")
    (run,) = new
    assert run.read_bytes().split(b"\0")[:-1] == [URL.encode()]
    ctx = Path(str(run) + ".ctx").read_bytes().split(b"\0")
    assert b"desktop=web" in ctx
    assert not list(comp.desktop_home("work").glob("browser-args.*"))
    notice_with(comp, "Link from work opened in web")


def test_a_link_whose_browser_does_not_start_is_told_as_not_opened_and_only_so(
    comp: Compositor,
) -> None:
    # offline's browser is not installed: bwrap's exec of it fails in the sandbox
    url = URL + "?to=offline"
    comp.zionctl("launch", "offline", "--", "xdg-open", url)
    failed = notice_with(comp, "Link from offline not opened")
    assert url in failed, failed
    # the status is bwrap's, or the sandbox's exec's (127) where it runs a helper first
    assert re.search(r"no-such-browser exited with status [1-9][0-9]* right after", failed), failed
    assert "is it installed in offline?" in failed, failed
    # that one notice only: no "opened" before it (nor after: the outcome is told once),
    # and not the generic notice of a program that exited right after starting either
    told = [n for n in history(comp) if "offline" in n]
    assert told == [failed], told
    comp.zionctl("launch", "offline", "--", "xdg-open", url + "&again")
    again = notice_with(comp, "&again")
    told = [n for n in history(comp) if "offline" in n]
    assert told == [failed, again], told


NET_WAIT_CONFIG = """\
from zionwm.config import Network, desktop
APPS = [{apps!r}]
desktop("reader", colour="#0ea5e9", open_links_in="web", app_dirs=APPS)
desktop("web", colour="#ef4444", network=Network.full(), browser=["{inside}/standin-browser"],
        app_dirs=APPS)
desktop("other", colour="#84cc16", network=Network.full(), app_dirs=APPS)
"""


def test_a_link_waiting_for_its_desktops_network_is_announced_then_told_once_opened(
    make_compositor: Callable[..., Compositor], tmp_path: Path
) -> None:
    """web's network is not built when reader's link arrives, and its build is held (the
    network-ops process stopped): the user is told the link waits for it, then, once the
    browser ran, that it was opened; nothing claims it was opened before."""
    skip_unless_privileged_network()
    root = tmp_path / "netwait"
    root.mkdir()
    apps = apps_dir(root, PROBE_SRC, STANDIN_BROWSER)
    comp = make_compositor(NET_WAIT_CONFIG.format(apps=str(apps), inside=INSIDE), sub="netwait")
    assert comp.proc is not None
    comp.zionctl("net", "other", "on")  # the network-ops process runs from now
    (ops,) = ops_processes(comp.proc.pid)
    web = comp.desktop_home("web")
    os.kill(ops, signal.SIGSTOP)
    try:
        comp.zionctl("launch", "reader", "--", "xdg-open", URL)
        waiting = notice_with(comp, "Opening a link from reader in web")
        assert "web's network is being set up" in waiting, waiting
        assert comp.desktops()["web"]["net"].get("changing")
        assert not list(web.glob("browser-args.*"))
        assert not [n for n in history(comp) if n.startswith("Link from reader")]
    finally:
        os.kill(ops, signal.SIGCONT)
    opened = notice_with(comp, "Link from reader opened in web")
    assert list(web.glob("browser-args.*")), "told opened before the browser ran"
    told = [n for n in history(comp) if "reader" in n]
    assert told == [waiting, opened], told


def test_gio_open_in_work_goes_the_same_way(comp: Compositor) -> None:
    if shutil.which("gio") is None:
        pytest.fail(
            "gio (libglib2.0-bin) is not installed"
            " (scripts/setup-system.sh installs it: a broken set-up)"
        )
    before = set(_browser_runs(comp))
    # gio starts the handler and exits at once; the sandbox ends with its first process, so
    # the program stays a while, as any program that opens a link does
    script = 'gio open "$1" && sleep 60'
    comp.zionctl("launch", "work", "--", "/bin/sh", "-c", script, "sh", URL + "?via=gio")
    new = wait_for(lambda: set(_browser_runs(comp)) - before, 30, "the browser started in web")
    (run,) = new
    assert run.read_bytes().split(b"\0")[:-1] == [(URL + "?via=gio").encode()]


def user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


@pytest.mark.security
@pytest.mark.parametrize(
    "hostile",
    ["--help", "file:///etc/passwd", "https://a.example/\n--x", "@1000000", "javascript:alert(1)"],
)
def test_hostile_links_are_refused_with_a_notice(comp: Compositor, hostile: str) -> None:
    before = set(_browser_runs(comp))
    told = len([n for n in history(comp) if "link was not opened" in n])
    found = probe(comp, "work", "open", hostile)
    assert found["reply"][0] == "error", found
    wait_for(
        lambda: len([n for n in history(comp) if "link was not opened" in n]) > told,
        30,
        "a notice that the link was refused",
    )
    assert set(_browser_runs(comp)) == before


def test_only_a_desktop_configured_for_it_reaches_the_host_bus_and_status_warns(
    comp: Compositor,
) -> None:
    status = comp.zjson("status")
    assert "trusting" in status["dbus_warning"]
    seen = probe(comp, "trusting", "list")
    assert HOST_NAME in seen["names"], seen


def test_a_desktop_without_a_bus_gets_none(comp: Compositor) -> None:
    seen = probe(comp, "nobus", "list")
    assert seen["env"] is None and "names" not in seen, seen


@pytest.mark.security
def test_a_notification_flood_is_cut_down_and_the_user_told(comp: Compositor) -> None:
    done = comp.desktop_home("work") / "flood-done"
    script = (
        'i=0; while [ $i -lt 60 ]; do notify-send "flood $i"; i=$((i+1)); done; '
        'touch "$HOME/flood-done"'
    )
    comp.zionctl("launch", "work", "--", "/bin/sh", "-c", script)
    wait_for(done.exists, 120, "the flood to end")
    notice_with(comp, "work: too many notifications")
    shown = comp.log().count("notification from work: notify-send: flood ")
    # a burst of at most 5, then about one a second while the loop ran: far fewer than were
    # sent, and some (the tests before this one share the compositor and may have spent part
    # of work's burst)
    assert 1 <= shown < 40, shown


def test_programs_of_one_desktop_reach_each_other(comp: Compositor) -> None:
    owned = probe(comp, "work", "own", "org.mozilla.workpeer")
    assert owned["reply"] == [1], owned
    seen = probe(comp, "work", "list")
    assert "org.mozilla.workpeer" in seen["names"], seen
    # a peer call reaches the other program (its library answers Peer.Ping)
    called = probe(comp, "work", "call", "org.mozilla.workpeer")
    assert called["reply"][0] == "method_return", called
    # and the same name seen from personal's bus is not there
    assert "org.mozilla.workpeer" not in probe(comp, "personal", "list")["names"]


def test_a_program_whose_sandbox_maps_the_user_to_another_uid_still_gets_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. a desktop whose browser keeps its own sandbox and so runs as a non-root uid:
    # the uid it claims in EXTERNAL is not the one the kernel reports to the bus
    if shutil.which("unshare") is None:
        pytest.fail(
            "unshare (util-linux) is not installed"
            " (scripts/setup-system.sh installs it: a broken set-up)"
        )
    from zionwm.desktopbus import bus as dbus_bus

    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    b = dbus_bus.start("mapped")
    try:
        mapped = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]
        get_id = ["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus"]
        r = subprocess.run(
            [*mapped, *get_id, "/", "org.freedesktop.DBus.GetId"],
            env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": f"unix:path={b.proxy_socket}"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 0, r.stderr
    finally:
        b.stop()


# links and files opened with GLib's own lookup, and forged targets (after the tests
# above: each link spends some of work's link budget)


def _gio_open(comp: Compositor, desktop: str, target: str) -> None:
    if shutil.which("gio") is None:
        pytest.fail(
            "gio (libglib2.0-bin) is not installed"
            " (scripts/setup-system.sh installs it: a broken set-up)"
        )
    script = 'gio open "$1" && sleep 60'
    comp.zionctl("launch", desktop, "--", "/bin/sh", "-c", script, "sh", target)


def test_gio_open_of_a_mailto_link_reaches_zionwm_not_a_handler_in_work(
    comp: Compositor,
) -> None:
    told = len([n for n in history(comp) if "link was not opened" in n])
    _gio_open(comp, "work", "mailto:someone@example.invalid")
    wait_for(
        lambda: len([n for n in history(comp) if "link was not opened" in n]) > told,
        30,
        "zionwm's notice about the mailto link",
    )


def test_gio_open_of_a_file_in_work_sends_it_where_open_files_in_says(comp: Compositor) -> None:
    # GLib picks the handler of the file's MIME type, not xdg-open: the sandbox's default
    # for every type is zionwm's, so the file goes to web through the audit, not to a
    # PDF viewer inside work; a name with a space arrives whole
    work_home = comp.desktop_home("work")
    work_home.mkdir(parents=True, exist_ok=True)
    (work_home / "my invoice.pdf").write_bytes(b"%PDF-1.4\n%test\n")
    _gio_open(comp, "work", f"/home/{user()}/my invoice.pdf")
    notice_with(comp, "File from work sent to web through the audit: my invoice.pdf")


@pytest.mark.security
def test_a_program_in_work_cannot_pick_the_desktop_its_link_opens_in(comp: Compositor) -> None:
    # what a program controls: its own environment, the arguments, another D-Bus signature,
    # its desktop's name. The rule (work's links go to web) decides, by the bus it came on.
    personal = comp.desktop_home("personal")
    before_personal = set(personal.glob("browser-args.*"))
    before = set(_browser_runs(comp))
    url = URL + "?via=forged"
    # the tests before sent work's links in bursts (hostile ones count too): this one needs
    # two of its budget (5 at once, then 1 a second), so it waits for them, not for luck
    wait_for(
        lambda: comp.zjson("status")["desktop_buses"]["work"]["links_ready"] >= 2,
        10,
        "work's link budget to refill",
    )
    script = (
        'ZIONWM_DESKTOP=personal DESKTOP_STARTUP_ID=personal xdg-open "$1"; '
        "dbus-send --session --print-reply --dest=org.zionwm.Open /org/zionwm/Open "
        'org.zionwm.Open.OpenURI "string:$1" string:personal; '
        'touch "$HOME/forged-done"; sleep 60'
    )
    comp.zionctl("launch", "work", "--", "/bin/sh", "-c", script, "sh", url)
    wait_for((comp.desktop_home("work") / "forged-done").exists, 60, "the forging script")
    runs = wait_for(
        lambda: (new := set(_browser_runs(comp)) - before) and new, 30, "the link in web"
    )
    for run in runs:
        assert run.read_bytes().split(b"\0")[:-1] == [url.encode()]
        assert b"desktop=web" in Path(str(run) + ".ctx").read_bytes().split(b"\0")
    # nothing started in personal, and no browser ran in work
    assert set(personal.glob("browser-args.*")) == before_personal
    assert not list(comp.desktop_home("work").glob("browser-args.*"))
