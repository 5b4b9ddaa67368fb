"""A real waybar (Debian's, with its sway/workspaces module) on zionwm: it runs as a trusted
layer-shell panel on the host socket, talks to zionwm's sway-compatible IPC, shows the
desktops, and switches them when clicked."""

from __future__ import annotations

import json
from pathlib import Path

from tests.harness import Compositor, colour_near, require, wait_for
from tests.integration.test_core import VirtualPointer

BAR = "#202020"
FOCUSED = "#3b82f6"
STYLE = (
    "* { font-family: DejaVu Sans; font-size: 14px; }"
    f" window#waybar {{ background: {BAR}; color: #ffffff; }}"
    " #workspaces button { padding: 0 8px; color: #ffffff; border: none; }"
    f" #workspaces button.focused {{ background: {FOCUSED}; }}"
)


def test_waybar_shows_and_switches_desktops(compositor: Compositor, tmp_path: Path) -> None:
    waybar = require("waybar")
    tmp_path = tmp_path / "waybar"
    tmp_path.mkdir()
    config = {
        "layer": "top",
        "position": "top",
        "height": 30,
        "modules-left": ["sway/workspaces"],
        "sway/workspaces": {"disable-scroll": True, "all-outputs": True},
    }
    (tmp_path / "config").write_text(json.dumps(config))
    (tmp_path / "style.css").write_text(STYLE)
    out = (tmp_path / "waybar.log").open("w")
    compositor.client(
        [waybar, "-c", str(tmp_path / "config"), "-s", str(tmp_path / "style.css")],
        env={"SWAYSOCK": str(compositor.runtime / "zionwm" / "sway-ipc.sock")},
        stdout=out,
        stderr=out,
    )
    # the bar sits right below the trust indicator (24 px), and the first button, personal,
    # is highlighted as the focused workspace
    wait_for(
        lambda: (
            colour_near(compositor.screenshot().getpixel((600, 40)), BAR)
            and colour_near(compositor.screenshot().getpixel((10, 28)), FOCUSED)
        ),
        20,
        "waybar to show the desktops with personal focused",
    )
    assert "Unable to subscribe" not in (tmp_path / "waybar.log").read_text()
    VirtualPointer(compositor).click(100, 39)  # the second button: work
    wait_for(lambda: compositor.desktops()["work"]["active"], 10, "a click to switch to work")
    # and the bar follows a switch made elsewhere
    compositor.zionctl("switch", "personal")
    wait_for(
        lambda: colour_near(compositor.screenshot().getpixel((10, 28)), FOCUSED),
        10,
        "waybar to show personal focused again",
    )
