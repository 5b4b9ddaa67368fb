"""The programs a desktop can run: the `.desktop` entries in that desktop's own filesystem
view, with their icons, as a list the apps page shows and launches from.

A host-based desktop sees the host's /usr; a template-based one sees the template's root
filesystem with the desktop's own layer over it (what it installed itself). Pure but for
reading files under the given roots; no path outside a root is followed (an entry's icon is
looked up under the same root, and a symlink that leaves the root is ignored).
"""

from __future__ import annotations

import configparser
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

APP_DIRS = ("usr/share/applications", "usr/local/share/applications")
ICON_SIZES = ("scalable", "256x256", "128x128", "96x96", "64x64", "48x48", "32x32")
_FIELD_CODES = {"%f", "%F", "%u", "%U", "%d", "%D", "%n", "%N", "%i", "%c", "%k", "%v", "%m"}


@dataclass(frozen=True)
class App:
    id: str  # the file name without .desktop, e.g. "org.gnome.Calculator"
    name: str
    argv: tuple[str, ...]
    icon: str | None  # an icon file under the root, or an icon name, or None
    comment: str = ""
    terminal: bool = False
    keywords: tuple[str, ...] = ()

    def matches(self, query: str) -> bool:
        q = query.strip().lower()
        if not q:
            return True
        hay = " ".join((self.name, self.id, self.comment, *self.keywords)).lower()
        return all(word in hay for word in q.split())


def exec_argv(exec_line: str) -> tuple[str, ...]:
    """The argv of an Exec= line without its field codes (no file is passed at launch)."""
    try:
        words = shlex.split(exec_line)
    except ValueError:
        return ()
    out = []
    for w in words:
        if w in _FIELD_CODES:
            continue
        out.append(w.replace("%%", "%"))
    return tuple(out)


def _inside(root: Path, path: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


def find_icon(roots: Sequence[Path], icon: str) -> str | None:
    """An icon file for `icon` under one of the roots; the name itself when none is found
    (the toolkit may still know it); None for no icon."""
    if not icon:
        return None
    if icon.startswith("/"):
        for root in roots:
            p = root / icon.lstrip("/")
            if p.is_file() and _inside(root, p):
                return str(p)
        return None
    for root in roots:
        for theme in ("hicolor", "Adwaita"):
            for size in ICON_SIZES:
                for ext in ("svg", "png"):
                    p = root / "usr/share/icons" / theme / size / "apps" / f"{icon}.{ext}"
                    if p.is_file() and _inside(root, p):
                        return str(p)
        for ext in ("svg", "png", "xpm"):
            p = root / "usr/share/pixmaps" / f"{icon}.{ext}"
            if p.is_file() and _inside(root, p):
                return str(p)
    return icon


def parse_entry(path: Path, roots: Sequence[Path]) -> App | None:
    """One .desktop file; None for anything that is not a shown application."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(path.read_text(errors="replace"))
    except (OSError, configparser.Error):
        return None
    if not parser.has_section("Desktop Entry"):
        return None
    e = parser["Desktop Entry"]
    if e.get("Type", "Application") != "Application":
        return None
    if e.get("NoDisplay", "false").lower() == "true" or e.get("Hidden", "false").lower() == "true":
        return None
    argv = exec_argv(e.get("Exec", ""))
    name = e.get("Name", "").strip()
    if not argv or not name:
        return None
    keywords = tuple(k for k in e.get("Keywords", "").split(";") if k)
    return App(
        id=path.name.removesuffix(".desktop"),
        name=name,
        argv=argv,
        icon=find_icon(roots, e.get("Icon", "").strip()),
        comment=e.get("Comment", "").strip(),
        terminal=e.get("Terminal", "false").lower() == "true",
        keywords=keywords,
    )


def discover(roots: Iterable[Path]) -> list[App]:
    """Every shown application under the roots, sorted by name. Later roots are layers over
    earlier ones: an entry of the same id there replaces (or, hidden, removes) the earlier."""
    roots = [Path(r) for r in roots]
    found: dict[str, App | None] = {}
    for root in roots:
        for sub in APP_DIRS:
            d = root / sub
            if not d.is_dir() or not _inside(root, d):
                continue
            for path in sorted(d.glob("*.desktop")):
                if _inside(root, path):
                    found[path.name] = parse_entry(path, roots[::-1])
    apps = [a for a in found.values() if a is not None]
    return sorted(apps, key=lambda a: (a.name.lower(), a.id))


def roots_for(show: dict[str, object]) -> list[Path]:
    """The filesystem view of a desktop, from its `desktop show` reply: the host's root,
    or its template's root filesystem with the desktop's own layer over it."""
    paths = show.get("paths")
    if isinstance(paths, dict) and paths.get("template"):
        from zionwm.isolation.templates import store as templates  # noqa: PLC0415 - only for template desktops

        tpl = Path(str(paths["template"]))
        roots = []
        try:
            roots.append(templates.load(tpl.name).rootfs)
        except Exception:  # a template being rebuilt or removed: show no apps, not an error
            return []
        layer = paths.get("template_layer")
        if layer:
            roots.append(Path(str(layer)))
        return roots
    return [Path("/")]
