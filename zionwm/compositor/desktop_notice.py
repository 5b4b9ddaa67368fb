"""How a desktop's own notification looks: a header in the desktop's colour with its name,
and the text beside a stripe of that colour. The header comes from the bus the notification
arrived on, never from its text, so no desktop can present its notification as another's
or as zionwm's (whose own notices have no desktop header). Drawn once, then stacked with
zionwm's notices by ui.Notifications.
"""

from __future__ import annotations

from .native import SceneRect, SceneTree
from .ui import Notifications, label_box

ROW = 22
STRIPE = 6
BODY_BG = (30, 30, 30, 235)


def _rgb(colour: tuple[float, float, float, float]) -> tuple[int, int, int]:
    return (round(colour[0] * 255), round(colour[1] * 255), round(colour[2] * 255))


def _ink_on(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = rgb
    return (0, 0, 0) if (0.299 * r + 0.587 * g + 0.114 * b) > 150 else (255, 255, 255)


def show(
    notifications: Notifications,
    desktop: str,
    colour: tuple[float, float, float, float],
    lines: list[str],
    seconds: float,
) -> None:
    """`lines` are already cleaned and bounded (desktopbus.policy)."""
    body = lines[:7] or [""]
    notifications.follow()
    node = SceneTree.create(notifications.tree)
    rgb = _rgb(colour)
    scale = notifications.scale
    width = notifications.max_width()
    _, box = label_box(
        node, f"\u25cf {desktop}", _ink_on(rgb), (*rgb, 255), ROW, scale=scale, max_width=width
    )
    SceneRect.create(node, STRIPE, ROW * len(body), colour).set_position(0, ROW)
    for i, line in enumerate(body):
        img, w = label_box(
            node, line[:160], (255, 255, 255), BODY_BG, ROW, 13, scale, width - STRIPE
        )
        img.set_position(STRIPE, ROW * (i + 1))
        box = max(box, STRIPE + w)
    rows = "\n".join([desktop, *body])
    notifications.show_node(node, rows, f"[{desktop}] " + " / ".join(body), seconds, box)
