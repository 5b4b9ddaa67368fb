"""Layer-shell surfaces (panels, backgrounds, launchers) for trusted host clients.

Desktop clients never see zwlr_layer_shell_v1 (the global filter), so every layer surface
comes from the user's own tools on the host socket. They are arranged per output below the
compositor's trust indicator, which always stays on top: a panel can never cover it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from wlroots.util.box import Box
from wlroots.wlr_types.layer_shell_v1 import (
    LayerShellV1Layer,
    LayerSurfaceV1,
    LayerSurfaceV1Anchor,
    LayerSurfaceV1KeyboardInteractivity,
)

from . import native
from .listeners import HasListeners
from .native import SceneNode, SceneTree
from .outputs import ServerOutput
from .ui import STRIP_HEIGHT
from .views import View

log = logging.getLogger(__name__)

A = LayerSurfaceV1Anchor


class LayerCompositor(Protocol):
    """What the layer surfaces ask of the compositor: the outputs they are arranged on, the
    windows that fit around them, and the keyboard they may take and give back."""

    @property
    def layers(self) -> Layers: ...

    @property
    def outputs(self) -> Sequence[ServerOutput]: ...

    def all_views(self) -> Sequence[View]: ...

    def focus_layer(self, view: LayerView) -> None: ...

    def unfocus_layer(self, view: LayerView) -> None: ...


class LayerView(HasListeners):
    def __init__(self, server: LayerCompositor, surface: LayerSurfaceV1, parent: SceneTree) -> None:
        self.server = server
        self.surface = surface
        self.node: SceneNode = native.subsurface_tree(parent, surface.surface)
        self.node.set_enabled(False)
        self.add_listener(surface.map_event, self._on_layer_surface_map)
        self.add_listener(surface.unmap_event, self._on_layer_surface_unmap)
        self.add_listener(surface.destroy_event, self._on_layer_surface_destroy)
        self.add_listener(surface.surface.commit_event, self._on_surface_commit)
        self._last: tuple[Any, ...] = ()
        self._interactivity = LayerSurfaceV1KeyboardInteractivity.NONE

    @property
    def layer(self) -> int:
        return int(self.surface.pending.layer)

    def keeps_keyboard(self, by_user: bool) -> bool:
        """Whether this surface keeps the keyboard when a window is to be focused.

        An exclusive surface (a launcher, a password prompt) keeps it from everything until
        it lets go itself; an on-demand one yields to the user's own click or desktop switch,
        never to a program mapping a window or asking xdg-activation.
        """
        exclusive = LayerSurfaceV1KeyboardInteractivity.EXCLUSIVE
        return self.surface.current.keyboard_interactive == exclusive or not by_user

    def _on_surface_commit(self, listener: Any, data: Any) -> None:
        st = self.surface.pending
        key = (
            int(st.anchor),
            st.exclusive_zone,
            st.desired_width,
            st.desired_height,
            int(st.layer),
            tuple(vars(st.margin).values()),
        )
        if key != self._last or not self.surface.configured:
            self._last = key
            self.server.layers.arrange()
        if self.surface.mapped:
            self._follow_interactivity()

    def _follow_interactivity(self) -> None:
        """Take or give back the keyboard as the surface asks (at map, and any time later)."""
        wanted = self.surface.current.keyboard_interactive
        if wanted == self._interactivity:
            return
        self._interactivity = wanted
        if wanted == LayerSurfaceV1KeyboardInteractivity.NONE:
            self.server.unfocus_layer(self)
        else:
            self.server.focus_layer(self)

    def _on_layer_surface_map(self, listener: Any, data: Any) -> None:
        self.node.set_enabled(True)
        self.server.layers.arrange()
        self._follow_interactivity()

    def _on_layer_surface_unmap(self, listener: Any, data: Any) -> None:
        self.node.set_enabled(False)
        self.server.layers.arrange()
        self._interactivity = LayerSurfaceV1KeyboardInteractivity.NONE
        self.server.unfocus_layer(self)

    def _on_layer_surface_destroy(self, listener: Any, data: Any) -> None:
        self.finalize_listeners()
        self.server.layers.remove(self)


class Layers:
    """The four layer trees and the arrangement of every layer surface."""

    def __init__(
        self, server: LayerCompositor, below: list[SceneTree], above: list[SceneTree]
    ) -> None:
        self.server = server
        self.trees = {
            LayerShellV1Layer.BACKGROUND: below[0],
            LayerShellV1Layer.BOTTOM: below[1],
            LayerShellV1Layer.TOP: above[0],
            LayerShellV1Layer.OVERLAY: above[1],
        }
        self.views: list[LayerView] = []
        self.exclusive: dict[str, Box] = {}  # output name -> usable area after panels

    def new_surface(self, surface: LayerSurfaceV1) -> None:
        if surface.output is None:
            outputs = self.server.outputs
            if not outputs:
                surface.destroy()
                return
            surface.output = outputs[0].output
        layer = LayerShellV1Layer(int(surface.pending.layer))
        self.views.append(LayerView(self.server, surface, self.trees[layer]))

    def remove(self, view: LayerView) -> None:
        if view in self.views:
            self.views.remove(view)
            self.arrange()

    def arrange(self) -> None:
        for so in self.server.outputs:
            full = so.box()
            # the trust indicator's strip is the compositor's: panels go below it
            area = [full.x, full.y + STRIP_HEIGHT, full.width, full.height - STRIP_HEIGHT]
            mine = [
                v
                for v in self.views
                if v.surface.output is not None and v.surface.output.name == so.output.name
            ]
            # exclusive surfaces first, so the others are placed in what is left
            for v in sorted(mine, key=lambda v: v.surface.pending.exclusive_zone <= 0):
                self._place(v, area)
            self.exclusive[so.name] = Box(*area)
        # windows keep their whole frame inside what is left (placement.py)
        for view in self.server.all_views():
            view.refit()

    def _place(self, view: LayerView, area: list[int]) -> None:
        st = view.surface.pending
        anchor = int(st.anchor)
        m = st.margin
        ax, ay, aw, ah = area
        w = st.desired_width or (
            aw - m.left - m.right if anchor & A.LEFT and anchor & A.RIGHT else 0
        )
        h = st.desired_height or (
            ah - m.top - m.bottom if anchor & A.TOP and anchor & A.BOTTOM else 0
        )
        w, h = max(1, w), max(1, h)
        if anchor & A.LEFT and not anchor & A.RIGHT:
            x = ax + m.left
        elif anchor & A.RIGHT and not anchor & A.LEFT:
            x = ax + aw - w - m.right
        else:
            x = ax + (aw - w) // 2
        if anchor & A.TOP and not anchor & A.BOTTOM:
            y = ay + m.top
        elif anchor & A.BOTTOM and not anchor & A.TOP:
            y = ay + ah - h - m.bottom
        else:
            y = ay + (ah - h) // 2
        view.node.set_position(x, y)
        view.surface.configure(w, h)
        ez = st.exclusive_zone
        if ez > 0 and view.surface.mapped:
            edge = anchor & (A.TOP | A.BOTTOM | A.LEFT | A.RIGHT)
            if edge in (A.TOP, A.TOP | A.LEFT | A.RIGHT):
                area[1] += ez + m.top
                area[3] -= ez + m.top
            elif edge in (A.BOTTOM, A.BOTTOM | A.LEFT | A.RIGHT):
                area[3] -= ez + m.bottom
            elif edge in (A.LEFT, A.LEFT | A.TOP | A.BOTTOM):
                area[0] += ez + m.left
                area[2] -= ez + m.left
            elif edge in (A.RIGHT, A.RIGHT | A.TOP | A.BOTTOM):
                area[2] -= ez + m.right
