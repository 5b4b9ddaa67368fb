/* zionwm's own native helpers: what the C needs, and the Python callbacks it calls.
 *
 * build.py hands zionwm_native.c to cffi, which compiles it into the module
 * _zionwm_native; the functions Python may call are declared for cffi in cdefs.h. */

#ifndef ZIONWM_NATIVE_H
#define ZIONWM_NATIVE_H

#define WLR_USE_UNSTABLE 1
#include <math.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>
#include <wayland-server-core.h>
#include <wlr/types/wlr_scene.h>
#include <wlr/types/wlr_buffer.h>
#include <wlr/render/wlr_renderer.h>
#include <wlr/types/wlr_data_device.h>
#include <wlr/types/wlr_seat.h>
#include <wlr/types/wlr_surface.h>
#include <wlr/util/box.h>
#include <wlr/types/wlr_output.h>
#include <wlr/types/wlr_presentation_time.h>
#include <wlr/types/wlr_xdg_activation_v1.h>
#include <wlr/types/wlr_cursor.h>
#include <wlr/types/wlr_pointer.h>
#include <wlr/types/wlr_xcursor_manager.h>
#include <wlr/xwayland.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <xcb/xfixes.h>
#include <drm_fourcc.h>
#include <wlr/render/allocator.h>
#include <wlr/render/drm_format_set.h>
#include <wlr/render/interface.h>
#include <wlr/types/wlr_matrix.h>

#include "text.h"

/* Defined by cffi in the generated module (extern "Python" in cdefs.h): how the C side
 * calls back into the compositor. */
static void zion_py_client_destroyed(struct wl_client *, int);
static void zion_py_source_send(int, const char *, int);
static void zion_py_source_destroyed(int);
static void zion_py_geometry_changed(int, int, int, int, int);
static void zion_py_frame_committed(int, long long, long long, long long);
static void zion_py_pointer_grab_motion(unsigned int);
static void zion_py_pointer_seat_changed(int);

#endif /* ZIONWM_NATIVE_H */
