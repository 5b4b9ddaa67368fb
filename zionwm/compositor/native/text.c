/* Text and boxes drawn with pango and cairo (see text.h). */

#include <math.h>
#include <cairo.h>
#include <pango/pangocairo.h>

#include "text.h"

#define FAMILY "DejaVu Sans,sans-serif"

struct zion_canvas {
    cairo_surface_t *surface;
    cairo_t *cr;
};

/* One context for every layout: its font options are the image surfaces' (grey
 * antialiasing) and its metrics are not hinted, so a text at scale 2 is twice as wide as
 * at scale 1 and a width measured is the width drawn. */
static PangoContext *text_context(void) {
    static PangoContext *ctx;
    if (ctx) return ctx;
    PangoFontMap *map = pango_cairo_font_map_get_default();
    ctx = pango_font_map_create_context(map);
    cairo_font_options_t *opts = cairo_font_options_create();
    cairo_font_options_set_antialias(opts, CAIRO_ANTIALIAS_GRAY);
    cairo_font_options_set_hint_style(opts, CAIRO_HINT_STYLE_SLIGHT);
    cairo_font_options_set_hint_metrics(opts, CAIRO_HINT_METRICS_OFF);
    pango_cairo_context_set_font_options(ctx, opts);
    cairo_font_options_destroy(opts);
    return ctx;
}

static PangoLayout *text_layout(const char *utf8, double size, int bold) {
    PangoLayout *layout = pango_layout_new(text_context());
    PangoFontDescription *font = pango_font_description_from_string(FAMILY);
    pango_font_description_set_absolute_size(font, size * PANGO_SCALE);
    pango_font_description_set_weight(font, bold ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL);
    pango_layout_set_font_description(layout, font);
    pango_font_description_free(font);
    pango_layout_set_single_paragraph_mode(layout, TRUE);
    pango_layout_set_text(layout, utf8, -1);
    return layout;
}

/* How far a capital's top lies above the baseline, and its height: the same for every text
 * of a font, so every label drawn with it shares one baseline. */
static void cap_metrics(double size, int bold, double *above_baseline, double *height) {
    static double last_size = -1, last_above, last_height;
    static int last_bold = -1;
    if (size != last_size || bold != last_bold) {
        PangoLayout *layout = text_layout("H", size, bold);
        PangoRectangle ink;
        pango_layout_get_extents(layout, &ink, NULL);
        double baseline = (double)pango_layout_get_baseline(layout) / PANGO_SCALE;
        last_above = baseline - (double)ink.y / PANGO_SCALE;
        last_height = (double)ink.height / PANGO_SCALE;
        last_size = size;
        last_bold = bold;
        g_object_unref(layout);
    }
    *above_baseline = last_above;
    *height = last_height;
}

struct zion_canvas *zion_canvas_create(unsigned char *pixels, int width, int height) {
    if (width <= 0 || height <= 0) return NULL;
    struct zion_canvas *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->surface = cairo_image_surface_create_for_data(pixels, CAIRO_FORMAT_ARGB32, width, height,
                                                     width * 4);
    c->cr = cairo_create(c->surface);
    if (cairo_status(c->cr) != CAIRO_STATUS_SUCCESS) {
        zion_canvas_destroy(c);
        return NULL;
    }
    return c;
}

void zion_canvas_destroy(struct zion_canvas *c) {
    if (!c) return;
    if (c->cr) cairo_destroy(c->cr);
    if (c->surface) {
        cairo_surface_flush(c->surface);
        cairo_surface_destroy(c->surface);
    }
    free(c);
}

void zion_canvas_box(struct zion_canvas *c, double x, double y, double w, double h,
                     double radius, double r, double g, double b, double a) {
    cairo_t *cr = c->cr;
    radius = fmin(radius, fmin(w, h) / 2);
    cairo_new_path(cr);
    if (radius > 0) {
        cairo_arc(cr, x + w - radius, y + radius, radius, -M_PI / 2, 0);
        cairo_arc(cr, x + w - radius, y + h - radius, radius, 0, M_PI / 2);
        cairo_arc(cr, x + radius, y + h - radius, radius, M_PI / 2, M_PI);
        cairo_arc(cr, x + radius, y + radius, radius, M_PI, 3 * M_PI / 2);
        cairo_close_path(cr);
    } else {
        cairo_rectangle(cr, x, y, w, h);
    }
    cairo_set_source_rgba(cr, r, g, b, a);
    cairo_fill(cr);
}

double zion_canvas_text(struct zion_canvas *c, double x, double box_top, double box_h,
                        const char *utf8, double size, int bold, double r, double g, double b,
                        double a, double max_width) {
    PangoLayout *layout = text_layout(utf8, size, bold);
    if (max_width > 0) {
        pango_layout_set_width(layout, (int)(max_width * PANGO_SCALE));
        pango_layout_set_ellipsize(layout, PANGO_ELLIPSIZE_END);
    }
    double above, cap;
    cap_metrics(size, bold, &above, &cap);
    double baseline = box_top + floor((box_h - cap) / 2) + above;
    double top = round(baseline - (double)pango_layout_get_baseline(layout) / PANGO_SCALE);
    PangoRectangle logical;
    pango_layout_get_extents(layout, NULL, &logical);
    cairo_t *cr = c->cr;
    cairo_set_source_rgba(cr, r, g, b, a);
    cairo_move_to(cr, round(x), top);
    pango_cairo_show_layout(cr, layout);
    g_object_unref(layout);
    return (double)logical.width / PANGO_SCALE;
}

double zion_text_width(const char *utf8, double size, int bold) {
    PangoLayout *layout = text_layout(utf8, size, bold);
    PangoRectangle logical;
    pango_layout_get_extents(layout, NULL, &logical);
    g_object_unref(layout);
    return (double)logical.width / PANGO_SCALE;
}

int zion_text_unknown_glyphs(const char *utf8, double size, int bold) {
    PangoLayout *layout = text_layout(utf8, size, bold);
    int n = pango_layout_get_unknown_glyphs_count(layout);
    g_object_unref(layout);
    return n;
}
