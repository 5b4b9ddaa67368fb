"""A template's metadata and where it lives: `Source`, `Template`, names, `load`.

    templates/<name>/template.json     what it is built from, its generation, notes
    templates/<name>/gen-<N>/          the tree itself

`locked` serialises the writers of one template (create, update, delete, pruning).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zionwm import paths

log = logging.getLogger(__name__)


TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")  # the config's name rule
META = "template.json"
LAYER_DIR = "template-layer"
SOURCE_KINDS = ("dir", "rootfs", "archive", "debootstrap", "podman")


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


def write_meta(tpl: Template) -> None:
    tmp = tpl.path / f".{META}.{os.getpid()}"
    tmp.write_text(json.dumps(tpl.to_json(), indent=2) + "\n")
    os.replace(tmp, tpl.path / META)  # the switch to a new generation is this one rename


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
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
