"""The seccomp filter every sandboxed program runs under, compiled to BPF for `bwrap --seccomp`.

Owns the syscall deny-list and its compilation. The list starts from what Flatpak blocks and
adds a few calls that are pure kernel attack surface for desktop programs (bpf, userfaultfd,
io_uring, module loading). The filter is allow-by-default: it closes specific doors, it is not
an allow-list; the namespaces and the dropped capabilities do the rest.

Errno choices follow Flatpak's reasoning: calls a program may probe and then fall back from
(clone3, the new mount API, io_uring) fail with ENOSYS so libraries take their old path, which
is itself blocked or harmless; everything else fails with EPERM.

A desktop with `nested_sandbox=True` gets a variant (`nested=True`) that lets a program build a
sandbox of its own the way Chromium's does: clone/unshare with a new user, PID and network
namespace (never a mount, IPC, UTS or cgroup one), and chroot, which only works for a process
that holds CAP_SYS_CHROOT in a user namespace it made, so only into its own new root. Mount,
setns, pivot_root and everything else stay refused, and this filter stays stacked under the
nested sandbox's own.

Each variant is the same for every launch, so it is built once per process and each
launch only copies the bytes into a fresh memfd (bwrap reads its fd to the end, so an fd can
serve one launch only).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyseccomp

log = logging.getLogger(__name__)

# <linux/sched.h> namespace flags; clone() takes them in its first argument on x86 and arm.
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
# What a nested sandbox may create: a user namespace to hold its capabilities, and the PID and
# network namespaces Chromium's layer-1 sandbox puts each renderer in.
NESTED_SANDBOX_FLAGS = (CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET)
# Calls DENIED outright that a nested sandbox needs (unshare then checked by its flags).
NESTED_SANDBOX_CALLS = frozenset({"unshare", "chroot"})
NAMESPACE_CLONE_FLAGS = (
    CLONE_NEWNS,
    CLONE_NEWCGROUP,
    CLONE_NEWUTS,
    CLONE_NEWIPC,
    CLONE_NEWUSER,
    CLONE_NEWPID,
    CLONE_NEWNET,
)

TIOCSTI = 0x5412  # push bytes into a terminal's input queue (CVE-2017-5226)
TIOCLINUX = 0x541C  # virtual-console tricks, including pasting the selection as input

# socket() families a desktop program may use; everything else gets EAFNOSUPPORT.
AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 0, 1, 2, 10, 16
ALLOWED_SOCKET_FAMILIES = frozenset({AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK})
AF_MAX = 46  # Linux 6.x; families at or above it do not exist (yet) and are refused too

# Netlink protocols a desktop program may open. NETLINK_ROUTE alone: getaddrinfo's
# AI_ADDRCONFIG, glib's and browsers' network monitors read addresses and routes through it,
# and it answers only about the sandbox's own network namespace. Everything else is refused:
# NETLINK_KOBJECT_UEVENT broadcasts the host's device events (plugging, unplugging, USB ids,
# serial numbers) into every namespace, NETLINK_SOCK_DIAG lists sockets (only `ss` needs it),
# and the audit, netfilter, xfrm, connector and generic families are host administration.
NETLINK_ROUTE = 0
NETLINK_KOBJECT_UEVENT = 15

PER_LINUX = 0

# (syscall, errno): unconditional denials.
DENIED: tuple[tuple[str, int], ...] = (
    # Namespaces and mounts: the sandbox's shape is fixed by bwrap and must stay so.
    ("unshare", errno.EPERM),
    ("setns", errno.EPERM),
    ("mount", errno.EPERM),
    ("umount", errno.EPERM),
    ("umount2", errno.EPERM),
    ("pivot_root", errno.EPERM),
    ("chroot", errno.EPERM),
    # clone3 passes its flags in memory, which a filter cannot inspect; glibc falls back to clone.
    ("clone3", errno.ENOSYS),
    # The new mount API.
    ("open_tree", errno.ENOSYS),
    ("move_mount", errno.ENOSYS),
    ("fsopen", errno.ENOSYS),
    ("fsconfig", errno.ENOSYS),
    ("fsmount", errno.ENOSYS),
    ("fspick", errno.ENOSYS),
    ("mount_setattr", errno.ENOSYS),
    # The kernel keyring is not namespaced.
    ("add_key", errno.EPERM),
    ("keyctl", errno.EPERM),
    ("request_key", errno.EPERM),
    # Observing other processes and the kernel.
    ("ptrace", errno.EPERM),
    ("process_vm_readv", errno.EPERM),
    ("process_vm_writev", errno.EPERM),
    ("syslog", errno.EPERM),
    ("perf_event_open", errno.EPERM),
    ("kcmp", errno.EPERM),
    # Not namespaced or privileged-only; Flatpak blocks these too.
    ("uselib", errno.EPERM),
    ("acct", errno.EPERM),
    ("quotactl", errno.EPERM),
    ("move_pages", errno.EPERM),
    ("mbind", errno.EPERM),
    ("get_mempolicy", errno.EPERM),
    ("set_mempolicy", errno.EPERM),
    ("migrate_pages", errno.EPERM),
    # Kernel attack surface no desktop program needs.
    ("bpf", errno.EPERM),
    ("userfaultfd", errno.EPERM),
    ("kexec_load", errno.EPERM),
    ("kexec_file_load", errno.EPERM),
    ("init_module", errno.EPERM),
    ("finit_module", errno.EPERM),
    ("delete_module", errno.EPERM),
    ("open_by_handle_at", errno.EPERM),
    ("io_uring_setup", errno.ENOSYS),
    ("io_uring_enter", errno.ENOSYS),
    ("io_uring_register", errno.ENOSYS),
)


def _extra_arches() -> tuple[int, ...]:
    """Secondary ABIs reachable from a native process, so their entry points are filtered too.

    Without them the kernel would still refuse 32-bit calls (libseccomp's default for a
    foreign arch is to kill), but 32-bit programs (games under Wine, Steam) would die.
    """
    import pyseccomp  # noqa: PLC0415 - see build_filter

    if os.uname().machine == "x86_64":
        return (pyseccomp.Arch.X86, pyseccomp.Arch.X32)
    if os.uname().machine == "aarch64":
        return (pyseccomp.Arch.ARM,)
    return ()


def _add(flt: pyseccomp.SyscallFilter, action: int, name: str, *args: pyseccomp.Arg) -> None:
    import pyseccomp  # noqa: PLC0415 - see build_filter

    try:
        flt.add_rule(action, name, *args)
    except OSError as exc:
        # A syscall unknown to this libseccomp cannot be reached by name either; the others
        # are fatal because a silently missing rule is a hole.
        if pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) == -1:
            log.warning("seccomp: libseccomp does not know %s; rule skipped", name)
            return
        raise RuntimeError(f"seccomp: cannot add rule for {name}: {exc}") from exc


def build_filter(nested: bool = False) -> pyseccomp.SyscallFilter:
    """The filter object, with every rule added (not yet exported).

    nested: allow the namespaces and chroot of a program's own sandbox (see the module doc).
    """
    # pyseccomp (ctypes, libseccomp) is imported here, at the first sandboxed launch, not when
    # the compositor starts: a session that launches nothing never carries it
    import pyseccomp  # noqa: PLC0415

    if os.uname().machine.startswith("s390"):
        # clone's flags are its second argument there; the clone rules below assume the first.
        raise RuntimeError("seccomp: clone argument order of s390 is not supported")
    flt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    # The same rules as a binary tree of syscall numbers rather than a list: the kernel runs
    # the program once per syscall number and ABI when it is loaded (to learn which calls are
    # always allowed), and at every call whose answer depends on its arguments; walking a
    # tree instead of ~300 instructions cut the load from about 0.21 to 0.07 ms here.
    # libseccomp before 2.5 has no such option; the list it then builds is as strict.
    try:
        flt.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, 2)
    except (OSError, AttributeError) as exc:
        log.info("seccomp: no binary-tree layout (%s); using a linear program", exc)
    for arch in _extra_arches():
        flt.add_arch(arch)

    for name, err in DENIED:
        if not (nested and name in NESTED_SANDBOX_CALLS):
            _add(flt, pyseccomp.ERRNO(err), name)

    if nested:
        # unshare is refused flag by flag like clone; chroot is left to the kernel's check.
        refused = tuple(f for f in NAMESPACE_CLONE_FLAGS if f not in NESTED_SANDBOX_FLAGS)
        calls: tuple[str, ...] = ("clone", "unshare")
    else:
        refused, calls = NAMESPACE_CLONE_FLAGS, ("clone",)
    for flag in refused:
        for call in calls:
            _add(
                flt,
                pyseccomp.ERRNO(errno.EPERM),
                call,
                pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag),
            )

    # The kernel reads ioctl's request as a 32-bit int, so 0x1_0000_5412 is TIOCSTI too:
    # compare only the low 32 bits.
    for request in (TIOCSTI, TIOCLINUX):
        _add(
            flt,
            pyseccomp.ERRNO(errno.EPERM),
            "ioctl",
            pyseccomp.Arg(1, pyseccomp.MASKED_EQ, 0xFFFFFFFF, request),
        )

    # Other personas (BSD, SVr4 ...) and flags such as READ_IMPLIES_EXEC change how the
    # kernel treats the process; Flatpak allows only the plain Linux persona, and so do we.
    _add(
        flt, pyseccomp.ERRNO(errno.EINVAL), "personality", pyseccomp.Arg(0, pyseccomp.NE, PER_LINUX)
    )

    # One comparison per argument per rule, so each refused family is its own rule; anything
    # with bits above the known range (including values only the kernel would truncate) is
    # caught by the last one.
    for family in range(AF_MAX):
        if family not in ALLOWED_SOCKET_FAMILIES:
            _add(
                flt,
                pyseccomp.ERRNO(errno.EAFNOSUPPORT),
                "socket",
                pyseccomp.Arg(0, pyseccomp.EQ, family),
            )
    _add(flt, pyseccomp.ERRNO(errno.EAFNOSUPPORT), "socket", pyseccomp.Arg(0, pyseccomp.GE, AF_MAX))

    # The kernel reads family and protocol as ints: compare the family's low 32 bits (so a
    # high bit cannot slip a netlink socket past), and the protocol in full (any high bit is
    # refused, which only errs on the closed side). EPROTONOSUPPORT is what the kernel itself
    # answers for a protocol it lacks, so libudev & co. take their no-monitor path.
    _add(
        flt,
        pyseccomp.ERRNO(errno.EPROTONOSUPPORT),
        "socket",
        pyseccomp.Arg(0, pyseccomp.MASKED_EQ, 0xFFFFFFFF, AF_NETLINK),
        pyseccomp.Arg(2, pyseccomp.NE, NETLINK_ROUTE),
    )
    return flt


class _FdFile:
    """The one method pyseccomp's export needs from a file object."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd


@functools.cache
def compiled_bpf(nested: bool = False) -> bytes:
    """The BPF program as raw `struct sock_filter` records, built once per process."""
    flt = build_filter(nested)
    fd = os.memfd_create("zionwm-seccomp-build", os.MFD_CLOEXEC)
    try:
        flt.export_bpf(_FdFile(fd))
        size = os.lseek(fd, 0, os.SEEK_END)
        data = os.pread(fd, size, 0)
    finally:
        os.close(fd)
    if not data or len(data) % 8:
        raise RuntimeError(f"seccomp: exported program has an odd size ({len(data)} bytes)")
    log.debug("seccomp: compiled %d BPF instructions", len(data) // 8)
    return data


def filter_fd(nested: bool = False) -> int:
    """A fresh fd (close-on-exec, offset 0) holding the program, for one `bwrap --seccomp`."""
    data = compiled_bpf(nested)
    fd = os.memfd_create("zionwm-seccomp", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
