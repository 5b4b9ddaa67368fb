"""Pure policy of the desktop bus: what the proxy lets through, what a notification may say,
how often, and which links may leave a desktop. No I/O: tests call these directly.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from zionwm.ratelimit import Limiter
from zionwm.untrusted import clean_text

# Names zionwm owns on every desktop bus. The proxy grants programs TALK on them, never OWN,
# so no program can stand in for zionwm's services (and receive other programs' links or
# notifications) even if zionwm's own connection were gone.
NOTIFICATIONS_NAME = "org.freedesktop.Notifications"
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"
OPEN_NAME = "org.zionwm.Open"
OPEN_PATH = "/org/zionwm/Open"
OPEN_INTERFACE = "org.zionwm.Open"

# Well-known names a desktop's programs may own and call each other on: what applications
# use for single-instance handling and talking among themselves. A prefix needs two elements
# (the proxy refuses "com.*"). org.freedesktop.* is not in it: those are the services of the
# desktop itself (notifications, portals, secrets).
APP_NAME_PREFIXES = (
    "org.mozilla.*",
    "org.chromium.*",
    "com.google.*",
    "org.gnome.*",
    "org.gtk.*",
    "org.kde.*",
    "org.xfce.*",
    "org.mpris.*",
    "org.videolan.*",
    "org.libreoffice.*",
    "com.github.*",
    "io.github.*",
    "org.zionwm.app.*",
)
# What zionwm (or another part of it, such as a portal backend) serves on the bus.
ZIONWM_SERVICES = (NOTIFICATIONS_NAME, OPEN_NAME, "org.freedesktop.portal.*")


def proxy_argv(
    proxy: str,
    upstream: str,
    listen: str,
    ready_fd: int,
    own: Sequence[str] = APP_NAME_PREFIXES,
    talk: Sequence[str] = ZIONWM_SERVICES,
    log: bool = False,
) -> list[str]:
    """xdg-dbus-proxy in front of a desktop's bus, filtering: programs may own and talk to
    application names, talk to zionwm's services, and see nothing else. `log`: the proxy
    prints one line per message on its stdout (what `ProxyLog` reads refusals from)."""
    argv = [proxy, f"--fd={ready_fd}", upstream, listen, "--filter", "--sloppy-names"]
    argv += ["--log"] if log else []
    argv += [f"--own={name}" for name in own]
    argv += [f"--talk={name}" for name in talk]
    return argv


class ProxyLog:
    """The names a desktop's programs were refused, read from xdg-dbus-proxy's `--log`
    lines: a call whose next line is `*HIDDEN*` went to a name the filter does not let them
    see; `Filtering message due to arg0 NAME` is a name they may not own (or ask about)."""

    _CALL = re.compile(r"^C\d+: -> (\S+) call ")
    _ARG0 = re.compile(r"^Filtering message due to arg0 (\S+?),? policy")

    def __init__(self) -> None:
        self._dest: str | None = None
        self._arg0: str | None = None

    def feed(self, line: str) -> str | None:
        """One line; the refused name it completes, if any."""
        line = line.strip()
        if m := self._CALL.match(line):
            self._dest, self._arg0 = m.group(1), None
            return None
        if m := self._ARG0.match(line):
            self._arg0 = m.group(1)
            return None
        if line.startswith("*HIDDEN*"):
            name = self._arg0 or (self._dest if self._dest != BUS_NAME else None)
            self._dest = self._arg0 = None
            return name
        if not line.startswith("*"):
            self._dest = self._arg0 = None
        return None


BUS_NAME = "org.freedesktop.DBus"


def confine_argv(
    bwrap: str,
    bus_dir: str,
    root_links: Sequence[tuple[str, str | None]],
    argv: Sequence[str],
    files: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """The daemon or the proxy in a sandbox of its own: the read-only system, its bus
    directory, and nothing else of the host (no home, no network, no other sockets).
    `root_links` are the merged-/usr entries of / (path, symlink target or None for a
    directory), as the launcher probes them. `files` (host path, path inside) are bound
    read-only: the daemon needs a passwd entry for its own uid."""
    out = [bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
    out += ["--ro-bind", "/usr", "/usr"]
    for path, target in root_links:
        out += ["--symlink", target, path] if target is not None else ["--ro-bind", path, path]
    out += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for src, dest in files:
        out += ["--ro-bind", src, dest]
    out += ["--bind", bus_dir, bus_dir, "--", *argv]
    return out


def daemon_config(listen_path: str) -> str:
    """A session bus configuration of the desktop's own: one unix socket, no activation of
    host services (no <servicedir>), no TCP, and the stock session limits.

    ANONYMOUS besides EXTERNAL: a program whose sandbox maps the user to another uid (so
    the uid it claims is not the one the kernel reports) still gets on. Who can reach the
    socket is the access control here: the daemon's own socket is in a directory only
    zionwm's user can enter, and the proxy's is bound only into this desktop's sandboxes."""
    return f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path={listen_path}</listen>
  <auth>EXTERNAL</auth>
  <auth>ANONYMOUS</auth>
  <allow_anonymous/>
  <policy context="default">
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    <allow own="*"/>
  </policy>
  <limit name="max_incoming_bytes">16000000</limit>
  <limit name="max_message_size">8000000</limit>
  <limit name="max_connections_per_user">256</limit>
  <limit name="max_names_per_connection">512</limit>
  <limit name="max_match_rules_per_connection">512</limit>
