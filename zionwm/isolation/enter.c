/* zionwm-enter: place this process in a desktop's cgroups and namespaces, then exec bwrap.
 *
 *     zionwm-enter [--cgroup-fd N]... [--userns-fd N] [--netns-fd N] --report-fd N -- argv...
 *
 * The launcher starts it with vfork+exec (no Python between fork and exec, which cost a full
 * fork of the compositor and several milliseconds), with the fds already open: cgroup.procs
 * files to join, a user namespace and a network namespace to enter. It writes "0" to each
 * cgroup.procs (so everything from here on, bwrap included, runs inside the cgroups), then
 * enters the user namespace and the network namespace in that order, closes every fd it was
 * given, and execs argv in place (same pid). The report fd is close-on-exec: the launcher
 * reads it to its end, and finds nothing there when the exec happened, or "<step> <errno>"
 * when a step failed; then nothing was executed and this process exits 127.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CGROUPS 16

static int report = -1;

static void fail(const char *step) {
    int err = errno;
    char msg[128];
    int n = snprintf(msg, sizeof msg, "%s %d", step, err);
    if (report >= 0 && n > 0) {
        ssize_t ignored = write(report, msg, (size_t)n);
        (void)ignored;
    }
    _exit(127);
}

static int parse_fd(const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > 1 << 20) {
        errno = EINVAL;
        fail("usage");
    }
    return (int)v;
}

int main(int argc, char **argv) {
    int cgroups[MAX_CGROUPS], ncg = 0, userns = -1, netns = -1, i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (i + 1 >= argc) {
            errno = EINVAL;
            fail("usage");
        }
        if (strcmp(argv[i], "--cgroup-fd") == 0 && ncg < MAX_CGROUPS)
            cgroups[ncg++] = parse_fd(argv[++i]);
        else if (strcmp(argv[i], "--userns-fd") == 0)
            userns = parse_fd(argv[++i]);
        else if (strcmp(argv[i], "--netns-fd") == 0)
            netns = parse_fd(argv[++i]);
        else if (strcmp(argv[i], "--report-fd") == 0)
            report = parse_fd(argv[++i]);
        else {
            errno = EINVAL;
            fail("usage");
        }
    }
    if (report < 0 || fcntl(report, F_SETFD, FD_CLOEXEC) != 0 || i >= argc) {
        errno = EINVAL;
        fail("usage");
    }
    /* cgroups first: a failing setns then leaves nothing running outside them */
    for (int k = 0; k < ncg; k++) {
        if (write(cgroups[k], "0", 1) != 1) fail("cgroup");
        close(cgroups[k]);
    }
    if (userns >= 0) {
        if (setns(userns, CLONE_NEWUSER) != 0) fail("userns");
        close(userns);
    }
    if (netns >= 0) {
        if (setns(netns, CLONE_NEWNET) != 0) fail("netns");
        close(netns);
    }
    execvp(argv[i], &argv[i]);
    fail("exec");
    return 127;
}
