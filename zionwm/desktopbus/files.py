"""Which files a desktop's portal may name, and how a path looks inside and outside.

A desktop's sandbox sees its home at /home/<user>, Shared (read-only) at ~/Shared, its
Outbox at ~/Outbox, its quarantine inbox at ~/Downloads (when it has one); what other desktops
send it lands in ~/Incoming/<from>/, inside its home. The portal's file chooser runs on the
host, so it works on host paths, and everything it hands back must be a path the sandbox
sees. This module is that translation and the one check that matters: a host path is only
ever accepted after every symlink in it is resolved, and only if the result lies under one
of the desktop's own roots. A symlink a program planted in its home (pointing into another
desktop's home, or anywhere on the host) therefore resolves to somewhere outside and is
refused, and so is a path that climbs out with `..`.

A path a program sends (a folder to start in, a file name to suggest) is read the way the
sandbox reads it: mapped lexically to the host, then resolved and checked the same way.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zionwm import paths
from zionwm.isolation.bwrap import DOWNLOADS_IN_HOME, OUTBOX_IN_HOME, SHARED_IN_HOME

INCOMING_IN_HOME = "Incoming"
NAME_MAX = 255


class OutsideRoots(ValueError):
    """A path that is not one of the desktop's own files; the message says why."""


@dataclass(frozen=True)
class Root:
    label: str  # what the chooser calls it
    host: Path  # resolved host directory
    inside: str  # the same directory as the sandbox sees it
    writable: bool


def roots(
    desktop: str, home_inside: str, *, has_home: bool = True, has_downloads: bool = False
) -> tuple[Root, ...]:
    """The desktop's roots, most specific first (so a longer prefix wins when mapping).
    A desktop whose home is a throwaway tmpfs (`has_home=False`) has no host home to show."""

    def real(p: Path) -> Path:
        return Path(os.path.realpath(p))

    out: list[Root] = [
        Root("Shared", real(paths.shared_dir()), f"{home_inside}/{SHARED_IN_HOME}", False),
        Root(
            "Outbox", real(paths.desktop_outbox(desktop)), f"{home_inside}/{OUTBOX_IN_HOME}", True
        ),
    ]
    if has_downloads:
        out.append(
            Root(
                "Downloads",
                real(paths.desktop_inbox(desktop)),
                f"{home_inside}/{DOWNLOADS_IN_HOME}",
                True,
            )
        )
    if has_home:
        home = real(paths.desktop_home(desktop))
        out.append(
            Root("Incoming", home / INCOMING_IN_HOME, f"{home_inside}/{INCOMING_IN_HOME}", True)
        )
        out.append(Root("Home", home, home_inside, True))
    return tuple(out)


def _under(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def _mount_shadowed(rs: Sequence[Root], host: str) -> bool:
    """A host path inside the home's placeholder directories (Shared, Outbox, Downloads):
    inside the sandbox something else is mounted there, so it names nothing the sandbox
    sees."""
    for r in rs:
        if r.label != "Home":
            continue
        for name in (SHARED_IN_HOME, OUTBOX_IN_HOME, DOWNLOADS_IN_HOME):
            if _under(host, str(r.host / name)):
                return True
    return False


def root_of(rs: Sequence[Root], resolved_host: str) -> Root | None:
    for r in rs:  # most specific first
        if _under(resolved_host, str(r.host)):
            return r
    return None


def to_inside(rs: Sequence[Root], host_path: str | Path, *, must_exist: bool = True) -> str:
    """The sandbox's path of a host path, after resolving every symlink in it; raises
    OutsideRoots when the result is not under one of the desktop's roots."""
    raw = os.fspath(host_path)
    if "\0" in raw or not raw.startswith("/"):
        raise OutsideRoots("not an absolute path")
    resolved = os.path.realpath(raw)
    if must_exist and not os.path.lexists(resolved):
        raise OutsideRoots("no such file")
    root = root_of(rs, resolved)
    if root is None or _mount_shadowed(rs, resolved):
        raise OutsideRoots("not a file of this desktop")
    rel = os.path.relpath(resolved, root.host)
    return root.inside if rel == "." else f"{root.inside}/{rel}"


def to_host(rs: Sequence[Root], inside_path: str) -> Path:
    """The host path of a path as the sandbox names it, read lexically (`..` is applied
    to the text, the way the sandbox's root would stop it), then resolved and checked with
    `to_inside`'s rule. Raises OutsideRoots."""
    if not isinstance(inside_path, str) or "\0" in inside_path or not inside_path.startswith("/"):
        raise OutsideRoots("not an absolute path")
    norm = posixpath.normpath(inside_path)
    if norm.startswith("//"):
        norm = norm[1:]
    for r in sorted(rs, key=lambda r: len(r.inside), reverse=True):
        if _under(norm, r.inside):
            rel = norm[len(r.inside) :].lstrip("/")
            host = r.host / rel if rel else r.host
            to_inside(rs, host, must_exist=False)  # raises when a link leads out
            return Path(os.path.realpath(host))
    raise OutsideRoots("not a file of this desktop")


def save_target(rs: Sequence[Root], folder_host: str | Path, name: str) -> tuple[Path, str]:
    """Where a file the user named in a save dialog goes: (host path, inside path). The
    folder must resolve into a writable root; the name is one plain component; an existing
    entry of that name must itself resolve into this desktop's roots (a link planted there
    must not aim a program's write at another desktop's file)."""
    if not name or "/" in name or "\0" in name or name in (".", "..") or len(name) > NAME_MAX:
        raise OutsideRoots("not a plain file name")
    folder_inside = to_inside(rs, folder_host)
    folder_real = Path(os.path.realpath(folder_host))
    root = root_of(rs, str(folder_real))
    if root is None or not root.writable:
        raise OutsideRoots(f"{root.label if root else 'that folder'} is read-only")
    target = folder_real / name
    if os.path.lexists(target):
        to_inside(rs, target)  # raises when it is a link leading out
        inside = to_inside(rs, target)
        if root_of(rs, os.path.realpath(target)) is None:
            raise OutsideRoots("not a file of this desktop")
        return Path(os.path.realpath(target)), inside
    return target, f"{folder_inside}/{name}"


def file_uri(inside_path: str) -> str:
    from urllib.parse import quote  # noqa: PLC0415

    return "file://" + quote(inside_path, safe="/")


def from_uri(uri: str) -> str | None:
    """The path of a file:// URI (None for anything else)."""
    from urllib.parse import unquote, urlsplit  # noqa: PLC0415

    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    return unquote(parts.path)
