"""zionwm's own cffi layer over wlroots 0.15 / libwayland: the ONLY place raw pointers cross
between cffi instances (ours and pywlroots'/pywayland's).

Everything else in the compositor calls the small typed wrappers below. Pointers travel
between the two cffi instances as integers (`_addr`), never as Python objects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from wlroots import ffi as wlr_ffi

from ._zionwm_native import ffi, lib

log = logging.getLogger(__name__)

Color = tuple[float, float, float, float]


def _addr(cdata: Any) -> int:
    """Address of a pointer from any cffi instance (or of a pywlroots/pywayland wrapper)."""
    ptr = getattr(cdata, "_ptr", cdata)
    return (
        int(wlr_ffi.cast("uintptr_t", ptr))
        if isinstance(ptr, wlr_ffi.CData)
        else int(ffi.cast("uintptr_t", ptr))
    )


def to_native(cdata: Any, ctype: str) -> Any:
    """A pywlroots/pywayland pointer as our own cffi pointer of `ctype`."""
    return ffi.cast(ctype, _addr(cdata))


def to_wlr(cdata: Any, ctype: str) -> Any:
    """One of our pointers as a pywlroots cffi pointer of `ctype`."""
    return wlr_ffi.cast(ctype, int(ffi.cast("uintptr_t", cdata)))


# ---- callbacks from C: set by the compositor, called through extern "Python" ----

_on_client_destroyed: Callable[[int, int], None] | None = None
_on_geometry_changed: Callable[[int, int, int, int, int], None] | None = None
_on_source_send: Callable[[int, str, int], None] | None = None
_on_source_destroyed: Callable[[int], None] | None = None


def set_source_callbacks(
    *,
    source_send: Callable[[int, str, int], None],
    source_destroyed: Callable[[int], None],
) -> None:
    global _on_source_send, _on_source_destroyed
    _on_source_send = source_send
    _on_source_destroyed = source_destroyed


def set_geometry_callback(callback: Callable[[int, int, int, int, int], None]) -> None:
    """callback(watch id, x, y, width, height) when a watched window's geometry changes."""
    global _on_geometry_changed
    _on_geometry_changed = callback


@ffi.def_extern()
def zion_py_geometry_changed(watch_id: int, x: int, y: int, width: int, height: int) -> None:
    try:
        if _on_geometry_changed is not None:
            _on_geometry_changed(watch_id, x, y, width, height)
    except Exception:
        log.exception("callback failed: geometry change of window %d", watch_id)


_on_frame_committed: Callable[[int, int, int, int], None] | None = None


def set_frame_callback(callback: Callable[[int, int, int, int], None]) -> None:
    """callback(output id, start ns, start CPU ns, when ns) for a frame asked for with
    notify_next: when the first frame event after the request came (CLOCK_MONOTONIC) and
    the compositor thread's CPU time then (CLOCK_THREAD_CPUTIME_ID, Python's
    time.thread_time_ns), and when the frame that followed it was committed."""
    global _on_frame_committed
    _on_frame_committed = callback


@ffi.def_extern()
def zion_py_frame_committed(output_id: int, start_ns: int, start_cpu_ns: int, when_ns: int) -> None:
    try:
        if _on_frame_committed is not None:
            _on_frame_committed(output_id, start_ns, start_cpu_ns, when_ns)
    except Exception:
        log.exception("callback failed: frame committed on output %d", output_id)


def attach_frame_handler(output: Any, scene_output: Any, output_id: int) -> Any:
    """Commit the scene and send frame-done on every frame of `output`, in C."""
    f = lib.zion_output_frame_attach(
        to_native(output, "struct wlr_output *"),
        to_native(scene_output, "struct wlr_scene_output *"),
        output_id,
    )
    if f == ffi.NULL:
        raise MemoryError("frame handler")
    return f


def detach_frame_handler(handle: Any) -> None:
    lib.zion_output_frame_detach(handle)


def notify_next_frame(handle: Any) -> None:
    lib.zion_output_frame_notify_next(handle)


def capture_tree(
    renderer: Any, allocator: Any, tree: SceneNode, box: tuple[int, int, int, int]
) -> bytes | None:
    """The client surfaces under `tree` alone, drawn into a buffer of their own: the layout
    rectangle `box` (x, y, width, height) as ARGB8888 rows; None if it cannot be drawn."""
    x, y, width, height = box
    if tree._node is None or width <= 0 or height <= 0:
        return None
    out = ffi.new("unsigned char[]", width * height * 4)
    ok = lib.zion_capture_tree(
        to_native(renderer, "struct wlr_renderer *"),
        to_native(allocator, "struct wlr_allocator *"),
        tree._node,
        x,
        y,
        width,
        height,
        out,
    )
    return bytes(ffi.buffer(out)) if ok else None


