/* Declarations exposed to Python by zionwm's own cffi module (API mode: the C compiler
 * checks them against the real wlroots 0.15 / libwayland 1.21 headers). Only what
 * pywlroots 0.15.24 lacks, plus zionwm's small C helpers. */

struct wl_display;
struct wl_client;
struct wl_global;
struct wlr_seat;
struct wlr_surface;
struct wlr_buffer;
struct wlr_data_source;

struct wl_interface { const char *name; ...; };

/* scene graph (missing from pywlroots 0.15) */
struct wlr_scene_node_state { bool enabled; int x, y; ...; };
struct wlr_scene_node { int type; struct wlr_scene_node *parent; struct wlr_scene_node_state state; void *data; ...; };
struct wlr_scene_tree { struct wlr_scene_node node; ...; };
struct wlr_scene_rect { struct wlr_scene_node node; int width, height; ...; };
struct wlr_scene_buffer { struct wlr_scene_node node; ...; };
struct wlr_scene_surface { struct wlr_scene_node node; struct wlr_surface *surface; ...; };

struct wlr_scene_tree *wlr_scene_tree_create(struct wlr_scene_node *parent);
void wlr_scene_node_set_enabled(struct wlr_scene_node *node, bool enabled);
void wlr_scene_node_set_position(struct wlr_scene_node *node, int x, int y);
void wlr_scene_node_raise_to_top(struct wlr_scene_node *node);
void wlr_scene_node_destroy(struct wlr_scene_node *node);
struct wlr_scene_node *wlr_scene_node_at(struct wlr_scene_node *node,
    double lx, double ly, double *nx, double *ny);
struct wlr_scene_rect *wlr_scene_rect_create(struct wlr_scene_node *parent,
    int width, int height, const float color[4]);
void wlr_scene_rect_set_size(struct wlr_scene_rect *rect, int width, int height);
void wlr_scene_rect_set_color(struct wlr_scene_rect *rect, const float color[4]);
struct wlr_scene_buffer *wlr_scene_buffer_create(struct wlr_scene_node *parent,
    struct wlr_buffer *buffer);
void wlr_scene_buffer_set_dest_size(struct wlr_scene_buffer *scene_buffer,
    int width, int height);
struct wlr_scene_surface *wlr_scene_surface_from_node(struct wlr_scene_node *node);
enum { WLR_SCENE_NODE_ROOT, WLR_SCENE_NODE_TREE, WLR_SCENE_NODE_SURFACE,
       WLR_SCENE_NODE_RECT, WLR_SCENE_NODE_BUFFER };

/* outputs */
struct wlr_output;
void wlr_output_set_description(struct wlr_output *output, const char *desc);

/* libwayland-server pieces pywayland lacks */
const struct wl_interface *wl_global_get_interface(const struct wl_global *global);
struct wl_client *wl_resource_get_client(struct wl_resource *resource);
void wl_client_destroy(struct wl_client *client);

/* zionwm helpers (C, in build.py) */
struct wl_client *zion_client_create(struct wl_display *display, int fd, int desktop);
void zion_surface_extents(struct wlr_surface *surface, int *out); /* x, y, width, height */
int zion_client_desktop(const struct wl_client *client);   /* -1: host (trusted) client */
int zion_resource_desktop(struct wl_resource *resource);
void zion_filter_install(struct wl_display *display);
void zion_filter_allow(const char *interface_name);
void zion_filter_clear(void);
void zion_filter_set_seat_global(int desktop, const struct wl_global *global);

struct wlr_buffer *zion_pixel_buffer_create(int width, int height, int stride,
    const unsigned char *argb8888);
void zion_buffer_drop(struct wlr_buffer *buffer);

/* text and boxes the compositor draws (text.c, pango-cairo) */
struct zion_canvas;
struct zion_canvas *zion_canvas_create(unsigned char *pixels, int width, int height);
void zion_canvas_destroy(struct zion_canvas *canvas);
void zion_canvas_box(struct zion_canvas *canvas, double x, double y, double w, double h,
    double radius, double r, double g, double b, double a);
double zion_canvas_text(struct zion_canvas *canvas, double x, double box_top, double box_h,
    const char *utf8, double size, int bold, double r, double g, double b, double a,
    double max_width);
double zion_text_width(const char *utf8, double size, int bold);
int zion_text_unknown_glyphs(const char *utf8, double size, int bold);

struct wlr_data_source *zion_data_source_create(int id);
void zion_data_source_add_mime(struct wlr_data_source *source, const char *mime);
void zion_data_source_destroy(struct wlr_data_source *source);

struct wlr_data_source *zion_seat_selection(struct wlr_seat *seat);
const char *zion_data_source_mime(struct wlr_data_source *source, size_t index);
void zion_data_source_send(struct wlr_data_source *source, const char *mime, int fd);

