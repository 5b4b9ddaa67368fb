"""Build zionwm's own cffi module (API mode) for what pywlroots 0.15 lacks.

The C lives beside this file: `zionwm_native.c` (with `zionwm_native.h`) is the module's
source, compiled together with `text.c` (with `text.h`: the compositor's text, drawn
with pango-cairo) and `occlusion.c` (with `occlusion.h`: what each frame leaves out; only
that C calls it); `cdefs.h` declares what of them (and of wlroots) Python may call. Run
`python zionwm/compositor/native/build.py` (the Makefile does, whenever one of them changes;
not `-m`, which would import the package that needs the module being built): it compiles
`_zionwm_native` next to this file against the system wlroots and libwayland.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import cffi

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "zionwm_native.c"
HEADER = HERE / "zionwm_native.h"
# compiled beside the module's own source: the text the compositor draws (pango-cairo),
# and the frame handler's occlusion pass (C that Python never calls directly)
SOURCES = [HERE / "text.c", HERE / "occlusion.c"]


def _pkg_flags(what: str, *pkgs: str) -> list[str]:
    out = subprocess.run(
        ["pkg-config", what, *pkgs], check=True, capture_output=True, text=True
    ).stdout
    return out.split()


def make_ffi() -> cffi.FFI:
    ffi = cffi.FFI()
    cdefs = (HERE / "cdefs.h").read_text()
    # cffi needs the opaque struct names pywlroots passes us; declare them here.
    ffi.cdef("struct wl_resource;\n" + cdefs)
    ffi.set_source(
        "zionwm.compositor.native._zionwm_native",
        # cffi writes its own module source around this text, so the C is handed in as text;
        # its quoted #include finds the header through include_dirs
        SOURCE.read_text(),
        include_dirs=[str(HERE)],
        sources=[str(p) for p in SOURCES],
        depends=[str(HEADER), str(HERE / "text.h"), str(HERE / "occlusion.h")],
        libraries=["wlroots", "wayland-server", "xcb", "xcb-xfixes", "pixman-1", "m"],
        extra_link_args=_pkg_flags("--libs", "pangocairo"),
        extra_compile_args=[
            *_pkg_flags("--cflags", "wlroots", "wayland-server", "pixman-1", "libdrm", "xcb"),
            *_pkg_flags("--cflags", "pangocairo"),
            "-DWLR_USE_UNSTABLE",
            "-Wno-unused-parameter",
        ],
    )
    return ffi


def main() -> None:
    ffi = make_ffi()
    root = HERE.parent.parent.parent
    build_dir = root / "build" / "native"
    build_dir.mkdir(parents=True, exist_ok=True)
    lib_path = ffi.compile(tmpdir=str(build_dir), verbose=bool(os.environ.get("V")))
    target = HERE / Path(lib_path).name
    Path(lib_path).replace(target)


if __name__ == "__main__":
    main()
