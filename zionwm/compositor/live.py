"""Desktops created, changed and deleted while zionwm runs.

This module owns the run-time half of the desktop list: it keeps the desktops file
(`zionwm.desktops_store`), merges it with config.py's desktops (`zionwm.desktops_model`),
and applies each change to the running compositor through `Server.apply_config` (sockets,
seats, scene trees, the strip), the isolation layer (cgroup limits, networks, freezing)
and the other extensions' reload hooks; then it reports it on the event stream. It also
ends temporary grants when they expire (across restarts: the expiry is in the file), keeps
deleted desktops' data restorable, and samples usage for the clients that subscribed to it.

Every change is validated before anything is touched, written to the file, then applied:
a refused change leaves the running desktops and the file as they were.

Beside it: the `desktop` command's words (desktop_command.py), the data of deleted desktops
(deleted_desktops.py) and the usage samples (usage.py).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zionwm import config as cfgmod
from zionwm import desktops_model as model
from zionwm import desktops_store as store
from zionwm import paths
from zionwm.desktops_store import DesktopsFile, Settings
from zionwm.isolation.spec import DesktopSpec
from zionwm.isolation.templates import store as templates

from . import native
from .deleted_desktops import DELETED_META, list_deleted, move_back, move_data_away
from .desktop_command import DesktopCommand
from .hibernation import Hibernation
from .ipc import Deferred
from .loop import Timer
from .usage import UsageSampler

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)

# Colours offered to a desktop created without one, in order; far from each other and from
# the grey of host windows.
PALETTE = (
    "#f59e0b",
    "#14b8a6",
    "#ec4899",
    "#84cc16",
    "#6366f1",
    "#f97316",
    "#06b6d4",
    "#e11d48",
    "#8b5cf6",
    "#10b981",
)
MAX_SLOTS = 64  # desktop slots per run (the C global filter's table)


class LiveDesktops:
    """The desktops file and its application to a running server (a server extension)."""

    def __init__(
        self, base: cfgmod.Config, path: Path | None = None, *, fell_back: bool = False
    ) -> None:
        self.path = path or store.default_path()
        self.base = base  # config.py's config, as loaded
        self.server: Server | None = None
        self.error: str | None = None
        if fell_back:
            # config.py is broken and the restricted default runs: nothing of the desktops
            # file (which may grant more) applies, and it is not rewritten, until a reload
            # of a good config.py reads it again
            self.data = DesktopsFile()
            self.error = "config.py has errors; the desktops file applies again after a good reload"
        else:
            self.data = self._read()
        self.merged = model.merge(base.desktops, self.data, time.time())
        self._expiry: Timer | None = None
        self.usage: UsageSampler | None = None  # while attached
        self._before_reload: model.Merged | None = None
        self._reaping: dict[str, Timer] = {}
        self._copies: dict[int, tuple[str, Settings, Path]] = {}  # pid -> home copy job
        self._hibernation: Hibernation | None = None

    def _read(self) -> DesktopsFile:
        for stale in store.remove_stale_temporaries(self.path):
            log.info("removed %s, left by a write that did not finish", stale)
        try:
            data = store.load(self.path)
        except store.StoreError as exc:
            # Never overwrite a file we could not read: changes are refused until it is fixed.
            self.error = str(exc)
            log.error("%s", exc)
            return DesktopsFile()
        self.error = None
        return data

    def effective(self) -> cfgmod.Config:
        """config.py's config with the desktops zionwm runs now."""
        return dataclasses.replace(self.base, desktops=self.merged.desktops)

    def notices(self) -> list[str]:
        out = [f"{self.path}: not used: {self.error}"] if self.error else []
        for name, problems in self.merged.problems.items():
            out += [f"{self.path.name}: {name}: {p} (kept in the file, not used)" for p in problems]
        return out

    # ---- attachment ----------------------------------------------------------------------

    def attach(self, server: Server) -> None:
        self.server = server
        server.desktop_data = self
        server.extensions.append(self)
        self._expiry = server.loop.timer(self._on_grant_expiry, "grant expiry")
        self._schedule_expiry()
        self.usage = UsageSampler(server)

    def _srv(self) -> Server:
        if self.server is None:
            raise RuntimeError("not attached to a compositor")
        return self.server

    def rebase(self, new_base: cfgmod.Config) -> cfgmod.Config:
        """A reloaded config.py: merge the desktops file (read again) with it."""
        self.base = new_base
        self.data = self._read()
        old = self.merged
        self.merged = model.merge(new_base.desktops, self.data, time.time())
        for text in self.notices():
            self._srv().notify(text, urgent=True)
        self._schedule_expiry()
        self._before_reload = old  # announced by reload(), once the server applied it
        return self.effective()

    def reload(self) -> None:
        """Server hook, after a reloaded config was applied."""
        old, self._before_reload = self._before_reload, None
        if old is not None:
            self._announce(old, self.merged, source="reload")

    def describe_desktop(self, name: str) -> dict[str, Any]:
        return {"origin": self.merged.origins.get(name, "config.py")}

    # ---- the command language: `desktop SUB ...` (desktop_command.py) ------------------

    def command(self, words: list[str]) -> Any:
        if words and words[0] == "hibernate":  # hibernation.py
            if self._hibernation is None:
                self._hibernation = Hibernation(self._srv())
            return self._hibernation.command(words[1:])
        if words and words[0] == "refusals":  # refusals.py
            refusals = getattr(self._srv(), "refusals", None)
            if refusals is None:
                raise RuntimeError("refusals are not collected here (no isolation)")
            return refusals.command(words[1:])
        return DesktopCommand(self).run(words)

    # ---- operations ----------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self.error:
            raise RuntimeError(
                f"{self.path} could not be read ({self.error}); fix or move it, then "
                "zionctl reload: until then it is not rewritten"
            )

    def _propose(self, data: DesktopsFile, touched: str | None = None) -> model.Merged:
        """Merge a proposed file; refuse it if it brings a problem the current one lacks."""
        merged = model.merge(self.base.desktops, data, time.time())
        for name, problems in merged.problems.items():
            new = [p for p in problems if p not in self.merged.problems.get(name, [])]
            if new:
                raise ValueError(f"{new[0]}; nothing changed")
        spec = next((s for s in merged.desktops if s.name == touched), None)
        if spec is not None and spec.template is not None:
            # the config file may name a template built later; a change made now may not
            try:
                templates.load(spec.template)
            except templates.TemplateError as exc:
                known = ", ".join(t.name for t in templates.list_templates()) or "none yet"
                raise ValueError(f"{exc} (templates: {known}); nothing changed") from None
        return merged

    def _commit(self, data: DesktopsFile, merged: model.Merged) -> None:
        store.save(self.path, data)
        old = self.merged
        self.data, self.merged = data, merged
        self._apply(old, merged)

    def create(
        self, name: str, settings: Settings, clone: str | None = None, with_home: bool = False
    ) -> dict[str, Any]:
        srv = self._srv()
        self._check_writable()
        if name in srv.desktops or name in self.data.desktops:
            raise ValueError(f"a desktop named {name!r} already exists")
        if name in (n for n, _, _ in self._copies.values()):
            raise ValueError(f"{name!r} is being created (its home is being copied)")
        if srv._slots >= MAX_SLOTS:
            raise RuntimeError(
                f"this run of zionwm has made {MAX_SLOTS} desktops; restart it to make more"
            )
        if with_home and clone is None:
            raise ValueError("--with-home copies the home of --from OTHER: give --from")
        base: Settings = {}
        if clone is not None:
            spec = self._spec(clone)
            base = clone_settings(spec)
        entry: Settings = {**base, **settings}
        if "colour" not in entry:
            used = {d.spec.colour_hex for d in srv.desktops.values()}
            entry["colour"] = next((c for c in PALETTE if c not in used), PALETTE[0])
        if clone is not None:
            entry["cloned_from"] = clone
        data = self.data.copy()
        data.desktops[name] = entry
        merged = self._propose(data, name)
        if with_home and clone is not None:
            return self._copy_home_then_create(clone, name, entry)
        self._commit(data, merged)
        return {"message": f"created desktop {name}", "desktop": self.show(name)}

    def change(self, name: str, settings: Settings, unset: list[str]) -> dict[str, Any]:
        self._check_writable()
        self._spec(name)
        data = self.data.copy()
        # config.py's desktop wins over a run-time entry of the same name (see merge)
        if self.base.desktop(name) is not None:
            table = data.overrides.setdefault(name, {})
        elif name in data.desktops:
            table = data.desktops[name]
        else:
            raise LookupError(f"{name!r} is kept from an earlier config; it cannot be changed")
        table.update(settings)
        for key in unset:
            table.pop(key, None)
        if name in data.overrides and not data.overrides[name]:
            del data.overrides[name]
        before = self._spec(name)
        merged = self._propose(data, name)
        self._commit(data, merged)
        after = self._spec(name)
        changed = changed_settings(before, after)
        if not changed:
            return {"message": f"{name}: nothing changed", "changed": {}}
        now = [f"{k} {a} -> {b}" for k, (a, b) in changed.items() if model.SETTINGS[k].live]
        later = [f"{k} {a} -> {b}" for k, (a, b) in changed.items() if not model.SETTINGS[k].live]
        lines = []
        if now:
            lines.append(f"{name}: applied now: " + "; ".join(now))
        if later:
            lines.append(
                f"{name}: applies when its programs next start: "
                + "; ".join(later)
                + f" (zionctl kill {name}, then launch them again)"
            )
        return {"message": "\n".join(lines), "changed": {k: list(v) for k, v in changed.items()}}

    def delete(self, name: str, stop: bool, erase: bool) -> dict[str, Any]:
        srv = self._srv()
        self._check_writable()
        if self.base.desktop(name) is not None:
            raise ValueError(
                f"{name} is declared in config.py: remove it there and reload "
                f"(run-time changes to it go with: zionctl desktop unset {name} KEY...)"
            )
        if name not in self.data.desktops:
            raise LookupError(f"no desktop named {name!r} made at run time")
        running = self.programs(name)
        if running and not stop:
            raise RuntimeError(
                f"{name} has {running} program(s) running: stop them first, or delete with --stop"
            )
        data = self.data.copy()
        entry = data.desktops.pop(name)
        data.grants.pop(name, None)
        merged = self._propose(data)
        if srv.model.active == name:
            # leave it the way a switch does (thaw the next one, move focus) before it goes
            others = [n for n in srv.model.names if n != name]
            srv.switch_to(srv.model.previous if srv.model.previous in others else others[0])
        if name in srv.desktops:
            self._stop_programs(name)
        moved = None if erase else move_data_away(name, entry)
        try:
            store.save(self.path, data)
        except BaseException:
            if moved is not None:
                move_back(moved, name)
            raise
        if erase:
            shutil.rmtree(paths.desktop_dir(name), ignore_errors=True)
        old = self.merged
        self.data, self.merged = data, merged
        self._apply(old, merged)
        self._forget_isolation(name)
        where = "erased its data" if erase else f"its data is kept in {moved}"
        kept = str(moved) if moved else None
        return {"message": f"deleted desktop {name}; {where}", "kept": kept}

    def restore(self, ident: str, new_name: str | None) -> dict[str, Any]:
        self._check_writable()
        items = [d for d in list_deleted() if ident in (d["id"], d["name"])]
        if not items:
            raise LookupError(f"no deleted desktop {ident!r} (zionctl desktop deleted lists them)")
        item = max(items, key=lambda d: d["deleted_at"])  # the newest of that name
        name = new_name or item["name"]
        srv = self._srv()
        if name in srv.desktops or name in self.data.desktops:
            raise ValueError(f"a desktop named {name!r} exists: restore it --as another name")
        target = paths.desktop_dir(name)
        if target.exists():
            raise ValueError(f"{target} exists already; move it away first")
        source = Path(item["path"])
        meta = store.load(source / DELETED_META)
        entry = next(iter(meta.desktops.values()), {})
        data = self.data.copy()
        data.desktops[name] = {k: v for k, v in entry.items() if k != "deleted_at"}
        merged = self._propose(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)
        try:
            (target / DELETED_META).unlink(missing_ok=True)
            self._commit(data, merged)
        except BaseException:
            os.rename(target, source)
            raise
        return {"message": f"restored desktop {name} from {source}", "desktop": self.show(name)}

    def grant_network(self, name: str, on: bool, for_text: str) -> str | Deferred[str]:
        self._check_writable()
        srv = self._srv()
        seconds = cfgmod.parse_duration(for_text)
        if not seconds:
            raise ValueError(f"--for needs a duration such as 15m or 30s, not {for_text!r}")
        self._spec(name)
        if srv.isolation is None or srv.isolation.net is None:
            raise RuntimeError("network namespaces are not available here")
        data = self.data.copy()
        until = time.time() + seconds
        data.grants[name] = {"network": "full" if on else "none", "until": until}
        merged = self._propose(data)
        self._commit(data, merged)
        self._schedule_expiry()
        stamp = time.strftime("%H:%M:%S", time.localtime(until))
        text = f"network of {name} {'on' if on else 'off'} until {stamp}, then back as it was"
        if on:  # built (with the granted policy) and switched on in the desktop's lane
            return srv.isolation.set_network(name, True).map(lambda _message: text)
        return text

    # ---- what is shown -------------------------------------------------------------------

    def _spec(self, name: str) -> DesktopSpec:
        srv = self._srv()
        d = srv.desktops.get(name)
        if d is None:
            raise LookupError(f"no desktop named {name!r} (desktops: {', '.join(srv.desktops)})")
        return d.spec

    def show(self, name: str) -> dict[str, Any]:
        spec = self._spec(name)
        rows = model.layers(name, self.base.desktop(name), self.data, time.time())
        info: dict[str, Any] = {
            "name": name,
            "origin": self.merged.origins.get(name, "config.py"),
            "settings": [
                {
                    "key": r.key,
                    "value": r.value,
                    "layer": r.layer,
                    "applies": "at once" if r.live else "at next start",
                }
                for r in rows
            ],
            "paths": {
                "home": str(paths.desktop_home(name)),
                "layer": str(paths.desktop_layer(name)),
                "inbox": str(paths.desktop_inbox(name)),
                "outbox": str(paths.desktop_outbox(name)),
                "socket": str(paths.desktop_socket(name)),
                "desktops_file": str(self.path),
            },
            "problems": self.merged.problems.get(name, []),
        }
        if spec.template:
            info["paths"]["template"] = str(paths.templates_dir() / spec.template)
            info["paths"]["template_layer"] = str(
                paths.desktop_dir(name) / "template-layer" / spec.template
            )
        grant = model.active_grant(self.data, name, time.time())
        if grant:
            info["grant"] = {**grant, "until": self.data.grants[name]["until"]}
        if spec.source_line and info["origin"] == "config.py":
            info["config_line"] = f"{self.base.settings.source}:{spec.source_line}"
        return info

    def programs(self, name: str) -> int:
        """How many programs (processes, or clients without a sandbox) the desktop runs."""
        srv = self._srv()
        count = 0
        iso = srv.isolation
        cg = iso.cgroups.get(name) if iso is not None else None
        if cg is not None:  # its /usr keeper runs there too, but is no program
            count = len(set(cg.live_pids()) - iso.launcher.service_pids(name))
        d = srv.desktops.get(name)
        children = [c for c in srv.children.running.values() if c.desktop == name and d]
        return max(count, len(children), len(d.clients) if d else 0)

    # ---- applying ------------------------------------------------------------------------

    def _apply(self, old: model.Merged, new: model.Merged) -> None:
        srv = self._srv()
        srv.apply_config(self.effective())
        before = {s.name: s for s in old.desktops}
        iso = srv.isolation
        for ext in srv.extensions:
            hook = getattr(ext, "reload", None)
            if hook is not None and ext is not self:
                hook()  # cgroups of new desktops and new limits, quarantine policy, X11
        # (a changed network policy: Isolation.reload, just called, queued its change)
        for spec in new.desktops:
            prev = before.get(spec.name)
            if prev is None or prev == spec or iso is None:
                continue
            if prev.freeze_after != spec.freeze_after and spec.name != srv.model.active:
                timer = iso._freeze_timers.get(spec.name)
                if spec.freeze_after is None and timer is not None:
                    timer.schedule(0)
                elif spec.freeze_after is not None and not srv.model.desktops[spec.name].frozen:
                    iso.after_hide(spec.name)
        self._announce(old, new, source="zionctl")

    def _announce(self, old: model.Merged, new: model.Merged, source: str) -> None:
        srv = self._srv()
        before = {s.name: s for s in old.desktops}
        after = {s.name: s for s in new.desktops}
        for name, spec in after.items():
            if name not in before:
                srv.emit("desktop-created", {**self._event_payload(spec), "source": source})
            elif before[name] != spec:
                changed = changed_settings(before[name], spec)
                srv.emit(
                    "desktop-changed",
                    {**self._event_payload(spec), "changed": changed, "source": source},
                )
        for name in before:
            if name not in after and name not in srv.desktops:
                srv.emit("desktop-deleted", {"name": name, "source": source})
        if before != after:
            srv.emit("desktops", {})  # the sway socket's workspace events follow this one
        srv._update_indicators()

    def _event_payload(self, spec: DesktopSpec) -> dict[str, Any]:
        return {
            "name": spec.name,
            "colour": spec.colour_hex,
            "origin": self.merged.origins.get(spec.name, "config.py"),
            "settings": model.shown_settings(model.plain_from_spec(spec)),
        }

    def _stop_programs(self, name: str) -> None:
        srv = self._srv()
        d = srv.desktops[name]
        # Windows go first (their views leave the model), then every process of the desktop.
        for client in list(d.clients):
            native.client_destroy(client)
        children = [c for c in srv.children.running.values() if c.desktop == name]
        for child in children:
            child.extra["quiet_exit"] = True  # stopped on purpose: not a failed start
        iso = srv.isolation
        cg = iso.cgroups.get(name) if iso is not None else None
        if cg is not None:
            iso.kill(name)  # calls off a freeze under way; the group is left thawed
        for child in children:
            child.kill()

    def _forget_isolation(self, name: str) -> None:
        """Remove what the isolation layer held for a deleted desktop: its freeze timer, its
        network, and its cgroup once the killed processes are gone."""
        srv = self._srv()
        iso = srv.isolation
        if iso is None:
            return
        timer = iso._freeze_timers.pop(name, None)
        if timer is not None:
            timer.remove()
        iso.forget_network(name)  # removed in its lane
        cg = iso.cgroups.get(name)
        if cg is None:
            return
        deadline = time.monotonic() + 10

        def reap() -> None:
            if cg.live_pids() and time.monotonic() < deadline:
                timer.schedule(50)
                return
            # the timer stays (disarmed) until close: a source is not removed from inside
            # its own callback
            if name not in srv.desktops:  # not made again meanwhile
                cg.remove()

        old = self._reaping.pop(name, None)
        if old is not None:
            old.remove()
        timer = srv.loop.timer(reap, f"reap cgroup {name}")
        self._reaping[name] = timer
        timer.schedule(1)

    def _copy_home_then_create(self, clone: str, name: str, entry: Settings) -> dict[str, Any]:
        """Copy the home in a child process (a large home must not stall the compositor);
        the desktop is made when the copy is done (child_exited), or not at all."""
        source = paths.desktop_home(clone)
        target = paths.desktop_home(name)
        if target.exists():
            raise ValueError(f"{target} exists already; --with-home would mix two homes")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not source.exists():
            target.mkdir(mode=0o700)
            self._finish_create(name, entry, target)
            return {"message": f"created desktop {name}", "desktop": self.show(name)}
        argv = ["cp", "-a", "--reflink=auto", "--no-target-directory", str(source), str(target)]
        proc = subprocess.Popen(
            argv,
            env={"PATH": os.environ.get("PATH", "/usr/bin")},
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        child = self._srv().children.adopt(proc.pid, argv, None, proc.poll, proc.kill)
        child.extra["quiet_exit"] = True  # its failure is reported here, with the reason
        self._copies[child.pid] = (name, entry, target)
        return {
            "message": f"copying the home of {clone}; {name} appears when the copy is done",
            "pending": True,
        }

    def _finish_create(self, name: str, entry: Settings, home: Path) -> None:
        data = self.data.copy()
        data.desktops[name] = entry
        try:
            self._check_writable()
            if name in self._srv().desktops:
                raise ValueError(f"a desktop named {name!r} appeared meanwhile")
            self._commit(data, self._propose(data, name))
        except BaseException:
            shutil.rmtree(home, ignore_errors=True)
            raise

    def child_exited(self, child: Any) -> None:
        """Server hook for every child: the end of a home copy."""
        job = self._copies.pop(child.pid, None)
        if job is None:
            return
        name, entry, target = job
        if child.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            self._srv().notify(
                f"Could not create {name}: copying its home failed (cp exited with "
                f"{child.returncode})",
                urgent=True,
            )
            return
        try:
            self._finish_create(name, entry, target)
        except (ValueError, LookupError, RuntimeError, OSError) as exc:
            self._srv().notify(f"Could not create {name}: {exc}", urgent=True)

    # ---- temporary grants ----------------------------------------------------------------

    def _schedule_expiry(self) -> None:
        if self._expiry is None:
            return
        when = self.merged.next_expiry
        if when is None:
            self._expiry.schedule(0)
            return
        self._expiry.schedule(max(1, int((when - time.time()) * 1000) + 5))

    def _on_grant_expiry(self) -> None:
        now = time.time()
        ended = model.expired_grants(self.data, now)
        data = self.data.copy()
        for name in ended:
            data.grants.pop(name, None)
        merged = model.merge(self.base.desktops, data, now)
        try:
            store.save(self.path, data)
        except OSError as exc:
            # the grant is over whatever the file says: merging ignores expired grants
            log.error("cannot rewrite %s after a grant ended: %s", self.path, exc)
        old = self.merged
        self.data, self.merged = data, merged
        self._apply(old, merged)
        for name in ended:
            if name in self._srv().desktops:
                self._srv().notify(f"The temporary network grant of {name} ended")
        self._schedule_expiry()

    def status(self) -> dict[str, Any]:
        return {
            "desktops_file": str(self.path),
            "desktops_file_error": self.error,
            "usage_sampling": self.usage is not None and self.usage.sampling,
        }

    def close(self) -> None:
        for timer in (self._expiry, *self._reaping.values()):
            if timer is not None:
                timer.remove()
        if self.usage is not None:
            self.usage.close()
        if self._hibernation is not None:
            self._hibernation.close()


# --- pure helpers --------------------------------------------------------------------------


def changed_settings(before: DesktopSpec, after: DesktopSpec) -> dict[str, tuple[str, str]]:
    a = model.shown_settings(model.plain_from_spec(before))
    b = model.shown_settings(model.plain_from_spec(after))
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def clone_settings(spec: DesktopSpec) -> Settings:
    """Every setting of `spec` that differs from the default, as `desktop set` would write
    it (the copy is independent: later changes to the original do not reach it)."""
    default = model.shown_settings(model.default_plain())
    shown = model.shown_settings(model.plain_from_spec(spec))
    out: Settings = {}
    for key, text in shown.items():
        if text != default[key] and not (key == "hold" and shown["downloads_to"] == "none"):
            out[key] = model.setting_value(key, text)
    return out


def attach(server: Server, live: LiveDesktops) -> None:
    live.attach(server)
