"""zionwm-manager end to end: the real compositor headless, the real GTK 4 manager on its
host socket (cairo renderer on wl_shm), driven with wtype; what it shows read back with grim
and from the window's own widget tree (tests have no accessibility bus)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import VENV_BIN, Compositor, colour_near, require, wait_for

CONFIG = """
from zionwm.config import Downloads, Network, bind, desktop
# what alpha sends to beta is audited, then held for an hour unless the user releases it
desktop("alpha", colour="#e11d48", downloads=Downloads(release_to="beta", hold="1h"))
desktop("beta", colour="#0ea5e9")
# a filtered network: the names its programs look up and are refused reach the manager
desktop("web", colour="#a855f7", network=Network.filtered(["example.org"]))
bind("Super+M", "manager")
"""
COLOURS = {"alpha": "#e11d48", "beta": "#0ea5e9", "web": "#a855f7"}
# 48 MiB written (and synced) in a desktop's home, then read: page cache in its cgroup
FILL = (
    "head -c 48M /dev/zero > ~/cache.bin && sync && cat ~/cache.bin > /dev/null && "
    "touch ~/filled && exec sleep 600"
)
DEFAULT_CLAMD_SOCKET = "/run/clamav/clamd.ctl"  # the default config uses a clamd running there
ARTEFACTS = os.environ.get("ZIONWM_ARTEFACTS")


def _gtk_missing() -> str | None:
    r = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-c",
            "import gi; gi.require_version('Gtk','4.0'); gi.require_version('Adw','1'); "
            "from gi.repository import Gtk, Adw",
        ],
        capture_output=True,
        text=True,
    )
    return None if r.returncode == 0 else r.stderr.strip().splitlines()[-1]


pytestmark = pytest.mark.skipif(
    _gtk_missing() is not None,
    reason=f"GTK 4 / libadwaita through PyGObject are not installed: {_gtk_missing()}",
)


class Manager:
    def __init__(self, comp: Compositor, root: Path) -> None:
        self.comp = comp
        self.probe = root / "probe.json"
        self.shots = Path(ARTEFACTS) if ARTEFACTS else root / "shots"
        self.shots.mkdir(parents=True, exist_ok=True)

    def state(self) -> dict[str, Any]:
        return json.loads(self.probe.read_text())

    def items(self, title: str | None = None) -> list[dict[str, Any]]:
        wins = self.state()["windows"]
        return [i for w in wins if title is None or w["title"] == title for i in w["items"]]

    def texts(self, title: str | None = None) -> list[str]:
        return [i.get("text", "") for i in self.items(title)]

    def wait_text(self, text: str, title: str | None = None, timeout: float = 20) -> None:
        wait_for(lambda: text in self.texts(title), timeout, f"{text!r} in the manager")

    def window(self) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for w in self.comp.windows("host"):
                if w["app_id"] == "org.zionwm.Manager":
                    return w
            return None

        return wait_for(found, 30, "the manager's window")

    def wait_keyboard(self, title: str) -> None:
        """Until the window has the keyboard and, in it, a text field has the focus."""

        def ready() -> bool:
            for w in self.state()["windows"]:
                if w["title"] == title and w["active"]:
                    return any(i.get("focused") for i in w["items"])
            return False

        wait_for(ready, 20, f"the keyboard in a text field of {title!r}")

    def wait_active(self, title: str) -> None:
        def active() -> bool:
            return any(w["title"] == title and w["active"] for w in self.state()["windows"])

        wait_for(active, 20, f"{title!r} to have the keyboard")

    def wait_focus(self, title: str, name: str) -> None:
        def focused() -> bool:
            return any(w["title"] == title and w["focus"] == name for w in self.state()["windows"])

        wait_for(focused, 20, f"the keyboard on {name!r} in {title!r}")

    def ensure(self) -> dict[str, Any]:
        """The manager's window, opened through the control socket if it is not open."""
        if not any(w["app_id"] == "org.zionwm.Manager" for w in self.comp.windows("host")):
            self.comp.zionctl("manager")
        win = self.window()
        self.wait_active("Desktops")  # keys typed now reach it
        return win

    def focus(self) -> str | None:
        return next((w["focus"] for w in self.state()["windows"] if w["active"]), None)

    def where_keys_go(self) -> str:
        """For a failure message: how old the window's own report is, and which window
        the compositor gives the keyboard."""
        age = time.time() - self.probe.stat().st_mtime
        focused = [
            f"{w['desktop']}:{w['app_id']}:{w['title']!r}"
            for w in self.comp.windows()
            if w.get("focused")
        ]
        keys = self.state().get("keys")
        return (
            f"the manager's report is {age:.1f} s old and it saw the keys {keys}; "
            f"the compositor's focused window: {focused}"
        )

    def tab_to(self, name: str, key: str = "Tab", timeout: float = 60) -> None:
        """Type `key` until the keyboard is on `name` in the active window; a key is typed
        only once the window has said where the previous one put the focus."""
        last = [0.0]
        seen: list[str | None] = []

        def there() -> bool:
            now = self.focus()
            if now == name:
                return True
            if time.monotonic() - last[0] > 1.2:
                seen.append(now)
                self.comp.type_keys("-k", key)
                last[0] = time.monotonic()
            return False

        try:
            wait_for(there, timeout, f"the keyboard on {name!r}")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; the keyboard was on {seen}; {self.where_keys_go()}"
            ) from None

    def dialog_with(self, text: str) -> dict[str, Any] | None:
        for w in self.state()["windows"]:
            if any(text in i.get("text", "") for i in w["items"]):
                return w
        return None

    def shot(self, name: str) -> Any:
        path = self.shots / f"manager-{name}.png"
        return self.comp.screenshot(path)


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    require("wtype")
    require("grim")
    root = tmp_path_factory.mktemp("manager")
    probe = root / "probe.json"
    comp = Compositor(
        root,
        config_text=CONFIG,
        extra_env={"ZIONWM_MANAGER_PROBE": str(probe), "GSK_RENDERER": "cairo"},
    ).start()
    try:
        yield Manager(comp, root)
    finally:
        comp.stop()


