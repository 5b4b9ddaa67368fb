"""Image archives as template sources: OCI image layouts and `docker save`/`podman save`
archives (plain, gzip or zstd layers), the manifest for this machine's architecture, and
its layers applied in order through the safe writer, whiteouts honoured.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from zionwm.isolation.templates.store import TemplateError
from zionwm.isolation.templates.tree import DIR_FLAGS, Tree, apply_tar, member_parts

log = logging.getLogger(__name__)


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


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
        fd = os.open(self.location, DIR_FLAGS)
        try:
            for comp in parts[:-1]:
                nxt = os.open(comp, DIR_FLAGS, dir_fd=fd)
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
            import hashlib  # noqa: PLC0415 - OpenSSL (3 MiB) loaded when first hashing

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
