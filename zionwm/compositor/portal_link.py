"""The slow parts of a desktop's portal (zionwm/desktopbus/portal.py), done by the compositor:

- FileChooser: start the host chooser (desktopbus/chooser.py) for one request, read its
  answer, check every path again against the desktop's roots (desktopbus/files.py) and
  answer with the paths as the sandbox sees them;
- Screenshot: draw the desktop's own windows (compositor/capture.py) into a PNG in the
  desktop's ~/Pictures, written without following any link the desktop planted;
- OpenURI.OpenFile (and `xdg-open FILE`): find the file among the desktop's own, then send
  it through the audited path to the desktop `open_files_in` names for its type: a `send`
  request to the quarantine service (quarantine/client.py), made on a worker of the
  compositor's offload lanes (the service copies the file before it answers), whose reply
  names the item; the item is opened in its target once the service says it was released;
- Settings: the appearance part of the user's config, and SettingChanged on reload.

Which desktop asks is always the bus the request came on.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from jeepney import DBusAddress, new_signal

from zionwm import paths
from zionwm.desktopbus import files, policy
from zionwm.desktopbus.events import (
    ChooseRequest,
    CloseRequest,
    OpenFileRequest,
    ScreenshotRequest,
)
from zionwm.desktopbus.portal import (
    CANCELLED,
    FAILED,
    PORTAL_PATH,
    SETTING_CHANGED,
    SETTINGS,
    SUCCESS,
    Appearance,
    settings_values,
)
from zionwm.isolation import storage
from zionwm.quarantine.client import QuarantineClient, QuarantineError

from . import capture
from .loop import FdHandle

if TYPE_CHECKING:
    from zionwm.isolation.launcher import Launcher

    from .launch_notices import LaunchNotices
    from .server import Server

log = logging.getLogger(__name__)


class DesktopBuses(Protocol):
    """What the portal needs of the desktop bus link (which owns this link, so no import)."""

    @property
    def running(self) -> Mapping[str, Any]: ...

    def respond(
        self, desktop: str, handle: str, code: int, results: dict[str, tuple[str, Any]]
    ) -> None: ...

    def _watch_writes(self, desktop: str, run: Any) -> None: ...


CHOOSER_OUT_MAX = 1 << 20
PICTURES = "Pictures"


@dataclass
class _Chooser:
    desktop: str
    handle: str
    save: bool
    proc: subprocess.Popen[bytes]
    roots: tuple[files.Root, ...]
    out: bytearray = field(default_factory=bytearray)
    reader: FdHandle | None = None


def match_rule(rules: tuple[tuple[str, str], ...], mime: str) -> str | None:
    """The desktop the first matching rule names: exact type, then 'type/*', then '*'."""
    family = mime.split("/", 1)[0] + "/*"
    for wanted in (mime, family, "*"):
        for pattern, target in rules:
            if pattern == wanted:
                return target
    return None


RECENT_RELEASES = 64
# the lane of the compositor's offload workers where files are sent to the quarantine: one
# request at a time, in the order the programs asked
SEND_LANE = "quarantine sends"
# what opens a released file in its target: the target desktop's own default handler for
# the type (its ~/.config/mimeapps.list, then the system's), found by xdg-utils' xdg-open
# without the defaults zionwm puts first (they would send the file on again); in a session
# without a desktop environment xdg-utils runs the handler in the foreground, so the
# sandbox lives as long as the handler does. With no handler for the type, xdg-utils falls
# back to $BROWSER: the target's own `browser` (zionwm's $BROWSER would send it on too).
OPEN_RELEASED = (
    "/usr/bin/env",
    "XDG_CONFIG_DIRS=/etc/xdg",
    "XDG_DATA_DIRS=/usr/local/share:/usr/share",
)
XDG_OPEN = "/usr/bin/xdg-open"
# words xdg-utils passes on as they are in $BROWSER (it splits it at ':' and spaces, and
# reads '%s' in it)
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./=+,@-]+")
# what xdg-utils' exit statuses mean (xdg-open(1))
XDG_OPEN_FAILURES = {
    1: "xdg-open refused its arguments",
    2: "the file was not there",
    3: "it has no program for this type of file",
    4: "its program for this type of file failed",
}


def open_released_argv(browser: tuple[str, ...], path: str) -> list[str]:
    """The command that opens the released `path` in a desktop whose `browser` is that."""
    plain = bool(browser) and all(_PLAIN_WORD.fullmatch(w) for w in browser)
    # an empty $BROWSER lets xdg-utils try the usual browsers instead
    return [*OPEN_RELEASED, f"BROWSER={' '.join(browser) if plain else ''}", XDG_OPEN, path]


def xdg_open_failure(code: int) -> str:
    return XDG_OPEN_FAILURES.get(code, f"xdg-open exited with status {code}")


def send_to_quarantine(source: str, target: str, rel: str) -> list[dict[str, Any]]:
    """Ask the quarantine service to take `rel` (in `source`'s home) for `target`: the
    reply's results, each with the item id or why it was refused. Blocking: runs on a
    worker, never on the compositor's thread."""
    with QuarantineClient() as client:
        return client.send(source, target, [rel])


def released_path(home: str, item: Mapping[str, Any]) -> str | None:
    """Where a released send item is in its target's sandbox, or None if it was not
    delivered under the home (or its name is not a plain name)."""
    parts = [p for p in str(item.get("subdir", "")).split("/") if p]
    name = item.get("release_name") or item.get("name")
    if not parts or parts[0] != "home" or not isinstance(name, str):
        return None
    if any(p in (".", "..") for p in parts) or name in ("", ".", "..") or "/" in name:
        return None
    return "/".join([home, *parts[1:], name])


class PortalLink:
    def __init__(
        self, server: Server, launcher: Launcher, buses: DesktopBuses, launches: LaunchNotices
    ) -> None:
        self.server = server
        self.launcher = launcher
        self.buses = buses
        self.launches = launches
        self.choosers: dict[str, _Chooser] = {}  # by request handle
        # files a program asked to open elsewhere: item id -> target, until released
        self.to_open: dict[int, str] = {}
        # the last released send items, in case the release is seen before the send ended
        self.released: dict[int, dict[str, Any]] = {}
        self._appearance = self.appearance()

    # ---- settings ----

    def appearance(self) -> Appearance:
        s = self.server.config.settings
        return Appearance(
            color_scheme=getattr(s, "color_scheme", "default"),
            accent_colour=getattr(s, "accent_colour", None),
            font=getattr(s, "font", ""),
            monospace_font=getattr(s, "monospace_font", ""),
            document_font=getattr(s, "document_font", ""),
        )

    def reload(self) -> None:
        new = self.appearance()
        old, self._appearance = self._appearance, new
        if new == old:
            return
        before, after = settings_values(old), settings_values(new)
        for desktop, run in self.buses.running.items():
            run.service.portal.appearance = new
            for ns, values in after.items():
                for key, value in values.items():
                    if before.get(ns, {}).get(key) != value:
                        sig = new_signal(
                            DBusAddress(PORTAL_PATH, interface=SETTINGS),
                            SETTING_CHANGED.name,
                            SETTING_CHANGED.args,
                            (ns, key, value),
                        )
                        run.service._queue(sig)
            run.service.flush()
            self.buses._watch_writes(desktop, run)

    # ---- the desktop's files ----

    def roots(self, desktop: str) -> tuple[files.Root, ...]:
        spec = self.server.desktops[desktop].spec
        user = self.launcher.host.user
        return files.roots(
            desktop,
            f"/home/{user}",
            has_home=not spec.ephemeral,
            has_downloads=spec.downloads is not None,
        )

    def _respond(
        self,
        desktop: str,
        handle: str,
        code: int,
        results: dict[str, tuple[str, Any]] | None = None,
    ) -> None:
        self.buses.respond(desktop, handle, code, results or {})

    # ---- FileChooser ----

    def choose(self, req: ChooseRequest) -> None:
        d = self.server.desktops.get(req.desktop)
        if d is None:
            return
        roots = self.roots(req.desktop)
        start = select = None
        # what the program suggests is read as the sandbox would read it, and dropped
        # (not followed) when it leads outside the desktop's own folders
        for raw, is_file in ((req.current_folder, False), (req.current_file, True)):
            if raw is None:
                continue
            try:
                host = files.to_host(roots, raw)
            except files.OutsideRoots as exc:
                log.warning("desktop %s: chooser: ignored suggested path: %s", req.desktop, exc)
                continue
            if is_file:
                select, start = str(host), str(host.parent)
            else:
                start = str(host)
        doc = {
            "desktop": req.desktop,
            "colour": d.spec.colour_hex,
            "title": req.title,
            "save": req.save,
            "multiple": req.multiple,
            "directory": req.directory,
            "accept_label": req.accept_label,
            "current_name": req.current_name,
            "roots": [
                {"label": r.label, "host": str(r.host), "inside": r.inside, "writable": r.writable}
                for r in roots
            ],
            "start": start,
            "select": select,
        }
        env = dict(os.environ)
        if os.environ.get("WLR_RENDERER") == "pixman":
            env.setdefault("GSK_RENDERER", "cairo")
        for name in ("GTK_USE_PORTAL", "GDK_DEBUG"):
            env.pop(name, None)  # the chooser itself never asks a portal
        argv = [sys.executable, "-m", "zionwm.desktopbus.chooser"]
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            self._respond(req.desktop, req.handle, FAILED)
            self.server.notify(f"{req.desktop}: the file chooser did not start: {exc}")
            return
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(doc).encode())
            proc.stdin.close()
        except OSError:
            pass
        os.set_blocking(proc.stdout.fileno(), False)
        ch = _Chooser(req.desktop, req.handle, req.save, proc, roots)
        self.choosers[req.handle] = ch
        ch.reader = self.server.loop.add_reader(
            proc.stdout.fileno(), lambda: self._on_chooser_output(ch), f"chooser of {req.desktop}"
        )
        self.server.children.adopt(proc.pid, argv, None, proc.poll, proc.kill)
        log.info("desktop %s: file chooser started (pid %d)", req.desktop, proc.pid)

    def _on_chooser_output(self, ch: _Chooser) -> None:
        assert ch.proc.stdout is not None
        try:
            data = os.read(ch.proc.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            ch.out += data
            if len(ch.out) <= CHOOSER_OUT_MAX:
                return
        self._end_chooser(ch)
        code, results = self.check_choice(ch.desktop, ch.roots, ch.save, bytes(ch.out))
        self._respond(ch.desktop, ch.handle, code, results)

    def check_choice(
        self, desktop: str, roots: tuple[files.Root, ...], save: bool, out: bytes
    ) -> tuple[int, dict[str, tuple[str, Any]]]:
        """The chooser's answer, checked again: every path resolved into the roots."""
        try:
            answer = json.loads(out or b"{}")
        except ValueError:
            answer = {}
        chosen = answer.get("paths") if isinstance(answer, dict) else None
        if not chosen or not isinstance(chosen, list):
            return CANCELLED, {}
        uris: list[str] = []
        try:
            for p in chosen:
                if not isinstance(p, str):
                    raise files.OutsideRoots("not a path")
                if save:
                    _host, inside = files.save_target(
                        roots, os.path.dirname(p), os.path.basename(p)
                    )
                else:
                    inside = files.to_inside(roots, p)
                uris.append(files.file_uri(inside))
        except files.OutsideRoots as exc:
            log.warning("desktop %s: chooser answer refused: %s", desktop, exc)
            self.server.notify(f"{desktop}: a file outside the desktop was refused ({exc})")
            return FAILED, {}
        return SUCCESS, {"uris": ("as", uris)}

    def _end_chooser(self, ch: _Chooser, kill: bool = False) -> None:
        self.choosers.pop(ch.handle, None)
        if ch.reader is not None:
            ch.reader.remove()
            ch.reader = None
        if kill and ch.proc.poll() is None:
            ch.proc.kill()
        if ch.proc.stdout is not None:
            ch.proc.stdout.close()

    def close_request(self, req: CloseRequest) -> None:
        ch = self.choosers.get(req.handle)
        if ch is not None:
            self._end_chooser(ch, kill=True)

    def desktop_gone(self, desktop: str) -> None:
        for ch in [c for c in self.choosers.values() if c.desktop == desktop]:
            self._end_chooser(ch, kill=True)

    # ---- Screenshot ----

    def screenshot(self, req: ScreenshotRequest) -> None:
        d = self.server.desktops.get(req.desktop)
        if d is None:
            return
        if d.spec.ephemeral:
            self._respond(req.desktop, req.handle, FAILED)
            self.server.notify(f"{req.desktop}: no screenshot: its home is not kept on disk")
            return
        try:
            png = capture.capture_desktop(self.server, req.desktop).png()
            inside = self._write_picture(req.desktop, png)
        except (capture.CaptureError, OSError, storage.UnsafePathError) as exc:
            log.warning("desktop %s: screenshot failed: %s", req.desktop, exc)
            self._respond(req.desktop, req.handle, FAILED)
            self.server.notify(f"{req.desktop}: screenshot failed: {exc}")
            return
        self._respond(req.desktop, req.handle, SUCCESS, {"uri": ("s", files.file_uri(inside))})
        self.server.notify(f"{req.desktop} took a screenshot of its own windows")

    def _write_picture(self, desktop: str, png: bytes) -> str:
        """Into the desktop's ~/Pictures, by fd, refusing links: returns the sandbox path."""
        base = paths.data_home()
        parts = Path(os.path.relpath(paths.desktop_home(desktop), base)).parts
        dir_fd = storage.open_dir_under(base, (*parts, PICTURES))
        try:
            stamp = time.strftime("%Y-%m-%d-%H%M%S")  # local time
            for n in range(100):
                name = f"Screenshot-{stamp}{'' if n == 0 else f'-{n}'}.png"
                try:
                    fd = os.open(
                        name,
                        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                        0o600,
                        dir_fd=dir_fd,
                    )
                except FileExistsError:
                    continue
                with os.fdopen(fd, "wb") as f:
                    f.write(png)
                user = self.launcher.host.user
                return f"/home/{user}/{PICTURES}/{name}"
            raise OSError("no free screenshot name")
        finally:
            os.close(dir_fd)

    # ---- OpenURI.OpenFile / xdg-open FILE ----

    def open_file(self, req: OpenFileRequest) -> None:
        try:
            self._route_file(req)
        except files.OutsideRoots as exc:
            self._respond(req.desktop, req.handle, FAILED)
            self.server.notify(f"{req.desktop}: a file was not opened: {exc}", urgent=True)
        except OSError as exc:  # gone meanwhile, or unreadable
            self._respond(req.desktop, req.handle, FAILED)
            why = policy.clean_text(exc.strerror or str(exc), 80)
            self.server.notify(f"{req.desktop}: a file was not opened: {why}", urgent=True)
        finally:
            if req.fd >= 0:
                os.close(req.fd)

    def _route_file(self, req: OpenFileRequest) -> None:
        roots = self.roots(req.desktop)
        if req.fd >= 0:
            # the program's fd says which file it means; its name in the sandbox is what
            # the kernel reports for it, and the host file of that name must be the same
            named = os.readlink(f"/proc/self/fd/{req.fd}")
            host = files.to_host(roots, named)
            st, fst = os.stat(host), os.fstat(req.fd)
            if (st.st_dev, st.st_ino) != (fst.st_dev, fst.st_ino):
                raise files.OutsideRoots("the file passed is not the file of that name")
        else:
            host = files.to_host(roots, req.path)
        if not host.is_file():
            raise files.OutsideRoots("not a regular file")
        home = next((r for r in roots if r.label == "Home"), None)
        if home is None or not str(host).startswith(str(home.host) + "/"):
            raise files.OutsideRoots("only files in the desktop's home are sent elsewhere")
        import mimetypes  # noqa: PLC0415 - its tables are read at the first guess, not at start

        mime = mimetypes.guess_type(host.name)[0] or "application/octet-stream"
        spec = self.server.desktops[req.desktop].spec
        target = match_rule(spec.open_files_in, mime)
        if target is None or target == req.desktop:
            raise files.OutsideRoots(
                f"no desktop is set to open {mime} files from {req.desktop} (open_files_in)"
            )
        if target not in self.server.desktops:
            raise files.OutsideRoots(f"files go to {target}, which is not running")
        rel = os.path.relpath(host, home.host)
        name = policy.clean_text(host.name, 60)
        self.server.isolation.offload.submit(
            SEND_LANE,
            f"sending {name} from {req.desktop} to {target}",
            functools.partial(send_to_quarantine, req.desktop, target, rel),
            on_done=lambda results: self._sent(req.desktop, target, name, results),
            on_error=lambda exc: self._not_sent(req.desktop, target, name, exc),
        )
        self._respond(req.desktop, req.handle, SUCCESS)

    def _sent(self, source: str, target: str, name: str, results: list[dict[str, Any]]) -> None:
        """The service answered a send: each item it took is opened once released."""
        refused = None
        for r in results:
            item_id = r.get("id")
            if r.get("ok") and isinstance(item_id, int):
                self._open_after_release(item_id, target)
            else:
                refused = policy.clean_text(str(r.get("error") or "refused"), 80)
        if refused is None:
            self.server.notify(
                f"File from {source} sent to {target} through the audit: {name} "
                f"(in {target}'s Incoming/{source}, opened there once released)"
            )
        else:
            self.server.notify(
                f"File from {source} was not sent to {target}: {name} (the quarantine "
                f"refused it: {refused})",
                urgent=True,
            )

    def _not_sent(self, source: str, target: str, name: str, exc: BaseException) -> None:
        if isinstance(exc, QuarantineError):
            why = f"the quarantine refused it: {policy.clean_text(str(exc), 80)}"
        elif isinstance(exc, OSError | ConnectionError):
            why = "the quarantine service is not running"
        else:
            why = f"the quarantine service answered badly: {type(exc).__name__}"
        log.warning("sending %s from %s to %s failed: %s", name, source, target, exc)
        self.server.notify(
            f"File from {source} was not sent to {target}: {name} ({why})", urgent=True
        )

    def _open_after_release(self, item_id: int, target: str) -> None:
        item = self.released.pop(item_id, None)
        if item is None:
            self.to_open[item_id] = target
        else:
            self._open_released(target, item)

    def quarantine_event(self, kind: str, item: Mapping[str, Any]) -> None:
        """A quarantine event: a released file a program asked to open is opened in its
        target, with the target's own handler."""
        if kind != "released" or item.get("kind") != "send":
            return
        try:
            item_id = int(item.get("id", -1))
        except (TypeError, ValueError):
            return
        target = self.to_open.pop(item_id, None)
        if target is None:
            self.released[item_id] = dict(item)
            while len(self.released) > RECENT_RELEASES:
                del self.released[next(iter(self.released))]
            return
        self._open_released(target, item)

    def _open_released(self, target: str, item: Mapping[str, Any]) -> None:
        if item.get("dest") != target or target not in self.server.desktops:
            return
        path = released_path(f"/home/{self.launcher.host.user}", item)
        name = policy.clean_text(str(item.get("release_name") or item.get("name")), 60)
        if path is None:
            self.server.notify(f"{target}: {name} was released but not opened", urgent=True)
            return
        self.launches.launch(
            target,
            open_released_argv(self.server.desktops[target].spec.browser, path),
            done=f"Opened {name} in {target}",
            failed=f"Could not open {name} in {target}",
            waiting=f"Opening {name} in {target}: its network is being set up\u2026",
            exit_reason=xdg_open_failure,
        )
