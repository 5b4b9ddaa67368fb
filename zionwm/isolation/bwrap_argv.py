"""bubblewrap's argv for a filled-in plan: the one place that knows bwrap's option syntax.

Pure: `build_argv(plan)` needs every fd slot of the plan filled (`SandboxPlan.with_fds`).
"""

from __future__ import annotations

from zionwm.isolation.sandbox_plan import MountKind, PlanError, SandboxPlan

_PATH_SOURCE_KINDS = frozenset(
    {MountKind.BIND, MountKind.RO_BIND, MountKind.RO_BIND_TRY, MountKind.DEV_BIND}
)
_SLOT_KINDS = frozenset(
    {MountKind.BIND_FD, MountKind.RO_BIND_FD, MountKind.RO_BIND_DATA, MountKind.FILE}
)


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
    if not plan.nested_sandbox:
        out.append("--disable-userns")
    out += ["--uid", str(plan.uid), "--gid", str(plan.gid)]
    out += ["--hostname", plan.hostname]
    # bwrap run by uid 0 keeps every capability in the sandbox unless told otherwise.
    out += ["--cap-drop", "ALL"]
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
    out += ["--seccomp", _fd(plan, "seccomp")]
    out += ["--chdir", plan.cwd]
    out.append("--")
    out += list(plan.argv)
    return out
