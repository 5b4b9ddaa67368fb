"""`zionwm`: start the compositor (nested, on a TTY, or headless, optionally served over VNC),
or check a config file."""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zionwm import __version__, heap

log = logging.getLogger("zionwm")


def _parse_size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def _parse_vnc_addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


class Args:
    """The parsed command line (what `main` reads); the defaults of every option live here."""

    def __init__(self, **values: Any) -> None:
        self.config: Path | None = values.get("config")
        self.check_config: str | None = values.get("check_config")
        self.headless: bool = values.get("headless", False)
        self.outputs: int = values.get("outputs", 1)
        self.size: tuple[int, int] = values.get("size", (1280, 720))
        self.vnc: tuple[str, int] | None = values.get("vnc")
        self.socket: str | None = values.get("socket")
        self.log_level: str = values.get("log_level", os.environ.get("ZIONWM_LOG", "info"))


# The options a session is started with, taking one value each: how the value is read, and
# what --help and a bad value say. Both parsers below read this one table.
_VALUED: dict[str, tuple[Callable[[str], Any], dict[str, str]]] = {
    "--config": (Path, {"help": "config file (default: $XDG_CONFIG_HOME/zionwm/config.py)"}),
    "--outputs": (int, {"help": "headless outputs (default 1)"}),
    "--size": (
        _parse_size,
        {"help": "headless output size", "bad": "size must look like 1280x720, not {!r}"},
    ),
    "--vnc": (
        _parse_vnc_addr,
        {
            "metavar": "[ADDR:]PORT",
            "help": "serve the session with wayvnc (loopback unless ADDR is given)",
            "bad": "--vnc takes [ADDR:]PORT, not {!r}",
        },
    ),
    "--socket": (str, {"help": "name of the host Wayland socket (default: wayland-N)"}),
    "--log-level": (str, {"help": "logging level (default: $ZIONWM_LOG or info)"}),
}


def _quick_parse(argv: list[str]) -> Args | None:
    """`argv` parsed if it holds only plain session options with good values, else None.

    Without argparse (and the gettext and locale machinery it brings: about 0.3 MiB that
    would stay in the compositor for good). Anything else (--help, --version,
    --check-config, an abbreviation, a bad value) goes to argparse, which gives its usual
    answer."""
    values: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--headless":
            values["headless"] = True
            continue
        name, eq, value = arg.partition("=")
        if name not in _VALUED:
            return None
        if not eq:
            if i == len(argv) or argv[i].startswith("-"):
                return None
            value = argv[i]
            i += 1
        try:
            values[name[2:].replace("-", "_")] = _VALUED[name][0](value)
        except ValueError:
            return None
    return Args(**values)


