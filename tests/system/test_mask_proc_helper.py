"""`zionwm-enter --mask-proc`, the first program of every sandbox, where it fails: it must stop
with nothing of the program run, and never mount anything outside a sandbox. (Where it works,
every sandbox test exercises it: tests/system/test_sandbox*.py.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.harness import sandbox_missing
from zionwm.isolation import seccomp
from zionwm.isolation.launcher import ENTER_HELPER

_MISSING = sandbox_missing() or (
    None if os.access(ENTER_HELPER, os.X_OK) else f"{ENTER_HELPER} is not built (make setup)"
)
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")

CAPS = ("CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_SETFCAP", "CAP_SETPCAP")


def sandbox(
    out: Path, *helper_args: str, bpf: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """A small bwrap sandbox whose first program is the helper, then a program that leaves
    a mark in `out` (bound in) when it runs."""
    helper = os.open(ENTER_HELPER, os.O_PATH)
    program = os.memfd_create("test-seccomp")
    os.write(program, seccomp.compiled_bpf() if bpf is None else bpf)
    try:
        argv = ["bwrap", "--unshare-all", "--unshare-user", "--uid", "0", "--gid", "0"]
        argv += ["--cap-drop", "ALL"]
        for cap in CAPS:
            argv += ["--cap-add", cap]
        argv += ["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin"]
        argv += ["--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"]
        argv += ["--proc", "/proc", "--dev", "/dev", "--bind", str(out), "/out", "--"]
        argv += [f"/proc/self/fd/{helper}", "--mask-proc", "--self-fd", str(helper)]
        argv += ["--seccomp-fd", str(program), "--uid", str(os.getuid()), "--gid", str(os.getgid())]
        argv += ["--disable-userns", "--scratch", "/proc/irq", *helper_args, "--"]
        argv += ["/bin/sh", "-c", "echo ran > /out/ran; wc -c < /proc/interrupts > /out/size"]
        return subprocess.run(
            argv, pass_fds=(helper, program), capture_output=True, text=True, check=False
        )
    finally:
        os.close(helper)
        os.close(program)


def test_masks_in_place_then_the_program_runs(tmp_path: Path) -> None:
    r = sandbox(tmp_path, "--ro", "/proc/sys", "--empty", "/proc/interrupts")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ran").read_text() == "ran\n"
    assert (tmp_path / "size").read_text().strip() == "0"


def test_a_mask_that_cannot_be_made_stops_everything(tmp_path: Path) -> None:
    r = sandbox(tmp_path, "--empty", "/proc/interrupts", "--empty", "/proc/no-such-file")
    assert r.returncode == 127
    assert "zionwm-enter: /proc/no-such-file:" in r.stderr
    assert not (tmp_path / "ran").exists()


def test_a_broken_seccomp_program_stops_everything(tmp_path: Path) -> None:
    r = sandbox(tmp_path, "--empty", "/proc/interrupts", bpf=b"\x06\x00\x00")
    assert r.returncode == 127
    assert "zionwm-enter: seccomp:" in r.stderr
    assert not (tmp_path / "ran").exists()


def test_refuses_to_mount_anything_outside_a_sandbox(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    r = subprocess.run(
        [
            *(str(ENTER_HELPER), "--mask-proc", "--scratch", str(scratch), "--seccomp-fd", "0"),
            *("--uid", "0", "--gid", "0", "--", "/bin/true"),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 127
    assert "not inside a sandbox's user namespace" in r.stderr
    assert not os.path.ismount(scratch)
