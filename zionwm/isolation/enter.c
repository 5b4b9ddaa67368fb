/* zionwm-enter: place this process in a desktop's cgroups and namespaces, then exec bwrap;
 * or, with --keep-usr, become the keeper of a desktop's writable /usr; or, with --mask-proc,
 * run first inside a sandbox: mask its /proc and end its set-up, then exec the program.
 *
 *     zionwm-enter [--cgroup-fd N]... [--userns-fd N] [--netns-fd N]
 *                  [--usr-ready-fd N --usr-keeper-fd N] --report-fd N -- argv...
 *
 * The launcher starts it with vfork+exec (no Python between fork and exec, which cost a full
 * fork of the compositor and several milliseconds), with the fds already open: cgroup.procs
 * files to join, a user namespace and a network namespace to enter, and for a desktop with a
 * writable /usr its keeper (a pidfd) and the keeper's ready pipe. It writes "0" to each
 * cgroup.procs (so everything from here on, bwrap included, runs inside the cgroups), enters
 * the user namespace and the network namespace in that order, waits until the keeper's ready
 * pipe reaches its end (the keeper closes it once /usr is mounted) and enters the keeper's
 * user and mount namespaces through its pidfd (after the network namespace: inside the
 * keeper's user namespace there is no right left over a network namespace of the host),
 * closes every fd it was given, and execs argv in place (same pid). The report fd is
 * close-on-exec: the launcher reads it to its end, and finds nothing there when the exec
 * happened, or "<step> <errno>" when a step failed; then nothing was executed and this
 * process exits 127.
 *
 *     zionwm-enter [--cgroup-fd N]... [--userns-fd N] --keep-usr --lower L --upper U
 *                  --work W --merged M [--scratch S] --report-fd N -- fuse-overlayfs
 *
 * The keeper of a desktop's writable /usr: after the cgroups (and the user namespace the
 * desktop's network belongs to, so that its sandboxes can enter both), it unshares a user
 * namespace in which the invoking user is uid 0 and a mount namespace whose mounts are all
 * slaves of the host's: nothing mounted here is seen on the host, and what the host mounts
 * later is seen here. For an ephemeral layer it mounts a
 * tmpfs on S holding U and W. It starts fuse-overlayfs in the foreground on M (lower L, upper
 * U, work dir W/<keeper pid>, every file reported as the user's) as its child, waits (bounded)
 * until M is mounted, then closes the report fd with nothing written (ready) and waits for
 * the daemon. SIGTERM (also sent when the launcher dies) is passed on to the daemon, which
 * unmounts and exits; the keeper exits with it, and the namespaces, with an ephemeral layer's
 * tmpfs, die with the last process in them. On a failed step it writes "<step> <errno>" and
 * exits 127; "mount <0>" means the daemon did not mount in time, "daemon <status>" that it
 * exited first.
 *
 *     zionwm-enter --mask-proc --scratch D --seccomp-fd N --uid U --gid G [--disable-userns]
 *                  [--self-fd F] [--ro P]... [--empty P]... [--data FD P]... [--dir P]...
 *                  -- argv...
 *
 * The first program inside a sandbox, and the end of bwrap's set-up moved here. bwrap execs it
 * through /proc/self/fd/F as uid 0 of the sandbox's first user namespace (the one that owns
 * its mount namespace), keeping CAP_SYS_ADMIN, CAP_SYS_RESOURCE and CAP_SETPCAP of it, with
 * no seccomp filter yet. It masks the sandbox's own /proc, which bwrap would do one mount at a
 * time, each time reading and parsing the whole of /proc/self/mountinfo: it mounts an empty
 * tmpfs on D (a /proc directory the policy covers anyway), makes there one empty file and
 * one file per stand-in (the data read from FD), binds P read-only onto itself for each --ro
 * (skipped when P does not exist, like bwrap's --ro-bind-try), binds the empty file
 * read-only over each --empty and each stand-in over its --data path, removes the files
 * (the binds keep them), leaves D empty (mode 0555) and makes its mount read-only. Every
 * mount is fresh, so its flags are known and no mount table is read. Then what bwrap does
 * last: with --disable-userns it sets user.max_user_namespaces to 1; with it, or when U or G
 * is not 0, it unshares a second user namespace mapping U and G to the first one's 0 (the
 * same maps bwrap writes), so the program's user namespace does not own the mount namespace;
 * with --disable-userns it checks that a further user namespace is refused. It drops every
 * capability (bounding set, ambient, permitted, effective, inheritable: checked), loads the
 * seccomp program from N (bwrap's --seccomp, also its last step) and execs argv. Any failure
 * writes "zionwm-enter: <step>: <error>" to stderr and exits 127 with nothing executed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CGROUPS 16
#define MOUNT_TIMEOUT_MS 10000

static int report = -1;

static void fail_with(const char *step, int code) {
    char msg[128];
    int n = snprintf(msg, sizeof msg, "%s %d", step, code);
    if (report >= 0 && n > 0) {
        ssize_t ignored = write(report, msg, (size_t)n);
        (void)ignored;
    }
    _exit(127);
}

static void fail(const char *step) { fail_with(step, errno); }

static void usage(void) {
    errno = EINVAL;
    fail("usage");
}

static int parse_fd(const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > 1 << 20) usage();
    return (int)v;
}

static void write_file(const char *path, const char *text, const char *step) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail(step);
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) fail(step);
    close(fd);
}

/* A path that fuse-overlayfs's option string can carry: absolute, no separators in it. */
static const char *option_path(const char *p) {
    if (p[0] != '/' || strpbrk(p, ",:=\n") != NULL) usage();
    return p;
}

