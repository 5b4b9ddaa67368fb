"""Create, update and delete templates, and what they cost on disk.

Sources: a directory (`--from-dir`), a plain rootfs tarball (`--from-rootfs`), an OCI image
layout or a `docker save`/`podman save` archive (`--from-archive`), debootstrap, and a
local podman image. Each is built into a fresh generation through the safe writer
(`tree`); `update` switches the metadata to the new generation in one rename, so every
desktop sees it at its next start.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from zionwm import paths
from zionwm.isolation.templates.bootstrap import (
    configured_mirror,
    export_podman,
    host_suite,
    run_debootstrap,
)
from zionwm.isolation.templates.generations import prune, users_of
from zionwm.isolation.templates.images import import_image
from zionwm.isolation.templates.store import (
    LAYER_DIR,
    META,
    SOURCE_KINDS,
    Source,
    Template,
    TemplateError,
    check_name,
    load,
    locked,
    template_path,
    write_meta,
)
from zionwm.isolation.templates.tree import Report, Tree, apply_tar, copy_dir, finish_tree

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Create, update, delete


def _populate(source: Source, build: Path, report: Report) -> dict[str, Any]:
    """Fill the (empty) build dir from source; returns the image config when there is one."""
    if source.kind == "debootstrap":
        run_debootstrap(source, build, report)
        return {}
    if source.kind == "podman":
        with tempfile.TemporaryDirectory(prefix="zionwm-podman-") as tmp:
            archive = Path(tmp) / "image.tar"
            export_podman(source.location, archive)
            return _populate(Source("archive", str(archive)), build, report)
    location = Path(source.location)
    tree = Tree(build, report)
    try:
        if source.kind == "dir":
            if not location.is_dir():
                raise TemplateError(f"{location} is not a directory")
            copy_dir(location, tree)
            return {}
        if source.kind == "rootfs":
            try:
                tf = tarfile.open(location, "r:*")  # noqa: SIM115 (closed just below)
            except (tarfile.TarError, OSError) as exc:
                raise TemplateError(f"{location}: cannot read as a tarball: {exc}") from None
            with tf:
                apply_tar(tf, tree, whiteouts=False)
            return {}
        if source.kind == "archive":
            return import_image(location, tree)
    finally:
        tree.close()
    raise TemplateError(f"unknown template source {source.kind!r}")


def _build(path: Path, source: Source, generation: int) -> tuple[Report, dict[str, Any]]:
    """Build generation `generation` of the template at path (the caller holds its lock)."""
    for stale in path.glob(".build-*"):  # left by a build that was killed
        shutil.rmtree(stale)
    build = path / f".build-{os.getpid()}"
    build.mkdir(mode=0o755)
    report = Report()
    try:
        config = _populate(source, build, report)
        finish_tree(build, report)
        os.rename(build, path / f"gen-{generation}")
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return report, config


def _absolute(source: Source) -> Source:
    """The source with everything `update` must reproduce made explicit."""
    if source.kind in ("dir", "rootfs", "archive"):
        return Source(source.kind, str(Path(source.location).resolve()))
    if source.kind == "debootstrap":
        return Source(
            "debootstrap",
            source.location or host_suite(),
            include=source.include,
            mirror=source.mirror or configured_mirror(),
            variant=source.variant,
        )
    return source


def create(name: str, source: Source) -> Template:
    """Build a new template. Raises TemplateError when it exists or cannot be built."""
    path = template_path(name)
    if source.kind not in SOURCE_KINDS:
        raise TemplateError(f"unknown template source {source.kind!r}")
    source = _absolute(source)
    with locked(path):
        if (path / META).exists():
            raise TemplateError(f"template {name} exists: use `template update` or delete it")
        for stale in path.glob("gen-*"):  # a create that died half-way
            shutil.rmtree(stale)
        started = time.monotonic()
        try:
            report, config = _build(path, source, 1)
        except BaseException:
            # Nothing of a failed create stays, not even the empty directory.
            shutil.rmtree(path, ignore_errors=True)
            raise
        now = time.time()
        tpl = Template(name, path, 1, source, now, now, tuple(report.notes), report.counts, config)
        write_meta(tpl)
    log.info(
        "template %s built from %s in %.1f s", name, source.describe(), time.monotonic() - started
    )
    return tpl


def update(name: str, source: Source | None = None) -> Template:
    """Rebuild a template from its source (or a new one) as a new generation.

    Desktops see it at their next start; their layers keep their own changes on top.
    """
    old = load(name)
    src = _absolute(source) if source is not None else old.source
    with locked(old.path):
        old = load(name)
        generation = old.generation + 1
        stale = old.path / f"gen-{generation}"
        if stale.exists():
            shutil.rmtree(stale)
        report, config = _build(old.path, src, generation)
        tpl = Template(
            name,
            old.path,
            generation,
            src,
            old.created,
            time.time(),
            tuple(report.notes),
            report.counts,
            config,
        )
        write_meta(tpl)
        prune(tpl)
    return tpl


def delete(name: str, *, force: bool = False) -> None:
    tpl = load(name)
    users = [pid for gen in tpl.path.glob("gen-*") for pid in users_of(gen)]
    if users and not force:
        raise TemplateError(
            f"template {name} is in use by running sandboxes (overlay pids {users}); "
            "stop them first or use --force"
        )
    with locked(tpl.path):
        # The metadata goes first: from then on nothing launches on a half-deleted tree.
        (tpl.path / META).unlink()
        shutil.rmtree(tpl.path)


def disk_usage(path: Path) -> tuple[int, int]:
    """(bytes allocated, files) under path, each inode counted once, links not followed."""
    seen: set[tuple[int, int]] = set()
    total = files = 0
    stack = [str(path)]
    while stack:
        cur = stack.pop()
        try:
            it = os.scandir(cur)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(e.path)
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
                total += st.st_blocks * 512
                files += 1
    return total, files


def desktop_layers(name: str) -> list[tuple[str, Path]]:
    """(desktop, layer dir) for every desktop that has a layer over template `name`."""
    base = paths.data_home() / "desktops"
    out = []
    if base.is_dir():
        for d in sorted(base.iterdir()):
            layer = d / LAYER_DIR / check_name(name)
            if layer.is_dir() and not layer.is_symlink():
                out.append((d.name, layer))
    return out
