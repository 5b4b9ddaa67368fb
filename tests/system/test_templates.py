"""Desktops on root-filesystem templates, in real sandboxes (bwrap, fuse-overlayfs, Launcher).

Templates are built at test time: a tiny one from Debian's busybox-static, an OCI image the
test writes itself, and (slow, where the Debian mirror answers) one made by debootstrap.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import (
    VENV_BIN,
    overlay_missing,
    processes_with,
    readable_package,
    sandbox_missing,
    wait_for,
)
from tests.unit.test_templates import base_layer, oci_archive, tar_bytes, top_layer
from zionwm import ctl, paths
from zionwm.isolation.launcher import Launcher
from zionwm.isolation.spec import DesktopSpec
from zionwm.isolation.templates import bootstrap, generations, manage, store
from zionwm.isolation.templates.store import Source

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "cat", "ls", "stat", "echo", "test", "sleep")


def _missing() -> str | None:
    """Why this machine cannot run desktops on templates, or None."""
    if (why := overlay_missing()) is not None:
        return why
    if not os.path.exists(BUSYBOX):
        return f"{BUSYBOX} is missing (Debian package busybox-static)"
    r = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True)
    if r.returncode != 0 or "sh" not in r.stdout.split():
        return f"{BUSYBOX} has no sh applet"
    return sandbox_missing()


_MISSING = _missing()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


def busybox_tree(root: Path, release: str = "busybox-template") -> Path:
    """A minimal merged-/usr root filesystem: busybox and a few applet links."""
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy2(BUSYBOX, root / "usr/bin/busybox")
    for applet in APPLETS:
        os.symlink("busybox", root / "usr/bin" / applet)
    os.symlink("usr/bin", root / "bin")
    (root / "etc/os-release").write_text(f"ID={release}\n")
    return root


class World:
    """Private XDG dirs and a launcher for one test."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        run = root / "run"
        run.mkdir(mode=0o700)
        for key, value in {
            "HOME": str(root / "home"),
            "XDG_DATA_HOME": str(root / "data"),
            "XDG_RUNTIME_DIR": str(run),
            "XDG_CONFIG_HOME": str(root / "config"),
            "XDG_STATE_HOME": str(root / "state"),
            "XDG_CACHE_HOME": str(root / "cache"),
        }.items():
            monkeypatch.setenv(key, value)
        self.launcher = Launcher(environ=dict(os.environ))

    def spec(self, name: str, template: str, **kw: Any) -> DesktopSpec:
        return DesktopSpec(name=name, colour=(0.3, 0.3, 0.3, 1.0), template=template, **kw)

    def run(self, spec: DesktopSpec, script: str, timeout: float = 30.0) -> tuple[int, str, str]:
        out = self.root / f"out-{uuid.uuid4().hex}"
        err = self.root / f"err-{uuid.uuid4().hex}"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            sb = self.launcher.launch(
                spec, ["/bin/sh", "-c", script], stdout=fo.fileno(), stderr=fe.fileno()
            )
        rc = sb.wait(timeout)
        return rc, out.read_text(), err.read_text()

    def ok(self, spec: DesktopSpec, script: str) -> str:
        rc, out, err = self.run(spec, script)
        assert rc == 0, f"{spec.name}: {script!r} exited {rc}: {err}"
        return out


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World(tmp_path, monkeypatch)
    try:
        yield w
    finally:
        w.launcher.shutdown(5.0)
        wait_for(
            lambda: not processes_with("fuse-overlayfs", str(tmp_path)),
            what="fuse-overlayfs daemons to exit",
        )


def test_busybox_template_runs_and_usr_writes_stay_in_the_desktop_layer(world: World) -> None:
    src = busybox_tree(world.root / "src")
    assert ctl.main(["template", "create", "bb", "--from-dir", str(src)]) == 0
    a, b = world.spec("a", "bb"), world.spec("b", "bb")
    out = world.ok(a, "cat /etc/os-release; busybox sh -c 'echo from-busybox-sh'")
    assert out.split() == ["ID=busybox-template", "from-busybox-sh"]  # not the host's /etc
    out = world.ok(a, "echo mine > /usr/bin/written-by-a && cat /usr/bin/written-by-a")
    assert out == "mine\n"
    upper = paths.desktop_dir("a") / "template-layer" / "bb" / "upper"
    assert (upper / "usr/bin/written-by-a").read_text() == "mine\n"
    tpl = store.load("bb")
    assert not (tpl.rootfs / "usr/bin/written-by-a").exists()
    assert not Path("/usr/bin/written-by-a").exists()
    assert world.ok(a, "cat /usr/bin/written-by-a") == "mine\n"  # persists in a's layer
    rc, _, err = world.run(b, "cat /usr/bin/written-by-a")
    assert rc != 0 and "No such file" in err
    # An ephemeral desktop's layer is a tmpfs: gone when its program exits.
    e = world.spec("e", "bb", ephemeral=True)
    assert world.ok(e, "echo x > /usr/bin/eph && cat /usr/bin/eph") == "x\n"
    rc, _, _ = world.run(e, "cat /usr/bin/eph")
    assert rc != 0
    assert list((paths.desktop_dir("e") / "template-layer").rglob("eph")) == []


