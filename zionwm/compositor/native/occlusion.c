/* Leaving out of a frame what nothing of it can show: scene nodes wholly under opaque ones.
 *
 * wlroots 0.15's scene draws every enabled node over the frame's damage, bottom to top, even
 * one that the windows above cover completely. With pixman each of them is a composite of
 * its whole damaged area: fifty stacked 250x250 windows cost fifty composites where the
 * screen shows eight, a few milliseconds on every frame that repaints them, a desktop
 * switch's among them. Before the frame handler's scene commit, zion_occlusion_hide walks
 * the enabled nodes top to bottom, gathering what the nodes above cover with opaque pixels;
 * a node whose whole box lies in that region is marked disabled for the commit, and
 * zion_occlusion_restore enables it again right after it, before frame-done goes out (so
 * every client hears of the frame as before). The marks are the node's own `enabled` bit,
 * set directly: wlr_scene_node_set_enabled would damage the node, and with it the next frame.
 *
 * What is opaque, so that a frame is the same pixels with or without this:
 * - a scene rect whose colour has alpha 1;
 * - a surface whose whole rectangle is opaque (wlroots computes surface->opaque_region: the
 *   whole surface for a buffer format without alpha, else what the client declared);
 * - a part of a surface's opaque region only where its buffer maps 1:1 onto an output of
 *   scale 1 (no buffer scale, transform or viewport): elsewhere a renderer that filters
 *   could blend the region's inner edges with the transparent pixels beside them.
 * Scene buffers (the compositor's own images) are never counted as covering anything.
 *
 * Left as they were:
 * - direct scan-out: wlroots scans a surface or buffer node out when it alone meets the
 *   output and matches its box; a frame with such a node exactly the output's size is not
 *   culled at all, so hiding nodes can never make scan-out start;
 * - presentation feedback: wlroots marks every enabled surface drawn on its primary output
 *   as sampled, covered or not; the output's precommit (zion_occlusion_sampled) marks the
 *   hidden ones the same way, in the same commit.
 */

#include "occlusion.h"

#include <math.h>
#include <wlr/types/wlr_output_damage.h>

struct zion_occlusion_walk {
    struct wlr_scene_output *scene_output;
    pixman_region32_t covered; /* output pixels covered by opaque nodes above */
    struct wlr_box viewport;   /* in layout coordinates, as wlroots' scan-out check has it */
    bool output_sized;         /* a surface or buffer is exactly the output: scan-out may apply */
    struct zion_culled *out;
};

/* wlroots' own rounding of a node's edges to output pixels (scale_box in wlr_scene.c) */
static int zion_scaled_edge(int edge, float scale) {
    return (int)round(edge * scale);
}

static struct wlr_box zion_scaled_box(int x, int y, int width, int height, float scale) {
    struct wlr_box b = {
        .x = zion_scaled_edge(x, scale),
        .y = zion_scaled_edge(y, scale),
    };
    b.width = zion_scaled_edge(x + width, scale) - b.x;
    b.height = zion_scaled_edge(y + height, scale) - b.y;
    return b;
}

static void zion_node_size(struct wlr_scene_node *node, int *width, int *height) {
    *width = *height = 0;
    switch (node->type) {
    case WLR_SCENE_NODE_SURFACE: {
        struct wlr_surface *s = wlr_scene_surface_from_node(node)->surface;
        *width = s->current.width;
        *height = s->current.height;
        break;
    }
    case WLR_SCENE_NODE_RECT: {
        struct wlr_scene_rect *r = (struct wlr_scene_rect *)node;
        *width = r->width;
        *height = r->height;
        break;
    }
    case WLR_SCENE_NODE_BUFFER: {
        struct wlr_scene_buffer *b = (struct wlr_scene_buffer *)node;
        if (b->dst_width > 0 && b->dst_height > 0) {
            *width = b->dst_width;
            *height = b->dst_height;
        } else if (b->buffer) {
            bool turned = b->transform & WL_OUTPUT_TRANSFORM_90;
            *width = turned ? b->buffer->height : b->buffer->width;
            *height = turned ? b->buffer->width : b->buffer->height;
        }
        break;
    }
    default:
        break;
    }
}

static void zion_culled_push(struct zion_culled *c, struct wlr_scene_node *node) {
    if (c->len == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct wlr_scene_node **nodes = realloc(c->nodes, cap * sizeof(*nodes));
        if (!nodes) return; /* then the node is simply drawn */
        c->nodes = nodes;
        c->cap = cap;
    }
    c->nodes[c->len++] = node;
    node->state.enabled = false;
}

