"""The manager's pure models, without GTK: desktop list, form <-> desktop create/set words,
refusal -> field, app discovery from a root filesystem, quarantine items, the trust rule."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zionwm.desktops_model import parse_assignment
from zionwm.manager import apps, form, models, quarantine, trust

# ---------------------------------------------------------------- desktop list


def _desktops() -> list[dict[str, object]]:
    return [
        {"name": "personal", "index": 1, "colour": "#3b82f6", "active": True, "windows": 2},
        {"name": "web", "index": 2, "colour": "#ef4444", "frozen": True, "network": "full"},
        {"name": "work", "index": 3, "colour": "#22c55e"},
    ]


def test_list_states_and_usage_history() -> None:
    dl = models.DesktopList()
    dl.load(_desktops())
    assert [r.state for r in dl.sorted()] == ["running", "frozen", "no programs"]
    for cpu in (10.0, 250.0, 30.0):
        ev = {"cpu_percent": cpu, "memory_bytes": 3 << 20, "pids": 4, "frozen": False}
        assert dl.on_event({"event": "usage", "payload": {"desktops": {"work": ev}}})
    work = dl.rows["work"]
    assert list(work.cpu_history) == [10.0, 250.0, 30.0]
    assert work.state == "running" and work.usage_text == "30 % CPU · 3.0 MiB · 4 processes"
    for _ in range(models.HISTORY + 5):
        work.sample({"cpu_percent": 1, "memory_bytes": 1, "pids": 1})
    assert len(work.cpu_history) == models.HISTORY


def test_list_sorts_and_follows_events() -> None:
    dl = models.DesktopList()
    dl.load(_desktops())
    dl.rows["web"].sample({"cpu_percent": 90, "memory_bytes": 10, "pids": 1})
    dl.rows["work"].sample({"cpu_percent": 5, "memory_bytes": 99, "pids": 1})
    assert [r.name for r in dl.sorted("cpu", descending=True)][:2] == ["web", "work"]
    assert dl.sorted("memory", descending=True)[0].name == "work"
    assert [r.name for r in dl.sorted("name")] == ["personal", "web", "work"]
    with pytest.raises(ValueError, match="cannot sort by"):
        dl.sorted("colour")
    dl.on_event({"event": "thaw", "payload": {"desktop": "web"}})
    assert not dl.rows["web"].frozen
    dl.on_event(
        {
            "event": "desktop-created",
            "payload": {
                "name": "bank",
                "colour": "#f59e0b",
                "origin": "run-time",
                "settings": {"network": "filtered:mybank.example:443", "ephemeral": "yes"},
            },
        }
    )
    bank = dl.rows["bank"]
    assert bank.network_text == "filtered (1 host)" and bank.ephemeral
    assert "forgets its home" in bank.summary
    dl.on_event({"event": "switch", "payload": {"old": "personal", "new": "bank"}})
    assert [r.name for r in dl.rows.values() if r.active] == ["bank"]
    dl.on_event({"event": "desktop-deleted", "payload": {"name": "bank"}})
    assert "bank" not in dl.rows
    dl.load(_desktops()[:1])  # a desktop gone from the reply is gone from the list
    assert list(dl.rows) == ["personal"]


def test_pending_downloads_per_source() -> None:
    items = [
        {"source": "web", "state": "held"},
        {"source": "web", "state": "auditing"},
        {"source": "web", "state": "released"},
        {"source": "work", "state": "rejected"},
    ]
    assert models.pending_by_source(items) == {"web": 2}  # kept (rejected) is not pending


# ---------------------------------------------------------------- form


def test_new_form_creates_with_only_what_differs_from_defaults() -> None:
    f = form.DesktopForm("bank")
    f.values["colour"] = "#f59e0b"
    f.set_network("filtered", ["mybank.example:443", " dns.example:53/udp ", ""])
    f.set_flag("block_lan", True)
    f.values["memory_max"] = form.mib_to_size(4096)
    f.values["cpu_max"] = form.percent_to_cpu(150)
    argv = f.create_argv()
    assert argv[:3] == ["desktop", "create", "bank"]
    assert set(argv[3:]) == {
        "colour=#f59e0b",
        "network=filtered:mybank.example:443,dns.example:53/udp",
        "block_lan=yes",
        "memory_max=4G",
        "cpu_max=150%",
    }
    # every word is one the compositor's own parser takes
    for word in argv[3:]:
        parse_assignment(word)


def test_tailor_sends_only_changes_and_names_restart_settings() -> None:
    current = form.default_settings() | {"colour": "#22c55e", "network": "full"}
    f = form.DesktopForm.from_settings("work", current)
    assert f.network_mode == "full" and f.hosts == []
    assert f.set_argv(current) is None
    f.set_flag("gpu", True)
    f.values["pids_max"] = "512"
    assert f.set_argv(current) == ["desktop", "set", "work", "pids_max=512", "gpu=yes"]
    assert f.restart_needed(current) == ["gpu"]


def test_form_round_trips_a_filtered_network() -> None:
    f = form.DesktopForm.from_settings("x", {"network": "filtered:a.example,b.example:443"})
    assert f.network_mode == "filtered" and f.hosts == ["a.example", "b.example:443"]
    with pytest.raises(ValueError):
        f.set_network("open", [])


def test_local_errors_are_words_beside_their_field() -> None:
    f = form.DesktopForm("Bad Name")
    f.set_network("filtered", [])
    errors = f.local_errors()
    assert set(errors) == {form.NAME_FIELD, form.HOSTS_FIELD}
    assert "lower-case" in errors[form.NAME_FIELD]
    assert (
        form.DesktopForm("work")
        .local_errors({"work"})[form.NAME_FIELD]
        .startswith("A desktop named work")
    )
    assert form.DesktopForm("ok").local_errors() == {}


@pytest.mark.parametrize(
    ("message", "field", "start"),
    [
        (
            "desktop 'x': limits: memory_max: 'lots' is not a size: write bytes or a number "
            "with K, M, G or T (powers of 1024), e.g. '512M' or '4G'; nothing changed",
            "memory_max",
            "'lots' is not a size",
        ),
        ("a desktop named 'bank' already exists", form.NAME_FIELD, "A desktop named"),
        (
            "desktop 'w': colour: bad colour 'blue2': write '#rrggbb' or '#rrggbbaa' in hex, "
            "e.g. '#3b82f6'; nothing changed",
            "colour",
            "Bad colour",
        ),
        (
            "desktop 'v': downloads: release_to names 'nosuch', which is not a desktop "
            "(desktops: bank, web); nothing changed",
            "downloads_to",
            "Release_to names",
        ),
        (
            "desktop 't': network: Allow ports are 1..65535, not 99999; nothing changed",
            "network",
            "Allow ports",
        ),
        ("desktop 'u': limits: pids_max: must be a whole number, not '-3'", "pids_max", "Must"),
        (
            "desktop 'host': bad desktop name: 'host' is reserved: it names zionwm's own "
            "trusted windows; nothing changed",
            form.NAME_FIELD,
            "Bad desktop name",
        ),
        ("something else went wrong", None, "Something else"),
    ],
)
def test_refusal_maps_to_its_field(message: str, field: str | None, start: str) -> None:
    got_field, text = form.field_for_error(message)
    assert got_field == field
    assert text.startswith(start) and not text.endswith("nothing changed")


def test_slider_values() -> None:
    assert form.size_to_mib("4G") == 4096 and form.size_to_mib("none") == 0
    assert form.mib_to_size(0) == "none" and form.mib_to_size(1536) == "1536M"
    assert form.cpu_to_percent("150%") == 150 and form.cpu_to_percent("none") == 0
    m = form.machine()
    assert m.memory_bytes > 1 << 20 and m.cpus == len(os.sched_getaffinity(0))


# ---------------------------------------------------------------- apps


def _entry(d: Path, name: str, body: str) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.desktop").write_text("[Desktop Entry]\n" + body)


def test_apps_from_a_rootfs_with_a_layer(tmp_path: Path) -> None:
    root, layer = tmp_path / "root", tmp_path / "layer"
    apps_dir = "usr/share/applications"
    _entry(root / apps_dir, "editor", "Name=Editor\nExec=ed %F\nIcon=ed\nKeywords=text;write;\n")
    _entry(root / apps_dir, "hidden", "Name=Hidden\nExec=h\nNoDisplay=true\n")
    _entry(root / apps_dir, "link", "Type=Link\nName=L\nURL=http://x\n")
    _entry(root / apps_dir, "noexec", "Name=Broken\n")
    _entry(root / apps_dir, "gone", "Name=Gone\nExec=gone\n")
    _entry(layer / apps_dir, "gone", "Name=Gone\nExec=gone\nHidden=true\n")
    _entry(layer / apps_dir, "viewer", "Name=Viewer\nExec='my viewer' --x %u\nIcon=/opt/v.png\n")
    icon = root / "usr/share/icons/hicolor/48x48/apps/ed.png"
    icon.parent.mkdir(parents=True)
    icon.write_bytes(b"png")
    (layer / "opt").mkdir()
    (layer / "opt/v.png").write_bytes(b"png")
    found = apps.discover([root, layer])
    assert [a.name for a in found] == ["Editor", "Viewer"]
    editor, viewer = found
    assert editor.argv == ("ed",) and editor.icon == str(icon)
    assert editor.matches("TEXT") and editor.matches("edi") and not editor.matches("viewer")
    assert viewer.argv == ("my viewer", "--x") and viewer.icon == str(layer / "opt/v.png")


def test_apps_never_follow_a_link_out_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    _entry(outside, "evil", "Name=Evil\nExec=evil\nIcon=/etc/secret.png\n")
    (root / "usr/share").mkdir(parents=True)
    (root / "usr/share/applications").symlink_to(outside)
    assert apps.discover([root]) == []
    _entry(root / "usr/local/share/applications", "ok", "Name=Ok\nExec=ok\nIcon=/etc/passwd\n")
    (ok,) = apps.discover([root])
    assert ok.icon is None  # an absolute icon outside the root is not used


def test_apps_roots_of_a_host_desktop() -> None:
    assert apps.roots_for({"paths": {"home": "/h"}}) == [Path("/")]
    assert apps.exec_argv('foo "unterminated') == ()


# ---------------------------------------------------------------- quarantine


def test_quarantine_items() -> None:
    held = quarantine.QItem.from_json(
        {
            "id": 3,
            "name": "a.pdf",
            "state": "held",
            "verdict": "clean",
            "source": "web",
            "dest": "personal",
            "size": 2048,
            "hold_until": 1000.0 + 125,
        }
    )
    assert not held.needs_confirmation
    assert held.time_left(1000.0) == "2 min 05 s left"
    assert held.subtitle(1000.0).startswith("from web · to personal · 2.0 KiB · clean")
    kept = quarantine.QItem.from_json(
        {
            "id": 4,
            "name": "x.exe",
            "state": "rejected",
            "verdict": "malicious",
            "source": "web",
            "dest": "personal",
            "report": {
                "findings": [
                    {"verdict": "malicious", "scanner": "yara", "rule": "r", "detail": "d"}
                ]
            },
        }
    )
    assert kept.needs_confirmation and kept.time_left() == ""
    assert kept.findings == ("[malicious] yara/r: d",)
    heading, _ = kept.release_question()
    assert heading == "Release x.exe although it is malicious?"
    # no antivirus looked at it: said in words, and releasing it asks a second time
    unscanned = quarantine.QItem.from_json(
        {
            "id": 5,
            "name": "notes.txt",
            "state": "held",
            "verdict": "no-antivirus-scan",
            "source": "alpha",
            "dest": "beta",
            "size": 16,
            "hold_until": 1000.0 + 60,
        }
    )
    assert unscanned.needs_confirmation
    assert "not scanned by an antivirus · held · 1 min 00 s left" in unscanned.subtitle(1000.0)
    assert "no antivirus looked at it" in unscanned.meaning
    heading, body = unscanned.release_question()
    assert heading == "Release notes.txt without an antivirus scan?"
    assert "no antivirus looked at it" in body and "It goes to beta." in body
    # its hold over, it waits for an antivirus (antivirus="required") instead of "0 s left"
    assert unscanned.time_left(2000.0) == "waits for an antivirus scan"


# ---------------------------------------------------------------- trust


def test_trust_refuses_desktop_sockets() -> None:
    env = {"XDG_RUNTIME_DIR": "/run/user/1000", "WAYLAND_DISPLAY": "wayland-1"}
    assert trust.refusal(env, "wayland-1") is None
    assert trust.refusal(env, None) is None
    desk = {**env, "WAYLAND_DISPLAY": "/run/user/1000/zionwm/web/wayland-0"}
    assert "a desktop's socket" in str(trust.refusal(desk, "wayland-1"))
    assert "a desktop's socket" in str(
        trust.refusal({**env, "WAYLAND_DISPLAY": "zionwm/web/wayland-0"}, None)
    )
    assert "host socket is wayland-1" in str(
        trust.refusal({**env, "WAYLAND_DISPLAY": "wayland-0"}, "wayland-1")
    )
    assert "not set" in str(trust.refusal({"XDG_RUNTIME_DIR": "/r"}, None))


def test_apps_of_a_template_desktop_with_its_own_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real template built from a directory (as `zionctl template create --from-dir`), and
    the desktop's own layer over it: what `desktop show` names is what is searched."""
    from zionwm import paths
    from zionwm.isolation.templates import manage as templates

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    src = tmp_path / "src"
    _entry(src / "usr/share/applications", "calc", "Name=Calculator\nExec=calc\n")
    templates.create("deb", templates.Source("dir", str(src)))
    layer = tmp_path / "layer"
    _entry(layer / "usr/share/applications", "editor", "Name=Editor\nExec=ed\n")
    show = {
        "paths": {
            "home": "/h",
            "template": str(paths.templates_dir() / "deb"),
            "template_layer": str(layer),
        }
    }
    roots = apps.roots_for(show)
    assert roots[0] == templates.load("deb").rootfs and roots[1] == layer
    assert [a.name for a in apps.discover(roots)] == ["Calculator", "Editor"]
    # a template that is gone shows no apps rather than the host's
    show["paths"]["template"] = str(paths.templates_dir() / "gone")  # type: ignore[index]
    assert apps.roots_for(show) == []
