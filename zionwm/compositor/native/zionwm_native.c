/* zionwm's own native helpers, for what pywlroots 0.15 lacks (built by build.py). */

#include "zionwm_native.h"
#include "occlusion.h"

/* ---- clients: the desktop a client belongs to is fixed at accept time, by socket ---- */

struct zion_client_tag {
    struct wl_listener destroy;
    int desktop;
    /* the global names this client's registries were told of (one bit each): see the
     * registry guard below */
    unsigned char *announced;
    size_t announced_bytes;
};

static void zion_client_tag_destroyed(struct wl_listener *listener, void *data) {
    struct zion_client_tag *tag = wl_container_of(listener, tag, destroy);
    int desktop = tag->desktop;
    wl_list_remove(&tag->destroy.link);
    free(tag->announced);
    free(tag);
    zion_py_client_destroyed((struct wl_client *)data, desktop);
}

struct wl_client *zion_client_create(struct wl_display *display, int fd, int desktop) {
    struct zion_client_tag *tag = calloc(1, sizeof(*tag));
    if (!tag) { close(fd); return NULL; }
    struct wl_client *client = wl_client_create(display, fd);
    if (!client) { free(tag); return NULL; }
    tag->desktop = desktop;
    tag->destroy.notify = zion_client_tag_destroyed;
    wl_client_add_destroy_listener(client, &tag->destroy);
    return client;
}

static struct zion_client_tag *zion_client_tag(const struct wl_client *client) {
    if (!client) return NULL;
    struct wl_listener *l = wl_client_get_destroy_listener(
        (struct wl_client *)client, zion_client_tag_destroyed);
    if (!l) return NULL;
    struct zion_client_tag *tag = wl_container_of(l, tag, destroy);
    return tag;
}

int zion_client_desktop(const struct wl_client *client) {
    struct zion_client_tag *tag = zion_client_tag(client);
    return tag ? tag->desktop : -1;
}

int zion_resource_desktop(struct wl_resource *resource) {
    if (!resource) return -1;
    return zion_client_desktop(wl_resource_get_client(resource));
}

/* ---- an X window manager for an X server the compositor did not start ----
 *
 * wlroots 0.15 only runs its XWM (wlr_xwm) for an Xwayland it forks itself, outside any
 * sandbox. The XWM needs three things from its wlr_xwayland_server: the wm socket (handed in
 * the `ready` event), the server's wl_client (to pair X windows with wl_surfaces) and its
 * `destroy` signal. So each desktop gets a wlr_xwayland whose server record is ours: no
 * process, no display sockets; the compositor starts Xwayland in the desktop's sandbox, and
 * emits `ready` with the wm socket once Xwayland said it is ready. The two listener
 * functions of wlr_xwayland are static in wlroots: they are read once from a throw-away
 * wlr_xwayland made in lazy mode (no process is forked; its sockets are closed before the
 * event loop runs again, so nothing can be served on them). */

static wl_notify_func_t zion_xwl_ready_notify = NULL;
static wl_notify_func_t zion_xwl_destroy_notify = NULL;

int zion_xwayland_prepare(struct wl_display *display, struct wlr_compositor *compositor) {
    if (zion_xwl_ready_notify) return 0;
    struct wlr_xwayland *probe = wlr_xwayland_create(display, compositor, true);
    if (!probe) return -1;
    zion_xwl_ready_notify = probe->server_ready.notify;
    zion_xwl_destroy_notify = probe->server_destroy.notify;
    wlr_xwayland_destroy(probe);
    return zion_xwl_ready_notify ? 0 : -1;
}

struct zion_xwayland {
    struct wlr_xwayland_server server; /* ours; first so wlroots may free() it */
    struct wl_listener client_destroy;
};

struct wlr_xwayland *zion_xwayland_create(struct wl_display *display,
                                          struct wlr_compositor *compositor) {
    if (!zion_xwl_ready_notify) return NULL;
    struct zion_xwayland *zx = calloc(1, sizeof(*zx));
    struct wlr_xwayland *xw = calloc(1, sizeof(*xw));
    if (!zx || !xw) { free(zx); free(xw); return NULL; }
    struct wlr_xwayland_server *server = &zx->server;
    server->wl_display = display;
    server->display = -1; /* no display sockets: wlroots' teardown leaves them alone */
    server->x_fd[0] = server->x_fd[1] = -1;
    server->wl_fd[0] = server->wl_fd[1] = -1;
    server->wm_fd[0] = server->wm_fd[1] = -1;
    server->options.enable_wm = true;
    wl_signal_init(&server->events.ready);
    wl_signal_init(&server->events.destroy);
    wl_list_init(&server->display_destroy.link);
    wl_list_init(&server->client_destroy.link);
    wl_list_init(&zx->client_destroy.link);
    xw->wl_display = display;
    xw->compositor = compositor;
    xw->server = server;
    xw->display_name = server->display_name;
    wl_signal_init(&xw->events.new_surface);
    wl_signal_init(&xw->events.ready);
    wl_signal_init(&xw->events.remove_startup_info);
    xw->server_ready.notify = zion_xwl_ready_notify;
    wl_signal_add(&server->events.ready, &xw->server_ready);
    xw->server_destroy.notify = zion_xwl_destroy_notify;
    wl_signal_add(&server->events.destroy, &xw->server_destroy);
    return xw;
}

static void zion_xwayland_client_gone(struct wl_listener *listener, void *data) {
    struct zion_xwayland *zx = wl_container_of(listener, zx, client_destroy);
    wl_list_remove(&zx->client_destroy.link);
    wl_list_init(&zx->client_destroy.link);
    zx->server.client = NULL;
}

