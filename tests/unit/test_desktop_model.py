"""The pure desktop model and the protocol policy, without a compositor."""

from __future__ import annotations

import pytest

from zionwm.compositor.desktops import DesktopModel, SwitchError, SwitchPlan
from zionwm.compositor.policy import DESKTOP_GLOBALS, PRIVILEGED_GLOBALS, desktop_may_bind


def model() -> DesktopModel[str]:
    return DesktopModel(["personal", "work", "gaming", "web"])


def test_switch_by_name_and_number_and_back() -> None:
    m = model()
    assert m.active == "personal"
    assert m.switch("work") == SwitchPlan("personal", "work")
    assert m.switch("3") == SwitchPlan("work", "gaming")  # Super+3 counts from 1
    assert m.switch("gaming") is None  # already shown: nothing to do
    assert m.switch_previous() == SwitchPlan("gaming", "work")
    assert m.previous == "gaming"


def test_unknown_desktops_are_refused_with_the_choices() -> None:
    m = model()
    for bad in ("nosuch", "0", "5", ""):
        with pytest.raises(SwitchError, match="personal, work, gaming, web"):
            m.switch(bad)
    assert m.active == "personal"


def test_focus_returns_to_the_last_focused_window_of_a_desktop() -> None:
    m = model()
    m.add_window("work", "editor")
    m.add_window("work", "terminal")
    m.focus("work", "editor")
    assert m.focused("work") == "editor"
    m.remove_window("work", "editor")
    assert m.focused("work") == "terminal"
    assert m.focused("personal") is None


def test_reload_keeps_desktops_that_still_hold_windows() -> None:
    m = model()
    m.add_window("web", "browser")
    m.switch("gaming")
    kept = m.update_names(["personal", "work", "music"])
    assert kept == ["web"]  # its programs still live there
    assert m.names == ["personal", "work", "music", "web"]
    assert m.active == "personal"  # gaming went away while shown
    assert m.desktops["music"].index == 2


def test_a_model_needs_a_desktop() -> None:
    with pytest.raises(ValueError):
        DesktopModel([])


def test_privileged_protocols_are_never_on_the_desktop_allow_list() -> None:
    assert not DESKTOP_GLOBALS & PRIVILEGED_GLOBALS
    for name in PRIVILEGED_GLOBALS:
        assert not desktop_may_bind(name)
    assert desktop_may_bind("wl_compositor") and desktop_may_bind("xdg_wm_base")
    # deny by default: a protocol nobody reviewed is hidden
    assert not desktop_may_bind("zwp_some_future_protocol_v1")


def test_a_hidden_window_goes_to_the_bottom_of_the_focus_order() -> None:
    m = model()
    for w in ("a", "b", "c"):
        m.add_window("work", w)
    m.demote("work", "c")  # c was focused, then unmapped
    assert m.focused("work") == "b"
    assert m.desktops["work"].focus_stack == ["c", "a", "b"]
