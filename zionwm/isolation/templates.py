"""Root-filesystem templates: building them safely, storing them once, layering desktops on them.

Owns everything under `paths.templates_dir()` and the per-desktop copy-on-write layers over a
template (`<desktop dir>/template-layer/<template>/`). A template is a root filesystem a
desktop runs its programs on instead of the host's /usr, /etc and /lib*:

    templates/<name>/template.json     what it is built from, its generation, notes
    templates/<name>/gen-<N>/          the tree itself (the read-only lower of every layer)

Sources: a directory (`--from-dir`), a plain rootfs tarball (`--from-rootfs`), an OCI image
layout or a `docker save`/`podman save` archive with its layers applied in order and their
whiteouts honoured (`--from-archive`), debootstrap, and a local podman image (exported with
`podman save`, where podman is installed).

Every source goes through one writer that never follows a symlink while writing: each path
is created by walking the template's tree with O_NOFOLLOW directory fds, so a hostile archive
cannot write outside it. Member names with `..` are refused (the whole archive); leading `/`
is stripped, as tar does; device nodes, fifos and sockets are skipped; set-id bits are
dropped; hard links must point inside the tree. Symlinks are kept as they are, whatever they
point to: they are only ever resolved inside a sandbox, whose root is the template.

`update` builds a new generation beside the old one and switches the metadata to it in one
rename, so every desktop sees it at its next start; a generation still used by a running
sandbox (its fuse-overlayfs daemon names it as lowerdir) is kept, and removed as soon as
the last sandbox on it ends (`sandbox_ended`, called by the launcher), or at the next launch
or update on the template, whichever comes first.

At launch, the launcher asks `template_facts` where the desktop's layer is and what the
template's top level looks like, and runs `helper_argv` (this module's `helper_main`) before
bwrap: the same private user+mount namespace and fuse-overlayfs mechanism as the writable
/usr of `overlay`, with the template's whole tree as the lower layer.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import logging
import os
import platform
import re
import select
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from zionwm import paths
from zionwm.isolation import overlay, storage
from zionwm.isolation.bwrap import TEMPLATE_DIRS, TemplateFacts
from zionwm.isolation.storage import LayerDirs

log = logging.getLogger(__name__)

TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")  # the config's name rule
META = "template.json"
LAYER_DIR = "template-layer"
# Files bwrap binds over inside /etc: present as plain files so a bind neither writes into a
# desktop's layer nor follows a link the template planted there.
BIND_TARGETS = ("etc/passwd", "etc/group", "etc/hosts", "etc/resolv.conf")
SOURCE_KINDS = ("dir", "rootfs", "archive", "debootstrap", "podman")
MAX_NOTES = 40

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


class TemplateError(RuntimeError):
    """A template cannot be built, found or used; the message says why."""


class UnsafeArchiveError(TemplateError):
    """The source tried to write outside the template, or through a link."""


# --------------------------------------------------------------------------------------------
# Metadata


@dataclass(frozen=True)
class Source:
    """Where a template comes from; kept in its metadata so `update` can rebuild it."""

    kind: str  # one of SOURCE_KINDS
    location: str = ""  # path, image name, or the debootstrap suite
    include: tuple[str, ...] = ()  # debootstrap: extra packages
    mirror: str = ""  # debootstrap: "" = the mirror apt is configured with
    variant: str = "minbase"  # debootstrap

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "location": self.location,
            "include": list(self.include),
            "mirror": self.mirror,
            "variant": self.variant,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Source:
        return cls(
            kind=str(doc["kind"]),
            location=str(doc.get("location", "")),
            include=tuple(doc.get("include", ())),
            mirror=str(doc.get("mirror", "")),
            variant=str(doc.get("variant", "minbase")),
        )

    def describe(self) -> str:
        if self.kind == "debootstrap":
            extra = f" +{','.join(self.include)}" if self.include else ""
            return f"debootstrap {self.location}{extra}"
        return f"{self.kind} {self.location}"


@dataclass(frozen=True)
class Template:
    name: str
    path: Path
    generation: int
    source: Source
    created: float
    updated: float
    notes: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    image_config: dict[str, Any] = field(default_factory=dict)

    @property
    def rootfs(self) -> Path:
        return self.path / f"gen-{self.generation}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "generation": self.generation,
            "source": self.source.to_json(),
            "created": self.created,
            "updated": self.updated,
            "notes": list(self.notes),
            "counts": dict(self.counts),
            "image_config": self.image_config,
        }


def check_name(name: str) -> str:
    if not TEMPLATE_NAME.fullmatch(name):
        raise TemplateError(
            f"{name!r} is not a valid template name: use 1 to 32 of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def template_path(name: str) -> Path:
    return paths.templates_dir() / check_name(name)


def load(name: str) -> Template:
    path = template_path(name)
    try:
        doc = json.loads((path / META).read_text())
    except FileNotFoundError:
        raise TemplateError(f"no template named {name!r} (in {paths.templates_dir()})") from None
    except (OSError, ValueError) as exc:
        raise TemplateError(f"template {name}: unreadable metadata: {exc}") from None
    return Template(
        name=name,
        path=path,
        generation=int(doc["generation"]),
        source=Source.from_json(doc["source"]),
        created=float(doc["created"]),
        updated=float(doc["updated"]),
        notes=tuple(doc.get("notes", ())),
        counts=dict(doc.get("counts", {})),
        image_config=dict(doc.get("image_config", {})),
    )


def list_templates() -> list[Template]:
    base = paths.templates_dir()
    if not base.is_dir():
        return []
    out = []
    for entry in sorted(base.iterdir()):
        if TEMPLATE_NAME.fullmatch(entry.name) and (entry / META).is_file():
            try:
                out.append(load(entry.name))
            except TemplateError as exc:
                log.warning("%s", exc)
    return out


def _write_meta(tpl: Template) -> None:
    tmp = tpl.path / f".{META}.{os.getpid()}"
    tmp.write_text(json.dumps(tpl.to_json(), indent=2) + "\n")
    os.replace(tmp, tpl.path / META)  # the switch to a new generation is this one rename


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True, mode=0o755)
    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TemplateError(f"template {path.name} is being built by another process") from None
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# The safe writer


def member_parts(name: str) -> tuple[str, ...]:
    """Path components of an archive member, relative to the template root.

    A leading '/' or './' is dropped (as tar does); '..' anywhere makes the archive hostile.
    """
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchiveError(f"member {name!r} climbs out with '..': refusing the archive")
    return parts


@dataclass
class Report:
    """What the writer neutralised, for the template's notes."""

    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, key: str, text: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)