/* Xwayland (client: its Wayland connection, already tagged with its desktop) is ready:
 * run the XWM on wm_fd, which it owns from here. 0 on success. */
int zion_xwayland_attach(struct wlr_xwayland *xw, struct wl_client *client, int wm_fd,
                         int pid) {
    struct zion_xwayland *zx = wl_container_of(xw->server, zx, server);
    if (xw->xwm) return -1; /* the previous server's XWM is still there */
    wl_list_remove(&zx->client_destroy.link);
    zx->server.client = client;
    zx->server.pid = pid;
    zx->client_destroy.notify = zion_xwayland_client_gone;
    wl_client_add_destroy_listener(client, &zx->client_destroy);
    struct wlr_xwayland_server_ready_event event = { .server = &zx->server, .wm_fd = wm_fd };
    wl_signal_emit(&zx->server.events.ready, &event);
    return xw->xwm ? 0 : -1;
}

int zion_xwayland_has_wm(struct wlr_xwayland *xw) { return xw->xwm != NULL; }

/* Let Xwayland's -terminate ignore the XWM's own connection (XFixes 6 client disconnect
 * mode), so the server exits once its last real X client is gone. wlroots 0.15 does not
 * ask for it, and its XWM keeps the xcb connection in a private struct: it is found there
 * by value, each candidate read safely (process_vm_readv on ourselves fails instead of
 * faulting) and accepted only if it is the xcb connection on wm_fd whose first screen is
 * the one stored in the field after it. 0 when set, -1 when not found. */
static int zion_readable(const void *p, size_t n) {
    char buf[64];
    struct iovec local = { buf, n < sizeof(buf) ? n : sizeof(buf) };
    struct iovec remote = { (void *)p, local.iov_len };
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)local.iov_len;
}

static xcb_connection_t *zion_xwm_connection(struct wlr_xwayland *xw, int wm_fd) {
    const char *xwm = (const char *)xw->xwm;
    if (!xwm) return NULL;
    for (size_t off = 3 * sizeof(void *); off < 1024; off += sizeof(void *)) {
        if (!zion_readable(xwm + off, 2 * sizeof(void *))) return NULL;
        xcb_connection_t *c = *(xcb_connection_t *const *)(xwm + off);
        if (!c || ((uintptr_t)c % sizeof(void *)) || !zion_readable(c, 64)) continue;
        if (xcb_get_file_descriptor(c) != wm_fd || xcb_connection_has_error(c)) continue;
        const xcb_setup_t *setup = xcb_get_setup(c);
        if (!setup) continue;
        void *screen = *(void *const *)(xwm + off + sizeof(void *));
        if (screen != (void *)xcb_setup_roots_iterator(setup).data) continue;
        return c;
    }
    return NULL;
}

int zion_xwayland_terminate_with_last_client(struct wlr_xwayland *xw, int wm_fd) {
    xcb_connection_t *c = zion_xwm_connection(xw, wm_fd);
    if (!c) return -1;
    xcb_xfixes_set_client_disconnect_mode(c, XCB_XFIXES_CLIENT_DISCONNECT_FLAGS_TERMINATE);
    xcb_flush(c);
    return 0;
}

/* Stop (paused=1) or resume reading the X server's events in the XWM. The XWM answers some
 * events with blocking round trips; a frozen X server would never answer, and the
 * compositor would hang. So a desktop's XWM reads nothing from just before the desktop is
 * frozen until it is thawed. Its event source is both an fd source and on the event loop's
 * check list (wlroots put it there; check-list sources run after every dispatch, and read
 * the socket too): pausing takes it off that list and clears its fd mask (a hang-up still
 * reaches it, so a dying X server is still noticed); resuming puts both back.
 * struct wlr_xwm and struct wl_event_source are private: their leading fields are checked
 * by value (the XWM's wlr_xwayland and event source; the source's loop and data) before
 * anything is touched. 0 when done, -1 otherwise. */
struct zion_source_head {
    void *interface;
    struct wl_event_loop *loop;
    struct wl_list link;
    void *data;
    int fd;
};

int zion_xwayland_pause(struct wlr_xwayland *xw, int paused) {
    void *const *xwm = (void *const *)xw->xwm;
    if (!xwm || xwm[0] != (void *)xw || !xwm[1]) return -1;
    struct zion_source_head *head = (struct zion_source_head *)xwm[1];
    if (head->loop != wl_display_get_event_loop(xw->wl_display) || head->data != xw->xwm ||
            head->fd < 0)
        return -1;
    struct wl_event_source *source = (struct wl_event_source *)head;
    wl_list_remove(&head->link); /* off the check list (or off itself: harmless) */
    wl_list_init(&head->link);
    if (paused) {
        wl_event_source_fd_update(source, 0);
    } else {
        wl_event_source_fd_update(source, WL_EVENT_READABLE);
        wl_event_source_check(source); /* back on the check list, as wlroots had it */
    }
    return 0;
}

/* Have the XWM take the X clipboard into the seat again (X -> Wayland), as it does when an X
 * program takes the clipboard. wlroots reads the new owner's types with a ConvertSelection
 * and bridges them only if an X window has the focus when the answer arrives; if the focus
 * has gone to a Wayland window by then (the user clicked one, under load), the copy is
 * dropped and nothing ever asks again. Called when an X window gets the focus: if the
 * CLIPBOARD owner is an X program (not the XWM's own proxy window, which owns it while the
 * clipboard comes from Wayland, and not nobody), the same ConvertSelection is sent again on
 * the XWM's connection, from its proxy window (wlroots makes that window the owner of
 * CLIPBOARD_MANAGER), so the answer takes wlroots' own path with the focus now in X.
 * Costs one round trip to the X server (not to the X program, which answers later, like any
 * selection request); never called while the desktop is frozen. wm_fd: the XWM's socket.
 * 1 when asked again, 0 when there was nothing to ask, -1 when the XWM or its connection
 * cannot be found. */
