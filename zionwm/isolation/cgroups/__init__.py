"""Per-desktop cgroups: layout detection, limits, freeze/thaw, reclaim and kill.

This package is the only writer of /sys/fs/cgroup. Its modules, lowest first (the import
contracts in pyproject.toml hold them):

- pure cores: `layout` (``detect_layout`` over the text of /proc/self/cgroup and
  /proc/self/mountinfo), `status` (``summarize`` over what the probe saw), `limits`
  (from ``Limits`` to interface-file writes);
- `fs`: the thin shell over the cgroup filesystem;
- `freezer`: a freeze in progress (``FreezeOp``), polled from the event loop;
- `desktop`: one desktop's groups (``DesktopCgroup``): limits, usage, freezing, reclaim,
  kill;
- `manager`: ``CgroupManager``, which finds where we may create groups and creates them.

Layouts: "v2" (pure cgroup v2), "hybrid" (v1 controllers plus a cgroup2 mount without
controllers, where ``cgroup.freeze`` and ``cgroup.kill`` still work), "v1" and "none".
Nothing here blocks the compositor: a freeze returns at once with an operation to poll.
"""