def test_two_desktops_share_one_copy_and_both_see_an_update(world: World) -> None:
    src = busybox_tree(world.root / "src", release="v1")
    manage.create("bb", Source("dir", str(src)))
    a, b = world.spec("a", "bb"), world.spec("b", "bb")
    host_ino = (store.load("bb").rootfs / "usr/bin/busybox").stat().st_ino
    for spec in (a, b):
        ino = world.ok(spec, "stat -c %i /usr/bin/busybox").strip()
        assert int(ino) == host_ino, spec.name  # the template's one file, not a copy
        world.ok(spec, f"echo {spec.name}-change > /etc/local-change")
    for spec in (a, b):
        assert world.ok(spec, "cat /etc/local-change") == f"{spec.name}-change\n"
        layer = paths.desktop_dir(spec.name) / "template-layer" / "bb" / "upper"
        assert not (layer / "usr/bin/busybox").exists()
        assert (layer / "etc/local-change").read_text() == f"{spec.name}-change\n"
    assert not (store.load("bb").rootfs / "etc/local-change").exists()

    # Update: a new generation, seen by both at their next start, their own changes kept.
    (src / "etc/os-release").write_text("ID=v2\n")
    (src / "usr/share").mkdir()
    (src / "usr/share/new-in-v2").write_text("new\n")
    assert ctl.main(["template", "update", "bb"]) == 0
    assert store.load("bb").generation == 2
    for spec in (a, b):
        out = world.ok(spec, "cat /etc/os-release /usr/share/new-in-v2 /etc/local-change")
        assert out.split() == ["ID=v2", "new", f"{spec.name}-change"]
    assert [p.name for p in store.load("bb").path.glob("gen-*")] == ["gen-2"]


def test_update_keeps_the_generation_a_running_desktop_uses(world: World) -> None:
    src = busybox_tree(world.root / "src", release="v1")
    manage.create("bb", Source("dir", str(src)))
    a = world.spec("a", "bb")
    held = world.launcher.launch(a, ["/bin/sh", "-c", "cat /etc/os-release; sleep 600"])
    gen1 = store.load("bb").rootfs
    wait_for(lambda: generations.users_of(gen1), what="the overlay daemon of the running desktop")
    (src / "etc/os-release").write_text("ID=v2\n")
    manage.update("bb")
    assert gen1.is_dir()  # still the lower layer of the running sandbox
    assert world.ok(a, "cat /etc/os-release") == "ID=v2\n"
    held.kill()
    held.wait(10)  # the launcher sees the exit: the last user of generation 1 is gone
    assert not generations.users_of(gen1)
    assert sorted(p.name for p in store.load("bb").path.glob("gen-*")) == ["gen-2"]
    assert world.ok(a, "cat /etc/os-release") == "ID=v2\n"


def test_an_old_generation_left_by_another_process_goes_at_the_next_launch(
    world: World,
) -> None:
    src = busybox_tree(world.root / "src", release="v1")
    manage.create("bb", Source("dir", str(src)))
    a = world.spec("a", "bb")
    # A program on generation 1 run by another launcher (another zionwm, or zionctl)...
    other = Launcher(environ=dict(os.environ))
    held = other.launch(a, ["/bin/sh", "-c", "sleep 600"])
    gen1 = store.load("bb").rootfs
    wait_for(lambda: generations.users_of(gen1), what="the overlay daemon of the other launcher")
    (src / "etc/os-release").write_text("ID=v2\n")
    manage.update("bb")
    assert gen1.is_dir()
    # ...dies without that launcher noticing (it is not polled, as in a crashed process).
    os.kill(held.pid, 9)
    wait_for(lambda: not generations.users_of(gen1), what="the old overlay daemon to exit")
    assert gen1.is_dir()
    assert world.ok(a, "cat /etc/os-release") == "ID=v2\n"  # this launch tidies up
    assert sorted(p.name for p in store.load("bb").path.glob("gen-*")) == ["gen-2"]
    other.shutdown(5.0)