int zion_xwayland_rebridge_clipboard(struct wlr_xwayland *xw, int wm_fd) {
    xcb_connection_t *c = zion_xwm_connection(xw, wm_fd);
    if (!c) return -1;
    static const char *const names[] = {"CLIPBOARD", "CLIPBOARD_MANAGER", "TARGETS",
                                        "_WL_SELECTION"};
    enum { N_ATOMS = sizeof(names) / sizeof(names[0]) };
    xcb_intern_atom_cookie_t cookies[N_ATOMS];
    xcb_atom_t atoms[N_ATOMS];
    for (size_t i = 0; i < N_ATOMS; i++)
        cookies[i] = xcb_intern_atom(c, 0, strlen(names[i]), names[i]);
    int ok = 1;
    for (size_t i = 0; i < N_ATOMS; i++) {
        xcb_intern_atom_reply_t *r = xcb_intern_atom_reply(c, cookies[i], NULL);
        atoms[i] = r ? r->atom : XCB_ATOM_NONE;
        ok = ok && atoms[i] != XCB_ATOM_NONE;
        free(r);
    }
    if (!ok) return -1;
    xcb_get_selection_owner_cookie_t proxy_cookie = xcb_get_selection_owner(c, atoms[1]);
    xcb_get_selection_owner_cookie_t owner_cookie = xcb_get_selection_owner(c, atoms[0]);
    xcb_get_selection_owner_reply_t *proxy_r =
        xcb_get_selection_owner_reply(c, proxy_cookie, NULL);
    xcb_get_selection_owner_reply_t *owner_r =
        xcb_get_selection_owner_reply(c, owner_cookie, NULL);
    xcb_window_t proxy = proxy_r ? proxy_r->owner : XCB_WINDOW_NONE;
    xcb_window_t owner = owner_r ? owner_r->owner : XCB_WINDOW_NONE;
    free(proxy_r);
    free(owner_r);
    if (proxy == XCB_WINDOW_NONE) return -1;
    if (owner == XCB_WINDOW_NONE || owner == proxy) return 0;
    xcb_convert_selection(c, proxy, atoms[0], atoms[2], atoms[3], XCB_CURRENT_TIME);
    xcb_flush(c);
    /* events read during the round trips wait in xcb's queue: the XWM's event source is on
     * the event loop's check list (see zion_xwayland_pause), so it handles them after this
     * dispatch */
    return 1;
}

/* Tear down: wlroots destroys the XWM (if any) through the server's destroy signal. */
void zion_xwayland_destroy(struct wlr_xwayland *xw) {
    struct zion_xwayland *zx = wl_container_of(xw->server, zx, server);
    wl_list_remove(&zx->client_destroy.link);
    wl_list_init(&zx->client_destroy.link);
    zx->server.client = NULL;
    wlr_xwayland_destroy(xw); /* frees xw and, through wlr_xwayland_server_destroy, zx */
}

/* ---- global filter: deny by default for desktop clients; each sees only its own seat ---- */

#define ZION_MAX_ALLOW 64
#define ZION_MAX_DESKTOPS 64
static char *zion_allow[ZION_MAX_ALLOW];
static int zion_allow_n = 0;
static const struct wl_global *zion_seat_globals[ZION_MAX_DESKTOPS + 1]; /* [0] = host */

void zion_filter_clear(void) {
    for (int i = 0; i < zion_allow_n; i++) free(zion_allow[i]);
    zion_allow_n = 0;
}

void zion_filter_allow(const char *name) {
    if (zion_allow_n < ZION_MAX_ALLOW) zion_allow[zion_allow_n++] = strdup(name);
}

void zion_filter_set_seat_global(int desktop, const struct wl_global *global) {
    if (desktop >= -1 && desktop < ZION_MAX_DESKTOPS) zion_seat_globals[desktop + 1] = global;
}

static int zion_filter_allows(int desktop, const char *name) {
    if (desktop < 0) return 1;
    for (int i = 0; i < zion_allow_n; i++)
        if (strcmp(zion_allow[i], name) == 0) return 1;
    return 0;
}

static bool zion_global_filter(const struct wl_client *client, const struct wl_global *global,
                               void *data) {
    (void)data;
    int desktop = zion_client_desktop(client);
    const struct wl_interface *iface = wl_global_get_interface(global);
    if (strcmp(iface->name, "wl_seat") == 0) {
        if (desktop < -1 || desktop >= ZION_MAX_DESKTOPS) return false;
        const struct wl_global *mine = zion_seat_globals[desktop + 1];
        /* before seats are registered, hide every seat from desktop clients */
        return mine ? mine == global : desktop < 0;
    }
    return zion_filter_allows(desktop, iface->name);
}

/* ---- registry guard: a hidden global's number must look unused ----
 *
 * libwayland 1.21's wl_registry.bind checks the name, then the interface, then the version,
 * and the global filter only last: a desktop client binding a hidden global by its number
 * (numbers are predictable) with a wrong interface name is told "invalid interface for
 * global N: have X, wanted <the hidden interface>", and a wrong version tells it the hidden
 * global's version. The protocol logger is the one public hook that runs before a request is
 * dispatched: it records which names each desktop client's registries announced, and refuses
 * a bind of any other name with the very error libwayland gives for a name that does not
 * exist. libwayland's own check then runs on a client already in error and sends nothing. */

