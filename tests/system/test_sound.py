"""Sound without eavesdropping, attacked from inside real desktops.

The "host" sound system is a real PipeWire + WirePlumber + pipewire-pulse started by the test
in the compositor's own runtime directory (no hardware): a null sink `zt-sink` and a test
source `zt-mic` (PipeWire's audiotestsrc, a steady sine: the "microphone"). The compositor is
a real headless zionwm; players and recorders are Debian's paplay/parecord started with
`zionctl launch`, so they run in the desktops' real sandboxes. Recorders write raw samples
into their desktop's home; the test measures them on the host.
"""

from __future__ import annotations

import array
import math
import os
import shutil
import signal
import struct
import subprocess
import uuid
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Compositor, wait_for

TOOLS = ("pipewire", "wireplumber", "pipewire-pulse", "pactl", "parecord", "paplay", "pulseaudio")
RATE = 48000
SILENT = 200  # peak s16 amplitude below which a recording is silence (the tone peaks ~12000)

CONFIG = """\
from zionwm.config import Devices, desktop
APPS = [{apps!r}]
desktop("personal", colour="#3b82f6", devices=Devices(audio=True), app_dirs=APPS)
desktop("work", colour="#22c55e", devices=Devices(audio=True), app_dirs=APPS)
desktop("web", colour="#ef4444", devices=Devices(audio=True), app_dirs=APPS)
desktop("call", colour="#f59e0b", devices=Devices(audio=True, microphone=True), app_dirs=APPS)
desktop("mute", colour="#6b7280", app_dirs=APPS)
"""
TONE = "/opt/zionwm/0/tone.wav"  # the app dir, as the sandboxes see it

HOST_PIPEWIRE = """\
context.spa-libs = { audiotestsrc = audiotestsrc/libspa-audiotestsrc }
context.objects = [
    { factory = adapter
      args = { factory.name = support.null-audio-sink node.name = zt-sink
               media.class = Audio/Sink audio.position = [ FL FR ] object.linger = true } }
    { factory = adapter
      args = { factory.name = audiotestsrc node.name = zt-mic media.class = Audio/Source
               audio.position = [ MONO ] object.linger = true node.pause-on-idle = false } }
]
"""

# WirePlumber without hardware monitors; it still wants a session bus (dbus-run-session).
HOST_WIREPLUMBER = """\
alsa_monitor.enabled = false
v4l2_monitor.enabled = false
libcamera_monitor.enabled = false
"""

RECORDER = r"""
out=$HOME/$1; secs=$2; shift 2
pactl list short sources > "$out.sources" 2>&1
n=0
for dev in "$@"; do
    n=$((n+1))
    if [ "$dev" = default ]; then set -- ; else set -- -d "$dev"; fi
    timeout -s INT "$secs" parecord "$@" --latency-msec=50 --raw --format=s16le --channels=1 \
        --rate=48000 "$out.$n" > "$out.$n.err" 2>&1
    echo "$?" > "$out.$n.rc"
done
echo done > "$out.done"
"""


def _missing() -> str | None:
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup-system.sh --with-tests)"
    if shutil.which("dbus-run-session") is None:
        return "dbus-run-session is not installed (dbus-daemon)"
    return None


_MISSING = _missing()
pytestmark = [
    pytest.mark.skipif(_MISSING is not None, reason=_MISSING or ""),
    pytest.mark.slow,
]


