"""What the launcher needs of a template: the desktop's layer, the overlay helper, and the end
of a sandbox.

At launch, the launcher asks `template_facts` where the desktop's layer is and what the
template's top level looks like, and runs `helper_argv` (this module's `helper_main`) before
bwrap: the same private user+mount namespace and fuse-overlayfs mechanism as the writable
/usr of `overlay`, with the template's whole tree as the lower layer. When a sandbox ends,
`sandbox_ended` removes the generation it ran on if an update has replaced it meanwhile.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import stat
import sys
import time
from pathlib import Path

from zionwm import paths
from zionwm.isolation import overlay, storage
from zionwm.isolation.bwrap import TEMPLATE_DIRS, TemplateFacts
from zionwm.isolation.storage import LayerDirs
from zionwm.isolation.templates.generations import prune_unused, users_of
from zionwm.isolation.templates.store import LAYER_DIR, TemplateError, check_name, load

log = logging.getLogger(__name__)


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
    package_root = str(Path(__file__).resolve().parents[3])
    bootstrap = (
        f"import sys; sys.path.insert(0, {package_root!r}); "
        "from zionwm.isolation.templates.launch import helper_main; helper_main()"
    )
    argv = [python, "-I", "-c", bootstrap, "--lower", facts.lower, "--upper", facts.upper]
    argv += ["--work", facts.work, "--merged", facts.merged]
    if facts.scratch is not None:
        argv += ["--scratch", facts.scratch]
    return [*argv, "--"]


def helper_main(argv: list[str] | None = None) -> None:
    """Mount the template's overlay in private namespaces, then exec the rest (bwrap)."""
    import argparse  # noqa: PLC0415 - the helper process; the compositor imports this module

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
