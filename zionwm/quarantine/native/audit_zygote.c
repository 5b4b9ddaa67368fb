/*
 * The native audit zygote: libmagic and the compiled YARA rules loaded once, one forked
 * child per file. It runs in the same bubblewrap sandbox as the Python zygote and speaks
 * its protocol (see zionwm/quarantine/zygote.py): a hello on the control socket, answered
 * with {"ready": ...}; then requests, each a message with two fds (the file, read-only, and
 * the write end of that file's own result pipe). The zygote never reads a file: the child
 * does, and writes raw facts (libmagic's answers, the YARA rules that matched, clamd's
 * INSTREAM answer) as one JSON object into its pipe; the service turns them into findings
 * with the same pure functions the Python scanners use. The zygote appends
 * "\0{"rc": N, "timed_out": B}" after the child is reaped.
 *
 * Why native: a forked child of this process copies a few hundred page-table entries and
 * touches a few dozen pages, where a child of the Python zygote copies 41 MiB of page
 * tables and writes reference counts all over the heap.
 *
 * Only files no Python-only scanner (office, pdf, archive) would look at come here; the
 * child checks that itself too and says so ("python": true) if the head says otherwise.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <magic.h>
#include <math.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <yara.h>

#define MSG_MAX 65536
#define MAX_CHILDREN 256
#define BUFFER_MAX (64u << 20)
#define HEAD_SIZE 8192
#define MAGIC_SAMPLE 2048
#define CHUNK 65536
#define REPLY_MAX 4096

static magic_t mime_cookie, desc_cookie;
static YR_RULES *rules;
static const char *clamd_path;
static double timeout_s = 60; /* seconds, as the settings give it */
static int sig_w = -1;

/* --- output: a growing buffer of JSON ------------------------------------------------ */

struct out {
    char *p;
    size_t n, cap;
};

