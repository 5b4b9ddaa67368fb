"""The login session: the wayland-sessions entry, `zionwm-session`, and `make install`.

`zionwm-session` is run for real: with stand-in zionwm programs for its restart logic (a
crash loop, a clean exit, a signal), and as an unprivileged user created here, starting the
real compositor headless, which serves a client and freezes a desktop in a cgroup2 group
handed to that user the way systemd delegates one. No systemd user manager runs on this
machine kind, so its branch runs against small stand-ins for `systemctl`, `systemd-run` and
`dbus-update-activation-environment` that record how they were called.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import json
import os
import pwd
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.harness import VENV_BIN, require, wait_for
from zionwm.isolation.cgroups.fs import rmdir_tree as _rmdir_tree
from zionwm.isolation.cgroups.layout import detect_layout

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SESSION = PROJECT_ROOT / "session" / "zionwm-session"
DESKTOP_ENTRY = PROJECT_ROOT / "session" / "zionwm.desktop"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USER_CONFIG = """\
from zionwm.config import desktop
desktop("personal", colour="#3b82f6")
desktop("work", colour="#22c55e")
"""


def _load_session_module() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("zionwm_session", str(SESSION))
    spec = importlib.util.spec_from_loader("zionwm_session", loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def _session_env(root: Path, **extra: str) -> dict[str, str]:
    """A clean environment: a private runtime dir (so no real systemd user manager or
    session bus is ever reached), the log in a file under `root`."""
    run = root / "run"
    run.mkdir(mode=0o700, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", SYSTEM_PATH),
        "HOME": str(root),
        "XDG_RUNTIME_DIR": str(run),
        "XDG_STATE_HOME": str(root / "state"),
        "ZIONWM_SESSION_LOG": "file",
    }
    env.update(extra)
    return env


def _log_text(root: Path) -> str:
    return (root / "state" / "zionwm" / "log").read_text(errors="replace")


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


# ---------------------------------------------------------------------------------------
# The session entry and the pure parts of the session program
# ---------------------------------------------------------------------------------------


def test_desktop_entry_is_valid() -> None:
    tool = require("desktop-file-validate")
    done = subprocess.run([tool, str(DESKTOP_ENTRY)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "", done.stdout  # no warnings either
    text = DESKTOP_ENTRY.read_text()
    assert "\nExec=zionwm-session\n" in text


def test_crash_guard_counts_failures_in_a_sliding_window() -> None:
    mod = _load_session_module()
    guard = mod.CrashGuard(3, 10.0)
    assert not guard.failed(0.0)
    assert not guard.failed(5.0)
    assert not guard.failed(10.5)  # the failure at 0 fell out of the window
    assert guard.failed(12.0)  # 5, 10.5, 12: three within 10 s
    assert mod.describe_status(-signal.SIGSEGV) == "killed by SIGSEGV"
    assert mod.describe_status(3) == "exit status 3"


def test_scope_argv_delegates_and_passes_arguments_through() -> None:
    mod = _load_session_module()
    assert mod.zionwm_argv(["zionwm"], ["--headless"], None) == ["zionwm", "--headless"]
    argv = mod.zionwm_argv(["/usr/bin/zionwm"], ["--headless", "--outputs", "2"], "zionwm-7-1")
    assert argv[:4] == ["systemd-run", "--user", "--scope", "--quiet"]
    assert argv[argv.index("-p") + 1] == "Delegate=yes"
    assert "--unit=zionwm-7-1" in argv
    assert argv[argv.index("--") + 1 :] == ["/usr/bin/zionwm", "--headless", "--outputs", "2"]


# ---------------------------------------------------------------------------------------
# Restarts, with stand-in zionwm programs
# ---------------------------------------------------------------------------------------


def test_crash_loop_stops_after_the_configured_failures(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    fake = _script(
        tmp_path / "fake-zionwm",
        f'#!/bin/sh\necho "fake zionwm cannot open the display ($*)" >&2\n'
        f"echo run >> {shlex.quote(str(runs))}\nexit 1\n",
    )
    env = _session_env(
        tmp_path, ZIONWM_BIN=str(fake), ZIONWM_CRASH_MAX="3", ZIONWM_CRASH_WINDOW="30"
    )
    done = subprocess.run(
        [str(SESSION), "--headless"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert runs.read_text().count("run") == 3
    for text in (done.stderr, _log_text(tmp_path)):
        assert "zionwm failed 3 times within 30 seconds" in text
        assert "stops restarting" in text
        # the message quotes what zionwm said, and the arguments reached it
        assert "fake zionwm cannot open the display (--headless)" in text
        assert str(tmp_path / "state" / "zionwm" / "log") in text


def test_failures_further_apart_than_the_window_keep_restarting(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # Runs 1-3 live 0.3 s and fail; run 4 exits cleanly. With 2 failures allowed per
    # 0.15 s the guard never trips, so the session ends normally after the 4th run.
    fake = _script(
        tmp_path / "fake-zionwm",
        f"#!/bin/sh\necho run >> {shlex.quote(str(runs))}\n"
        f'n=$(wc -l < {shlex.quote(str(runs))})\n[ "$n" -ge 4 ] && exit 0\n'
        "sleep 0.3\nexit 1\n",
    )
    env = _session_env(
        tmp_path, ZIONWM_BIN=str(fake), ZIONWM_CRASH_MAX="2", ZIONWM_CRASH_WINDOW="0.15"
    )
    done = subprocess.run(
        [str(SESSION)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert runs.read_text().count("run") == 4
    assert done.stderr.count("restarting it") == 3
    assert "exited cleanly" in done.stderr


def test_clean_exit_ends_the_session_without_restart(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    fake = _script(
        tmp_path / "fake-zionwm", f"#!/bin/sh\necho run >> {shlex.quote(str(runs))}\nexit 0\n"
    )
    env = _session_env(tmp_path, ZIONWM_BIN=str(fake))
    done = subprocess.run(
        [str(SESSION)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert runs.read_text().count("run") == 1
    assert "exited cleanly; the session ends" in _log_text(tmp_path)


def test_log_rotates_by_size_and_keeps_n_files(tmp_path: Path) -> None:
    fake = _script(
        tmp_path / "fake-zionwm",
        "#!/bin/sh\ni=0\nwhile [ $i -lt 60 ]; do\n"
        '  echo "line $i: $(printf "%080d" 0)"\n  i=$((i + 1))\ndone\nexit 0\n',
    )
    env = _session_env(
        tmp_path,
        ZIONWM_BIN=str(fake),
        ZIONWM_SESSION_LOG_MAX_BYTES="1000",
        ZIONWM_SESSION_LOG_KEEP="2",
    )
    logdir = tmp_path / "state" / "zionwm"
    logdir.mkdir(parents=True)
    # an earlier session left a log close to the bound: appending must not overshoot it
    (logdir / "log").write_text("line from an earlier session\n" * 30)
    done = subprocess.run(
        [str(SESSION)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in logdir.iterdir()) == ["log", "log.1", "log.2"]
    for p in logdir.iterdir():
        assert 0 < p.stat().st_size <= 1000, (p, p.stat().st_size)
    # the newest output is in the current file, older output in .1 and .2, lines whole
    assert "exited cleanly" in (logdir / "log").read_text()
    assert "line 59: " in (logdir / "log").read_text() + (logdir / "log.1").read_text()
    for p in logdir.iterdir():
        for line in p.read_text().splitlines():
            assert line.startswith(("line ", "20")), line  # "20..": the session's timestamps


FAKE_COMPOSITOR = """\
#!{python}
import json, os, signal, sys
record = os.environ["FAKE_RECORD"]
def note(obj):
    with open(record, "a") as f:
        f.write(json.dumps(obj) + "\\n")
