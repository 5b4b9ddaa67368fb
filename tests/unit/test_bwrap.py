"""The pure sandbox planner and bwrap argv builder (zionwm.isolation.bwrap): no root, no bwrap."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from zionwm.isolation.bwrap import (
    FONTS_CONF,
    PROC_MASKED_DIRS,
    PROC_MASKED_FILES,
    SYSTEM_CANDIDATES,
    EtcTree,
    FdSlot,
    GpuSysfs,
    HostFacts,
    Mount,
    MountKind,
    PlanError,
    SandboxPlan,
    SeedEntry,
    SeedKind,
    SlotKind,
    build_argv,
    plan_sandbox,
)
from zionwm.isolation.spec import DesktopSpec, Devices, DownloadsPolicy

HOST = HostFacts(
    uid=1000,
    gid=1000,
    user="alice",
    system_files=frozenset({"/etc/resolv.conf", "/etc/hosts", "/etc/ssl/certs", "/etc/fonts"}),
    root_links=(("/bin", "usr/bin"), ("/lib", "usr/lib"), ("/lib64", None)),
    dri_nodes=("/dev/dri/card0", "/dev/dri/renderD128"),
    video_nodes=("/dev/video0",),
    pipewire_socket="/run/user/1000/pipewire-0",
    pulse_socket="/run/user/1000/pulse/native",
    gpu_sysfs=(
        GpuSysfs(
            node="/dev/dri/renderD128",
            char_link="/sys/dev/char/226:128",
            char_target="../../devices/pci0000:00/0000:00:02.0/drm/renderD128",
            device_dir="/sys/devices/pci0000:00/0000:00:02.0",
            hidden=("/sys/devices/pci0000:00/0000:00:02.0/drm/card0",),
        ),
    ),
    proc_masked=frozenset(
        {"/proc/interrupts", "/proc/keys", "/proc/irq", "/proc/pressure", "/proc/loadavg"}
    ),
    boot_time=1700000000,
    cpus=2,
)

HOST_ENV = {
    "TERM": "foot",
    "LANG": "de_DE.UTF-8",
    "LC_TIME": "C",
    "LD_PRELOAD": "/tmp/evil.so",
    "LD_LIBRARY_PATH": "/tmp",
    "WAYLAND_DISPLAY": "wayland-1",
    "DISPLAY": ":0",
    "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus",
    "SSH_AUTH_SOCK": "/run/user/1000/ssh-agent",
    "SWAYSOCK": "/run/user/1000/sway.sock",
    "ZIONWM_SOCK": "/run/user/1000/zionwm/ipc.sock",
    "HOME": "/home/alice",
    "XDG_RUNTIME_DIR": "/run/user/1000",
    "PATH": "/home/alice/bin:/usr/bin",
    "SECRET_TOKEN": "hunter2",
}


def spec(**kw: object) -> DesktopSpec:
    return DesktopSpec(name=str(kw.pop("name", "work")), colour=(0.2, 0.4, 1.0, 1.0), **kw)  # type: ignore[arg-type]


def plan(
    s: DesktopSpec | None = None, argv: tuple[str, ...] = ("foot",), **kw: object
) -> SandboxPlan:
    defaults: dict[str, object] = {
        "host_env": HOST_ENV,
        "wayland_socket": "/run/user/1000/zionwm/work/wayland-0",
    }
    defaults.update(kw)
    return plan_sandbox(s or spec(), argv, HOST, **defaults)  # type: ignore[arg-type]


def filled(p: SandboxPlan) -> SandboxPlan:
    return p.with_fds({name: 10 + i for i, name in enumerate(p.slot_names())})


def argv_of(p: SandboxPlan) -> list[str]:
    return build_argv(filled(p))


def options(argv: list[str]) -> list[str]:
    return argv[: argv.index("--")]


def mounts_by_dest(p: SandboxPlan) -> Mapping[str, Mount]:
    return {m.dest: m for m in p.mounts}


def triples(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(options(argv)) if a == flag]


# -- namespaces, privileges, process supervision ----------------------------------------------


def test_confinement_flags_always_present() -> None:
    a = options(argv_of(plan()))
    assert a[0] == "/usr/bin/bwrap"
    for flag in (
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
    ):
        assert flag in a
    i = a.index("--cap-drop")
    assert a[i + 1] == "ALL"
    assert a[a.index("--uid") + 1] == "1000"
    assert a[a.index("--gid") + 1] == "1000"
    assert a[a.index("--hostname") + 1] == "work"
    assert "--proc" in a and a[a.index("--proc") + 1] == "/proc"
    assert "--dev" in a and a[a.index("--dev") + 1] == "/dev"


def test_nested_sandbox_keeps_user_namespaces_and_every_other_confinement() -> None:
    nested = plan(spec(nested_sandbox=True))
    a = options(argv_of(nested))
    assert nested.nested_sandbox
    assert "--disable-userns" not in a
    for flag in ("--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"):
        assert flag in a
    assert a[a.index("--cap-drop") + 1] == "ALL"
    assert not plan().nested_sandbox


def test_nested_sandbox_maps_a_root_user_to_an_ordinary_id() -> None:
    from dataclasses import replace

    from zionwm.isolation.bwrap import NESTED_ROOT_ID

    root = replace(HOST, uid=0, gid=0, user="root")
    sock = "/run/zionwm/work/wayland-0"
    nested = plan_sandbox(spec(nested_sandbox=True), ("x",), root, host_env={}, wayland_socket=sock)
    assert (nested.uid, nested.gid) == (NESTED_ROOT_ID, NESTED_ROOT_ID)
    assert nested.runtime_dir == f"/run/user/{NESTED_ROOT_ID}"
    plain = plan_sandbox(spec(), ("x",), root, host_env={}, wayland_socket=sock)
    assert (plain.uid, plain.gid) == (0, 0)


def test_network_unshared_unless_a_netns_was_joined() -> None:
    assert "--share-net" not in argv_of(plan())
    joined = argv_of(plan(share_net=True))
    assert "--share-net" in joined and "--unshare-all" in joined


def test_command_follows_double_dash_verbatim() -> None:
    a = argv_of(plan(argv=("sh", "-c", "--unshare-all; echo hi")))
    assert a[a.index("--") + 1 :] == ["sh", "-c", "--unshare-all; echo hi"]


def test_seccomp_and_status_fds_come_from_their_slots() -> None:
    p = filled(plan())
    a = build_argv(p)
    assert a[a.index("--seccomp") + 1] == str(p.fds["seccomp"])
    assert a[a.index("--json-status-fd") + 1] == str(p.fds["status"])


def test_unfilled_slot_is_an_error_not_a_guess() -> None:
    with pytest.raises(PlanError, match="was not filled"):
        build_argv(plan().with_fds({}))
    p = plan()
    partial = {n: 3 for n in p.slot_names() if n != "seccomp"}
    with pytest.raises(PlanError, match="'seccomp'"):
        build_argv(p.with_fds(partial))


def test_build_argv_is_deterministic() -> None:
    p = filled(plan(spec(devices=Devices(gpu=True, audio=True), fonts=("/f",))))
    assert build_argv(p) == build_argv(p)


def test_bad_input_refused() -> None:
    with pytest.raises(PlanError):
        plan(argv=())
    with pytest.raises(PlanError):
        plan(spec(name="../etc"))
    with pytest.raises(PlanError, match="writable_usr"):
        plan(spec(writable_usr=True))


# -- filesystem --------------------------------------------------------------------------------


def test_proc_sys_is_read_only_after_proc() -> None:
    full = argv_of(plan())
    a = options(full)
    proc = a.index("/proc", a.index("--proc"))
    sys_ro = a.index("/proc/sys")
    assert a[sys_ro - 1] == "--ro-bind-try" and sys_ro > proc
    assert ("/proc/sysrq-trigger", "/proc/sysrq-trigger") in triples(full, "--ro-bind-try")


def test_usr_read_only_and_root_links_as_on_host() -> None:
    a = argv_of(plan())
    assert ("/usr", "/usr") in triples(a, "--ro-bind")
    assert ("usr/bin", "/bin") in triples(a, "--symlink")
    assert ("usr/lib", "/lib") in triples(a, "--symlink")
    assert ("/lib64", "/lib64") in triples(a, "--ro-bind")


def test_only_existing_etc_pieces_and_never_secrets() -> None:
    a = argv_of(plan())
    etc = {d for _, d in triples(a, "--ro-bind-try") if not d.startswith(("/sys", "/proc"))}
    assert etc == set(HOST.system_files)
    assert "/etc/ssl" not in SYSTEM_CANDIDATES  # /etc/ssl/private holds keys
    assert "/etc/shadow" not in " ".join(a)
    assert "/etc/shadow" not in SYSTEM_CANDIDATES
    assert "/etc/machine-id" not in SYSTEM_CANDIDATES


def test_passwd_and_group_are_synthesized_for_the_user() -> None:
    p = plan()
    by_name = {s.name: s for s in p.slots}
    passwd = by_name["passwd"].data.decode()
    assert passwd.splitlines()[0] == "alice:x:1000:1000:alice:/home/alice:/bin/sh"
    assert "root:" not in passwd
    assert by_name["group"].data.decode().startswith("alice:x:1000:")
    dests = mounts_by_dest(p)
    assert dests["/etc/passwd"].kind is MountKind.RO_BIND_DATA
    assert dests["/etc/group"].kind is MountKind.RO_BIND_DATA


def test_persistent_home_shared_outbox_bound_by_fd() -> None:
    p = plan()
    d = mounts_by_dest(p)
    assert d["/home/alice"].kind is MountKind.BIND_FD
    assert d["/home/alice/Shared"].kind is MountKind.RO_BIND_FD
    assert d["/home/alice/Outbox"].kind is MountKind.BIND_FD
    assert "/home/alice/Downloads" not in d
    storage = {s.name: s.storage for s in p.slots if s.kind is SlotKind.STORAGE}
    assert storage == {"home": "home", "shared": "shared", "outbox": "outbox"}
    # The home must be mounted before what is mounted inside it.
    order = [m.dest for m in p.mounts]
    assert order.index("/home/alice") < order.index("/home/alice/Shared")
    assert order.index("/home/alice") < order.index("/home/alice/Outbox")
    # No host path of any data dir appears in the argv: only fds.
    f = filled(p)
    a = build_argv(f)
    assert (str(f.fds["home"]), "/home/alice") in triples(a, "--bind-fd")
    assert (str(f.fds["shared"]), "/home/alice/Shared") in triples(a, "--ro-bind-fd")
    assert all("zionwm/desktops" not in x for x in a)


def test_downloads_policy_binds_the_inbox_as_downloads() -> None:
    p = plan(spec(downloads=DownloadsPolicy(release_to="personal")))
    d = mounts_by_dest(p)
    assert d["/home/alice/Downloads"].kind is MountKind.BIND_FD
    assert any(s.storage == "inbox" for s in p.slots)


def test_ephemeral_home_is_tmpfs_seeded_from_template() -> None:
    seed = (
        SeedEntry(".config", SeedKind.DIR, mode=0o755),
        SeedEntry(".config/app.conf", SeedKind.FILE, mode=0o600, slot="seed0"),
        SeedEntry("link", SeedKind.SYMLINK, target=".config/app.conf"),
    )
    p = filled(plan(spec(ephemeral=True), seed=seed))
    a = build_argv(p)
    assert "/home/alice" in [a[i + 1] for i, x in enumerate(a) if x == "--tmpfs"]
    assert "home" not in p.slot_names()
    i = a.index("--file")
    assert a[i + 1 : i + 3] == [str(p.fds["seed0"]), "/home/alice/.config/app.conf"]
    assert a[i - 2 : i] == ["--perms", "0600"]
    assert tuple(
        a[j + 1] for j, x in enumerate(a) if x == "--dir" and a[j + 1].startswith("/home")
    ) == ("/home/alice/.config",)
    assert (".config/app.conf", "/home/alice/link") in triples(a, "--symlink")
    # Outbox stays the way out even for ephemeral desktops.
    assert mounts_by_dest(p)["/home/alice/Outbox"].kind is MountKind.BIND_FD


def test_launch_time_ephemeral_overrides_the_desktop() -> None:
    assert plan(spec(), ephemeral=True).ephemeral
    assert not plan(spec(ephemeral=True), ephemeral=False).ephemeral


def test_only_the_desktop_socket_in_the_runtime_dir() -> None:
    a = argv_of(plan())
    runtime_binds = [(s, d) for s, d in triples(a, "--bind") if d.startswith("/run/user/1000")]
    assert runtime_binds == [("/run/user/1000/zionwm/work/wayland-0", "/run/user/1000/wayland-0")]
    assert not any("ipc.sock" in x or "/bus" in x for x in a)
    no_display = argv_of(plan(wayland_socket=None))
    assert not any("wayland-0" in x for x in options(no_display))


def test_writable_usr_binds_the_overlay_mount_read_write() -> None:
    a = argv_of(plan(spec(writable_usr=True), writable_usr_source="/data/layer/merged"))
    assert ("/data/layer/merged", "/usr") in triples(a, "--bind")
    assert ("/usr", "/usr") not in triples(a, "--ro-bind")


# -- devices -----------------------------------------------------------------------------------


def test_no_devices_by_default() -> None:
    a = argv_of(plan())
    assert "--dev-bind" not in a
    assert not any("pipewire" in x or "pulse" in x or "/sys/class" in x for x in a)


def test_gpu_binds_render_nodes_and_only_their_own_sysfs() -> None:
    p = plan(spec(devices=Devices(gpu=True)))
    a = argv_of(p)
    # card0 gives display control (modeset, screen reading) when zionwm is not DRM master.
    assert triples(a, "--dev-bind") == [("/dev/dri/renderD128", "/dev/dri/renderD128")]
    gpu_dir = "/sys/devices/pci0000:00/0000:00:02.0"
    assert (gpu_dir, gpu_dir) in triples(a, "--ro-bind-try")
    link = ("../../devices/pci0000:00/0000:00:02.0/drm/renderD128", "/sys/dev/char/226:128")
    assert link in triples(a, "--symlink")
    by_dest = mounts_by_dest(p)
    assert by_dest[f"{gpu_dir}/drm/card0"].kind is MountKind.TMPFS  # connectors, EDID
    assert by_dest["/sys/bus/pci"].kind is MountKind.DIR  # libdrm's subsystem realpath
    # Nothing that lists every network card (MAC addresses) or USB device (serial numbers).
    for m in p.mounts:
        assert m.dest not in ("/sys", "/sys/class", "/sys/bus", "/sys/devices", "/sys/dev")
        assert not m.dest.startswith(("/sys/class", "/sys/bus/usb", "/sys/devices/virtual"))
        assert not m.dest.startswith("/dev/dri/card")


def test_gpu_without_a_render_node_binds_nothing_and_says_so() -> None:
    cards_only = HostFacts(uid=1000, gid=1000, user="alice", dri_nodes=("/dev/dri/card0",))
    p = plan_sandbox(
        spec(devices=Devices(gpu=True)), ["foot"], cards_only, host_env={}, wayland_socket=None
    )
    assert not any(m.dest.startswith(("/dev/dri", "/sys/dev/", "/sys/bus")) for m in p.mounts)
    assert any("render node" in n for n in p.notes)


def test_host_wide_proc_files_are_masked_and_stat_is_a_still_stand_in() -> None:
    p = plan()
    by_dest = mounts_by_dest(p)
    slots = {s.name: s for s in p.slots}
    for path in ("/proc/interrupts", "/proc/keys"):
        m = by_dest[path]
        assert m.kind is MountKind.RO_BIND_DATA and slots[m.slot].data == b""
    for path in ("/proc/irq", "/proc/pressure"):
        assert by_dest[path].kind is MountKind.TMPFS
    # What the host lacks is not mounted (bwrap cannot create files in procfs).
    assert "/proc/timer_list" not in by_dest and "/proc/bus" not in by_dest
    assert slots[by_dest["/proc/loadavg"].slot].data == b"0.00 0.00 0.00 1/1 1\n"
    assert "/proc/sys/kernel/random/entropy_avail" not in by_dest  # not on that host
    stat = slots[by_dest["/proc/stat"].slot].data.decode()
    assert "btime 1700000000" in stat and "intr 0" in stat
    assert [ln.split()[0] for ln in stat.splitlines() if ln.startswith("cpu")] == [
        "cpu",
        "cpu0",
        "cpu1",
    ]
    assert all(set(ln.split()[1:]) == {"0"} for ln in stat.splitlines() if ln.startswith("cpu"))
    # After --proc, or the new procfs would cover the masks.
    order = [m.dest for m in p.mounts]
    assert order.index("/proc") < order.index("/proc/interrupts") < order.index("/proc/stat")


def test_masked_proc_list_covers_the_timing_and_key_leaks() -> None:
    must = {"/proc/interrupts", "/proc/softirqs", "/proc/timer_list", "/proc/sched_debug"}
    must |= {"/proc/keys", "/proc/key-users", "/proc/kallsyms", "/proc/vmstat"}
    must |= {"/proc/sys/fs/file-nr", "/proc/sys/fs/inode-nr", "/proc/sys/fs/dentry-state"}
    assert must <= set(PROC_MASKED_FILES)
    assert {"/proc/irq", "/proc/pressure"} <= set(PROC_MASKED_DIRS)


def test_camera_binds_video_nodes() -> None:
    a = argv_of(plan(spec(devices=Devices(camera=True))))
    assert triples(a, "--dev-bind") == [("/dev/video0", "/dev/video0")]


def test_audio_binds_only_the_desktops_relay_never_the_hosts_sound_sockets() -> None:
    relay = "/run/user/1000/zionwm/work/sound/native"
    p = plan(spec(devices=Devices(audio=True)), sound_socket=relay)
    a = argv_of(p)
    assert (relay, "/run/user/1000/pulse/native") in triples(a, "--bind")
    host_sockets = {HOST.pipewire_socket, HOST.pulse_socket}
    assert not host_sockets & {src for src, _ in triples(a, "--bind")}
    without = plan(spec(devices=Devices(audio=True)))
    assert not host_sockets & {src for src, _ in triples(argv_of(without), "--bind")}
    assert "/run/user/1000/pipewire-0" not in argv_of(without)
    assert any("no sound" in n for n in without.notes)
    # a relay socket handed in for a desktop without audio is not bound
    assert relay not in argv_of(plan(spec(), sound_socket=relay))


def test_missing_devices_are_noted_not_invented() -> None:
    bare = HostFacts(uid=1000, gid=1000, user="alice")
    p = plan_sandbox(
        spec(devices=Devices(gpu=True, camera=True, audio=True)),
        ["x"],
        bare,
        host_env={},
        wayland_socket=None,
    )
    assert not any(m.kind is MountKind.DEV_BIND for m in p.mounts)
    assert len(p.notes) >= 3


# -- customization -----------------------------------------------------------------------------


def test_fonts_bound_and_fontconfig_generated() -> None:
    p = plan(spec(fonts=("/srv/fonts/a", "/srv/fonts/b")))
    a = argv_of(p)
    assert ("/srv/fonts/a", "/run/zionwm/fonts/0") in triples(a, "--ro-bind")
    assert ("/srv/fonts/b", "/run/zionwm/fonts/1") in triples(a, "--ro-bind")
    conf = next(s for s in p.slots if s.name == "fonts.conf").data.decode()
    assert "<dir>/run/zionwm/fonts/0</dir>" in conf and "<dir>/run/zionwm/fonts/1</dir>" in conf
    assert "/etc/fonts/fonts.conf" in conf
    assert p.env["FONTCONFIG_FILE"] == FONTS_CONF
    assert "FONTCONFIG_FILE" not in plan().env


def test_app_dirs_read_only_under_opt() -> None:
    a = argv_of(plan(spec(app_dirs=("/srv/apps/one",))))
    assert ("/srv/apps/one", "/opt/zionwm/0") in triples(a, "--ro-bind")


# -- environment -------------------------------------------------------------------------------


def test_environment_is_an_allow_list() -> None:
    env = plan().env
    assert env["WAYLAND_DISPLAY"] == "wayland-0"
    assert env["XDG_RUNTIME_DIR"] == "/run/user/1000"
    assert env["HOME"] == "/home/alice"
    assert env["USER"] == "alice"
    assert env["ZIONWM_DESKTOP"] == "work"
    assert env["XDG_SESSION_TYPE"] == "wayland"
    assert env["XDG_CURRENT_DESKTOP"] == "zionwm"
    assert env["MOZ_ENABLE_WAYLAND"] == "1"
    assert env["QT_QPA_PLATFORM"] == "wayland"
    assert env["GDK_BACKEND"] == "wayland"
    assert env["TERM"] == "foot"
    assert env["LANG"] == "de_DE.UTF-8"
    assert env["LC_TIME"] == "C"
    assert "/home/alice/bin" not in env["PATH"]
    for leaked in (
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "DISPLAY",
        "DBUS_SESSION_BUS_ADDRESS",
        "SSH_AUTH_SOCK",
        "SWAYSOCK",
        "ZIONWM_SOCK",
        "SECRET_TOKEN",
    ):
        assert leaked not in env


def test_granted_variables_pass_but_loader_variables_never() -> None:
    env = plan(spec(env=("SSH_AUTH_SOCK", "SECRET_TOKEN", "LD_PRELOAD", "UNSET_VAR"))).env
    assert env["SSH_AUTH_SOCK"] == HOST_ENV["SSH_AUTH_SOCK"]
    assert env["SECRET_TOKEN"] == "hunter2"
    assert "LD_PRELOAD" not in env
    assert "UNSET_VAR" not in env
    extra = plan(extra_env={"LD_AUDIT": "x", "MY_VAR": "1"}).env
    assert extra["MY_VAR"] == "1" and "LD_AUDIT" not in extra


def test_env_never_reaches_argv() -> None:
    # bwrap's argv is world-readable in /proc; the environment is not.
    a = argv_of(plan(spec(env=("SECRET_TOKEN",))))
    assert "hunter2" not in " ".join(a)
    assert "--setenv" not in a


def test_cwd_defaults_to_home() -> None:
    a = argv_of(plan())
    assert a[a.index("--chdir") + 1] == "/home/alice"
    b = argv_of(plan(cwd="/tmp"))
    assert b[b.index("--chdir") + 1] == "/tmp"


def test_slots_are_unique() -> None:
    p = plan(
        spec(fonts=("/f",), downloads=DownloadsPolicy(release_to="x"), ephemeral=True),
        seed=(
            SeedEntry("a", SeedKind.FILE, slot="seed0"),
            SeedEntry("b", SeedKind.FILE, slot="seed1"),
        ),
    )
    names = p.slot_names()
    assert len(names) == len(set(names))
    assert FdSlot("seed0", SlotKind.SEED) in p.slots


def test_root_user_gets_the_same_shape(tmp_path: Path) -> None:
    root = HostFacts(uid=0, gid=0, user="root")
    p = plan_sandbox(spec(), ["x"], root, host_env={}, wayland_socket=None)
    a = argv_of(p)
    assert a[a.index("--cap-drop") + 1] == "ALL"
    assert p.home == "/home/root"
    assert "--disable-userns" in a


def test_a_prepared_etc_is_one_bind_plus_the_pieces_it_cannot_hold() -> None:
    tree = EtcTree(
        path="/run/user/1000/zionwm/.etc/work",
        files=frozenset({"/etc/resolv.conf", "/etc/hosts", "/etc/ssl/certs", "/etc/passwd"}),
        binds=frozenset({"/etc/fonts"}),
    )
    p = plan(etc_tree=tree)
    etc = [m for m in p.mounts if m.dest == "/etc" or m.dest.startswith("/etc/")]
    assert etc == [
        Mount(MountKind.RO_BIND, "/etc", source=tree.path),
        Mount(MountKind.RO_BIND_TRY, "/etc/fonts", source="/etc/fonts"),
        # the tree holds no group: synthesized as before
        Mount(MountKind.RO_BIND_DATA, "/etc/group", slot="group", perms=0o644),
    ]
    assert "passwd" not in p.slot_names()
    # the piece bound over /etc comes after /etc itself in bwrap's argv
    argv = build_argv(filled(p))
    assert argv.index(tree.path) < argv.index("/etc/fonts")
    # without a tree: every piece on its own, as always
    separate = plan()
    assert all(m.dest != "/etc" for m in separate.mounts)
    assert {m.dest for m in separate.mounts} >= HOST.system_files | {"/etc/passwd"}