static volatile pid_t daemon_pid = -1;
static volatile sig_atomic_t stopping = 0;

static void pass_on(int sig) {
    stopping = 1;
    if (daemon_pid > 0) kill(daemon_pid, sig);
}

static int is_mounted(const char *path) {
    struct stat here, parent;
    char up[PATH_MAX];
    if (snprintf(up, sizeof up, "%s/..", path) >= (int)sizeof up) return 0;
    return stat(path, &here) == 0 && stat(up, &parent) == 0 && here.st_dev != parent.st_dev;
}

static int keep_usr(const char *lower, const char *upper, const char *work,
                    const char *merged, const char *scratch, char **argv) {
    uid_t uid = getuid();
    gid_t gid = getgid();
    char map[64];
    /* SIGTERM when the launcher dies, passed on to the daemon like any other SIGTERM. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = pass_on;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGHUP, &sa, NULL) != 0)
        fail("signals");
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) fail("pdeathsig");
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) fail("unshare");
    /* uid 0 of the namespace, not the user mapped to itself: a user mapped to itself would
     * lose the namespace's capabilities at the daemon's exec, and then could not mount. */
    write_file("/proc/self/setgroups", "deny", "setgroups");
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)uid);
    write_file("/proc/self/uid_map", map, "uid_map");
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)gid);
    write_file("/proc/self/gid_map", map, "gid_map");
    /* Slaves: what the host mounts later still shows here (a program's app dir on a disk
     * plugged in after the keeper started), and nothing mounted here goes back. */
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) != 0) fail("slave");
    if (scratch != NULL) {
        if (mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") != 0)
            fail("scratch");
        if (mkdir(upper, 0755) != 0 || mkdir(work, 0700) != 0) fail("scratch-dirs");
    }
    char own_work[PATH_MAX], opts[4 * PATH_MAX];
    if (snprintf(own_work, sizeof own_work, "%s/%d", work, (int)getpid()) >= (int)sizeof own_work)
        usage();
    if (mkdir(own_work, 0700) != 0 && errno != EEXIST) fail("work");
    int n = snprintf(opts, sizeof opts,
                     "lowerdir=%s,upperdir=%s,workdir=%s,squash_to_uid=0,squash_to_gid=0",
                     lower, upper, own_work);
    if (n < 0 || n >= (int)sizeof opts) usage();
    char *daemon_argv[] = {argv[0], "-f", "-o", opts, (char *)merged, NULL};
    pid_t self = getpid();
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t child = fork();
    if (child < 0) fail("fork");
    if (child == 0) {
        /* The daemon stops when the keeper dies, however it dies. */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != self) _exit(127);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        execv(daemon_argv[0], daemon_argv);
        _exit(127);
    }
    daemon_pid = child;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (stopping) kill(child, SIGTERM); /* asked to stop before the daemon existed */
    struct timespec tick = {0, 1000000};
    int status, waited = 0;
    while (!is_mounted(merged)) {
        pid_t r = waitpid(child, &status, WNOHANG);
        if (r == child) fail_with("daemon", status);
        if (waited >= MOUNT_TIMEOUT_MS) {
            kill(child, SIGKILL);
            fail_with("mount", 0);
        }
        nanosleep(&tick, NULL); /* polling a condition with a deadline */
        waited += 1;
    }
    close(report); /* ready: the launcher and waiting sandboxes see the pipe's end */
    report = -1;
    for (;;) {
        pid_t r = waitpid(child, &status, 0);
        if (r == child) break;
        if (r < 0 && errno != EINTR) _exit(1);
    }
    if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
    _exit(128 + WTERMSIG(status));
}

