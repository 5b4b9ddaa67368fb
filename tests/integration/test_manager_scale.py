"""zionwm-manager at 200 %: the headless output at scale 2 on a 1366x768 screen (683x384
logical pixels, a small laptop at 200 %), every page shown, screenshots taken and looked at
(kept under $ZIONWM_ARTEFACTS), and what must stay whole checked from the window's own
widget tree: the window and its dialogs fit the screen, each desktop's row says its state in
words, the colours are drawn at the output's density."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Compositor, colour_near, require, wait_for
from tests.integration.test_manager import _gtk_missing

CONFIG = """
from zionwm.config import Network, desktop
desktop("personal", colour="#3b82f6")
desktop("work", colour="#22c55e", network=Network.none())
desktop("web", colour="#a855f7", network=Network.filtered(["example.org"]))
"""
COLOURS = {"personal": "#3b82f6", "work": "#22c55e", "web": "#a855f7"}
ARTEFACTS = os.environ.get("ZIONWM_ARTEFACTS")

pytestmark = pytest.mark.skipif(
    _gtk_missing() is not None,
    reason=f"GTK 4 / libadwaita through PyGObject are not installed: {_gtk_missing()}",
)


class Scaled:
    def __init__(self, comp: Compositor, root: Path) -> None:
        self.comp = comp
        self.probe = root / "probe.json"
        self.shots = Path(ARTEFACTS) if ARTEFACTS else root / "shots"
        self.shots.mkdir(parents=True, exist_ok=True)

    def windows(self) -> list[dict[str, Any]]:
        return list(json.loads(self.probe.read_text())["windows"])

    def texts(self) -> list[str]:
        return [i.get("text", "") for w in self.windows() for i in w["items"]]

    def wait_text(self, text: str) -> None:
        wait_for(lambda: any(text in t for t in self.texts()), 30, f"{text!r} in the manager")

    def shot(self, name: str) -> Any:
        return self.comp.screenshot(self.shots / f"manager-200-{name}.png")


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scaled]:
    require("wtype")
    require("grim")
    root = tmp_path_factory.mktemp("manager200")
    comp = Compositor(
        root,
        config_text=CONFIG,
        size="1366x768",
        extra_env={
            "ZIONWM_OUTPUT_SCALE": "2",
            "ZIONWM_MANAGER_PROBE": str(root / "probe.json"),
            "GSK_RENDERER": "cairo",
        },
    ).start()
    try:
        comp.zionctl("manager")
        s = Scaled(comp, root)
        wait_for(s.probe.exists, 30, "the manager's first probe")
        yield s
    finally:
        comp.stop()


def _fits(s: Scaled, title: str) -> None:
    (out,) = s.comp.zjson("outputs")
    assert out["scale"] == 2.0 and (out["width"], out["height"]) == (683, 384), out
    for w in s.windows():
        if w["title"] == title:
            assert w["width"] <= out["width"] and w["height"] <= out["height"], w
            return
    raise AssertionError(f"no window {title!r}")


def test_the_desktops_page_is_whole_and_drawn_at_twice_the_density(scaled: Scaled) -> None:
    for name in COLOURS:
        scaled.wait_text(name)
    # narrow: each row says its state and its usage in words under the name
    scaled.wait_text("no programs · 0 windows · no network · 0\u00a0% CPU")
    _fits(scaled, "Desktops")
    img = scaled.shot("desktops")
    assert img.size == (1366, 768)
    for name, colour in COLOURS.items():
        hits = sum(
            1
            for y in range(0, img.height, 2)
            for x in range(0, img.width, 2)
            if colour_near(img.getpixel((x, y)), colour, tol=6)
        )
        # a 22 px swatch at scale 2 is 44 px wide: about 380 of its pixels on this grid
        assert hits > 250, f"{name}'s swatch ({colour}) is not drawn at scale 2: {hits}"


def test_the_create_dialog_fits_and_scrolls(scaled: Scaled) -> None:
    scaled.comp.type_keys("-M", "ctrl", "n", "-m", "ctrl")
    scaled.wait_text("Identity")
    _fits(scaled, "New desktop")
    win = wait_for(
        lambda: [w for w in scaled.comp.windows("host") if w["title"] == "New desktop"],
        30,
        "the dialog drawn by the compositor",
    )[0]
    assert win["width"] <= 683 and win["height"] <= 384 - 24, win  # under the strip too
    scaled.shot("create")
    scaled.comp.type_keys("-k", "Escape")
    wait_for(
        lambda: "New desktop" not in [w["title"] for w in scaled.windows()], 20, "dialog closed"
    )


def test_the_apps_and_quarantine_pages(scaled: Scaled) -> None:
    scaled.comp.type_keys("-M", "ctrl", "2", "-m", "ctrl")
    scaled.wait_text("Apps start in personal")
    scaled.shot("apps")
    scaled.comp.type_keys("-M", "ctrl", "3", "-m", "ctrl")
    wait_for(
        lambda: any(
            t in scaled.texts()
            for t in ("Nothing in quarantine", "The quarantine service is not running")
        ),
        30,
        "the quarantine page",
    )
    _fits(scaled, "Desktops")
    # the empty page's words are inside the window, not pushed below it by its icon
    (win,) = [w for w in scaled.windows() if w["title"] == "Desktops"]
    words = [
        i
        for i in win["items"]
        if i.get("text") in ("Nothing in quarantine", "The quarantine service is not running")
    ]
    assert words and all(i["bounds"][1] + i["bounds"][3] <= win["height"] for i in words), words
    scaled.shot("quarantine")
    scaled.comp.type_keys("-M", "ctrl", "1", "-m", "ctrl")