def parse_args(argv: list[str]) -> Args:
    quick = _quick_parse(argv)
    if quick is not None:
        return quick
    import argparse

    def checked(convert: Callable[[str], Any], bad: str | None) -> Callable[[str], Any]:
        def read(text: str) -> Any:
            try:
                return convert(text)
            except ValueError:
                if bad is None:
                    raise
                raise argparse.ArgumentTypeError(bad.format(text)) from None

        read.__name__ = getattr(convert, "__name__", "value")  # argparse names it on error
        return read

    # what is not given stays out of the namespace: Args holds the defaults
    p = argparse.ArgumentParser(
        prog="zionwm",
        description="Wayland compositor with isolated virtual desktops",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument(
        "--check-config",
        nargs="?",
        const="",
        metavar="PATH",
        help="validate a config file, print every problem, and exit",
    )
    p.add_argument("--headless", action="store_true", help="no display: virtual outputs")
    for flag, (convert, text) in _VALUED.items():
        shown = {k: v for k, v in text.items() if k != "bad"}
        p.add_argument(flag, type=checked(convert, text.get("bad")), **shown)  # type: ignore[arg-type]
    p.add_argument("--version", action="version", version=f"zionwm {__version__}")
    return Args(**vars(p.parse_args(argv)))


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from wlroots.util.log import log_init

    log_init(logging.ERROR if level.lower() != "debug" else logging.INFO)


def wayvnc_config_path() -> Path:
    """Where wayvnc itself looks for its config (and so where its password lives)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "wayvnc" / "config"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def vnc_refusal(host: str, config_text: str | None) -> str | None:
    """Why wayvnc must not serve on `host` with this wayvnc config, or None.

    VNC gives whoever connects a full view of, and input into, every desktop. Without
    authentication it may only listen where nothing but this machine can connect
    (loopback; the desktops' networks never reach the host's loopback); anywhere else it
    needs wayvnc's own authentication switched on in its config.
    """
    if _is_loopback(host):
        return None
    settings: dict[str, str] = {}
    for line in (config_text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            settings[key.strip()] = value.strip()
    if settings.get("enable_auth", "").lower() in ("true", "1", "yes", "on") and settings.get(
        "password"
    ):
        return None
    return (
        f"--vnc {host}: refusing to serve the session without authentication on a "
        f"non-loopback address (anyone who reaches it sees and controls every desktop). "
        f"Bind it to 127.0.0.1 and tunnel (ssh -L), or set enable_auth=true with a "
        f"username, password and TLS key in {wayvnc_config_path()}"
    )


def start_vnc(addr: tuple[str, int]) -> list[subprocess.Popen[bytes]]:
    """Serve the session with wayvnc. On loopback, without authentication, wayvnc listens
    on a UNIX socket in the private runtime directory and `zionwm.vncgate` holds the TCP
    port, passing only connections of this user (other local accounts are refused)."""
    exe = shutil.which("wayvnc")
    if exe is None:
        log.error("--vnc: wayvnc is not installed (Debian: apt install wayvnc)")
        return []
    host, port = addr
    argv = [exe]
    config = wayvnc_config_path()
    if config.is_file():
        argv += ["--config", str(config)]
    if not _is_loopback(host):  # vnc_refusal made sure wayvnc's authentication is on
        proc = subprocess.Popen([*argv, host, str(port)], stdin=subprocess.DEVNULL)
        log.info("VNC: wayvnc serving on %s:%d (with authentication)", host, port)
        return [proc]
    from zionwm import paths, vncgate

    sock = paths.runtime_dir() / f"vnc-{os.getpid()}.sock"
    sock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    sock.unlink(missing_ok=True)
    wayvnc = subprocess.Popen([*argv, "--unix-socket", str(sock)], stdin=subprocess.DEVNULL)
    gate = subprocess.Popen(
        vncgate.gate_argv(
            "127.0.0.1" if host == "localhost" else host, port, str(sock), os.getuid()
        ),
        stdin=subprocess.DEVNULL,
    )
    log.info(
        "VNC: serving on %s:%d to this user only (connect with any VNC viewer, or ssh -L %d:%s:%d)",
        host,
        port,
        port,
        host,
        port,
    )
    return [wayvnc, gate]


def main(argv: list[str] | None = None) -> int:
    heap.limit_arenas()  # before any thread exists
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from zionwm import config as cfgmod

    if args.check_config is not None:
        return cfgmod.check_main(
            [args.check_config]
            if args.check_config
            else ([str(args.config)] if args.config else [])
        )
    setup_logging(args.log_level)
    if not os.environ.get("XDG_RUNTIME_DIR"):
        log.error("XDG_RUNTIME_DIR is not set; zionwm needs a private runtime directory")
        return 2

    if args.vnc:
        try:
            vnc_config: str | None = wayvnc_config_path().read_text()
        except OSError:
            vnc_config = None
        refused = vnc_refusal(args.vnc[0], vnc_config)
        if refused:
            log.error("%s", refused)
            return 2

    path = args.config or cfgmod.default_config_path()
    config, errors, fell_back = cfgmod.load_or_fallback(path)
    notices = []
    if fell_back:
        text = "\n".join(str(e) for e in errors if e.is_error)
        log.error("config %s has errors; running the default desktops locked down:\n%s", path, text)
        notices.append(
            "Your config has errors. Running the default config LOCKED DOWN: no network, "
            "no GPU, no sound, no camera, nothing autostarted. Fix the file and reload "
            f"(Super+Shift+R):\n{text}"
        )
    elif errors:
        notices.append("\n".join(str(e) for e in errors))

    from zionwm.compositor.control import IpcFanout, ServerController
    from zionwm.compositor.ipc import ControlServer, SwayIpcServer
    from zionwm.compositor.live import LiveDesktops
    from zionwm.compositor.server import Options, Server

    # desktops made or changed at run time, merged with config.py's
    live = LiveDesktops(config, fell_back=fell_back)
    notices += live.notices()
    config = live.effective()

    opts = Options(
        headless=args.headless,
        outputs=args.outputs,
        size=args.size,
        config_path=args.config,
        socket_name=args.socket,
    )
    server = Server(config, opts, notices)
    controller = ServerController(server)
    control = ControlServer(controller, server.loop)
    sway = SwayIpcServer(controller, server.loop)
    control.start()
    sway.start()
    server.ipc = IpcFanout(control, sway)
    server.extensions.append(server.ipc)
    os.environ["SWAYSOCK"] = str(sway.path)
    os.environ["ZIONWM_SOCK"] = str(control.path)

    from zionwm.compositor import integration

    integration.attach(server)
    live.attach(server)

    vnc = start_vnc(args.vnc) if args.vnc else []
    heap.trim_after_startup()
    try:
        server.run()
    finally:
        for proc in vnc:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.shutdown()
    return 0


def run() -> None:
    """Console entry point: exit without running pywlroots' gc destructors (see shutdown)."""
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
