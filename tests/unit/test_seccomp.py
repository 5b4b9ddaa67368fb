"""The seccomp program's build and hand-off (zionwm.isolation.seccomp); its effect is tested
for real in tests/system/test_sandbox.py."""

from __future__ import annotations

import errno
import os
import tempfile

from zionwm.isolation import seccomp


def test_program_is_built_once_and_well_formed() -> None:
    first = seccomp.compiled_bpf()
    assert first is seccomp.compiled_bpf()  # cached per process
    assert len(first) % 8 == 0 and len(first) // 8 > len(seccomp.DENIED)


def test_each_launch_gets_a_fresh_fd_at_offset_zero() -> None:
    fds = [seccomp.filter_fd(), seccomp.filter_fd()]
    try:
        assert fds[0] != fds[1]
        for fd in fds:
            assert os.lseek(fd, 0, os.SEEK_CUR) == 0
            assert os.read(fd, 1 << 20) == seccomp.compiled_bpf()
            assert os.get_inheritable(fd) is False  # only pass_fds hands it to bwrap
    finally:
        for fd in fds:
            os.close(fd)


def test_rules_cover_the_issue_list() -> None:
    denied = {name for name, _ in seccomp.DENIED}
    required = {"unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "clone3"}
    required |= {"open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick"}
    required |= {"keyctl", "add_key", "request_key", "ptrace", "syslog", "perf_event_open"}
    assert required <= denied
    assert dict(seccomp.DENIED)["clone3"] == seccomp.errno.ENOSYS


def _pfc(nested: bool) -> str:
    with tempfile.TemporaryFile() as f:
        seccomp.build_filter(nested).export_pfc(f)
        f.seek(0)
        return f.read().decode()


def test_the_nested_variant_opens_only_user_pid_and_net_namespaces_and_chroot() -> None:
    """Read back as libseccomp's text: every other namespace flag is still refused on clone
    and unshare, mount and setns stay refused outright. Its effect inside a desktop is
    tested in tests/system/test_chromium_sandbox.py."""
    plain, nested = _pfc(False), _pfc(True)
    for flag in seccomp.NESTED_SANDBOX_FLAGS:
        assert f"& 0x{flag:08x} == {flag}" in plain
        assert f"& 0x{flag:08x} == {flag}" not in nested
    for flag in set(seccomp.NAMESPACE_CLONE_FLAGS) - set(seccomp.NESTED_SANDBOX_FLAGS):
        assert f"& 0x{flag:08x} == {flag}" in nested
    assert '"unshare"' in nested and '"setns"' in nested and '"mount"' in nested
    assert '"chroot"' in plain and '"chroot"' not in nested
    assert seccomp.compiled_bpf(True) != seccomp.compiled_bpf(False)


def test_netlink_rule_compares_family_low_bits_and_protocol() -> None:
    """The compiled rule, read back as libseccomp's text: netlink by the family's low 32 bits,
    then any protocol but NETLINK_ROUTE refused with EPROTONOSUPPORT. Its effect inside a
    desktop is tested in tests/system/test_sandbox_leaks.py."""
    with tempfile.TemporaryFile() as f:
        seccomp.build_filter().export_pfc(f)
        f.seek(0)
        pfc = f.read().decode()
    rule = pfc[pfc.index(f"$a0.lo32 & 0xffffffff == {seccomp.AF_NETLINK}") :]
    rule = rule[: rule.index(f"ERRNO({errno.EAFNOSUPPORT})")]
    assert f"$a2.lo32 == {seccomp.NETLINK_ROUTE}" in rule
    assert f"ERRNO({errno.EPROTONOSUPPORT})" in rule