class HostSound:
    """A private PipeWire sound system in `runtime` (the compositor's XDG_RUNTIME_DIR)."""

    def __init__(self, root: Path, runtime: Path) -> None:
        self.runtime = runtime
        config = root / "sound-config"
        (config / "pipewire" / "pipewire.conf.d").mkdir(parents=True)
        (config / "pipewire" / "pipewire.conf.d" / "zt.conf").write_text(HOST_PIPEWIRE)
        (config / "wireplumber" / "main.lua.d").mkdir(parents=True)
        (config / "wireplumber" / "main.lua.d" / "99-zt.lua").write_text(HOST_WIREPLUMBER)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root),
            "XDG_RUNTIME_DIR": str(runtime),
            "XDG_CONFIG_HOME": str(config),
            "XDG_STATE_HOME": str(root / "sound-state"),
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log = open(root / "host-sound.log", "ab")

    def _spawn(self, *argv: str) -> None:
        self.procs.append(
            subprocess.Popen(
                argv, env=self.env, stdout=self.log, stderr=self.log, start_new_session=True
            )
        )

    def start(self) -> HostSound:
        self._spawn("pipewire")
        wait_for((self.runtime / "pipewire-0").exists, 20, "the host PipeWire socket")
        self._spawn("dbus-run-session", "--", "wireplumber")
        self._spawn("pipewire-pulse")
        wait_for((self.runtime / "pulse" / "native").exists, 20, "pipewire-pulse's socket")

        def defaults() -> bool:
            info = self.pactl("info")
            return "Default Sink: zt-sink" in info and "Default Source: zt-mic" in info

        wait_for(defaults, 30, "WirePlumber to pick zt-sink and zt-mic")
        return self

    def pactl(self, *args: str) -> str:
        r = subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, timeout=20
        )
        return r.stdout

    def record_sink(self, path: Path) -> subprocess.Popen[bytes]:
        """A recorder of the host sink's monitor (what reached the speakers), on the host."""
        return subprocess.Popen(
            ["parecord", "-d", "zt-sink.monitor", "--raw", "--format=s16le", "--channels=1",
             f"--rate={RATE}", str(path)],
            env=self.env,
        )  # fmt: skip

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        self.log.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Compositor, HostSound]]:
    root = tmp_path_factory.mktemp("snd")
    apps = root / "apps"
    apps.mkdir()
    tone(apps / "tone.wav", 12)
    comp = Compositor(root, config_text=CONFIG.format(apps=str(apps)))
    host = HostSound(root, comp.runtime).start()
    try:
        comp.start()
        try:
            yield comp, host
        finally:
            comp.stop()
    finally:
        host.stop()


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def home(comp: Compositor, desktop: str) -> Path:
    return comp.desktop_home(desktop)


def peak(raw: bytes) -> int:
    samples = array.array("h")
    samples.frombytes(raw[: len(raw) - len(raw) % 2])
    return max((abs(s) for s in samples), default=0)


def tone(path: Path, secs: float) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / RATE)))
                for i in range(int(RATE * secs))
            )
        )


def play(comp: Compositor, desktop: str) -> None:
    """Twelve seconds of a 440 Hz tone, played inside `desktop`."""
    comp.zionctl("launch", desktop, "--", "paplay", TONE)


def record(
    comp: Compositor, desktop: str, devices: list[str], secs: float = 3
) -> tuple[list[tuple[int | None, int, str]], str]:
    """Record each device in turn inside `desktop`: [(parecord's exit code, peak, stderr)]
    and the source list the desktop sees."""
    name = f"rec-{uuid.uuid4().hex}"
    comp.zionctl(
        "launch", desktop, "--", "/bin/sh", "-c", RECORDER, "sh", name, str(secs), *devices
    )
    base = home(comp, desktop) / name
    wait_for(
        Path(f"{base}.done").exists, 30 + 2 * secs * len(devices), f"the recorder in {desktop}"
    )
    out = []
    for n in range(1, len(devices) + 1):
        raw = Path(f"{base}.{n}")
        data = raw.read_bytes() if raw.exists() else b""
        rc = int(Path(f"{base}.{n}.rc").read_text().strip() or -1)
        out.append((rc, peak(data), Path(f"{base}.{n}.err").read_text()))
    return out, Path(f"{base}.sources").read_text()


def test_a_desktop_with_audio_plays_and_the_sound_reaches_the_host_sink(
    world: tuple[Compositor, HostSound], tmp_path: Path
) -> None:
    comp, host = world
    capture = tmp_path / "sink.raw"
    rec = host.record_sink(capture)
    try:
        play(comp, "personal")

        def heard() -> bool:
            return capture.exists() and peak(capture.read_bytes()) > 5000

        wait_for(heard, 40, "personal's tone on the host sink")
    finally:
        rec.send_signal(signal.SIGINT)
        rec.wait(timeout=10)
    status = comp.zjson("status")["sound"]
    assert status["desktops_get_sound"] is True
    assert status["relays"]["personal"]["microphone"] is False
    # the relay runs confined: pulseaudio in namespaces of its own, under bwrap
    relay = status["relays"]["personal"]["pid"]
    argv = Path(f"/proc/{relay}/cmdline").read_bytes().split(b"\0")
    assert Path(argv[0].decode()).name == "bwrap" and b"--unshare-all" in argv
    daemons = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _ppid(int(p.name)) == relay
    ]
    assert daemons
    for pid in daemons:
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")


@pytest.mark.security
def test_a_desktop_without_the_microphone_grant_records_nothing(
    world: tuple[Compositor, HostSound],
) -> None:
    comp, _ = world
    results, sources = record(comp, "web", ["default", "zt-mic", "@DEFAULT_SOURCE@"])
    assert "zt-mic" not in sources, sources
    for rc, level, err in results:
        assert level < SILENT, (rc, level, err, sources)


