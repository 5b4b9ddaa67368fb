"""A template's generations: which ones running sandboxes still use, and removing the rest.

`update` builds a new generation beside the old one; a generation still used by a running
sandbox (its fuse-overlayfs daemon names it as lowerdir) is kept, and removed as soon as
the last sandbox on it ends (`launch.sandbox_ended`), or at the next launch or update on
the template, whichever comes first.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from zionwm.isolation.templates.store import Template, TemplateError, load, locked, template_path

log = logging.getLogger(__name__)


def prune(tpl: Template) -> list[Path]:
    """Remove generations other than the current one that no running sandbox uses."""
    removed = []
    for gen in sorted(tpl.path.glob("gen-*")):
        if gen == tpl.rootfs or not gen.is_dir():
            continue
        users = users_of(gen)
        if users:
            log.info("template %s: %s still used by pids %s; kept", tpl.name, gen.name, users)
            continue
        shutil.rmtree(gen)
        removed.append(gen)
    return removed


def prune_unused(name: str) -> list[Path]:
    """Remove the old generations of template `name` that no running sandbox uses.

    Safe at any time: a template with only its current generation costs one directory
    listing, and while another process holds the template's lock (an update, which prunes
    by itself) nothing is touched.
    """
    path = template_path(name)
    if len(list(path.glob("gen-*"))) < 2:
        return []
    try:
        with locked(path):
            return prune(load(name))
    except TemplateError:
        return []


def users_of(rootfs: Path) -> list[int]:
    """Pids of fuse-overlayfs daemons whose lower layer is rootfs (they run in our pid ns)."""
    needle = f"lowerdir={rootfs},".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if needle in cmd:
            found.append(int(entry.name))
    return found