static void put(struct out *o, const char *s, size_t n) {
    if (o->n + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (o->n + n + 1 > cap)
            cap *= 2;
        char *q = realloc(o->p, cap);
        if (!q)
            _exit(3); /* the parent reads a non-zero status: cannot-inspect */
        o->p = q;
        o->cap = cap;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static void puts_(struct out *o, const char *s) { put(o, s, strlen(s)); }

static void putf(struct out *o, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string; every byte outside printable ASCII escaped as the code point of the same
 * value, so any bytes (libmagic quotes file content in some descriptions) stay valid JSON. */
static void put_str(struct out *o, const char *s, size_t n) {
    put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(o, e, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            putf(o, "\\u%04x", c);
        } else {
            put(o, (const char *)&s[i], 1);
        }
    }
    put(o, "\"", 1);
}

static void put_cstr(struct out *o, const char *s) {
    if (s)
        put_str(o, s, strlen(s));
    else
        puts_(o, "null");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- what the head says (mirrors the Python scanners' own checks) --------------------- */

static int starts(const unsigned char *h, size_t n, const char *lit, size_t ln) {
    return n >= ln && memcmp(h, lit, ln) == 0;
}

static int is_ws(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Python's re.search(rb"^\s*TOKEN", MULTILINE) over h[:n], the token allowed to be
 * followed by `\s*=` when `then_eq`. */
static int line_starts_with(const unsigned char *h, size_t n, const char *tok, int then_eq) {
    size_t tl = strlen(tok);
    for (size_t p = 0; p + tl <= n; p++) {
        if (memcmp(h + p, tok, tl) != 0)
            continue;
        if (then_eq) {
            size_t e = p + tl;
            while (e < n && is_ws(h[e]))
                e++;
            if (e >= n || h[e] != '=')
                continue;
        }
        size_t q = p;
        while (q > 0 && is_ws(h[q - 1]))
            q--;
        if (q == 0)
            return 1;
        for (size_t k = q; k < p; k++)
            if (h[k] == '\n')
                return 1;
    }
    return 0;
}

/* magic_type.head_kind: the runnable kinds the bytes alone reveal, in the same order */
static const char *head_kind(const unsigned char *h, size_t n) {
    if (starts(h, n, "\x7f" "ELF", 4))
        return (n >= 10 && h[8] == 'A' && h[9] == 'I') ? "appimage" : "elf";
    if (starts(h, n, "#!", 2))
        return "script";
    if (starts(h, n, "MZ", 2))
        return "pe";
    static const char *macho[] = {"\xfe\xed\xfa\xce", "\xfe\xed\xfa\xcf", "\xce\xfa\xed\xfe",
                                  "\xcf\xfa\xed\xfe"};
    for (int i = 0; i < 4; i++)
        if (starts(h, n, macho[i], 4))
            return "macho";
    if (line_starts_with(h, n < 4096 ? n : 4096, "[Desktop Entry]", 0) &&
        (line_starts_with(h, n, "Exec", 1) || line_starts_with(h, n, "TryExec", 1)))
        return "desktop";
    return NULL;
}

/* zygote.flavor_for(head) == FULL: a format only the Python scanners read */
static int needs_python(const unsigned char *h, size_t n) {
    static const struct {
        const char *s;
        size_t n;
    } pre[] = {{"PK\x03\x04", 4}, {"PK\x05\x06", 4},           {"\x1f\x8b", 2},
               {"BZh", 3},        {"\xfd" "7zXZ\x00", 6},       {"7z\xbc\xaf\x27\x1c", 6},
               {"Rar!\x1a\x07", 6}, {"\xd0\xcf\x11\xe0", 4}, {"{\\rt", 4},
               {"ID;P", 4}};
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++)
        if (starts(h, n, pre[i].s, pre[i].n))
            return 1;
    if (n >= 262 && memcmp(h + 257, "ustar", 5) == 0)
        return 1;
    if (memmem(h, n < 1024 ? n : 1024, "%PDF-", 5))
        return 1;
    size_t m = n < 4096 ? n : 4096, i = 0;
    while (i < m && is_ws(h[i]))
        i++; /* as bytes.lstrip(): ASCII whitespace only */
    if (m - i >= 5 && strncasecmp((const char *)h + i, "<?xml", 5) == 0)
        return 1;
    return 0;
}

/* --- YARA --------------------------------------------------------------------------- */

struct matches {
    struct out *o;
    int count;
};

static int on_yara(YR_SCAN_CONTEXT *ctx, int message, void *data, void *user) {
    (void)ctx;
    if (message != CALLBACK_MSG_RULE_MATCHING)
        return CALLBACK_CONTINUE;
    struct matches *m = user;
    YR_RULE *rule = data;
    YR_META *meta;
    const char *desc = NULL, *verdict = NULL;
    char num[32];
    yr_rule_metas_foreach(rule, meta) {
        const char *value = meta->string;
        if (meta->type == META_TYPE_INTEGER) {
            snprintf(num, sizeof num, "%lld", (long long)meta->integer);
            value = num;
        } else if (meta->type == META_TYPE_BOOLEAN) {
            value = meta->integer ? "True" : "False";
        }
        if (!strcmp(meta->identifier, "description") && !desc)
            desc = meta->type == META_TYPE_STRING ? meta->string : "matched";
        if (!strcmp(meta->identifier, "verdict") && !verdict)
            verdict = value == num ? "suspicious" : value;
    }
    puts_(m->o, m->count++ ? ", " : "");
    puts_(m->o, "{\"rule\": ");
    put_cstr(m->o, rule->identifier);
    puts_(m->o, ", \"description\": ");
    put_cstr(m->o, desc);
    puts_(m->o, ", \"verdict\": ");
    put_cstr(m->o, verdict);
    puts_(m->o, "}");
    return CALLBACK_CONTINUE;
}

static int compile_rules(const char *dir) {
    YR_COMPILER *c;
    if (yr_compiler_create(&c) != ERROR_SUCCESS)
        return -1;
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0)
        return -1;
    int added = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        const char *f = names[i]->d_name;
        size_t l = strlen(f);
        const char *dot = strrchr(f, '.');
        if (dot && (!strcmp(dot, ".yar") || !strcmp(dot, ".yara")) && l < 200) {
            char path[4096], ns[256];
            snprintf(path, sizeof path, "%s/%s", dir, f);
            snprintf(ns, sizeof ns, "bundled:%.*s", (int)(dot - f), f);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0 || yr_compiler_add_fd(c, fd, ns, path) != 0)
                bad = 1;
            if (fd >= 0)
                close(fd);
            added++;
        }
        free(names[i]);
    }
    free(names);
    if (bad || !added || yr_compiler_get_rules(c, &rules) != ERROR_SUCCESS)
        return -1;
    yr_compiler_destroy(c);
    return 0;
}

/* --- clamd INSTREAM ----------------------------------------------------------------- */

static int send_all(int s, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = send(s, c, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* clamd's answer line into reply, or an error into err; 0 on an answer */
static int instream(const unsigned char *data, size_t n, char *reply, char *err, size_t cap) {
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        snprintf(err, cap, "cannot connect to clamd at %s: %s", clamd_path, strerror(errno));
        return -1;
    }
    struct timeval tv = {.tv_sec = (time_t)timeout_s,
                         .tv_usec = (suseconds_t)((timeout_s - (time_t)timeout_s) * 1e6)};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", clamd_path);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        snprintf(err, cap, "cannot connect to clamd at %s: %s", clamd_path, strerror(errno));
        close(s);
        return -1;
    }
    /* a send that fails means clamd closed early (StreamMaxLength): its reason is read */
    int ok = send_all(s, "zINSTREAM", 10) == 0;
    for (size_t off = 0; ok && off < n; off += CHUNK) {
        size_t len = n - off < CHUNK ? n - off : CHUNK;
        uint32_t be = htonl((uint32_t)len);
        ok = send_all(s, &be, 4) == 0 && send_all(s, data + off, len) == 0;
    }
    uint32_t zero = 0;
    if (ok)
        send_all(s, &zero, 4);
    size_t got = 0;
    while (got < cap - 1) {
        ssize_t r = recv(s, reply + got, cap - 1 - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r < 0 && !got) {
                snprintf(err, cap, "reading clamd's answer failed: %s", strerror(errno));
                close(s);
                return -1;
            }
            break;
        }
        got += (size_t)r;
        if (memchr(reply, 0, got))
            break;
    }
    close(s);
    reply[got] = 0;
    if (!memchr(reply, 0, got) && got) {
        /* no NUL within what came: cut off (or longer than any honest answer) */
        snprintf(err, cap, "truncated answer from clamd");
        return -1;
    }
    if (!got) {
        snprintf(err, cap, "truncated answer from clamd");
        return -1;
    }
    return 0;
}

