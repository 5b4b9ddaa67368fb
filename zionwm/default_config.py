"""zionwm config: the desktops a new user gets.

zionwm writes this file to ~/.config/zionwm/config.py at first start; edit that copy.
Check it with `zionwm --check-config`, apply it with Super+Shift+R or `zionctl reload`
(a broken file is refused and the running config kept). The API is in docs/config.md.
"""

from zionwm.config import Devices, Downloads, Limits, Network, bind, desktop, settings

# Desktops, in Super+1..9 order. Each one is a compartment: its own home, cgroup,
# network namespace and Wayland socket. A field left out means the safest choice:
# no devices, no network, no limits, never frozen.

desktop(
    "personal",
    colour="#3b82f6",
    devices=Devices(gpu=True, audio=True),
    network=Network.full(),
    freeze_after="5m",  # hidden for 5 minutes: its programs stop using CPU
)

desktop(
    "work",
    colour="#22c55e",
    network=Network.full(),
    freeze_after="5m",
)

desktop(
    "gaming",
    colour="#a855f7",
    devices=Devices(gpu=True, audio=True),
    network=Network.full(),
    limits=Limits(cpu_weight=400),  # ahead of the other desktops when CPUs are busy
    freeze_after=None,  # games and their launchers keep running in the background
    x11=True,  # many games still need X11: an Xwayland of this desktop's own
    allow_fullscreen=True,  # true fullscreen hides the trust colour: only here
)

desktop(
    "web",
    colour="#ef4444",
    ephemeral=True,  # a fresh, empty home every session
    network=Network.full(block_lan=True),  # the internet, not the machines around you
    downloads=Downloads(release_to="personal", hold="10m"),
    limits=Limits(pids_max=8192),
    freeze_after=30,
)

# Key bindings: "Modifiers+key" -> a command (`zionctl help` lists them all).

TERMINAL = ["foot"]
settings(terminal=TERMINAL)

for n in range(1, 10):
    bind(f"Super+{n}", f"switch {n}")
bind("Super+Tab", "switch-prev")
bind("Super+Return", ["spawn", *TERMINAL])
bind("Super+M", "manager")  # zionwm-manager: desktops, their apps, the quarantine
bind("Super+Shift+Q", "close")
bind("Super+F", "fullscreen")
bind("Super+Shift+E", "quit")
bind("Super+Shift+R", "reload")
bind("Super+Shift+C", "clipboard-copy")
bind("Super+Shift+V", "clipboard-paste")

# settings(keyboard_layout="de", keyboard_options="caps:escape", repeat_rate=30)
# settings(clamd_socket="/run/clamav/clamd.ctl")  # scan downloads with clamd too
