"""Which zionwm run owns a kernel object: the names of one instance's cgroups and networks.

Several compositors can run on one machine at once: two users logged in, a nested instance
started from inside another, parallel test runs. Their desktops may share names ("web"), so
every name that lives in a machine-wide place (``/run/netns``, host interfaces, nftables
tables, policy-routing tables, cgroup directories) carries an *instance id* that is:

- different for every live instance: it is derived from the user id, the runtime directory
  and the Wayland socket name, and libwayland's lock file on that socket means no two live
  compositors share the last two (``ZIONWM_INSTANCE``, when set, is mixed in too);
- the same when a crashed instance is started again the same way, so its successor finds
  and removes what it left, and only that: stale clean-up matches its own id exactly.

Pure: no I/O here; the caller passes what it knows.
"""

from __future__ import annotations

ID_LEN = 8


def sha256_hex(text: str) -> str:
    """SHA-256 of `text` (UTF-8) in hex, from CPython's own implementation when it has one:
    `hashlib` loads OpenSSL's libcrypto, over 3 MiB resident in the compositor, for the few
    names hashed at start."""
    try:
        from _sha256 import sha256  # noqa: PLC0415
    except ImportError:
        from hashlib import sha256  # noqa: PLC0415
    return sha256(text.encode()).hexdigest()


def instance_id(uid: int, runtime_dir: str, socket_name: str, explicit: str = "") -> str:
    """Eight lowercase hex digits naming one instance (see the module's docstring)."""
    key = "\0".join((str(uid), runtime_dir.rstrip("/"), socket_name, explicit))
    return sha256_hex(key)[:ID_LEN]


def network_prefix(ident: str) -> str:
    """The network manager's prefix: ``zw<id>`` (a letter first, 16 characters at most)."""
    return f"zw{ident}"


def cgroup_root_name(ident: str) -> str:
    """The directory that holds this instance's desktop cgroups: ``zionwm-<id>``."""
    return f"zionwm-{ident}"
