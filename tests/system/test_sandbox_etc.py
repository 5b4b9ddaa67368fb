"""The sandbox's /etc, prepared once per desktop and bound in one mount (isolation/etc_tree):
the same names, modes and contents as the host pieces bound one by one; nothing else of the
host's /etc; read-only from inside; following the host when a source changes."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import sandbox_missing
from zionwm.isolation import bwrap
from zionwm.isolation.etc_tree import EtcTrees, etc_dir
from zionwm.isolation.launcher import Launcher
from zionwm.isolation.sandbox_plan import HostFacts, Mount, MountKind
from zionwm.isolation.spec import DesktopSpec

PYTHON = "/usr/bin/python3"
_MISSING = sandbox_missing() or (None if os.path.exists(PYTHON) else f"{PYTHON} is missing")
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")

# Lists /etc as the program sees it: type, mode and content (or the error reading it).
LIST_ETC = r"""
import hashlib, json, os, stat
out = {"/etc": ["d", oct(os.stat("/etc").st_mode & 0o7777)]}
for d, dirs, files in os.walk("/etc"):
    for n in dirs + files:
        p = os.path.join(d, n)
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            out[p] = ["l", os.readlink(p)]
        elif stat.S_ISDIR(st.st_mode):
            out[p] = ["d", oct(st.st_mode & 0o7777)]
        else:
            try:
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
            except OSError as e:
                h = "error " + str(e.errno)
            out[p] = ["f", oct(st.st_mode & 0o7777), st.st_size, h]
print(json.dumps(out))
"""

# Attacks on /etc from inside: what must stay hidden, and what must not be writable.
ATTACK_ETC = r"""
import errno, json, os
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def write(p):
    with open(p, "w") as f:
        f.write("planted")
out = {}
for p in ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/machine-id", "/etc/hostname",
          "/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key.pub", "/etc/fstab"):
    out["read:" + p] = attempt(lambda p=p: open(p, "rb").read())
for p in ("/etc/ssh", "/etc/ssl/private", "/etc/sudoers.d"):
    out["list:" + p] = attempt(lambda p=p: os.listdir(p))