def test_super_m_opens_the_manager_with_every_desktop(manager: Manager) -> None:
    comp = manager.comp
    comp.type_keys("-M", "logo", "m", "-m", "logo")
    manager.window()
    for name in COLOURS:
        manager.wait_text(name, "Desktops")
    # a second Super+M does not open a second manager
    r = comp.zionctl("manager")
    assert "already open" in r.stdout
    # each desktop's name is drawn beside a patch of its colour: the swatch the window says
    # it drew, found on screen, and text pixels where the window says the name is
    items = manager.items("Desktops")
    img = manager.shot("desktops")
    for name, colour in COLOURS.items():
        swatches = [i for i in items if i["kind"] == "swatch" and i["colour"] == colour]
        labels = [i for i in items if i["kind"] == "label" and i["text"] == name]
        assert swatches and labels, f"{name}: no swatch or label in the window"
        sx, sy, sw, sh = swatches[0]["bounds"]
        lx, ly, lw, lh = labels[0]["bounds"]
        assert abs((sy + sh / 2) - (ly + lh / 2)) < sh, f"{name}: name not beside its colour"
        hits = [
            (x, y)
            for y in range(img.height)
            for x in range(0, img.width, 2)
            if colour_near(img.getpixel((x, y)), colour, tol=6)
        ]
        assert len(hits) > 50, f"{name}'s colour {colour} is not on screen"
        # where the swatch is on screen, the name is drawn at the window's offset from it
        cx = sum(x for x, _ in hits) / len(hits)
        cy = sum(y for _, y in hits) / len(hits)
        ox, oy = cx - (sx + sw / 2), cy - (sy + sh / 2)
        box = (int(lx + ox), int(ly + oy), int(lx + ox + lw), int(ly + oy + lh))
        dark = sum(img.crop(box).convert("L").histogram()[:100])  # pixels darker than 100
        assert dark > 10, f"{name}: no text drawn where the window put its name"