def on_term(*_):
    note("TERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
names = ("XDG_CURRENT_DESKTOP", "XDG_SESSION_TYPE", "XDG_SESSION_DESKTOP", "WAYLAND_DISPLAY")
note({{"pid": os.getpid(), "argv": sys.argv[1:],
      "env": {{k: os.environ.get(k) for k in names}}}})
print("fake compositor up", flush=True)
fd = int(os.environ["ZIONWM_READY_FD"])
os.write(fd, b"wayland-fake\\n")
os.close(fd)
while True:
    signal.pause()
"""


def _read_ready(rfd: int, timeout: float) -> str:
    with os.fdopen(rfd) as ready:
        sel = selectors.DefaultSelector()
        sel.register(ready, selectors.EVENT_READ)
        events = sel.select(timeout)
        sel.close()
        return ready.readline().strip() if events else ""


def _start_session(
    argv: list[str], env: dict[str, str], log: Path, **popen: Any
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a session with ZIONWM_READY_FD; return it and the socket name it reported."""
    rfd, wfd = os.pipe()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, env={**env, "ZIONWM_READY_FD": str(wfd)}, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, pass_fds=(wfd,), **popen,
        )  # fmt: skip
    os.close(wfd)
    name = _read_ready(rfd, 60)
    if not name:
        _stop(proc)
        raise AssertionError(f"the session reported no readiness:\n{log.read_text()}")
    return proc, name


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("the session did not end on SIGTERM") from None
    return proc.returncode