static void zion_note_announced(struct zion_client_tag *tag, uint32_t name) {
    size_t byte = name / 8;
    if (byte >= tag->announced_bytes) {
        size_t n = byte + 64;
        unsigned char *grown = realloc(tag->announced, n);
        if (!grown) return; /* the bind is then refused: fails closed */
        memset(grown + tag->announced_bytes, 0, n - tag->announced_bytes);
        tag->announced = grown;
        tag->announced_bytes = n;
    }
    tag->announced[byte] |= (unsigned char)(1u << (name % 8));
}

static bool zion_was_announced(const struct zion_client_tag *tag, uint32_t name) {
    size_t byte = name / 8;
    return byte < tag->announced_bytes && (tag->announced[byte] & (1u << (name % 8)));
}

static void zion_registry_guard(void *data, enum wl_protocol_logger_type type,
                                const struct wl_protocol_logger_message *m) {
    (void)data;
    /* every request and event passes here: one pointer compare for all but the registry */
    if (wl_resource_get_class(m->resource) != wl_registry_interface.name) return;
    if (m->message_opcode != 0) return; /* bind (request 0) and global (event 0) */
    struct zion_client_tag *tag = zion_client_tag(wl_resource_get_client(m->resource));
    if (!tag || tag->desktop < 0) return; /* host clients: libwayland decides */
    uint32_t name = m->arguments[0].u;
    if (type == WL_PROTOCOL_LOGGER_EVENT) {
        zion_note_announced(tag, name);
    } else if (!zion_was_announced(tag, name)) {
        /* libwayland 1.21's text for a name that is not a global, word for word */
        wl_resource_post_error(m->resource, WL_DISPLAY_ERROR_INVALID_OBJECT,
                               "invalid global %s (%d)", m->arguments[1].s, name);
    }
}

void zion_filter_install(struct wl_display *display) {
    wl_display_set_global_filter(display, zion_global_filter, NULL);
    wl_display_add_protocol_logger(display, zion_registry_guard, NULL);
}

struct wl_global *zion_seat_global(struct wlr_seat *seat) { return seat->global; }

/* ---- presentation-time and xdg-activation ---- */

void zion_presentation_attach(struct wl_display *display, struct wlr_backend *backend,
                              struct wlr_scene *scene) {
    struct wlr_presentation *p = wlr_presentation_create(display, backend);
    if (p) wlr_scene_set_presentation(scene, p);
}

struct wl_signal *zion_xdg_activation_create(struct wl_display *display) {
    struct wlr_xdg_activation_v1 *a = wlr_xdg_activation_v1_create(display);
    return a ? &a->events.request_activate : NULL;
}

/* ---- window geometry: every client frame commits; only a changed geometry reaches Python ---- */

/* declared here rather than by including wlr_xdg_shell.h, which needs generated protocol
 * headers; the signature is wlroots 0.15's */
void wlr_xdg_surface_get_geometry(struct wlr_xdg_surface *surface, struct wlr_box *box);

struct zion_geometry_watch {
    struct wl_listener commit;
    struct wlr_xdg_surface *xdg;
    struct wlr_surface *surface;
    int id;
    struct wlr_box last;
    struct wlr_box last_extents; /* what the client draws: the frame's masks follow it */
};

static bool zion_box_differs(const struct wlr_box *a, const struct wlr_box *b) {
    return a->x != b->x || a->y != b->y || a->width != b->width || a->height != b->height;
}

static void zion_geometry_commit(struct wl_listener *listener, void *data) {
    struct zion_geometry_watch *w = wl_container_of(listener, w, commit);
    struct wlr_box box, extents;
    (void)data;
    if (w->xdg)
        wlr_xdg_surface_get_geometry(w->xdg, &box);
    else
        box = (struct wlr_box){0}; /* an X surface: only what it draws is followed */
    wlr_surface_get_extends(w->surface, &extents);
    if (zion_box_differs(&box, &w->last) || zion_box_differs(&extents, &w->last_extents)) {
        w->last = box;
        w->last_extents = extents;
        zion_py_geometry_changed(w->id, box.x, box.y, box.width, box.height);
    }
}

void zion_surface_extents(struct wlr_surface *surface, int *out) {
    struct wlr_box box;
    wlr_surface_get_extends(surface, &box);
    out[0] = box.x;
    out[1] = box.y;
    out[2] = box.width;
    out[3] = box.height;
}

struct zion_geometry_watch *zion_watch_geometry(struct wlr_xdg_surface *xdg,
                                                struct wlr_surface *surface, int id) {
    struct zion_geometry_watch *w = calloc(1, sizeof(*w));
    if (!w) return NULL;
    w->xdg = xdg;
    w->surface = surface;
    w->id = id;
    w->last.width = -1;
    w->commit.notify = zion_geometry_commit;
    wl_signal_add(&surface->events.commit, &w->commit);
    return w;
}

void zion_unwatch_geometry(struct zion_geometry_watch *w) {
    if (!w) return;
    wl_list_remove(&w->commit.link);
    free(w);
}

/* ---- the frame handler: the hottest path, so no Python on it ---- */

struct zion_output_frame {
    struct wl_listener frame;
    struct wl_listener precommit;
    struct wlr_scene_output *scene_output;
    struct zion_culled culled; /* nodes left out of the commit under way (occlusion.c) */
    int id;
    int notify_next; /* report the next committed frame's time (switch latency) */
    long long notify_start; /* when the first frame event after that request came */
    long long notify_start_cpu; /* and the compositor thread's CPU time then */
};

static void zion_output_frame_precommit(struct wl_listener *listener, void *data) {
    struct zion_output_frame *f = wl_container_of(listener, f, precommit);
    (void)data;
    zion_occlusion_sampled(&f->culled, f->scene_output);
}