def test_usage_is_sampled_only_while_the_list_is_shown(manager: Manager) -> None:
    comp = manager.comp
    manager.ensure()
    wait_for(lambda: comp.zjson("status").get("usage_sampling"), 20, "usage sampling on")
    manager.wait_text("0 % CPU · 0 B · 0 processes", "Desktops")
    comp.type_keys("-M", "ctrl", "2", "-m", "ctrl")  # the apps page
    wait_for(lambda: not comp.zjson("status").get("usage_sampling"), 20, "usage sampling off")
    comp.type_keys("-M", "ctrl", "1", "-m", "ctrl")
    wait_for(lambda: comp.zjson("status").get("usage_sampling"), 20, "usage sampling on again")


def test_create_a_desktop_with_the_keyboard(manager: Manager) -> None:
    comp = manager.comp
    manager.ensure()
    comp.type_keys("-M", "ctrl", "n", "-m", "ctrl")
    manager.wait_text("Identity", "New desktop")
    manager.wait_keyboard("New desktop")
    # a refused name: the words appear beside the name field, nothing is created
    comp.type_keys("Bad Name")
    comp.type_keys("-M", "ctrl", "-k", "Return", "-m", "ctrl")
    wait_for(
        lambda: any(
            i["kind"] == "error-row" and i["text"] == "Name" and "lower-case" in i["error"]
            for i in manager.items("New desktop")
        ),
        20,
        "the name's error beside it",
    )
    manager.shot("create-error")
    assert set(comp.desktops()) == set(COLOURS)
    comp.type_keys("-M", "ctrl", "a", "-m", "ctrl", "gamma")
    manager.shot("create")
    comp.type_keys("-M", "ctrl", "-k", "Return", "-m", "ctrl")
    wait_for(lambda: "gamma" in comp.desktops(), 20, "gamma in zionctl desktops")
    manager.wait_text("gamma", "Desktops")
    shown = comp.zjson("desktop", "show", "gamma")
    assert shown["origin"] == "run-time"


def test_tailor_a_config_desktop_shows_its_layers(manager: Manager) -> None:
    comp = manager.comp
    manager.ensure()
    manager.wait_active("Desktops")
    comp.type_keys("-M", "ctrl", "1", "-m", "ctrl")  # the keyboard on the first row: alpha
    manager.wait_focus("Desktops", "alpha")
    # Return activates the row. Under load a key typed right after the focus moved was seen
    # to go unanswered, so it is typed again (at most every 2 s) until the dialog is there.
    last = [0.0]

    def tailor_open() -> bool:
        if "Declared in your config file" in manager.texts("Tailor alpha"):
            return True
        if time.monotonic() - last[0] > 2:
            comp.type_keys("-k", "Return")
            last[0] = time.monotonic()
        return False

    wait_for(tailor_open, 30, "alpha's Tailor dialog")
    texts = manager.texts("Tailor alpha")
    # alpha's colour comes from config.py, its memory limit from nowhere (the default)
    assert any("Now set by: config file" in t for t in texts), texts
    manager.shot("tailor")
    comp.type_keys("-k", "Escape")
    wait_for(
        lambda: "Tailor alpha" not in [w["title"] for w in manager.state()["windows"]],
        20,
        "the dialog closed",
    )


def test_quarantine_page_without_items(manager: Manager) -> None:
    comp = manager.comp
    manager.ensure()
    comp.type_keys("-M", "ctrl", "3", "-m", "ctrl")
    wait_for(
        lambda: any(
            t in manager.texts("Desktops")
            for t in ("Nothing in quarantine", "The quarantine service is not running")
        ),
        20,
        "the quarantine page",
    )
    manager.shot("quarantine")
    comp.type_keys("-M", "ctrl", "1", "-m", "ctrl")