/* ---- --mask-proc: runs inside the sandbox, before the program ---- */

#define MAX_MASKS 64

static void die_in_sandbox(const char *step) {
    int err = errno;
    char msg[PATH_MAX + 128];
    int n = snprintf(msg, sizeof msg, "zionwm-enter: %s: %s\n", step, strerror(err));
    if (n > 0) {
        ssize_t ignored = write(2, msg, (size_t)n);
        (void)ignored;
    }
    _exit(127);
}

/* Bind src over dest and make that mount read-only, nosuid, nodev, noexec: the bind is
 * fresh and its own, so the flags set here are its flags (nothing to read back). */
static void bind_read_only(const char *src, const char *dest) {
    if (mount(src, dest, NULL, MS_BIND, NULL) != 0) die_in_sandbox(dest);
    if (mount("none", dest, NULL,
              MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        die_in_sandbox(dest);
}

static void copy_fd(int from, int to, const char *step) {
    char buf[8192];
    for (;;) {
        ssize_t n = read(from, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            die_in_sandbox(step);
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(to, buf + off, (size_t)(n - off));
            if (w < 0) die_in_sandbox(step);
            off += w;
        }
    }
}

static void drop_all_caps(void) {
    for (int cap = 0;; cap++) {
        int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (r < 0) break; /* past the kernel's last capability */
        if (r == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) die_in_sandbox("capbset");
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 0) die_in_sandbox("capbset-check");
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) die_in_sandbox("ambient");
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) != 0) die_in_sandbox("capset");
    if (syscall(SYS_capget, &hdr, data) != 0) die_in_sandbox("capget");
    for (int k = 0; k < 2; k++)
        if (data[k].effective || data[k].permitted || data[k].inheritable) {
            errno = EPERM;
            die_in_sandbox("caps-left");
        }
}

static long parse_id(const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > 0x7fffffffL) {
        errno = EINVAL;
        die_in_sandbox("id");
    }
    return v;
}

static void write_in_sandbox(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) die_in_sandbox(path);
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) die_in_sandbox(path);
    close(fd);
}

/* bwrap's second user namespace: the program's ids mapped to 0 of the first one, which owns
 * the mount namespace (so nothing in the second can unmount what was set up), and with
 * disable_userns no namespace below it (the first one may hold one user namespace only:
 * set before /proc/sys is made read-only). */
static void nest_user_namespace(long uid, long gid, int disable_userns) {
    char map[64];
    if (unshare(CLONE_NEWUSER) != 0) die_in_sandbox("unshare user namespace");
    snprintf(map, sizeof map, "%ld 0 1\n", uid);
    write_in_sandbox("/proc/self/uid_map", map);
    snprintf(map, sizeof map, "%ld 0 1\n", gid);
    write_in_sandbox("/proc/self/gid_map", map);
    if (disable_userns && unshare(CLONE_NEWUSER) == 0) {
        errno = EPERM;
        die_in_sandbox("user namespaces were not disabled");
    }
}

static void load_seccomp(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) die_in_sandbox("seccomp");
    size_t size = (size_t)st.st_size;
    if (size == 0 || size % sizeof(struct sock_filter) != 0 || size > 1 << 20) {
        errno = EINVAL;
        die_in_sandbox("seccomp");
    }
    struct sock_filter *insns = malloc(size);
    if (insns == NULL) die_in_sandbox("seccomp");
    for (size_t off = 0; off < size;) {
        ssize_t n = pread(fd, (char *)insns + off, size - off, (off_t)off);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            if (n == 0) errno = EIO;
            die_in_sandbox("seccomp");
        }
        off += (size_t)n;
    }
    close(fd);
    struct sock_fprog prog = {(unsigned short)(size / sizeof(struct sock_filter)), insns};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die_in_sandbox("no-new-privs");
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) die_in_sandbox("seccomp");
}