@pytest.mark.security
def test_a_desktop_cannot_load_a_module_to_reach_the_hosts_server(
    world: tuple[Compositor, HostSound],
) -> None:
    """pactl load-module from inside: a tunnel to the host's server (which the relay itself
    can reach) or a pipe sink writing a file must be refused."""
    comp, _ = world
    upstream = comp.runtime / "pulse" / "native"
    target = comp.root / f"written-by-web-{uuid.uuid4().hex}"
    name = f"mod-{uuid.uuid4().hex}"
    script = (
        f"pactl load-module module-tunnel-source server=unix:{upstream} source_name=zt-stolen"
        f" > $HOME/{name}.1 2>&1; echo $? >> $HOME/{name}.1; "
        f"pactl load-module module-pipe-sink file={target} > $HOME/{name}.2 2>&1; "
        f"echo $? >> $HOME/{name}.2; pactl list short sources > $HOME/{name}.3 2>&1; "
        f"echo done > $HOME/{name}.done"
    )
    comp.zionctl("launch", "web", "--", "/bin/sh", "-c", script)
    base = home(comp, "web") / name
    wait_for(Path(f"{base}.done").exists, 30, "the module loader in web")
    for n in (1, 2):
        text = Path(f"{base}.{n}").read_text()
        assert text.strip().splitlines()[-1] != "0", text
    assert "zt-stolen" not in Path(f"{base}.3").read_text()
    assert not target.exists()
    results, _ = record(comp, "web", ["zt-stolen"], secs=3)
    assert results[0][1] < SILENT


@pytest.mark.security
def test_the_microphone_grant_gives_the_hosts_source(world: tuple[Compositor, HostSound]) -> None:
    comp, _ = world
    results, sources = record(comp, "call", ["default"])
    rc, level, err = results[0]
    assert level > 1000, (rc, level, err, sources)


@pytest.mark.security
def test_a_desktop_cannot_capture_another_desktops_playback(
    world: tuple[Compositor, HostSound],
) -> None:
    """While personal plays, work records every source it can name: its default, the host
    sink's monitor, personal's relay sink's monitor, and whatever its server lists."""
    comp, host = world
    play(comp, "personal")

    def playing() -> bool:
        return "zionwm-personal" in host.pactl("list", "sink-inputs") or bool(
            host.pactl("list", "short", "sink-inputs").strip()
        )

    wait_for(playing, 30, "personal's stream on the host")
    devices = [
        "default",
        "@DEFAULT_MONITOR@",
        "zt-sink.monitor",
        "zionwm-personal.monitor",
        "zionwm-work.monitor",
    ]
    results, sources = record(comp, "work", devices, secs=3)
    for dev, (rc, level, err) in zip(devices, results, strict=True):
        assert level < SILENT, (dev, rc, level, err, sources)
    # the recorder itself works there: its own server's monitor carries what work plays
    play(comp, "work")
    (own,), _ = record(comp, "work", ["zionwm-work.monitor"], secs=3)
    assert own[1] > 1000, own


def test_a_desktop_without_audio_has_no_sound_socket(world: tuple[Compositor, HostSound]) -> None:
    comp, _ = world
    results, _ = record(comp, "mute", ["default"], secs=1)
    rc, level, err = results[0]
    assert rc != 0 and level == 0, (rc, err)
    assert "mute" not in comp.zjson("status")["sound"]["relays"]


@pytest.mark.security
def test_a_microphone_grant_taken_back_does_not_linger(world: tuple[Compositor, HostSound]) -> None:
    """call records the microphone; the config takes the grant back (reload); a recorder
    started afterwards hears nothing and its server lists no microphone."""
    comp, _ = world
    assert comp.config_path is not None
    original = comp.config_path.read_text()
    (before,), _ = record(comp, "call", ["default"], secs=2)
    assert before[1] > 1000, before
    try:
        comp.config_path.write_text(
            original.replace("Devices(audio=True, microphone=True)", "Devices(audio=True)")
        )
        comp.zionctl("reload")
        results, sources = record(comp, "call", ["default", "zionwm-call-mic"], secs=2)
        assert "mic" not in sources, sources
        for rc, level, err in results:
            assert level < SILENT, (rc, level, err, sources)
    finally:
        comp.config_path.write_text(original)
        comp.zionctl("reload")


def test_without_a_host_sound_server_status_says_so_and_desktops_get_no_socket(
    make_compositor: Any, tmp_path: Path
) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    tone(apps / "tone.wav", 1)
    comp = make_compositor(CONFIG.format(apps=str(apps)))
    text = comp.zionctl("status").stdout
    assert "no PipeWire" in text, text
    assert comp.zjson("status")["sound"]["desktops_get_sound"] is False
    results, _ = record(comp, "personal", ["default"], secs=1)
    rc, level, err = results[0]
    assert rc != 0 and level == 0, (rc, err)
    assert "personal" not in comp.zjson("status")["sound"]["relays"]