/* --- evidence for tests: what a child can see and do, from exactly where it runs ------ */

static void probe(struct out *o, int file_fd, int result_fd, const char *paths, size_t plen) {
    char line[256];
    puts_(o, "{");
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Seccomp:", 8))
            putf(o, "\"seccomp\": %d, ", atoi(line + 8));
        if (!strncmp(line, "CapEff:", 7)) {
            char *v = line + 7;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = 0;
            puts_(o, "\"cap_eff\": ");
            put_cstr(o, v);
            puts_(o, ", ");
        }
    }
    if (f)
        fclose(f);
    putf(o, "\"uid\": %d, \"pid\": %d, ", (int)getuid(), (int)getpid());
    char ns[128] = "";
    ssize_t nl = readlink("/proc/self/ns/net", ns, sizeof ns - 1);
    ns[nl > 0 ? nl : 0] = 0;
    puts_(o, "\"net_ns\": ");
    put_cstr(o, ns);
    puts_(o, ", \"interfaces\": [");
    struct if_nameindex *ifs = if_nameindex();
    for (struct if_nameindex *i = ifs; i && i->if_name; i++) {
        puts_(o, i == ifs ? "" : ", ");
        put_cstr(o, i->if_name);
    }
    if (ifs)
        if_freenameindex(ifs);
    puts_(o, "], \"network\": ");
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9)};
    a.sin_addr.s_addr = htonl(0xC0000201); /* 192.0.2.1 */
    if (s < 0)
        put_cstr(o, strerror(errno));
    else if (connect(s, (struct sockaddr *)&a, sizeof a) == 0)
        put_cstr(o, "connected");
    else
        put_cstr(o, strerror(errno));
    if (s >= 0)
        close(s);
    char b;
    putf(o, ", \"fd_readable\": %s", pread(file_fd, &b, 1, 0) >= 0 ? "true" : "false");
    putf(o, ", \"fd_writable\": %s", write(file_fd, "x", 1) == 1 ? "true" : "false");
    int t = open("/tmp/zionwm-probe", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    putf(o, ", \"tmp_writable\": %s", t >= 0 ? "true" : "false");
    if (t >= 0)
        close(t);
    putf(o, ", \"dumpable\": %d", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
    struct rlimit as;
    getrlimit(RLIMIT_AS, &as);
    putf(o, ", \"rlimit_as\": %lld", (long long)as.rlim_cur);
    putf(o, ", \"file_fd\": %d, \"result_fd\": %d, \"fds\": [", file_fd, result_fd);
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int first = 1;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') {
            putf(o, "%s%s", first ? "" : ", ", e->d_name);
            first = 0;
        }
    if (d)
        closedir(d);
    puts_(o, "], \"visible\": {");
    first = 1;
    for (size_t i = 0; i < plen;) {
        const char *path = paths + i;
        size_t l = strnlen(path, plen - i);
        char z[4096];
        snprintf(z, sizeof z, "%.*s", (int)l, path);
        puts_(o, first ? "" : ", ");
        put_cstr(o, z);
        puts_(o, access(z, F_OK) == 0 ? ": true" : ": false");
        first = 0;
        i += l + 1;
    }
    puts_(o, "}}");
}