</busconfig>
"""


# ---------------------------------------------------------------- notifications

TITLE_MAX = 80
BODY_MAX = 400
BODY_LINES = 4
APP_NAME_MAX = 40


@dataclass(frozen=True)
class Notice:
    """One notification of a desktop, cleaned. The desktop is never part of what a program
    sends: it is the bus the message came on."""

    desktop: str
    app: str
    title: str
    body: str
    urgent: bool

    def text(self) -> str:
        head = f"{self.app}: {self.title}" if self.app and self.title else self.title or self.app
        return f"{head}\n{self.body}" if self.body else head


def make_notice(
    desktop: str, app_name: object, summary: object, body: object, hints: object
) -> Notice:
    urgent = False
    if isinstance(hints, dict):
        urgency = hints.get("urgency")
        # jeepney hands variants as (signature, value)
        if isinstance(urgency, tuple) and len(urgency) == 2:
            urgency = urgency[1]
        urgent = urgency == 2
    return Notice(
        desktop=desktop,
        app=clean_text(app_name, APP_NAME_MAX),
        title=clean_text(summary, TITLE_MAX) or "(no title)",
        body=clean_text(body, BODY_MAX, lines=BODY_LINES),
        urgent=urgent,
    )


class RateLimit(Limiter):
    """A token bucket per desktop: `burst` at once, then `per_second`. What is over is
    dropped (and counted in `dropped`, so the user can be told once)."""

    def __init__(
        self, burst: int = 5, per_second: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(burst, per_second=per_second)
        self._clock = clock

    def allow(self) -> bool:
        return self.admit("", self._clock())

    def available(self) -> int:
        """How many `allow()` would let through now (taking none)."""
        return int(self._refill("", self._clock()).level)


class FrozenQueue:
    """Notices of a frozen desktop, held until it thaws (when the desktop says "queue").
    Bounded: a desktop cannot pile up memory in the compositor while nobody looks."""

    def __init__(self, limit: int = 20) -> None:
        self.limit = limit
        self.items: list[Notice] = []
        self.dropped = 0

    def put(self, notice: Notice) -> None:
        if len(self.items) >= self.limit:
            self.dropped += 1
            return
        self.items.append(notice)

    def take(self) -> list[Notice]:
        items, self.items = self.items, []
        return items


# ---------------------------------------------------------------- links

URL_MAX = 2048


class RefusedLink(ValueError):
    """A link that does not leave its desktop; the message says why, for the user."""


def check_url(url: object) -> str:
    """The URL if it may be handed to another desktop's browser: http or https, a host, at
    most URL_MAX characters, printable ASCII only (so no newline, no space, nothing a
    browser or a shell could read as a second argument or an option)."""
    if not isinstance(url, str):
        raise RefusedLink("not a string")
    if len(url) > URL_MAX:
        raise RefusedLink(f"longer than {URL_MAX} characters")
    if not url or any(not (0x21 <= ord(c) <= 0x7E) for c in url):
        raise RefusedLink("empty, or has spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise RefusedLink(f"not a URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not url.lower().startswith(parts.scheme + "://"):
        raise RefusedLink("only http and https links are opened in another desktop")
    if not parts.hostname:
        raise RefusedLink("no host")
    return url


def short(url: str, limit: int = 60) -> str:
    """A link as shown in a notice: cleaned and shortened."""
    return clean_text(url, limit)


def browser_argv(browser: Sequence[str], url: str) -> list[str]:
    """The browser command of the target desktop with the checked URL as its last argument:
    the only thing that crosses from the asking desktop."""
    return [*browser, check_url(url)]
