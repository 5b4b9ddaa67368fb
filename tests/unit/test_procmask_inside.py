"""The /proc masks made inside the sandbox by the placement helper (procmask.masks_inside and
the argv of `zionwm-enter --mask-proc`): pure, no bwrap. The masks themselves are attacked
from inside a real sandbox in tests/system/test_sandbox_leaks.py."""

from __future__ import annotations

import dataclasses

from tests.unit.test_bwrap import argv_of, filled, plan, spec
from zionwm.isolation.bwrap import Mount, MountKind, SlotKind, build_argv
from zionwm.isolation.procmask import MASKER_SLOT, masks_inside


def split(argv: list[str]) -> tuple[list[str], list[str], list[str]]:
    """bwrap's options, the helper's argv, the program's argv."""
    first = argv.index("--")
    second = argv.index("--", first + 1)
    return argv[:first], argv[first + 1 : second], argv[second + 1 :]


def test_every_proc_mask_moves_to_the_helper_and_nothing_else() -> None:
    before = plan()
    after = masks_inside(before)
    assert after.proc_masks is not None
    moved = {m.dest for m in before.mounts} - {m.dest for m in after.mounts}
    masks = after.proc_masks
    assert moved == {
        masks.scratch,
        *masks.read_only,
        *masks.empty,
        *(path for _, path in masks.data),
        *masks.dirs,
    }
    assert masks.scratch == "/proc/irq"
    assert masks.read_only == ("/proc/sys", "/proc/sysrq-trigger")
    assert set(masks.empty) == {"/proc/interrupts", "/proc/keys"}
    assert {path for _, path in masks.data} == {"/proc/stat", "/proc/loadavg"}
    assert masks.dirs == ("/proc/pressure",)  # the other covered directory, read-only there
    # everything outside /proc stays bwrap's, in order
    assert [m for m in before.mounts if m.dest not in moved] == list(after.mounts)
    assert not any(m.dest.startswith("/proc/") for m in after.mounts)


def test_slots_the_empty_files_needed_go_and_the_helper_gets_one() -> None:
    before = plan()
    after = masks_inside(before)
    assert after.proc_masks is not None
    empty_slots = {m.slot for m in before.mounts if m.dest in after.proc_masks.empty}
    assert empty_slots and not empty_slots & set(after.slot_names())
    kinds = {s.name: s.kind for s in after.slots}
    assert kinds[MASKER_SLOT] is SlotKind.MASKER
    for slot, _ in after.proc_masks.data:  # the stand-ins keep their data
        assert kinds[slot] is SlotKind.DATA


def test_argv_bwrap_stops_as_uid_0_and_the_helper_ends_the_set_up() -> None:
    p = filled(masks_inside(plan()))
    bw, helper, program = split(build_argv(p))
    assert program == ["foot"]
    # bwrap: no seccomp and no second user namespace of its own; only the helper's caps
    assert "--seccomp" not in bw and "--disable-userns" not in bw
    assert bw[bw.index("--uid") + 1] == "0" and bw[bw.index("--gid") + 1] == "0"
    caps = [bw[i + 1] for i, a in enumerate(bw) if a == "--cap-add"]
    assert sorted(caps) == ["CAP_SETFCAP", "CAP_SETPCAP", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE"]
    assert bw.index("--cap-drop") < bw.index("--cap-add")
    assert not any(a.startswith("/proc/") for a in bw)
    assert helper[helper.index("--dir") + 1] == "/proc/pressure"
    # the helper: run through its fd, with the seccomp program, the ids and every mask
    fd = str(p.fds[MASKER_SLOT])
    assert helper[:4] == [f"/proc/self/fd/{fd}", "--mask-proc", "--self-fd", fd]
    assert helper[helper.index("--seccomp-fd") + 1] == str(p.fds["seccomp"])
    assert helper[helper.index("--uid") + 1] == "1000"
    assert helper[helper.index("--gid") + 1] == "1000"
    assert "--disable-userns" in helper
    assert helper[helper.index("--scratch") + 1] == "/proc/irq"
    data = {helper[i + 2]: helper[i + 1] for i, a in enumerate(helper) if a == "--data"}
    assert data == {path: str(p.fds[slot]) for slot, path in p.proc_masks.data}  # type: ignore[union-attr]


def test_nested_sandbox_helper_leaves_user_namespaces_allowed() -> None:
    _, helper, _ = split(argv_of(masks_inside(plan(spec(nested_sandbox=True)))))
    assert "--disable-userns" not in helper
    assert "--mask-proc" in helper


def test_without_a_covered_directory_bwrap_keeps_the_masks() -> None:
    before = plan()
    no_dirs = dataclasses.replace(
        before,
        mounts=tuple(m for m in before.mounts if m.dest not in ("/proc/irq", "/proc/pressure")),
    )
    assert masks_inside(no_dirs) == no_dirs
    a = argv_of(no_dirs)
    assert "--disable-userns" in a[: a.index("--")] and "--mask-proc" not in a


def test_a_mount_bwrap_makes_below_a_read_only_bind_keeps_the_masks_with_bwrap() -> None:
    before = plan()
    below = Mount(MountKind.TMPFS, "/proc/sys/fs/binfmt_misc")
    odd = dataclasses.replace(before, mounts=(*before.mounts, below))
    assert masks_inside(odd) == odd


def test_without_masks_the_argv_is_unchanged() -> None:
    p = plan()
    assert p.proc_masks is None
    a = argv_of(p)
    assert "--seccomp" in a and "--mask-proc" not in a and "--cap-add" not in a
