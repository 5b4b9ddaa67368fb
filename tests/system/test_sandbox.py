"""Attacks that must fail from inside a real sandbox, and the controls that must still work.

Real bwrap, real seccomp, real namespaces, a real Wayland compositor (weston, headless) as
the stand-in for zionwm's desktop socket. Attacker code is tests/system/sandbox_probe.py, run
by Debian's /usr/bin/python3 from a read-only app dir bound into the sandbox.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import termios
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.harness import readable_package, sandbox_missing, wait_for
from zionwm import paths
from zionwm.isolation import seccomp, storage
from zionwm.isolation.launcher import Launcher, LaunchError, Sandbox
from zionwm.isolation.spec import DesktopSpec, Devices

PROBE_SRC = Path(__file__).with_name("sandbox_probe.py")
PYTHON = "/usr/bin/python3"
INSIDE_PROBE = "/opt/zionwm/0/sandbox_probe.py"
LD_PRELOAD_MARK = "/nonexistent/zionwm-test-preload.so"


def _probe_facility() -> str | None:
    """Why this machine cannot run sandboxes, or None."""
    if not os.path.exists(PYTHON):
        return f"{PYTHON} (Debian python3-minimal) is missing: attacker scripts need it"
    return sandbox_missing()


_MISSING = _probe_facility()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


class Env:
    """A private data/runtime/home world for one test, and a launcher living in it."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.runtime = root / "run"
        self.runtime.mkdir(mode=0o700)
        self.home = root / "home"
        self.ssh = self.home / ".ssh"
        self.ssh.mkdir(parents=True)
        (self.ssh / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY----- test\n")
        self.apps = root / "apps"
        self.apps.mkdir()
        shutil.copy(PROBE_SRC, self.apps / "sandbox_probe.py")
        for key, value in {
            "HOME": str(self.home),
            "XDG_DATA_HOME": str(root / "data"),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_CONFIG_HOME": str(root / "config"),
            "XDG_STATE_HOME": str(root / "state"),
            "XDG_CACHE_HOME": str(root / "cache"),
        }.items():
            monkeypatch.setenv(key, value)
        self.exits: list[tuple[Sandbox, int]] = []
        launch_env = dict(os.environ)
        launch_env.update(
            {
                "LD_PRELOAD": LD_PRELOAD_MARK,
                "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.runtime}/bus",
                "WAYLAND_DISPLAY": "wayland-host",
                "DISPLAY": ":0",
                "SSH_AUTH_SOCK": str(self.runtime / "ssh-agent"),
            }
        )
        self.launcher = Launcher(
            on_exit=lambda s, rc: self.exits.append((s, rc)), environ=launch_env
        )

    def spec(self, name: str, **kw: Any) -> DesktopSpec:
        app_dirs = (str(self.apps), *kw.pop("app_dirs", ()))
        return DesktopSpec(name=name, colour=(0.5, 0.5, 0.5, 1.0), app_dirs=app_dirs, **kw)

    def run(
        self,
        spec: DesktopSpec,
        argv: list[str],
        *,
        stdin: int | None = subprocess.DEVNULL,
        timeout: float = 30.0,
        **kw: Any,
    ) -> tuple[int, str, str]:
        out = self.root / f"out-{uuid.uuid4().hex}"
        err = self.root / f"err-{uuid.uuid4().hex}"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            sb = self.launcher.launch(
                spec, argv, stdin=stdin, stdout=fo.fileno(), stderr=fe.fileno(), **kw
            )
        rc = sb.wait(timeout)
        return rc, out.read_text(), err.read_text()

    def probe(self, spec: DesktopSpec, *probes: str, **kw: Any) -> dict[str, dict[str, Any]]:
        rc, out, err = self.run(spec, [PYTHON, INSIDE_PROBE, *probes], **kw)
        assert rc == 0, f"probe exited {rc}: {err}"
        result: dict[str, dict[str, Any]] = json.loads(out)
        return result


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    e = Env(tmp_path, monkeypatch)
    try:
        yield e
    finally:
        e.launcher.shutdown(timeout=5.0)


def errno_of(result: dict[str, dict[str, Any]], name: str) -> str | None:
    r = result[name]
    assert not r["ok"], f"{name} succeeded inside the sandbox: {r}"
    assert "stray" not in r, r
    errno_name: str | None = r["errno"]
    return errno_name


def listening_unix(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen()
    return s


@pytest.fixture
def controlling_pty() -> Iterator[tuple[int, int]]:
    master, slave = os.openpty()
    try:
        yield master, slave
    finally:
        os.close(master)
        os.close(slave)


# -- files, processes, sockets -----------------------------------------------------------------


@pytest.mark.security
def test_filesystem_process_and_socket_attacks_fail(env: Env) -> None:
    # Another desktop with a secret, Shared with a file, the IPC socket, a host Wayland socket
    # and a session bus socket, all live.
    other_home = paths.desktop_home("personal")
    other_home.mkdir(parents=True)
    (other_home / "diary.txt").write_text("secret")
    paths.shared_dir().mkdir(parents=True)
    (paths.shared_dir() / "notice.txt").write_text("for everyone")
    paths.runtime_dir().mkdir()
    sockets = [
        listening_unix(paths.ipc_socket()),
        listening_unix(env.runtime / "wayland-host"),
        listening_unix(env.runtime / "bus"),
    ]
    try:
        r = env.probe(
            env.spec("web"),
            f"read:{other_home / 'diary.txt'}",
            f"read:{env.ssh / 'id_ed25519'}",
            "list:/root",
            f"list:{env.home}",
            "write:/home/root/Shared/planted.txt"
            if os.getuid() == 0
            else "write:Shared/planted.txt",
            "read:/home/root/Shared/notice.txt" if os.getuid() == 0 else "read:Shared/notice.txt",
            f"connect:{paths.ipc_socket()}",
            f"connect:{env.runtime / 'wayland-host'}",
            f"connect:{env.runtime / 'bus'}",
            "exists:/run/dbus/system_bus_socket",
            f"list:/run/user/{os.getuid()}",
            "read:/etc/shadow",
            "list:/etc/ssl/private",
            "write:/proc/sys/vm/swappiness",
            "write:/proc/sysrq-trigger",
            "env:LD_PRELOAD",
            "env:DBUS_SESSION_BUS_ADDRESS",
            "env:DISPLAY",
            "env:SSH_AUTH_SOCK",
            "env:WAYLAND_DISPLAY",
            "pid1_environ",
            "procs",
            "caps",
            "file_io",
            "chmod",
            "listen",
        )
    finally:
        for s in sockets:
            s.close()
    assert errno_of(r, f"read:{other_home / 'diary.txt'}") == "ENOENT"
    assert errno_of(r, f"read:{env.ssh / 'id_ed25519'}") == "ENOENT"
    assert errno_of(r, "list:/root") == "ENOENT"
    assert errno_of(r, f"list:{env.home}") == "ENOENT"
    write_key = next(k for k in r if k.startswith("write:"))
    assert errno_of(r, write_key) == "EROFS"
    assert not (paths.shared_dir() / "planted.txt").exists()
    read_key = next(k for k in r if k.startswith("read:") and k.endswith("notice.txt"))
    assert r[read_key]["ok"] and r[read_key]["out"] == "for everyone"  # Shared is readable
    for sock in (paths.ipc_socket(), env.runtime / "wayland-host", env.runtime / "bus"):
        assert errno_of(r, f"connect:{sock}") == "ENOENT"
    assert r["exists:/run/dbus/system_bus_socket"]["out"] is False
    assert r[f"list:/run/user/{os.getuid()}"]["out"] == []  # no desktop socket yet: empty
    assert errno_of(r, "read:/etc/shadow") == "ENOENT"
    assert errno_of(r, "list:/etc/ssl/private") == "ENOENT"
    # Global sysctls and sysrq: even a root launcher's sandbox (kuid 0) cannot write them.
    assert errno_of(r, "write:/proc/sys/vm/swappiness") in ("EROFS", "EACCES")
    assert errno_of(r, "write:/proc/sysrq-trigger") in ("EROFS", "EACCES", "ENOENT")
    for var in ("LD_PRELOAD", "DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "SSH_AUTH_SOCK"):
        assert r[f"env:{var}"]["out"] is None, var
    assert r["env:WAYLAND_DISPLAY"]["out"] == "wayland-0"
    assert "LD_PRELOAD" not in r["pid1_environ"]["out"]
    # ps: only the sandbox's init and the probe (plus the probe's own forked child).
    procs = r["procs"]["out"]
    assert [p[1] for p in procs][:2] == ["bwrap", "python3"], procs
    assert {p[1] for p in procs} <= {"bwrap", "python3"}, procs
    assert len(procs) <= 3, procs
    caps = r["caps"]["out"]
    for key in ("CapPrm", "CapEff", "CapBnd", "CapAmb", "CapInh"):
        assert int(caps[key], 16) == 0, caps
    # the sandbox's filter is on (mode 2: a filter), and no exec can gain privileges
    assert caps["Seccomp"] == "2" and caps["NoNewPrivs"] == "1", caps
    # Negative controls.
    assert r["file_io"]["out"] == "hello"
    assert r["chmod"]["out"] == "0o751"
    assert r["listen"]["out"] == ["unix", "tcp:True"]


@pytest.mark.security
def test_ld_preload_of_the_launching_environment_never_loads(env: Env) -> None:
    rc, out, err = env.run(env.spec("web"), ["/bin/sh", "-c", 'echo "preload=[$LD_PRELOAD]"'])
    assert rc == 0
    assert out.strip() == "preload=[]"
    assert "cannot be preloaded" not in err  # ld.so would complain about the missing library


@pytest.mark.security
def test_ps_inside_shows_only_the_sandbox(env: Env) -> None:
    if not os.path.exists("/usr/bin/ps"):
        pytest.fail("procps (/usr/bin/ps) is not installed (scripts/setup-system.sh installs it)")
    rc, out, _ = env.run(env.spec("web"), ["/usr/bin/ps", "-eo", "pid=,comm="])
    assert rc == 0
    rows = [line.split() for line in out.strip().splitlines()]
    assert rows[0] == ["1", "bwrap"]
    assert {comm for _, comm in rows} == {"bwrap", "ps"}, rows


# -- seccomp ------------------------------------------------------------------------------------

SECCOMP_ATTACKS = {
    "tiocsti": "EPERM",
    "tiocsti_high": "EPERM",
    "tioclinux": "EPERM",
    "unshare_user": "EPERM",
    "mount": "EPERM",
    "chroot": "EPERM",
    "setns": "EPERM",
    "clone_ns": "EPERM",
    "clone3": "ENOSYS",
    "fsopen": "ENOSYS",
    "keyctl": "EPERM",
    "syslog": "EPERM",
    "ptrace": "EPERM",
    "perf": "EPERM",
    "personality:0x400000": "EINVAL",
    "socket:17": "EAFNOSUPPORT",
}
CONTROLS = ("clone_plain", "fork", "personality:0", "socket:2", "file_io", "chmod", "listen")


@pytest.mark.security
def test_seccomp_attacks_fail_inside_the_sandbox(
    env: Env, controlling_pty: tuple[int, int]
) -> None:
    _, slave = controlling_pty
    # The pty stands in for the terminal the user launched from (CVE-2017-5226).
    r = env.probe(env.spec("web"), *SECCOMP_ATTACKS, *CONTROLS, stdin=slave)
    for attack, expected in SECCOMP_ATTACKS.items():
        assert errno_of(r, attack) == expected, (attack, r[attack])
    for control in CONTROLS:
        assert r[control]["ok"], (control, r[control])


def _run_probe_on_own_tty(args: list[str], tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Run the probe outside any sandbox, with a pty as its controlling terminal."""
    master, slave = os.openpty()

    def own_tty() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    try:
        r = subprocess.run(
            [PYTHON, str(PROBE_SRC), *args],
            stdin=slave,
            capture_output=True,
            text=True,
            preexec_fn=own_tty,
            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
            timeout=60,
            check=False,
        )
    finally:
        os.close(master)
        os.close(slave)
    assert r.returncode == 0, r.stderr
    result: dict[str, dict[str, Any]] = json.loads(r.stdout)
    return result


@pytest.mark.security
@pytest.mark.skipif(
    os.getuid() != 0, reason="the unfiltered control run needs root (mount, chroot, syslog)"
)
def test_seccomp_filter_itself_makes_the_difference(tmp_path: Path) -> None:
    """Inside bwrap the kernel refuses many of these anyway (no capabilities, --new-session);
    outside, as root, each attack succeeds without the filter and fails with it."""
    bpf = tmp_path / "filter.bpf"
    bpf.write_bytes(seccomp.compiled_bpf())
    names = [n for n in SECCOMP_ATTACKS if n != "tioclinux"]  # TIOCLINUX needs a real VT
    bare = _run_probe_on_own_tty([*names, "tioclinux"], tmp_path)
    for name in names:
        assert bare[name]["ok"], (name, bare[name])
    assert bare["tioclinux"]["errno"] != "EPERM"
    filtered = _run_probe_on_own_tty(
        ["--seccomp", str(bpf), *names, "tioclinux", *CONTROLS], tmp_path
    )
    for name in [*names, "tioclinux"]:
        assert errno_of(filtered, name) == SECCOMP_ATTACKS[name], (name, filtered[name])
    for control in CONTROLS:
        assert filtered[control]["ok"], (control, filtered[control])


# -- storage ------------------------------------------------------------------------------------


@pytest.mark.security
@pytest.mark.parametrize("victim", ["home", "outbox"])
def test_symlink_swap_to_ssh_between_launches_binds_nothing(env: Env, victim: str) -> None:
    spec = env.spec("web")
    rc, _, _ = env.run(spec, ["/bin/sh", "-c", "echo first > ~/Outbox/a; echo first > ~/a"])
    assert rc == 0
    target = paths.desktop_home("web") if victim == "home" else paths.desktop_outbox("web")
    target.rename(target.with_name(target.name + ".moved"))
    target.symlink_to(env.ssh)
    before = sorted(p.name for p in env.ssh.iterdir())
    with pytest.raises(storage.UnsafePathError, match="symlink"):
        env.launcher.launch(
            spec, ["/bin/sh", "-c", "echo pwned > ~/Outbox/id_ed25519; echo x > ~/id_ed25519"]
        )
    assert env.launcher.running == {}
    assert sorted(p.name for p in env.ssh.iterdir()) == before
    assert (env.ssh / "id_ed25519").read_text().startswith("-----BEGIN")


@pytest.mark.security
def test_ephemeral_desktop_leaves_nothing_persistent_one_keeps_its_file(env: Env) -> None:
    seed = storage.seed_dir("temp")
    (seed / ".config").mkdir(parents=True)
    (seed / ".config" / "seeded.conf").write_text("from the template\n")
    script = "cat ~/.config/seeded.conf; echo gone > ~/ephemeral-marker.txt; ls ~"
    rc, out, err = env.run(env.spec("temp", ephemeral=True), ["/bin/sh", "-c", script])
    assert rc == 0, err
    assert "from the template" in out and "ephemeral-marker.txt" in out
    wait_for(lambda: not env.launcher.running, what="the ephemeral sandbox to be reaped")
    leftovers = [p for p in env.root.rglob("ephemeral-marker.txt")]
    assert leftovers == []
    # The template itself is untouched.
    assert sorted(p.name for p in seed.rglob("*")) == [".config", "seeded.conf"]

    rc, _, err = env.run(env.spec("keep"), ["/bin/sh", "-c", "echo kept > ~/persistent-marker.txt"])
    assert rc == 0, err
    assert (paths.desktop_home("keep") / "persistent-marker.txt").read_text() == "kept\n"
    # A one-off ephemeral launch on the persistent desktop does not see or touch its home.
    rc, out, _ = env.run(
        env.spec("keep"), ["/bin/sh", "-c", "ls ~; echo x > ~/one-off.txt"], ephemeral=True
    )
    assert rc == 0 and "persistent-marker.txt" not in out
    assert not (paths.desktop_home("keep") / "one-off.txt").exists()


def test_outbox_is_writable_and_lands_in_the_desktop_outbox(env: Env) -> None:
    rc, _, err = env.run(env.spec("work"), ["/bin/sh", "-c", "echo report > ~/Outbox/report.txt"])
    assert rc == 0, err
    assert (paths.desktop_outbox("work") / "report.txt").read_text() == "report\n"
    assert not (paths.shared_dir() / "report.txt").exists()


# -- customization ------------------------------------------------------------------------------


def _font_file() -> Path | None:
    for candidate in Path("/usr/share/fonts").rglob("*.ttf"):
        return candidate
    return None


@pytest.mark.security
def test_font_bound_into_one_desktop_only(env: Env) -> None:
    font = _font_file()
    if font is None or shutil.which("fc-list") is None:
        pytest.skip("fontconfig (fc-list) or any .ttf font is missing on this machine")
    fonts = env.root / "fonts"
    fonts.mkdir()
    shutil.copy(font, fonts / "ZionwmTestFont.ttf")
    rc, out, err = env.run(
        env.spec("design", fonts=(str(fonts),)), ["fc-list", "--format", "%{file}\\n"]
    )
    assert rc == 0, err
    assert "/run/zionwm/fonts/0/ZionwmTestFont.ttf" in out.splitlines()
    rc, out, err = env.run(env.spec("plain"), ["fc-list", "--format", "%{file}\\n"])
    assert rc == 0, err
    assert "ZionwmTestFont" not in out
    assert str(font) in out.splitlines()  # the system fonts are still there


# -- supervision, placement hooks ----------------------------------------------------------------


def test_pidfd_poll_exit_callback_terminate_and_kill(env: Env) -> None:
    spec = env.spec("work")
    sb = env.launcher.launch(spec, [PYTHON, "-c", "import time; time.sleep(600)"])
    assert sb.poll() is None
    assert env.launcher.sandboxes("work") == [sb]
    inner = wait_for(sb.inner_init_pid, what="bwrap to report the sandbox's init pid")
    children = Path(f"/proc/{inner}/task/{inner}/children")
    wait_for(lambda: children.read_text().split(), what="the program to start under init")
    sb.terminate()
    readable, _, _ = select.select([sb.pidfd], [], [], 10)
    assert readable, "pidfd did not become readable after terminate()"
    rc = sb.poll()
    assert rc == 128 + signal.SIGTERM  # bwrap reports the program's death by SIGTERM
    # Before the program runs there is nobody to ask: terminate() kills.
    early = env.launcher.launch(spec, [PYTHON, "-c", "import time; time.sleep(600)"])
    early.terminate()
    early_rc = early.wait(10)
    assert early_rc in (-signal.SIGKILL, 128 + signal.SIGTERM)
    env.exits.remove((early, early_rc))
    assert env.exits == [(sb, rc)]
    assert env.launcher.running == {}
    wait_for(lambda: gone(inner), what="the sandbox init to be gone")

    sb2 = env.launcher.launch(spec, [PYTHON, "-c", "import time; time.sleep(600)"])
    inner2 = wait_for(sb2.inner_init_pid, what="the second sandbox's init pid")
    sb2.kill()
    assert sb2.wait(10) == -signal.SIGKILL
    wait_for(
        lambda: not Path(f"/proc/{inner2}").exists(),
        what="--die-with-parent to take the sandbox down",
    )
    assert env.exits[-1] == (sb2, -signal.SIGKILL)


def gone(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting for whoever adopted it to reap it."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat_line.rsplit(")", 1)[1].split()[0] == "Z"


def _cgroup2_root() -> Path | None:
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[2] == "cgroup2":
                return Path(fields[1])
    return None


def test_cgroup_hook_places_the_sandbox_before_exec(env: Env) -> None:
    root = _cgroup2_root()
    if root is None or not os.access(root, os.W_OK):
        pytest.skip("no writable cgroup2 hierarchy on this machine")
    cg = root / f"zionwm-sandbox-test-{os.getpid()}"
    cg.mkdir()
    try:
        launcher = Launcher(cgroup_procs=lambda desktop: [cg / "cgroup.procs"])
        sb = launcher.launch(env.spec("work"), [PYTHON, "-c", "import time; time.sleep(600)"])
        try:
            inner = wait_for(sb.inner_init_pid, what="init pid")
            procs = {int(p) for p in (cg / "cgroup.procs").read_text().split()}
            assert sb.pid in procs and inner in procs
        finally:
            sb.kill()
            sb.wait(10)
        wait_for(lambda: not (cg / "cgroup.procs").read_text().strip(), what="the cgroup to empty")
    finally:
        cg.rmdir()


def test_netns_hook_joins_the_namespace_and_default_is_loopback_only(env: Env) -> None:
    if shutil.which("ip") is None or os.getuid() != 0:
        pytest.skip("joining a named netns needs iproute2 and root here")
    name = f"zionwm-sbx-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        ns_path = Path("/run/netns") / name
        ns_ino = os.stat(ns_path).st_ino
        launcher = Launcher(netns_path=lambda desktop: ns_path if desktop == "net" else None)
        rc, out, err = _run_with(launcher, env.spec("net"), ["readlink", "/proc/self/ns/net"])
        assert rc == 0, err
        assert out.strip() == f"net:[{ns_ino}]"
        rc, out, _ = _run_with(launcher, env.spec("nonet"), ["readlink", "/proc/self/ns/net"])
        host_ino = os.stat("/proc/self/ns/net").st_ino
        assert out.strip() not in (f"net:[{ns_ino}]", f"net:[{host_ino}]")
        rc, out, _ = _run_with(launcher, env.spec("nonet"), ["cat", "/proc/net/dev"])
        ifaces = {line.split(":")[0].strip() for line in out.splitlines()[2:]}
        assert ifaces == {"lo"}
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def _run_with(launcher: Launcher, spec: DesktopSpec, argv: list[str]) -> tuple[int, str, str]:
    r_out, w_out = os.pipe()
    try:
        sb = launcher.launch(spec, argv, stdout=w_out, stderr=subprocess.DEVNULL)
    finally:
        os.close(w_out)
    with os.fdopen(r_out) as f:
        out = f.read()
    return sb.wait(10), out, ""


@pytest.mark.security
def test_bind_sources_are_not_left_open_inside(env: Env) -> None:
    # An fd to the host Shared dir inside would let openat() write around the read-only mount.
    rc, out, err = env.run(env.spec("web"), ["/bin/sh", "-c", "ls /proc/self/fd"])
    assert rc == 0, err
    assert sorted(int(x) for x in out.split()) == [0, 1, 2, 3]  # 3: ls's own directory fd


# -- a real client --------------------------------------------------------------------------------


def _start_weston(runtime: Path, socket_name: str, log: Path) -> subprocess.Popen[bytes]:
    runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(runtime, 0o700)
    proc = subprocess.Popen(
        [
            "weston",
            "--backend=headless-backend.so",
            f"--socket={socket_name}",
            "--idle-time=0",
            f"--log={log}",
        ],
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sock = runtime / socket_name
    wait_for(
        lambda: (sock.exists() and stat.S_ISSOCK(sock.stat().st_mode)) or proc.poll() is not None,
        what="weston",
    )
    if proc.poll() is not None:
        pytest.fail(f"weston exited: {log.read_text() if log.exists() else ''}")
    return proc


@pytest.mark.security
def test_real_client_draws_on_its_desktop_socket_and_host_socket_is_invisible(env: Env) -> None:
    if shutil.which("weston") is None or shutil.which("weston-simple-shm") is None:
        pytest.skip("weston / weston-simple-shm are not installed")
    desktop_sock_dir = paths.desktop_socket_dir("work")
    desktop_sock_dir.parent.mkdir(parents=True, exist_ok=True)
    host = _start_weston(env.runtime, "wayland-host", env.root / "weston-host.log")
    desk = _start_weston(desktop_sock_dir, "wayland-0", env.root / "weston-desktop.log")
    try:
        spec = env.spec("work")
        r = env.probe(
            spec,
            f"connect:{env.runtime / 'wayland-host'}",
            f"list:/run/user/{os.getuid()}",
            f"connect:/run/user/{os.getuid()}/wayland-0",
        )
        assert errno_of(r, f"connect:{env.runtime / 'wayland-host'}") == "ENOENT"
        assert r[f"list:/run/user/{os.getuid()}"]["out"] == ["wayland-0"]
        assert r[f"connect:/run/user/{os.getuid()}/wayland-0"]["out"] == "connected"

        err_path = env.root / "simple-shm.err"
        with open(err_path, "wb") as fe:
            sb = env.launcher.launch(
                spec,
                ["weston-simple-shm"],
                stderr=fe.fileno(),
                extra_env={"WAYLAND_DEBUG": "client"},
            )

        def presented() -> bool:
            text = err_path.read_text(errors="replace")
            commit = text.find("wl_surface@")
            return (
                commit >= 0
                and ".commit()" in text
                and "wl_callback@" in text
                and ".done(" in text[commit:]
            )

        try:
            wait_for(
                lambda: presented() or sb.poll() is not None, timeout=20, what="a presented frame"
            )
            assert sb.poll() is None, err_path.read_text()[-2000:]
            assert presented()
        finally:
            sb.terminate()
            sb.wait(10)
    finally:
        for proc in (host, desk):
            proc.terminate()
            proc.wait(10)


def test_spec_replace_keeps_launches_independent(env: Env) -> None:
    # Two launches of one desktop share its home (persistent), each in its own namespaces.
    spec = env.spec("work")
    rc1, out1, _ = env.run(
        spec, ["/bin/sh", "-c", "echo one > ~/shared-by-launches; readlink /proc/self/ns/pid"]
    )
    rc2, out2, _ = env.run(
        replace(spec), ["/bin/sh", "-c", "cat ~/shared-by-launches; readlink /proc/self/ns/pid"]
    )
    assert rc1 == rc2 == 0
    assert out2.splitlines()[0] == "one"
    assert out1.splitlines()[-1] != out2.splitlines()[-1]


# -- devices ------------------------------------------------------------------------------------

# What bwrap's --dev creates; nothing of the host's /dev beyond it.
MINIMAL_DEV = {"console", "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm"}
MINIMAL_DEV |= {"stderr", "stdin", "stdout", "tty", "urandom", "zero"}


@pytest.mark.security
def test_no_host_devices_without_grants(env: Env) -> None:
    r = env.probe(env.spec("web"), "list:/dev", "exists:/dev/dri", "exists:/dev/snd")
    assert set(r["list:/dev"]["out"]) <= MINIMAL_DEV, r["list:/dev"]["out"]
    assert r["exists:/dev/dri"]["out"] is False and r["exists:/dev/snd"]["out"] is False


def test_gpu_grant_binds_the_hosts_render_nodes_only(env: Env) -> None:
    dri = Path("/dev/dri")
    nodes = sorted(p.name for p in dri.glob("renderD*") if p.is_char_device())
    if not nodes:
        pytest.skip("this machine has no render node /dev/dri/renderD* (no GPU)")
    r = env.probe(env.spec("gaming", devices=Devices(gpu=True)), "list:/dev/dri")
    assert r["list:/dev/dri"]["out"] == nodes  # no card*: display control stays with zionwm


def test_camera_grant_binds_video_nodes(env: Env) -> None:
    nodes = sorted(p.name for p in Path("/dev").glob("video*"))
    if not nodes:
        pytest.skip("this machine has no /dev/video* nodes (no camera)")
    r = env.probe(env.spec("call", devices=Devices(camera=True)), "list:/dev")
    assert set(nodes) <= set(r["list:/dev"]["out"])


@pytest.mark.security
def test_audio_grant_binds_the_desktops_relay_never_the_host_sound_sockets(env: Env) -> None:
    # Listening sockets where PipeWire and PulseAudio put theirs; the launcher finds them in
    # the launching environment's XDG_RUNTIME_DIR, as it would find the real servers'. The
    # sandbox must reach neither: pulse/native inside is the desktop's own relay
    # (isolation/sound.py; tests/system/test_sound.py plays and records through it).
    if shutil.which("pulseaudio") is None:
        pytest.fail(
            "pulseaudio (the sound relay) is not installed"
            " (scripts/setup-system.sh installs it: a broken set-up)"
        )
    (env.runtime / "pulse").mkdir()
    servers = [
        listening_unix(env.runtime / "pipewire-0"),
        listening_unix(env.runtime / "pulse" / "native"),
    ]
    try:
        launcher = Launcher(environ={**os.environ, "XDG_RUNTIME_DIR": str(env.runtime)})
        env.launcher = launcher
        run = f"/run/user/{os.getuid()}"
        probes = (f"connect:{run}/pipewire-0", f"connect:{run}/pulse/native")
        music = env.spec("music", devices=Devices(audio=True, microphone=True))
        granted = env.probe(music, *probes)
        assert errno_of(granted, probes[0]) == "ENOENT", granted
        assert granted[probes[1]]["out"] == "connected", granted
        relay = launcher.sound.status()["relays"]["music"]  # type: ignore[index]
        assert relay["alive"], relay
        pulse_host = servers[1]
        pulse_host.setblocking(False)
        accepted = []
        with contextlib.suppress(BlockingIOError):
            while True:
                accepted.append(pulse_host.accept()[0])
        # whatever reached the host's socket came from the relay, never from the sandbox
        for conn in accepted:
            cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid = struct.unpack("3i", cred)[0]
            assert "pulseaudio" in Path(f"/proc/{pid}/comm").read_text(), pid
            conn.close()
        denied = env.probe(env.spec("web"), *probes)
        assert all(errno_of(denied, p) == "ENOENT" for p in probes)
    finally:
        env.launcher.sound.stop()
        for s in servers:
            s.close()


def test_userns_hook_enters_a_user_owned_network_namespace(env: Env) -> None:
    """The unprivileged `full` network: a namespace owned by a user namespace of its own."""
    if shutil.which("unshare") is None:
        pytest.fail(
            "util-linux unshare is not installed"
            " (scripts/setup-system.sh installs it: a broken set-up)"
        )
    holder = subprocess.Popen(["unshare", "--user", "--map-root-user", "--net", "sleep", "600"])
    try:
        own_net = os.readlink("/proc/self/ns/net")
        net_link = Path(f"/proc/{holder.pid}/ns/net")
        wait_for(lambda: os.readlink(net_link) != own_net, what="the holder's namespaces")
        launcher = Launcher(
            netns_path=lambda d: net_link,
            userns_path=lambda d: Path(f"/proc/{holder.pid}/ns/user"),
        )
        rc, out, _ = _run_with(launcher, env.spec("full"), ["readlink", "/proc/self/ns/net"])
        assert rc == 0
        assert out.strip() == os.readlink(net_link)
    finally:
        holder.kill()
        holder.wait(10)


UNPRIVILEGED_SCRIPT = r"""
import json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
root = sys.argv[2]
os.environ.update(XDG_DATA_HOME=root + "/data", XDG_RUNTIME_DIR=root + "/run", HOME=root)
from zionwm.isolation.launcher import Launcher
from zionwm.isolation.spec import DesktopSpec
spec = DesktopSpec(name="work", colour=(1.0, 1.0, 1.0, 1.0))
script = (
    'id -u; grep CapEff /proc/self/status; echo hi > ~/f && cat ~/f; '
    'touch ~/Shared/x 2>&1 || true; ps -eo comm= | sort -u | tr "\\n" " "'
)
r, w = os.pipe()
sb = Launcher().launch(spec, ["/bin/sh", "-c", script], stdout=w, stderr=w)
os.close(w)
out = os.fdopen(r).read()
print(json.dumps({"rc": sb.wait(30), "out": out}))
"""


@contextmanager
def unprivileged_world() -> Iterator[tuple[pwd.struct_passwd, Path, Path]]:
    """(nobody, a directory nobody owns, a copy of the package nobody can import) for a
    launcher run as an unprivileged user, as production runs it; removed afterwards."""
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and util-linux setpriv to switch to an unprivileged user")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this machine")
    world = Path(tempfile.mkdtemp(prefix="zionwm-unpriv-"))
    try:
        # the checkout may be in a home directory 'nobody' cannot enter: import a copy
        lib = readable_package(world / "pkg")
        os.chown(world, nobody.pw_uid, nobody.pw_gid)
        yield nobody, world, lib
    finally:
        shutil.rmtree(world, ignore_errors=True)


def run_unprivileged(
    user: pwd.struct_passwd, world: Path, script: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run a Python `script` as `user` with no capabilities and `world`/run as its private
    runtime directory (made first); `args` are its sys.argv[1:]."""
    run = world / "run"
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--clear-groups",
            "--inh-caps=-all",
            PYTHON,
            "-c",
            f"import os; os.makedirs({str(run)!r}, mode=0o700); exec({script!r})",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.security
def test_unprivileged_launcher_confines_the_same_way(tmp_path: Path) -> None:
    """Production runs the compositor as a normal user: run the launcher as `nobody`."""
    if not os.path.exists("/usr/bin/ps"):
        pytest.fail("procps (/usr/bin/ps) is not installed (scripts/setup-system.sh installs it)")
    with unprivileged_world() as (nobody, world, lib):
        r = run_unprivileged(nobody, world, UNPRIVILEGED_SCRIPT, str(lib), str(world))
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout.strip().splitlines()[-1])
        lines = result["out"].splitlines()
        assert result["rc"] == 0, result
        assert lines[0] == str(nobody.pw_uid)
        assert lines[1].split()[1] == "0000000000000000"
        assert lines[2] == "hi"
        assert "Read-only file system" in lines[3]
        seen = set(lines[4].split())  # the pipeline's other members may not exist yet
        assert {"bwrap", "ps"} <= seen <= {"bwrap", "ps", "sh", "sort", "tr"}, seen


def test_a_failed_cgroup_placement_starts_nothing(env: Env) -> None:
    # /dev/full opens for writing and refuses every write, as a cgroup that cannot take the
    # process does: the launch must fail whole, before anything of the sandbox runs.
    launcher = Launcher(cgroup_procs=lambda desktop: [Path("/dev/full")])
    with pytest.raises(LaunchError, match="cannot start"):
        launcher.launch(env.spec("work"), ["/bin/true"])
    assert launcher.sandboxes() == []


@pytest.mark.security
def test_placement_fds_are_not_left_open_inside(env: Env) -> None:
    # The cgroup.procs and namespace fds the launcher opens for the placement must be closed
    # before bwrap: an open cgroup.procs would let a program move pids around its cgroup.
    if shutil.which("ip") is None or os.getuid() != 0:
        pytest.skip("a named network namespace needs iproute2 and root here")
    root = _cgroup2_root()
    if root is None or not os.access(root, os.W_OK):
        pytest.skip("no writable cgroup2 hierarchy on this machine")
    cg = root / f"zionwm-sandbox-fds-{os.getpid()}"
    cg.mkdir()
    name = f"zionwm-fds-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        launcher = Launcher(
            cgroup_procs=lambda desktop: [cg / "cgroup.procs"],
            netns_path=lambda desktop: Path("/run/netns") / name,
        )
        rc, out, _ = _run_with(launcher, env.spec("net"), ["/bin/sh", "-c", "ls /proc/self/fd"])
        assert rc == 0
        assert sorted(int(x) for x in out.split()) == [0, 1, 2, 3]  # 3: ls's own directory fd
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)
        wait_for(lambda: not (cg / "cgroup.procs").read_text().strip(), what="the cgroup to empty")
        cg.rmdir()
