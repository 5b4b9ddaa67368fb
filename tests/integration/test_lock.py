"""The lock screen, in the real compositor: locked with the key binding, a real PAM stack
checks the password (a service of the test's own whose `pam_exec` module compares what was
typed with the test's password), keys and windows of a sandboxed program are watched on
screen (grim) and in what the program received."""

from __future__ import annotations

import glob
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.harness import Compositor, require, wait_for
from tests.inside import attacker
from tests.integration.test_core import VirtualKeyboard
from tests.integration.test_ui import save_doc_picture
from zionwm.compositor.lock import BACKGROUND, PANEL_H, PANEL_W, SERVICE_ENV
from zionwm.compositor.ui import rgb255

PASSWORD = "correct horse"
W, H = 1280, 720
LOCK_BG = rgb255(BACKGROUND)
PANEL = ((W - PANEL_W) // 2, (H - PANEL_H) // 2, (W + PANEL_W) // 2, (H + PANEL_H) // 2)


def _pam_module(name: str) -> str | None:
    for pattern in ("/lib/*/security", "/usr/lib/*/security", "/lib/security", "/usr/lib/security"):
        for d in glob.glob(pattern):
            if Path(d, name).exists():
                return str(Path(d, name))
    return None


def _service(tmp_path: Path, auth_line: str) -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root: the test adds a PAM service of its own to /etc/pam.d")
    if _pam_module("pam_exec.so") is None:
        pytest.skip("this machine has no pam_exec.so (libpam-modules)")
    name = f"zionwm-test-{os.getpid()}-{tmp_path.name}"[:60]
    path = Path("/etc/pam.d") / name
    path.write_text(f"{auth_line}\naccount required pam_permit.so\n")
    try:
        yield name
    finally:
        path.unlink(missing_ok=True)


@pytest.fixture
def pam_service(tmp_path: Path) -> Iterator[str]:
    """A PAM service that accepts PASSWORD only (pam_exec runs the check with /bin/sh, so a
    /tmp mounted noexec does not matter; pam_deny refuses the rest, as on Debian)."""
    check = tmp_path / "check-password"
    check.write_text(f"[ \"$(tr -d '\\000')\" = '{PASSWORD}' ]\n")
    # the shape of Debian's common-auth, with pam_exec where pam_unix is
    yield from _service(
        tmp_path,
        f"auth [success=1 default=ignore] pam_exec.so quiet expose_authtok /bin/sh {check}\n"
        "auth requisite pam_deny.so\n"
        "auth required pam_permit.so",
    )


@pytest.fixture
def broken_pam_service(tmp_path: Path) -> Iterator[str]:
    """A PAM service whose module does not exist: nothing can be checked."""
    yield from _service(tmp_path, "auth required pam_zionwm_test_missing.so")


def lock_state(comp: Compositor) -> dict[str, Any]:
    state: dict[str, Any] = comp.zjson("status")["lock"]
    return state


def outside_panel_not_lock(img: Image.Image) -> int:
    """Pixels of every output (the panel is on the first), outside the lock's panel, that
    are not the lock's own background: anything of a desktop, the strip or a notification
    that shows."""
    n = 0
    for y in range(0, img.height, 4):
        for x in range(0, img.width, 4):
            inside = PANEL[0] <= x < PANEL[2] and PANEL[1] <= y < PANEL[3]
            if not inside and img.getpixel((x, y)) != LOCK_BG:
                n += 1
    return n


def red_in_panel(img: Image.Image) -> int:
    box = img.crop(PANEL)
    return sum(
        1
        for y in range(box.height)
        for x in range(box.width)
        if (p := box.getpixel((x, y)))[0] > 200 and p[1] < 140 and p[2] < 140  # type: ignore[index]
    )


def type_line(comp: Compositor, text: str) -> None:
    comp.type_keys(text)
    comp.type_keys("-k", "Return")


@pytest.mark.security
def test_a_locked_screen_shows_nothing_and_gives_no_key_to_a_sandboxed_program(
    make_compositor: Any, pam_service: str
) -> None:
    """A terminal in personal's sandbox writes every key it gets to a file. Locked with
    Super+L: nothing of any desktop or of the strips is on either output, a window the program maps
    meanwhile does not show, a wrong password is refused, and none of what was typed at
    the lock reaches the program; the right password gives the screen and the keyboard
    back."""
    require("foot")
    require("weston-simple-shm")
    comp: Compositor = make_compositor(outputs=2, extra_env={SERVICE_ENV: pam_service})
    out = comp.desktop_home("personal") / "keys.txt"
    comp.zionctl("launch", "personal", "--", "foot", "sh", "-c", "cat > ~/keys.txt")
    comp.wait_window("personal", "foot")
    # the terminal's line discipline hands a line over at Enter: anything typed at the lock
    # that leaked would come out with the next line
    type_line(comp, "a")
    wait_for(lambda: out.exists() and out.read_text() == "a\n", 10, "the terminal to get 'a'")

    comp.type_keys("-M", "logo", "-k", "l", "-m", "logo")
    wait_for(lambda: lock_state(comp)["locked"], 10, "the screen to lock")
    img = wait_for(
        lambda: (s := comp.screenshot()) and outside_panel_not_lock(s) == 0 and s,
        10,
        "nothing but the lock on screen",
    )
    assert img.getpixel((W // 2, H // 2)) != LOCK_BG, "the panel is drawn"
    assert img.width == 2 * W, "both outputs are in the picture, the second all lock"

    # a window mapped while locked does not show
    comp.zionctl("launch", "personal", "--", "weston-simple-shm")
    comp.wait_window("personal", "org.freedesktop.weston.simple-shm")
    assert outside_panel_not_lock(comp.screenshot()) == 0, "a window showed over the lock"

    # Caps Lock on (a keyboard's locked modifier) is said on the screen, and off again
    caps = VirtualKeyboard(comp)
    caps.c.send(caps.kb, 2, struct.pack("=IIII", 0, 0, caps.lock, 0))  # modifiers: locked
    caps.c.roundtrip()
    wait_for(lambda: lock_state(comp)["caps"], 10, "Caps Lock to be seen")
    wait_for(lambda: red_in_panel(comp.screenshot()) > 20, 10, "'Caps Lock is on' shown")
    caps.c.send(caps.kb, 2, struct.pack("=IIII", 0, 0, 0, 0))
    caps.c.roundtrip()
    wait_for(lambda: not lock_state(comp)["caps"], 10, "Caps Lock off again")
    assert red_in_panel(comp.screenshot()) == 0

    type_line(comp, "not the password")
    wait_for(lambda: lock_state(comp)["failures"] == 1, 20, "the wrong password refused")
    state = lock_state(comp)
    assert state["locked"] and state["message"] == "Wrong password", state
    shot = wait_for(
        lambda: (s := comp.screenshot()) and red_in_panel(s) > 20 and s,
        10,
        "the refusal shown in red",
    )
    save_doc_picture(shot, "lock.png", (PANEL[0] - 40, PANEL[1] - 30, PANEL[2] + 40, PANEL[3] + 30))
    # bindings do nothing while locked: no overview, no switch
    comp.type_keys("-M", "logo", "-k", "Escape", "-m", "logo")
    comp.type_keys("-M", "logo", "-k", "2", "-m", "logo")

    type_line(comp, PASSWORD)
    wait_for(lambda: not lock_state(comp)["locked"], 20, "the right password to unlock")
    status = comp.zjson("status")
    assert status["active"] == "personal" and not status["overview"]["open"], status
    assert outside_panel_not_lock(comp.screenshot()) > 1000, "the desktop is back on screen"
    # the window mapped while locked has the focus, as it would have had without the lock
    comp.zionctl("close")
    wait_for(lambda: len(comp.windows("personal")) == 1, 10, "simple-shm to go")
    type_line(comp, "b")
    wait_for(
        lambda: out.read_text().count("\n") == 2, 10, "a line from the terminal after unlocking"
    )
    assert out.read_text() == "a\nb\n", "a key typed at the lock reached the program"


@pytest.mark.security
def test_a_hidden_desktop_cannot_keep_the_screen_from_locking_and_the_lock_fails_closed(
    make_compositor: Any, broken_pam_service: str
) -> None:
    """A program in personal holds an idle inhibitor (as a video player does): while
    personal is shown, the idle lock waits; once personal is hidden, its inhibitor counts
    for nothing and the screen locks by itself after `lock_after`. Then PAM that cannot
    check anything (a module missing) never unlocks, and says why."""
    config = """\
from zionwm.config import desktop, settings
desktop("personal", colour="#3b82f6")
desktop("work", colour="#22c55e")
settings(lock_after="10s")
"""
    comp: Compositor = make_compositor(config, extra_env={SERVICE_ENV: broken_pam_service})
    player = attacker(comp, "personal", "inhibit-idle", seconds=120).ready()
    wait_for(lambda: lock_state(comp)["inhibited"], 10, "personal's inhibitor to count")
    assert not lock_state(comp)["locked"]
    comp.zionctl("switch", "work")
    assert not lock_state(comp)["inhibited"], "a hidden desktop's inhibitor counted"
    wait_for(lambda: lock_state(comp)["locked"], 40, "the screen to lock after 10 s idle")
    assert player.stop().json()["errors"] == []

    type_line(comp, PASSWORD)
    wait_for(lambda: lock_state(comp)["failures"] == 1, 20, "the check to end")
    state = lock_state(comp)
    assert state["locked"], state
    assert state["message"].startswith("The password could not be checked"), state
    assert "Module is unknown" in state["message"], state
    # `zionctl` has no way to unlock, and the lock command does not toggle it
    assert "locked already" in comp.zionctl("lock").stdout
    assert lock_state(comp)["locked"]
