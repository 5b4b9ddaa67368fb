"""What the pages of the manager's window may use of it: the window's parts and the few
methods the pages share. `ManagerWindow` puts them together; each page is a mixin of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zionwm.manager import models
from zionwm.manager.client import Control


class WindowParts:
    control: Control
    status: dict[str, Any]
    model: models.DesktopList
    stack: Any
    toasts: Any
    usage_on: bool
    compact: bool = False  # the window is narrow: rows put less side by side
    q_page: Any
    rows_widgets: dict[str, dict[str, Any]]
    sort_key: str
    q_stream: Any
    q_items: list[Any]
    q_first_action: Any
    q_watch: int
    sources_label: Any

    def toast(self, text: str) -> None:
        raise NotImplementedError

    def run(self, argv: list[str], ok: str | None = None) -> dict[str, Any] | None:
        raise NotImplementedError

    def confirm(self, heading: str, body: str, action: str, fn: Callable[[], Any]) -> None:
        raise NotImplementedError

    # the pages' own, which the other pages call
    def refresh(self) -> None:
        raise NotImplementedError

    def _update_rows(self) -> None:
        raise NotImplementedError

    def show_apps(self, desktop: str | None = None) -> None:
        raise NotImplementedError

    def _fill_app_desktops(self) -> None:
        raise NotImplementedError

    def _follow_switch(self, name: str) -> None:
        raise NotImplementedError

    def _quarantine_client(self) -> Any:
        raise NotImplementedError
