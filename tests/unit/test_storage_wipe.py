"""storage.wipe_entries: what an ephemeral session left at its edges goes, and nothing it
points to outside does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zionwm import paths
from zionwm.compositor.quarantine_link import sweep_ephemeral_edges
from zionwm.isolation import storage


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


def test_leftovers_go_and_symlinked_targets_stay(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    inbox = paths.desktop_inbox("web")
    (inbox / "sub" / "deeper").mkdir(parents=True)
    (inbox / "sub" / "deeper" / "payload").write_text("x")
    os.symlink(victim, inbox / "sub" / "to-victim")
    os.symlink(victim, inbox / ".link")
    (inbox / ".tracker").write_text("id")
    (inbox / "film.mkv.part").write_text("half")
    (inbox / "done.pdf").write_text("complete")
    os.mkfifo(inbox / ".fifo")
    outbox = paths.desktop_outbox("web")
    outbox.mkdir(parents=True)
    (outbox / ".x").write_text("y")

    lines = sweep_ephemeral_edges("web")

    assert sorted(os.listdir(inbox)) == ["done.pdf"]  # left for the quarantine
    assert os.listdir(outbox) == []
    assert (victim / "precious").read_text() == "keep me"
    assert len(lines) == 6
    assert any("~/Downloads/sub (directory: 3 entries" in ln for ln in lines), lines


def test_a_missing_directory_has_nothing_to_wipe() -> None:
    assert storage.wipe_entries(paths.desktop_outbox("nothing"), lambda _n, _s: False) == []


def test_an_inbox_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".secret").write_text("s")
    paths.desktop_dir("web").mkdir(parents=True)
    os.symlink(elsewhere, paths.desktop_outbox("web"))
    with pytest.raises(storage.UnsafePathError):
        storage.wipe_entries(paths.desktop_outbox("web"), lambda _n, _s: False)
    assert (elsewhere / ".secret").exists()
