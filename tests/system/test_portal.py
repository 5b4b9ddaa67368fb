"""The portal of each desktop (org.freedesktop.portal.Desktop on its own bus), used and
attacked from inside real sandboxes.

Every caller is a program started with `zionctl launch DESKTOP -- ...` on a real headless
zionwm, talking through the real xdg-dbus-proxy to the real dbus-daemon of its desktop, where
zionwm serves the portal. The file chooser is the real host chooser (GTK 4, on the host
socket); a headless session has no accessibility bus, so the tests drive it through its test
hook, which types into its location entry and presses its buttons through the same handlers
a user's keys reach, and read what it showed from its probe file.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.harness import Compositor, colour_near, wait_for
from tests.inside import attacker
from tests.system.bus_apps import (
    INSIDE,
    PYTHON,
    WORK_GREEN,
    apps_dir,
    findings,
    history,
    missing,
    notice_with,
    start_probe,
)

PROBE_SRC = Path(__file__).with_name("portal_probe.py")
URL = "https://example.invalid/portal"
SUCCESS, CANCELLED, FAILED = 0, 1, 2

STANDIN_BROWSER = """#!/bin/sh
t=$(mktemp "$HOME/.run.XXXXXXXX")
f="$HOME/browser-args.${t##*.run.}"
printf '%s\\0' "$@" > "$t"
mv "$t" "$f"
"""


_MISSING = missing()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")

CONFIG = """\
from zionwm.config import desktop, settings
APPS = [{apps!r}]
settings(color_scheme="dark", accent_colour="#3584e4", font="Cantarell 13",
         monospace_font="Source Code Pro 10")
desktop("work", colour="{green}", open_links_in="web", app_dirs=APPS,
        open_files_in={{"application/pdf": "web"}})
desktop("personal", colour="#3b82f6", app_dirs=APPS)
desktop("web", colour="#ef4444", browser=["{inside}/standin-browser"], app_dirs=APPS,
        nested_sandbox=True)
