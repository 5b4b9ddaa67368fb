"""Sound for desktops: a sound server of each desktop's own, in front of the host's.

Owns the per-desktop sound relays. A desktop with `audio=True` never sees the host's sound
sockets: the host's PipeWire socket gives any client the whole graph (every stream of every
desktop, the microphone), and the host's PulseAudio-protocol socket lets a client load modules
into the host's server (a tunnel to the microphone, a pipe sink writing a host file). Instead
the desktop gets the socket of a small PulseAudio server of its own (`pulseaudio -n`, started
lazily at its first program), whose graph holds exactly:

- one sink, a tunnel into the host's server: what the desktop plays appears on the host as
  one stream of this desktop, and the sink's monitor carries only this desktop's own sound;
- a source tunnelled from the host's default source, only when the desktop has
  `microphone=True`; without it the desktop's server has no source at all;
- nothing a client can add: module loading is disallowed once the script has run, so no
  client can tunnel, pipe or load anything else.

What another desktop plays never enters this graph, so there is nothing to capture. See
docs/sound.md for why this and not the host's own access rules (PipeWire 0.3.65 lets the client
choose its access level, and WirePlumber 0.4 links a capture stream whatever the client may
see). Where the host has no PulseAudio-protocol server (PipeWire's pipewire-pulse or
PulseAudio) or `pulseaudio` is not installed, desktops get no sound and `status()` says why.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from zionwm import paths
from zionwm.isolation import seccomp
from zionwm.isolation.spec import DesktopSpec

log = logging.getLogger(__name__)

SOCKET_NAME = "native"
START_TIMEOUT = 10.0  # seconds for a relay's socket to appear
RECONNECT_MS = 1000  # how often a relay retries a lost host server


@dataclass(frozen=True)
class HostSound:
    """What the host offers: its sound server's PulseAudio-protocol socket and its kind."""

    pulse_socket: str | None  # the host's server, the relays' upstream
    pipewire: bool  # a PipeWire daemon runs (pipewire-0)
    relay_binary: str | None  # pulseaudio, which runs the relays

    @property
    def problem(self) -> str | None:
        """Why desktops get no sound here, or None."""
        if self.pulse_socket is None:
            if self.pipewire:
                return "the host runs PipeWire without pipewire-pulse: no sound for desktops"
            return "the host has no PipeWire (nor PulseAudio) sound server: no sound for desktops"
        if self.relay_binary is None:
            return "pulseaudio is not installed: desktops' sound relays cannot run, no sound"
        return None


def probe(environ: Mapping[str, str] | None = None) -> HostSound:
    env = os.environ if environ is None else environ
    run = env.get("XDG_RUNTIME_DIR")
    pulse = pw = None
    if run:
        pa = os.path.join(run, "pulse", "native")
        pulse = pa if os.path.exists(pa) else None
        pw = os.path.exists(os.path.join(run, "pipewire-0"))
    return HostSound(pulse, bool(pw), shutil.which("pulseaudio"))


def relay_script(desktop: str, socket: str, upstream: str, microphone: bool) -> str:
    """The relay's startup script (pure): its socket, the tunnels, nothing else."""
    name = f"zionwm-{desktop}"
    lines = [
        # anonymous: the socket is reachable only inside this desktop's sandboxes
        f"load-module module-native-protocol-unix socket={socket} auth-anonymous=1",
        # the -new tunnels reconnect when the host's server restarts
        f"load-module module-tunnel-sink-new server=unix:{upstream} sink_name={name} "
        f"sink_properties=device.description={name} reconnect_interval_ms={RECONNECT_MS}",
    ]
    if microphone:
        lines.append(
            f"load-module module-tunnel-source-new server=unix:{upstream} "
            f"source_name={name}-mic source_properties=device.description={name}-microphone "
            f"reconnect_interval_ms={RECONNECT_MS}"
        )
    return "\n".join(lines) + "\n"


def confine_argv(bwrap: str, directory: str, upstream: str, seccomp_fd: int) -> list[str]:
    """bwrap around the relay (pure): it parses what the desktop's programs send, so it sees
    only /usr, its own directory and the host's sound socket; no network, no other files."""
    out = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    out += ["--ro-bind", "/usr", "/usr"]
    for link in ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(link):
            out += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            out += ["--ro-bind", link, link]
    out += ["--ro-bind-try", "/etc/pulse", "/etc/pulse"]
    out += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    out += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    out += ["--bind", directory, directory, "--bind", upstream, upstream]
    out += ["--seccomp", str(seccomp_fd), "--chdir", directory, "--"]
    return out