def test_release_a_held_item(manager: Manager) -> None:
    comp = manager.comp
    manager.ensure()
    home = comp.desktop_home("alpha")
    home.mkdir(parents=True, exist_ok=True)
    (home / "notes.txt").write_text("meeting at noon\n")
    comp.zionctl("send", "--from", "alpha", "--to", "beta", "notes.txt")

    def held() -> list[dict[str, Any]]:
        items = json.loads(comp.zionctl("quarantine", "--json", "list").stdout)["items"]
        return [i for i in items if i["name"] == "notes.txt" and i["state"] == "held"]

    (item,) = wait_for(held, 60, "notes.txt held in quarantine")
    if os.path.exists(DEFAULT_CLAMD_SOCKET):
        pytest.skip(f"a clamd runs at {DEFAULT_CLAMD_SOCKET}: notes.txt is clean, not asked for")
    # no antivirus here: nothing is called clean, and with the default antivirus="required"
    # the item would wait after its hold; the user may still release it, after a question
    assert item["verdict"] == "no-antivirus-scan", item
    comp.type_keys("-M", "ctrl", "3", "-m", "ctrl")
    manager.wait_text("notes.txt", "Desktops")
    # the page says in words that no antivirus looked at it, and how long it is still held
    wait_for(
        lambda: any(
            "not scanned by an antivirus" in t and "left" in t for t in manager.texts("Desktops")
        ),
        20,
        "the item's verdict in words and its time left",
    )
    manager.shot("quarantine-held")
    comp.type_keys("-M", "ctrl", "3", "-m", "ctrl")  # the keyboard on the first Release
    manager.wait_focus("Desktops", "Release")
    question = "Release notes.txt without an antivirus scan?"

    def dialog() -> dict[str, Any] | None:
        for w in manager.state()["windows"]:
            if any(i.get("text") == question for i in w["items"]):
                return w
        return None

    last = [0.0]

    def asked() -> dict[str, Any] | None:
        if (w := dialog()) is not None:
            return w
        # typed again (every 3 s) only while no question is open and Release is focused
        if time.monotonic() - last[0] > 3 and any(
            w["focus"] == "Release" for w in manager.state()["windows"]
        ):
            comp.type_keys("-k", "Return")
            last[0] = time.monotonic()
        return None

    # Release on an item no antivirus scanned asks a second time, in words
    try:
        w = wait_for(asked, 30, "the question before releasing an item no antivirus scanned")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {manager.where_keys_go()}") from None
    texts = [i.get("text", "") for i in w["items"]]
    assert any("no antivirus looked at it" in t and "beta" in t for t in texts), texts
    manager.shot("quarantine-release-question")
    assert held(), "released without the second confirmation"
    delivered = comp.desktop_home("beta") / "Incoming" / "alpha"
    last[0] = 0.0

    def released() -> bool:
        if (delivered / "notes.txt").exists():
            return True
        # the question's default is Cancel: Tab to "Release anyway", then Return, each typed
        # again (every 3 s) only while the question is open and the item still held
        w = dialog()
        if w is not None and w["active"] and time.monotonic() - last[0] > 3 and held():
            comp.type_keys("-k", "Return" if w["focus"] == "Release anyway" else "Tab")
            last[0] = time.monotonic()
        return False

    wait_for(released, 60, "notes.txt delivered to beta")
    assert (delivered / "notes.txt").read_text() == "meeting at noon\n"
    shown = json.loads(comp.zionctl("quarantine", "--json", "show", str(item["id"])).stdout)
    assert (shown.get("item") or shown)["state"] == "released"


def test_launch_an_app_into_the_shown_desktop(manager: Manager) -> None:
    comp = manager.comp
    if shutil.which("foot") is None or not Path("/usr/share/applications/foot.desktop").exists():
        pytest.skip("foot and its .desktop entry are not installed on this machine")
    manager.ensure()
    comp.zionctl("switch", "beta")
    comp.type_keys("-M", "ctrl", "2", "-m", "ctrl")
    manager.wait_text("Apps start in beta", "Desktops")
    manager.wait_text("Foot", "Desktops")
    manager.shot("apps")
    manager.wait_keyboard("Desktops")  # the search field
    comp.type_keys("foot")
    comp.type_keys("-k", "Return")
    (win,) = comp.wait_window("beta", app_id="foot", timeout=30)
    assert win["desktop"] == "beta"
    assert not comp.windows("alpha")