out["write:/etc/hosts"] = attempt(lambda: write("/etc/hosts"))
out["create:/etc/planted"] = attempt(lambda: write("/etc/planted"))
out["create:/etc/ssl/planted"] = attempt(lambda: write("/etc/ssl/planted"))
out["chmod:/etc/hosts"] = attempt(lambda: os.chmod("/etc/hosts", 0o666))
out["chmod:/etc"] = attempt(lambda: os.chmod("/etc", 0o777))
out["rename:/etc/passwd"] = attempt(lambda: os.rename("/etc/passwd", "/etc/passwd2"))
out["unlink:/etc/group"] = attempt(lambda: os.unlink("/etc/group"))
out["symlink:/etc/shadow"] = attempt(lambda: os.symlink("/proc/1/root", "/etc/shadow"))
out["mkdir:/etc/fonts/x"] = attempt(lambda: os.mkdir("/etc/fonts/x"))
out["names"] = sorted(os.listdir("/etc"))
print(json.dumps(out))
"""


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    for key, sub in (("XDG_RUNTIME_DIR", "run"), ("XDG_DATA_HOME", "data"), ("HOME", "home")):
        monkeypatch.setenv(key, str(tmp_path / sub))
    yield tmp_path


def _spec(name: str = "etc") -> DesktopSpec:
    return DesktopSpec(name=name, colour=(0.5, 0.5, 0.5, 1.0))


def _run(launcher: Launcher, spec: DesktopSpec, script: str, out: Path) -> Any:
    with open(out, "wb") as f:
        sb = launcher.launch(spec, [PYTHON, "-c", script], stdout=f.fileno())
    assert sb.wait(30) == 0
    return json.loads(out.read_text())


def test_etc_is_the_same_as_with_separate_binds(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared = Launcher()
    separate = Launcher()
    monkeypatch.setattr(separate.etc, "ensure", lambda spec, host: None)
    spec = _spec()
    try:
        # the prepared tree is what the sandbox gets: one bind as /etc, and no bind of a piece
        # it holds a copy of
        plan = prepared.plan(spec, ["/bin/true"])
        tree = str(etc_dir(os.getuid(), os.getgid()))
        assert Mount(MountKind.RO_BIND, "/etc", source=tree) in plan.mounts
        bound = {m.dest for m in plan.mounts if m.kind is MountKind.RO_BIND_TRY}
        assert not bound & {"/etc/hosts", "/etc/ld.so.cache", "/etc/ssl/certs"}
        assert "/etc/passwd" not in {m.dest for m in plan.mounts}
        assert all(m.dest != "/etc" for m in separate.plan(spec, ["/bin/true"]).mounts)
        old = _run(separate, spec, LIST_ETC, world / "old.json")
        new = _run(prepared, spec, LIST_ETC, world / "new.json")
    finally:
        prepared.shutdown(timeout=5.0)
        separate.shutdown(timeout=5.0)
    assert "/etc/passwd" in new and "/etc/hosts" in new  # the listing saw /etc at all
    assert new == old


@pytest.mark.security
def test_etc_attacks_from_inside_fail(world: Path) -> None:
    launcher = Launcher()
    spec = _spec()
    tree = etc_dir(os.getuid(), os.getgid())
    try:
        r = _run(launcher, spec, ATTACK_ETC, world / "attack.json")
        before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
        # and a second launch, from the tree as it is now
        r2 = _run(launcher, spec, ATTACK_ETC, world / "attack2.json")
    finally:
        launcher.shutdown(timeout=5.0)
    for res in (r, r2):
        for key in [k for k in res if k.startswith(("read:", "list:"))]:
            assert res[key] == "ENOENT", (key, res[key])
        for key in ("write:/etc/hosts", "create:/etc/planted", "create:/etc/ssl/planted"):
            assert res[key] in ("EROFS", "EACCES"), (key, res[key])
        for key in ("chmod:/etc/hosts", "chmod:/etc", "rename:/etc/passwd", "unlink:/etc/group"):
            assert res[key] in ("EROFS", "EPERM", "EACCES"), (key, res[key])
        assert res["symlink:/etc/shadow"] in ("EROFS", "EACCES"), res
        assert res["mkdir:/etc/fonts/x"] in ("EROFS", "EACCES", "ENOENT"), res
        # nothing but the pieces of the policy
        allowed = {p.split("/")[2] for p in bwrap.SYSTEM_CANDIDATES if p.startswith("/etc/")}
        assert set(res["names"]) <= allowed | {"passwd", "group"}, res["names"]
        assert "passwd" in res["names"]
    assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == before
    assert not (tree / "planted").exists()


def _host(etc: Path, uid: int = 4242) -> HostFacts:
    # which candidates "exist": the ones the test's own /etc stand-in has
    present = frozenset(
        p for p in bwrap.SYSTEM_CANDIDATES if os.path.lexists(etc / p.removeprefix("/etc/"))
    )
    return HostFacts(uid=uid, gid=uid, user="someone", system_files=present)


def test_the_tree_follows_its_sources(world: Path) -> None:
    host_etc = world / "host-etc"
    (host_etc / "fonts" / "conf.d").mkdir(parents=True)
    (host_etc / "hosts").write_text("127.0.0.1 localhost\n")
    (host_etc / "zone-a").write_text("A\n")
    (host_etc / "zone-b").write_text("B\n")
    (host_etc / "localtime").symlink_to("zone-a")
    (host_etc / "fonts" / "fonts.conf").write_text("<fontconfig/>\n")
    (host_etc / "fonts" / "conf.d" / "10-x.conf").symlink_to("/usr/share/x.conf")
    trees = EtcTrees(host_etc=str(host_etc))
    spec = _spec("follow")
    tree = trees.ensure(spec, _host(host_etc))
    assert tree is not None
    root = Path(tree.path)
    assert (root / "hosts").read_text() == "127.0.0.1 localhost\n"
    assert (root / "localtime").read_text() == "A\n" and not (root / "localtime").is_symlink()
    assert os.readlink(root / "fonts" / "conf.d" / "10-x.conf") == "/usr/share/x.conf"
    assert (root / "passwd").read_text().startswith("someone:x:4242:4242:")
    assert not (root / "zone-a").exists()  # not a piece of the policy: never copied
    assert {"/etc/hosts", "/etc/localtime", "/etc/fonts", "/etc/passwd"} <= tree.files
    hosts_inode = (root / "hosts").stat().st_ino

    # nothing changed: the same tree, the file untouched
    assert trees.ensure(spec, _host(host_etc)) == tree
    assert (root / "hosts").stat().st_ino == hosts_inode

    # edited in place (same size, same second), retargeted, added to, removed from
    with open(host_etc / "hosts", "r+") as f:
        f.write("10")
    (host_etc / "localtime").unlink()
    (host_etc / "localtime").symlink_to("zone-b")
    (host_etc / "fonts" / "conf.d" / "20-y.conf").write_text("y\n")
    (host_etc / "fonts" / "conf.d" / "10-x.conf").unlink()
    trees.ensure(spec, _host(host_etc))
    assert (root / "hosts").read_text() == "107.0.0.1 localhost\n"
    assert (root / "localtime").read_text() == "B\n"
    assert (root / "fonts" / "conf.d" / "20-y.conf").read_text() == "y\n"
    assert not os.path.lexists(root / "fonts" / "conf.d" / "10-x.conf")

    # a directory the copy cannot reproduce (a fifo in it) becomes a bind over a mount point
    os.mkfifo(host_etc / "fonts" / "pipe")
    tree = trees.ensure(spec, _host(host_etc))
    assert tree is not None
    assert "/etc/fonts" in tree.binds and "/etc/fonts" not in tree.files
    assert (root / "fonts").is_dir() and list((root / "fonts").iterdir()) == []
    # what not everyone may read is never copied (the copy's owner differs): bound instead
    (host_etc / "gai.conf").write_text("secret to some\n")
    (host_etc / "gai.conf").chmod(0o640)
    (host_etc / "xdg").mkdir()
    (host_etc / "xdg" / "private").write_text("secret to some\n")
    (host_etc / "xdg" / "private").chmod(0o600)
    tree = trees.ensure(spec, _host(host_etc))
    assert tree is not None
    assert {"/etc/gai.conf", "/etc/xdg"} <= tree.binds
    assert (root / "gai.conf").read_bytes() == b""
    assert list((root / "xdg").iterdir()) == []
    # a piece that went away leaves the tree
    (host_etc / "hosts").unlink()
    tree = trees.ensure(spec, _host(host_etc))
    assert tree is not None
    assert not (root / "hosts").exists() and "/etc/hosts" not in tree.files
    # another user id (a nested_sandbox desktop of a root launcher): a tree of its own
    other = trees.ensure(spec, _host(host_etc, uid=777))
    assert other is not None and other.path != tree.path
    assert (Path(other.path) / "passwd").read_text().startswith("someone:x:777:777:")
    assert (root / "passwd").read_text().startswith("someone:x:4242:4242:")


def test_a_changed_source_shows_in_the_next_sandbox(world: Path) -> None:
    host_etc = world / "host-etc"
    host_etc.mkdir()
    (host_etc / "hosts").write_text("10.1.2.3 before\n")
    launcher = Launcher()
    launcher.etc = EtcTrees(host_etc=str(host_etc))
    spec = _spec("change")
    script = "print(open('/etc/hosts').read(), end='')"
    try:
        out = world / "out"
        with open(out, "wb") as f:
            running = launcher.launch(
                spec, [PYTHON, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
            )
            first = launcher.launch(spec, [PYTHON, "-c", script], stdout=f.fileno())
        assert first.wait(30) == 0
        assert out.read_text() == "10.1.2.3 before\n"
        (host_etc / "hosts").write_text("10.1.2.3 after, longer\n")
        with open(out, "wb") as f:
            second = launcher.launch(spec, [PYTHON, "-c", script], stdout=f.fileno())
        assert second.wait(30) == 0
        assert out.read_text() == "10.1.2.3 after, longer\n"
        running.kill()
        running.wait(30)
    finally:
        launcher.shutdown(timeout=5.0)


def test_a_tree_built_on_a_worker_is_bound_only_once_whole(world: Path) -> None:
    host_etc = world / "host-etc"
    host_etc.mkdir()
    (host_etc / "hosts").write_text("10.1.2.3 before\n")
    queued: list[tuple[str, str, Any]] = []
    trees = EtcTrees(host_etc=str(host_etc), background=lambda *job: queued.append(job))
    spec = _spec("worker")
    host = _host(host_etc)
    # the build is queued, not done here: until it has run, no tree (the pieces are bound)
    assert trees.ensure(spec, host) is None
    assert len(queued) == 1 and trees.building()
    assert trees.ensure(spec, host) is None
    assert len(queued) == 1  # one build at a time
    queued.pop()[2]()
    assert not trees.building()
    tree = trees.ensure(spec, host)
    assert tree is not None
    assert (Path(tree.path) / "hosts").read_text() == "10.1.2.3 before\n"
    # a source changed: the update runs on the worker too, and meanwhile no tree is bound
    (host_etc / "hosts").write_text("10.1.2.3 after, longer\n")
    assert trees.ensure(spec, host) is None
    queued.pop()[2]()
    tree = trees.ensure(spec, host)
    assert tree is not None
    assert (Path(tree.path) / "hosts").read_text() == "10.1.2.3 after, longer\n"
    assert not queued
