"""Template building without sandboxes: archive safety, OCI/docker layers, metadata, CLI.

Real archives are built by the tests with tarfile and extracted into tmp_path; nothing here
needs root, bwrap or FUSE.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from zionwm import ctl, paths
from zionwm.isolation.bwrap import (
    FONTS_DIR,
    HostFacts,
    MountKind,
    PlanError,
    TemplateFacts,
    plan_sandbox,
)
from zionwm.isolation.spec import DesktopSpec
from zionwm.isolation.templates import bootstrap, images, launch, manage, store, tree
from zionwm.isolation.templates.store import Source, TemplateError, UnsafeArchiveError

# -- archive building helpers ---------------------------------------------------------------


def _file(name: str, data: bytes = b"", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 1_700_000_000
    return info, data


def _entry(name: str, kind: bytes, *, link: str = "", mode: int = 0o755) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = mode
    return info


Member = tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]


def tar_bytes(members: list[Member], *, compress: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            if isinstance(m, tuple):
                tf.addfile(m[0], io.BytesIO(m[1]))
            else:
                tf.addfile(m)
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def base_layer() -> list[Member]:
    return [
        _entry("usr", tarfile.DIRTYPE),
        _entry("usr/bin", tarfile.DIRTYPE),
        _file("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o755),
        _entry("bin", tarfile.SYMTYPE, link="usr/bin"),
        _entry("etc", tarfile.DIRTYPE),
        _file("etc/os-release", b"ID=layered\n"),
        _entry("usr/share", tarfile.DIRTYPE),
        _file("usr/share/doomed", b"from layer 1\n"),
        _file("usr/share/kept", b"from layer 1\n"),
        _entry("usr/lib/stuff", tarfile.DIRTYPE),
        _file("usr/lib/stuff/old", b"hidden by an opaque dir\n"),
    ]


def top_layer() -> list[Member]:
    return [
        _entry("usr/share", tarfile.DIRTYPE),
        _file("usr/share/.wh.doomed"),
        _file("usr/share/added", b"from layer 2\n"),
        _entry("usr/lib/stuff", tarfile.DIRTYPE),
        _file("usr/lib/stuff/.wh..wh..opq"),
        _file("usr/lib/stuff/new", b"layer 2\n"),
    ]


def oci_archive(path: Path, layers: list[bytes], *, as_dir: bool = False) -> Path:
    """An OCI image layout (tar file, or directory) holding `layers` in order."""
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return f"sha256:{digest}"

    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/usr/bin"]}}
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"digest": put(config), "size": len(config)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(layer)}
            for layer in layers
        ],
    }
    mdata = json.dumps(manifest).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(mdata),
                "platform": {"architecture": images.host_oci_arch(), "os": "linux"},
            }
        ],
    }
    files = {
        "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
        "index.json": json.dumps(index).encode(),
    }
    files.update({f"blobs/sha256/{d}": b for d, b in blobs.items()})
    if as_dir:
        for name, data in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(data)
        return path
    path.write_bytes(tar_bytes([_file(n, d) for n, d in files.items()]))
    return path


def docker_archive(path: Path, layers: list[bytes]) -> Path:
    files = {f"{i:02d}/layer.tar": data for i, data in enumerate(layers)}
    files["cfg.json"] = b'{"config": {"Cmd": ["/bin/sh"]}}'
    files["manifest.json"] = json.dumps(
        [
            {
                "Config": "cfg.json",
                "RepoTags": ["t:1"],
                "Layers": [f"{i:02d}/layer.tar" for i in range(len(layers))],
            }
        ]
    ).encode()
    path.write_bytes(tar_bytes([_file(n, d) for n, d in files.items()]))
    return path


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for key in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(key, str(tmp_path / key.lower()))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield tmp_path


def all_paths(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# -- names, member paths ----------------------------------------------------------------------


def test_member_parts_strip_roots_and_refuse_climbing() -> None:
    assert tree.member_parts("./usr/bin/x") == ("usr", "bin", "x")
    assert tree.member_parts("/etc//passwd") == ("etc", "passwd")
    assert tree.member_parts("./") == ()
    for bad in ("../x", "usr/../../x", "a/.."):
        with pytest.raises(UnsafeArchiveError):
            tree.member_parts(bad)


@pytest.mark.parametrize("name", ["Debian", "", "a/b", "..", "-x", "a" * 33, "a b"])
def test_bad_template_names(name: str) -> None:
    with pytest.raises(TemplateError):
        store.check_name(name)


# -- OCI and docker archives ------------------------------------------------------------------


@pytest.mark.parametrize("as_dir", [False, True], ids=["oci-tar", "oci-dir"])
def test_oci_layers_apply_in_order_with_whiteouts(xdg: Path, as_dir: bool) -> None:
    where = xdg / ("layout" if as_dir else "image.tar")
    where.mkdir() if as_dir else None
    oci_archive(
        where,
        [tar_bytes(base_layer(), compress=True), tar_bytes(top_layer())],
        as_dir=as_dir,
    )
    tpl = manage.create("img", Source("archive", str(where)))
    root = tpl.rootfs
    assert not (root / "usr/share/doomed").exists()  # deleted by layer 2's whiteout
    assert (root / "usr/share/kept").read_text() == "from layer 1\n"
    assert (root / "usr/share/added").read_text() == "from layer 2\n"
    assert sorted(os.listdir(root / "usr/lib/stuff")) == ["new"]  # opaque dir
    assert not any(".wh." in p for p in all_paths(root))
    assert os.readlink(root / "bin") == "usr/bin"
    assert (root / "usr/bin/tool").stat().st_mode & 0o777 == 0o755
    assert tpl.image_config["Env"] == ["PATH=/usr/bin"]
    # The files sandboxes bind over exist as plain files.
    for rel in tree.BIND_TARGETS:
        assert stat.S_ISREG(os.lstat(root / rel).st_mode), rel
    assert store.load("img").to_json() == tpl.to_json()


def test_docker_save_archive(xdg: Path) -> None:
    arch = docker_archive(xdg / "d.tar", [tar_bytes(base_layer()), tar_bytes(top_layer())])
    tpl = manage.create("dock", Source("archive", str(arch)))
    assert not (tpl.rootfs / "usr/share/doomed").exists()
    assert (tpl.rootfs / "usr/share/added").exists()
    assert tpl.image_config == {"Cmd": ["/bin/sh"]}


def test_layer_not_matching_its_digest_is_refused(xdg: Path) -> None:
    arch = oci_archive(xdg / "i.tar", [tar_bytes(base_layer())])
    with tarfile.open(arch) as tf:
        members = [(m, tf.extractfile(m).read() if m.isreg() else b"") for m in tf.getmembers()]  # type: ignore[union-attr]
    tampered = []
    for m, data in members:
        changed = data
        if m.name.startswith("blobs/") and data.startswith(b"usr"):
            changed = data.replace(b"echo tool", b"echo evil")
        tampered.append(_file(m.name, changed))
    arch.write_bytes(tar_bytes(tampered))  # type: ignore[arg-type]
    with pytest.raises(TemplateError, match="digest"):
        manage.create("bad", Source("archive", str(arch)))
    assert not (paths.templates_dir() / "bad" / "gen-1").exists()


def test_plain_tarball_is_not_an_image(xdg: Path) -> None:
    plain = xdg / "rootfs.tar"
    plain.write_bytes(tar_bytes(base_layer()))
    with pytest.raises(TemplateError, match="--from-rootfs"):
        manage.create("x", Source("archive", str(plain)))
    tpl = manage.create("x", Source("rootfs", str(plain)))
    assert (tpl.rootfs / "usr/share/doomed").exists()


def test_pick_manifest_by_architecture() -> None:
    index = {
        "manifests": [
            {"digest": "a", "platform": {"architecture": "arm64", "os": "linux"}},
            {"digest": "b", "platform": {"architecture": "amd64", "os": "linux"}},
        ]
    }
    assert images.pick_manifest(index, "amd64")["digest"] == "b"
    with pytest.raises(TemplateError, match="riscv64"):
        images.pick_manifest(index, "riscv64")


# -- hostile archives -------------------------------------------------------------------------


def _check_nothing_outside(xdg: Path, before: set[str]) -> None:
    """Everything new under xdg is the templates dir, inside it, or one of its parents."""
    tdir = paths.templates_dir().relative_to(xdg)
    allowed = {str(tdir), *(str(p) for p in tdir.parents if str(p) != ".")}
    new = {p for p in all_paths(xdg) - before if not p.startswith(f"{tdir}/")}
    assert new <= allowed, new - allowed


def test_dotdot_archive_is_refused_and_leaves_nothing(xdg: Path) -> None:
    (xdg / "victim").mkdir()
    evil = xdg / "evil.tar"
    evil.write_bytes(
        tar_bytes(
            [
                *base_layer(),
                _file("../../victim/planted", b"x"),
                _file("usr/../../victim/planted2", b"x"),
            ]
        )
    )
    before = all_paths(xdg)
    with pytest.raises(UnsafeArchiveError, match=r"\.\."):
        manage.create("evil", Source("rootfs", str(evil)))
    _check_nothing_outside(xdg, before)
    assert not (paths.templates_dir() / "evil").exists()
    with pytest.raises(TemplateError, match="no template"):
        store.load("evil")


def test_writing_through_a_symlink_is_refused(xdg: Path) -> None:
    outside = xdg / "outside"
    outside.mkdir()
    for target in (str(outside), "../../../../../../.." + str(outside)):
        evil = xdg / "evil.tar"
        evil.write_bytes(
            tar_bytes(
                [*base_layer(), _entry("esc", tarfile.SYMTYPE, link=target), _file("esc/x", b"!")]
            )
        )
        with pytest.raises(UnsafeArchiveError, match="link"):
            manage.create("evil", Source("rootfs", str(evil)))
        assert list(outside.iterdir()) == []
    # Hard links must point inside the tree too.
    (outside / "secret").write_text("s")
    for link in (str(outside / "secret"), "../../outside/secret"):
        evil.write_bytes(tar_bytes([*base_layer(), _entry("h", tarfile.LNKTYPE, link=link)]))
        with pytest.raises(UnsafeArchiveError):
            manage.create("evil", Source("rootfs", str(evil)))
    assert (outside / "secret").stat().st_nlink == 1


def test_devices_setid_and_absolute_names_are_neutralised(xdg: Path) -> None:
    members: list[Member] = [
        *base_layer(),
        _entry("dev", tarfile.DIRTYPE),
        _entry("dev/sda", tarfile.BLKTYPE, mode=0o666),
        _entry("dev/mem", tarfile.CHRTYPE, mode=0o666),
        _entry("dev/fifo", tarfile.FIFOTYPE, mode=0o666),
        _file("usr/bin/su", b"#!/bin/sh\n", 0o4755),
        _file("usr/bin/wall", b"#!/bin/sh\n", 0o2755),
        _file("/usr/bin/absolute", b"abs\n", 0o755),
        _entry("etc/alternatives", tarfile.DIRTYPE),
        _entry("etc/alternatives/pager", tarfile.SYMTYPE, link="/etc/shadow"),
        _entry("etc/resolv.conf", tarfile.SYMTYPE, link="/run/systemd/resolve/stub-resolv.conf"),
        _entry("usr/bin/tool-link", tarfile.LNKTYPE, link="usr/bin/tool"),
    ]
    arch = xdg / "n.tar"
    arch.write_bytes(tar_bytes(members))
    before = all_paths(xdg)
    tpl = manage.create("n", Source("rootfs", str(arch)))
    root = tpl.rootfs
    assert sorted(os.listdir(root / "dev")) == []
    assert (root / "usr/bin/su").stat().st_mode & 0o7777 == 0o755
    assert (root / "usr/bin/wall").stat().st_mode & 0o7777 == 0o755
    assert (root / "usr/bin/absolute").read_text() == "abs\n"
    # Absolute link targets stay links (resolved only inside a sandbox), never followed here.
    assert os.readlink(root / "etc/alternatives/pager") == "/etc/shadow"
    assert stat.S_ISREG(os.lstat(root / "etc/resolv.conf").st_mode)
    assert os.stat(root / "usr/bin/tool-link").st_ino == os.stat(root / "usr/bin/tool").st_ino
    assert tpl.counts == {"devices": 2, "fifos": 1, "setid": 2, "absolute": 1, "bind-targets": 1}
    _check_nothing_outside(xdg, before)


def test_from_dir_copies_links_and_skips_special_files(xdg: Path) -> None:
    src = xdg / "src"
    (src / "usr/bin").mkdir(parents=True)
    (src / "etc").mkdir()
    (src / "usr/bin/a").write_text("a")
    os.link(src / "usr/bin/a", src / "usr/bin/b")
    os.symlink("/etc/passwd", src / "usr/bin/link")
    os.mkfifo(src / "usr/bin/fifo")
    (src / "usr/bin/s").write_text("s")
    os.chmod(src / "usr/bin/s", 0o6755)
    tpl = manage.create("d", Source("dir", str(src)))
    root = tpl.rootfs
    assert os.stat(root / "usr/bin/a").st_ino == os.stat(root / "usr/bin/b").st_ino
    assert os.readlink(root / "usr/bin/link") == "/etc/passwd"
    assert not (root / "usr/bin/fifo").exists()
    assert (root / "usr/bin/s").stat().st_mode & 0o7777 == 0o755
    assert tpl.counts["setid"] == 1


# -- update, delete, facts --------------------------------------------------------------------


def test_update_builds_a_new_generation_and_prunes_the_old(xdg: Path) -> None:
    src = xdg / "src"
    (src / "usr").mkdir(parents=True)
    (src / "etc").mkdir()
    (src / "etc/version").write_text("1")
    tpl = manage.create("u", Source("dir", str(src)))
    assert tpl.rootfs.name == "gen-1"
    with pytest.raises(TemplateError, match="exists"):
        manage.create("u", Source("dir", str(src)))
    (src / "etc/version").write_text("2")
    new = manage.update("u")
    assert new.generation == 2 and new.created == tpl.created
    assert (new.rootfs / "etc/version").read_text() == "2"
    assert not tpl.rootfs.exists()  # nobody used generation 1
    facts = launch.template_facts("work", "u", ephemeral=False)
    assert facts.lower == str(new.rootfs)
    assert ("usr", None) in facts.top and ("etc", None) in facts.top
    assert Path(facts.upper).is_dir() and Path(facts.merged).is_dir()
    assert Path(facts.upper) == paths.desktop_dir("work") / "template-layer" / "u" / "upper"
    eph = launch.template_facts("tmp", "u", ephemeral=True)
    assert eph.scratch is not None and eph.upper.startswith(eph.scratch)
    assert [d for d, _ in manage.desktop_layers("u")] == ["tmp", "work"]
    manage.delete("u")
    assert not (paths.templates_dir() / "u").exists()
    assert (paths.desktop_dir("work") / "template-layer" / "u").is_dir()  # layers are kept
    with pytest.raises(TemplateError):
        launch.template_facts("work", "u", ephemeral=False)


def test_helper_argv_names_every_layer_dir() -> None:
    facts = TemplateFacts("t", "/L", "/U", "/W", "/M", "/S", (("usr", None),))
    argv = launch.helper_argv(facts, python="/py")
    assert argv[0] == "/py" and argv[-1] == "--"
    tail = argv[4:-1]
    assert tail == [
        "--lower",
        "/L",
        "--upper",
        "/U",
        "--work",
        "/W",
        "--merged",
        "/M",
        "--scratch",
        "/S",
    ]


# -- the planner with a template --------------------------------------------------------------

HOST = HostFacts(
    uid=1000,
    gid=1000,
    user="alice",
    system_files=frozenset(
        {"/etc/resolv.conf", "/etc/hosts", "/etc/ssl/certs", "/var/cache/fontconfig"}
    ),
    root_links=(("/bin", "usr/bin"), ("/lib64", None)),
    font_dirs=("/usr/share/fonts",),
)
FACTS = TemplateFacts(
    "deb",
    "/T/gen-1",
    "/D/upper",
    "/D/work",
    "/D/merged",
    None,
    (("usr", None), ("etc", None), ("var", None), ("bin", "usr/bin"), ("lib", None)),
)


def _plan(**kw: object) -> object:
    spec = DesktopSpec(name="work", colour=(1, 1, 1, 1), **kw)  # type: ignore[arg-type]
    return plan_sandbox(
        spec, ["/bin/sh"], HOST, host_env={}, wayland_socket="/run/w", template=FACTS
    )


def test_plan_takes_the_system_from_the_template() -> None:
    plan = _plan(template="deb")
    binds = {m.dest: m for m in plan.mounts}  # type: ignore[attr-defined]
    assert binds["/usr"].kind is MountKind.BIND and binds["/usr"].source == "/D/merged/usr"
    assert binds["/etc"].source == "/D/merged/etc"
    assert binds["/var"].source == "/D/merged/var"
    assert binds["/lib"].source == "/D/merged/lib"
    assert binds["/bin"].kind is MountKind.SYMLINK and binds["/bin"].source == "usr/bin"
    assert "/lib64" not in binds  # the host's layout does not leak in
    sources = {m.source for m in plan.mounts}  # type: ignore[attr-defined]
    assert "/usr" not in sources and "/etc/ssl/certs" not in sources
    assert "/var/cache/fontconfig" not in sources
    assert binds["/etc/resolv.conf"].source == "/etc/resolv.conf"
    assert binds[f"{FONTS_DIR}/host0"].source == "/usr/share/fonts"
    assert plan.env["FONTCONFIG_FILE"]  # type: ignore[attr-defined]
    # /etc comes before the host's resolv.conf is bound over it; /var before its tmpfs.
    order = [m.dest for m in plan.mounts]  # type: ignore[attr-defined]
    assert order.index("/etc") < order.index("/etc/resolv.conf")
    assert order.index("/var") < order.index("/var/tmp")
    assert plan.template == FACTS and not plan.writable_usr  # type: ignore[attr-defined]


def test_plan_refuses_an_unprepared_template() -> None:
    spec = DesktopSpec(name="work", colour=(1, 1, 1, 1), template="other")
    with pytest.raises(PlanError, match="not prepared"):
        plan_sandbox(spec, ["/bin/sh"], HOST, host_env={}, wayland_socket=None, template=FACTS)
    with pytest.raises(PlanError):
        plan_sandbox(spec, ["/bin/sh"], HOST, host_env={}, wayland_socket=None)


# -- debootstrap and podman -------------------------------------------------------------------


def test_apt_mirror_from_both_source_formats() -> None:
    deb822 = (
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm\n"
    )
    assert bootstrap.apt_mirror([deb822]) == "http://mirror.example/debian"
    one_line = "deb [signed-by=/k.gpg] http://one.example/debian bookworm main\n"
    assert bootstrap.apt_mirror(["# nothing\n", one_line]) == "http://one.example/debian"
    assert bootstrap.apt_mirror(["deb-src http://x/ bookworm main\n"]) is None


def test_debootstrap_argv() -> None:
    src = Source("debootstrap", "bookworm", include=("hello",), mirror="http://m/debian")
    argv = bootstrap.debootstrap_argv(src, Path("/t"), Path("/c"))
    assert argv[1:] == [
        "--variant=minbase",
        "--include=hello",
        "--cache-dir=/c",
        "bookworm",
        "/t",
        "http://m/debian",
    ]


def test_podman_missing_is_said(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(xdg / "empty"))
    with pytest.raises(TemplateError, match="podman is not installed"):
        manage.create("p", Source("podman", "alpine:3"))
    assert not (paths.templates_dir() / "p").exists()


# -- zionctl template -------------------------------------------------------------------------


def test_cli_create_list_show_update_delete(xdg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = oci_archive(xdg / "i.tar", [tar_bytes(base_layer()), tar_bytes(top_layer())])
    assert ctl.main(["template", "create", "img", "--from-archive", str(arch)]) == 0
    assert "template img created" in capsys.readouterr().out
    assert ctl.main(["template", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["NAME", "GEN", "SIZE", "FILES", "UPDATED", "SOURCE"]
    assert out.splitlines()[1].split()[:2] == ["img", "1"]
    assert ctl.main(["template", "show", "img", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["generation"] == 1 and doc["layers"] == [] and doc["files"] > 5
    assert ctl.main(["template", "update", "img"]) == 0
    assert "generation 2" in capsys.readouterr().out
    assert ctl.main(["template", "create", "img", "--from-dir", str(xdg)]) == 1
    assert "exists" in capsys.readouterr().err
    assert ctl.main(["template", "delete", "img"]) == 0
    assert ctl.main(["template", "show", "img"]) == 1
    assert "no template" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a source is required
        ctl.main(["template", "create", "x"])
