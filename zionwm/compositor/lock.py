"""The lock screen: drawn by the compositor itself, above everything, until the user's
password is given.

`lock` (Super+L, `zionctl lock`, or after `settings(lock_after=...)` seconds without input)
covers every output with an opaque screen of the compositor's own: no window, notification,
strip or cursor image of a program is on screen, no client has the keyboard or the pointer,
and key bindings do nothing. What is typed goes to the lock's password field only. Enter
checks it through PAM in a process of its own (`zionwm.lockauth`), never in the compositor:
right, the screen is lifted and the focus given back; wrong, or PAM could not answer, it
stays locked and says why (fail closed: no answer is ever taken for a yes).

No program can lift it: it is no client's surface (a locker client that crashes would
unlock the session, as with the old input-inhibitor protocol), and neither the control
socket nor any desktop's socket has a command to unlock.

`LockState` is the pure model (what was typed, whether a check runs, what to say);
`LockScreen` draws it; `Locker` ties them to the server, the helper process and the idle
timer.
"""

from __future__ import annotations

import logging
import os
import pwd
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from xkbcommon import xkb

from .children import Child, Children
from .listeners import HasListeners
from .loop import Loop, Timer
from .native import SceneImage, SceneRect, SceneTree
from .native.text import Canvas
from .ui import rgb255, scaled, width_of

log = logging.getLogger(__name__)

MAX_TYPED = 512  # characters: a longer password is not one anybody types
MAX_DOTS = 32  # drawn in the field; more typed shows as many
CHECK_TIMEOUT_MS = 30_000  # a PAM check that takes longer is stopped: still locked
SERVICE_ENV = "ZIONWM_LOCK_PAM_SERVICE"  # the PAM service (default zionwm)

BACKGROUND = (0.06, 0.06, 0.08, 1.0)
PANEL_W, PANEL_H = 420, 236
INK, DIM, FAINT = (240, 240, 245, 255), (150, 150, 160, 255), (100, 100, 110, 255)
BAD = (248, 113, 113, 255)

_RETURN = frozenset(xkb.keysym_from_name(n) for n in ("Return", "KP_Enter", "ISO_Enter"))
_BACKSPACE = xkb.keysym_from_name("BackSpace")
_ESCAPE = xkb.keysym_from_name("Escape")
_U = frozenset((xkb.keysym_from_name("u"), xkb.keysym_from_name("U")))


class LockState:
    """What the lock screen knows: pure, no I/O.

    The password is kept as UTF-8 in one buffer of fixed size that is never reallocated
    (so no copy of it is left behind in freed memory by its growth) and is zeroed when
    cleared or handed over; `chars` counts its characters for the dots."""

    def __init__(self, caps: bool = False) -> None:
        self.locked = False
        self.checking = False
        self.message = ""
        self.bad = False  # the message is a failure
        self.failures = 0
        self.caps = caps  # Caps Lock is on: said on the screen (a password in capitals)
        self._buf = bytearray(MAX_TYPED * 4)  # UTF-8: at most 4 bytes a character
        self._used = 0
        self.chars = 0

    def lock(self) -> bool:
        """Lock; False if it was locked already."""
        if self.locked:
            return False
        self.locked, self.checking = True, False
        self.message, self.bad = "", False
        self.wipe()
        return True

    def secret(self) -> memoryview:
        """The password typed (a view of the buffer: `wipe` once it is handed over)."""
        return memoryview(self._buf)[: self._used]

    def wipe(self) -> None:
        self._buf[: self._used] = bytes(self._used)
        self._used = self.chars = 0

    def key(self, sym: int, text: str, ctrl: bool) -> bool:
        """A key pressed while locked; True when it was Enter with a password typed: check
        `secret()`. Keys are dropped while a check runs."""
        if not self.locked or self.checking:
            return False
        if sym in _RETURN:
            if not self.chars:
                self.message, self.bad = "Type your password, then Enter", False
                return False
            self.checking, self.message, self.bad = True, "Checking…", False
            return True
        if sym == _BACKSPACE:
            self._drop_last()
        elif sym == _ESCAPE or (ctrl and sym in _U):
            self.wipe()
        elif text and text.isprintable() and not ctrl and self.chars < MAX_TYPED:
            data = text.encode()
            if self._used + len(data) <= len(self._buf):
                self._buf[self._used : self._used + len(data)] = data
                self._used += len(data)
                self.chars += len(text)
        return False

    def _drop_last(self) -> None:
        """Backspace: the last character's bytes (a lead byte and its continuations)."""
        end = self._used
        while end > 0:
            end -= 1
            if self._buf[end] & 0xC0 != 0x80:  # not a continuation byte: the lead
                break
        if end < self._used:
            self._buf[end : self._used] = bytes(self._used - end)
            self._used, self.chars = end, self.chars - 1

    def checked(self, ok: bool, why: str) -> None:
        """The password check ended: unlocked when `ok`, else locked still, saying `why`."""
        self.checking = False
        self.wipe()
        if ok:
            self.locked, self.failures = False, 0
            self.message, self.bad = "", False
            return
        self.failures += 1
        self.message, self.bad = why, True

    def describe(self) -> dict[str, Any]:
        return {
            "locked": self.locked,
            "checking": self.checking,
            "typed": self.chars,
            "failures": self.failures,
            "message": self.message,
            "caps": self.caps,
        }


