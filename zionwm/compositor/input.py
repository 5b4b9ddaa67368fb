"""Keyboards, the pointer and key bindings.

Key events are matched against the bindings first (by translated and by level-0 keysym, so
Super+Shift+1 matches whichever the user wrote); everything else goes to the seat of the
focused window's desktop. Pointer motion runs in the native module (native.Pointer).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any, Protocol

from pywayland.protocol.wayland import WlKeyboard
from wlroots import ffi, lib
from wlroots.wlr_types import InputDevice
from wlroots.wlr_types.keyboard import KeyboardKeyEvent, KeyboardModifier
from xkbcommon import xkb

from .listeners import HasListeners

log = logging.getLogger(__name__)

MODIFIER_BITS = {
    "shift": KeyboardModifier.SHIFT,
    "ctrl": KeyboardModifier.CTRL,
    "alt": KeyboardModifier.ALT,
    "super": KeyboardModifier.LOGO,
}
_RELEVANT = (
    KeyboardModifier.SHIFT | KeyboardModifier.CTRL | KeyboardModifier.ALT | KeyboardModifier.LOGO
)


def modifier_mask(names: frozenset[str]) -> int:
    mask = 0
    for n in names:
        mask |= MODIFIER_BITS[n]
    return int(mask)


def keysym_of(name: str) -> int:
    sym = xkb.keysym_from_name(name)
    if sym == 0:
        sym = xkb.keysym_from_name(name, case_insensitive=True)
    return int(sym)


@lru_cache(maxsize=4)
def compiled_keymap(layout: str | None, variant: str | None, options: str | None) -> Any:
    """The keymap for these settings, compiled once: compiling takes 10-20 ms, and every
    virtual keyboard (wtype makes one per call) comes without one and needs it before its
    first key. xkb keymaps are immutable, so keyboards can share one."""
    return xkb.Context().keymap_new_from_names(layout=layout, variant=variant, options=options)


def attach_keyboard(seat: Any, device: InputDevice | None) -> None:
    """Make `device` the seat's keyboard, or leave the seat without one (None).

    A seat sends every client bound to it the keymap and repeat rate whenever its keyboard
    changes, focused or not; a seat without a keyboard sends nothing. So only the seats
    that may receive input hold one: clients of a hidden desktop must not learn when
    typing starts and stops elsewhere (a virtual keyboard comes and goes with each use).
    """
    if device is None:
        lib.wlr_seat_set_keyboard(seat._ptr, ffi.NULL)
    else:
        seat.set_keyboard(device)


class BindingTable:
    """(modifier mask, keysym) -> command string, from the config."""

    def __init__(self, bindings: list[tuple[frozenset[str], str, str]]) -> None:
        self.table: dict[tuple[int, int], str] = {}
        for mods, key, command in bindings:
            sym = keysym_of(key)
            if sym:
                self.table[(modifier_mask(mods), sym)] = command
                lower = int(xkb.keysym_to_lower(sym)) if hasattr(xkb, "keysym_to_lower") else sym
                self.table.setdefault((modifier_mask(mods), lower), command)

    def match(self, mods: int, syms: list[int]) -> str | None:
        m = mods & int(_RELEVANT)
        for s in syms:
            cmd = self.table.get((m, s))
            if cmd is not None:
                return cmd
        return None


class KeyboardCompositor(Protocol):
    """What a keyboard asks of the compositor: its bindings, and where its keys go."""

    @property
    def bindings(self) -> BindingTable: ...

    def binding_pressed(self, command: str, keycode: int) -> None: ...

    def consume_release(self, keycode: int) -> bool: ...

    def keyboard_key(self, handler: KeyboardHandler, event: Any) -> None: ...

    @property
    def bindings_off(self) -> bool: ...

    def keyboard_modifiers(self, handler: KeyboardHandler) -> None: ...

    def keyboard_destroyed(self, handler: KeyboardHandler) -> None: ...


class KeyboardHandler(HasListeners):
    def __init__(self, server: KeyboardCompositor, device: InputDevice) -> None:
        self.server = server
        self.device = device
        self.keyboard = device.keyboard
        self.add_listener(self.keyboard.modifiers_event, self._on_keyboard_modifiers)
        self.add_listener(self.keyboard.key_event, self._on_keyboard_key)
        self.add_listener(device.destroy_event, self._on_device_destroy)

    def _on_keyboard_modifiers(self, listener: Any, data: Any) -> None:
        self.server.keyboard_modifiers(self)

    def _on_keyboard_key(self, listener: Any, event: KeyboardKeyEvent) -> None:
        if self.server.bindings_off:
            if event.state != WlKeyboard.key_state.pressed:
                # the release of a binding's key (Super+L's L) is no longer owed to anyone
                self.server.consume_release(event.keycode)
            self.server.keyboard_key(self, event)  # the lock screen's: no binding runs
            return
        if event.state == WlKeyboard.key_state.pressed:
            syms = self.keysyms(event.keycode + 8)
            command = self.server.bindings.match(int(self.keyboard.modifier), syms)
            if command is not None:
                self.server.binding_pressed(command, event.keycode)
                return
        elif self.server.consume_release(event.keycode):
            return
        self.server.keyboard_key(self, event)

    def caps_lock(self) -> bool:
        """Caps Lock is on (a locked modifier: wlr_keyboard_get_modifiers leaves those out)."""
        state = self.keyboard._ptr.xkb_state
        if state == ffi.NULL:
            return False
        return lib.xkb_state_mod_name_is_active(state, b"Lock", lib.XKB_STATE_MODS_EFFECTIVE) > 0

    def text(self, keycode: int) -> str:
        """What the key types now (the keymap's layout and modifiers), '' for none."""
        kb = self.keyboard._ptr
        buf = ffi.new("char[64]")
        n = lib.xkb_state_key_get_utf8(kb.xkb_state, keycode, buf, 64)
        return ffi.string(buf, min(n, 63)).decode(errors="replace") if n > 0 else ""

    def keysyms(self, keycode: int) -> list[int]:
        """The keysyms of an xkb keycode: as translated now, and at level 0."""
        kb = self.keyboard._ptr
        out = ffi.new("const xkb_keysym_t **")
        syms: list[int] = []
        n = lib.xkb_state_key_get_syms(kb.xkb_state, keycode, out)
        syms.extend(out[0][i] for i in range(n))
        layout = lib.xkb_state_key_get_layout(kb.xkb_state, keycode)
        n = lib.xkb_keymap_key_get_syms_by_level(kb.keymap, keycode, layout, 0, out)
        syms.extend(out[0][i] for i in range(n))
        return syms

    def _on_device_destroy(self, listener: Any, data: Any) -> None:
        self.finalize_listeners()
        self.server.keyboard_destroyed(self)
