"""One desktop's own windows as an image: the Screenshot portal of that desktop, and the
`capture` control request (trusted clients: tests, tools).

Nothing is read back from the screen. The compositor draws the client surfaces under the
desktop's scene tree, alone, into a buffer of its own (native.capture_tree): other
desktops' windows, the strip, the overview, notifications and the cursor are never in it,
whatever is on screen at that moment, and a desktop not on screen is drawn as well. The
area is the whole output layout, as a screenshot of the screen would be; what is not a
window of that desktop is black.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import native

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)

REPLY_MAX = 900 * 1024  # base64 bytes in one `capture` reply


class CaptureError(RuntimeError):
    """The desktop could not be drawn; the message says why."""


@dataclass(frozen=True)
class Capture:
    desktop: str
    width: int
    height: int
    argb: bytes  # ARGB8888 rows (little-endian: B, G, R, A bytes)

    def png(self) -> bytes:
        return png_rgb(self.width, self.height, self.argb)


def png_rgb(width: int, height: int, argb: bytes) -> bytes:
    """ARGB8888 rows (B, G, R, A bytes) as an opaque 8-bit RGB PNG."""
    rgb = bytearray(width * height * 3)
    rgb[0::3], rgb[1::3], rgb[2::3] = argb[2::4], argb[1::4], argb[0::4]
    stride = width * 3
    # each row starts with its filter type: 0, none
    rows = b"".join(b"\0" + rgb[y * stride : (y + 1) * stride] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 3))
        + chunk(b"IEND", b"")
    )


def capture_desktop(server: Server, desktop: str) -> Capture:
    d = server.desktops.get(desktop)
    if d is None:
        raise CaptureError(f"no desktop {desktop!r}")
    box = server.output_layout.get_box(None)
    if box is None or box.width <= 0 or box.height <= 0:
        raise CaptureError("no output to take the size of")
    argb = native.capture_tree(
        server.renderer, server.allocator, d.tree, (box.x, box.y, box.width, box.height)
    )
    if argb is None:
        raise CaptureError("the renderer could not draw the desktop's windows")
    return Capture(desktop, box.width, box.height, argb)


def control_request(server: Server, desktop: str) -> dict[str, Any]:
    """The `capture` control request: {desktop, width, height, png (base64)}."""
    cap = capture_desktop(server, desktop)
    import base64  # noqa: PLC0415 - only a capture request needs it

    png = base64.b64encode(cap.png()).decode()
    if len(png) > REPLY_MAX:
        # the control socket cuts off a client with more than 1 MiB queued: say why instead
        raise CaptureError(f"the image is too large for a control reply ({len(png)} bytes)")
    return {"desktop": desktop, "width": cap.width, "height": cap.height, "png": png}


def attach(server: Server) -> None:
    """Offer the `capture` request on the control socket."""
    ipc = getattr(server, "ipc", None)
    for s in [*(getattr(ipc, "servers", ()) or ()), getattr(ipc, "control", None)]:
        if s is not None and hasattr(s, "capture"):
            s.capture = lambda desktop: control_request(server, desktop)
