"""Listener bookkeeping and guarded callbacks.

Every object that listens to wlroots signals inherits `HasListeners`: it keeps each Listener
referenced (pywayland would otherwise let it be collected while C still points at it) and
removes them all, newest first, in `finalize_listeners()` — called from its destroy handler.
Every callback is wrapped by `guarded`: a Python exception is logged with its context and
swallowed, so one bad event never takes the compositor down or leaves C waiting.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from pywayland.server import Listener, Signal

log = logging.getLogger(__name__)

CALLBACK_ERROR = "callback failed"  # the test harness looks for this marker in the log

callback_errors = 0


def guarded(context: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global callback_errors
        try:
            return fn(*args, **kwargs)
        except Exception:
            callback_errors += 1
            log.exception("%s: %s", CALLBACK_ERROR, context)
            return None

    return wrapper


class HasListeners:
    _listeners: list[Listener]

    def add_listener(self, signal: Signal, callback: Callable[..., Any]) -> None:
        if not hasattr(self, "_listeners"):
            self._listeners = []
        name = f"{type(self).__name__}.{getattr(callback, '__name__', 'callback')}"
        listener = Listener(guarded(name, callback))
        signal.add(listener)
        self._listeners.append(listener)

    def finalize_listeners(self) -> None:
        for listener in reversed(getattr(self, "_listeners", [])):
            listener.remove()
        self._listeners = []