def _records(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sigterm_ends_the_session_and_the_environment_reaches_zionwm(tmp_path: Path) -> None:
    record = tmp_path / "record"
    fake = _script(tmp_path / "fake-zionwm", FAKE_COMPOSITOR.format(python=sys.executable))
    env = _session_env(
        tmp_path, ZIONWM_BIN=str(fake), FAKE_RECORD=str(record), WAYLAND_DISPLAY="wayland-outer"
    )
    proc, name = _start_session(
        [str(SESSION), "--headless", "--size", "800x600"], env, tmp_path / "out"
    )
    assert name == "wayland-fake"
    assert _stop(proc) == 0
    started, term = _records(record)
    assert started["argv"] == ["--headless", "--size", "800x600"]
    assert started["env"] == {
        "XDG_CURRENT_DESKTOP": "zionwm",
        "XDG_SESSION_TYPE": "wayland",
        "XDG_SESSION_DESKTOP": "zionwm",
        "WAYLAND_DISPLAY": None,  # an outer display must not leak into the compositor
    }
    assert term == "TERM"
    log = _log_text(tmp_path)
    assert "fake compositor up" in log
    assert "got SIGTERM" in log and "the session ends" in log
    assert "restarting" not in log


def test_zionwm_does_not_outlive_a_killed_session(tmp_path: Path) -> None:
    record = tmp_path / "record"
    fake = _script(tmp_path / "fake-zionwm", FAKE_COMPOSITOR.format(python=sys.executable))
    env = _session_env(tmp_path, ZIONWM_BIN=str(fake), FAKE_RECORD=str(record))
    proc, _ = _start_session([str(SESSION)], env, tmp_path / "out")
    fake_pid = _records(record)[0]["pid"]
    try:
        proc.kill()  # no chance to forward anything: the kernel tells zionwm (PDEATHSIG)
        proc.wait()
        wait_for(lambda: _records(record)[-1] == "TERM", 10, "zionwm to get SIGTERM")
    finally:
        # if it survived (the test failed), end it, after checking the pid is still ours
        with contextlib.suppress(OSError):
            if str(fake).encode() in Path(f"/proc/{fake_pid}/cmdline").read_bytes():
                os.kill(fake_pid, signal.SIGKILL)


def test_systemd_user_manager_branch_with_stand_ins(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    q = shlex.quote(str(calls))
    # systemctl: a user manager that answers; systemd-run: records, then runs the command
    # in its own process as `--scope` does; dbus-update-activation-environment: records.
    _script(bindir / "systemctl", f'#!/bin/sh\necho "systemctl $*" >> {q}\nexit 0\n')
    _script(
        bindir / "systemd-run",
        f'#!/bin/sh\necho "systemd-run $*" >> {q}\n'
        'while [ $# -gt 0 ] && [ "$1" != -- ]; do shift; done\nshift\nexec "$@"\n',
    )
    _script(
        bindir / "dbus-update-activation-environment",
        f'#!/bin/sh\necho "dbus-update-activation-environment $*" >> {q}\nexit 0\n',
    )
    fake = _script(tmp_path / "fake-zionwm", FAKE_COMPOSITOR.format(python=sys.executable))
    env = _session_env(
        tmp_path,
        PATH=f"{bindir}:{os.environ.get('PATH', SYSTEM_PATH)}",
        ZIONWM_BIN=str(fake),
        FAKE_RECORD=str(tmp_path / "record"),
        DBUS_SESSION_BUS_ADDRESS="unix:path=/nonexistent/bus",
    )
    proc, name = _start_session([str(SESSION), "--headless"], env, tmp_path / "out")
    assert name == "wayland-fake"
    # WAYLAND_DISPLAY is exported once zionwm is ready, before readiness is passed on
    assert "import-environment WAYLAND_DISPLAY" in calls.read_text()
    assert _stop(proc) == 0
    lines = calls.read_text().splitlines()
    xdg = "XDG_CURRENT_DESKTOP XDG_SESSION_TYPE XDG_SESSION_DESKTOP"
    assert lines[0] == "systemctl --user show-environment"
    assert lines[1] == f"systemctl --user import-environment {xdg}"
    assert lines[2] == f"dbus-update-activation-environment --systemd {xdg}"
    run = lines[3].split()
    assert run[:5] == ["systemd-run", "--user", "--scope", "--quiet", "--collect"]
    assert "Delegate=yes" in run and f"--unit=zionwm-{proc.pid}-1" in run
    assert run[run.index("--") + 1 :] == [str(fake), "--headless"]
    assert lines[4] == f"systemctl --user import-environment WAYLAND_DISPLAY {xdg}"
    assert lines[5] == f"dbus-update-activation-environment --systemd WAYLAND_DISPLAY {xdg}"
    assert lines[6:] == ["systemctl --user unset-environment WAYLAND_DISPLAY"]
    assert _records(tmp_path / "record")[-1] == "TERM"


# ---------------------------------------------------------------------------------------
# The real compositor, as an unprivileged user
# ---------------------------------------------------------------------------------------


def _user_facility() -> str | None:
    if os.geteuid() != 0:
        return "not root: the test creates a user account"
    for tool in ("useradd", "userdel", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


@dataclass
class SessionUser:
    name: str
    uid: int
    gid: int
    root: Path  # world-traversable; home, runtime and config below it belong to the user
    zionwm: list[str] = field(default_factory=list)
    zionctl: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "home"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": SYSTEM_PATH,
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "XDG_RUNTIME_DIR": str(self.root / "run"),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            **self.extra_env,
            **extra,
        }

    def argv(self, *argv: str) -> list[str]:
        return [
            "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
            "--", *argv,
        ]  # fmt: skip

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*argv), env=self.env(), cwd=self.root, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.run(*self.zionctl, *args)
        assert done.returncode == 0, f"zionctl {' '.join(args)}: {done.stderr}{done.stdout}"
        return done

    def ctl_json(self, *args: str) -> Any:
        return json.loads(self.ctl(*args, "--json").stdout)


def _useradd(name: str, home: Path) -> None:
    argv = ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh",
            "--user-group", name]  # fmt: skip

    def added() -> bool:
        # another test may hold /etc/passwd's lock for a moment: retry within the deadline
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0 and "lock" not in done.stderr:
            raise AssertionError(f"useradd failed: {done.stderr}")
        return done.returncode == 0

    wait_for(added, 20, "useradd", interval=0.1)