def test_oci_image_with_a_whiteout_runs_without_the_deleted_file(world: World) -> None:
    # Layer 1: busybox and two files; layer 2 deletes one with a whiteout.
    tree = busybox_tree(world.root / "bbtree")
    layer1 = world.root / "layer1.tar.gz"
    with tarfile.open(layer1, "w:gz") as tf:
        tf.add(tree, arcname=".")
    layers = [layer1.read_bytes(), tar_bytes(base_layer()), tar_bytes(top_layer())]
    image = oci_archive(world.root / "image.tar", layers)
    assert ctl.main(["template", "create", "img", "--from-archive", str(image)]) == 0
    spec = world.spec("img", "img")
    out = world.ok(
        spec,
        "ls /usr/share; ls /usr/lib/stuff; test -e /usr/share/doomed || echo doomed-absent",
    )
    assert out.split() == ["added", "kept", "new", "doomed-absent"]


PODMAN_STORAGE = """\
[storage]
driver = "vfs"
graphroot = "{root}/graph"
runroot = "{root}/run"
"""
PODMAN_ENGINE = """\
[engine]
tmp_dir = "{root}/tmp"
events_logger = "none"
"""


def _podman_missing() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (Debian package podman)"
    if os.geteuid() != 0:
        return "the podman test runs podman rootful: needs root"
    return None


