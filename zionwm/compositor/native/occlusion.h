/* Scene nodes wholly under opaque ones, left out of a frame's scene commit (occlusion.c). */

#ifndef ZIONWM_OCCLUSION_H
#define ZIONWM_OCCLUSION_H

#define WLR_USE_UNSTABLE 1
#include <stdbool.h>
#include <stdlib.h>
#include <wayland-server-core.h>
#include <wlr/types/wlr_output.h>
#include <wlr/types/wlr_presentation_time.h>
#include <wlr/types/wlr_scene.h>
#include <wlr/types/wlr_surface.h>

/* The nodes hidden for one commit (kept per output, reused frame after frame). */
struct zion_culled {
    struct wlr_scene_node **nodes;
    size_t len, cap;
};

/* Disable, without damage, every enabled node that opaque nodes above it cover on this
 * output; returns how many. */
size_t zion_occlusion_hide(struct wlr_scene_output *scene_output, struct zion_culled *out);
/* Enable them again (right after the commit). */
void zion_occlusion_restore(struct zion_culled *culled);
/* In the output's precommit: mark the hidden surfaces sampled, as drawing them would. */
void zion_occlusion_sampled(struct zion_culled *culled, struct wlr_scene_output *scene_output);
void zion_culled_free(struct zion_culled *culled);

#endif /* ZIONWM_OCCLUSION_H */