def capture_thumbnail(
    renderer: Any,
    allocator: Any,
    tree: SceneNode,
    box: tuple[int, int, int, int],
    scale: float,
    size: tuple[int, int],
) -> bytes | None:
    """The client surfaces under `tree` alone (as capture_tree draws them), the layout
    rectangle `box` drawn at `scale` picture pixels a layout pixel, then box-filtered to
    `size`: opaque ARGB8888 rows; None if they cannot be drawn. The full-size picture never
    reaches Python."""
    x, y, width, height = box
    tw, th = size
    if tree._node is None or width <= 0 or height <= 0 or tw <= 0 or th <= 0:
        return None
    dst = ffi.new("unsigned char[]", tw * th * 4)
    ok = lib.zion_capture_tree_thumbnail(
        to_native(renderer, "struct wlr_renderer *"),
        to_native(allocator, "struct wlr_allocator *"),
        tree._node,
        x,
        y,
        width,
        height,
        scale,
        dst,
        tw,
        th,
    )
    return bytes(ffi.buffer(dst)) if ok else None


def scale_pixels(argb: bytes, width: int, height: int, to_w: int, to_h: int) -> bytes:
    """Box-filter ARGB8888 pixels to another size (a thumbnail for a new grid)."""
    dst = ffi.new("unsigned char[]", to_w * to_h * 4)
    src = ffi.from_buffer("unsigned char[]", argb)
    lib.zion_scale_xrgb(src, width, height, width * 4, dst, to_w, to_h)
    return bytes(ffi.buffer(dst))


def watch_geometry(xdg_surface: Any, watch_id: int) -> Any:
    """Watch an xdg surface's commits in C; Python hears only of geometry changes."""
    xdg = to_native(xdg_surface, "struct wlr_xdg_surface *")
    surface = to_native(xdg_surface._ptr.surface, "struct wlr_surface *")
    w = lib.zion_watch_geometry(xdg, surface, watch_id)
    if w == ffi.NULL:
        raise MemoryError("geometry watch")
    return w


def watch_extents(surface: Any, watch_id: int) -> Any:
    """Watch a surface with no xdg geometry (an X window's) in C: Python hears only when what
    it draws changes size, as a geometry change of (0, 0, 0, 0)."""
    w = lib.zion_watch_geometry(ffi.NULL, to_native(surface, "struct wlr_surface *"), watch_id)
    if w == ffi.NULL:
        raise MemoryError("extents watch")
    return w


def unwatch_geometry(watch: Any) -> None:
    lib.zion_unwatch_geometry(watch)


_extents = ffi.new("int[4]")


def surface_extents(surface: Any) -> tuple[int, int, int, int]:
    """What a surface and its subsurfaces cover, in its own coordinates (x, y, w, h)."""
    lib.zion_surface_extents(to_native(surface, "struct wlr_surface *"), _extents)
    return _extents[0], _extents[1], _extents[2], _extents[3]


def set_client_destroyed_callback(callback: Callable[[int, int], None]) -> None:
    """callback(client address, desktop slot) when a tagged client goes away."""
    global _on_client_destroyed
    _on_client_destroyed = callback


@ffi.def_extern()
def zion_py_client_destroyed(client: Any, desktop: int) -> None:
    try:
        if _on_client_destroyed is not None:
            _on_client_destroyed(int(ffi.cast("uintptr_t", client)), desktop)
    except Exception:
        log.exception("client-destroyed callback failed")


@ffi.def_extern()
def zion_py_source_send(source_id: int, mime: Any, fd: int) -> None:
    try:
        if _on_source_send is None:
            os.close(fd)
            return
        _on_source_send(source_id, ffi.string(mime).decode(errors="replace"), fd)
    except Exception:
        log.exception("clipboard send callback failed")
        try:
            os.close(fd)
        except OSError:
            pass


@ffi.def_extern()
def zion_py_source_destroyed(source_id: int) -> None:
    try:
        if _on_source_destroyed is not None:
            _on_source_destroyed(source_id)
    except Exception:
        log.exception("clipboard source-destroyed callback failed")


# ---- clients and the global filter ----


