"""Costs of root-filesystem templates: disk per template and per desktop layer, start time.

    .venv/bin/python -m benchmarks.templates [--runs 30] [--debootstrap]

In a private temporary XDG world (nothing of the user's is touched) it
- builds a busybox template (Debian's busybox-static) and, with --debootstrap, a minbase
  Debian template of the host's suite (about 1.5 minutes; needs root and the mirror), and
  records build time, bytes on disk and file count of each;
- measures the per-desktop layer: empty after a program ran, after writing 1 MiB into /usr,
  and after appending one byte to a 4 MiB file of the template (whole-file copy-up);
- times Launcher.launch() + wait of `/bin/true` (start to reaped) in a desktop on the host's
  /usr, with the host /usr writable (overlay helper), and on each template.
Prints one JSON document (milliseconds, bytes).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import summarize_ms, timed
from zionwm import paths
from zionwm.isolation.launcher import Launcher
from zionwm.isolation.spec import DesktopSpec
from zionwm.isolation.templates import bootstrap, manage
from zionwm.isolation.templates.store import Source

BUSYBOX = "/bin/busybox"
BLOB = 4 << 20  # a data file of the template, for the copy-up figure


def busybox_tree(root: Path) -> Path:
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy2(BUSYBOX, root / "usr/bin/busybox")
    for applet in ("sh", "true", "cat", "dd"):
        os.symlink("busybox", root / "usr/bin" / applet)
    os.symlink("usr/bin", root / "bin")
    (root / "usr/share").mkdir()
    (root / "usr/share/blob4m").write_bytes(os.urandom(BLOB))
    return root


def build(name: str, source: Source) -> dict[str, Any]:
    t0 = time.perf_counter()
    tpl = manage.create(name, source)
    took = time.perf_counter() - t0
    size, files = manage.disk_usage(tpl.rootfs)
    return {"build_s": round(took, 2), "bytes": size, "files": files}


def layer_bytes(desktop: str, template: str) -> int:
    upper = paths.desktop_dir(desktop) / "template-layer" / template / "upper"
    return manage.disk_usage(upper)[0]


def run(launcher: Launcher, spec: DesktopSpec, argv: list[str]) -> None:
    rc = launcher.launch(spec, argv, stdout=-3, stderr=-3).wait(60)
    if rc != 0:
        raise RuntimeError(f"{spec.name}: {argv} exited {rc}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--debootstrap", action="store_true", help="also a Debian template")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    result: dict[str, Any] = {"runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="zionwm-bench-templates-") as tmp:
        root = Path(tmp)
        (root / "run").mkdir(mode=0o700)
        for key in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
            os.environ[key] = str(root / key.lower())
        os.environ["XDG_RUNTIME_DIR"] = str(root / "run")
        launcher = Launcher(environ=dict(os.environ))

        result["template_busybox"] = build("bb", Source("dir", str(busybox_tree(root / "bb"))))
        if args.debootstrap:
            result["template_debootstrap_minbase"] = build(
                "deb", Source("debootstrap", bootstrap.host_suite())
            )

        def spec(name: str, **kw: Any) -> DesktopSpec:
            return DesktopSpec(name=name, colour=(0.5, 0.5, 0.5, 1.0), **kw)

        bb = spec("bb", template="bb")
        run(launcher, bb, ["/bin/true"])
        layers = {"after_true": layer_bytes("bb", "bb")}
        run(launcher, bb, ["/bin/sh", "-c", "dd if=/dev/zero of=/usr/blob bs=1024 count=1024"])
        layers["after_writing_1MiB"] = layer_bytes("bb", "bb")
        run(launcher, spec("bb2", template="bb"), ["/bin/sh", "-c", "echo >> /usr/share/blob4m"])
        layers["after_appending_1_byte_to_a_4MiB_file"] = layer_bytes("bb2", "bb")
        result["desktop_layer_bytes"] = layers

        cases: dict[str, tuple[DesktopSpec, list[str]]] = {
            "host_usr": (spec("plain"), ["/bin/true"]),
            "host_usr_writable": (spec("wusr", writable_usr=True), ["/bin/true"]),
            "template_busybox": (spec("tbb", template="bb"), ["/bin/true"]),
        }
        if args.debootstrap:
            cases["template_debootstrap"] = (spec("tdeb", template="deb"), ["/bin/true"])
        starts = {}
        for label, (s, argv) in cases.items():

            def once(s: DesktopSpec = s, argv: list[str] = argv) -> None:
                run(launcher, s, argv)

            starts[label] = summarize_ms(timed(once, args.runs))
        result["start_true_ms"] = starts
        launcher.shutdown(5)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
