"""A desktop's writable /usr: one keeper per desktop layer, entered by each of its sandboxes.

Real bwrap, real fuse-overlayfs, the real placement helper (zionwm-enter); the attacker code
is tests/system/sandbox_probe.py, as in test_sandbox.py, whose world (`Env`) these use.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.harness import processes_with, require_overlay, wait_for
from tests.system import test_sandbox
from tests.system.test_sandbox import PYTHON, Env, errno_of, run_unprivileged, unprivileged_world
from zionwm import paths
from zionwm.isolation import storage
from zionwm.isolation.launcher import Launcher
from zionwm.isolation.usr_keeper import UsrKeeper

pytestmark = test_sandbox.pytestmark  # the sandbox facilities those tests need
env = test_sandbox.env  # the same fixture: a launcher of its own, shut down after the test


@pytest.fixture(autouse=True)
def _fuse() -> None:
    require_overlay()


INSTALL = (
    "printf '#!/bin/sh\\necho tool-of-$ZIONWM_DESKTOP\\n' > /usr/bin/zionwm-test-tool && "
    "chmod 755 /usr/bin/zionwm-test-tool && zionwm-test-tool"
)


def daemons_of(desktop: str) -> list[int]:
    """The overlay daemons over `desktop`'s layer (not their keepers, whose argv names both)."""
    found = []
    for pid in processes_with("fuse-overlayfs", str(paths.desktop_layer(desktop))):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "fuse-overlayfs":
                found.append(pid)
        except OSError:
            pass
    return found


def keeper_of(env: Env, desktop: str, *, ephemeral: bool = False) -> UsrKeeper:
    keeper = env.launcher.keepers.get(desktop, ephemeral)
    assert keeper is not None, f"desktop {desktop} has no /usr keeper"
    keeper.wait_ready(10)
    return keeper


def test_program_installed_into_a_writable_layer_stays_in_its_desktop(env: Env) -> None:
    dev = env.spec("dev", writable_usr=True)
    rc, out, err = env.run(dev, ["/bin/sh", "-c", INSTALL])
    assert rc == 0, err
    assert out.strip() == "tool-of-dev"
    rc, out, err = env.run(dev, ["zionwm-test-tool"])  # persists in the desktop's layer
    assert (rc, out.strip()) == (0, "tool-of-dev"), err
    assert (paths.desktop_layer("dev") / "upper" / "bin" / "zionwm-test-tool").exists()
    for other in (env.spec("other", writable_usr=True), env.spec("plain")):
        rc, _, err = env.run(other, ["zionwm-test-tool"])
        assert rc != 0 and "execvp zionwm-test-tool: No such file" in err, (other.name, rc, err)
    assert not Path("/usr/bin/zionwm-test-tool").exists()
    # A plain desktop's /usr is read-only.
    rc, _, err = env.run(env.spec("plain"), ["/bin/sh", "-c", "touch /usr/bin/x"])
    assert rc != 0 and "Read-only file system" in err
    # An ephemeral layer lives in the keeper's tmpfs: installed, then gone once its last
    # sandbox has ended.
    tmp = env.spec("scratch", writable_usr=True, ephemeral=True)
    rc, out, err = env.run(tmp, ["/bin/sh", "-c", INSTALL])
    assert (rc, out.strip()) == (0, "tool-of-scratch"), err
    rc, _, err = env.run(tmp, ["zionwm-test-tool"])
    assert rc != 0 and "No such file" in err
    assert list(paths.desktop_layer("scratch").rglob("zionwm-test-tool")) == []
    wait_for(lambda: not daemons_of("scratch"), what="the ephemeral layer's daemon to exit")
    # A persistent layer's keeper stays for the next program, until the desktop stops.
    assert len(daemons_of("dev")) == 1
    env.launcher.desktop_stopped("dev")
    env.launcher.shutdown()
    wait_for(
        lambda: not processes_with("fuse-overlayfs", str(env.root)),
        what="fuse-overlayfs daemons to exit",
    )


def test_a_keeper_started_with_its_desktop_serves_the_first_program(env: Env) -> None:
    dev = env.spec("dev", writable_usr=True)
    env.launcher.desktop_started(dev)
    env.launcher.desktop_started(env.spec("scratch", writable_usr=True, ephemeral=True))
    keeper = keeper_of(env, "dev")  # mounted before any program asked for it
    assert env.launcher.keepers.get("scratch", True) is None  # ephemeral: with its programs
    rc, out, err = env.run(dev, ["/bin/sh", "-c", INSTALL])
    assert (rc, out.strip()) == (0, "tool-of-dev"), err
    assert keeper_of(env, "dev") is keeper
    assert daemons_of("dev") and len(daemons_of("dev")) == 1


