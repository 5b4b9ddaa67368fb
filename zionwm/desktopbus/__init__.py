"""Each desktop's own session bus, and what zionwm serves on it.

A desktop's programs get a private `dbus-daemon --session` behind a filtering
`xdg-dbus-proxy`, both started lazily when the desktop first runs a program and placed in
the desktop's cgroup. zionwm itself connects to the daemon directly (never through the proxy)
and serves `org.freedesktop.Notifications` and `org.zionwm.Open` there, so every notification
and every link reaches the compositor tagged with the desktop whose bus it came on.

No wlroots here: the compositor drives these objects from its event loop
(compositor/desktopbus_link.py).
"""
