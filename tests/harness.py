"""Drive a real zionwm the way a person would: start it headless, run real clients on its
sockets, read the screen with grim, type with wtype, ask it things with zionctl.

Everything waits for a condition with a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

VENV_BIN = Path(sys.executable).parent
_instances = __import__("itertools").count()
T = TypeVar("T")


class WaitTimeout(AssertionError):
    pass


def wait_for(
    cond: Callable[[], T], timeout: float = 10.0, what: str = "condition", interval: float = 0.02
) -> T:
    """Poll `cond` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = cond()
            if value:
                return value
        except Exception as e:  # the condition may raise until it holds
            last_exc = e
        if time.monotonic() > deadline:
            raise WaitTimeout(
                f"timed out after {timeout}s waiting for {what}"
                + (f" (last error: {last_exc})" if last_exc else "")
            )
        time.sleep(interval)


def processes_with(*needles: str) -> list[int]:
    """Pids of processes whose command line contains every one of `needles`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if all(n.encode() in cmd for n in needles):
                found.append(int(entry.name))
    return found


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        import pytest

        pytest.skip(f"{tool} is not installed on this machine")
    return path


def sandbox_missing() -> str | None:
    """Why this machine cannot build bubblewrap sandboxes, or None: bwrap is missing, or it
    cannot create the namespaces every desktop's sandbox needs."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    r = subprocess.run(
        ["bwrap", "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "--", "/usr/bin/true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        return f"bwrap cannot create namespaces here: {r.stderr.strip()}"
    return None


def overlay_missing() -> str | None:
    """Why this machine cannot mount a writable /usr layer (fuse-overlayfs), or None."""
    if shutil.which("fuse-overlayfs") is None:
        return "fuse-overlayfs is not installed"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (no FUSE in this kernel)"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as exc:
        return f"/dev/fuse cannot be opened: {exc}"
    return None


def require_overlay() -> None:
    """Fail when setup did not install fuse-overlayfs (a broken set-up); skip, naming the
    facility, when the kernel has no usable FUSE."""
    import pytest

    from tests.security import lacks

    why = overlay_missing()
    if why is None:
        return
    if "not installed" in why:
        pytest.fail(f"{why} (scripts/setup-system.sh installs it: a broken set-up)")
    lacks("fuse", why)


def readable_package(dest: Path) -> Path:
    """A copy of the zionwm package (and pyseccomp, which its sandboxes need) that every
    user can import; returns the directory to put on sys.path.

    A checkout usually lives in a home directory that other users cannot enter (mode 0700),
    so tests that run zionwm as another user import this copy instead of the checkout.
    """
    import pyseccomp

    import zionwm

    lib = dest / "lib"
    lib.mkdir(parents=True)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.c", "*.o")
    shutil.copytree(Path(zionwm.__file__).parent, lib / "zionwm", ignore=junk)
    seccomp = Path(pyseccomp.__file__)
    if seccomp.name == "__init__.py":
        shutil.copytree(seccomp.parent, lib / seccomp.parent.name, ignore=junk)
    else:
        shutil.copy2(seccomp, lib / seccomp.name)
    for path in [dest, lib, *lib.rglob("*")]:
        if path.is_dir() or path.suffix == ".so" or path.stat().st_mode & 0o100:
            path.chmod(0o755)  # and the native helpers (zionwm-enter) stay executable
        else:
            path.chmod(0o644)
    return lib


class Compositor:
    """A running `zionwm --headless` with a private runtime, config, data and state dir."""

    def __init__(
        self,
        root: Path,
        config_text: str | None = None,
        outputs: int = 1,
        size: str = "1280x720",
        extra_env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        wrap: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        # argv run before zionwm, which it must exec (so the pid stays the compositor's)
        self.wrap = wrap
        self.runtime = root / "run"
        self.runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.runtime, 0o700)
        self.config_dir = root / "config"
        self.data = root / "data"
        self.log_path = root / "zionwm.log"
        self.env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_CONFIG_HOME": str(self.config_dir),
            "XDG_DATA_HOME": str(self.data),
            "XDG_STATE_HOME": str(root / "state"),
            "WLR_RENDERER": "pixman",
            "WLR_LIBINPUT_NO_DEVICES": "1",
            "WLR_BACKENDS": "headless",
            "ZIONWM_LOG": "info",
            # cgroups and network objects of this instance only (see integration.py)
            "ZIONWM_INSTANCE": f"t{os.getpid() % 10000}{next(_instances)}",
            **(extra_env or {}),
        }
        for k in ("WAYLAND_DISPLAY", "DISPLAY", "SWAYSOCK", "ZIONWM_SOCK"):
            self.env.pop(k, None)
        self.config_path: Path | None = None
        if config_text is not None:
            self.config_path = root / "config.py"
            self.config_path.write_text(config_text)
        self.socket_name = "wayland-zt"
        self.args = [
            "--headless",
            "--outputs",
            str(outputs),
            "--size",
            size,
            "--socket",
            self.socket_name,
            *args,
        ]
        if self.config_path:
            self.args += ["--config", str(self.config_path)]
        self.proc: subprocess.Popen[bytes] | None = None
        self.clients: list[subprocess.Popen[bytes]] = []

    # ---- life ----

    def start(self, timeout: float = 30.0) -> Compositor:
        rfd, wfd = os.pipe()
        env = {**self.env, "ZIONWM_READY_FD": str(wfd)}
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [*self.wrap, str(VENV_BIN / "zionwm"), *self.args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            pass_fds=(wfd,),
            cwd=self.root,
        )
        os.close(wfd)
        with os.fdopen(rfd) as ready:
            import selectors

            sel = selectors.DefaultSelector()
            sel.register(ready, selectors.EVENT_READ)
            events = sel.select(timeout)
            line = ready.readline().strip() if events else ""
        if not line:
            self.stop(check=False)
            raise AssertionError(f"zionwm did not become ready in {timeout}s:\n{self.log()}")
        return self

    def stop(self, check: bool = True) -> None:
        for c in self.clients:
            if c.poll() is None:
                c.kill()
            c.wait()
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                if check:
                    raise AssertionError("zionwm did not exit on SIGTERM") from None
        self._log.close()
        code = self.proc.returncode
        if check:
            errors = self.callback_errors()
            assert not errors, "zionwm logged callback errors:\n" + "\n".join(errors)
            assert code == 0, f"zionwm exited with {code}:\n{self.log()[-4000:]}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def callback_errors(self) -> list[str]:
        return [
            ln
            for ln in self.log().splitlines()
            if "callback failed" in ln or "Traceback" in ln or "Segmentation" in ln
        ]

    # ---- sockets and environments ----

    def desktop_socket(self, desktop: str) -> Path:
        return self.runtime / "zionwm" / desktop / "wayland-0"

    def desktop_home(self, desktop: str) -> Path:
        """The desktop's home as the host sees it (its programs see it as $HOME)."""
        return self.data / "zionwm" / "desktops" / desktop / "home"

    def host_env(self, **extra: str) -> dict[str, str]:
        return {**self.env, "WAYLAND_DISPLAY": self.socket_name, **extra}

    def desktop_env(self, desktop: str, **extra: str) -> dict[str, str]:
        return {**self.env, "WAYLAND_DISPLAY": str(self.desktop_socket(desktop)), **extra}

    # ---- clients ----

    def client(
        self, argv: list[str], desktop: str | None = None, **popen: Any
    ) -> subprocess.Popen[bytes]:
        env = self.desktop_env(desktop) if desktop else self.host_env()
        env.update(popen.pop("env", {}))
        p = subprocess.Popen(
            argv,
            env=env,
            stdin=popen.pop("stdin", subprocess.DEVNULL),
            stdout=popen.pop("stdout", subprocess.DEVNULL),
            stderr=popen.pop("stderr", subprocess.DEVNULL),
            **popen,
        )
        self.clients.append(p)
        return p

    def run(
        self,
        argv: list[str],
        desktop: str | None = None,
        timeout: float = 20,
        input: bytes | None = None,
        **kw: Any,
    ) -> subprocess.CompletedProcess[bytes]:
        env = self.desktop_env(desktop) if desktop else self.host_env()
        env.update(kw.pop("env", {}))
        return subprocess.run(
            argv, env=env, capture_output=True, timeout=timeout, input=input, **kw
        )

    def zionctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [str(VENV_BIN / "zionctl"), *args],
            env=self.host_env(),
            capture_output=True,
            text=True,
            timeout=20,
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"zionctl {' '.join(args)} failed ({r.returncode}): {r.stderr}{r.stdout}"
            )
        return r

    def zjson(self, *args: str) -> Any:
        return json.loads(self.zionctl(*args, "--json").stdout)

    def windows(self, desktop: str | None = None) -> list[dict[str, Any]]:
        ws = self.zjson("windows")
        return [w for w in ws if desktop is None or w["desktop"] == desktop]

    def desktops(self) -> dict[str, dict[str, Any]]:
        return {d["name"]: d for d in self.zjson("desktops")}

    def wait_window(
        self, desktop: str, app_id: str | None = None, count: int = 1, timeout: float = 15
    ) -> list[dict[str, Any]]:
        def found() -> list[dict[str, Any]]:
            ws = [w for w in self.windows(desktop) if app_id is None or w["app_id"] == app_id]
            return ws if len(ws) >= count else []

        return wait_for(found, timeout, f"{count} window(s) {app_id or ''} on {desktop}")

    def screenshot(self, path: Path | None = None) -> Image.Image:
        path = path or self.root / f"shot-{time.monotonic_ns()}.png"
        r = self.run([require("grim"), str(path)])
        assert r.returncode == 0, f"grim failed: {r.stderr.decode()}"
        with Image.open(path) as img:
            return img.convert("RGB")

    def type_keys(self, *wtype_args: str) -> None:
        r = self.run([require("wtype"), *wtype_args], timeout=60)
        assert r.returncode == 0, f"wtype failed: {r.stderr.decode()}"


@contextmanager
def running(root: Path, **kw: Any) -> Iterator[Compositor]:
    comp = Compositor(root, **kw).start()
    try:
        yield comp
    finally:
        comp.stop()


def stop_main(conn: Any, loop: threading.Thread) -> None:
    """End an i3ipc event loop started in `loop` and close its subscription socket."""
    sub = conn._sub_socket
    conn.main_quit()
    loop.join(5)
    if sub is not None:
        sub.close()


def colour_near(pixel: tuple[int, ...], hex_colour: str, tol: int = 12) -> bool:
    want = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return all(abs(a - b) <= tol for a, b in zip(pixel[:3], want, strict=True))