# The first program writes a mark into /usr, then waits (bounded) for the tool a second
# program of the same desktop installs, and runs it: no restart in between.
FIRST = r"""
import os, subprocess, sys, time
open("/usr/share/zionwm-first-mark", "w").write("first\n")
deadline = time.monotonic() + 30
while not os.access("/usr/bin/zionwm-test-tool", os.X_OK):  # written, then chmod
    if time.monotonic() > deadline:
        sys.exit("the second program's install never showed up")
    time.sleep(0.01)
sys.stdout.write(subprocess.run(["zionwm-test-tool"], capture_output=True, text=True).stdout)
"""


def test_two_programs_of_a_desktop_see_each_others_usr_writes_at_once(env: Env) -> None:
    dev = env.spec("dev", writable_usr=True)
    out = env.root / "first.out"
    with open(out, "wb") as f, open(env.root / "first.err", "wb") as e:
        first = env.launcher.launch(
            dev, [PYTHON, "-c", FIRST], stdout=f.fileno(), stderr=e.fileno()
        )
    try:
        mark = paths.desktop_layer("dev") / "upper" / "share" / "zionwm-first-mark"
        wait_for(mark.exists, what="the first program's mark in the layer")
        rc, second, err = env.run(
            dev, ["/bin/sh", "-c", "cat /usr/share/zionwm-first-mark && " + INSTALL]
        )
        assert (rc, second.split()) == (0, ["first", "tool-of-dev"]), err
        assert first.wait(30) == 0, (env.root / "first.err").read_text()
        assert out.read_text().strip() == "tool-of-dev"
        # One overlay daemon for the desktop, whose work dir is its keeper's.
        assert len(daemons_of("dev")) == 1
        keeper = keeper_of(env, "dev")
        work = paths.desktop_layer("dev") / "work"
        assert {p.name for p in work.iterdir()} == {str(keeper.pid)}
    finally:
        first.kill()
        first.wait(10)
    env.launcher.shutdown()
    storage.prepare_layer("dev", ephemeral=False)  # drops the work dirs of gone keepers
    assert not [p for p in (paths.desktop_layer("dev") / "work").iterdir() if p.name.isdigit()]


