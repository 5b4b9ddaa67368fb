"""Counting the security tests: how many attacks ran, held, and were skipped, and why.

An attack test is marked `@pytest.mark.security` (or a module sets `pytestmark`). A skipped
attack is a promise nobody checked, so under `CI=true` a run in which any attack skipped
fails, unless the skip names a facility this machine really lacks: such a skip goes through
`lacks(facility, detail)`, and the facility must be one of `FACILITIES` (hardware or kernel
features a machine may simply not have). Anything else — a missing package, a tool that is
not installed, not being root — is a broken test machine, and the run says so.

At the end of every run that selected attack tests, one line sums them up:

    security: 41 attacks run, 41 held, 2 skipped: lacks gpu (2)
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pytest

MARKER = "security"

# Facilities a sound test machine may lack. Keep it short: each entry is a promise that the
# suite cannot check on such a machine, so it is a hardware or kernel fact, never a package.
FACILITIES: dict[str, str] = {
    "gpu": "a DRM render node (/dev/dri/renderD*)",
    "camera": "a video capture device (/dev/video*)",
    "fuse": "a usable /dev/fuse",
    "sound": "a sound card (/dev/snd)",
    "ipv6": "IPv6 in the kernel (net.ipv6 disabled)",
}

_LACKS = re.compile(r"\blacks ([a-z0-9-]+)\b")


def lacks(facility: str, detail: str = "") -> NoReturn:
    """Skip because the machine lacks `facility` (one of FACILITIES); say what was seen."""
    if facility not in FACILITIES:
        raise ValueError(f"{facility!r} is not a facility a machine may lack: {sorted(FACILITIES)}")
    pytest.skip(f"lacks {facility}" + (f": {detail}" if detail else ""))


def lacked_facility(reason: str) -> str | None:
    """The allowed facility a skip reason names through `lacks`, or None."""
    m = _LACKS.search(reason)
    return m.group(1) if m and m.group(1) in FACILITIES else None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ")


@dataclass
class Tally:
    """What the attack tests of one run did."""

    run: set[str] = field(default_factory=set)
    held: set[str] = field(default_factory=set)
    skipped: dict[str, str] = field(default_factory=dict)

    def record(self, report: Any) -> None:
        if MARKER not in report.keywords:
            return
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped[report.nodeid] = skip_reason(report)
            return
        if report.when == "call":
            self.run.add(report.nodeid)
            if report.passed and not hasattr(report, "wasxfail"):
                self.held.add(report.nodeid)
        elif report.failed:  # an error in setup or teardown: the attack did not hold
            self.run.add(report.nodeid)
            self.held.discard(report.nodeid)

    def unexcused(self) -> dict[str, str]:
        """Skipped attacks whose reason is not a facility the machine may lack."""
        return {n: r for n, r in self.skipped.items() if lacked_facility(r) is None}

    def summary(self) -> str:
        reasons = Counter(
            f"lacks {f}" if (f := lacked_facility(r)) else r for r in self.skipped.values()
        )
        why = "; ".join(f"{r} ({n})" for r, n in sorted(reasons.items()))
        line = (
            f"security: {len(self.run)} attacks run, {len(self.held)} held, "
            f"{len(self.skipped)} skipped"
        )
        return line + (f": {why}" if why else "")
