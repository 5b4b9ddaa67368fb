"""The desktops file (TOML writer, atomic replace) and the pure merge of config.py's desktops
with desktops made or changed at run time."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from zionwm import config as cfg
from zionwm import desktops_model as model
from zionwm import desktops_store as store
from zionwm.isolation.spec import NetMode

# --- the file ------------------------------------------------------------------------------

AWKWARD = [
    "plain",
    'quote " and backslash \\',
    "new\nline\ttab\rreturn",
    "control \x01\x1f\x7f",
    "unicode é ✓ 🙂",
    "",
    "[not a table]",
    "# not a comment",
    "key = value",
]


@pytest.mark.parametrize("text", AWKWARD)
def test_strings_round_trip_through_tomllib(text: str) -> None:
    data = store.DesktopsFile(desktops={"d": {"s": text}})
    assert tomllib.loads(store.dumps(data))["desktops"]["d"]["s"] == text
    assert store.parse(store.dumps(data)) == data


def test_every_value_kind_and_awkward_keys_round_trip() -> None:
    data = store.DesktopsFile(
        desktops={"a-1": {"b": True, "c": False, "i": -42, "f": 1764859200.25, "s": "4G"}},
        overrides={"work": {"memory_max": "6G", "key with space": "x"}},
        grants={"web": {"network": "full", "until": 1.5e9}},
    )
    assert store.parse(store.dumps(data)) == data


def test_a_non_finite_number_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "desktops.toml"
    with pytest.raises(ValueError):
        store.save(path, store.DesktopsFile(grants={"web": {"until": float("nan")}}))
    assert not path.exists()


@pytest.mark.parametrize(
    "text",
    [
        "version = 2\n",
        "[desktops]\nx = 1\n",
        "[other.x]\na = 1\n",
        "[desktops.x]\na = [1, 2]\n",
        "[desktops.x\n",
    ],
)
def test_shapes_zionwm_does_not_write_are_refused(text: str) -> None:
    with pytest.raises(store.StoreError):
        store.parse(text)


def test_write_is_atomic_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "desktops.toml"
    store.save(path, store.DesktopsFile(desktops={"a": {"colour": "#112233"}}))
    store.save(path, store.DesktopsFile(desktops={"b": {"colour": "#445566"}}))
    assert list(store.load(path).desktops) == ["b"]
    assert os.listdir(path.parent) == ["desktops.toml"]
    assert (path.stat().st_mode & 0o777) == 0o600


def test_a_writer_killed_mid_write_leaves_the_old_file(tmp_path: Path) -> None:
    """A real process stops half way through the temporary file (the test hold) and is
    SIGKILLed: the file is still the old one, whole; the torn temporary is swept away."""
    path = tmp_path / "desktops.toml"
    old = store.DesktopsFile(desktops={"old": {"colour": "#112233"}})
    store.save(path, old)
    before = path.read_bytes()
    marker = tmp_path / "held"
    code = (
        "import sys; from pathlib import Path; from zionwm import desktops_store as s; "
        "s.save(Path(sys.argv[1]), s.DesktopsFile(desktops={f'n{i}': {'colour': '#abcdef'} "
        "for i in range(50)}))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], env={**os.environ, store.HOLD_ENV: str(marker)}
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the writer never held"
            time.sleep(0.01)
        proc.kill()
    finally:
        proc.wait()
    torn = Path(marker.read_text())
    full = store.dumps(
        store.DesktopsFile(desktops={f"n{i}": {"colour": "#abcdef"} for i in range(50)})
    ).encode()
    half = torn.read_bytes()
    # the kill landed mid-write: a strict prefix of the new file was on disk
    assert 0 < len(half) < len(full) and full.startswith(half)
    assert path.read_bytes() == before
    assert store.load(path) == old
    assert store.remove_stale_temporaries(path) == [torn]
    assert sorted(os.listdir(tmp_path)) == ["desktops.toml", "held"]


# --- settings typed by a person ------------------------------------------------------------


def test_assignments_are_normalised() -> None:
    assert model.parse_assignment("memory-max=4G") == ("memory_max", "4G")
    assert model.parse_assignment("Color=#ff0000") == ("colour", "#ff0000")
    assert model.parse_assignment("gpu=yes") == ("gpu", True)
    assert model.parse_assignment("pids_max=64") == ("pids_max", 64)
    assert model.parse_assignment("network=filtered:a.example,b.example") == (
        "network",
        "filtered:a.example,b.example",
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [("memory_maks=4G", "did you mean 'memory_max'"), ("gpu=maybe", "yes or no"), ("gpu", "KEY=")],
)
def test_bad_assignments_say_why(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        model.parse_assignment(text)


# --- specs and the validator ----------------------------------------------------------------


def test_every_default_desktop_round_trips_through_plain_values() -> None:
    """Overrides are applied on plain values and validated again: that must reproduce the
    config file's own spec exactly when nothing is overridden."""
    config = cfg.load_default()
    names = {d.name for d in config.desktops}
    for spec in config.desktops:
        again = model.validate(spec.name, model.plain_from_spec(spec), names - {spec.name})
        assert dataclasses.replace(again, source_line=spec.source_line) == spec


