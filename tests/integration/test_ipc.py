"""The IPC sockets of a real headless zionwm, driven by swaymsg, i3ipc and zionctl."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import VENV_BIN, Compositor, require, stop_main, wait_for

DESKTOPS = ["personal", "work", "gaming", "web"]  # config/default.py, in order


def sway_socket(comp: Compositor) -> str:
    return str(comp.runtime / "zionwm" / "sway-ipc.sock")


def swaymsg(comp: Compositor, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("swaymsg"), "-s", sway_socket(comp), *args],
        capture_output=True,
        text=True,
        timeout=20,
        env=comp.host_env(),
        check=False,
    )


def test_swaymsg_lists_and_switches_desktops(compositor: Compositor) -> None:
    out = swaymsg(compositor, "-t", "get_workspaces")
    assert out.returncode == 0, out.stderr
    workspaces = json.loads(out.stdout)
    assert [w["name"] for w in workspaces] == DESKTOPS
    assert [w["num"] for w in workspaces] == [1, 2, 3, 4]
    assert [w["name"] for w in workspaces if w["focused"]] == ["personal"]

    out = swaymsg(compositor, "workspace", "work")
    assert out.returncode == 0, out.stderr + out.stdout
    wait_for(lambda: compositor.desktops()["work"]["active"], 5, "work active")
    workspaces = json.loads(swaymsg(compositor, "-t", "get_workspaces").stdout)
    assert [w["name"] for w in workspaces if w["focused"]] == ["work"]
    outputs = json.loads(swaymsg(compositor, "-t", "get_outputs").stdout)
    assert outputs[0]["current_workspace"] == "work"

    out = swaymsg(compositor, "workspace", "number", "4")
    assert out.returncode == 0 and compositor.desktops()["web"]["active"]
    out = swaymsg(compositor, "workspace", "back_and_forth")
    assert out.returncode == 0 and compositor.desktops()["work"]["active"]
    out = swaymsg(compositor, "workspace", "nosuch")
    assert out.returncode == 2 and "nosuch" in out.stdout
    assert compositor.desktops()["work"]["active"]
    assert "zionwm" in swaymsg(compositor, "-t", "get_version").stdout


def test_i3ipc_sees_windows_and_events(
    compositor: Compositor, i3connect: Callable[[str], Any]
) -> None:
    require("foot")
    conn = i3connect(sway_socket(compositor))
    assert [w.name for w in conn.get_workspaces()] == DESKTOPS
    seen: list[tuple[str, str, Any]] = []
    lock = threading.Lock()

    def on_window(_c: object, e: Any) -> None:
        with lock:
            seen.append(("window", e.change, e.container.app_id))

    def on_workspace(_c: object, e: Any) -> None:
        with lock:
            seen.append(("workspace", e.change, e.current.name if e.current else None))

    conn.on("window", on_window)
    conn.on("workspace", on_workspace)
    loop = threading.Thread(target=conn.main, daemon=True)
    loop.start()
    try:
        cmd = i3connect(sway_socket(compositor))
        wait_for(lambda: cmd.send_tick("ready").success, 5, "tick")
        compositor.zionctl("launch", "work", "--", "foot")
        compositor.wait_window("work", "foot")
        wait_for(lambda: ("window", "new", "foot") in seen, 10, "window::new for foot")

        tree = cmd.get_tree()
        work = next(w for w in tree.workspaces() if w.name == "work")
        assert [leaf.app_id for leaf in work.leaves()] == ["foot"]
        leaf = work.leaves()[0]
        assert leaf.rect.width > 0 and leaf.rect.height > 0

        assert cmd.command("workspace work")[0].success
        wait_for(lambda: ("workspace", "focus", "work") in seen, 10, "workspace::focus work")
        assert cmd.get_tree().find_focused().app_id == "foot"
    finally:
        stop_main(conn, loop)


def test_zionctl_events_follow_the_compositor(compositor: Compositor) -> None:
    proc = subprocess.Popen(
        [str(VENV_BIN / "zionctl"), "events", "--json", "switch"],
        env=compositor.host_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # Subscribed once a switch made after start shows up; retry switching until then.
        result: dict[str, Any] = {}
        reader = threading.Thread(
            target=lambda: result.update(json.loads(proc.stdout.readline())),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        targets = iter(["work", "personal"] * 50)

        def switched() -> bool:
            if result:
                return True
            compositor.zionctl("switch", next(targets))
            return bool(result)

        wait_for(switched, 10, "a switch event from zionctl events")
        assert result["event"] == "switch"
        assert {result["payload"]["old"], result["payload"]["new"]} == {"work", "personal"}
    finally:
        proc.terminate()
        proc.wait(10)
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()


@pytest.mark.security
def test_sandboxed_programs_cannot_reach_the_ipc_sockets(compositor: Compositor) -> None:
    host_sockets = [
        str(compositor.runtime / "zionwm" / "ipc.sock"),
        sway_socket(compositor),
    ]
    script = (
        'env | grep -E "^(SWAYSOCK|I3SOCK|ZIONWM_SOCK)=" ; '
        + " ".join(f'[ -e "{p}" ] && echo "FOUND {p}";' for p in host_sockets)
        + ' for f in "$XDG_RUNTIME_DIR"/*; do echo "RUNTIME $f"; done; echo done'
    )
    home = compositor.desktop_home("work")
    compositor.zionctl("launch", "work", "--", "sh", "-c", f"({script}) > ~/ipc-probe.txt")
    probe = home / "ipc-probe.txt"

    def finished() -> str:
        text = probe.read_text() if probe.exists() else ""
        return text if text.endswith("done\n") else ""

    text = wait_for(finished, 15, "the probe's output")
    assert "SOCK=" not in text, text
    assert "FOUND" not in text, text
    assert "ipc.sock" not in text and "sway-ipc" not in text, text
