"""The X window manager of one desktop: wlroots' XWM on an Xwayland the compositor started.

A thin shell over native/ (see build.py for why the wlr_xwayland is made there): it
attaches the XWM when the desktop's Xwayland is ready, binds it to the desktop's seat and
turns each new X window into an `XView` (managed) or `Unmanaged` (override-redirect) of
that desktop. Every X window of this XWM belongs to this desktop: the X server is the
desktop's own, so no other desktop's program can create one here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pywayland.server import Signal
from wlroots import ffi as wlr_ffi
from wlroots import lib as wlr_lib
from wlroots.xwayland import Surface as XSurface

from . import native
from .listeners import HasListeners
from .xviews import Unmanaged, XView

if TYPE_CHECKING:
    from wlroots.wlr_types import Seat

    from .server import Server

log = logging.getLogger(__name__)


def prepare(display: Any, compositor: Any) -> bool:
    """Learn wlroots' XWM hooks (once per compositor); False if this wlroots cannot."""
    return native.xwayland_prepare(display, compositor)


class RootlessWM(HasListeners):
    def __init__(self, server: Server, desktop: str) -> None:
        self.server = server
        self.desktop = desktop
        self._ptr = native.xwayland_create(server.display, server.compositor)
        wlr_ptr = native.to_wlr(self._ptr, "struct wlr_xwayland *")
        self._wlr_ptr = wlr_ptr
        self.new_surface_event = Signal(
            ptr=wlr_ffi.addressof(wlr_ptr.events.new_surface), data_wrapper=XSurface
        )
        self.add_listener(self.new_surface_event, self._on_new_surface)
        self.unmanaged: list[Unmanaged] = []
        self.paused = False
        self._wm_fd = -1  # the running XWM's socket (owned by wlroots)

    def attach(self, seat: Seat, client: int, wm_fd: int, pid: int) -> bool:
        """Run the XWM on `wm_fd` (owned by it from here) for the Xwayland whose Wayland
        connection is `client`. The seat is set each time: wlroots unsets it when an XWM
        goes away with its server."""
        wlr_lib.wlr_xwayland_set_seat(self._wlr_ptr, seat._ptr)
        if not native.xwayland_attach(self._ptr, client, wm_fd, pid):
            return False
        self._wm_fd = wm_fd
        self.paused = False
        if not native.xwayland_terminate_with_last_client(self._ptr, wm_fd):
            log.warning(
                "desktop %s: the X server will not stop by itself when idle "
                "(the window manager's connection could not be marked)",
                self.desktop,
            )
        return True

    def pause(self, paused: bool) -> None:
        """Read no X events while the desktop is frozen or being frozen: see
        native/build.py, zion_xwayland_pause."""
        if paused == self.paused:
            return
        self.paused = paused
        if not native.xwayland_has_wm(self._ptr):
            return
        if not native.xwayland_pause(self._ptr, paused):
            log.warning("desktop %s: cannot pause the X window manager", self.desktop)
            return
        log.debug(
            "desktop %s: X window manager %s", self.desktop, "paused" if paused else "resumed"
        )

    def x_focused(self) -> None:
        """An X window of this desktop got the focus. wlroots bridges an X program's copy to
        the seat only if an X window has the focus when the program's answer (its types)
        arrives: a copy whose answer came while a Wayland window had the focus (the user
        clicked one just after copying, or a Wayland clipboard tool took the focus, with
        the X program slow to answer under load) was dropped for good. So the XWM reads
        the X clipboard's owner again now, unless the clipboard comes from Wayland."""
        if self.paused or not native.xwayland_has_wm(self._ptr):
            return
        if native.xwayland_rebridge_clipboard(self._ptr, self._wm_fd) < 0:
            log.warning("desktop %s: cannot reach the X window manager's clipboard", self.desktop)

    def _on_new_surface(self, listener: Any, xsurface: XSurface) -> None:
        self._adopt(xsurface, False)

    def _adopt(self, xsurface: XSurface, mapped: bool) -> None:
        """Manage `xsurface` as the kind it is now; `mapped`: it is already on screen (it
        changed kind while shown, and wlroots will not say map again)."""
        if xsurface.override_redirect:
            u = Unmanaged(self.server, xsurface, self.desktop)
            self.unmanaged.append(u)
            u.on_gone = self.unmanaged.remove
            u.on_kind_changed = self._adopt
            if mapped:
                u._on_map(None, None)
            return
        view = XView(self.server, xsurface, self.desktop)
        view.on_kind_changed = self._adopt
        view.on_activated = self.x_focused
        self.server.add_view(view)
        if mapped:
            view._on_x_map(None, None)

    def close(self) -> None:
        """At shutdown. A running XWM keeps its wlr_xwayland until its X server hangs up
        (wlroots frees the XWM only then), so only an idle one is freed here."""
        self.finalize_listeners()
        if not native.xwayland_has_wm(self._ptr):
            native.xwayland_destroy(self._ptr)