def outcome(returncode: int | None, stderr: str) -> tuple[bool, str]:
    """(unlock?, what to say) from the helper's exit status and what it wrote."""
    detail = stderr.strip().splitlines()[-1][:120] if stderr.strip() else ""
    if returncode == 0:
        return True, ""
    if returncode == 1:
        return False, "Wrong password"
    if returncode == 3:
        return False, f"This account may not log in now ({detail or 'refused'})"
    if returncode is None:
        return False, "The password check took too long: try again"
    return False, f"The password could not be checked ({detail or f'exit {returncode}'})"


RGBA = tuple[int, int, int, int]


def render_panel(
    state: LockState, user: str, clock: str, scale: float = 1.0
) -> tuple[int, int, bytes]:
    """The panel in the middle of the first output: the time, who locked it, the
    password field (a dot a character) and the last message."""
    w, h = scaled(PANEL_W, scale), scaled(PANEL_H, scale)
    canvas = Canvas(w, h, (*rgb255(BACKGROUND), 255))
    canvas.box(0, 0, w, h, (24, 24, 30, 255), scaled(14, scale))

    def centred(text: str, top: int, band: int, size: int, colour: RGBA, bold: bool) -> None:
        px = scaled(size, scale)
        x = (w - width_of(px, bold)(text)) / 2
        canvas.text(x, scaled(top, scale), scaled(band, scale), text, px, colour, bold)

    def box(x: int, y: int, bw: int, bh: int, colour: RGBA, radius: int) -> None:
        canvas.box(
            scaled(x, scale),
            scaled(y, scale),
            scaled(bw, scale),
            scaled(bh, scale),
            colour,
            scaled(radius, scale),
        )

    centred(clock, 18, 56, 44, INK, True)
    centred(f"Locked by {user}", 80, 24, 15, DIM, False)
    fx, fy, fw, fh = 40, 118, PANEL_W - 80, 40
    box(fx, fy, fw, fh, (58, 58, 68, 255), 8)
    box(fx + 1, fy + 1, fw - 2, fh - 2, (14, 14, 18, 255), 7)
    if state.chars:
        centred("\u25cf" * min(state.chars, MAX_DOTS), fy, fh, 14, INK, False)
    else:
        centred("Type your password", fy, fh, 14, FAINT, False)
    line = " \u00b7 ".join(t for t in (state.message, "Caps Lock is on" if state.caps else "") if t)
    if line:
        centred(line, 170, 26, 14, BAD if state.bad or state.caps else DIM, not state.bad)
    centred("Enter unlocks \u00b7 Esc clears", 200, 24, 12, FAINT, False)
    return w, h, canvas.pixels()


Box = tuple[int, int, int, int, float]  # an output: x, y, width, height (layout), scale


