"""The pure rules added around the quarantine: escaping text a desktop chose, the refusal
and notification rate limits, and the policy of files leaving a desktop by other paths."""

from __future__ import annotations

from pathlib import Path

from zionwm.compositor.quarantine_link import (
    NotifyThrottle,
    ShownNotices,
    backlog_kind,
    notice_key,
)
from zionwm.isolation.spec import DownloadsPolicy, VerdictAction
from zionwm.quarantine.inbox import RefusalLimiter
from zionwm.quarantine.machine import source_bound_policy
from zionwm.quarantine.release import safe_name
from zionwm.quarantine.store import SHARED_DEST
from zionwm.untrusted import printable


def test_printable_escapes_controls_bidi_and_separators() -> None:
    assert printable("x\nCopied a from b") == "x\\x0aCopied a from b"
    assert printable("a\u202etxt.exe") == "a\\u202etxt.exe"
    assert printable("tab\there\x7f\x9b") == "tab\\x09here\\x7f\\x9b"
    assert printable("line\u2028two\u2066") == "line\\u2028two\\u2066"
    assert printable("ünïcode ok") == "ünïcode ok"
    # zero-width and other format characters could make two names look alike
    assert printable("pay\u200bpal\ufeff") == "pay\\u200bpal\\ufeff"
    assert printable("a\U000e0041b") == "a\\U000e0041b"  # a tag character
    assert len(printable("a" * 1000, 50)) == 50


def test_released_names_replace_bidi_controls() -> None:
    assert safe_name("report\u202efdp.txt") == "report_fdp.txt"
    assert safe_name("x\nCopied") == "x_Copied"


def test_refusal_limiter_bounds_records_per_window_and_sums_the_rest() -> None:
    lim = RefusalLimiter(limit=3, window=10.0)
    allowed = [lim.allow("web", 100.0 + i * 0.01) for i in range(10)]
    assert allowed == [True] * 3 + [False] * 7
    assert lim.allow("work", 100.5)  # per desktop
    assert lim.due(105.0) == []
    assert not lim.allow("web", 111.0)  # the window is over but not summed up yet
    assert lim.due(110.0) == [("web", 8)]
    assert lim.allow("web", 112.0)  # a new window


def test_notify_throttle_shows_a_few_then_one_summary() -> None:
    t = NotifyThrottle(limit=2, window=30.0)
    shown = [t.admit("web", 10.0 + i, "kept") for i in range(6)]
    assert shown == [True, True, False, False, False, False]
    assert t.admit("personal", 11.0, "released")
    assert t.window_end("web") == 40.0
    text = t.summary("web")
    assert text is not None and "4 kept" in text and "web" in text
    assert t.summary("web") is None
    assert t.admit("web", 41.0, "kept")


def test_outbox_and_send_take_the_source_desktops_hold_and_stricter_actions() -> None:
    outbox = DownloadsPolicy(release_to=SHARED_DEST, hold=0.0)
    web = DownloadsPolicy(
        release_to="personal",
        hold=600.0,
        on_suspicious=VerdictAction.DELETE,
        on_cannot_inspect=VerdictAction.KEEP,
    )
    lax = DownloadsPolicy(
        release_to=SHARED_DEST, hold=30.0, on_cannot_inspect=VerdictAction.RELEASE
    )
    got = source_bound_policy(lax, web)
    assert got.release_to == SHARED_DEST and got.hold == 600.0
    assert got.on_suspicious is VerdictAction.DELETE
    assert got.on_cannot_inspect is VerdictAction.KEEP
    assert source_bound_policy(outbox, None) is outbox


def test_shown_notices_tell_each_item_once_and_survive_a_restart(tmp_path: Path) -> None:
    kept = {"id": 7, "state": "rejected", "verdict": "malicious"}
    unscanned = {"id": 8, "state": "held", "verdict": "no-antivirus-scan"}
    assert backlog_kind(kept) == "rejected" and backlog_kind(unscanned) == "held"
    assert backlog_kind({"id": 9, "state": "held", "verdict": "clean"}) is None
    assert notice_key("rejected", kept) == "7:kept"
    assert notice_key("release-failed", kept) is None  # told at every failure
    path = tmp_path / "state" / "notices.json"
    shown = ShownNotices(path)
    assert shown.first("7:kept") and not shown.first("7:kept")
    assert shown.first("8:unscanned")
    shown.save()
    again = ShownNotices(path)
    assert not again.first("7:kept") and not again.first("8:unscanned")
    again.forget_item(7)  # audited again: its next verdict is news
    assert again.first("7:kept")
    again.keep_only({7})
    assert again.keys == {"7:kept"}
    path.write_text("not json")
    assert ShownNotices(path).keys == set()  # unreadable: told again rather than never