static int mask_proc(int argc, char **argv, int i) {
    report = 2; /* a usage error is said on stderr: "usage <errno>" */
    const char *scratch = NULL, *ro[MAX_MASKS], *empty[MAX_MASKS], *data_path[MAX_MASKS];
    const char *dirs[MAX_MASKS];
    int data_fd[MAX_MASKS], nro = 0, nempty = 0, ndata = 0, ndirs = 0, seccomp_fd = -1;
    int self_fd = -1;
    int disable_userns = 0;
    long uid = -1, gid = -1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "--disable-userns") == 0) {
            disable_userns = 1;
            continue;
        }
        if (i + 1 >= argc) usage();
        if (strcmp(argv[i], "--scratch") == 0)
            scratch = argv[++i];
        else if (strcmp(argv[i], "--seccomp-fd") == 0)
            seccomp_fd = parse_fd(argv[++i]);
        else if (strcmp(argv[i], "--self-fd") == 0)
            self_fd = parse_fd(argv[++i]);
        else if (strcmp(argv[i], "--uid") == 0)
            uid = parse_id(argv[++i]);
        else if (strcmp(argv[i], "--gid") == 0)
            gid = parse_id(argv[++i]);
        else if (strcmp(argv[i], "--ro") == 0 && nro < MAX_MASKS)
            ro[nro++] = argv[++i];
        else if (strcmp(argv[i], "--empty") == 0 && nempty < MAX_MASKS)
            empty[nempty++] = argv[++i];
        else if (strcmp(argv[i], "--dir") == 0 && ndirs < MAX_MASKS)
            dirs[ndirs++] = argv[++i];
        else if (strcmp(argv[i], "--data") == 0 && ndata < MAX_MASKS && i + 2 < argc) {
            data_fd[ndata] = parse_fd(argv[++i]);
            data_path[ndata++] = argv[++i];
        } else
            usage();
    }
    if (scratch == NULL || scratch[0] != '/' || seccomp_fd < 0 || uid < 0 || gid < 0 || i >= argc) {
        errno = EINVAL;
        die_in_sandbox("usage");
    }
    if (self_fd >= 0) close(self_fd);
    /* Only ever inside a sandbox: in the initial user namespace these mounts would cover the
     * host's own /proc (its inode number is fixed, PROC_USER_INIT_INO). */
    struct stat ns;
    if (stat("/proc/self/ns/user", &ns) != 0) die_in_sandbox("/proc/self/ns/user");
    if (ns.st_ino == 0xEFFFFFFDU) {
        errno = EPERM;
        die_in_sandbox("not inside a sandbox's user namespace");
    }
    if (disable_userns) write_in_sandbox("/proc/sys/user/max_user_namespaces", "1");
    if (mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") != 0)
        die_in_sandbox(scratch);
    int dir = open(scratch, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) die_in_sandbox(scratch);
    /* The sources live on the scratch tmpfs: fd paths give the mount calls their names. */
    char src[64];
    for (int k = 0; k < nro; k++) {
        if (access(ro[k], F_OK) != 0) {
            if (errno == ENOENT) continue;
            die_in_sandbox(ro[k]);
        }
        bind_read_only(ro[k], ro[k]);
    }
    if (nempty > 0) {
        int fd = openat(dir, "empty", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
        if (fd < 0) die_in_sandbox("empty");
        snprintf(src, sizeof src, "/proc/self/fd/%d", fd);
        for (int k = 0; k < nempty; k++) bind_read_only(src, empty[k]);
        close(fd);
        if (unlinkat(dir, "empty", 0) != 0) die_in_sandbox("empty");
    }
    for (int k = 0; k < ndata; k++) {
        char name[32];
        snprintf(name, sizeof name, "data%d", k);
        int fd = openat(dir, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
        if (fd < 0) die_in_sandbox(data_path[k]);
        copy_fd(data_fd[k], fd, data_path[k]);
        close(data_fd[k]);
        snprintf(src, sizeof src, "/proc/self/fd/%d", fd);
        bind_read_only(src, data_path[k]);
        close(fd);
        if (unlinkat(dir, name, 0) != 0) die_in_sandbox(data_path[k]);
    }
    if (fchmodat(AT_FDCWD, scratch, 0555, 0) != 0) die_in_sandbox(scratch);
    close(dir);
    /* The mount, not the tmpfs: the removed files the binds still show keep it writable. */
    if (mount("none", scratch, NULL,
              MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        die_in_sandbox(scratch);
    for (int k = 0; k < ndirs; k++) {
        if (mount("tmpfs", dirs[k], "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555") != 0 ||
            mount("none", dirs[k], NULL,
                  MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
            die_in_sandbox(dirs[k]);
    }
    if (disable_userns || uid != 0 || gid != 0) {
        /* A new user namespace changes the credentials, which clears the parent-death signal
         * bwrap set (--die-with-parent): set it again, as bwrap sets it after its own. */
        int deathsig = 0;
        pid_t parent = getppid();
        if (prctl(PR_GET_PDEATHSIG, &deathsig, 0, 0, 0) != 0) die_in_sandbox("pdeathsig");
        nest_user_namespace(uid, gid, disable_userns);
        if (deathsig != 0 && prctl(PR_SET_PDEATHSIG, deathsig, 0, 0, 0) != 0)
            die_in_sandbox("pdeathsig");
        if (getppid() != parent) { /* the parent died before the signal was armed again */
            errno = ESRCH;
            die_in_sandbox("pdeathsig");
        }
    }
    drop_all_caps();
    load_seccomp(seccomp_fd); /* the last step: the filter need not allow anything above */
    execvp(argv[i], &argv[i]);
    char step[PATH_MAX + 8];
    snprintf(step, sizeof step, "execvp %s", argv[i]);
    die_in_sandbox(step);
    return 127;
}

int main(int argc, char **argv) {
    int cgroups[MAX_CGROUPS], ncg = 0, userns = -1, netns = -1, ready = -1, keeper = -1, i = 1;
    int keep = 0;
    const char *lower = NULL, *upper = NULL, *work = NULL, *merged = NULL, *scratch = NULL;
    if (argc > 1 && strcmp(argv[1], "--mask-proc") == 0) return mask_proc(argc, argv, 2);
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "--keep-usr") == 0) {
            keep = 1;
            continue;
        }
        if (i + 1 >= argc) usage();
        if (strcmp(argv[i], "--cgroup-fd") == 0 && ncg < MAX_CGROUPS)
            cgroups[ncg++] = parse_fd(argv[++i]);
        else if (strcmp(argv[i], "--userns-fd") == 0)
            userns = parse_fd(argv[++i]);
        else if (strcmp(argv[i], "--netns-fd") == 0)
            netns = parse_fd(argv[++i]);
        else if (strcmp(argv[i], "--usr-ready-fd") == 0)
            ready = parse_fd(argv[++i]);
        else if (strcmp(argv[i], "--usr-keeper-fd") == 0)
            keeper = parse_fd(argv[++i]);
        else if (strcmp(argv[i], "--report-fd") == 0)
            report = parse_fd(argv[++i]);
        else if (strcmp(argv[i], "--lower") == 0)
            lower = option_path(argv[++i]);
        else if (strcmp(argv[i], "--upper") == 0)
            upper = option_path(argv[++i]);
        else if (strcmp(argv[i], "--work") == 0)
            work = option_path(argv[++i]);
        else if (strcmp(argv[i], "--merged") == 0)
            merged = option_path(argv[++i]);
        else if (strcmp(argv[i], "--scratch") == 0)
            scratch = option_path(argv[++i]);
        else
            usage();
    }
    if (report < 0 || fcntl(report, F_SETFD, FD_CLOEXEC) != 0 || i >= argc) usage();
    if ((ready >= 0) != (keeper >= 0)) usage();
    if (keep && (netns >= 0 || keeper >= 0 || !lower || !upper || !work || !merged)) usage();
    /* cgroups first: a failing setns then leaves nothing running outside them */
    for (int k = 0; k < ncg; k++) {
        if (write(cgroups[k], "0", 1) != 1) fail("cgroup");
        close(cgroups[k]);
    }
    if (userns >= 0) {
        if (setns(userns, CLONE_NEWUSER) != 0) fail("userns");
        close(userns);
    }
    if (keep) return keep_usr(lower, upper, work, merged, scratch, &argv[i]);
    if (netns >= 0) {
        if (setns(netns, CLONE_NEWNET) != 0) fail("netns");
        close(netns);
    }
    if (keeper >= 0) {
        /* The keeper closes its end once /usr is mounted, or exits on failure (after
         * writing why, which is left in the pipe for the launcher: only the end is awaited) */
        struct pollfd end = {ready, 0, 0};
        while (poll(&end, 1, -1) < 0)
            if (errno != EINTR) fail("usr-ready");
        close(ready);
        if (setns(keeper, CLONE_NEWUSER | CLONE_NEWNS) != 0) fail("usr-keeper");
        close(keeper);
    }
    execvp(argv[i], &argv[i]);
    fail("exec");
    return 127;
}
