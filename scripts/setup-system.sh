#!/bin/sh
# Install the Debian packages zionwm needs to build, run and test.
# Idempotent and quick when everything is present: apt is only called for what is missing.
set -eu

BUILD="libwlroots-dev libwayland-dev libxkbcommon-dev libpixman-1-dev libdrm-dev
 wayland-protocols pkg-config gcc libc6-dev musl-tools linux-libc-dev make libffi-dev libmagic1 libmagic-dev libseccomp2 libseccomp-dev
 libyara-dev python3-venv python3-dev libgirepository1.0-dev libcairo2-dev libpango1.0-dev"
# the compositor draws its text with pango (libpango1.0-dev pulls in its libraries): DejaVu
# first, fontconfig's fallback for the rest; WenQuanYi Micro Hei (5 MB) covers Chinese,
# Japanese and Korean names
# the lock screen checks the password through PAM (zionwm.lockauth: libpam and the modules
# a console login uses)
RUNTIME="bubblewrap iproute2 nftables passt wayvnc xwayland attr procps psmisc util-linux
 desktop-file-utils fonts-dejavu-core fonts-wqy-microhei fontconfig poppler-utils pulseaudio
 gir1.2-gtk-4.0 gir1.2-adw-1 libpam0g libpam-modules"
# safe copies of office documents (`zionctl quarantine convert`): LibreOffice without its GUI
# (about 250 MB installed with what it pulls in)
OFFICE="libreoffice-core-nogui libreoffice-writer-nogui libreoffice-calc-nogui
 libreoffice-impress-nogui"
TEST="weston foot grim wtype wl-clipboard wayland-utils sway clamav clamav-daemon clamdscan yara
 x11-apps x11-utils busybox-static iperf3 wget curl firejail fuse-overlayfs strace
 imagemagick python3-minimal swaybg xauth xterm xdotool xclip chromium waybar debootstrap podman
 dbus-daemon libglib2.0-bin pipewire pipewire-pulse pipewire-bin wireplumber pulseaudio-utils"

want="$BUILD $RUNTIME $OFFICE"
[ "${1:-}" = "--with-tests" ] && want="$want $TEST"
# each desktop's own session bus (docs/desktop-bus.md); notify-send for its tests
want="$want dbus-daemon dbus-bin xdg-dbus-proxy"
[ "${1:-}" = "--with-tests" ] && want="$want libnotify-bin"
# a real GTK 4 program inside a desktop reads the portal's settings in the portal tests
[ "${1:-}" = "--with-tests" ] && want="$want python3-gi"

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $p"
done
# /dev/fuse is open to every user on Debian (udev's default rules make it 0666); machines
# without udev (containers, micro-VMs) leave it 0600, and a user's compositor then cannot mount
# a desktop's writable /usr. Give it Debian's mode (as root only: no sudo prompt for this).
if [ -c /dev/fuse ] && [ "$(id -u)" = 0 ] && [ "$(stat -c %a /dev/fuse)" != 666 ]; then
    chmod 0666 /dev/fuse
fi
[ -z "$missing" ] && exit 0

echo "zionwm setup: installing Debian packages:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "need root or sudo to install:$missing" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
# clamav-daemon's package starts a clamd with no database; the tests start their own.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now clamav-daemon clamav-freshclam >/dev/null 2>&1 || true
fi
# zionwm runs pulseaudio only as each desktop's sound relay; on a PipeWire host the package's
# own user units would compete with pipewire-pulse for the session's sound socket.
if command -v systemctl >/dev/null 2>&1 && dpkg-query -W pipewire-pulse >/dev/null 2>&1; then
    $SUDO systemctl --global disable pulseaudio.service pulseaudio.socket >/dev/null 2>&1 || true
fi