def test_hibernate_from_the_menu_says_what_it_frees_then_frees_it(manager: Manager) -> None:
    comp = manager.comp
    if not comp.desktops()["alpha"].get("cgroup"):
        pytest.skip("no writable cgroups here: nothing to freeze or push out")
    comp.zionctl("switch", "beta")  # the shown desktop cannot be frozen
    comp.zionctl("launch", "alpha", "--", "sh", "-c", FILL)
    home = comp.data / "zionwm" / "desktops" / "alpha" / "home"
    wait_for((home / "filled").exists, 60, "alpha's program to fill its page cache")
    est = comp.zjson("desktop", "hibernate", "alpha", "--estimate")["estimate"]
    if not est["can_reclaim"]:
        pytest.skip(f"memory cannot be pushed out here: {est['reason']}")
    manager.ensure()
    comp.type_keys("-M", "ctrl", "1", "-m", "ctrl")
    manager.wait_focus("Desktops", "alpha")
    # the disk use of alpha's home, walked again on Ctrl+1, beside its name (du's figure)
    du = subprocess.run(["du", "-s", "-B1", "-x", str(home)], capture_output=True, text=True)
    want = int(du.stdout.split()[0])
    wait_for(
        lambda: any(
            f"home {want / 2**20:.1f} MiB" in t or f"home {(want - 4096) / 2**20:.1f} MiB" in t
            for t in manager.texts("Desktops")
        ),
        30,
        f"alpha's home shown as {want / 2**20:.1f} MiB",
    )
    manager.tab_to("More actions")
    manager.shot("desktops-menu")
    last = [0.0]

    def menu_open() -> bool:
        if manager.focus() == "Tailor…":
            return True
        if manager.focus() == "More actions" and time.monotonic() - last[0] > 3:
            comp.type_keys("-k", "Return")
            last[0] = time.monotonic()
        return False

    wait_for(menu_open, 30, "alpha's menu open")
    manager.tab_to("Hibernate…", key="Down")
    comp.type_keys("-k", "Return")
    question = "Hibernate alpha?"
    w = wait_for(lambda: manager.dialog_with(question), 30, "the hibernate question")
    texts = [i.get("text", "") for i in w["items"]]
    assert any("of file cache" in t and "MiB" in t for t in texts), texts
    manager.shot("hibernate")
    manager.tab_to("Hibernate")
    comp.type_keys("-k", "Return")
    wait_for(lambda: comp.desktops()["alpha"]["frozen"], 30, "alpha frozen")
    wait_for(
        lambda: any(t.startswith("Hibernated alpha:") for t in manager.texts("Desktops")),
        30,
        "the toast saying what hibernating freed",
    )
    comp.zionctl("kill", "alpha")


def _privileged_network_missing() -> str | None:
    from zionwm.isolation.network.caps import probe

    caps = probe()
    if not caps.root or caps.nft is None or not caps.netns_dir_writable:
        return "filtered networks need root, nft and a writable /run/netns"
    return None