def test_filtered_network_with_ports_round_trips_through_its_text() -> None:
    config = cfg.load_default()
    plain = model.apply_settings(
        model.plain_from_spec(config.desktops[0]),
        {"network": "filtered:a.example:443,10.0.0.0/8,dns.example:53+5353/udp"},
    )
    spec = model.validate("personal", plain, set())
    assert [(r.host, r.ports, r.proto) for r in spec.network.allow] == [
        ("a.example", (443,), "tcp"),
        ("10.0.0.0/8", (), "tcp"),
        ("dns.example", (53, 5353), "udp"),
    ]
    text = model.shown_settings(model.plain_from_spec(spec))["network"]
    again = model.apply_settings(model.default_plain(), {"colour": "#123456", "network": text})
    assert model.validate("x", again, set()).network == spec.network


def _base() -> tuple[cfg.Config, store.DesktopsFile]:
    return cfg.load_default(), store.DesktopsFile()


def test_merge_adds_run_time_desktops_after_config_ones_and_overrides_config_ones() -> None:
    config, data = _base()
    data.desktops["bank"] = {"colour": "#f59e0b", "memory_max": "4G", "network": "none"}
    data.overrides["work"] = {"memory_max": "6G", "colour": "#00ff00"}
    merged = model.merge(config.desktops, data, time.time())
    assert [d.name for d in merged.desktops] == ["personal", "work", "gaming", "web", "bank"]
    by = {d.name: d for d in merged.desktops}
    assert by["bank"].limits.memory_max == 4 << 30
    assert by["work"].limits.memory_max == 6 << 30
    assert by["work"].colour_hex == "#00ff00"
    assert by["work"].network == config.desktop("work").network  # type: ignore[union-attr]
    assert merged.origins == {
        "personal": "config.py",
        "work": "config.py",
        "gaming": "config.py",
        "web": "config.py",
        "bank": "run-time",
    }
    assert not merged.problems


def test_a_bad_layer_is_left_out_and_reported_never_half_applied() -> None:
    config, data = _base()
    data.desktops["bad"] = {"colour": "#f59e0b", "memory_max": "lots"}
    data.overrides["work"] = {"memory_max": "6G", "cpu_max": "fast"}
    data.desktops["web"] = {"colour": "#000000"}  # config.py has a desktop of that name
    merged = model.merge(config.desktops, data, time.time())
    by = {d.name: d for d in merged.desktops}
    assert "bad" not in by
    assert by["work"] == dataclasses.replace(config.desktop("work"))  # type: ignore[arg-type]
    assert "is not a size" in merged.problems["bad"][0]
    assert "cpu_max" in merged.problems["work"][0]
    assert "declared in config.py" in merged.problems["web"][0]


def test_downloads_must_go_to_a_desktop_that_exists() -> None:
    config, data = _base()
    data.desktops["tmp"] = {"colour": "#f59e0b", "downloads_to": "nowhere"}
    problems = model.merge(config.desktops, data, time.time()).problems
    assert "release_to names 'nowhere'" in problems["tmp"][0]
    data.desktops["tmp"]["downloads_to"] = "personal"
    data.desktops["tmp"]["hold"] = "1m"
    merged = model.merge(config.desktops, data, time.time())
    tmp = {d.name: d for d in merged.desktops}["tmp"]
    assert tmp.downloads is not None and tmp.downloads.hold == 60.0


def test_a_grant_holds_until_it_expires() -> None:
    config, data = _base()
    data.desktops["off"] = {"colour": "#f59e0b"}
    now = 1000.0
    data.grants["off"] = {"network": "full", "until": now + 60}
    merged = model.merge(config.desktops, data, now)
    off = {d.name: d for d in merged.desktops}["off"]
    assert off.network.mode is NetMode.FULL
    assert merged.next_expiry == now + 60
    later = model.merge(config.desktops, data, now + 61)
    assert {d.name: d for d in later.desktops}["off"].network.mode is NetMode.NONE
    assert later.next_expiry is None
    assert model.expired_grants(data, now + 61) == ["off"]


def test_layers_name_where_each_value_comes_from() -> None:
    config, data = _base()
    data.overrides["work"] = {"memory_max": "6G"}
    data.grants["work"] = {"network": "none", "until": time.time() + 60}
    rows = {r.key: r for r in model.layers("work", config.desktop("work"), data, time.time())}
    assert (rows["memory_max"].value, rows["memory_max"].layer) == ("6G", "run-time")
    assert (rows["colour"].value, rows["colour"].layer) == ("#22c55e", "config.py")
    assert (rows["network"].value, rows["network"].layer) == ("none", "grant")
    assert (rows["gpu"].value, rows["gpu"].layer, rows["gpu"].live) == ("no", "default", False)
    data.desktops["clone"] = {"colour": "#123456", "cloned_from": "work"}
    rows = {r.key: r for r in model.layers("clone", None, data, time.time())}
    assert rows["colour"].layer == "run-time (cloned from work)"
