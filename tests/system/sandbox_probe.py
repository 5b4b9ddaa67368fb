"""Attacker and control probes, run *inside* a sandbox by Debian's /usr/bin/python3 (stdlib only).

Usage: python3 sandbox_probe.py [--seccomp FILE] NAME[:ARG] ...
Prints one JSON object: {"NAME[:ARG]": {"ok": bool, "errno": "EPERM" | None, "out": ...}}.
With --seccomp, the raw BPF program in FILE is loaded first (to test the filter on its own,
outside bwrap, where the kernel would otherwise allow the call).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

SYS = {"ioctl": 16, "clone": 56, "clone3": 435, "fsopen": 430, "open_tree": 428, "keyctl": 250}
SYS.update({"syslog": 103, "perf_event_open": 298, "personality": 135, "ptrace": 101})
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
CLONE_NEWUSER = 0x10000000
CLONE_NEWUTS = 0x04000000
SIGCHLD = 17


class Failed(Exception):
    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.err = err


def check(rc: int) -> int:
    if rc < 0:
        raise Failed(ctypes.get_errno())
    return rc


def raw(name: str, *args: object) -> int:
    conv = [ctypes.c_ulong(a) if isinstance(a, int) else a for a in args]
    return check(libc.syscall(ctypes.c_long(SYS[name]), *conv))


def load_seccomp(path: str) -> None:
    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    with open(path, "rb") as f:
        prog = f.read()
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = SockFprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    check(libc.prctl(38, 1, 0, 0, 0))  # PR_SET_NO_NEW_PRIVS
    check(libc.prctl(22, 2, ctypes.byref(fprog), 0, 0))  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER


# -- probes: each returns something JSON-able or raises (OSError / Failed) ---------------------


def p_read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read(64).decode(errors="replace")


def p_list(path: str) -> list[str]:
    return sorted(os.listdir(path))


def p_write(path: str) -> int:
    with open(path, "w") as f:
        return f.write("written from the sandbox\n")


def p_exists(path: str) -> bool:
    return os.path.lexists(path)


def p_connect(path: str) -> str:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return "connected"
    finally:
        s.close()


def p_tiocsti(_: str) -> int:
    return check(libc.ioctl(0, ctypes.c_ulong(TIOCSTI), ctypes.c_char_p(b"#")))


def p_tiocsti_high(_: str) -> int:
    # The kernel truncates the request to 32 bits, so this is TIOCSTI as well.
    return raw("ioctl", 0, (1 << 32) | TIOCSTI, ctypes.c_char_p(b"#"))


def p_tioclinux(_: str) -> int:
    sub = ctypes.c_char(b"\x03")  # TIOCL_PASTESEL: paste the selection as input
    return raw("ioctl", 0, TIOCLINUX, ctypes.byref(sub))


def p_unshare_user(_: str) -> int:
    return check(libc.unshare(CLONE_NEWUSER))


def p_mount(_: str) -> int:
    target = tempfile.mkdtemp(prefix="zionwm-probe-mount-")
    try:
        rc = check(libc.mount(b"none", target.encode(), b"tmpfs", 0, None))
        libc.umount2(target.encode(), 2)  # the unfiltered control run must not leave it
        return rc
    finally:
        os.rmdir(target)


def p_unmask(path: str) -> dict[str, object]:
    """Try to take away what covers `path` (umount2, lazily), then read what shows there."""
    try:
        check(libc.umount2(path.encode(), 2))  # MNT_DETACH
        umounted: object = "ok"
    except Failed as exc:
        umounted = errno.errorcode.get(exc.err, str(exc.err))
    try:
        with open(path, "rb") as f:
            after: object = f.read(64).decode(errors="replace")
    except OSError as exc:
        after = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return {"umount": umounted, "after": after}


def p_plant(directory: str) -> str:
    """Make a directory writable (its owner may) and leave a file in it."""
    os.chmod(directory, 0o755)
    path = os.path.join(directory, "planted")
    with open(path, "w") as f:
        f.write("planted from the sandbox\n")
    return path


def p_mntns_owner(_: str) -> str:
    """Which user namespace owns this process's mount namespace (NS_GET_USERNS): "own",
    "other" (one this process can see), or "outside" (an ancestor, out of its scope)."""
    import fcntl

    mnt = os.open("/proc/self/ns/mnt", os.O_RDONLY)
    try:
        owner = fcntl.ioctl(mnt, 0xB701)  # NS_GET_USERNS: an fd of the owning user namespace
    except PermissionError:
        return "outside"
    finally:
        os.close(mnt)
    try:
        return "own" if os.fstat(owner).st_ino == os.stat("/proc/self/ns/user").st_ino else "other"
    finally:
        os.close(owner)


def p_fds(_: str) -> dict[str, str]:
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[name] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass
    return out


def p_chroot(_: str) -> int:
    return check(libc.chroot(b"/tmp"))


def p_setns(_: str) -> int:
    fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
    try:
        return check(libc.setns(fd, 0))
    finally:
        os.close(fd)


def _clone(flags: int) -> int:
    pid = raw("clone", flags | SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def p_clone_ns(_: str) -> int:
    return _clone(CLONE_NEWUTS)


def p_clone_plain(_: str) -> int:
    return _clone(0)


def p_clone3(_: str) -> int:
    args = (ctypes.c_uint64 * 11)()  # struct clone_args, zeroed: a plain fork if allowed
    args[4] = SIGCHLD  # exit_signal
    pid = raw("clone3", ctypes.byref(args), ctypes.sizeof(args))
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def p_fsopen(_: str) -> int:
    return raw("fsopen", ctypes.c_char_p(b"tmpfs"), 0)


def p_keyctl(_: str) -> int:
    return raw("keyctl", 0, 0xFFFFFFFD, 0)  # KEYCTL_GET_KEYRING_ID, session keyring


def p_syslog(_: str) -> int:
    buf = ctypes.create_string_buffer(128)
    return raw("syslog", 3, ctypes.addressof(buf), 128)


def p_ptrace(_: str) -> int:
    target = os.fork()
    if target == 0:
        while True:
            signal.pause()
    try:
        return raw("ptrace", 16, target, 0, 0)  # PTRACE_ATTACH
    finally:
        os.kill(target, 9)
        os.waitpid(target, 0)


def p_perf(_: str) -> int:
    attr = (ctypes.c_uint8 * 128)()
    ctypes.c_uint32.from_buffer(attr, 4).value = 128  # size
    ctypes.c_uint64.from_buffer(attr, 8).value = 0  # PERF_COUNT_SW_CPU_CLOCK with type 1
    ctypes.c_uint32.from_buffer(attr, 0).value = 1  # PERF_TYPE_SOFTWARE
    fd = raw(
        "perf_event_open",
        ctypes.addressof(attr),
        0,
        -1 & 0xFFFFFFFFFFFFFFFF,
        -1 & 0xFFFFFFFFFFFFFFFF,
        0,
    )
    os.close(fd)
    return fd


def p_personality(arg: str) -> int:
    return raw("personality", int(arg, 0))


def p_socket(arg: str) -> str:
    family = int(arg)
    s = socket.socket(family, socket.SOCK_DGRAM if family == 17 else socket.SOCK_STREAM)
    s.close()
    return "created"


def p_netlink(arg: str) -> str:
    """Open a raw netlink socket of protocol ARG (15: the host's device events)."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, int(arg))
    s.close()
    return "created"


def p_fd_reopen(arg: str) -> dict[str, object]:
    """Reopen /proc/self/fd/ARG for reading (what can be read back: the sink's content) and
    for writing (plant a line, then try to truncate)."""
    out: dict[str, object] = {}
    path = f"/proc/self/fd/{arg}"
    out["target"] = os.readlink(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            out["read"] = os.read(fd, 1 << 20).decode(errors="replace")
        except OSError as exc:
            out["read_error"] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        finally:
            os.close(fd)
    except OSError as exc:
        out["open_read_error"] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, f"zionwm[1]: INFO forged by the sandbox via fd {arg}\n".encode())
            out["wrote"] = True
        finally:
            os.close(fd)
    except OSError as exc:
        out["open_write_error"] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.close(fd)
        out["truncated"] = True
    except OSError as exc:
        out["truncate_error"] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return out


def p_readall(path: str) -> str:
    with open(path, "rb") as f:
        return f.read(1 << 16).decode(errors="replace")


def p_glob(pattern: str) -> dict[str, str]:
    """Every file matching PATTERN that can be read, with its content."""
    import glob

    found = {}
    for path in sorted(glob.glob(pattern)):
        try:
            with open(path, "rb") as f:
                found[path] = f.read(256).decode(errors="replace").strip()
        except OSError:
            pass
    return found


# -- negative controls: must work ----------------------------------------------------------------


def p_file_io(_: str) -> str:
    path = os.path.join(os.environ["HOME"], "probe-io.txt")
    with open(path, "w") as f:
        f.write("hello")
    with open(path) as f:
        data = f.read()
    os.unlink(path)
    return data


def p_chmod(_: str) -> str:
    fd, path = tempfile.mkstemp()
    os.close(fd)
    os.chmod(path, 0o751)
    mode = oct(os.stat(path).st_mode & 0o777)
    os.unlink(path)
    return mode


def p_listen(_: str) -> list[str]:
    out = []
    path = os.path.join(tempfile.mkdtemp(), "sock")
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.bind(path)
    u.listen()
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    out.append("unix")
    c.close()
    u.close()
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    t.listen()
    out.append(f"tcp:{t.getsockname()[1] > 0}")
    t.close()
    return out


def p_fork(_: str) -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def p_env(name: str) -> str | None:
    return os.environ.get(name)


def p_pid1_environ(_: str) -> list[str]:
    with open("/proc/1/environ", "rb") as f:
        return [kv.split(b"=", 1)[0].decode() for kv in f.read().split(b"\0") if kv]


def p_procs(_: str) -> list[list[str]]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    out.append([entry, f.read().strip()])
            except OSError:
                pass
    return sorted(out, key=lambda x: int(x[0]))


def p_caps(_: str) -> dict[str, str]:
    with open("/proc/self/status") as f:
        return {
            k: v.strip()
            for k, v in (ln.split(":", 1) for ln in f)
            if k.startswith("Cap") or k in ("NoNewPrivs", "Seccomp")
        }


def p_ids(_: str) -> list[int]:
    return [os.getuid(), os.getgid(), *os.getgroups()]


PROBES: dict[str, Callable[[str], object]] = {
    name[2:]: fn for name, fn in list(globals().items()) if name.startswith("p_") and callable(fn)
}


def run(spec: str) -> dict[str, object]:
    """Run one probe in a forked child, so a probe that succeeds (chroot, unshare) cannot
    change the ground under the probes after it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            data = json.dumps(run_here(spec)).encode()
        except Exception as exc:
            data = json.dumps(
                {"ok": False, "errno": None, "out": f"probe crashed: {exc!r}"}
            ).encode()
        os.write(w, f"{os.getpid()} ".encode() + data + b"\n")
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    # Only the direct child's line counts; a process a probe forked must not speak for it.
    result: dict[str, object] = {"ok": False, "errno": None, "out": "no result"}
    stray = []
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        sender, _, doc = line.partition(" ")
        if sender == str(pid):
            result = json.loads(doc)
        else:
            stray.append(line)
    if stray:
        result["stray"] = stray
    return result


def run_here(spec: str) -> dict[str, object]:
    name, _, arg = spec.partition(":")
    try:
        return {"ok": True, "errno": None, "out": PROBES[name](arg)}
    except Failed as exc:
        return {"ok": False, "errno": errno.errorcode.get(exc.err, str(exc.err)), "out": None}
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return {"ok": False, "errno": code, "out": str(exc)}


def main(argv: list[str]) -> None:
    if argv[:1] == ["--seccomp"]:
        load_seccomp(argv[1])
        argv = argv[2:]
    out_path = None
    if argv[:1] == ["--out"]:
        # Inside a desktop started by the compositor, stdout is the desktop's log: the result
        # goes to a file of the desktop's home, renamed into place when complete.
        out_path = argv[1]
        argv = argv[2:]
    doc = {spec: run(spec) for spec in argv}
    if out_path is None:
        json.dump(doc, sys.stdout)
        sys.stdout.flush()
        return
    tmp = out_path + ".part"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.rename(tmp, out_path)


if __name__ == "__main__":
    main(sys.argv[1:])
