"""Symlink-safe opening of desktop storage (zionwm.isolation.storage), on a temp data dir."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from zionwm import paths
from zionwm.isolation import storage
from zionwm.isolation.bwrap import SeedKind


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "fakehome"))
    return tmp_path / "data"


def fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def test_open_creates_private_dirs_and_returns_o_path_fd() -> None:
    fd = storage.open_home("work")
    try:
        assert fd_path(fd) == str(paths.desktop_home("work"))
        flags = int(Path(f"/proc/self/fdinfo/{fd}").read_text().split("flags:")[1].split()[0], 8)
        assert flags & os.O_PATH
        assert flags & os.O_CLOEXEC
    finally:
        os.close(fd)
    mode = stat.S_IMODE(os.stat(paths.desktop_home("work")).st_mode)
    assert mode == 0o700


def test_each_storage_kind_opens_its_own_dir() -> None:
    for kind, expected in (
        ("home", paths.desktop_home("web")),
        ("outbox", paths.desktop_outbox("web")),
        ("inbox", paths.desktop_inbox("web")),
        ("shared", paths.shared_dir()),
    ):
        fd = storage.open_storage(kind, "web")
        try:
            assert fd_path(fd) == str(expected)
        finally:
            os.close(fd)
    with pytest.raises(ValueError):
        storage.open_storage("root", "web")


def test_home_swapped_for_symlink_to_ssh_is_refused(tmp_path: Path) -> None:
    ssh = tmp_path / "fakehome" / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "id_ed25519").write_text("PRIVATE KEY")
    os.close(storage.open_home("web"))  # a first, normal launch
    home = paths.desktop_home("web")
    home.rename(home.with_name("home.old"))
    home.symlink_to(ssh)
    with pytest.raises(storage.UnsafePathError, match=r"symlink \(to .*\.ssh\)"):
        storage.open_home("web")


def test_outbox_swapped_for_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    outbox = paths.desktop_outbox("web")
    outbox.parent.mkdir(parents=True)
    outbox.symlink_to(target)
    with pytest.raises(storage.UnsafePathError, match="symlink"):
        storage.open_outbox("web")
    assert not any(target.iterdir())


def test_symlink_in_a_middle_component_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real-desktop"
    (real / "home").mkdir(parents=True)
    desktops = paths.data_home() / "desktops"
    desktops.mkdir(parents=True)
    (desktops / "web").symlink_to(real)
    with pytest.raises(storage.UnsafePathError, match="symlink"):
        storage.open_home("web")


def test_file_in_place_of_a_dir_is_refused() -> None:
    outbox = paths.desktop_outbox("web")
    outbox.parent.mkdir(parents=True)
    outbox.write_text("not a dir")
    with pytest.raises(storage.UnsafePathError, match="not a directory"):
        storage.open_outbox("web")


def test_dangling_symlink_is_not_created_through() -> None:
    home = paths.desktop_home("web")
    home.parent.mkdir(parents=True)
    victim = home.parent / "created-through-link"
    home.symlink_to(victim)
    with pytest.raises(storage.UnsafePathError):
        storage.open_home("web")
    assert not victim.exists()


def test_bad_desktop_names_never_reach_the_filesystem() -> None:
    for name in ("..", "a/b", "", "A", "x" * 33):
        with pytest.raises(ValueError):
            storage.open_home(name)


def test_seed_scan_keeps_symlinks_as_links_and_opens_files(tmp_path: Path) -> None:
    seed = storage.seed_dir("eph")
    (seed / ".config").mkdir(parents=True)
    (seed / ".config" / "app.conf").write_text("x=1\n")
    (seed / ".config" / "app.conf").chmod(0o640)
    secret = tmp_path / "secret"
    secret.write_text("do not copy")
    (seed / "link").symlink_to(secret)
    os.mkfifo(seed / "fifo")
    scanned = storage.scan_seed("eph")
    try:
        kinds = {e.relpath: e for e in scanned.entries}
        assert kinds[".config"].kind is SeedKind.DIR
        conf = kinds[".config/app.conf"]
        assert conf.kind is SeedKind.FILE and conf.mode == 0o640
        assert os.pread(scanned.fds[conf.slot], 100, 0) == b"x=1\n"
        assert kinds["link"].kind is SeedKind.SYMLINK
        assert kinds["link"].target == str(secret)
        assert "fifo" not in kinds
        assert len(scanned.fds) == 1
    finally:
        scanned.close()


def test_seed_created_empty_when_missing() -> None:
    scanned = storage.scan_seed("fresh")
    assert scanned.entries == [] and scanned.fds == {}
    assert storage.seed_dir("fresh").is_dir()


def test_seed_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    seed = storage.seed_dir("eph")
    seed.parent.mkdir(parents=True)
    seed.symlink_to(tmp_path)
    with pytest.raises(storage.UnsafePathError):
        storage.scan_seed("eph")


def test_layer_dirs() -> None:
    persistent = storage.prepare_layer("dev", ephemeral=False)
    assert persistent.upper.is_dir() and persistent.work.is_dir() and persistent.merged.is_dir()
    eph = storage.prepare_layer("tmp", ephemeral=True)
    assert eph.merged.is_dir() and eph.upper.parent.is_dir()
    assert not eph.upper.exists()  # lives in the helper's tmpfs only


@pytest.mark.parametrize("planted", ["symlink", "file"])
def test_planted_mountpoint_inside_the_home_is_refused(planted: str) -> None:
    home = paths.desktop_home("web")
    home.mkdir(parents=True)
    if planted == "symlink":
        (home / "Outbox").symlink_to("../../../oldroot/root/.ssh")
    else:
        (home / "Outbox").write_text("x")
    with pytest.raises(storage.UnsafePathError, match="~/Outbox"):
        os.close(storage.open_storage("home", "web"))
    os.close(storage.open_home("web"))  # without mount points to check it opens