def test_podman_image_built_here_becomes_a_template(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `podman import` of a rootfs made here, then `--from-podman`: the podman path
    exports it with `podman image save` and the template runs a program from it."""
    why = _podman_missing()
    if why:
        pytest.skip(why)
    # A podman store of this test's own, so the machine's images and state are untouched.
    pod = world.root / "podman"
    pod.mkdir()
    (pod / "storage.conf").write_text(PODMAN_STORAGE.format(root=pod))
    (pod / "containers.conf").write_text(PODMAN_ENGINE.format(root=pod))
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(pod / "storage.conf"))
    monkeypatch.setenv("CONTAINERS_CONF", str(pod / "containers.conf"))
    tree = busybox_tree(world.root / "podtree", release="from-podman")
    (tree / "usr/share").mkdir()
    (tree / "usr/share/made-for-podman").write_text("imported\n")
    rootfs = world.root / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tf:
        tf.add(tree, arcname=".")
    info = subprocess.run(["podman", "info"], capture_output=True, text=True, timeout=120)
    if info.returncode != 0:
        pytest.skip(f"podman cannot run on this machine: {info.stderr.strip()}")
    image = f"localhost/zionwm-test-{uuid.uuid4().hex[:8]}:1"
    done = subprocess.run(
        ["podman", "import", str(rootfs), image], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert (pod / "graph").is_dir()  # the test's own store took the image
    try:
        assert ctl.main(["template", "create", "pod", "--from-podman", image]) == 0
        tpl = store.load("pod")
        assert tpl.source.kind == "podman" and tpl.source.location == image
        out = world.ok(world.spec("p", "pod"), "cat /etc/os-release /usr/share/made-for-podman")
        assert out.split() == ["ID=from-podman", "imported"]
    finally:
        subprocess.run(["podman", "rmi", "-f", image], capture_output=True, timeout=120)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_debootstrap_template_runs_a_program_the_host_lacks(world: World) -> None:
    why = _debootstrap_missing()
    if why:
        pytest.skip(why)
    assert shutil.which("hello") is None, "the host has GNU hello: pick another package"
    suite = bootstrap.host_suite()
    # The data dir on a nodev,nosuid mount, as a systemd /tmp or many home mounts are (a
    # private mount namespace for this command only: the machine's mounts stay as they are).
    data = paths.data_home()
    data.mkdir(parents=True)
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", NODEV_DATA, "sh",
         str(data), str(VENV_BIN / "zionctl"), "template", "create", "deb", "--debootstrap",
         suite, "--include", "hello"],
        capture_output=True, text=True, timeout=800, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "nodev" in done.stdout.splitlines()[0], done.stdout  # the mount was really nodev
    tpl = store.load("deb")
    for p in (tpl.rootfs / "dev").iterdir():  # debootstrap made device nodes there
        mode = p.lstat().st_mode
        assert not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)), p
    out = world.ok(world.spec("deb", "deb"), "hello; . /etc/os-release; echo $VERSION_CODENAME")
    assert out.split("\n")[:2] == ["Hello, world!", suite]


NODEV_DATA = r"""
set -e
mount --bind "$1" "$1"
mount -o remount,bind,nodev,nosuid "$1"
findmnt -n -o OPTIONS --target "$1"
shift
exec "$@"
"""


def _debootstrap_missing() -> str | None:
    if shutil.which("debootstrap") is None and not os.path.exists("/usr/sbin/debootstrap"):
        return "debootstrap is not installed"
    if os.geteuid() != 0:
        return "debootstrap needs root"
    if shutil.which("unshare") is None or shutil.which("findmnt") is None:
        return "util-linux unshare and findmnt are not installed"
    mirror = bootstrap.configured_mirror()
    url = f"{mirror}/dists/{bootstrap.host_suite()}/Release"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            r.read(64)
    except OSError as exc:
        return f"the Debian mirror {mirror} is not reachable: {exc}"
    return None


UNPRIVILEGED = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
root = sys.argv[2]
os.environ.update(XDG_DATA_HOME=root + "/data", XDG_RUNTIME_DIR=root + "/run", HOME=root)
os.makedirs(root + "/run", mode=0o700)
from zionwm.isolation.templates import bootstrap, generations, manage, store
from zionwm.isolation.launcher import Launcher
from zionwm.isolation.spec import DesktopSpec
manage.create("bb", store.Source("dir", root + "/src"))
spec = DesktopSpec(name="work", colour=(1.0, 1.0, 1.0, 1.0), template="bb")
r, w = os.pipe()
script = "id -u; cat /etc/os-release; echo x > /usr/bin/new && stat -c %u /usr/bin/new"
sb = Launcher().launch(spec, ["/bin/sh", "-c", script], stdout=w, stderr=w)
os.close(w)
out = os.fdopen(r).read()
print(json.dumps({"rc": sb.wait(30), "out": out}))
"""


# Debian's udev makes /dev/fuse 0666, so that users can mount FUSE file systems; a machine
# without udev rules keeps the kernel's 0600. Give the test its 0666 node in a private mount
# namespace (the same device, bound over /dev/fuse there), leaving the machine as it is.
FUSE_0666 = r"""
set -e
mount -t tmpfs -o mode=0755 zt-fuse "$1"
mknod -m 0666 "$1/fuse" c "$2" "$3"
mount --bind "$1/fuse" /dev/fuse
shift 3
exec "$@"
"""


def _world_usable_fuse(scratch: Path) -> list[str]:
    """argv prefix under which other users can open /dev/fuse."""
    st = os.stat("/dev/fuse")
    if st.st_mode & 0o006 == 0o006:
        return []
    if shutil.which("unshare") is None:
        pytest.fail(
            "util-linux unshare is not installed (needed: /dev/fuse is 0600 here)"
            " (scripts/setup-system.sh installs it: a broken set-up)"
        )
    scratch.mkdir()
    major, minor = str(os.major(st.st_rdev)), str(os.minor(st.st_rdev))
    return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", FUSE_0666, "sh",
            str(scratch), major, minor]  # fmt: skip


def test_unprivileged_user_runs_a_desktop_on_a_template(tmp_path: Path) -> None:
    """Production runs zionwm as a normal user: build and use a template as `nobody`."""
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and util-linux setpriv to switch to an unprivileged user")
    import pwd

    nobody = pwd.getpwnam("nobody")
    world = Path(tempfile.mkdtemp(prefix="zionwm-unpriv-templates-"))
    try:
        busybox_tree(world / "src", release="unprivileged")
        for owned in [world, *world.rglob("*")]:
            os.chown(owned, nobody.pw_uid, nobody.pw_gid, follow_symlinks=False)
        # the checkout may be in a home directory 'nobody' cannot enter: import a copy
        lib = readable_package(world / "pkg")
        r = subprocess.run(
            [*_world_usable_fuse(world / "dev"),
             "setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
             "--inh-caps=-all", "/usr/bin/python3", "-c", UNPRIVILEGED, str(lib), str(world)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout.strip().splitlines()[-1])
        assert result["rc"] == 0, result
        lines = result["out"].splitlines()[-3:]  # fuse-overlayfs may warn on the same pipe
        uid = str(nobody.pw_uid)
        assert lines == [uid, "ID=unprivileged", uid], result
        layer = world / "data/zionwm/desktops/work/template-layer/bb/upper/usr/bin/new"
        assert layer.stat().st_uid == nobody.pw_uid
    finally:
        shutil.rmtree(world, ignore_errors=True)