def client_create(display: Any, fd: int, desktop: int) -> int:
    """Create a Wayland client on an accepted fd, tagged with its desktop; returns its address
    (0 on failure). The client is owned by libwayland, not by a Python object."""
    c = lib.zion_client_create(to_native(display, "struct wl_display *"), fd, desktop)
    return 0 if c == ffi.NULL else int(ffi.cast("uintptr_t", c))


def resource_desktop(resource: Any) -> int:
    """Desktop index of the client owning a wl_resource (-1 for host/trusted clients)."""
    return int(lib.zion_resource_desktop(to_native(resource, "struct wl_resource *")))


def surface_desktop(surface: Any) -> int:
    """Desktop index of the client owning a wlr_surface (pywlroots Surface or pointer)."""
    ptr = getattr(surface, "_ptr", surface)
    return resource_desktop(ptr.resource)


def client_destroy(client_addr: int) -> None:
    lib.wl_client_destroy(ffi.cast("struct wl_client *", client_addr))


def install_global_filter(display: Any, allowed_interfaces: frozenset[str]) -> None:
    lib.zion_filter_clear()
    for name in sorted(allowed_interfaces):
        lib.zion_filter_allow(name.encode())
    lib.zion_filter_install(to_native(display, "struct wl_display *"))


def set_seat_for_desktop(desktop: int, seat: Any) -> None:
    """Register the wl_seat global desktop `desktop` (-1: host) may see; it sees no other.
    None (a desktop removed at run time) forgets it before the seat is destroyed."""
    ptr = ffi.NULL if seat is None else to_native(seat, "struct wlr_seat *")
    g = ffi.NULL if seat is None else lib.zion_seat_global(ptr)
    lib.zion_filter_set_seat_global(desktop, g)
    lib.zion_pointer_set_slot_seat(desktop, ptr)  # the seat the pointer enters for it


# ---- the pointer ----

_on_pointer_grab_motion: Callable[[int], None] | None = None
_on_pointer_seat_changed: Callable[[int | None], None] | None = None


class Pointer:
    """The native pointer handler: motion (hit test, enter, motion, the default cursor
    image) and frame events run in C. `seat_changed(slot or None)` is called when another
    desktop's seat (-1: the host's) gets the pointer, or none; `grab_motion(time_msec)` for
    every motion while `set_grab(True)` (an interactive move or resize)."""

    def __init__(
        self,
        cursor: Any,
        xcursor_manager: Any,
        root: Any,
        grab_motion: Callable[[int], None],
        seat_changed: Callable[[int | None], None],
    ) -> None:
        global _on_pointer_grab_motion, _on_pointer_seat_changed
        _on_pointer_grab_motion = grab_motion
        _on_pointer_seat_changed = seat_changed
        self._ptr = lib.zion_pointer_attach(
            to_native(cursor, "struct wlr_cursor *"),
            to_native(xcursor_manager, "struct wlr_xcursor_manager *"),
            root,
        )
        if self._ptr == ffi.NULL:
            raise MemoryError("native pointer handler")

    def refresh(self, time_msec: int) -> None:
        """Run the motion path for where the cursor is now (the scene changed under it)."""
        lib.zion_pointer_process(self._ptr, time_msec & 0xFFFFFFFF)

    def set_grab(self, on: bool) -> None:
        lib.zion_pointer_set_grab(self._ptr, on)

    def forget_seat(self) -> None:
        """The compositor cleared the pointer focus itself."""
        lib.zion_pointer_forget_seat(self._ptr)

    def seat_slot(self) -> int | None:
        slot = lib.zion_pointer_seat_slot(self._ptr)
        return None if slot == -2 else int(slot)

    def detach(self) -> None:
        if self._ptr != ffi.NULL:
            lib.zion_pointer_detach(self._ptr)
            self._ptr = ffi.NULL


@ffi.def_extern()
def zion_py_pointer_grab_motion(time_msec: int) -> None:
    try:
        if _on_pointer_grab_motion is not None:
            _on_pointer_grab_motion(time_msec)
    except Exception:
        log.exception("callback failed: pointer motion during a grab")


@ffi.def_extern()
def zion_py_pointer_seat_changed(slot: int) -> None:
    try:
        if _on_pointer_seat_changed is not None:
            _on_pointer_seat_changed(None if slot == -2 else slot)
    except Exception:
        log.exception("callback failed: pointer seat change")


# ---- outputs ----


def set_output_description(output: Any, text: str) -> None:
    lib.wlr_output_set_description(to_native(output, "struct wlr_output *"), text.encode())


# ---- presentation-time, xdg-activation ----


