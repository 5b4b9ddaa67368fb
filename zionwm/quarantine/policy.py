"""What the quarantine service enforces: the policy file the compositor writes and the service
reads (desktops, their downloads policies, the outbox and `send` policies, audit settings,
audit cgroups). Pure apart from `load_policy_file`; light to import (the compositor does).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zionwm.isolation.spec import DesktopSpec, DownloadsPolicy, VerdictAction
from zionwm.quarantine.engines import ANTIVIRUS_MODES
from zionwm.quarantine.states import SHARED_DEST

# seconds, 1 to 3600: one shorter window for the refusal rows here and the compositor's
# quarantine notifications (the tests wait 5 s, not 60, for what is summed up)
WINDOW_ENV = "ZIONWM_QUARANTINE_WINDOW"


def window(default: float, environ: Mapping[str, str] = os.environ) -> float:
    """`default`, or the window the environment asks for (WINDOW_ENV); a value that is not
    a number of seconds from 1 to 3600 is ignored."""
    try:
        value = float(environ.get(WINDOW_ENV, ""))
    except ValueError:
        return default
    return value if 1 <= value <= 3600 else default


@dataclass(frozen=True)
class ServiceConfig:
    """What the service enforces, from the policy file the compositor writes."""

    downloads: dict[str, DownloadsPolicy] = field(default_factory=dict)  # source -> policy
    desktops: tuple[str, ...] = ()  # every desktop: outboxes watched, valid send targets
    outbox: DownloadsPolicy = field(
        default_factory=lambda: DownloadsPolicy(release_to=SHARED_DEST, hold=0.0)
    )
    send: DownloadsPolicy = field(default_factory=lambda: DownloadsPolicy(release_to="", hold=0.0))
    audit: dict[str, Any] = field(default_factory=dict)  # keyword arguments of AuditSettings
    # source desktop -> cgroup.procs files its audit sandboxes are accounted in
    audit_cgroups: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _policy_json(p: DownloadsPolicy) -> dict[str, Any]:
    return {
        "release_to": p.release_to,
        "hold": p.hold,
        "on_suspicious": p.on_suspicious.value,
        "on_malicious": p.on_malicious.value,
        "on_cannot_inspect": p.on_cannot_inspect.value,
        "safe_copy": p.safe_copy,
    }


_DESKTOP_NAME = re.compile(r"[a-z0-9_-]{1,32}")


def _policy_from(d: dict[str, Any], release_to: str) -> DownloadsPolicy:
    hold = float(d.get("hold", 600.0))
    if hold < 0:
        raise ValueError(f"hold must be >= 0, not {hold}")
    return DownloadsPolicy(
        release_to=str(d.get("release_to", release_to)),
        hold=hold,
        on_suspicious=VerdictAction(d.get("on_suspicious", "keep")),
        on_malicious=VerdictAction(d.get("on_malicious", "keep")),
        on_cannot_inspect=VerdictAction(d.get("on_cannot_inspect", "keep")),
        safe_copy=bool(d.get("safe_copy", False)),
    )


def policy_to_json(
    specs: Iterable[DesktopSpec],
    outbox: DownloadsPolicy | None = None,
    send: DownloadsPolicy | None = None,
    audit: dict[str, Any] | None = None,
    audit_cgroups: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The policy file's content for these desktops (what the compositor writes)."""
    out: dict[str, Any] = {"desktops": []}
    for spec in specs:
        entry: dict[str, Any] = {"desktop": spec.name}
        if audit_cgroups and audit_cgroups.get(spec.name):
            entry["audit_cgroup"] = list(audit_cgroups[spec.name])
        if spec.downloads is not None:
            entry["downloads"] = _policy_json(spec.downloads)
        out["desktops"].append(entry)
    if outbox is not None:
        out["outbox"] = _policy_json(outbox)
    if send is not None:
        out["send"] = _policy_json(send)
    if audit:
        out["audit"] = audit
    return out


def policy_from_json(d: dict[str, Any]) -> ServiceConfig:
    downloads: dict[str, DownloadsPolicy] = {}
    names: list[str] = []
    cgroups: dict[str, tuple[str, ...]] = {}
    for entry in d.get("desktops", []):
        name = str(entry["desktop"])
        if not _DESKTOP_NAME.fullmatch(name):
            raise ValueError(f"bad desktop name {name!r}")
        names.append(name)
        procs = entry.get("audit_cgroup") or ()
        if not all(isinstance(p, str) and p.endswith("/cgroup.procs") for p in procs):
            raise ValueError(f"desktop {name}: audit_cgroup lists cgroup.procs files")
        cgroups[name] = tuple(procs)
        # Either nested ({"desktop", "downloads": {...}}) or flat ({"desktop", "release_to",
        # "hold", "on_*"}): both spell a DownloadsPolicy.
        spelled = entry.get("downloads") if "release_to" not in entry else entry
        if spelled is not None:
            downloads[name] = _policy_from(spelled, "")
            if not _DESKTOP_NAME.fullmatch(downloads[name].release_to):
                raise ValueError(f"desktop {name}: downloads needs a valid release_to")
    return ServiceConfig(
        downloads=downloads,
        desktops=tuple(names),
        outbox=_policy_from(d.get("outbox", {"hold": 0.0}), SHARED_DEST),
        send=_policy_from(d.get("send", {"hold": 0.0}), ""),
        audit=_audit_settings(dict(d.get("audit", {}))),
        audit_cgroups=cgroups,
    )


def _audit_settings(audit: dict[str, Any]) -> dict[str, Any]:
    mode = audit.get("antivirus", "required")
    if mode not in ANTIVIRUS_MODES:
        raise ValueError(f"antivirus must be one of {', '.join(ANTIVIRUS_MODES)}, not {mode!r}")
    return audit


def load_policy_file(path: Path) -> ServiceConfig:
    with open(path, encoding="utf-8") as f:
        return policy_from_json(json.load(f))
