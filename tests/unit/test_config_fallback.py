"""The config that runs while the user's file is broken (zionwm.config.load.locked_down)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zionwm import config as cfg
from zionwm.isolation.spec import Devices, NetMode


@pytest.fixture(autouse=True)
def _private_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))


def test_broken_file_runs_the_default_desktops_with_nothing_granted(tmp_path: Path) -> None:
    path = tmp_path / "config.py"
    path.write_text('from zionwm.config import desktop\ndesktop("mine", colour="blue")\n')
    config, errors, fell_back = cfg.load_or_fallback(path)
    assert fell_back and errors
    default = cfg.load_default()
    # Same names and order: each desktop's files stay where they are, seen by it alone.
    assert [d.name for d in config.desktops] == [d.name for d in default.desktops]
    assert any(d.network.mode is not NetMode.NONE for d in default.desktops)
    assert any(d.devices != Devices() for d in default.desktops)
    for d in config.desktops:
        assert d.network.mode is NetMode.NONE and d.network.allow == ()
        assert d.devices == Devices()
        assert not d.x11 and not d.allow_fullscreen
        assert d.env == () and d.autostart == ()
    # Restrictions stay: the web desktop is still ephemeral and its downloads still audited.
    web = config.desktop("web")
    assert web is not None and web.ephemeral and web.downloads is not None
    assert config.bindings == default.bindings


def test_a_good_file_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "config.py"
    path.write_text(
        "from zionwm.config import Devices, Network, desktop\n"
        'desktop("mine", colour="#123456", network=Network.full(), devices=Devices(gpu=True))\n'
    )
    config, errors, fell_back = cfg.load_or_fallback(path)
    assert not fell_back and errors == []
    (mine,) = config.desktops
    assert mine.network.mode is NetMode.FULL and mine.devices.gpu