def _user_pids(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
    return pids


def _user_can_run(user: SessionUser, python: str, pythonpath: str | None) -> str | None:
    """None if the user can run zionwm with `python`, else why not."""
    user.extra_env = {"PYTHONPATH": pythonpath} if pythonpath else {}
    probe = "import zionwm.compositor.server, zionwm.ctl"
    # exec through sh, as a login manager runs the session (setpriv's own exec is laxer)
    done = user.run("/bin/sh", "-c", 'exec "$0" -c "$1"', python, probe)
    if done.returncode == 0:
        user.zionwm = [python, "-m", "zionwm.cli"]
        user.zionctl = [python, "-m", "zionwm.ctl"]
        return None
    user.extra_env = {}
    return (done.stderr.strip().splitlines() or ["?"])[-1]


def _stage_install(root: Path) -> Path:
    """`make install` into a directory the user can read; returns its private python."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(
        [make, "-s", "-C", str(PROJECT_ROOT), f"DESTDIR={root / 'stage'}", "PREFIX=/usr",
         "install"], env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return root / "stage" / "usr" / "lib" / "zionwm" / "bin" / "python"


def _choose_interpreter(user: SessionUser) -> str | None:
    """How the user runs zionwm from this checkout; None when it can, else why not.

    In order: the venv's own interpreter; when the venv was made from an interpreter the
    user may not execute (pyenv under /root), the system Python of the same version with
    the venv's site-packages on PYTHONPATH (the compiled modules are built for this Python
    version's ABI, so they load in either); when the checkout itself is unreadable to
    others (a home directory), a `make install` staged in the user-readable test root.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system_py = f"/usr/bin/python{version}"
    paths = sysconfig.get_paths()
    checkout_path = os.pathsep.join(dict.fromkeys([paths["purelib"], paths["platlib"],
                                                   str(PROJECT_ROOT)]))  # fmt: skip
    why = [_user_can_run(user, str(VENV_BIN / "python"), None)]
    if why[-1] and Path(system_py).exists():
        why.append(_user_can_run(user, system_py, checkout_path))
    if why[-1]:
        staged = _stage_install(user.root)
        site = staged.parent.parent / "lib" / f"python{version}" / "site-packages"
        why.append(_user_can_run(user, str(staged), None))
        if why[-1] and Path(system_py).exists():
            why.append(_user_can_run(user, system_py, str(site)))
    if not why[-1]:
        return None
    return (
        "no Python environment for zionwm is usable by an unprivileged user here "
        f"({'; '.join(w for w in why if w)})"
    )


@pytest.fixture(scope="module")
def test_user() -> Iterator[SessionUser]:
    reason = _user_facility()
    if reason:
        pytest.skip(reason)
    name = f"zt{uuid.uuid4().hex[:10]}"
    root = Path(tempfile.mkdtemp(prefix="zionwm-session-"))
    root.chmod(0o755)
    _useradd(name, root / "home")
    try:
        pw = pwd.getpwnam(name)
        user = SessionUser(name, pw.pw_uid, pw.pw_gid, root)
        for d in (user.home, root / "run"):
            d.mkdir(mode=0o700)
            os.chown(d, user.uid, user.gid)
        config = root / "config.py"
        config.write_text(USER_CONFIG)
        config.chmod(0o644)
        # a byte-identical copy the user can read even when the checkout is private
        shutil.copy2(SESSION, root / "zionwm-session")
        (root / "zionwm-session").chmod(0o755)
        reason = _choose_interpreter(user)
        if reason:
            pytest.skip(reason)
        yield user
    finally:
        uid = pwd.getpwnam(name).pw_uid
        for pid in _user_pids(uid):  # only processes of the account this test created
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _user_pids(uid), 10, "the test user's processes to end")
        subprocess.run(["userdel", name], check=True, capture_output=True)
        shutil.rmtree(root)


