"""Where the manager may run: only on the compositor's host socket, never inside a desktop.

A program inside a desktop sees that desktop's socket (under zionwm's runtime directory, or
bound as `wayland-0` in its sandbox) and no control socket; a manager there would be a
window any program of that desktop could draw over or drive. Pure: the caller passes the
environment and what the compositor says its host socket is.
"""

from __future__ import annotations

from pathlib import Path

EXIT_REFUSED = 3


def display_path(wayland_display: str, runtime_dir: str) -> Path:
    p = Path(wayland_display)
    return p if p.is_absolute() else Path(runtime_dir) / p


def refusal(env: dict[str, str], host_socket: str | None) -> str | None:
    """Why the manager must not start with this environment; None when it may."""
    display = env.get("WAYLAND_DISPLAY", "")
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if not display:
        return "WAYLAND_DISPLAY is not set: start zionwm-manager inside zionwm (Super+M)."
    if not runtime:
        return "XDG_RUNTIME_DIR is not set: cannot tell which Wayland socket this is."
    path = display_path(display, runtime)
    desktops_dir = Path(runtime) / "zionwm"
    if path.is_relative_to(desktops_dir):
        return (
            f"WAYLAND_DISPLAY is {display}, a desktop's socket: the manager runs only on "
            "zionwm's host socket, outside every desktop (start it with Super+M)."
        )
    if host_socket is None:
        return None  # no compositor to ask; the connection error says more
    if path != display_path(host_socket, runtime):
        return (
            f"WAYLAND_DISPLAY is {display}, but zionwm's host socket is {host_socket}: "
            "the manager runs only on zionwm's host socket."
        )
    return None