def attach_presentation(display: Any, backend: Any, scene: Any) -> None:
    lib.zion_presentation_attach(
        to_native(display, "struct wl_display *"),
        to_native(backend, "struct wlr_backend *"),
        to_native(scene, "struct wlr_scene *"),
    )


def xdg_activation_signal(display: Any) -> Any:
    """Create xdg-activation-v1; returns its request_activate signal as a pywlroots pointer
    (for a pywayland Signal), or None."""
    sig = lib.zion_xdg_activation_create(to_native(display, "struct wl_display *"))
    return None if sig == ffi.NULL else to_wlr(sig, "struct wl_signal *")


def activation_surface(event_data: Any) -> int:
    """The surface address of a request_activate event (0 if none)."""
    ev = ffi.cast("struct wlr_xdg_activation_v1_request_activate_event *", _addr(event_data))
    return 0 if ev.surface == ffi.NULL else int(ffi.cast("uintptr_t", ev.surface))


def subsurface_tree(parent: Any, surface: Any) -> SceneNode:
    node = lib.wlr_scene_subsurface_tree_create(
        _parent_node(parent), to_native(surface, "struct wlr_surface *")
    )
    if node == ffi.NULL:
        raise RuntimeError("wlr_scene_subsurface_tree_create failed")
    return SceneNode(node)


# ---- scene graph ----


class SceneNode:
    """A scene node we created (tree, rect or buffer). destroy() is idempotent."""

    def __init__(self, node: Any) -> None:
        self._node = node  # our cffi `struct wlr_scene_node *`

    @property
    def wlr_node(self) -> Any:
        """As a pywlroots `struct wlr_scene_node *`, for pywlroots APIs taking a parent."""
        return to_wlr(self._node, "struct wlr_scene_node *")

    def set_enabled(self, enabled: bool) -> None:
        if self._node is not None:
            lib.wlr_scene_node_set_enabled(self._node, enabled)

    @property
    def enabled(self) -> bool:
        return bool(self._node is not None and self._node.state.enabled)

    def set_position(self, x: int, y: int) -> None:
        if self._node is not None:
            lib.wlr_scene_node_set_position(self._node, int(x), int(y))

    def raise_to_top(self) -> None:
        if self._node is not None:
            lib.wlr_scene_node_raise_to_top(self._node)

    def destroy(self) -> None:
        if self._node is not None:
            lib.wlr_scene_node_destroy(self._node)
            self._node = None


class SceneTree(SceneNode):
    @classmethod
    def create(cls, parent: Any) -> SceneTree:
        tree = lib.wlr_scene_tree_create(_parent_node(parent))
        if tree == ffi.NULL:
            raise RuntimeError("wlr_scene_tree_create failed")
        return cls(ffi.addressof(tree.node))


class SceneRect(SceneNode):
    @classmethod
    def create(cls, parent: Any, width: int, height: int, color: Color) -> SceneRect:
        c = ffi.new("float[4]", list(color))
        rect = lib.wlr_scene_rect_create(_parent_node(parent), max(0, width), max(0, height), c)
        if rect == ffi.NULL:
            raise RuntimeError("wlr_scene_rect_create failed")
        return cls(ffi.addressof(rect.node), rect)

    def __init__(self, node: Any, rect: Any = None) -> None:
        super().__init__(node)
        self._rect = rect

    def set_size(self, width: int, height: int) -> None:
        if self._node is not None:
            lib.wlr_scene_rect_set_size(self._rect, max(0, int(width)), max(0, int(height)))

    def set_color(self, color: Color) -> None:
        if self._node is not None:
            lib.wlr_scene_rect_set_color(self._rect, ffi.new("float[4]", list(color)))


class SceneImage(SceneNode):
    """A scene buffer showing ARGB8888 pixels we rendered (indicator, notifications)."""

    @classmethod
    def create(
        cls, parent: Any, width: int, height: int, argb: bytes, size: tuple[int, int] | None = None
    ) -> SceneImage:
        """`width` x `height` pixels shown on `size` layout pixels (default: as many): an
        image drawn at an output's scale 2 is twice the size it covers."""
        buf = lib.zion_pixel_buffer_create(width, height, width * 4, argb)
        if buf == ffi.NULL:
            raise MemoryError("pixel buffer")
        sb = lib.wlr_scene_buffer_create(_parent_node(parent), buf)
        # the scene buffer holds its own lock; drop the producer's reference
        lib.zion_buffer_drop(buf)
        if sb == ffi.NULL:
            raise RuntimeError("wlr_scene_buffer_create failed")
        if size is not None and size != (width, height):
            lib.wlr_scene_buffer_set_dest_size(sb, size[0], size[1])
        return cls(ffi.addressof(sb.node))


