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
    open_links_in="web",  # links clicked here open in the web desktop's browser
)

desktop(
    "work",
    colour="#22c55e",
    open_links_in="web",
    network=Network.full(),
    freeze_after="5m",
    # layout="tile",  # windows side by side, master and stack (Super+T toggles it live)
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
    nested_sandbox=True,  # the browser's own sandbox runs inside this one
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
bind("Super+F", "fullscreen")  # true fullscreen (strip hidden) only where allowed
bind("Super+Escape", "overview")  # every desktop at once: arrows, 1-9, Enter, Esc
bind("Super+L", "lock")  # the screen, until your password
bind("Super+Shift+E", "quit")
bind("Super+Shift+R", "reload")
bind("Super+Shift+C", "clipboard-copy")
bind("Super+Shift+V", "clipboard-paste")

# Windows of the shown desktop (docs/windows.md). Alt+Tab never reaches another desktop.
bind("Alt+Tab", "focus next")
bind("Alt+Shift+Tab", "focus prev")
bind("Super+Left", "snap left")
bind("Super+Right", "snap right")
bind("Super+Up", "maximize on")
bind("Super+Down", "restore")
bind("Super+T", "layout toggle")  # tile this desktop's windows, or let them float again
for key, direction in (("Left", "left"), ("Right", "right"), ("Up", "up"), ("Down", "down")):
    bind(f"Super+Shift+{key}", f"move {direction} 40")
bind("Super+Ctrl+Right", "resize grow width 40")
bind("Super+Ctrl+Left", "resize shrink width 40")
bind("Super+Ctrl+Down", "resize grow height 40")
bind("Super+Ctrl+Up", "resize shrink height 40")

# settings(keyboard_layout="de", keyboard_options="caps:escape", repeat_rate=30)
# Downloads are scanned by the clamd at /run/clamav/clamd.ctl when one runs there (Debian's
# clamav-daemon); without one they wait in quarantine, marked "no antivirus scan", unless:
# settings(antivirus="if-available")  # release them after the hold anyway
# settings(clamd_socket="/run/clamd.scan/clamd.sock")  # a clamd somewhere else
