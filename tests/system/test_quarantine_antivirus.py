"""The antivirus side of the quarantine, end to end with the real service: no antivirus is
never "clean", antivirus="required" makes files wait, antivirus="off" asks no clamd and
calls nothing clean, and a file held while the signature database was older is scanned
again and kept when a signature for it arrives."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import wait_for
from tests.system import clamd_fixture
from tests.system.test_quarantine import (  # noqa: F401  (fixtures)
    QService,
    browser_save,
    downloads,
    item,
    policy,
    service,
    wait_terminal,
    xdg,
)
from zionwm import paths
from zionwm.quarantine.cli import format_item
from zionwm.quarantine.release import AUDIT_XATTR


def test_without_clamd_a_clean_text_is_no_antivirus_scan_not_clean(
    service: Callable[..., QService],  # noqa: F811
) -> None:
    svc = service(policy())  # antivirus="if-available"
    browser_save(paths.desktop_inbox("web"), "notes.txt", b"meeting at noon\n")
    (it,) = wait_terminal(svc, 1, 60)
    full = item(svc, it["id"])
    assert full["state"] == "released" and full["verdict"] == "no-antivirus-scan", full
    assert any(f["rule"] == "no-antivirus" for f in full["report"]["findings"])
    stamp = json.loads(os.getxattr(downloads("personal") / "notes.txt", AUDIT_XATTR))
    assert stamp["verdict"] == "no-antivirus-scan"
    text = format_item(full)  # what `zionctl quarantine show` prints
    assert "no antivirus" in text.lower(), text


def test_with_antivirus_required_and_no_clamd_it_waits(
    service: Callable[..., QService],  # noqa: F811
) -> None:
    pol = policy(hold=0.2)
    pol["audit"] = {"antivirus": "required", "clamd_socket": ""}
    svc = service(pol)
    browser_save(paths.desktop_inbox("web"), "notes.txt", b"meeting at noon\n")

    def held_past_its_hold() -> dict[str, Any] | None:
        items = [item(svc, i["id"]) for i in svc.client().request("list", all=True)["items"]]
        return next(
            (i for i in items if i["state"] == "held" and i["verdict"] == "no-antivirus-scan"),
            None,
        )

    it = wait_for(held_past_its_hold, 60, "the file held without an antivirus scan")
    assert "waits for an antivirus" in it["reason"]
    # well past its hold, it still waits
    wait_for(lambda: "waits for an antivirus scan" in (svc.log.read_text()), 30, "a wait")
    assert item(svc, it["id"])["state"] == "held"
    assert not (downloads("personal") / "notes.txt").exists()


@pytest.fixture
def own_clamd(tmp_path: Path) -> Iterator[clamd_fixture.Clamd]:
    missing = clamd_fixture.missing_programs()
    if missing:
        pytest.skip(f"ClamAV not installed here: {', '.join(missing)} not found")
    with clamd_fixture.running_clamd(tmp_path / "clamd") as c:
        yield c


def _reload(sock: str) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(sock)
        s.sendall(b"zRELOAD\0")
        s.recv(64)


def test_a_file_held_under_old_signatures_is_kept_when_a_signature_arrives(
    service: Callable[..., QService],  # noqa: F811
    own_clamd: clamd_fixture.Clamd,
    tmp_path: Path,
) -> None:
    db = tmp_path / "clamd" / "db"
    pol = policy(hold=4.0)
    pol["audit"] = {
        "antivirus": "required",
        "clamd_socket": own_clamd.socket_path,
        "clamd_database_dir": str(db),
    }
    svc = service(pol)
    payload = b"a brand new threat nobody had a signature for yesterday\n" * 4
    browser_save(paths.desktop_inbox("web"), "invoice.txt", payload)
    first = wait_for(
        lambda: next(
            (i for i in svc.client().request("list")["items"] if i["state"] == "held"), None
        ),
        60,
        "the file held as clean",
    )
    assert item(svc, first["id"])["verdict"] == "clean"
    hexsig = payload[:40].hex()
    (db / "zionwm-new.ndb").write_text(f"Zionwm-Test-Newthreat:0:0:{hexsig}\n")
    _reload(own_clamd.socket_path)
    (it,) = wait_terminal(svc, 1, 90)
    full = item(svc, it["id"])
    assert full["state"] == "rejected" and full["verdict"] == "malicious", full
    rescan = full["report"]["rescan"]
    assert rescan["previous_verdict"] == "clean"
    assert "the antivirus signatures were updated" in rescan["why"]
    assert "scanned again when its hold ended" in full["reason"]
    assert not (downloads("personal") / "invoice.txt").exists()


def test_with_antivirus_off_a_running_clamd_is_not_asked_and_nothing_is_clean(
    service: Callable[..., QService],  # noqa: F811
    own_clamd: clamd_fixture.Clamd,
) -> None:
    # a clamd is configured and answers, but the user turned the antivirus off: it is not
    # used, the files are released after the hold, and every word about them says so
    pol = policy(hold=0.2)
    pol["audit"] = {"antivirus": "off", "clamd_socket": own_clamd.socket_path}
    svc = service(pol)
    status = svc.client().request("status")
    assert status["antivirus"] == "off" and status["engines"]["clamd"]["available"] is False
    browser_save(paths.desktop_inbox("web"), "notes.txt", b"meeting at noon\n")
    (it,) = wait_terminal(svc, 1, 60)
    full = item(svc, it["id"])
    assert full["state"] == "released" and full["verdict"] == "no-antivirus-scan", full
    assert "clamd" not in full["report"]["scanners"]
    (finding,) = [f for f in full["report"]["findings"] if f["rule"] == "no-antivirus"]
    assert 'antivirus="off"' in finding["detail"]
    assert "the antivirus is turned off" in full["reason"]
    stamp = json.loads(os.getxattr(downloads("personal") / "notes.txt", AUDIT_XATTR))
    assert stamp["verdict"] == "no-antivirus-scan"
    text = format_item(full)  # what `zionctl quarantine show` prints
    assert "no antivirus" in text.lower() and "turned off" in text, text


def test_kill9_during_the_end_of_hold_rescan_releases_each_file_once(
    service: Callable[..., QService],  # noqa: F811
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "mine.yar").write_text(
        'rule nothing_yet { strings: $a = "zz-none-zz" condition: $a }\n'
    )
    pol = policy(hold=1.0)
    pol["audit"] = {"antivirus": "if-available", "clamd_socket": "", "yara_rule_dirs": [str(rules)]}
    svc = service(pol)
    sent = {f"r{n}.txt": b"report number %d\n" % n for n in range(8)}
    for name, data in sent.items():
        browser_save(paths.desktop_inbox("web"), name, data)
    wait_for(
        lambda: sum(i["state"] == "held" for i in svc.client().request("list")["items"]) == 8,
        60,
        "8 files held",
    )
    # new rules while they are held: each must be scanned again when its hold ends
    (rules / "mine.yar").write_text(
        'rule still_nothing { strings: $a = "zz-nil-zz" condition: $a }\n'
    )
    kills = 0
    for _ in range(3):
        seen = svc.log.read_text().count("scanning again at the end of its hold")
        try:
            wait_for(
                lambda s=seen: (
                    svc.log.read_text().count("scanning again at the end of its hold") > s
                ),
                30,
                "a rescan started",
                interval=0.005,
            )
        except AssertionError:
            break  # every rescan is done: nothing left to interrupt
        svc.kill9()
        kills += 1
        svc.start()
    items = wait_terminal(svc, 8, 90)
    assert kills >= 1
    assert sorted(i["name"] for i in items) == sorted(sent)
    assert all(i["state"] == "released" for i in items), items
    dl = downloads("personal")
    assert sorted(os.listdir(dl)) == sorted(sent)  # no "name (1).txt": released once each
    for name, data in sent.items():
        assert (dl / name).read_bytes() == data
    for i in items:
        rescan = item(svc, i["id"])["report"]["rescan"]
        assert rescan and "the YARA rules changed" in rescan["why"], i
