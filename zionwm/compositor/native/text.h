/* Text and boxes the compositor draws itself (the strip, the overview, notifications), with
 * pango and cairo: fontconfig picks a fallback font for what the main face lacks, and
 * HarfBuzz shapes the text. Everything is drawn into a caller's buffer of premultiplied
 * ARGB8888 (cairo's ARGB32: B, G, R, A bytes on little-endian), the format the scene's
 * pixel buffers show. */

#ifndef ZIONWM_TEXT_H
#define ZIONWM_TEXT_H

/* Called from the compositor's own thread only: the fonts and their caches are not locked. */
struct zion_canvas;

/* A canvas over `pixels` (width * height * 4 bytes, the caller's, cleared to transparent
 * by the caller); NULL if cairo cannot make one. */
struct zion_canvas *zion_canvas_create(unsigned char *pixels, int width, int height);
void zion_canvas_destroy(struct zion_canvas *canvas);
/* Fill the box x, y, w, h (pixels) with an opaque or translucent colour (components 0..1,
 * not premultiplied), its corners rounded by `radius` pixels (0: square). */
void zion_canvas_box(struct zion_canvas *canvas, double x, double y, double w, double h,
                     double radius, double r, double g, double b, double a);
/* One line of `utf8` at `size` pixels (bold or not), its start at x, its baseline where a
 * capital's middle is the middle of the band box_top .. box_top + box_h, whatever the
 * text (a descender or a taller fallback font does not move it). Ellipsized at its end to
 * at most `max_width` pixels when that is > 0. Returns the width it covers. */
double zion_canvas_text(struct zion_canvas *canvas, double x, double box_top, double box_h,
                        const char *utf8, double size, int bold, double r, double g, double b,
                        double a, double max_width);
/* The width (its advance, in pixels) of one line of `utf8` at `size`. */
double zion_text_width(const char *utf8, double size, int bold);
/* How many of its characters no font on the system has a glyph for (drawn as boxes). */
int zion_text_unknown_glyphs(const char *utf8, double size, int bold);

#endif /* ZIONWM_TEXT_H */