/* --- the child: one file ------------------------------------------------------------ */

static int child(int file_fd, int result_fd, const char *probe_paths, ssize_t probe_len) {
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
    }
    /* only its own file and its own result channel: nothing of the zygote or a sibling */
    int lo = file_fd < result_fd ? file_fd : result_fd;
    int hi = file_fd < result_fd ? result_fd : file_fd;
    for (int fd = 3; fd < lo; fd++)
        close(fd);
    for (int fd = lo + 1; fd < hi; fd++)
        close(fd);
    close_range((unsigned)hi + 1, ~0u, 0);
    struct rlimit cpu = {(rlim_t)timeout_s + 1, (rlim_t)timeout_s + 1}; /* as the Python child */
    setrlimit(RLIMIT_CPU, &cpu);

    struct out o = {0};
    struct stat st;
    if (probe_len >= 0) {
        probe(&o, file_fd, result_fd, probe_paths, (size_t)probe_len);
        goto done;
    }
    if (fstat(file_fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > BUFFER_MAX) {
        puts_(&o, "{\"python\": true}");
        goto done;
    }
    size_t size = (size_t)st.st_size, got = 0;
    unsigned char *data = malloc(size ? size : 1);
    if (!data)
        return 4;
    while (got < size) {
        ssize_t r = pread(file_fd, data + got, size - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    size = got;
    size_t head = size < HEAD_SIZE ? size : HEAD_SIZE;
    if (needs_python(data, head)) {
        puts_(&o, "{\"python\": true}");
        goto done;
    }
    double t0 = now_s();
    size_t sample = head < MAGIC_SAMPLE ? head : MAGIC_SAMPLE;
    const char *mime = magic_buffer(mime_cookie, data, sample);
    const char *desc = NULL;
    if (mime && strncmp(mime, "text/", 5) == 0)
        desc = mime;
    else if (mime)
        desc = magic_buffer(desc_cookie, data, sample);
    puts_(&o, "{\"mime\": ");
    put_cstr(&o, mime);
    puts_(&o, ", \"description\": ");
    put_cstr(&o, desc);
    if (!mime || !desc) {
        puts_(&o, ", \"magic_error\": ");
        put_cstr(&o, magic_error(mime ? desc_cookie : mime_cookie));
    }
    puts_(&o, ", \"head_kind\": ");
    put_cstr(&o, head_kind(data, head));
    double t1 = now_s();

    puts_(&o, ", \"yara\": [");
    struct matches m = {&o, 0};
    int yr = yr_rules_scan_mem(rules, data, size, 0, on_yara, &m, (int)ceil(timeout_s));
    puts_(&o, "]");
    if (yr != ERROR_SUCCESS)
        putf(&o, ", \"yara_error\": \"libyara error %d%s\"", yr,
             yr == ERROR_SCAN_TIMEOUT ? " (timeout)" : "");
    double t2 = now_s();

    if (clamd_path) {
        char reply[REPLY_MAX], err[512];
        reply[0] = 0;
        if (instream(data, size, reply, err, sizeof err) == 0) {
            puts_(&o, ", \"clamd\": ");
            put_cstr(&o, reply);
        } else {
            puts_(&o, ", \"clamd_error\": ");
            put_cstr(&o, err);
        }
    }
    double t3 = now_s();
    putf(&o, ", \"durations\": {\"magic\": %.6f, \"yara\": %.6f", t1 - t0, t2 - t1);
    if (clamd_path)
        putf(&o, ", \"clamd\": %.6f", t3 - t2);
    puts_(&o, "}}");
done:
    for (size_t off = 0; off < o.n;) {
        ssize_t w = write(result_fd, o.p + off, o.n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return 5;
        off += (size_t)w;
    }
    return 0;
}

/* --- the zygote --------------------------------------------------------------------- */

struct kid {
    pid_t pid;
    int result_fd;
    double deadline;
    int timed_out;
};

static struct kid kids[MAX_CHILDREN];
static int nkids;

static void on_sigchld(int sig) {
    (void)sig;
    int saved = errno;
    if (write(sig_w, "c", 1) < 0) { /* full: a wake-up is already pending */
    }
    errno = saved;
}

static void reap(void) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < nkids; i++) {
            if (kids[i].pid != pid)
                continue;
            int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
            char t[96];
            int n = snprintf(t, sizeof t, "%c{\"rc\": %d, \"timed_out\": %s}", 0, rc,
                             kids[i].timed_out ? "true" : "false");
            if (write(kids[i].result_fd, t, (size_t)n) < 0) { /* reader gone: nothing to tell */
            }
            close(kids[i].result_fd);
            kids[i] = kids[--nkids];
            break;
        }
    }
}