class Tree:
    """Writes into one directory without ever following a symlink on the way."""

    def __init__(self, root: Path, report: Report) -> None:
        self.root = root
        self.report = report
        self.fd = os.open(root, _DIR)
        self._last: tuple[tuple[str, ...], int] | None = None

    def close(self) -> None:
        self._forget()
        os.close(self.fd)

    def _forget(self, prefix: tuple[str, ...] | None = None) -> None:
        if self._last is not None and (prefix is None or self._last[0][: len(prefix)] == prefix):
            os.close(self._last[1])
            self._last = None

    def walk(self, dparts: tuple[str, ...], *, create: bool) -> int | None:
        """A new fd of the directory dparts (caller closes); None when absent and not create."""
        fd = os.dup(self.fd)
        try:
            for i, comp in enumerate(dparts):
                try:
                    nxt = os.open(comp, _DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    nxt = os.open(comp, _DIR, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    if not create:
                        os.close(fd)
                        return None
                    raise UnsafeArchiveError(
                        f"{'/'.join(dparts)}: {'/'.join(dparts[: i + 1])} is a link or a file, "
                        "not a directory: refusing to write through it"
                    ) from None
                os.close(fd)
                fd = nxt
            return fd
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise

    def parent(self, parts: tuple[str, ...]) -> int:
        """The (cached) fd of the directory that holds parts[-1], created as needed."""
        dparts = parts[:-1]
        if self._last is not None and self._last[0] == dparts:
            return self._last[1]
        fd = self.walk(dparts, create=True)
        assert fd is not None
        self._forget()
        self._last = (dparts, fd)
        return fd

    def remove(self, dir_fd: int, leaf: str, parts: tuple[str, ...]) -> None:
        try:
            st = os.lstat(leaf, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self._forget(parts)
            shutil.rmtree(leaf, dir_fd=dir_fd)
        else:
            os.unlink(leaf, dir_fd=dir_fd)

    def add_dir(self, parts: tuple[str, ...], mode: int) -> None:
        if not parts:
            os.fchmod(self.fd, _dir_mode(mode))
            return
        pfd = self.parent(parts)
        leaf = parts[-1]
        try:
            st = os.lstat(leaf, dir_fd=pfd)
            if not stat.S_ISDIR(st.st_mode):
                self.remove(pfd, leaf, parts)
                os.mkdir(leaf, 0o700, dir_fd=pfd)
        except FileNotFoundError:
            os.mkdir(leaf, 0o700, dir_fd=pfd)
        dfd = os.open(leaf, _DIR, dir_fd=pfd)
        try:
            os.fchmod(dfd, _dir_mode(mode))
        finally:
            os.close(dfd)

    def add_file(
        self, parts: tuple[str, ...], mode: int, data: IO[bytes] | None, mtime: float
    ) -> None:
        pfd = self.parent(parts)
        leaf = parts[-1]
        self.remove(pfd, leaf, parts)
        fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=pfd)
        with os.fdopen(fd, "wb") as out:
            if data is not None:
                shutil.copyfileobj(data, out, 1 << 20)
            out.flush()
            os.fchmod(fd, self._file_mode(parts, mode))
            os.utime(fd, (mtime, mtime))

    def _file_mode(self, parts: tuple[str, ...], mode: int) -> int:
        if mode & 0o6000:
            self.report.note("setid", f"/{'/'.join(parts)}: set-id bits removed")
        return (mode & 0o777) | 0o400

    def add_symlink(self, parts: tuple[str, ...], target: str) -> None:
        pfd = self.parent(parts)
        self.remove(pfd, parts[-1], parts)
        os.symlink(target, parts[-1], dir_fd=pfd)

    def add_hardlink(self, parts: tuple[str, ...], target: tuple[str, ...]) -> None:
        if not target:
            raise UnsafeArchiveError(f"/{'/'.join(parts)}: hard link to the root")
        tfd = self.walk(target[:-1], create=False)
        if tfd is None:
            raise UnsafeArchiveError(f"/{'/'.join(parts)}: hard link to a missing file")
        try:
            try:
                st = os.lstat(target[-1], dir_fd=tfd)
            except FileNotFoundError:
                raise UnsafeArchiveError(
                    f"/{'/'.join(parts)}: hard link to missing /{'/'.join(target)}"
                ) from None
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                raise UnsafeArchiveError(f"/{'/'.join(parts)}: hard link to a non-file")
            pfd = self.parent(parts)
            self.remove(pfd, parts[-1], parts)
            os.link(target[-1], parts[-1], src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def whiteout(self, parts: tuple[str, ...]) -> None:
        """Delete parts (an OCI whiteout); absent or reached through a link: nothing to do."""
        pfd = self.walk(parts[:-1], create=False)
        if pfd is None:
            return
        try:
            self.remove(pfd, parts[-1], parts)
        finally:
            os.close(pfd)

    def opaque(self, dparts: tuple[str, ...]) -> None:
        """Empty the directory dparts (an OCI opaque whiteout) of what lower layers put there."""
        dfd = self.walk(dparts, create=False)
        if dfd is None:
            return
        try:
            for name in os.listdir(dfd):
                self.remove(dfd, name, (*dparts, name))
        finally:
            os.close(dfd)


def _dir_mode(mode: int) -> int:
    # Owner rwx always: the user must be able to update and delete what they imported.
    return (mode & 0o1777) | 0o700


def apply_tar(tf: tarfile.TarFile, tree: Tree, *, whiteouts: bool) -> None:
    """Apply one tar stream (a rootfs, or one image layer when `whiteouts`) onto tree."""
    members = tf.getmembers()
    if whiteouts:
        # Whiteouts delete what lower layers made, never entries of their own layer, so
        # they all go first.
        for m in members:
            parts = member_parts(m.name)
            if not parts or not parts[-1].startswith(".wh."):
                continue
            if parts[-1] == ".wh..wh..opq":
                tree.opaque(parts[:-1])
            else:
                victim = parts[-1][4:]
                if victim in ("", ".", ".."):
                    raise UnsafeArchiveError(f"whiteout {m.name!r} names no file")
                tree.whiteout((*parts[:-1], victim))
    for m in members:
        parts = member_parts(m.name)
        if m.name.startswith("/"):
            tree.report.note("absolute", f"{m.name}: leading '/' removed")
        if whiteouts and parts and parts[-1].startswith(".wh."):
            continue
        _apply_member(tf, tree, m, parts)


def _apply_member(
    tf: tarfile.TarFile, tree: Tree, m: tarfile.TarInfo, parts: tuple[str, ...]
) -> None:
    if m.isdir():
        tree.add_dir(parts, m.mode)
    elif not parts:
        raise UnsafeArchiveError(f"member {m.name!r} would replace the template's root")
    elif m.isreg():
        data = tf.extractfile(m)
        tree.add_file(parts, m.mode, data, float(m.mtime))
    elif m.issym():
        tree.add_symlink(parts, m.linkname)
    elif m.islnk():
        tree.add_hardlink(parts, member_parts(m.linkname))
    elif m.ischr() or m.isblk():
        tree.report.note("devices", f"/{'/'.join(parts)}: device node skipped")
    elif m.isfifo():
        tree.report.note("fifos", f"/{'/'.join(parts)}: fifo skipped")
    else:
        tree.report.note("other", f"/{'/'.join(parts)}: member of type {m.type!r} skipped")


def copy_dir(src: Path, tree: Tree) -> None:
    """Copy a directory tree (symlinks as links, hard links kept, devices skipped)."""
    src_fd = os.open(src, _DIR)
    seen: dict[tuple[int, int], tuple[str, ...]] = {}
    try:
        st = os.fstat(src_fd)
        tree.add_dir((), st.st_mode)
        _copy_into(src_fd, (), tree, seen)
    finally:
        os.close(src_fd)


def _copy_into(
    dfd: int, prefix: tuple[str, ...], tree: Tree, seen: dict[tuple[int, int], tuple[str, ...]]
) -> None:
    for name in sorted(os.listdir(dfd)):
        parts = (*prefix, name)
        st = os.lstat(name, dir_fd=dfd)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            tree.add_dir(parts, mode)
            sub = os.open(name, _DIR, dir_fd=dfd)
            try:
                _copy_into(sub, parts, tree, seen)
            finally:
                os.close(sub)
        elif stat.S_ISLNK(mode):
            tree.add_symlink(parts, os.readlink(name, dir_fd=dfd))
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in seen:
                tree.add_hardlink(parts, seen[key])
                continue
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            with os.fdopen(fd, "rb") as f:
                tree.add_file(parts, mode, f, st.st_mtime)
            if st.st_nlink > 1:
                seen[key] = parts
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            tree.report.note("devices", f"/{'/'.join(parts)}: device node skipped")
        else:
            tree.report.note("other", f"/{'/'.join(parts)}: fifo or socket skipped")


def sanitize_in_place(root: Path, report: Report) -> None:
    """For trees made by a trusted tool (debootstrap): drop device nodes and set-id bits."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = "/" + os.path.relpath(p, root)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                os.unlink(p)
                report.note("devices", f"{rel}: device node removed")
            elif stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
                os.unlink(p)
                report.note("other", f"{rel}: fifo or socket removed")
            elif stat.S_ISREG(st.st_mode) and st.st_mode & 0o6000:
                os.chmod(p, (st.st_mode & 0o777) | 0o400)
                report.note("setid", f"{rel}: set-id bits removed")
            elif stat.S_ISDIR(st.st_mode) and (st.st_mode & 0o700) != 0o700:
                os.chmod(p, _dir_mode(st.st_mode))


def finish_tree(root: Path, report: Report) -> None:
    """Check the tree is a root filesystem and make the files bwrap binds over plain files."""
    tree = Tree(root, report)
    try:
        for top in ("usr", "etc"):
            try:
                st = os.lstat(top, dir_fd=tree.fd)
            except FileNotFoundError:
                tree.add_dir((top,), 0o755)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise TemplateError(f"/{top} of the template is not a directory")
        for rel in BIND_TARGETS:
            parts = tuple(rel.split("/"))
            pfd = tree.parent(parts)
            try:
                st = os.lstat(parts[-1], dir_fd=pfd)
                if stat.S_ISREG(st.st_mode):
                    continue
                report.note("bind-targets", f"/{rel}: not a plain file, replaced by an empty one")
            except FileNotFoundError:
                pass
            tree.add_file(parts, 0o644, None, time.time())
        # bwrap mounts a tmpfs on /var/tmp; the mount point should not land in a layer.
        vfd = tree.walk(("var",), create=False)
        if vfd is not None:
            os.close(vfd)
            if not _exists_in(tree, ("var", "tmp")):
                tree.add_dir(("var", "tmp"), 0o1777)
    finally:
        tree.close()


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
        return True
    except FileNotFoundError:
        return False


def _exists_in(tree: Tree, parts: tuple[str, ...]) -> bool:
    pfd = tree.walk(parts[:-1], create=False)
    if pfd is None:
        return False
    try:
        return _exists(pfd, parts[-1])
    finally:
        os.close(pfd)


# --------------------------------------------------------------------------------------------
# Image archives: OCI image layouts and docker/podman save archives


class _Blobs:
    """Read files of an image archive: a directory (OCI layout) or a tar file of one."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if location.is_dir():
            return
        try:
            self._tar = tarfile.open(location, "r:*")  # noqa: SIM115 (closed in close())
        except (tarfile.TarError, OSError) as exc:
            raise TemplateError(f"{location}: not a tar archive or directory: {exc}") from None
        for m in self._tar.getmembers():
            self._members["/".join(member_parts(m.name))] = m

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    def has(self, name: str) -> bool:
        if self._tar is None:
            return (self.location / name).is_file()
        return name in self._members

    def open(self, name: str) -> IO[bytes]:
        parts = member_parts(name)
        key = "/".join(parts)
        if self._tar is None:
            fd = self._open_in_dir(parts)
            return os.fdopen(fd, "rb")
        m = self._members.get(key)
        if m is None or not m.isreg():
            raise TemplateError(f"{self.location}: {name} is missing or not a file")
        f = self._tar.extractfile(m)
        assert f is not None
        return f

    def _open_in_dir(self, parts: tuple[str, ...]) -> int:
        fd = os.open(self.location, _DIR)
        try:
            for comp in parts[:-1]:
                nxt = os.open(comp, _DIR, dir_fd=fd)
                os.close(fd)
                fd = nxt
            return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError as exc:
            raise TemplateError(f"{self.location}: cannot open {'/'.join(parts)}: {exc}") from None
        finally:
            os.close(fd)

    def json(self, name: str) -> Any:
        with self.open(name) as f:
            try:
                return json.loads(f.read(16 << 20))
            except ValueError as exc:
                raise TemplateError(f"{self.location}: {name} is not JSON: {exc}") from None


@dataclass(frozen=True)
class ImageLayers:
    layers: tuple[str, ...]  # names inside the archive, lowest first
    digests: tuple[str | None, ...]  # expected sha256 (hex) of each blob, when known
    config: str | None


def _blob(digest: object) -> tuple[str, str]:
    m = _DIGEST.fullmatch(str(digest))
    if m is None:
        raise TemplateError(f"unsupported or malformed digest {digest!r}")
    return f"blobs/sha256/{m.group(1)}", m.group(1)


def host_oci_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )


def pick_manifest(index: dict[str, Any], arch: str) -> dict[str, Any]:
    """The manifest descriptor of an OCI index for this machine (or its only one)."""
    manifests = index.get("manifests") or []
    if not manifests:
        raise TemplateError("the image index lists no manifest")
    for d in manifests:
        plat = d.get("platform") or {}
        if plat.get("os", "linux") == "linux" and plat.get("architecture") == arch:
            return dict(d)
    usable = [d for d in manifests if (d.get("platform") or {}).get("architecture") != "unknown"]
    if len(usable) == 1:
        return dict(usable[0])
    raise TemplateError(f"the image has no manifest for linux/{arch}")


def image_layers(blobs: _Blobs) -> ImageLayers:
    """Find the layers of an OCI layout (preferred) or a docker save archive."""
    if blobs.has("index.json"):
        doc = blobs.json("index.json")
        for _ in range(4):  # an index may point at a nested index
            desc = pick_manifest(doc, host_oci_arch())
            name, _hex = _blob(desc.get("digest"))
            doc = blobs.json(name)
            if "layers" in doc:
                break
        else:
            raise TemplateError("image index nesting too deep")
        blobs_of = [_blob(layer.get("digest")) for layer in doc["layers"]]
        config = _blob(doc["config"]["digest"])[0] if doc.get("config") else None
        return ImageLayers(tuple(n for n, _ in blobs_of), tuple(h for _, h in blobs_of), config)
    if blobs.has("manifest.json"):
        doc = blobs.json("manifest.json")
        if not isinstance(doc, list) or not doc:
            raise TemplateError("manifest.json lists no image")
        if len(doc) > 1:
            log.warning("the archive holds %d images; importing the first", len(doc))
        entry = doc[0]
        layers = tuple("/".join(member_parts(str(p))) for p in entry.get("Layers", ()))
        digests: list[str | None] = []
        for p in layers:
            found = re.fullmatch(r"blobs/sha256/([0-9a-f]{64})", p)
            digests.append(found.group(1) if found else None)
        cfg = entry.get("Config")
        return ImageLayers(layers, tuple(digests), str(cfg) if cfg else None)
    raise TemplateError(
        f"{blobs.location}: no index.json (OCI layout) or manifest.json (docker save): "
        "for a plain root-filesystem tarball use --from-rootfs"
    )


@contextlib.contextmanager
def _layer_tar(blobs: _Blobs, name: str, digest: str | None) -> Iterator[tarfile.TarFile]:
    with blobs.open(name) as f:
        if digest is not None:
            import hashlib  # noqa: PLC0415 - OpenSSL only when a template is imported

            h = hashlib.sha256()
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
            if h.hexdigest() != digest:
                raise TemplateError(f"layer {name}: content does not match its digest")
            f.seek(0)
        head = f.read(4)
        f.seek(0)
        if head == _ZSTD_MAGIC:
            with _unzstd(f) as plain, tarfile.open(fileobj=plain, mode="r:") as tf:
                yield tf
            return
        try:
            tf = tarfile.open(fileobj=f, mode="r:*")  # noqa: SIM115 (closed just below)
        except tarfile.TarError as exc:
            raise TemplateError(f"layer {name}: not a tar stream: {exc}") from None
        with tf:
            yield tf


@contextlib.contextmanager
def _unzstd(f: IO[bytes]) -> Iterator[IO[bytes]]:
    zstd = shutil.which("zstd")
    if zstd is None:
        raise TemplateError("a zstd-compressed layer needs the zstd program (Debian: zstd)")
    with tempfile.TemporaryFile() as raw, tempfile.TemporaryFile() as plain:
        shutil.copyfileobj(f, raw)
        raw.seek(0)
        subprocess.run([zstd, "-dc"], stdin=raw, stdout=plain, check=True)
        plain.seek(0)
        yield plain


def import_image(location: Path, tree: Tree) -> dict[str, Any]:
    """Apply every layer of an image archive onto tree; returns the image's run config."""
    blobs = _Blobs(location)
    try:
        found = image_layers(blobs)
        if not found.layers:
            raise TemplateError(f"{location}: the image has no layers")
        for name, digest in zip(found.layers, found.digests, strict=True):
            with _layer_tar(blobs, name, digest) as tf:
                apply_tar(tf, tree, whiteouts=True)
        config: dict[str, Any] = {}
        if found.config and blobs.has(found.config):
            doc = blobs.json(found.config)
            run = doc.get("config") or {}
            config = {
                k: run[k] for k in ("Env", "Entrypoint", "Cmd", "WorkingDir", "User") if run.get(k)
            }
            if doc.get("architecture"):
                config["architecture"] = doc["architecture"]
        return config
    finally:
        blobs.close()


# --------------------------------------------------------------------------------------------
# debootstrap and podman


def apt_mirror(sources: Sequence[str]) -> str | None:
    """The first non-security Debian mirror in apt source files (one-line or deb822)."""
    for text in sources:
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for raw in stanza.splitlines():
                line = raw.split("#", 1)[0].rstrip()
                if not line:
                    continue
                m = re.match(r"^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m:
                    uri, suite = m.group(2), m.group(3)
                    if "security" not in uri and "security" not in suite:
                        return uri.rstrip("/")
                    continue
                m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
                if m:
                    fields[m.group(1).lower()] = m.group(2)
            types = fields.get("types", "").split()
            if "deb" in types and fields.get("uris"):
                uri = fields["uris"].split()[0]
                if "security" not in uri and "security" not in fields.get("suites", ""):
                    return uri.rstrip("/")
    return None


def configured_mirror() -> str:
    texts = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        with contextlib.suppress(OSError):
            if p.suffix in (".list", ".sources"):
                texts.append(p.read_text())
    return apt_mirror(texts) or "http://deb.debian.org/debian"


def host_suite() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                value = line.split("=", 1)[1].strip().strip('"')
                if value:
                    return value
    return "stable"


def debootstrap_argv(source: Source, target: Path, cache: Path | None) -> list[str]:
    exe = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    argv = [exe, f"--variant={source.variant}"]
    if source.include:
        argv.append(f"--include={','.join(source.include)}")
    if cache is not None:
        argv.append(f"--cache-dir={cache}")
    argv += [source.location or host_suite(), str(target), source.mirror or configured_mirror()]
    return argv


def run_debootstrap(source: Source, target: Path, report: Report) -> None:
    if shutil.which("debootstrap") is None and not os.path.exists("/usr/sbin/debootstrap"):
        raise TemplateError("debootstrap is not installed (Debian package: debootstrap)")
    if os.geteuid() != 0:
        raise TemplateError(
            "debootstrap needs root (it creates files of other owners and runs package scripts "
            "in a chroot); run this one command with sudo, or build a rootfs tarball elsewhere "
            "and use --from-rootfs"
        )
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zionwm"
    cache = cache / "debootstrap"
    cache.mkdir(parents=True, exist_ok=True)
    argv = debootstrap_argv(source, target, cache)
    log.info("running %s", " ".join(argv))
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            # Runs between fork and exec; `template create/update` is a single-threaded CLI.
            preexec_fn=lambda: _device_capable_target(target),
        )
    except subprocess.SubprocessError as exc:
        raise TemplateError(f"cannot prepare {target} for debootstrap: {exc}") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise TemplateError(f"debootstrap failed ({proc.returncode}):\n{tail}")
    sanitize_in_place(target, report)
    drop_apt_indexes(target, report)


MS_BIND = 0x1000
MS_REMOUNT = 0x20


def _device_capable_target(target: Path) -> None:
    """Give debootstrap a target where device nodes and set-id programs work.

    The data dir may be on a file system mounted nodev/nosuid (a home on such a mount, or
    /tmp in tests: systemd mounts it so), where debootstrap refuses to start and package
    scripts cannot open /dev/null. In a private mount namespace of debootstrap's own, the
    target becomes a bind mount of itself without those flags; the mounts debootstrap makes
    inside it (proc, sys) also end with that namespace, even when it fails half-way. What it
    built keeps no device node or set-id bit (`sanitize_in_place`).
    """
    libc = overlay._Libc()
    libc.unshare(overlay.CLONE_NEWNS)
    libc.mount(None, "/", None, overlay.MS_REC | overlay.MS_PRIVATE, None)
    libc.mount(str(target), str(target), None, MS_BIND, None)
    libc.mount(None, str(target), None, MS_REMOUNT | MS_BIND, None)


def drop_apt_indexes(root: Path, report: Report) -> None:
    """Remove apt's package lists, caches and downloaded .debs (about 80 MB on Debian 12),
    as container images do: stale by the first use; `apt-get update` fetches them again."""
    freed = 0
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb"):
        for p in root.glob(pattern):
            if p.is_file() and not p.is_symlink() and p.name != "lock":
                freed += p.stat().st_size
                p.unlink()
    if freed:
        report.notes.append(f"apt lists and caches removed ({freed >> 20} MiB): run apt-get update")


def export_podman(image: str, dest: Path) -> None:
    podman = shutil.which("podman")
    if podman is None:
        raise TemplateError(
            "podman is not installed on this machine: export the image elsewhere with "
            "`podman save --format oci-archive -o FILE IMAGE` and use --from-archive FILE"
        )
    proc = subprocess.run(
        [podman, "image", "save", "--format", "oci-archive", "-o", str(dest), image],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise TemplateError(f"podman save {image} failed: {proc.stderr.strip()}")


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
    with _locked(path):
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
        _write_meta(tpl)
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
    with _locked(old.path):
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
        _write_meta(tpl)
        prune(tpl)
    return tpl


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
        with _locked(path):
            return prune(load(name))
    except TemplateError:
        return []


def sandbox_ended(facts: TemplateFacts, helper_pid: int, timeout: float = 2.0) -> list[Path]:
    """A sandbox on `facts` (whose template helper had pid `helper_pid`) has exited.

    If it ran on a generation an update has since replaced, that generation may now be
    unused: wait (bounded) for the sandbox's own overlay daemon, which got SIGTERM when the
    sandbox ended, then remove every old generation nobody uses. A daemon still alive after
    `timeout` keeps its generation until the next launch or update on this template.
    """
    try:
        current = load(facts.name).rootfs
    except TemplateError:
        return []
    if Path(facts.lower) == current:
        return []
    own_work = f"workdir={facts.work}/{helper_pid},".encode()
    pidfds = []
    for pid in users_of(Path(facts.lower)):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if own_work not in f.read():
                    continue
            pidfds.append(os.pidfd_open(pid))
        except OSError:
            continue  # already gone
    try:
        deadline = time.monotonic() + timeout
        for fd in pidfds:
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
    finally:
        for fd in pidfds:
            os.close(fd)
    removed = prune_unused(facts.name)
    if removed:
        log.info("template %s: removed unused %s", facts.name, [p.name for p in removed])
    return removed


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


def delete(name: str, *, force: bool = False) -> None:
    tpl = load(name)
    users = [pid for gen in tpl.path.glob("gen-*") for pid in users_of(gen)]
    if users and not force:
        raise TemplateError(
            f"template {name} is in use by running sandboxes (overlay pids {users}); "
            "stop them first or use --force"
        )
    with _locked(tpl.path):
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


# --------------------------------------------------------------------------------------------
# Launch: the desktop's layer and the overlay helper


def layer_path(desktop: str, template: str) -> Path:
    return paths.desktop_dir(storage.check_desktop_name(desktop)) / LAYER_DIR / check_name(template)


def prepare_layer(desktop: str, template: str, *, ephemeral: bool) -> tuple[LayerDirs, Path | None]:
    """Create the desktop's layer dirs over `template`, checked like other storage.

    Returns the dirs and, for an ephemeral layer, the scratch dir the helper mounts a tmpfs on
    (upper and work then live in it, and vanish with the sandbox).
    """
    layer = layer_path(desktop, template)
    base = paths.data_home()
    names = ("scratch", "merged") if ephemeral else ("upper", "work", "merged")
    for n in names:
        os.close(storage.open_dir_under(base, (layer / n).relative_to(base).parts, mode=0o755))
    if ephemeral:
        scratch = layer / "scratch"
        return LayerDirs(scratch / "upper", scratch / "work", layer / "merged"), scratch
    for entry in (layer / "work").iterdir():
        # Work dirs are per helper pid (see overlay.mount_layer); drop those of dead ones.
        stale = entry.name.isdigit() and not os.path.exists(f"/proc/{entry.name}")
        if stale and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
    return LayerDirs(layer / "upper", layer / "work", layer / "merged"), None


def top_level(rootfs: Path) -> tuple[tuple[str, str | None], ...]:
    """The template's top-level system dirs: (name, None) for a dir, (name, target) a link."""
    out: list[tuple[str, str | None]] = []
    for name in TEMPLATE_DIRS:
        p = rootfs / name
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            out.append((name, os.readlink(p)))
        elif stat.S_ISDIR(st.st_mode):
            out.append((name, None))
    names = {n for n, t in out if t is None}
    if not {"usr", "etc"} <= names:
        raise TemplateError(f"{rootfs}: /usr and /etc must be directories in a template")
    return tuple(out)


def template_facts(desktop: str, template: str, *, ephemeral: bool) -> TemplateFacts:
    """Everything the planner and the helper need to run a desktop on `template`."""
    tpl = load(template)
    prune_unused(template)  # a generation left by sandboxes that have ended since an update
    layer, scratch = prepare_layer(desktop, template, ephemeral=ephemeral)
    return TemplateFacts(
        name=template,
        lower=str(tpl.rootfs),
        upper=str(layer.upper),
        work=str(layer.work),
        merged=str(layer.merged),
        scratch=str(scratch) if scratch is not None else None,
        top=top_level(tpl.rootfs),
    )


def helper_argv(facts: TemplateFacts, *, python: str) -> list[str]:
    """The prefix the launcher puts before bwrap's argv for a desktop on a template."""
    # -I and an explicit package root, for the reasons given in overlay.helper_argv.
    package_root = str(Path(__file__).resolve().parents[2])
    bootstrap = (
        f"import sys; sys.path.insert(0, {package_root!r}); "
        "from zionwm.isolation.templates import helper_main; helper_main()"
    )
    argv = [python, "-I", "-c", bootstrap, "--lower", facts.lower, "--upper", facts.upper]
    argv += ["--work", facts.work, "--merged", facts.merged]
    if facts.scratch is not None:
        argv += ["--scratch", facts.scratch]
    return [*argv, "--"]


def helper_main(argv: list[str] | None = None) -> None:
    """Mount the template's overlay in private namespaces, then exec the rest (bwrap)."""
    parser = argparse.ArgumentParser(prog="zionwm-template-helper")
    for opt in ("--lower", "--upper", "--work", "--merged"):
        parser.add_argument(opt, required=True)
    parser.add_argument("--scratch")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command after --")
    try:
        overlay.enter_private_namespace(overlay._Libc())
        layer = LayerDirs(Path(args.upper), Path(args.work), Path(args.merged))
        scratch = Path(args.scratch) if args.scratch else None
        overlay.mount_layer(layer, scratch=scratch, lower=args.lower)
    except (OSError, RuntimeError) as exc:
        sys.stderr.write(f"zionwm template helper: {exc}\n")
        sys.exit(126)
    os.execv(command[0], command)


__all__ = [
    "Report",
    "Source",
    "Template",
    "TemplateError",
    "Tree",
    "UnsafeArchiveError",
    "apply_tar",
    "create",
    "delete",
    "disk_usage",
    "helper_argv",
    "list_templates",
    "load",
    "prune_unused",
    "sandbox_ended",
    "template_facts",
    "update",
]