"""


@pytest.fixture(scope="module")
def comp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compositor]:
    root = tmp_path_factory.mktemp("portal")
    apps = apps_dir(root, PROBE_SRC, STANDIN_BROWSER)
    config = CONFIG.format(apps=str(apps), green=WORK_GREEN, inside=INSIDE)
    c = Compositor(
        root,
        config_text=config,
        extra_env={
            "ZIONWM_CHOOSER_SCRIPT": str(root / "chooser-script.json"),
            "ZIONWM_CHOOSER_PROBE": str(root / "chooser-probe.json"),
        },
    )
    c.start()
    try:
        yield c
    finally:
        c.stop()


def home(comp: Compositor, desktop: str) -> Path:
    h = comp.data / "zionwm" / "desktops" / desktop / "home"
    h.mkdir(parents=True, exist_ok=True)
    return h


def user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def probe(comp: Compositor, desktop: str, *args: str, timeout: float = 90) -> dict[str, Any]:
    return findings(start_probe(comp, desktop, PROBE_SRC.name, *args), timeout)


def chooser_steps(comp: Compositor, steps: list[dict[str, Any]]) -> None:
    (comp.root / "chooser-script.json").write_text(json.dumps(steps))
    (comp.root / "chooser-probe.json").unlink(missing_ok=True)


def chooser_seen(comp: Compositor) -> dict[str, Any]:
    seen: dict[str, Any] = json.loads((comp.root / "chooser-probe.json").read_text())
    return seen


def choosers(comp: Compositor) -> list[dict[str, Any]]:
    """The chooser windows on the host socket (titled with the asking desktop's name)."""
    return [w for w in comp.zjson("windows") if (w.get("title") or "").startswith("[work]")]


def wait_chooser_focused(comp: Compositor) -> None:
    """Keys typed before the chooser has the keyboard would go elsewhere."""
    wait_for(lambda: any(w.get("focused") for w in choosers(comp)), 60, "the chooser's focus")
    wait_for(lambda: chooser_seen(comp)["folder"], 30, "the chooser to show a folder")


@pytest.fixture(autouse=True)
def _no_chooser_left(comp: Compositor) -> Iterator[None]:
    yield
    # a failed test must not leave its chooser over the next test's windows
    if choosers(comp):
        comp.type_keys("-k", "Escape")
        wait_for(lambda: not choosers(comp), 30, "the chooser left open to go")


# ---------------------------------------------------------------- Settings, Notification, OpenURI


def test_settings_follow_the_users_config(comp: Compositor) -> None:
    found = probe(comp, "work", "settings")
    assert "error" not in found, found
    appearance = found["all"]["org.freedesktop.appearance"]
    assert appearance["color-scheme"] == 1  # dark
    assert appearance["accent-color"] == pytest.approx([0.2078, 0.5176, 0.8941], abs=0.001)
    gnome = found["all"]["org.gnome.desktop.interface"]
    assert gnome["font-name"] == "Cantarell 13"
    assert gnome["monospace-font-name"] == "Source Code Pro 10"
    assert gnome["color-scheme"] == "prefer-dark"
    # the old Read wraps the value once more; ReadOne does not
    assert found["read"] == [["v", ["u", 1]]]
    assert found["read_one"] == [["s", "Cantarell 13"]]
    assert found["version"] == [["u", 2]]


def test_portal_notification_is_shown_as_works(comp: Compositor) -> None:
    found = probe(comp, "work", "notify", "Build finished", "all green")
    assert found.get("sent"), found
    entry = notice_with(comp, "Build finished")
    assert entry.startswith("[work] "), entry


def test_portal_openuri_opens_the_link_in_web(comp: Compositor) -> None:
    before = set(home(comp, "web").glob("browser-args.*"))
    found = probe(comp, "work", "open-uri", URL)
    assert found.get("code") == SUCCESS, found
    assert found["handle"] == found["expected_handle"]
    notice_with(comp, "Link from work opened in web")
    # told once the browser ran: the stand-in records its arguments and exits at once, and
    # its exit is what says it started
    new = set(home(comp, "web").glob("browser-args.*")) - before
    assert len(new) == 1, new
    (run,) = new
    assert run.read_bytes().split(b"\0")[:-1] == [URL.encode()]


# ---------------------------------------------------------------- FileChooser


def test_the_chooser_opens_a_file_of_work_named_as_the_sandbox_sees_it(comp: Compositor) -> None:
    docs = home(comp, "work") / "Documents"
    docs.mkdir(exist_ok=True)
    (docs / "report.txt").write_text("work report")
    chooser_steps(comp, [{"type": "~/Documents/report.txt"}, {"enter": True}])
    found = probe(comp, "work", "choose", "open", "{}")
    assert found.get("code") == SUCCESS, found
    uri = f"file:///home/{user()}/Documents/report.txt"
    assert found["results"]["uris"] == [uri]
    assert found["read"][uri].startswith("work report")
    seen = chooser_seen(comp)
    assert seen["title"].startswith("[work] "), seen


def test_the_chooser_saves_into_works_home(comp: Compositor) -> None:
    chooser_steps(comp, [{"enter": True}])
    found = probe(comp, "work", "choose", "save", json.dumps({"current_name": "new.odt"}))
    assert found.get("code") == SUCCESS, found
    assert found["results"]["uris"] == [f"file:///home/{user()}/new.odt"]


def test_the_user_cancelling_is_a_cancel(comp: Compositor) -> None:
    chooser_steps(comp, [{"cancel": True}])
    found = probe(comp, "work", "choose", "open", "{}")
    assert found.get("code") == CANCELLED, found


@pytest.mark.security
@pytest.mark.parametrize("how", ["host-path", "climbing"])
def test_a_crafted_current_file_cannot_reach_personals_files(comp: Compositor, how: str) -> None:
    secret = home(comp, "personal") / "diary.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("personal diary")
    # the host path itself, or as the sandbox names it, climbing out of its home to it
    crafted = str(secret) if how == "host-path" else f"/home/{user()}/../../{secret}"
    # the user accepts what the chooser shows preselected, then gives up
    chooser_steps(comp, [{"accept": True}, {"cancel": True}])
    found = probe(
        comp,
        "work",
        "choose",
        "open",
        json.dumps({"current_file": crafted, "current_folder": str(secret.parent)}),
    )
    assert found.get("code") != SUCCESS, found
    assert "personal diary" not in json.dumps(found)
    seen = chooser_seen(comp)
    # the chooser never showed personal's home, nor a name from it
    assert "personal" not in (seen["host_folder"] or ""), seen
    assert "diary.txt" not in seen["names"] and "diary" not in seen["location"], seen


@pytest.mark.security
def test_a_link_in_works_home_to_personals_file_is_refused_by_the_chooser(
    comp: Compositor,
) -> None:
    secret = home(comp, "personal") / "taxes.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("personal taxes")
    link = home(comp, "work") / "innocent.txt"
    link.unlink(missing_ok=True)
    # made inside work by its program, as relative link (it resolves on the host side)
    rel = os.path.relpath(secret, link.parent)
    made = probe_shell(comp, "work", f'ln -s "{rel}" "$HOME/innocent.txt"')
    assert made == 0 and link.is_symlink()
    # chosen by the user the ordinary way: typed on the host's keyboard, then Escape
    chooser_steps(comp, [])
    out = start_probe(comp, "work", PROBE_SRC.name, "choose", "open", "{}")
    wait_chooser_focused(comp)
    comp.type_keys("~/innocent.txt")
    comp.type_keys("-k", "Return")
    seen = wait_for(lambda: (s := chooser_seen(comp))["error"] and s, 30, "the chooser to say no")
    assert "not a file of this desktop" in seen["error"], seen
    comp.type_keys("-k", "Escape")
    found = findings(out, 60)
    assert found.get("code") != SUCCESS, found
    assert "personal taxes" not in json.dumps(found)


@pytest.mark.security
def test_a_linked_folder_does_not_let_the_chooser_list_personals_home(comp: Compositor) -> None:
    (home(comp, "personal") / "letters-to-bank.txt").write_text("x")
    link = home(comp, "work") / "archive"
    if link.is_symlink():
        link.unlink()
    rel = os.path.relpath(home(comp, "personal"), link.parent)
    assert probe_shell(comp, "work", f'ln -s "{rel}" "$HOME/archive"') == 0
    chooser_steps(comp, [{"type": "~/archive"}, {"enter": True}, {"cancel": True}])
    found = probe(comp, "work", "choose", "open", "{}")
    assert found.get("code") == CANCELLED, found
    seen = chooser_seen(comp)
    assert "letters-to-bank.txt" not in seen["names"], seen


def probe_shell(comp: Compositor, desktop: str, script: str) -> int:
    """Run a shell line in the desktop's sandbox; its exit status."""
    name = f"sh-{uuid.uuid4().hex}"
    comp.zionctl("launch", desktop, "--", "/bin/sh", "-c", f'{script}; echo $? > "$HOME/{name}"')
    out = home(comp, desktop) / name
    wait_for(out.exists, 30, "the shell line in the sandbox")
    wait_for(lambda: out.read_text().strip() != "", 10, "its status")
    return int(out.read_text())


# ---------------------------------------------------------------- Screenshot

PERSONAL_MAGENTA = "ff00ff"
WORK_BODY = "00c000"


@pytest.mark.security
@pytest.mark.parametrize("shown", ["personal", "overview"])
def test_a_screenshot_of_work_has_works_pixels_and_none_of_personals(
    comp: Compositor, shown: str, tmp_path: Path
) -> None:
    w = attacker(comp, "work", "big-window", width=300, height=200, body=WORK_BODY, bar=WORK_BODY)
    p = attacker(
        comp,
        "personal",
        "big-window",
        width=600,
        height=400,
        body=PERSONAL_MAGENTA,
        bar=PERSONAL_MAGENTA,
    )
    try:
        w.ready()
        p.ready()
        comp.wait_window(desktop="work")
        comp.wait_window(desktop="personal")
        # personal's window on screen (or both desktops in the overview) while work asks
        comp.zionctl("switch", "personal")
        if shown == "overview":
            comp.zionctl("overview")
        screen = comp.screenshot(tmp_path / "screen.png")
        assert _count(screen, "#" + PERSONAL_MAGENTA) > 10000, "personal's window not on screen"
        found = probe(comp, "work", "screenshot")
        assert found.get("code") == SUCCESS, found
        assert found["readable"], found
        host_file = home(comp, "work") / os.path.relpath(found["file"], f"/home/{user()}")
        shot = Image.open(host_file).convert("RGB")
        assert shot.size == screen.size
        assert _count(shot, "#" + PERSONAL_MAGENTA) == 0, "personal's pixels are in it"
        # all of work's window, though personal's bigger one lies over it on screen
        assert _count(shot, "#" + WORK_BODY) > 300 * 200 * 0.9, "work's window is not in it"
        # nor the strip across the top, in personal's colour while personal is shown
        assert _count(shot, "#3b82f6") == 0
        notice_with(comp, "work took a screenshot")
    finally:
        if shown == "overview":
            comp.zionctl("overview", check=False)
        w.stop()
        p.stop()


def test_the_capture_request_draws_one_desktop_only(comp: Compositor) -> None:
    from zionwm.ctl import ControlClient

    p = attacker(
        comp,
        "personal",
        "big-window",
        width=200,
        height=150,
        body=PERSONAL_MAGENTA,
        bar=PERSONAL_MAGENTA,
    )
    try:
        p.ready()
        comp.wait_window(desktop="personal")
        with ControlClient(comp.runtime / "zionwm" / "ipc.sock") as c:
            theirs = c.request("capture", desktop="personal")
            ours = c.request("capture", desktop="web")
        img = Image.open(io.BytesIO(base64.b64decode(theirs["png"]))).convert("RGB")
        assert _count(img, "#" + PERSONAL_MAGENTA) >= 200 * 150 * 0.9
        none = Image.open(io.BytesIO(base64.b64decode(ours["png"]))).convert("RGB")
        assert _count(none, "#" + PERSONAL_MAGENTA) == 0
    finally:
        p.stop()


def _count(img: Image.Image, colour: str) -> int:
    rgb = img.convert("RGB")
    hist = rgb.getcolors(maxcolors=1 << 20) or []
    return sum(n for n, px in hist if colour_near(px, colour, tol=6))


# ---------------------------------------------------------------- files opened elsewhere


def files_ready(comp: Compositor, n: int) -> None:
    """Wait until work's portal takes `n` more files at once: its rate limit (a few at once,
    then one every two seconds) is shared by every test that opens a file in work, so each
    of them waits for what it needs, whichever tests ran before it."""

    def ready() -> bool:
        bus = comp.zjson("status")["desktop_buses"].get("work") or {}
        # a bus not started yet has its whole allowance
        return int(bus.get("portal_files_ready", n)) >= n

    wait_for(ready, 30, f"work's portal to take {n} more file(s)", interval=0.25)


def files_refused(comp: Compositor) -> int:
    bus = comp.zjson("status")["desktop_buses"].get("work") or {}
    return int(bus.get("portal_files_refused", 0))


@pytest.mark.security
def test_files_handed_over_too_fast_are_refused_and_the_user_told_how_many(
    comp: Compositor,
) -> None:
    files_ready(comp, 3)
    work = home(comp, "work")
    (work / "burst.txt").write_text("one of many")
    for name in ("burst-done", "burst-refused"):
        (work / name).unlink(missing_ok=True)
    refused_before = files_refused(comp)
    # far more than the few at once the portal takes; each refusal fails the program's call
    script = (
        'i=0; while [ $i -lt 12 ]; do xdg-open "$HOME/burst.txt" 2>/dev/null '
        '|| echo x >> "$HOME/burst-refused"; i=$((i+1)); done; touch "$HOME/burst-done"'
    )
    comp.zionctl("launch", "work", "--", "/bin/sh", "-c", script)
    wait_for((work / "burst-done").exists, 60, "the burst of xdg-open calls")
    refused = files_refused(comp) - refused_before
    assert refused >= 1, "nothing was refused: the limit did not hold"
    assert len((work / "burst-refused").read_text().split()) == refused

    def told() -> int:
        counts = [
            int(n.rsplit(": ", 1)[1].split()[0])
            for n in history(comp)
            if n.startswith("Too many files at once from work: ")
        ]
        return sum(counts)

    # every refused file is told (the refusals after the first notice in a later one)
    wait_for(lambda: told() == refused, 30, f"notices telling of {refused} refused file(s)")


def test_a_pdf_opened_in_work_goes_to_web_through_the_audit(comp: Compositor) -> None:
    files_ready(comp, 1)
    (home(comp, "work") / "invoice.pdf").write_bytes(b"%PDF-1.4\n%test\n")
    comp.zionctl("launch", "work", "--", "xdg-open", f"/home/{user()}/invoice.pdf")
    notice_with(comp, "File from work sent to web through the audit: invoice.pdf")
    listed = wait_for(
        lambda: (
            "invoice.pdf" in (r := comp.zionctl("quarantine", "list", check=False)).stdout
            and r.stdout
        ),
        60,
        "the file in the quarantine",
    )
    assert "work" in listed and "web" in listed


def test_a_file_with_no_rule_is_not_sent_anywhere(comp: Compositor) -> None:
    files_ready(comp, 1)
    (home(comp, "work") / "notes.txt").write_text("plain")
    comp.zionctl("launch", "work", "--", "xdg-open", f"/home/{user()}/notes.txt")
    notice_with(comp, "no desktop is set to open text/plain files from work")


@pytest.mark.security
def test_opening_a_link_to_personals_file_sends_nothing(comp: Compositor) -> None:
    files_ready(comp, 2)
    secret = home(comp, "personal") / "contract.pdf"
    secret.write_bytes(b"%PDF-1.4\n% personal contract\n")
    link = home(comp, "work") / "look.pdf"
    link.unlink(missing_ok=True)
    rel = os.path.relpath(secret, link.parent)
    assert probe_shell(comp, "work", f'ln -s "{rel}" "$HOME/look.pdf"') == 0
    found = probe(comp, "work", "open-file", f"/home/{user()}/look.pdf")
    # inside the sandbox the link leads nowhere, so the program cannot even open it; by name
    # (xdg-open) the compositor resolves it on the host and refuses
    assert found.get("code") != SUCCESS, found
    comp.zionctl("launch", "work", "--", "xdg-open", f"/home/{user()}/look.pdf")
    notice_with(comp, "a file was not opened: not a file of this desktop")
    assert "contract.pdf" not in comp.zionctl("quarantine", "list", check=False).stdout


def test_a_real_gtk_program_in_work_follows_the_users_font(comp: Compositor) -> None:
    import subprocess

    gi = subprocess.run([PYTHON, "-c", "import gi"], capture_output=True)
    if gi.returncode != 0:
        pytest.fail(
            "python3-gi is not installed"
            " (scripts/setup-system.sh --with-tests installs it: a broken set-up)"
        )
    src = Path(__file__).with_name("gtk_settings_probe.py")
    name = f"gtk-{uuid.uuid4().hex}.json"
    target = home(comp, "work") / ".gtk_settings_probe.py"
    shutil.copy(src, target)
    comp.zionctl("launch", "work", "--", PYTHON, f"/home/{user()}/.gtk_settings_probe.py", name)
    out = home(comp, "work") / name
    wait_for(out.exists, 60, "the GTK program's settings")
    seen = json.loads(out.read_text())
    assert seen["font"] == "Cantarell 13", seen


def test_the_user_types_a_path_into_the_chooser_on_the_host(comp: Compositor) -> None:
    docs = home(comp, "work") / "Documents"
    docs.mkdir(exist_ok=True)
    (docs / "typed.txt").write_text("typed by the user")
    chooser_steps(comp, [])  # no test hook: keys from the host's virtual keyboard

    out = start_probe(comp, "work", PROBE_SRC.name, "choose", "open", "{}")
    wait_chooser_focused(comp)
    comp.type_keys("~/Documents/typed.txt")
    comp.type_keys("-k", "Return")
    found = findings(out, 60)
    uri = f"file:///home/{user()}/Documents/typed.txt"
    assert found.get("code") == SUCCESS and found["results"]["uris"] == [uri], found
    assert found["read"][uri].startswith("typed by the user")


def test_a_chooser_ends_when_the_program_that_asked_is_gone(comp: Compositor) -> None:
    chooser_steps(comp, [])

    script = f"timeout 5 {PYTHON} {INSIDE}/portal_probe.py choose open '{{}}' gone.json; sleep 60"
    comp.zionctl("launch", "work", "--", "/bin/sh", "-c", script)
    wait_for(lambda: choosers(comp), 60, "the chooser's window")
    # the program is killed after 5 s without closing its request: its chooser goes too
    wait_for(lambda: not choosers(comp), 60, "the chooser to go with the program")


def test_a_file_handed_over_by_fd_goes_where_its_type_says(comp: Compositor) -> None:
    files_ready(comp, 1)
    (home(comp, "work") / "statement.pdf").write_bytes(b"%PDF-1.4\n%statement\n")
    found = probe(comp, "work", "open-file", f"/home/{user()}/statement.pdf")
    assert found.get("code") == SUCCESS, found
    notice_with(comp, "File from work sent to web through the audit: statement.pdf")


@pytest.mark.security
def test_a_file_outside_the_desktops_folders_is_not_sent_by_fd(comp: Compositor) -> None:
    files_ready(comp, 1)
    # a file the sandbox can open but that is not one of the desktop's own (zionwm's
    # synthesized passwd): the host file of that name is the host's own, never sent
    found = probe(comp, "work", "open-file", "/etc/passwd")
    assert found.get("code") == FAILED, found
    notice_with(comp, "a file was not opened: not a file of this desktop")


def test_a_reloaded_config_changes_what_programs_read(comp: Compositor) -> None:
    assert comp.config_path is not None
    before = comp.config_path.read_text()
    # work's bus runs already (so the change reaches a running portal)
    assert probe(comp, "work", "settings")["read_one"] == [["s", "Cantarell 13"]]
    try:
        comp.config_path.write_text(before.replace('font="Cantarell 13"', 'font="Inter 12"'))
        comp.zionctl("reload")
        found = probe(comp, "work", "settings")
        assert found["read_one"] == [["s", "Inter 12"]], found
    finally:
        comp.config_path.write_text(before)
        comp.zionctl("reload")


CHROMIUM = "/usr/lib/chromium/chromium"  # the /usr/bin wrapper reads /etc/chromium.d


@pytest.mark.slow
def test_chromium_in_web_asks_the_portal(comp: Compositor) -> None:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing (scripts/setup-system.sh --with-tests installs it)")
    marker = f"/tmp/zt-portal-chromium-{uuid.uuid4().hex}"
    comp.zionctl(
        "launch",
        "web",
        "--",
        CHROMIUM,
        "--ozone-platform=wayland",
        "--no-first-run",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={marker}",
        "data:text/html,<p>portal</p>",
    )

    def calls() -> dict[str, int]:
        found: dict[str, int] = comp.zjson("status")["desktop_buses"]["web"]["portal_calls"]
        settings = any(k.startswith("Settings.") for k in found)
        # and it asks the portals' versions (FileChooser's among them)
        versions = found.get("Properties.Get", 0) >= 1
        return found if settings and versions else {}

    wait_for(calls, 120, "chromium to read the Settings portal and the portals' versions")
    comp.zionctl("kill", "web")


def test_a_file_deleted_after_it_was_opened_is_refused_cleanly(comp: Compositor) -> None:
    files_ready(comp, 1)
    script = (
        'printf "%%PDF-1.4" > "$HOME/gone.pdf"; exec 3< "$HOME/gone.pdf"; rm "$HOME/gone.pdf"; '
        f"exec {PYTHON} {INSIDE}/portal_probe.py open-file /proc/self/fd/3 gone-probe.json"
    )
    comp.zionctl("launch", "work", "--", "/bin/sh", "-c", script)
    out = home(comp, "work") / "gone-probe.json"
    wait_for(out.exists, 60, "the probe's findings")
    assert json.loads(out.read_text()).get("code") == FAILED
    assert comp.alive()


VIEWER = """#!/bin/sh
# a stand-in for the target desktop's PDF viewer: records what it was handed, and where
printf '%s\\0' "$@" > "$HOME/viewer-args.tmp"
printf 'desktop=%s\\0' "$ZIONWM_DESKTOP" >> "$HOME/viewer-args.tmp"
cat "$1" > "$HOME/viewer-saw.tmp" && mv "$HOME/viewer-saw.tmp" "$HOME/viewer-saw"
mv "$HOME/viewer-args.tmp" "$HOME/viewer-args"
"""


def send_and_release(comp: Compositor, name: str, body: bytes) -> None:
    """A PDF of work that a program of work opens: sent to web through the audit, then
    released by hand (a tiny PDF cannot be inspected: the user takes it out anyway)."""
    files_ready(comp, 1)
    (home(comp, "work") / name).write_bytes(body)
    comp.zionctl("launch", "work", "--", "xdg-open", f"/home/{user()}/{name}")
    notice_with(comp, f"File from work sent to web through the audit: {name}")

    def queued() -> int | None:
        items = json.loads(comp.zionctl("--json", "quarantine", "list").stdout)["items"]
        found = [i for i in items if i["name"] == name and i["state"] != "released"]
        return found[0]["id"] if found else None

    item_id = wait_for(queued, 60, "the file in the quarantine")
    # nothing is opened while the file is in quarantine
    assert not [n for n in history(comp) if f"open {name} in web" in n.lower()]
    release = ("quarantine", "release", "--i-understand", str(item_id))
    wait_for(
        lambda: comp.zionctl(*release, check=False).returncode == 0,
        60,
        "the file audited and released by hand",
    )


def webs_default_for_pdfs(comp: Compositor, desktop_file: str | None, script: str = "") -> None:
    """web's own default program for PDFs (its ~/.config/mimeapps.list), as its user set
    it: `desktop_file` running `script`, or none."""
    web = home(comp, "web")
    (web / ".config").mkdir(exist_ok=True)
    apps = web / ".local" / "share" / "applications"
    apps.mkdir(parents=True, exist_ok=True)
    # xdg-utils also takes, when no default is named, a program of web's own that says it
    # opens the type: only this test's own is there
    for old in apps.glob("*.desktop"):
        old.unlink()
    if desktop_file is None:
        (web / ".config" / "mimeapps.list").write_text("[Default Applications]\n")
        return
    (web / f"{desktop_file}.sh").write_text(script)
    (apps / f"{desktop_file}.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Viewer\n"
        f"Exec=/bin/sh /home/{user()}/{desktop_file}.sh %f\nMimeType=application/pdf;\n"
    )
    (web / ".config" / "mimeapps.list").write_text(
        f"[Default Applications]\napplication/pdf={desktop_file}.desktop\n"
    )


def test_a_pdf_opened_in_work_is_opened_in_web_with_webs_viewer_once_released(
    comp: Compositor,
) -> None:
    web = home(comp, "web")
    webs_default_for_pdfs(comp, "standin-viewer", VIEWER)
    body = b"%PDF-1.4\n% statement to open in web\n"
    send_and_release(comp, "to-open.pdf", body)
    # told once the viewer ran (it records what it was handed, then exits)
    notice_with(comp, "Opened to-open.pdf in web")
    args = (web / "viewer-args").read_bytes()
    fields = args.split(b"\0")[:-1]
    assert fields == [f"/home/{user()}/Incoming/work/to-open.pdf".encode(), b"desktop=web"]
    assert (web / "viewer-saw").read_bytes() == body
    assert not (home(comp, "work") / "viewer-args").exists()


def test_a_released_pdf_whose_program_in_web_fails_is_told_not_opened(comp: Compositor) -> None:
    webs_default_for_pdfs(comp, "failing-viewer", "exit 1\n")
    send_and_release(comp, "bad-viewer.pdf", b"%PDF-1.4\n% for a failing viewer\n")
    failed = notice_with(comp, "Could not open bad-viewer.pdf in web")
    assert "its program for this type of file failed" in failed, failed
    told = [n for n in history(comp) if "bad-viewer.pdf in web" in n]
    assert told == [failed], told


def _systems_pdf_program() -> str:
    """The program the system's own XDG data names for PDFs (as a desktop sees it: /usr is
    the host's), if any."""
    import subprocess

    with tempfile.TemporaryDirectory() as empty:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": empty,
            "XDG_CONFIG_DIRS": "/etc/xdg",
            "XDG_DATA_DIRS": "/usr/local/share:/usr/share",
        }
        out = subprocess.run(
            ["xdg-mime", "query", "default", "application/pdf"],
            env=env,
            capture_output=True,
            text=True,
        )
    return out.stdout.strip()


def test_a_released_pdf_with_no_program_for_it_in_web_opens_in_webs_browser(
    comp: Compositor,
) -> None:
    web = home(comp, "web")
    webs_default_for_pdfs(comp, None)
    before = set(web.glob("browser-args.*"))
    send_and_release(comp, "no-viewer.pdf", b"%PDF-1.4\n% for web's browser\n")
    notice_with(comp, "Opened no-viewer.pdf in web")
    # not handed back to zionwm as web's own file to send on (web has no rule for PDFs)
    assert not [n for n in history(comp) if n.startswith("web: a file was not opened")]
    system = _systems_pdf_program()
    if not system:  # xdg-utils falls back to $BROWSER: web's own `browser`
        (run,) = set(web.glob("browser-args.*")) - before
        path = f"/home/{user()}/Incoming/work/no-viewer.pdf"
        assert run.read_bytes().split(b"\0")[:-1] == [path.encode()]