static int serve(int ctrl) {
    int sp[2];
    if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) != 0)
        return 1;
    sig_w = sp[1];
    struct sigaction sa = {.sa_handler = on_sigchld, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigaction(SIGCHLD, &sa, NULL);
    int accepting = 1;
    while (accepting || nkids) {
        double now = now_s(), next = -1;
        for (int i = 0; i < nkids; i++) {
            if (!kids[i].timed_out && kids[i].deadline <= now) {
                kids[i].timed_out = 1;
                kill(kids[i].pid, SIGKILL);
            }
            if (!kids[i].timed_out && (next < 0 || kids[i].deadline < next))
                next = kids[i].deadline;
        }
        struct pollfd p[2] = {{sp[0], POLLIN, 0}, {accepting ? ctrl : -1, POLLIN, 0}};
        int wait_ms = next < 0 ? -1 : (int)((next - now) * 1000) + 1;
        if (poll(p, 2, wait_ms) < 0 && errno != EINTR)
            return 1;
        if (p[0].revents) {
            char b[64];
            while (read(sp[0], b, sizeof b) > 0) {
            }
        }
        reap();
        if (!accepting || !(p[1].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        char msg[MSG_MAX];
        char cbuf[CMSG_SPACE(sizeof(int) * 2)];
        struct iovec iov = {msg, sizeof msg};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                            .msg_controllen = sizeof cbuf};
        ssize_t n = recvmsg(ctrl, &mh, MSG_CMSG_CLOEXEC);
        int fds[2], nfds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                int *in = (int *)CMSG_DATA(c);
                for (int j = 0; j < k; j++) {
                    if (nfds < 2)
                        fds[nfds++] = in[j];
                    else
                        close(in[j]);
                }
            }
        }
        if (n <= 0) {
            for (int j = 0; j < nfds; j++)
                close(fds[j]);
            if (n == 0 || (errno != EINTR && errno != EAGAIN))
                accepting = 0; /* the control socket closed: finish and exit */
            continue;
        }
        if (nfds != 2 || nkids >= MAX_CHILDREN || (mh.msg_flags & MSG_CTRUNC)) {
            /* the parent reads EOF without a status: it retries on a fresh zygote */
            for (int j = 0; j < nfds; j++)
                close(fds[j]);
            continue;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(ctrl);
            close(sp[0]);
            close(sp[1]);
            signal(SIGCHLD, SIG_DFL);
            /* a probe (for tests): "\1probe\0" and the paths to look for, NUL-separated;
             * a file's request is JSON, which never starts so */
            int is_probe = n >= 7 && memcmp(msg, "\1probe", 7) == 0;
            _exit(child(fds[0], fds[1], msg + 7, is_probe ? n - 7 : -1));
        }
        close(fds[0]);
        if (pid < 0) {
            close(fds[1]);
            continue;
        }
        kids[nkids++] = (struct kid){pid, fds[1], now_s() + timeout_s, 0};
    }
    return 0;
}

/* The compiled database read into our own memory rather than mapped: a child then reads
 * it through page-table entries copied at fork, instead of faulting in every page of the
 * file it touches (which made a child's first look cost milliseconds). */
