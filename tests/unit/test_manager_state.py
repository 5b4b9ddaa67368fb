"""The manager's own state (favourites) and the disk use of a home, without GTK."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from zionwm.manager.diskuse import DiskUseCache, measure
from zionwm.manager.favourites import Favourites
from zionwm.manager.models import DesktopRow


def test_favourites_are_per_desktop_ordered_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "manager.json"
    f = Favourites(path)
    assert f.toggle("web", "chromium") is True
    assert f.toggle("web", "foot") is True
    assert f.toggle("work", "foot") is True
    assert f.toggle("web", "chromium") is False
    again = Favourites(path)
    assert again.of("web") == ["foot"] and again.of("work") == ["foot"]
    assert again.rank("web", "foot") == 0 and again.rank("web", "vim") == 1
    assert not list(path.parent.glob(".*.tmp")), "a temporary file was left"


def test_a_broken_state_file_gives_no_favourites_and_is_kept_until_a_change(
    tmp_path: Path,
) -> None:
    path = tmp_path / "manager.json"
    path.write_text("{not json")
    f = Favourites(path)
    assert f.of("web") == [] and f.error is not None
    assert path.read_text() == "{not json"
    f.toggle("web", "foot")
    assert json.loads(path.read_text()) == {"favourites": {"web": ["foot"]}}


def test_disk_use_counts_blocks_once_per_inode_and_stops_at_its_budget(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "a" / "b").mkdir(parents=True)
    (home / "a" / "b" / "data").write_bytes(os.urandom(256 * 1024))
    os.link(home / "a" / "b" / "data", home / "hardlink")
    (home / "sparse").write_bytes(b"")
    os.truncate(home / "sparse", 1 << 30)  # 1 GiB long, nothing allocated
    (home / "loop").symlink_to(home)
    use = measure(home)
    assert use is not None and use.complete
    assert 256 * 1024 <= use.bytes < 512 * 1024, use
    for i in range(50):
        (home / f"f{i}").write_text("x")
    cut = measure(home, max_entries=10)
    assert cut is not None and not cut.complete and cut.files >= 10
    assert measure(tmp_path / "missing") is None


def test_the_cache_measures_off_the_calling_thread_and_once(tmp_path: Path) -> None:
    done = threading.Event()
    seen: list[tuple[Path, str]] = []

    def finished(path: Path, use: object) -> None:
        seen.append((path, threading.current_thread().name))
        done.set()

    cache = DiskUseCache(finished)
    cache.request(tmp_path)
    assert done.wait(30)
    assert seen == [(tmp_path, "disk use")]
    cache.request(tmp_path)  # fresh in the cache: nothing queued, no second walk
    assert cache._queued == []
    assert cache.get(tmp_path) is not None


def test_the_row_says_the_home_size_and_the_refusals() -> None:
    row = DesktopRow("web", home_bytes=3 * 2**20, refusals=2)
    assert "home 3.0 MiB" in row.summary and "2 refusals" in row.summary
    row.home_complete = False
    assert "home at least 3.0 MiB" in row.summary


def test_the_output_scale_comes_from_the_environment_within_bounds() -> None:
    from zionwm.compositor.outputs import scale_from_env

    assert scale_from_env({}) == 1.0
    assert scale_from_env({"ZIONWM_OUTPUT_SCALE": "2"}) == 2.0
    assert scale_from_env({"ZIONWM_OUTPUT_SCALE": "1.5"}) == 1.5
    for bad in ("two", "0", "9", "nan"):
        assert scale_from_env({"ZIONWM_OUTPUT_SCALE": bad}) == 1.0
