#!/bin/sh
# `make run`: start zionwm the way this machine allows.
#  - inside a Wayland or X11 session: nested, in a window;
#  - on a text console with a seat: on the real displays (DRM/libinput);
#  - otherwise (a server, a VM, CI): headless, served over VNC on 127.0.0.1:5900.
set -eu
cd "$(dirname "$0")/.."
ZIONWM=.venv/bin/zionwm

if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR="/tmp/zionwm-runtime-$(id -u)"
    mkdir -p "$XDG_RUNTIME_DIR"
    chmod 700 "$XDG_RUNTIME_DIR"
    export XDG_RUNTIME_DIR
fi

if [ -n "${WAYLAND_DISPLAY:-}" ] || [ -n "${DISPLAY:-}" ]; then
    echo "zionwm: running nested in your current session"
    exec "$ZIONWM" "$@"
fi

if [ -n "${XDG_SEAT:-}" ] && [ -e /dev/dri/card0 ] && tty -s; then
    echo "zionwm: running on this console's displays"
    exec "$ZIONWM" "$@"
fi

PORT="${ZIONWM_VNC_PORT:-5900}"
export WLR_RENDERER="${WLR_RENDERER:-pixman}" WLR_LIBINPUT_NO_DEVICES=1
cat <<MSG
zionwm: no display and no seat here, so running headless and serving it over VNC.
  Connect a VNC viewer to 127.0.0.1:$PORT (from another machine: ssh -L $PORT:127.0.0.1:$PORT this-host).
  Keys: Super+Return terminal, Super+1..4 desktops, Super+Shift+E quit. Ctrl+C here stops it.
MSG
exec "$ZIONWM" --headless --vnc "127.0.0.1:$PORT" "$@"