/* Add what `node` (a leaf at output pixels `box`) paints opaquely to w->covered. */
static void zion_add_opaque(struct zion_occlusion_walk *w, struct wlr_scene_node *node,
                            const struct wlr_box *box, int ox, int oy) {
    float scale = w->scene_output->output->scale;
    if (node->type == WLR_SCENE_NODE_RECT) {
        if (((struct wlr_scene_rect *)node)->color[3] >= 1.0f)
            pixman_region32_union_rect(&w->covered, &w->covered, box->x, box->y,
                                       (unsigned)box->width, (unsigned)box->height);
        return;
    }
    if (node->type != WLR_SCENE_NODE_SURFACE) return;
    struct wlr_surface *s = wlr_scene_surface_from_node(node)->surface;
    if (!wlr_surface_get_texture(s)) return; /* not drawn */
    pixman_box32_t whole = {0, 0, s->current.width, s->current.height};
    if (pixman_region32_contains_rectangle(&s->opaque_region, &whole) == PIXMAN_REGION_IN) {
        pixman_region32_union_rect(&w->covered, &w->covered, box->x, box->y,
                                   (unsigned)box->width, (unsigned)box->height);
        return;
    }
    bool one_to_one = scale == 1.0f && s->current.scale == 1 &&
                      s->current.transform == WL_OUTPUT_TRANSFORM_NORMAL &&
                      !s->current.viewport.has_src && !s->current.viewport.has_dst &&
                      s->current.buffer_width == s->current.width &&
                      s->current.buffer_height == s->current.height;
    if (!one_to_one || !pixman_region32_not_empty(&s->opaque_region)) return;
    pixman_region32_t part;
    pixman_region32_init(&part);
    pixman_region32_copy(&part, &s->opaque_region);
    pixman_region32_translate(&part, ox, oy);
    pixman_region32_union(&w->covered, &w->covered, &part);
    pixman_region32_fini(&part);
}

/* Top to bottom: children last to first, then the node itself (drawn below its children).
 * (lx, ly) is the node's parent's position in layout coordinates. */
static void zion_occlusion_visit(struct zion_occlusion_walk *w, struct wlr_scene_node *node,
                                 int lx, int ly) {
    if (!node->state.enabled) return;
    lx += node->state.x;
    ly += node->state.y;
    struct wlr_scene_node *child;
    wl_list_for_each_reverse(child, &node->state.children, state.link) {
        zion_occlusion_visit(w, child, lx, ly);
    }
    if (node->type == WLR_SCENE_NODE_ROOT || node->type == WLR_SCENE_NODE_TREE) return;
    int width, height;
    zion_node_size(node, &width, &height);
    if (width <= 0 || height <= 0) return;
    if (node->type != WLR_SCENE_NODE_RECT && lx == w->viewport.x && ly == w->viewport.y &&
        width == w->viewport.width && height == w->viewport.height)
        w->output_sized = true; /* a surface or buffer scan-out could show */
    int ox = lx - w->scene_output->x, oy = ly - w->scene_output->y;
    struct wlr_box box =
        zion_scaled_box(ox, oy, width, height, w->scene_output->output->scale);
    if (box.width <= 0 || box.height <= 0) return;
    pixman_box32_t r = {box.x, box.y, box.x + box.width, box.y + box.height};
    if (wl_list_empty(&node->state.children) &&
        pixman_region32_contains_rectangle(&w->covered, &r) == PIXMAN_REGION_IN) {
        zion_culled_push(w->out, node);
        return;
    }
    zion_add_opaque(w, node, &box, ox, oy);
}

size_t zion_occlusion_hide(struct wlr_scene_output *scene_output, struct zion_culled *out) {
    out->len = 0;
    /* the commit will draw nothing (wlroots' own test): an idle frame costs no walk */
    if (!scene_output->output->needs_frame &&
        !pixman_region32_not_empty(&scene_output->damage->current))
        return 0;
    struct zion_occlusion_walk w = {.scene_output = scene_output, .out = out};
    w.viewport.x = scene_output->x;
    w.viewport.y = scene_output->y;
    wlr_output_effective_resolution(scene_output->output, &w.viewport.width,
                                    &w.viewport.height);
    pixman_region32_init(&w.covered);
    zion_occlusion_visit(&w, &scene_output->scene->node, 0, 0);
    pixman_region32_fini(&w.covered);
    if (w.output_sized) zion_occlusion_restore(out); /* scan-out decides alone, as before */
    return out->len;
}

void zion_occlusion_restore(struct zion_culled *c) {
    for (size_t i = 0; i < c->len; i++) c->nodes[i]->state.enabled = true;
    c->len = 0;
}

void zion_occlusion_sampled(struct zion_culled *c, struct wlr_scene_output *scene_output) {
    struct wlr_presentation *presentation = scene_output->scene->presentation;
    if (!presentation) return;
    struct wlr_output *output = scene_output->output;
    for (size_t i = 0; i < c->len; i++) {
        struct wlr_scene_node *node = c->nodes[i];
        if (node->type != WLR_SCENE_NODE_SURFACE) continue;
        struct wlr_scene_surface *ss = wlr_scene_surface_from_node(node);
        if (ss->primary_output == output)
            wlr_presentation_surface_sampled_on_output(presentation, ss->surface, output);
    }
}

void zion_culled_free(struct zion_culled *c) {
    free(c->nodes);
    c->nodes = NULL;
    c->len = c->cap = 0;
}