def _session_argv(user: SessionUser) -> list[str]:
    assert (user.root / "zionwm-session").read_bytes() == SESSION.read_bytes()
    return user.argv(
        str(user.root / "zionwm-session"), "--headless", "--config", str(user.root / "config.py")
    )


def _session_env_for(user: SessionUser) -> dict[str, str]:
    return user.env(
        ZIONWM_BIN=shlex.join(user.zionwm),
        ZIONWM_SESSION_LOG="file",
        ZIONWM_INSTANCE=f"s{os.getpid() % 10000}",
        WLR_RENDERER="pixman",
        WLR_LIBINPUT_NO_DEVICES="1",
        WLR_BACKENDS="headless",
    )


def _compositor_pid(user: SessionUser) -> int:
    return int(user.ctl_json("status")["pid"])


def _launch_client(user: SessionUser, desktop: str) -> dict[str, Any]:
    require("weston-simple-shm")
    user.ctl("launch", desktop, "--", "weston-simple-shm")

    def mapped() -> list[dict[str, Any]]:
        return [w for w in user.ctl_json("windows") if w["desktop"] == desktop]

    return wait_for(mapped, 20, f"weston-simple-shm on {desktop}")[0]


def test_session_as_a_user_starts_zionwm_that_reports_cgroups_and_serves(
    test_user: SessionUser,
) -> None:
    user = test_user
    proc, name = _start_session(
        _session_argv(user), _session_env_for(user), user.root / "session-out"
    )
    try:
        assert name.startswith("wayland-")
        pid = _compositor_pid(user)
        assert Path(f"/proc/{pid}").stat().st_uid == user.uid
        environ = dict(
            kv.split("=", 1)
            for kv in Path(f"/proc/{pid}/environ").read_text().split("\0")
            if "=" in kv
        )
        assert environ["XDG_CURRENT_DESKTOP"] == "zionwm"
        assert environ["XDG_SESSION_TYPE"] == "wayland"
        assert environ["XDG_SESSION_DESKTOP"] == "zionwm"
        # Nothing delegated to this user: freezing is off, and the status says what to do.
        cg = user.ctl_json("status")["cgroups"]
        assert cg["can_freeze"] is False
        problems = "\n".join(cg["problems"])
        assert f"uid {user.uid}" in problems
        assert "systemd-run --user --scope -p Delegate=yes" in problems
        window = _launch_client(user, "work")
        assert window["app_id"] == "org.freedesktop.weston.simple-shm"
    finally:
        code = _stop(proc)
    assert code == 0
    log = (user.home / ".local" / "state" / "zionwm" / "log").read_text()
    assert "no systemd user manager: starting zionwm directly" in log
    assert "cgroups: " in log and "zionwm ready" in log
    assert "Traceback" not in log, log[-3000:]