def _parent_node(parent: Any) -> Any:
    if isinstance(parent, SceneNode):
        if parent._node is None:
            raise RuntimeError("parent scene node was destroyed")
        return parent._node
    # a pywlroots SceneNode / Scene, or a raw pywlroots pointer
    if hasattr(parent, "node"):
        parent = parent.node
    return to_native(parent, "struct wlr_scene_node *")


def scene_root(scene: Any) -> Any:
    """The scene's root node as our pointer: resolve once, pass to node_at on every motion."""
    return _parent_node(scene)


_nx = ffi.new("double *")
_ny = ffi.new("double *")


def node_at(root: Any, lx: float, ly: float) -> tuple[int, float, float] | None:
    """The topmost enabled surface node under a layout point: (surface address, sx, sy).
    `root` is what scene_root() returned (this runs for every pointer motion)."""
    nx, ny = _nx, _ny
    node = lib.wlr_scene_node_at(root, lx, ly, nx, ny)
    if node == ffi.NULL or node.type != lib.WLR_SCENE_NODE_SURFACE:
        return None
    ss = lib.wlr_scene_surface_from_node(node)
    return int(ffi.cast("uintptr_t", ss.surface)), float(nx[0]), float(ny[0])


# ---- clipboard ----


def seat_selection(seat: Any) -> int:
    """Address of the seat's current selection source (0 if none)."""
    s = lib.zion_seat_selection(to_native(seat, "struct wlr_seat *"))
    return 0 if s == ffi.NULL else int(ffi.cast("uintptr_t", s))


def source_mime_types(source_addr: int) -> list[str]:
    src = ffi.cast("struct wlr_data_source *", source_addr)
    out: list[str] = []
    i = 0
    while True:
        m = lib.zion_data_source_mime(src, i)
        if m == ffi.NULL:
            return out
        out.append(ffi.string(m).decode(errors="replace"))
        i += 1


def source_send(source_addr: int, mime: str, fd: int) -> None:
    lib.zion_data_source_send(ffi.cast("struct wlr_data_source *", source_addr), mime.encode(), fd)


def own_source_create(source_id: int, mime_types: list[str]) -> Any:
    src = lib.zion_data_source_create(source_id)
    if src == ffi.NULL:
        raise MemoryError("data source")
    for m in mime_types:
        lib.zion_data_source_add_mime(src, m.encode())
    return src


def address_of(ptr: Any) -> int:
    return int(ffi.cast("uintptr_t", ptr))


def own_source_as_wlr(src: Any) -> Any:
    return to_wlr(src, "struct wlr_data_source *")


# ---- a desktop's X window manager (see build.py) ----


def xwayland_prepare(display: Any, compositor: Any) -> bool:
    return (
        lib.zion_xwayland_prepare(
            to_native(display, "struct wl_display *"),
            to_native(compositor, "struct wlr_compositor *"),
        )
        == 0
    )


def xwayland_create(display: Any, compositor: Any) -> Any:
    ptr = lib.zion_xwayland_create(
        to_native(display, "struct wl_display *"),
        to_native(compositor, "struct wlr_compositor *"),
    )
    if ptr == ffi.NULL:
        raise RuntimeError("could not create an X window manager")
    return ptr


def xwayland_attach(xw: Any, client_addr: int, wm_fd: int, pid: int) -> bool:
    client = ffi.cast("struct wl_client *", client_addr)
    return lib.zion_xwayland_attach(xw, client, wm_fd, pid) == 0


def xwayland_terminate_with_last_client(xw: Any, wm_fd: int) -> bool:
    return lib.zion_xwayland_terminate_with_last_client(xw, wm_fd) == 0


def xwayland_rebridge_clipboard(xw: Any, wm_fd: int) -> int:
    """1: the XWM reads the X clipboard's owner again; 0: nothing to read; -1: no XWM."""
    return int(lib.zion_xwayland_rebridge_clipboard(xw, wm_fd))


def xwayland_pause(xw: Any, paused: bool) -> bool:
    return lib.zion_xwayland_pause(xw, 1 if paused else 0) == 0


def xwayland_has_wm(xw: Any) -> bool:
    return bool(lib.zion_xwayland_has_wm(xw))


def xwayland_destroy(xw: Any) -> None:
    lib.zion_xwayland_destroy(xw)
