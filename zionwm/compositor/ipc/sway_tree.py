"""The sway/i3 view of the compositor: pure translation of its desktops, windows and outputs
into i3's JSON (desktops are workspaces), for GET_TREE, GET_WORKSPACES, GET_OUTPUTS and the
events. No sockets here.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

# Container ids: windows keep the compositor's ids (assumed below 2**30); the synthetic
# containers live above, so `[con_id=N]` never confuses a desktop with a window.
ROOT_ID = 1 << 30
OUTPUT_ID_BASE = ROOT_ID + 1
WORKSPACE_ID_BASE = ROOT_ID + 4096


def i3_rect(x: object = 0, y: object = 0, width: object = 0, height: object = 0) -> dict[str, int]:
    return {"x": i3_int(x), "y": i3_int(y), "width": i3_int(width), "height": i3_int(height)}


def i3_int(v: object) -> int:
    try:
        return int(v)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def window_con_id(window: dict[str, Any]) -> int:
    wid = window.get("id")
    if isinstance(wid, int) and 0 <= wid < ROOT_ID:
        return wid
    return zlib.crc32(str(wid).encode()) % ROOT_ID


def base_node(cid: int, ntype: str, name: str | None, rect: dict[str, int]) -> dict[str, Any]:
    zero = i3_rect()
    return {
        "id": cid,
        "type": ntype,
        "orientation": "horizontal" if ntype in ("root", "workspace") else "none",
        "percent": None,
        "urgent": False,
        "marks": [],
        "focused": False,
        "layout": {"root": "splith", "output": "output", "workspace": "splith"}.get(ntype, "none"),
        "border": "none",
        "current_border_width": 0,
        "rect": rect,
        "deco_rect": zero,
        "window_rect": dict(zero),
        "geometry": dict(zero),
        "name": name,
        "window": None,
        "nodes": [],
        "floating_nodes": [],
        "focus": [],
        "fullscreen_mode": 0,
        "sticky": False,
    }


def window_node(window: dict[str, Any], visible: bool = True) -> dict[str, Any]:
    width, height = i3_int(window.get("width")), i3_int(window.get("height"))
    node = base_node(
        window_con_id(window),
        "con",
        str(window.get("title") or ""),
        i3_rect(window.get("x"), window.get("y"), width, height),
    )
    node.update(
        {
            "focused": bool(window.get("focused")),
            "urgent": bool(window.get("urgent")),
            "window_rect": i3_rect(0, 0, width, height),
            "geometry": i3_rect(0, 0, width, height),
            "fullscreen_mode": 1 if window.get("fullscreen") else 0,
            "floating": "auto_off",
            "scratchpad_state": "none",
            "pid": window.get("pid"),
            "app_id": window.get("app_id"),
            "shell": window.get("shell") or "xdg_shell",
            "visible": visible,
            "inhibit_idle": False,
            "idle_inhibitors": {"user": "none", "application": "none"},
            "max_render_time": 0,
            "zionwm": {"desktop": window.get("desktop")},
        }
    )
    return node


@dataclass(frozen=True)
class Layout:
    """One consistent snapshot of the compositor state, in i3 terms."""

    desktops: list[dict[str, Any]]
    windows: list[dict[str, Any]]
    outputs: list[dict[str, Any]]

    def output_of(self, desktop: dict[str, Any]) -> dict[str, Any] | None:
        wanted = desktop.get("output")
        for out in self.outputs:
            if wanted is not None and out.get("name") == wanted:
                return out
        for out in self.outputs:
            if out.get("desktop") == desktop.get("name"):
                return out
        return self.outputs[0] if self.outputs else None

    def workspace(
        self, position: int, desktop: dict[str, Any], in_tree: bool = True
    ) -> dict[str, Any]:
        """The desktop as an i3 workspace. In a tree (and in events) only one container is
        focused, as i3 has it: the focused window of the active desktop, else the desktop
        itself; in GET_WORKSPACES "focused" means "the desktop that has the focus"."""
        out = self.output_of(desktop)
        rect = i3_rect(*(out.get(k) for k in ("x", "y", "width", "height"))) if out else i3_rect()
        name = str(desktop.get("name"))
        node = base_node(WORKSPACE_ID_BASE + position, "workspace", name, rect)
        active = bool(desktop.get("active"))
        visible = bool(desktop.get("visible", active))
        windows = [w for w in self.windows if w.get("desktop") == name]
        focus_order = sorted(windows, key=lambda w: not w.get("focused"))
        has_focused_window = any(w.get("focused") for w in windows)
        # GET_WORKSPACES drops the children anyway: do not build them there.
        children = [window_node(w, visible) for w in windows] if in_tree else []
        for child in children:
            child["focused"] = child["focused"] and active
        node.update(
            {
                "num": position + 1,
                "output": out.get("name") if out else None,
                "focused": active and not (in_tree and has_focused_window),
                "visible": visible,
                "urgent": bool(desktop.get("urgent")),
                "representation": f"zionwm[{name}]",
                "nodes": children,
                "focus": [window_con_id(w) for w in focus_order],
                "zionwm": desktop,
            }
        )
        return node

    def workspaces(self, with_nodes: bool = False) -> list[dict[str, Any]]:
        result = []
        for pos, d in enumerate(self.desktops):
            ws = self.workspace(pos, d, in_tree=with_nodes)
            if not with_nodes:
                for key in ("nodes", "floating_nodes"):
                    ws.pop(key)
            result.append(ws)
        return result

    def workspace_named(self, name: str | None) -> dict[str, Any] | None:
        for pos, d in enumerate(self.desktops):
            if d.get("name") == name:
                return self.workspace(pos, d)
        return None

    def i3_outputs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        active = next((d.get("name") for d in self.desktops if d.get("active")), None)
        for out in self.outputs:
            width, height = i3_int(out.get("width")), i3_int(out.get("height"))
            refresh = i3_int(out.get("refresh") or 60000)
            mode = {"width": width, "height": height, "refresh": refresh}
            result.append(
                {
                    "id": OUTPUT_ID_BASE + len(result),
                    "type": "output",
                    "name": out.get("name"),
                    "make": out.get("make") or "zionwm",
                    "model": out.get("model") or "unknown",
                    "serial": out.get("serial") or "unknown",
                    "active": bool(out.get("active", True)),
                    "dpms": True,
                    "power": True,
                    "primary": False,
                    "non_desktop": False,
                    "focused": bool(out.get("focused", out.get("desktop") == active)),
                    "scale": float(out.get("scale") or 1.0),
                    "scale_filter": "nearest",
                    "subpixel_hinting": "unknown",
                    "transform": out.get("transform") or "normal",
                    "adaptive_sync_status": "disabled",
                    "allow_tearing": False,
                    "max_render_time": 0,
                    "current_workspace": out.get("desktop"),
                    "modes": [mode],
                    "current_mode": dict(mode),
                    "rect": i3_rect(out.get("x"), out.get("y"), width, height),
                }
            )
        return result

    def tree(self) -> dict[str, Any]:
        outs = self.i3_outputs()
        right = max((o["rect"]["x"] + o["rect"]["width"] for o in outs), default=0)
        bottom = max((o["rect"]["y"] + o["rect"]["height"] for o in outs), default=0)
        root = base_node(ROOT_ID, "root", "root", i3_rect(0, 0, right, bottom))
        workspaces = self.workspaces(with_nodes=True)
        for out in outs:
            node = base_node(out["id"], "output", out["name"], out["rect"])
            for key in ("active", "primary", "make", "model", "serial", "scale", "transform"):
                node[key] = out[key]
            node["current_workspace"] = out["current_workspace"]
            node["nodes"] = [ws for ws in workspaces if ws["output"] == out["name"]]
            focused_first = sorted(node["nodes"], key=lambda w: not w["focused"])
            node["focus"] = [ws["id"] for ws in focused_first]
            root["nodes"].append(node)
        root["focus"] = [o["id"] for o in sorted(root["nodes"], key=lambda o: not _has_focus(o))]
        return root


def _has_focus(node: dict[str, Any]) -> bool:
    return bool(node.get("focused")) or any(_has_focus(n) for n in node.get("nodes", ()))
