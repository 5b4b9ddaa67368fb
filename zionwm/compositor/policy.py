"""Which Wayland globals a desktop's clients may see: a reviewed allow-list, deny by default.

Host (trusted) clients see everything except the desktops' own seats. A desktop client sees
only the globals below plus its desktop's own wl_seat. Anything a later wlroots adds is
hidden from desktops until someone reviews it and adds it here.
"""

from __future__ import annotations

# Reviewed: each is needed by ordinary applications and grants no access beyond the
# client's own surfaces and the desktop's own seat.
DESKTOP_GLOBALS: frozenset[str] = frozenset(
    {
        "wl_compositor",
        "wl_subcompositor",
        "wl_shm",
        "wl_output",
        "wl_data_device_manager",  # per-desktop seat, so per-desktop clipboard
        "zwp_primary_selection_device_manager_v1",
        "xdg_wm_base",
        "zxdg_output_manager_v1",
        "zxdg_decoration_manager_v1",
        "org_kde_kwin_server_decoration_manager",
        "wp_viewporter",
        "wp_presentation",
        "zwp_idle_inhibit_manager_v1",
        "zwp_pointer_constraints_v1",
        "zwp_relative_pointer_manager_v1",
        "zwp_pointer_gestures_v1",
        "zwp_linux_dmabuf_v1",
        "wl_drm",
        # activation only ever focuses a window of the desktop being shown (server.py)
        "xdg_activation_v1",
    }
)

# Documented for reviewers and tests: what a desktop must never see.
PRIVILEGED_GLOBALS: frozenset[str] = frozenset(
    {
        "zwlr_screencopy_manager_v1",
        "zwlr_export_dmabuf_manager_v1",
        "zwp_virtual_keyboard_manager_v1",
        "zwlr_virtual_pointer_manager_v1",
        "zwlr_data_control_manager_v1",
        "zwlr_foreign_toplevel_manager_v1",
        "zwlr_layer_shell_v1",
        "zwlr_output_manager_v1",
        "zwlr_output_power_manager_v1",
        "zwlr_gamma_control_manager_v1",
        "zwlr_input_inhibit_manager_v1",
        "zwp_keyboard_shortcuts_inhibit_manager_v1",
        "org_kde_kwin_idle",
        "ext_idle_notifier_v1",
    }
)

assert not DESKTOP_GLOBALS & PRIVILEGED_GLOBALS


def desktop_may_bind(interface: str) -> bool:
    """The same decision the C filter makes, for tests and `zionctl status`."""
    return interface in DESKTOP_GLOBALS