@pytest.fixture
def delegated_group(test_user: SessionUser) -> Iterator[Path]:
    """A cgroup2 group handed to the test user as systemd's Delegate=yes does."""
    layout = detect_layout(
        Path("/proc/self/cgroup").read_text(), Path("/proc/self/mountinfo").read_text()
    )
    if layout.unified is None or layout.unified.own_dir is None:
        pytest.skip("no cgroup2 hierarchy mounted: delegation is a cgroup2 feature")
    group = layout.unified.own_dir / f"zionwm-session-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
    except OSError as e:
        pytest.skip(f"cannot create a cgroup2 group in {group.parent}: {e.strerror}")
    try:
        for p in (
            group,
            *(group / f for f in ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control")),
        ):
            os.chown(p, test_user.uid, test_user.gid)
        yield group
    finally:
        if (group / "cgroup.kill").exists():
            (group / "cgroup.kill").write_text("1")
        wait_for(lambda: "populated 0" in (group / "cgroup.events").read_text(), 10,
                 "the delegated group to empty")  # fmt: skip
        assert _rmdir_tree(group) == []


def test_session_in_a_delegated_group_freezes_a_desktop_as_the_user(
    test_user: SessionUser, delegated_group: Path
) -> None:
    user = test_user
    available = set((delegated_group / "cgroup.controllers").read_text().split())

    def enter_group() -> None:
        # runs as root just before setpriv: the whole session starts inside the group
        (delegated_group / "cgroup.procs").write_text("0")

    proc, _ = _start_session(
        _session_argv(user), _session_env_for(user), user.root / "session-out",
        preexec_fn=enter_group,
    )  # fmt: skip
    try:
        cg = user.ctl_json("status")["cgroups"]
        assert cg["base_paths"].get("unified") == str(delegated_group), cg
        assert cg["can_freeze"] is True and cg["freeze_method"] == "cgroup2", cg
        # Limits come from the controllers the delegated group has: none on a hybrid host
        # (v1 controllers stay root's, and the status says so).
        assert set(cg["can_limit"]) == available & {"cpu", "memory", "pids", "cpuset"}, cg
        window = _launch_client(user, "work")
        assert window["desktop"] == "work"

        user.ctl("freeze", "work")

        def work() -> dict[str, Any]:
            return {d["name"]: d for d in user.ctl_json("desktops")}["work"]

        wait_for(lambda: work()["frozen"] is True, 10, "work to show as frozen")
        groups = [p for p in delegated_group.rglob("work") if p.is_dir()]
        assert len(groups) == 1, groups
        assert "frozen 1" in (groups[0] / "cgroup.events").read_text()
        members = (groups[0] / "cgroup.procs").read_text().split()
        assert members, "the client is not in work's cgroup"
        for pid in members:
            assert Path(f"/proc/{pid}").stat().st_uid == user.uid
        assert work()["cgroup"]["frozen"] is True

        user.ctl("thaw", "work")
        wait_for(lambda: work()["frozen"] is False, 10, "work to thaw")
        assert "frozen 0" in (groups[0] / "cgroup.events").read_text()
    finally:
        code = _stop(proc)
    assert code == 0


# ---------------------------------------------------------------------------------------
# make install / make uninstall
# ---------------------------------------------------------------------------------------


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _run_installed_compositor(python: Path, home: Path) -> None:
    """The installed environment starts the compositor headless and answers zionctl."""
    run = home / "run"
    run.mkdir(parents=True, mode=0o700)
    env = {
        "PATH": SYSTEM_PATH, "HOME": str(home), "XDG_RUNTIME_DIR": str(run),
        "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"), "WLR_RENDERER": "pixman",
        "WLR_LIBINPUT_NO_DEVICES": "1", "WLR_BACKENDS": "headless",
        "ZIONWM_INSTANCE": f"i{os.getpid() % 10000}",
    }  # fmt: skip
    log = home / "zionwm.log"
    rfd, wfd = os.pipe()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(python), "-I", "-m", "zionwm.cli", "--headless"],
            env={**env, "ZIONWM_READY_FD": str(wfd)}, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, pass_fds=(wfd,),
        )  # fmt: skip
    os.close(wfd)
    try:
        assert _read_ready(rfd, 60), f"installed zionwm did not start:\n{log.read_text()}"
        # first start wrote the default config for this (empty) home
        assert (home / "config" / "zionwm" / "config.py").is_file()
        status = subprocess.run(
            [str(python), "-I", "-m", "zionwm.ctl", "status", "--json"], env=env,
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["pid"] == proc.pid
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()[-3000:]


def test_make_install_then_uninstall_leaves_nothing(tmp_path: Path) -> None:
    make = require("make")
    # make setup (which make test runs first) builds it: its absence is a failure here
    native = PROJECT_ROOT / "zionwm" / "compositor" / "native"
    assert list(native.glob("_zionwm_native*.so")), "the native module was not built"
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "usr" / "share" / "applications").mkdir(parents=True)  # someone else's
    before = _tree(stage)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    args = [make, "-s", "-C", str(PROJECT_ROOT), f"DESTDIR={stage}", "PREFIX=/usr"]

    done = subprocess.run([*args, "install"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    usr = stage / "usr"
    for cmd in ("zionwm", "zionctl", "zionwm-quarantined", "zionwm-session", "zionwm-manager"):
        path = usr / "bin" / cmd
        assert os.access(path, os.X_OK), path
        # no file content names the staging directory: it must work once copied to /
        assert path.read_text().startswith("#!/usr/lib/zionwm/bin/python -I\n"), cmd
    entry = usr / "share" / "wayland-sessions" / "zionwm.desktop"
    assert "\nExec=/usr/bin/zionwm-session\n" in entry.read_text()
    validate = shutil.which("desktop-file-validate")
    if validate:
        check = subprocess.run([validate, str(entry)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout
    manager = usr / "share" / "applications" / "org.zionwm.Manager.desktop"
    assert "\nExec=/usr/bin/zionwm-manager\n" in manager.read_text()
    assert (usr / "share/icons/hicolor/scalable/apps/org.zionwm.Manager.svg").is_file()
    if validate:
        check = subprocess.run([validate, str(manager)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
    template = usr / "share" / "zionwm" / "config.py"
    assert template.read_bytes() == (PROJECT_ROOT / "zionwm" / "default_config.py").read_bytes()
    staged_text = [
        p for p in usr.rglob("*")
        if p.is_file() and p.suffix in ("", ".py", ".cfg", ".desktop")
        and str(stage).encode() in p.read_bytes()
    ]  # fmt: skip
    assert staged_text == []

    # The private environment runs from where it is (it finds itself through pyvenv.cfg):
    # every zionwm module imports, the native module included, and the template checks.
    python = usr / "lib" / "zionwm" / "bin" / "python"
    imports = (
        "import importlib, pkgutil, sys, zionwm\n"
        "bad = []\n"
        "for m in pkgutil.walk_packages(zionwm.__path__, 'zionwm.'):\n"
        "    if m.name == 'zionwm.default_config':\n"
        "        continue  # a config file: it only runs inside a config load\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except Exception as e:\n"
        "        bad.append(f'{m.name}: {e!r}')\n"
        "import zionwm.compositor.native._zionwm_native\n"
        "print(sys.prefix)\n"
        "print('\\n'.join(bad))\n"
    )
    clean = {"PATH": SYSTEM_PATH, "HOME": str(tmp_path)}
    ran = subprocess.run([str(python), "-I", "-c", imports], env=clean, capture_output=True,
                         text=True, timeout=120, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    prefix, *bad = ran.stdout.splitlines()
    assert prefix == str(usr / "lib" / "zionwm")
    assert [b for b in bad if b] == []
    checked = subprocess.run([str(python), "-I", "-m", "zionwm.cli", "--check-config",
                              str(template)], env=clean, capture_output=True, text=True,
                             timeout=60, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    _run_installed_compositor(python, tmp_path / "home")

    done = subprocess.run([*args, "uninstall"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert _tree(stage) == before