struct wl_global *zion_seat_global(struct wlr_seat *seat);

/* presentation-time and xdg-activation (not wrapped by pywlroots 0.15) */
struct wlr_xdg_activation_v1;
struct wlr_xdg_activation_token_v1;
struct wlr_xdg_activation_v1_request_activate_event {
    struct wlr_xdg_activation_v1 *activation;
    struct wlr_xdg_activation_token_v1 *token;
    struct wlr_surface *surface;
};
struct wlr_backend;
struct wlr_scene;
void zion_presentation_attach(struct wl_display *display, struct wlr_backend *backend,
    struct wlr_scene *scene);
struct wl_signal *zion_xdg_activation_create(struct wl_display *display);
struct wlr_scene_node *wlr_scene_subsurface_tree_create(struct wlr_scene_node *parent,
    struct wlr_surface *surface);

/* xdg surface geometry, watched in C: Python hears only of changes, not of every commit */
struct wlr_xdg_surface;
struct zion_geometry_watch;
struct zion_geometry_watch *zion_watch_geometry(struct wlr_xdg_surface *xdg,
    struct wlr_surface *surface, int id);
void zion_unwatch_geometry(struct zion_geometry_watch *watch);

/* the per-frame path, all in C: commit the scene output and send frame-done */
struct wlr_scene_output;
struct zion_output_frame;
struct zion_output_frame *zion_output_frame_attach(struct wlr_output *output,
    struct wlr_scene_output *scene_output, int id);
void zion_output_frame_detach(struct zion_output_frame *frame);
void zion_output_frame_notify_next(struct zion_output_frame *frame);

/* thumbnails of the frame on screen (the overview): copied out, scaled later */
struct wlr_renderer;
/* one desktop's windows alone, ARGB8888 into out (width * height * 4) */
struct wlr_allocator;
bool zion_capture_tree(struct wlr_renderer *renderer, struct wlr_allocator *allocator,
                       struct wlr_scene_node *root, int ox, int oy, int width, int height,
                       unsigned char *out);
bool zion_capture_tree_thumbnail(struct wlr_renderer *renderer, struct wlr_allocator *allocator,
                                 struct wlr_scene_node *root, int ox, int oy, int width,
                                 int height, float scale, unsigned char *dst, int dw, int dh);
void zion_scale_xrgb(const unsigned char *src, int sw, int sh, int sstride,
                     unsigned char *dst, int dw, int dh);
/* a wlr_xwayland whose Xwayland runs in a desktop's sandbox (see build.py) */
struct wlr_compositor;
struct wlr_xwayland;
int zion_xwayland_prepare(struct wl_display *display, struct wlr_compositor *compositor);
struct wlr_xwayland *zion_xwayland_create(struct wl_display *display,
    struct wlr_compositor *compositor);
int zion_xwayland_attach(struct wlr_xwayland *xw, struct wl_client *client, int wm_fd, int pid);
int zion_xwayland_has_wm(struct wlr_xwayland *xw);
int zion_xwayland_pause(struct wlr_xwayland *xw, int paused);
int zion_xwayland_terminate_with_last_client(struct wlr_xwayland *xw, int wm_fd);
int zion_xwayland_rebridge_clipboard(struct wlr_xwayland *xw, int wm_fd);
void zion_xwayland_destroy(struct wlr_xwayland *xw);

/* called from C into Python */
extern "Python" void zion_py_client_destroyed(struct wl_client *, int);
extern "Python" void zion_py_source_send(int, const char *, int);
extern "Python" void zion_py_source_destroyed(int);
extern "Python" void zion_py_geometry_changed(int, int, int, int, int);
extern "Python" void zion_py_frame_committed(int, long long, long long, long long);
extern "Python" void zion_py_pointer_grab_motion(unsigned int);
extern "Python" void zion_py_pointer_seat_changed(int);

/* the pointer's per-motion path, all in C (see build.py) */
struct wlr_cursor;
struct wlr_xcursor_manager;
struct zion_pointer;
struct zion_pointer *zion_pointer_attach(struct wlr_cursor *cursor,
        struct wlr_xcursor_manager *xcursor, struct wlr_scene_node *root);
void zion_pointer_detach(struct zion_pointer *p);
void zion_pointer_process(struct zion_pointer *p, uint32_t time_msec);
void zion_pointer_set_slot_seat(int slot, struct wlr_seat *seat);
void zion_pointer_forget_seat(struct zion_pointer *p);
int zion_pointer_seat_slot(struct zion_pointer *p);
void zion_pointer_set_grab(struct zion_pointer *p, bool on);
