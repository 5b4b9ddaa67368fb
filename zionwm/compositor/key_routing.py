"""Input devices as they come, and where each key goes.

A key press is matched against the bindings first (input.KeyboardHandler); a binding runs
its command here, anything else goes to the seat of the surface that has the keyboard. While
the overview is open, keys go to it and to no client.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pywayland.protocol.wayland import WlKeyboard
from wlroots import ffi as wlr_ffi
from wlroots.wlr_types import InputDevice, Seat
from wlroots.wlr_types.input_device import InputDeviceType
from wlroots.wlr_types.keyboard import KeyboardModifier

from .core import ServerCore
from .input import KeyboardHandler, compiled_keymap
from .ipc import Deferred

log = logging.getLogger(__name__)


class KeyRouting(ServerCore):
    """Keyboards and pointers as they are plugged in; key presses, bindings, modifiers."""

    def _on_backend_new_input(self, listener: Any, device: InputDevice) -> None:
        self._add_input(device)

    def _on_virtual_keyboard_new(self, listener: Any, vkbd: Any) -> None:
        self._add_input(vkbd.input_device)

    def _on_virtual_pointer_new(self, listener: Any, event: Any) -> None:
        self._add_input(event.new_pointer.input_device)

    def _add_input(self, device: InputDevice) -> None:
        if device.device_type == InputDeviceType.KEYBOARD:
            settings = self.config.settings
            kb = device.keyboard
            # a virtual keyboard brings its own keymap; do not replace it
            if kb._ptr.keymap == wlr_ffi.NULL:
                keymap = compiled_keymap(
                    getattr(settings, "keyboard_layout", None) or None,
                    getattr(settings, "keyboard_variant", None) or None,
                    getattr(settings, "keyboard_options", None) or None,
                )
                kb.set_keymap(keymap)
            kb.set_repeat_info(
                int(getattr(settings, "repeat_rate", 25)),
                int(getattr(settings, "repeat_delay", 600)),
            )
            handler = KeyboardHandler(self, device)
            self.keyboards.append(handler)
            self._route_keyboard()
            self._reenter_keyboard_focus()
        elif device.device_type in (InputDeviceType.POINTER, InputDeviceType.TOUCH):
            self.cursor.attach_input_device(device)

    def keyboard_destroyed(self, handler: KeyboardHandler) -> None:
        if handler in self.keyboards:
            self.keyboards.remove(handler)
        if self.keyboards:
            self._route_keyboard()

    def _input_seat(self) -> Seat:
        if self.layer_focus is not None:
            return self.host_seat
        v = self.focused_view
        return self.seat_of_desktop(v.desktop) if v is not None else self.host_seat

    def caps_lock(self) -> bool:
        """Caps Lock is on, on any keyboard."""
        return any(k.caps_lock() for k in self.keyboards)

    @property
    def bindings_off(self) -> bool:
        """Key bindings do nothing while the screen is locked."""
        return self.locker.locked

    def keyboard_modifiers(self, handler: KeyboardHandler) -> None:
        if self.locker.locked:
            self.locker.modifiers(handler.caps_lock())
        if self.input_taken:
            return  # no client has the keyboard while the overview or the lock is up
        seat = self._input_seat()
        seat.set_keyboard(handler.device)
        seat.keyboard_notify_modifiers(handler.keyboard.modifiers)
        self.wm.modifiers_changed(int(handler.keyboard.modifier))

    def keyboard_key(self, handler: KeyboardHandler, event: Any) -> None:
        self.locker.input_seen()
        if self.locker.locked:
            if event.state == WlKeyboard.key_state.pressed:
                code = event.keycode + 8
                mods = int(handler.keyboard.modifier)
                chord = mods & int(
                    KeyboardModifier.CTRL | KeyboardModifier.ALT | KeyboardModifier.LOGO
                )
                ctrl = bool(mods & int(KeyboardModifier.CTRL))
                self.locker.key(handler.keysyms(code), handler.text(code), ctrl, bool(chord))
            return  # no client gets a key while the screen is locked
        if self.overview.is_open:
            if event.state == WlKeyboard.key_state.pressed:
                self.overview.key(handler.keysyms(event.keycode + 8))
            return
        seat = self._input_seat()
        seat.set_keyboard(handler.device)
        seat.keyboard_notify_key(event)

    def binding_pressed(self, command: str, keycode: int) -> None:
        self._consumed_keys.add(keycode)
        name = command.split(None, 1)[0]
        if name in ("switch", "switch-prev"):
            self.switch_started_ns = time.monotonic_ns()
        if name != "overview":
            self.overview.close()
        # any binding brings a hidden strip back; the fullscreen command may hide it again
        self.strip_recalled = True
        self.in_binding = True
        try:
            result = self.run_command_text(command)
        finally:
            self.in_binding = False
            self._update_indicators()
            if self.switch_started_ns:  # a switch waits for its frame: its handling ends here
                self.switch_ready_ns = time.monotonic_ns()
                self.switch_ready_cpu_ns = time.thread_time_ns()
        if isinstance(result, Deferred):  # a launch waiting for its desktop's network
            result.then(self._binding_result, self._binding_failed)
        else:
            self._binding_result(result)

    def _binding_result(self, result: dict[str, Any]) -> None:
        if not result["ok"]:
            self.notify(result["message"], urgent=True)

    def _binding_failed(self, exc: Exception) -> None:
        self.notify(str(exc), urgent=True)

    def consume_release(self, keycode: int) -> bool:
        if keycode in self._consumed_keys:
            self._consumed_keys.discard(keycode)
            return True
        return False
