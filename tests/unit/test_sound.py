"""The sound relay's pure parts (zionwm.isolation.sound): its script and the host verdict."""

from __future__ import annotations

from zionwm.isolation import sound


def test_the_relay_script_has_a_sink_tunnel_and_a_source_only_with_the_grant() -> None:
    play = sound.relay_script("web", "/r/web/sound/native", "/r/pulse/native", microphone=False)
    assert "module-native-protocol-unix socket=/r/web/sound/native" in play
    assert "module-tunnel-sink-new server=unix:/r/pulse/native sink_name=zionwm-web" in play
    assert "source" not in play.replace("module-native-protocol-unix", "")
    mic = sound.relay_script("call", "/s", "/r/pulse/native", microphone=True)
    assert "module-tunnel-source-new server=unix:/r/pulse/native source_name=zionwm-call-mic" in mic
    assert all(line.startswith("load-module ") for line in mic.splitlines())


def test_the_relay_allows_no_module_loading_and_runs_only_our_script() -> None:
    argv = sound.relay_argv("/usr/bin/pulseaudio", "/s/relay.pa")
    assert "--disallow-module-loading" in argv and "-n" in argv
    assert "--file=/s/relay.pa" in argv and "--daemonize=no" in argv


def test_the_host_verdict_names_what_is_missing() -> None:
    assert sound.HostSound("/r/pulse/native", True, "/usr/bin/pulseaudio").problem is None
    assert "without pipewire-pulse" in (sound.HostSound(None, True, "/x").problem or "")
    assert "no PipeWire" in (sound.HostSound(None, False, "/x").problem or "")
    assert "not installed" in (sound.HostSound("/p", True, None).problem or "")


def test_the_probe_reads_the_runtime_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "pulse").mkdir()
    (tmp_path / "pulse" / "native").touch()
    (tmp_path / "pipewire-0").touch()
    host = sound.probe({"XDG_RUNTIME_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert host.pulse_socket == str(tmp_path / "pulse" / "native") and host.pipewire
    assert sound.probe({"PATH": ""}).problem is not None