def test_a_refused_host_is_offered_as_a_diff_and_allowed_on_click(manager: Manager) -> None:
    comp = manager.comp
    if (why := _privileged_network_missing()) is not None:
        pytest.skip(why)
    manager.ensure()
    lookup = "import socket\ntry: socket.gethostbyname('refused.example.net')\nexcept OSError: pass"
    comp.zionctl("launch", "web", "--", "python3", "-c", lookup)
    wait_for(
        lambda: comp.zjson("desktop", "refusals", "web")["refusals"],
        60,
        "the refused name listed by the compositor",
    )
    manager.wait_text("web: refused.example.net", "Desktops")
    manager.shot("refusals")
    comp.type_keys("-M", "ctrl", "r", "-m", "ctrl")
    manager.wait_focus("Desktops", "Allow…")
    question = "Allow refused.example.net in web?"
    last = [0.0]

    def asked() -> dict[str, Any] | None:
        if (w := manager.dialog_with(question)) is not None:
            return w
        if time.monotonic() - last[0] > 3 and manager.focus() == "Allow…":
            comp.type_keys("-k", "Return")
            last[0] = time.monotonic()
        return None

    w = wait_for(asked, 30, "the offer of a change")
    texts = [i.get("text", "") for i in w["items"]]
    diff = "- network = filtered:example.org\n+ network = filtered:example.org,refused.example.net"
    assert diff in texts, texts
    manager.shot("refusal-allow")
    # nothing changes before the click
    show = comp.zjson("desktop", "show", "web")
    assert {s["key"]: s["value"] for s in show["settings"]}["network"] == "filtered:example.org"
    manager.tab_to("Allow")
    comp.type_keys("-k", "Return")

    def network() -> str:
        show = comp.zjson("desktop", "show", "web")
        return str({s["key"]: s["value"] for s in show["settings"]}["network"])

    wait_for(
        lambda: network() == "filtered:example.org,refused.example.net", 30, "the change applied"
    )
    wait_for(
        lambda: "web: refused.example.net" not in manager.texts("Desktops"),
        30,
        "the refusal gone from the list",
    )
    assert comp.zjson("desktop", "refusals", "web")["refusals"] == []


def test_favourites_come_first_and_are_kept(manager: Manager) -> None:
    comp = manager.comp
    if not Path("/usr/share/applications/foot.desktop").exists():
        pytest.skip("foot's .desktop entry is not installed on this machine")
    # a terminal left by an earlier test would have the keyboard: the keys are for the manager
    comp.zionctl("kill", "beta")
    wait_for(lambda: not comp.windows("beta"), 30, "beta's windows closed")
    manager.ensure()
    comp.zionctl("switch", "beta")
    comp.type_keys("-M", "ctrl", "2", "-m", "ctrl")
    manager.wait_text("Apps start in beta", "Desktops")
    manager.wait_keyboard("Desktops")
    comp.type_keys("-M", "ctrl", "a", "-m", "ctrl", "foot")
    add = "Add Foot to the favourites of beta"
    wait_for(lambda: add in manager.texts("Desktops"), 30, "Foot's star")
    comp.type_keys("-M", "ctrl", "d", "-m", "ctrl")  # the first app shown: Foot
    state = comp.root / "state" / "zionwm" / "manager.json"
    wait_for(
        lambda: state.exists() and json.loads(state.read_text())["favourites"].get("beta"),
        30,
        "the favourite saved",
    )
    assert json.loads(state.read_text())["favourites"]["beta"] == ["foot"]
    comp.type_keys("-M", "ctrl", "a", "-m", "ctrl", "-k", "BackSpace")  # every app again
    manager.wait_text("Remove Foot from the favourites of beta", "Desktops")

    def first_star() -> str:
        stars = [
            i
            for i in manager.items("Desktops")
            if i["kind"] == "button" and "favourites of beta" in i["text"]
        ]
        stars.sort(key=lambda i: (i["bounds"][1], i["bounds"][0]))
        return str(stars[0]["text"]) if stars else ""

    wait_for(lambda: first_star().startswith("Remove Foot"), 30, "Foot first among the apps")
    manager.shot("apps-favourites")
    comp.type_keys("-M", "ctrl", "1", "-m", "ctrl")


def test_refuses_on_a_desktop_socket(manager: Manager) -> None:
    comp = manager.comp
    r = subprocess.run(
        [str(VENV_BIN / "zionwm-manager")],
        env=comp.desktop_env("alpha"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 3, r.stderr
    assert "a desktop's socket" in r.stderr
    # a socket that is not zionwm's host socket is refused too, once zionwm is asked
    r = subprocess.run(
        [str(VENV_BIN / "zionwm-manager")],
        env=comp.host_env(WAYLAND_DISPLAY="wayland-other"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 3 and "host socket is wayland-zt" in r.stderr, r.stderr