static int load_magic(void) {
    const char *paths = magic_getpath(NULL, 0);
    char path[4096];
    const char *p = paths;
    int fd = -1;
    while (p && *p && fd < 0) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        snprintf(path, sizeof path, "%.*s.mgc", (int)len, p);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        p = end ? end + 1 : NULL;
    }
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
        if (fd >= 0)
            close(fd);
        return magic_load(mime_cookie, NULL) || magic_load(desc_cookie, NULL);
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *buf = malloc(size);
    while (buf && got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf || got != size)
        return -1;
    void *bufs[1] = {buf};
    size_t sizes[1] = {size};
    /* libmagic keeps pointing into `buf`: it lives as long as the process */
    return magic_load_buffers(mime_cookie, bufs, sizes, 1) ||
           magic_load_buffers(desc_cookie, bufs, sizes, 1);
}

/* Large anonymous regions (the magic database, YARA's compiled rules) onto huge pages where
 * the kernel has them: fork then copies one entry per 2 MiB instead of 512, and that copy
 * was the largest kernel cost of a child. Best effort: without THP nothing changes. */
static void huge_pages(void) {
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi, off;
        char perms[8], dev[16];
        unsigned long ino;
        if (sscanf(line, "%lx-%lx %7s %lx %15s %lu", &lo, &hi, perms, &off, dev, &ino) != 6)
            continue;
        if (ino != 0 || strncmp(perms, "rw", 2) != 0 || hi - lo < (4ul << 20))
            continue;
        unsigned long a = (lo + (2ul << 20) - 1) & ~((2ul << 20) - 1);
        unsigned long b = hi & ~((2ul << 20) - 1);
        if (b <= a)
            continue;
        if (madvise((void *)a, b - a, MADV_HUGEPAGE) == 0)
            madvise((void *)a, b - a, MADV_COLLAPSE);
    }
    if (f)
        fclose(f);
}

int main(int argc, char **argv) {
    int ctrl = -1;
    const char *rules_dir = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ctrl-fd"))
            ctrl = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rules"))
            rules_dir = argv[i + 1];
        else if (!strcmp(argv[i], "--clamd"))
            clamd_path = argv[i + 1];
        else if (!strcmp(argv[i], "--timeout"))
            timeout_s = strtod(argv[i + 1], NULL);
    }
    if (ctrl < 0 || !rules_dir || !(timeout_s > 0))
        return 2;
    /* not dumpable: no /proc/PID/mem, no ptrace between zygote and children */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return 2;
    char hello[MSG_MAX];
    if (recv(ctrl, hello, sizeof hello, 0) <= 0)
        return 2;
    const char *why = NULL;
    size_t name_max = 64;
    mime_cookie = magic_open(MAGIC_MIME_TYPE);
    desc_cookie = magic_open(MAGIC_NONE);
    if (!mime_cookie || !desc_cookie || load_magic() != 0)
        why = "libmagic could not load its database";
    else {
        /* as python-magic does, so both paths give the same answers */
        magic_setparam(mime_cookie, MAGIC_PARAM_NAME_MAX, &name_max);
        magic_setparam(desc_cookie, MAGIC_PARAM_NAME_MAX, &name_max);
        /* warm: libmagic finishes its set-up on the first look */
        magic_buffer(mime_cookie, "%PDF-1.4\n", 9);
        magic_buffer(desc_cookie, "%PDF-1.4\n", 9);
        magic_buffer(mime_cookie, "plain text\n", 11);
    }
    if (!why && (yr_initialize() != ERROR_SUCCESS || compile_rules(rules_dir) != 0))
        why = "the bundled YARA rules do not compile";
    if (!why)
        huge_pages();
    char ready[512];
    int v = magic_version();
    if (why)
        snprintf(ready, sizeof ready, "{\"ready\": false, \"error\": \"%s\"}", why);
    else
        snprintf(ready, sizeof ready,
                 "{\"ready\": true, \"versions\": {\"magic\": \"libmagic %d.%d\", "
                 "\"yara\": \"YARA %s\", \"native\": true}}",
                 v / 100, v % 100, YR_VERSION);
    if (send(ctrl, ready, strlen(ready), MSG_NOSIGNAL) < 0 || why)
        return 1;
    return serve(ctrl);
}
