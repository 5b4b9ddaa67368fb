"""`zionwm`: start the compositor (nested, on a TTY, or headless, optionally served over VNC),
or check a config file."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from zionwm import __version__

log = logging.getLogger("zionwm")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1280x720, not {text!r}") from None


def _vnc_addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--vnc takes [ADDR:]PORT, not {text!r}") from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="zionwm", description="Wayland compositor with isolated virtual desktops"
    )
    p.add_argument(
        "--config", type=Path, help="config file (default: $XDG_CONFIG_HOME/zionwm/config.py)"
    )
    p.add_argument(
        "--check-config",
        nargs="?",
        const="",
        metavar="PATH",
        help="validate a config file, print every problem, and exit",
    )
    p.add_argument("--headless", action="store_true", help="no display: virtual outputs")
    p.add_argument("--outputs", type=int, default=1, help="headless outputs (default 1)")
    p.add_argument("--size", type=_size, default=(1280, 720), help="headless output size")
    p.add_argument(
        "--vnc",
        type=_vnc_addr,
        metavar="[ADDR:]PORT",
        help="serve the session with wayvnc (loopback unless ADDR is given)",
    )
    p.add_argument("--socket", help="name of the host Wayland socket (default: wayland-N)")
    p.add_argument("--log-level", default=os.environ.get("ZIONWM_LOG", "info"))
    p.add_argument("--version", action="version", version=f"zionwm {__version__}")
    return p.parse_args(argv)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from wlroots.util.log import log_init

    log_init(logging.ERROR if level.lower() != "debug" else logging.INFO)


def start_vnc(addr: tuple[str, int]) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("wayvnc")
    if exe is None:
        log.error("--vnc: wayvnc is not installed (Debian: apt install wayvnc)")
        return None
    host, port = addr
    proc = subprocess.Popen([exe, host, str(port)], stdin=subprocess.DEVNULL)
    log.info("VNC: wayvnc serving on %s:%d (connect with any VNC viewer)", host, port)
    return proc


def main(argv: list[str] | None = None) -> int:
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

    path = args.config or cfgmod.default_config_path()
    config, errors, fell_back = cfgmod.load_or_fallback(path)
    notices = []
    if fell_back:
        text = "\n".join(str(e) for e in errors if e.is_error)
        log.error("config %s has errors; running with the default config:\n%s", path, text)
        notices.append(f"Your config has errors; the default config is running:\n{text}")
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

    vnc = start_vnc(args.vnc) if args.vnc else None
    try:
        server.run()
    finally:
        if vnc is not None:
            vnc.terminate()
            try:
                vnc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                vnc.kill()
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
