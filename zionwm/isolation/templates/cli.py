"""`zionctl template ...`: create, list, show, update and delete root-filesystem templates.

Plugged into zionctl through `add_parser(subparsers)`. Works on the template store directly
(`zionwm.isolation.templates.manage`), with no compositor needed: a template is used by a desktop at
its next start. Exit status follows zionctl: 0 done, 1 refused or failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from zionwm.cli_table import size_text, table, time_text
from zionwm.isolation.templates import generations, manage, store
from zionwm.isolation.templates.store import Source, Template, TemplateError

EXIT_FAILED = 1


def source_from_args(args: argparse.Namespace) -> Source | None:
    """The source the options name, or None when none was given (update: keep the old one)."""
    include = tuple(p for chunk in (args.include or []) for p in chunk.split(",") if p)
    if args.debootstrap is not None:
        return Source(
            "debootstrap",
            args.debootstrap,
            include=include,
            mirror=args.mirror or "",
            variant=args.variant,
        )
    if include or args.mirror:
        raise TemplateError("--include and --mirror go with --debootstrap")
    for kind, value in (
        ("archive", args.from_archive),
        ("rootfs", args.from_rootfs),
        ("dir", args.from_dir),
        ("podman", args.from_podman),
    ):
        if value is not None:
            return Source(kind, value)
    return None


def describe(tpl: Template, *, with_layers: bool) -> dict[str, Any]:
    size, files = manage.disk_usage(tpl.rootfs)
    doc = tpl.to_json()
    doc.update({"path": str(tpl.path), "rootfs": str(tpl.rootfs), "bytes": size, "files": files})
    if with_layers:
        layers = []
        for desktop, path in manage.desktop_layers(tpl.name):
            lsize, lfiles = manage.disk_usage(path / "upper")
            layers.append({"desktop": desktop, "path": str(path), "bytes": lsize, "files": lfiles})
        doc["layers"] = layers
        doc["in_use_by_pids"] = [
            pid for gen in sorted(tpl.path.glob("gen-*")) for pid in generations.users_of(gen)
        ]
    return doc


def format_list(docs: list[dict[str, Any]]) -> str:
    rows = [("NAME", "GEN", "SIZE", "FILES", "UPDATED", "SOURCE")]
    for d in docs:
        src = Source.from_json(d["source"])
        rows.append(
            (
                d["name"],
                str(d["generation"]),
                size_text(d["bytes"]),
                str(d["files"]),
                time_text(d["updated"]),
                src.describe(),
            )
        )
    return table(rows)


def format_show(d: dict[str, Any]) -> str:
    src = Source.from_json(d["source"])
    lines = [
        f"name:        {d['name']}",
        f"source:      {src.describe()}",
        f"generation:  {d['generation']}",
        f"tree:        {d['rootfs']}",
        f"size:        {size_text(d['bytes'])} in {d['files']} files",
        f"created:     {time_text(d['created'])}",
        f"updated:     {time_text(d['updated'])}",
    ]
    if d.get("counts"):
        lines.append(
            "neutralised: " + ", ".join(f"{k} {v}" for k, v in sorted(d["counts"].items()))
        )
    for key, value in sorted(d.get("image_config", {}).items()):
        lines.append(f"image {key}: {value}")
    layers = d.get("layers", [])
    lines.append(f"desktop layers: {len(layers) or 'none'}")
    for layer in layers:
        lines.append(
            f"  {layer['desktop']}: {size_text(layer['bytes'])} in {layer['files']} files"
            f" ({layer['path']})"
        )
    if d.get("in_use_by_pids"):
        lines.append(f"in use by overlay pids: {d['in_use_by_pids']}")
    for note in d.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _out(args: argparse.Namespace, doc: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print(text)


def cmd_create(args: argparse.Namespace) -> int:
    source = source_from_args(args)
    if source is None:  # argparse's required group makes this unreachable from the CLI
        raise TemplateError("name a source: --debootstrap, --from-archive, --from-rootfs, ...")
    tpl = manage.create(args.name, source)
    doc = describe(tpl, with_layers=False)
    _out(
        args, doc, f"template {tpl.name} created: {size_text(doc['bytes'])} in {doc['files']} files"
    )
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    tpl = manage.update(args.name, source_from_args(args))
    doc = describe(tpl, with_layers=False)
    _out(
        args,
        doc,
        f"template {tpl.name} updated to generation {tpl.generation}: desktops on it see it "
        "at their next start",
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    docs = [describe(t, with_layers=False) for t in store.list_templates()]
    _out(args, docs, format_list(docs) if docs else "no templates")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    doc = describe(store.load(args.name), with_layers=True)
    _out(args, doc, format_show(doc))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    layers = manage.desktop_layers(args.name)
    manage.delete(args.name, force=args.force)
    text = f"template {args.name} deleted"
    if layers:
        text += "; desktop layers kept: " + ", ".join(str(p) for _, p in layers)
    _out(args, {"deleted": args.name, "layers_kept": [str(p) for _, p in layers]}, text)
    return 0


def _guard(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except TemplateError as exc:
            print(f"zionctl template: {exc}", file=sys.stderr)
            return EXIT_FAILED

    return run


def _add_sources(p: argparse.ArgumentParser, *, required: bool) -> None:
    group = p.add_mutually_exclusive_group(required=required)
    group.add_argument(
        "--debootstrap",
        nargs="?",
        const="",
        metavar="SUITE",
        help="build with debootstrap (default suite: the host's)",
    )
    group.add_argument("--from-archive", metavar="FILE", help="OCI layout or docker/podman save")
    group.add_argument("--from-rootfs", metavar="TARBALL", help="a root-filesystem tarball")
    group.add_argument("--from-dir", metavar="DIR", help="copy a directory tree")
    group.add_argument("--from-podman", metavar="IMAGE", help="export a local podman image")
    p.add_argument("--include", action="append", metavar="PKGS", help="debootstrap: a,b,c")
    p.add_argument("--mirror", metavar="URL", help="debootstrap: default is apt's mirror")
    p.add_argument("--variant", default="minbase", help="debootstrap variant (minbase)")


def add_parser(subparsers: Any) -> None:
    """Add `template` to zionctl's subcommands."""
    t = subparsers.add_parser(
        "template",
        help="manage root-filesystem templates",
        description="Root-filesystem templates desktops can run on (config: template=NAME).",
    )
    t.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    tsub = t.add_subparsers(dest="tcommand", metavar="ACTION", required=True)

    def add(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = tsub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
        p.set_defaults(func=_guard(func))
        return p

    p = add("create", "build a new template", cmd_create)
    p.add_argument("name", metavar="NAME")
    _add_sources(p, required=True)
    p = add("update", "rebuild a template from its source (or a new one)", cmd_update)
    p.add_argument("name", metavar="NAME")
    _add_sources(p, required=False)
    add("list", "list templates", cmd_list)
    add("show", "one template: source, size, desktop layers", cmd_show).add_argument(
        "name", metavar="NAME"
    )
    p = add("delete", "delete a template (desktop layers are kept)", cmd_delete)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--force", action="store_true", help="even while sandboxes use it")