class LockScreen:
    """The lock's scene: an opaque rectangle over each output and the panel on the first
    given (the one the pointer is on), under `layer` (the scene's topmost tree)."""

    def __init__(self, layer: SceneTree) -> None:
        self.layer = layer
        self.tree: SceneTree | None = None

    def show(self, outputs: Sequence[Box], state: LockState, user: str, clock: str) -> None:
        old, self.tree = self.tree, SceneTree.create(self.layer)
        try:
            for i, (x, y, w, h, scale) in enumerate(outputs):
                node = SceneTree.create(self.tree)
                node.set_position(x, y)
                SceneRect.create(node, w, h, BACKGROUND)
                if i == 0:
                    pw, ph, pixels = render_panel(state, user, clock, scale)
                    img = SceneImage.create(node, pw, ph, pixels, size=(PANEL_W, PANEL_H))
                    img.set_position((w - PANEL_W) // 2, (h - PANEL_H) // 2)
        finally:
            # the new screen is in place before the old one goes: never a frame without
            if old is not None:
                old.destroy()

    def hide(self) -> None:
        if self.tree is not None:
            self.tree.destroy()
            self.tree = None


class IdleInhibitor(HasListeners):
    """A client's idle inhibitor (zwp_idle_inhibit_v1, e.g. a video player), with the
    desktop of its surface; it leaves `held` when the client destroys it."""

    def __init__(self, inhibitor: Any, desktop: str, held: set[IdleInhibitor]) -> None:
        self.desktop = desktop
        self._held = held
        held.add(self)
        self.add_listener(inhibitor.destroy_event, self._on_destroy)

    def _on_destroy(self, listener: Any, data: Any) -> None:
        self._held.discard(self)
        self.finalize_listeners()


class LockHost(Protocol):
    """What the lock needs of the compositor."""

    loop: Loop
    children: Children  # the password check is one: watched through its pidfd, reaped

    def lock_outputs(self) -> list[Box]: ...

    def caps_lock(self) -> bool: ...

    def lock_taken(self) -> None: ...

    def lock_lifted(self) -> None: ...


class Locker:
    """The lock screen's state, drawing and password checks, for one compositor."""

    def __init__(self, host: LockHost, layer: SceneTree, after_s: float | None = None) -> None:
        self.host = host
        self.state = LockState()
        self.screen = LockScreen(layer)
        try:
            self.user = pwd.getpwuid(os.getuid()).pw_name
        except KeyError:  # no passwd entry (some containers): the number says who
            self.user = str(os.getuid())
        self.service = os.environ.get(SERVICE_ENV) or ""  # "": lockauth's own choice
        self._check: subprocess.Popen[bytes] | None = None
        self._check_timer: Timer | None = None
        self._check_too_slow = False
        self._clock: Timer | None = None
        self._idle: Timer | None = None
        self.after_s = after_s
        self.last_input = time.monotonic()
        self._pointer: Callable[[], tuple[float, float]] | None = None
        self._inhibited: Callable[[], bool] | None = None
        self._pointer_at: tuple[float, float] | None = None

    @property
    def locked(self) -> bool:
        return self.state.locked

    def describe(self) -> dict[str, Any]:
        return {
            **self.state.describe(),
            "lock_after": self.after_s,
            "inhibited": bool(self._inhibited and self._inhibited()),
        }

    # ---- locking, unlocking ----

    def lock(self, why: str = "asked") -> str:
        if not self.state.lock():
            return "locked already"
        log.info("screen locked (%s)", why)
        self.state.caps = self.host.caps_lock()
        self.host.lock_taken()
        self._tick_clock()  # draws the screen, then again at each minute
        return "locked"

    def _unlock(self) -> None:
        log.info("screen unlocked")
        self.screen.hide()
        if self._clock is not None:
            self._clock.remove()
            self._clock = None
        self.last_input = time.monotonic()
        self.host.lock_lifted()

    def outputs_changed(self) -> None:
        """Outputs came, went or moved: the screen covers them all again."""
        if self.locked:
            self._draw()

    def _draw(self) -> None:
        self.screen.show(self.host.lock_outputs(), self.state, self.user, time.strftime("%H:%M"))

    def _tick_clock(self) -> None:
        if not self.locked:
            return
        self._draw()
        now = time.time()
        self._clock = self.host.loop.call_later(
            int((60 - now % 60) * 1000) + 50, self._tick_clock, "lock clock"
        )

    # ---- keys ----

    def modifiers(self, caps: bool) -> None:
        """The keyboard's modifiers changed while locked: Caps Lock is said on the screen."""
        if caps != self.state.caps:
            self.state.caps = caps
            self._draw()

    def key(self, keysyms: Sequence[int], text: str, ctrl: bool, chord: bool) -> None:
        """A key pressed while locked; `chord`: with Ctrl, Alt or Super held (it types
        nothing: Super+2 is no '2')."""
        self.last_input = time.monotonic()
        if not keysyms:
            return
        if self.state.key(keysyms[0], "" if chord else text, ctrl):
            self._start_check()
        self._draw()

    # ---- the password check, in a process of its own ----

    def _start_check(self) -> None:
        argv = [sys.executable, "-m", "zionwm.lockauth", *([self.service] if self.service else [])]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                close_fds=True,
                start_new_session=True,
                bufsize=0,  # the password goes straight to the pipe: no buffered copy
            )
        except OSError as exc:
            log.error("lock: cannot start the password check: %s", exc)
            self.state.checked(False, f"The password could not be checked ({exc})")
            return
        assert proc.stdin is not None
        try:
            proc.stdin.write(self.state.secret())  # far below a pipe's buffer
            proc.stdin.close()
        except OSError:
            pass  # it died at once: its exit status says why
        finally:
            self.state.wipe()
        self._check, self._check_too_slow = proc, False
        self.host.children.adopt(proc.pid, argv, None, proc.poll, proc.kill, on_exit=self._ended)
        self._check_timer = self.host.loop.call_later(
            CHECK_TIMEOUT_MS, self._check_too_long, "lock check"
        )

    def _check_too_long(self) -> None:
        """Stopped: its end, seen as any other, says "too long"."""
        self._check_timer = None
        if self._check is not None:
            log.warning(
                "lock: the password check took over %d s: stopped", CHECK_TIMEOUT_MS // 1000
            )
            self._check_too_slow = True
            self._check.kill()

    def _ended(self, child: Child) -> None:
        proc, self._check = self._check, None
        if self._check_timer is not None:
            self._check_timer.remove()
            self._check_timer = None
        stderr = ""
        if proc is not None and proc.stderr is not None:
            stderr = proc.stderr.read(4096).decode(errors="replace")
            proc.stderr.close()
        ok, why = outcome(None if self._check_too_slow else child.returncode, stderr)
        if not ok:
            log.warning("lock: not unlocked: %s%s", why, f" ({stderr.strip()})" if stderr else "")
        self.state.checked(ok, why)
        if ok:
            self._unlock()
        else:
            self._draw()

    # ---- locking after a time without input ----

    def watch_idle(
        self, pointer: Callable[[], tuple[float, float]], inhibited: Callable[[], bool]
    ) -> None:
        """Lock after `after_s` seconds with no key and no pointer motion (checked every few
        seconds: the pointer's motion runs in C, so its position is compared), unless
        `inhibited()` (a program on screen holds an idle inhibitor)."""
        self._pointer = pointer
        self._inhibited = inhibited
        if self._idle is not None:
            self._idle.remove()
            self._idle = None
        if self.after_s:
            self._idle = self.host.loop.timer(self._idle_check, "idle lock")
            self._idle.schedule(self._idle_period_ms())

    def _idle_period_ms(self) -> int:
        assert self.after_s
        return int(min(5.0, max(0.5, self.after_s / 4)) * 1000)

    def input_seen(self) -> None:
        self.last_input = time.monotonic()

    def _idle_check(self) -> None:
        if not self.after_s or self._idle is None:
            return
        self._idle.schedule(self._idle_period_ms())
        if self._pointer is not None:
            at = self._pointer()
            if at != self._pointer_at:
                self._pointer_at = at
                self.last_input = time.monotonic()
        if self._inhibited is not None and self._inhibited():
            self.last_input = time.monotonic()
        if not self.locked and time.monotonic() - self.last_input >= self.after_s:
            self.lock(f"no input for {self.after_s:g} s")

    def shutdown(self) -> None:
        """Its timers go; a password check still running ends with the compositor's other
        children (`Children.kill_all`)."""
        for t in (self._clock, self._idle, self._check_timer):
            if t is not None:
                t.remove()
        self._clock = self._idle = self._check_timer = None