def test_the_layer_is_mounted_in_the_keepers_namespace_only(env: Env) -> None:
    dev = env.spec("dev", writable_usr=True)
    rc, _, err = env.run(dev, ["/bin/sh", "-c", INSTALL])
    assert rc == 0, err
    keeper = keeper_of(env, "dev")
    merged = str(paths.desktop_layer("dev") / "merged")
    inside = Path(f"/proc/{keeper.pid}/mountinfo").read_text()
    assert any(line.split()[4] == merged for line in inside.splitlines())  # the control
    with open("/proc/self/mountinfo") as f:
        host = f.read()
    assert merged not in host
    assert "fuse-overlayfs" not in host
    assert not os.path.ismount(merged)
    assert os.listdir(merged) == []  # the host sees the empty mount point
    assert os.readlink(f"/proc/{keeper.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert os.readlink(f"/proc/{keeper.pid}/ns/user") != os.readlink("/proc/self/ns/user")


def test_a_crashed_keeper_is_replaced_and_the_layer_kept(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    dev = env.spec("dev", writable_usr=True)
    rc, _, err = env.run(dev, ["/bin/sh", "-c", INSTALL])
    assert rc == 0, err
    old = keeper_of(env, "dev")
    # A program running on the keeper when it dies: it lists /usr/bin when told to.
    r, w = os.pipe()
    out = env.root / "running.out"
    script = (
        "import errno, os, sys; print('ready', flush=True); sys.stdin.readline()\n"
        "try: os.listdir('/usr/bin'); print('listed')\n"
        "except OSError as e: print(errno.errorcode[e.errno])\n"
    )
    try:
        with open(out, "wb") as f:
            running = env.launcher.launch(dev, [PYTHON, "-c", script], stdin=r, stdout=f.fileno())
    finally:
        os.close(r)
    wait_for(lambda: out.read_text().startswith("ready"), what="the program to start")
    [daemon] = daemons_of("dev")
    os.kill(daemon, signal.SIGKILL)  # the overlay daemon crashes
    wait_for(lambda: not old.running(), what="the keeper to notice its daemon died")
    os.write(w, b"go\n")
    os.close(w)
    assert running.wait(30) == 0
    assert out.read_text().split() == ["ready", "ENOTCONN"]  # its /usr is gone, and it says so
    with caplog.at_level(logging.ERROR, logger="zionwm.isolation.usr_keeper"):
        rc, tool, err = env.run(dev, ["zionwm-test-tool"])
    assert (rc, tool.strip()) == (0, "tool-of-dev"), err  # nothing written was lost
    new = keeper_of(env, "dev")
    assert new.pid != old.pid
    assert any("keeper" in r.message and "gone" in r.message for r in caplog.records)


@pytest.mark.security
def test_a_program_of_a_writable_desktop_cannot_reach_the_host_usr_or_another_layer(
    env: Env,
) -> None:
    other = env.spec("other", writable_usr=True)
    secret = "printf 'secret\\n' > /usr/bin/zionwm-other-secret"
    rc, _, err = env.run(other, ["/bin/sh", "-c", secret])
    assert rc == 0, err
    holder = env.launcher.launch(other, [PYTHON, "-c", "import time; time.sleep(600)"])
    victim = Path(f"/usr/local/share/zionwm-victim-{uuid.uuid4().hex}")
    made_victim = False
    try:
        keeper_of(env, "other")  # the other layer is mounted, in its keeper's namespace
        try:
            victim.write_text("host\n")
            made_victim = True
        except OSError:
            pass  # not root: the host's /usr is not writable by this user anyway
        other_layer = paths.desktop_layer("other")
        probes = [
            "write:/usr/bin/zionwm-attack",
            "exists:/usr/bin/zionwm-other-secret",
            f"exists:{other_layer}",
            f"exists:{other_layer / 'merged' / 'bin' / 'zionwm-other-secret'}",
            "readall:/proc/self/mountinfo",
            "procs",
            "mount",
            "setns",
            "unshare_user",
        ]
        if made_victim:
            probes.append(f"write:{victim}")
        r = env.probe(env.spec("dev", writable_usr=True), *probes)
        # Writes to /usr land in the desktop's own layer, never in the host's /usr.
        assert r["write:/usr/bin/zionwm-attack"]["ok"], r
        assert not Path("/usr/bin/zionwm-attack").exists()
        assert (paths.desktop_layer("dev") / "upper" / "bin" / "zionwm-attack").exists()
        if made_victim:
            assert r[f"write:{victim}"]["ok"], r
            assert victim.read_text() == "host\n"
        # Nothing of the other desktop's layer is there, under /usr or under its host path.
        assert r["exists:/usr/bin/zionwm-other-secret"] == {
            "ok": True,
            "errno": None,
            "out": False,
        }
        assert r[f"exists:{other_layer}"]["out"] is False
        assert r[f"exists:{other_layer / 'merged' / 'bin' / 'zionwm-other-secret'}"]["out"] is False
        mountinfo = r["readall:/proc/self/mountinfo"]["out"]
        assert "/desktops/other/" not in mountinfo and "fuse-overlayfs" in mountinfo
        # The keeper and its daemon are not among the processes the program can see.
        comms = {comm for _, comm in r["procs"]["out"]}
        assert not comms & {"fuse-overlayfs", "zionwm-enter"}, comms
        # And the namespace tools stay closed.
        for name in ("mount", "setns", "unshare_user"):
            assert errno_of(r, name) in ("EPERM", "ENOSYS", "EINVAL"), r[name]
    finally:
        holder.kill()
        holder.wait(10)
        if made_victim:
            victim.unlink()
        Path("/usr/bin/zionwm-attack").unlink(missing_ok=True)


UNPRIVILEGED = r"""
import json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
root = sys.argv[2]
os.environ.update(XDG_DATA_HOME=root + "/data", XDG_RUNTIME_DIR=root + "/run", HOME=root)
from zionwm.isolation.launcher import Launcher
from zionwm.isolation.spec import DesktopSpec
spec = DesktopSpec(name="dev", colour=(1.0, 1.0, 1.0, 1.0), writable_usr=True)
launcher = Launcher()
out = []
for script in (sys.argv[3], "zionwm-test-tool; id -u; grep CapEff /proc/self/status"):
    r, w = os.pipe()
    sb = launcher.launch(spec, ["/bin/sh", "-c", script], stdout=w, stderr=w)
    os.close(w)
    text = os.fdopen(r).read()
    out.append([sb.wait(30), text])
launcher.shutdown()
print(json.dumps(out))
"""


def test_an_unprivileged_launcher_gets_a_writable_usr(tmp_path: Path) -> None:
    """Production runs the compositor as a normal user: run the launcher as `nobody`."""
    if not os.stat("/dev/fuse").st_mode & 0o006:
        pytest.skip("/dev/fuse is not open to other users here (distributions make it 0666)")
    with unprivileged_world() as (nobody, world, lib):
        r = run_unprivileged(nobody, world, UNPRIVILEGED, str(lib), str(world), INSTALL)
        assert r.returncode == 0, r.stderr
        [(rc1, out1), (rc2, out2)] = json.loads(r.stdout.strip().splitlines()[-1])
        assert (rc1, out1.strip()) == (0, "tool-of-dev"), out1
        assert rc2 == 0, out2
        lines = out2.splitlines()
        assert lines[0] == "tool-of-dev"
        assert lines[1] == str(nobody.pw_uid)
        assert lines[2].split()[1] == "0000000000000000"
        assert not Path("/usr/bin/zionwm-test-tool").exists()
        upper = world / "data" / "zionwm" / "desktops" / "dev" / "layer" / "upper"
        tool = upper / "bin" / "zionwm-test-tool"
        assert tool.stat().st_uid == nobody.pw_uid  # written as the user, not as root


@pytest.mark.parametrize("own_userns", [False, True], ids=["host-netns", "netns-in-own-userns"])
def test_a_writable_usr_desktop_keeps_its_network_namespace(env: Env, own_userns: bool) -> None:
    """The keeper is entered after the network namespace: a desktop's own network (a root
    launcher's netns, or an unprivileged one's in a user namespace of its own, as pasta
    makes) still holds, and /usr is still the desktop's layer."""
    if shutil.which("unshare") is None:
        pytest.fail("util-linux unshare is not installed (scripts/setup-system.sh installs it)")
    if not own_userns and os.getuid() != 0:
        pytest.skip("a network namespace of the host's user namespace needs root")
    flags = ["--user", "--map-root-user", "--net"] if own_userns else ["--net"]
    holder = subprocess.Popen(["unshare", *flags, "sleep", "600"])
    try:
        own_net = os.readlink("/proc/self/ns/net")
        net_link = Path(f"/proc/{holder.pid}/ns/net")
        wait_for(lambda: os.readlink(net_link) != own_net, what="the holder's namespaces")
        user_link = Path(f"/proc/{holder.pid}/ns/user") if own_userns else None
        launcher = Launcher(netns_path=lambda d: net_link, userns_path=lambda d: user_link)
        try:
            dev = env.spec("dev", writable_usr=True)
            for script in (INSTALL, "readlink /proc/self/ns/net; zionwm-test-tool"):
                r, w = os.pipe()
                try:
                    sb = launcher.launch(dev, ["/bin/sh", "-c", script], stdout=w, stderr=w)
                finally:
                    os.close(w)
                with os.fdopen(r) as f:
                    out = f.read()
                assert sb.wait(30) == 0, out
            assert out.split() == [os.readlink(net_link), "tool-of-dev"]
        finally:
            launcher.shutdown()
    finally:
        holder.kill()
        holder.wait(10)


def test_what_the_host_mounts_after_the_keeper_started_is_seen(env: Env, tmp_path: Path) -> None:
    """A desktop's app dir on a file system mounted after its keeper started (a disk plugged
    in later) is still found by its next program."""
    if os.getuid() != 0:
        pytest.skip("mounting on the host needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    # A shared mount point, as systemd makes every mount (this test machine's are private).
    subprocess.run(["mount", "--bind", str(disk), str(disk)], check=True)
    mounts = 1
    try:
        subprocess.run(["mount", "--make-shared", str(disk)], check=True)
        dev = env.spec("dev", writable_usr=True, app_dirs=(str(disk),))
        env.launcher.desktop_started(dev)
        keeper = keeper_of(env, "dev")
        tmpfs = ["mount", "-t", "tmpfs", "-o", "size=1m", "zionwm-test", str(disk)]
        subprocess.run(tmpfs, check=True)
        mounts += 1
        (disk / "app.sh").write_text("echo app-on-disk\n")
        rc, out, err = env.run(dev, ["/bin/sh", "/opt/zionwm/1/app.sh"])
        assert (rc, out.strip()) == (0, "app-on-disk"), err
        assert keeper_of(env, "dev") is keeper
    finally:
        for _ in range(mounts):
            subprocess.run(["umount", str(disk)], check=True)