def relay_argv(binary: str, script: str) -> list[str]:
    return [
        binary,
        "-n",  # no default script: only ours
        f"--file={script}",
        "--daemonize=no",
        "--exit-idle-time=-1",
        "--disallow-module-loading",  # after the script: clients can load nothing
        "--disallow-exit",
        "--use-pid-file=no",
        "--system=no",
        "--log-target=stderr",
        "--log-level=warning",
    ]


class SoundRelays:
    """The running relays, one per desktop with audio; started lazily, stopped at exit."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        self.host = probe(self._environ)
        self._relays: dict[str, tuple[subprocess.Popen[bytes], bool]] = {}

    def socket_for(self, spec: DesktopSpec) -> str | None:
        """The desktop's relay socket (started if needed); None: no sound, say why in status."""
        if not (spec.devices.audio or spec.devices.microphone):
            # a grant taken back (config reload): programs still running lose their relay too
            self._stop(spec.name)
            return None
        self.host = probe(self._environ)
        if self.host.problem is not None:
            log.warning("desktop %s: %s", spec.name, self.host.problem)
            return None
        directory = paths.desktop_socket_dir(spec.name) / "sound"
        sock = directory / SOCKET_NAME
        current = self._relays.get(spec.name)
        if current is not None:
            proc, mic = current
            if proc.poll() is None and mic == spec.devices.microphone and sock.exists():
                return str(sock)
            self._stop(spec.name)
        try:
            return str(self._start(spec, directory, sock))
        except (OSError, RuntimeError) as exc:
            log.warning("desktop %s: sound relay failed: %s; no sound", spec.name, exc)
            return None

    def _start(self, spec: DesktopSpec, directory: Path, sock: Path) -> Path:
        binary, upstream = self.host.relay_binary, self.host.pulse_socket
        assert binary is not None and upstream is not None
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        sock.unlink(missing_ok=True)
        script = directory / "relay.pa"
        script.write_text(relay_script(spec.name, str(sock), upstream, spec.devices.microphone))
        env = {
            "PATH": self._environ.get("PATH", "/usr/bin:/bin"),
            # its cookie, runtime and state files stay in its own directory
            "HOME": str(directory),
            "XDG_RUNTIME_DIR": str(directory),
            "XDG_CONFIG_HOME": str(directory),
            "XDG_STATE_HOME": str(directory),
        }
        log_file = open(directory / "relay.log", "ab")  # noqa: SIM115 - handed to the child
        filter_fd = seccomp.filter_fd()
        os.set_inheritable(filter_fd, True)
        bwrap = shutil.which("bwrap") or "/usr/bin/bwrap"
        try:
            proc = subprocess.Popen(
                # setpriv: the relay ends with the compositor, even if it is killed
                [
                    "setpriv",
                    "--pdeathsig",
                    "TERM",
                    "--",
                    *confine_argv(bwrap, str(directory), upstream, filter_fd),
                    *relay_argv(binary, str(script)),
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                cwd=directory,
                pass_fds=(filter_fd,),
            )
        finally:
            log_file.close()
            os.close(filter_fd)
        self._relays[spec.name] = (proc, spec.devices.microphone)
        deadline = time.monotonic() + START_TIMEOUT
        while not sock.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited with {proc.returncode} (see {directory})")
            if time.monotonic() > deadline:
                self._stop(spec.name)
                raise RuntimeError(f"no socket after {START_TIMEOUT}s")
            time.sleep(0.01)
        log.info(
            "desktop %s: sound relay %d (microphone %s)",
            spec.name,
            proc.pid,
            "granted" if spec.devices.microphone else "withheld",
        )
        return sock

    def _stop(self, desktop: str) -> None:
        entry = self._relays.pop(desktop, None)
        if entry is None:
            return
        proc = entry[0]
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        for desktop in list(self._relays):
            self._stop(desktop)

    def status(self) -> dict[str, object]:
        self.host = probe(self._environ)  # a sound server started later is seen at once
        problem = self.host.problem
        return {
            "server": (
                "pipewire"
                if self.host.pipewire
                else "pulseaudio"
                if self.host.pulse_socket
                else None
            ),
            "desktops_get_sound": problem is None,
            "problem": problem,
            "relays": {
                name: {"pid": proc.pid, "microphone": mic, "alive": proc.poll() is None}
                for name, (proc, mic) in self._relays.items()
            },
        }