static long long zion_clock_ns(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void zion_output_frame_notify(struct wl_listener *listener, void *data) {
    struct zion_output_frame *f = wl_container_of(listener, f, frame);
    (void)data;
    /* the output's frame clock ends its wait here: what a switch waited for it is not the
     * compositor's work (a display's refresh, the headless backend's timer) */
    if (f->notify_next && !f->notify_start) {
        f->notify_start = zion_clock_ns(CLOCK_MONOTONIC);
        f->notify_start_cpu = zion_clock_ns(CLOCK_THREAD_CPUTIME_ID);
    }
    zion_occlusion_hide(f->scene_output, &f->culled);
    bool committed = wlr_scene_output_commit(f->scene_output);
    zion_occlusion_restore(&f->culled);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    wlr_scene_output_send_frame_done(f->scene_output, &now);
    if (committed && f->notify_next) {
        long long start = f->notify_start, start_cpu = f->notify_start_cpu;
        f->notify_next = 0;
        f->notify_start = f->notify_start_cpu = 0;
        zion_py_frame_committed(f->id, start, start_cpu,
                                (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
    }
}

struct zion_output_frame *zion_output_frame_attach(struct wlr_output *output,
                                                   struct wlr_scene_output *scene_output,
                                                   int id) {
    struct zion_output_frame *f = calloc(1, sizeof(*f));
    if (!f) return NULL;
    f->scene_output = scene_output;
    f->id = id;
    f->frame.notify = zion_output_frame_notify;
    wl_signal_add(&output->events.frame, &f->frame);
    f->precommit.notify = zion_output_frame_precommit;
    wl_signal_add(&output->events.precommit, &f->precommit);
    return f;
}

void zion_output_frame_detach(struct zion_output_frame *f) {
    if (!f) return;
    wl_list_remove(&f->frame.link);
    wl_list_remove(&f->precommit.link);
    zion_culled_free(&f->culled);
    free(f);
}

/* ---- thumbnails: a desktop's windows, scaled down once (box filter) ---- */

/* Average each destination pixel over its source rectangle; src and dst are 32-bit
 * little-endian xRGB/ARGB rows. The result is opaque. */
void zion_scale_xrgb(const unsigned char *src, int sw, int sh, int sstride,
                     unsigned char *dst, int dw, int dh) {
    for (int dy = 0; dy < dh; dy++) {
        int y0 = (int)((long long)dy * sh / dh), y1 = (int)((long long)(dy + 1) * sh / dh);
        if (y1 <= y0) y1 = y0 + 1;
        for (int dx = 0; dx < dw; dx++) {
            int x0 = (int)((long long)dx * sw / dw), x1 = (int)((long long)(dx + 1) * sw / dw);
            if (x1 <= x0) x1 = x0 + 1;
            unsigned int b = 0, g = 0, r = 0, n = 0;
            for (int y = y0; y < y1 && y < sh; y++) {
                const unsigned char *row = src + (ptrdiff_t)y * sstride; /* may be < 0 */
                for (int x = x0; x < x1 && x < sw; x++) {
                    b += row[4 * x]; g += row[4 * x + 1]; r += row[4 * x + 2]; n++;
                }
            }
            unsigned char *o = dst + ((size_t)dy * dw + dx) * 4;
            if (!n) n = 1;
            o[0] = (unsigned char)(b / n); o[1] = (unsigned char)(g / n);
            o[2] = (unsigned char)(r / n); o[3] = 255;
        }
    }
}

void zion_output_frame_notify_next(struct zion_output_frame *f) {
    if (f) {
        f->notify_next = 1;
        f->notify_start = f->notify_start_cpu = 0;
    }
}

/* ---- one desktop's windows, drawn alone (the Screenshot portal) ----
 *
 * Only the client surfaces found under one desktop's scene tree are drawn, each from its
 * own texture, into a buffer of our own: nothing else on screen (other desktops, the strip,
 * the overview, notifications) can reach the result, whatever is shown at the time. The
 * root is drawn even while disabled (a desktop not on screen); below it, hidden nodes stay
 * hidden. */

static void zion_capture_walk(struct wlr_renderer *r, const float proj[9],
                              struct wlr_scene_node *node, int lx, int ly, float scale,
                              int depth) {
    if (depth > 64) return;
    lx += node->state.x;
    ly += node->state.y;
    if (node->type == WLR_SCENE_NODE_SURFACE) {
        struct wlr_scene_surface *ss = wlr_scene_surface_from_node(node);
        struct wlr_texture *tex = ss->surface ? wlr_surface_get_texture(ss->surface) : NULL;
        if (tex) {
            /* layout pixels to the picture's: edges rounded, as the scene renders them */
            int x0 = (int)lroundf(lx * scale), y0 = (int)lroundf(ly * scale);
            int x1 = (int)lroundf((lx + ss->surface->current.width) * scale);
            int y1 = (int)lroundf((ly + ss->surface->current.height) * scale);
            struct wlr_box box = {x0, y0, x1 - x0, y1 - y0};
            float matrix[9];
            wlr_matrix_project_box(matrix, &box, WL_OUTPUT_TRANSFORM_NORMAL, 0, proj);
            wlr_render_texture_with_matrix(r, tex, matrix, 1.0f);
        }
    }
    struct wlr_scene_node *child;
    wl_list_for_each(child, &node->state.children, state.link) {
        if (child->state.enabled) zion_capture_walk(r, proj, child, lx, ly, scale, depth + 1);
    }
}

/* The layout rectangle from (ox, oy), drawn `scale` picture pixels to a layout pixel into
 * a width x height picture. */
static bool zion_capture_scaled(struct wlr_renderer *renderer, struct wlr_allocator *allocator,
                                struct wlr_scene_node *root, int ox, int oy, int width,
                                int height, float scale, unsigned char *out) {
    if (!renderer || !allocator || !root || width <= 0 || height <= 0 || !(scale > 0))
        return false;
    const struct wlr_drm_format_set *formats = NULL;
    if (renderer->impl->get_render_formats)
        formats = renderer->impl->get_render_formats(renderer);
    const struct wlr_drm_format *fmt = NULL;
    if (formats) {
        fmt = wlr_drm_format_set_get(formats, DRM_FORMAT_ARGB8888);
        if (!fmt) fmt = wlr_drm_format_set_get(formats, DRM_FORMAT_XRGB8888);
    }
    if (!fmt) return false;
    struct wlr_buffer *buffer = wlr_allocator_create_buffer(allocator, width, height, fmt);
    if (!buffer) return false;
    bool ok = wlr_renderer_begin_with_buffer(renderer, buffer);
    if (ok) {
        float proj[9];
        float black[4] = {0.0f, 0.0f, 0.0f, 1.0f};
        /* as wlroots' own scene renderer: the "projection" is the output's transform
         * (none here); each renderer maps pixels to its buffer itself */
        wlr_matrix_identity(proj);
        wlr_renderer_clear(renderer, black);
        wlr_renderer_scissor(renderer, NULL);
        zion_capture_walk(renderer, proj, root, -ox - root->state.x, -oy - root->state.y, scale,
                          0);
        uint32_t flags = 0;
        ok = wlr_renderer_read_pixels(renderer, DRM_FORMAT_ARGB8888, &flags, width * 4, width,
                                      height, 0, 0, 0, 0, out);
        wlr_renderer_end(renderer);
        if (ok && (flags & WLR_RENDERER_READ_PIXELS_Y_INVERT)) {
            unsigned char *tmp = malloc((size_t)width * 4);
            for (int y = 0; tmp && y < height / 2; y++) {
                unsigned char *a = out + (size_t)y * width * 4;
                unsigned char *b = out + (size_t)(height - 1 - y) * width * 4;
                memcpy(tmp, a, (size_t)width * 4);
                memcpy(a, b, (size_t)width * 4);
                memcpy(b, tmp, (size_t)width * 4);
            }
            free(tmp);
        }
    }
    wlr_buffer_drop(buffer);
    return ok;
}

bool zion_capture_tree(struct wlr_renderer *renderer, struct wlr_allocator *allocator,
                       struct wlr_scene_node *root, int ox, int oy, int width, int height,
                       unsigned char *out) {
    return zion_capture_scaled(renderer, allocator, root, ox, oy, width, height, 1.0f, out);
}

/* Whether anything under `node` would be drawn by zion_capture_walk. */
static bool zion_capture_has_surface(struct wlr_scene_node *node, int depth) {
    if (depth > 64) return false;
    if (node->type == WLR_SCENE_NODE_SURFACE) {
        struct wlr_scene_surface *ss = wlr_scene_surface_from_node(node);
        if (ss->surface && wlr_surface_get_texture(ss->surface)) return true;
    }
    struct wlr_scene_node *child;
    wl_list_for_each(child, &node->state.children, state.link) {
        if (child->state.enabled && zion_capture_has_surface(child, depth + 1)) return true;
    }
    return false;
}

/* The overview's thumbnail of one desktop: its windows drawn alone (as above), the layout
 * rectangle ox, oy, width x height at `scale` picture pixels a layout pixel (the caller
 * picks about twice the thumbnail's size: a 2x2 box filter over a picture drawn at that
 * size, not at the screen's, which cost three times as much), then box-filtered to dw x dh
 * opaque ARGB8888 rows in dst. The picture is read where it was drawn when the buffer has
 * a CPU mapping (shm, dumb buffers), else through the renderer into memory mapped for it
 * alone (from malloc, a block this large would raise glibc's mmap threshold and stay in
 * the heap). A desktop with nothing to draw is black at once. */
bool zion_capture_tree_thumbnail(struct wlr_renderer *renderer, struct wlr_allocator *allocator,
                                 struct wlr_scene_node *root, int ox, int oy, int width,
                                 int height, float scale, unsigned char *dst, int dw, int dh) {
    if (!renderer || !allocator || !root || width <= 0 || height <= 0 || dw <= 0 || dh <= 0 ||
        !(scale > 0))
        return false;
    if (!zion_capture_has_surface(root, 0)) {
        for (size_t i = 0; i < (size_t)dw * dh; i++) {
            dst[4 * i] = dst[4 * i + 1] = dst[4 * i + 2] = 0;
            dst[4 * i + 3] = 255;
        }
        return true;
    }
    int pw = (int)lroundf(width * scale), ph = (int)lroundf(height * scale);
    if (pw <= 0 || ph <= 0) return false;
    const struct wlr_drm_format_set *formats = NULL;
    if (renderer->impl->get_render_formats) formats = renderer->impl->get_render_formats(renderer);
    const struct wlr_drm_format *fmt = NULL;
    if (formats) {
        fmt = wlr_drm_format_set_get(formats, DRM_FORMAT_ARGB8888);
        if (!fmt) fmt = wlr_drm_format_set_get(formats, DRM_FORMAT_XRGB8888);
    }
    if (!fmt) return false;
    struct wlr_buffer *buffer = wlr_allocator_create_buffer(allocator, pw, ph, fmt);
    if (!buffer) return false;
    if (!wlr_renderer_begin_with_buffer(renderer, buffer)) {
        wlr_buffer_drop(buffer);
        return false;
    }
    float proj[9];
    float black[4] = {0.0f, 0.0f, 0.0f, 1.0f};
    wlr_matrix_identity(proj);
    wlr_renderer_clear(renderer, black);
    wlr_renderer_scissor(renderer, NULL);
    zion_capture_walk(renderer, proj, root, -ox - root->state.x, -oy - root->state.y, scale, 0);
    wlr_renderer_end(renderer);
    bool ok = false;
    void *data = NULL;
    uint32_t format = 0;
    size_t stride = 0;
    if (wlr_buffer_begin_data_ptr_access(buffer, WLR_BUFFER_DATA_PTR_ACCESS_READ, &data, &format,
                                         &stride)) {
        if ((format == DRM_FORMAT_ARGB8888 || format == DRM_FORMAT_XRGB8888) &&
            stride >= (size_t)pw * 4) {
            zion_scale_xrgb(data, pw, ph, (int)stride, dst, dw, dh);
            ok = true;
        }
        wlr_buffer_end_data_ptr_access(buffer);
    }
    if (!ok && wlr_renderer_begin_with_buffer(renderer, buffer)) {
        size_t bytes = (size_t)pw * ph * 4;
        unsigned char *full =
            mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (full != MAP_FAILED) {
            uint32_t flags = 0;
            ok = wlr_renderer_read_pixels(renderer, DRM_FORMAT_ARGB8888, &flags, pw * 4, pw, ph,
                                          0, 0, 0, 0, full);
            if (ok && (flags & WLR_RENDERER_READ_PIXELS_Y_INVERT))
                /* rows bottom-up: scale from the last row with a negative stride */
                zion_scale_xrgb(full + (size_t)(ph - 1) * pw * 4, pw, ph, -pw * 4, dst, dw, dh);
            else if (ok)
                zion_scale_xrgb(full, pw, ph, pw * 4, dst, dw, dh);
            munmap(full, bytes);
        }
        wlr_renderer_end(renderer);
    }
    wlr_buffer_drop(buffer);
    return ok;
}

/* ---- a CPU pixel buffer for compositor-drawn UI (indicator, notifications) ---- */

struct zion_pixel_buffer {
    struct wlr_buffer base;
    void *data;
    size_t stride;
};

static void zion_pixel_buffer_destroy(struct wlr_buffer *wlr_buffer) {
    struct zion_pixel_buffer *buf = wl_container_of(wlr_buffer, buf, base);
    free(buf->data);
    free(buf);
}

static bool zion_pixel_buffer_begin(struct wlr_buffer *wlr_buffer, uint32_t flags,
                                    void **data, uint32_t *format, size_t *stride) {
    struct zion_pixel_buffer *buf = wl_container_of(wlr_buffer, buf, base);
    (void)flags;
    *data = buf->data;
    *format = DRM_FORMAT_ARGB8888;
    *stride = buf->stride;
    return true;
}

static void zion_pixel_buffer_end(struct wlr_buffer *wlr_buffer) { (void)wlr_buffer; }

static const struct wlr_buffer_impl zion_pixel_buffer_impl = {
    .destroy = zion_pixel_buffer_destroy,
    .begin_data_ptr_access = zion_pixel_buffer_begin,
    .end_data_ptr_access = zion_pixel_buffer_end,
};

struct wlr_buffer *zion_pixel_buffer_create(int width, int height, int stride,
                                            const unsigned char *argb8888) {
    struct zion_pixel_buffer *buf = calloc(1, sizeof(*buf));
    if (!buf) return NULL;
    buf->data = malloc((size_t)stride * height);
    if (!buf->data) { free(buf); return NULL; }
    memcpy(buf->data, argb8888, (size_t)stride * height);
    buf->stride = stride;
    wlr_buffer_init(&buf->base, &zion_pixel_buffer_impl, width, height);
    return &buf->base;
}

void zion_buffer_drop(struct wlr_buffer *buffer) { wlr_buffer_drop(buffer); }

/* ---- a compositor-owned clipboard source: Python writes the data asynchronously ---- */

struct zion_data_source {
    struct wlr_data_source base;
    int id;
};

static void zion_source_send(struct wlr_data_source *source, const char *mime, int32_t fd) {
    struct zion_data_source *s = wl_container_of(source, s, base);
    zion_py_source_send(s->id, mime, fd); /* Python owns fd from here */
}

static void zion_source_destroy(struct wlr_data_source *source) {
    struct zion_data_source *s = wl_container_of(source, s, base);
    int id = s->id;
    free(s);
    zion_py_source_destroyed(id);
}

static const struct wlr_data_source_impl zion_source_impl = {
    .send = zion_source_send,
    .destroy = zion_source_destroy,
};

struct wlr_data_source *zion_data_source_create(int id) {
    struct zion_data_source *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->id = id;
    wlr_data_source_init(&s->base, &zion_source_impl);
    return &s->base;
}

void zion_data_source_add_mime(struct wlr_data_source *source, const char *mime) {
    char **p = wl_array_add(&source->mime_types, sizeof(char *));
    if (p) *p = strdup(mime);
}

void zion_data_source_destroy(struct wlr_data_source *source) {
    wlr_data_source_destroy(source);
}

struct wlr_data_source *zion_seat_selection(struct wlr_seat *seat) {
    return seat->selection_source;
}

const char *zion_data_source_mime(struct wlr_data_source *source, size_t index) {
    size_t n = source->mime_types.size / sizeof(char *);
    if (index >= n) return NULL;
    return ((char **)source->mime_types.data)[index];
}

void zion_data_source_send(struct wlr_data_source *source, const char *mime, int fd) {
    wlr_data_source_send(source, mime, fd);
}

/* ---- the pointer: every motion event handled here, without Python ----
 * Hit test (the scene's topmost surface under the cursor), the seat of that surface's
 * desktop, enter/motion/clear-focus on it, the default cursor image over no surface,
 * and the frame event. Python hears only of a change of the seat that has the pointer
 * and, while an interactive move/resize runs, of every motion (the grab is Python's). */

#define ZION_SLOT_SEATS (ZION_MAX_DESKTOPS + 1) /* [0] = host (slot -1) */

struct zion_pointer {
    struct wlr_cursor *cursor;
    struct wlr_xcursor_manager *xcursor;
    struct wlr_scene_node *root;
    struct wlr_seat *seat; /* the seat that has the pointer, or NULL */
    int seat_slot;
    bool default_image;
    bool grab;
    struct wl_listener motion, motion_absolute, frame;
};

static struct zion_pointer *zion_the_pointer;
static struct wlr_seat *zion_slot_seats[ZION_SLOT_SEATS];

static void zion_pointer_focus_seat(struct zion_pointer *p, struct wlr_seat *seat, int slot) {
    if (p->seat == seat) return;
    p->seat = seat;
    p->seat_slot = slot;
    zion_py_pointer_seat_changed(seat ? slot : -2);
}

void zion_pointer_process(struct zion_pointer *p, uint32_t time_msec) {
    if (p->grab) {
        zion_py_pointer_grab_motion(time_msec);
        return;
    }
    double sx = 0, sy = 0;
    struct wlr_surface *surface = NULL;
    struct wlr_seat *seat = NULL;
    int slot = -1;
    struct wlr_scene_node *node = wlr_scene_node_at(p->root, p->cursor->x, p->cursor->y, &sx, &sy);
    if (node != NULL && node->type == WLR_SCENE_NODE_SURFACE) {
        surface = wlr_scene_surface_from_node(node)->surface;
        slot = zion_resource_desktop(surface->resource);
        if (slot < 0) slot = -1;
        if (slot + 1 < ZION_SLOT_SEATS) seat = zion_slot_seats[slot + 1];
    }
    if (seat == NULL) { /* no surface, or one of a desktop being removed */
        if (p->seat != NULL) {
            wlr_seat_pointer_notify_clear_focus(p->seat);
            zion_pointer_focus_seat(p, NULL, -2);
        }
        if (!p->default_image) {
            wlr_xcursor_manager_set_cursor_image(p->xcursor, "left_ptr", p->cursor);
            p->default_image = true;
        }
        return;
    }
    if (p->seat != NULL && p->seat != seat) wlr_seat_pointer_notify_clear_focus(p->seat);
    zion_pointer_focus_seat(p, seat, slot);
    p->default_image = false;
    wlr_seat_pointer_notify_enter(seat, surface, sx, sy);
    wlr_seat_pointer_notify_motion(seat, time_msec, sx, sy);
}

static void zion_pointer_on_motion(struct wl_listener *listener, void *data) {
    struct zion_pointer *p = wl_container_of(listener, p, motion);
    struct wlr_event_pointer_motion *ev = data;
    wlr_cursor_move(p->cursor, ev->device, ev->delta_x, ev->delta_y);
    zion_pointer_process(p, ev->time_msec);
}

static void zion_pointer_on_motion_absolute(struct wl_listener *listener, void *data) {
    struct zion_pointer *p = wl_container_of(listener, p, motion_absolute);
    struct wlr_event_pointer_motion_absolute *ev = data;
    wlr_cursor_warp_absolute(p->cursor, ev->device, ev->x, ev->y);
    zion_pointer_process(p, ev->time_msec);
}

static void zion_pointer_on_frame(struct wl_listener *listener, void *data) {
    struct zion_pointer *p = wl_container_of(listener, p, frame);
    if (p->seat != NULL) wlr_seat_pointer_notify_frame(p->seat);
}

struct zion_pointer *zion_pointer_attach(struct wlr_cursor *cursor,
        struct wlr_xcursor_manager *xcursor, struct wlr_scene_node *root) {
    struct zion_pointer *p = calloc(1, sizeof(*p));
    if (p == NULL) return NULL;
    p->cursor = cursor;
    p->xcursor = xcursor;
    p->root = root;
    p->seat_slot = -2;
    p->motion.notify = zion_pointer_on_motion;
    wl_signal_add(&cursor->events.motion, &p->motion);
    p->motion_absolute.notify = zion_pointer_on_motion_absolute;
    wl_signal_add(&cursor->events.motion_absolute, &p->motion_absolute);
    p->frame.notify = zion_pointer_on_frame;
    wl_signal_add(&cursor->events.frame, &p->frame);
    zion_the_pointer = p;
    return p;
}

void zion_pointer_detach(struct zion_pointer *p) {
    wl_list_remove(&p->motion.link);
    wl_list_remove(&p->motion_absolute.link);
    wl_list_remove(&p->frame.link);
    if (zion_the_pointer == p) zion_the_pointer = NULL;
    free(p);
}

/* The seat of a desktop's slot (-1: host); NULL forgets it before it is destroyed. */
void zion_pointer_set_slot_seat(int slot, struct wlr_seat *seat) {
    struct zion_pointer *p = zion_the_pointer;
    if (slot < -1 || slot + 1 >= ZION_SLOT_SEATS) return;
    struct wlr_seat *old = zion_slot_seats[slot + 1];
    zion_slot_seats[slot + 1] = seat;
    if (p != NULL && seat == NULL && old != NULL && p->seat == old) {
        p->seat = NULL; /* Python drops its own reference as it removes the desktop */
        p->seat_slot = -2;
    }
}

/* Python took the pointer from every client (the overview opened, a desktop left). */
void zion_pointer_forget_seat(struct zion_pointer *p) {
    p->seat = NULL;
    p->seat_slot = -2;
}

int zion_pointer_seat_slot(struct zion_pointer *p) { return p->seat ? p->seat_slot : -2; }

void zion_pointer_set_grab(struct zion_pointer *p, bool on) { p->grab = on; }

