"""bubblewrap's argv for a filled-in plan: the one place that knows bwrap's option syntax
(and that of the placement helper's `--mask-proc`, which bwrap runs first inside).

Pure: `build_argv(plan)` needs every fd slot of the plan filled (`SandboxPlan.with_fds`).
"""

from __future__ import annotations

from zionwm.isolation.sandbox_plan import InsideMasks, MountKind, PlanError, SandboxPlan

_PATH_SOURCE_KINDS = frozenset(
    {MountKind.BIND, MountKind.RO_BIND, MountKind.RO_BIND_TRY, MountKind.DEV_BIND}
)
_SLOT_KINDS = frozenset(
    {MountKind.BIND_FD, MountKind.RO_BIND_FD, MountKind.RO_BIND_DATA, MountKind.FILE}
)
# What the placement helper needs of the sandbox's first user namespace to mask /proc and end
# the set-up as bwrap would (see enter.c): mount; user.max_user_namespaces; map uid 0 into
# the nested namespace; drop the bounding set. It drops them all before the program runs.
_MASKER_CAPS = ("CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_SETFCAP", "CAP_SETPCAP")


def _fd(plan: SandboxPlan, slot: str) -> str:
    try:
        return str(plan.fds[slot])
    except KeyError:
        raise PlanError(f"fd slot {slot!r} was not filled by the launcher") from None


def build_argv(plan: SandboxPlan) -> list[str]:
    """bwrap's full argv for the plan (fd slots must be filled). Pure."""
    out = [plan.bwrap]
    # Namespaces. Joining a prepared netns means keeping the one the launcher entered.
    out.append("--unshare-all")
    if plan.share_net:
        out.append("--share-net")
    out.append("--unshare-user")
    masks = plan.proc_masks
    if masks is None:
        if not plan.nested_sandbox:
            out.append("--disable-userns")
        out += ["--uid", str(plan.uid), "--gid", str(plan.gid)]
    else:
        # bwrap stops in its first user namespace, as uid 0; the helper nests the second
        # one (the program's ids, user namespaces disabled) after masking.
        out += ["--uid", "0", "--gid", "0"]
    out += ["--hostname", plan.hostname]
    # bwrap run by uid 0 keeps every capability in the sandbox unless told otherwise.
    out += ["--cap-drop", "ALL"]
    if masks is not None:
        for cap in _MASKER_CAPS:
            out += ["--cap-add", cap]
    out += ["--die-with-parent", "--new-session"]
    if "status" in plan.slot_names():
        out += ["--json-status-fd", _fd(plan, "status")]
    for m in plan.mounts:
        if m.perms is not None:
            out += ["--perms", f"{m.perms:04o}"]
        if m.kind in _PATH_SOURCE_KINDS or m.kind is MountKind.SYMLINK:
            out += [m.kind.value, m.source, m.dest]
        elif m.kind in _SLOT_KINDS:
            out += [m.kind.value, _fd(plan, m.slot), m.dest]
        else:
            out += [m.kind.value, m.dest]
    if masks is None:
        out += ["--seccomp", _fd(plan, "seccomp")]
    out += ["--chdir", plan.cwd]
    out.append("--")
    if masks is not None:
        out += _masker_argv(plan, masks)
    out += list(plan.argv)
    return out


def _masker_argv(plan: SandboxPlan, masks: InsideMasks) -> list[str]:
    """`zionwm-enter --mask-proc ... --`, exec'd by bwrap through its fd (see enter.c)."""
    helper = _fd(plan, "masker")
    out = [f"/proc/self/fd/{helper}", "--mask-proc", "--self-fd", helper]
    out += ["--scratch", masks.scratch, "--seccomp-fd", _fd(plan, "seccomp")]
    out += ["--uid", str(plan.uid), "--gid", str(plan.gid)]
    if not plan.nested_sandbox:
        out.append("--disable-userns")
    for path in masks.read_only:
        out += ["--ro", path]
    for path in masks.empty:
        out += ["--empty", path]
    for slot, path in masks.data:
        out += ["--data", _fd(plan, slot), path]
    for path in masks.dirs:
        out += ["--dir", path]
    out.append("--")
    return out
