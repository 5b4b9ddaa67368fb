"""The refusal lists (compositor and manager side) and the change offered for each (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zionwm.compositor.refusal_store import RefusalStore
from zionwm.compositor.refusals import (
    EVENTS_PER_WINDOW,
    PER_DESKTOP,
    RefusalLog,
    clean_what,
    decode,
    encode,
)
from zionwm.manager.refusals import Refusal, RefusalList, offer, visible


def _show(network: str) -> dict[str, object]:
    return {"name": "web", "settings": [{"key": "network", "value": network}]}


def test_the_offer_adds_exactly_the_refused_host_to_a_filtered_list() -> None:
    r = Refusal("web", "host", "cdn.example.org")
    o = offer(r, _show("filtered:example.org:443,10.0.0.0/8"))
    assert o is not None
    assert o.argv == [
        "desktop",
        "set",
        "web",
        "network=filtered:example.org:443,10.0.0.0/8,cdn.example.org",
    ]
    assert o.diff == [
        "- network = filtered:example.org:443,10.0.0.0/8",
        "+ network = filtered:example.org:443,10.0.0.0/8,cdn.example.org",
    ]


def test_no_offer_where_no_setting_change_would_grant_it() -> None:
    r = Refusal("web", "host", "example.org")
    assert offer(r, _show("filtered:example.org:443")) is None  # listed already
    assert offer(r, _show("none")) is None
    assert offer(r, _show("full")) is None
    assert offer(Refusal("web", "dbus", "org.example.X"), _show("filtered:a.org")) is None


def test_the_compositor_keeps_only_grantable_names() -> None:
    assert clean_what("host", "CDN.Example.org.") == "cdn.example.org"
    for bad in ("a\u202eb.org", "1.0.0.127.in-addr.arpa", "printer.local", "a b.org", "", 5):
        assert clean_what("host", bad) is None
    assert clean_what("usb", "1d6b:0002") is None  # a kind nothing reports


def test_the_log_is_bounded_and_a_burst_costs_a_bounded_number_of_events() -> None:
    log = RefusalLog()
    emitted = [log.add("web", "host", f"n{i}.test", 100.0) for i in range(200)]
    assert sum(e is not None for e in emitted) == EVENTS_PER_WINDOW
    kept = log.list("web")
    assert len(kept) == PER_DESKTOP and kept[-1].what == "n199.test"
    assert log.add("web", "host", "n199.test", 101.0) is None  # a repeat only counts
    assert kept[-1].count == 2
    assert log.add("web", "host", "later.test", 200.0) is not None  # a new window
    # later.test pushed the oldest out; clearing it leaves the other 63
    assert log.clear("web", "later.test") == 1 and log.clear("web") == PER_DESKTOP - 1


def test_the_manager_lists_newest_first_and_escapes_what_it_shows() -> None:
    lst = RefusalList()
    lst.load([{"desktop": "web", "kind": "host", "what": "a.org", "last": 1.0}])
    lst.add({"desktop": "web", "kind": "host", "what": "b.org", "last": 2.0, "count": 3})
    lst.add({"desktop": "work", "kind": "host", "what": "c.org", "last": 3.0})
    assert [r.what for r in lst.of("web")] == ["b.org", "a.org"]
    assert lst.counts() == {"web": 2, "work": 1}
    assert "3 times" in lst.of("web")[0].subtitle
    assert visible("x\u202ey\n") == "x\\u202ey\\u000a"


def test_a_desktop_forgotten_keeps_no_list() -> None:
    log = RefusalLog()
    log.add("gone", "host", "a.test", 1.0)
    log.add("web", "host", "b.test", 1.0)
    log.forget("gone")
    assert log.desktops() == ["web"] and [r.what for r in log.list()] == ["b.test"]


def test_zionctl_lists_refusals_as_a_table() -> None:
    from zionwm.desktops_cli import format_refusals

    assert format_refusals([]) == "no refusals"
    text = format_refusals(
        [{"desktop": "web", "kind": "host", "what": "cdn.example.net", "count": 3, "last": 0.0}]
    )
    header, row = text.splitlines()
    assert header.split() == ["DESKTOP", "KIND", "WHAT", "TIMES", "LAST"]
    assert row.split()[:4] == ["web", "host", "cdn.example.net", "3"]


# what xdg-dbus-proxy --log printed for a call to the keyring and a RequestName it refused
PROXY_LOG = """\
C6: -> org.freedesktop.DBus fake GetNameOwner for org.freedesktop.DBus
*SKIPPED*
C7: -> org.freedesktop.secrets call org.freedesktop.Secret.Service.OpenSession at /
*HIDDEN* (ping)
B7: <- org.freedesktop.DBus return from C6
*SKIPPED*
B8: <- (no sender) return from C7
*REWRITTEN*
C8: -> org.mozilla.firefox call org.mozilla.firefox.OpenURL at /
B9: <- org.mozilla.firefox return from C8
C9: -> org.freedesktop.DBus call org.freedesktop.DBus.RequestName at /
Filtering message due to arg0 com.evil.Name, policy: 0 (required 3)
*HIDDEN* (ping)
"""


def test_the_proxy_log_gives_the_names_it_hid_and_nothing_else() -> None:
    from zionwm.desktopbus.policy import ProxyLog

    reader = ProxyLog()
    names = [n for line in PROXY_LOG.splitlines() if (n := reader.feed(line))]
    assert names == ["org.freedesktop.secrets", "com.evil.Name"]
    assert clean_what("dbus", "org.freedesktop.secrets") == "org.freedesktop.secrets"
    for bad in (":1.42", "nodots", "a.b\u202e", "a..b", "x" * 300 + ".y"):
        assert clean_what("dbus", bad) is None


def test_a_list_written_and_read_back_is_the_same_bounded_list() -> None:
    log = RefusalLog()
    for i in range(PER_DESKTOP + 10):
        log.add("web", "host", f"n{i}.example.org", 1000.0 + i)
    log.add("web", "host", "n20.example.org", 2000.0)  # seen again: now the newest
    entries = log.list("web")
    back = decode("web", encode(entries))
    assert back == entries and len(back) == PER_DESKTOP
    restored = RefusalLog()
    restored.restore("web", back)
    assert restored.list("web") == entries
    # restored entries count on as before, and a restored list stays bounded
    restored.add("web", "host", "n20.example.org", 3000.0)
    assert restored.list("web")[-1].count == 3  # twice before the restart, once after
    restored.restore("web", decode("web", encode(entries)))
    assert len(restored.list("web")) == PER_DESKTOP


@pytest.mark.parametrize(
    "item",
    [
        {"kind": "host", "what": "bad\u202ename.test", "count": 1, "first": 1, "last": 1},
        {"kind": "host", "what": "4.3.2.1.in-addr.arpa", "count": 1, "first": 1, "last": 1},
        {"kind": "shell", "what": "rm", "count": 1, "first": 1, "last": 1},
        {"kind": "host", "what": "ok.test", "count": 0, "first": 1, "last": 1},
        {"kind": "host", "what": "ok.test", "count": True, "first": 1, "last": 1},
        {"kind": "host", "what": "ok.test", "count": 1, "first": "x", "last": 1},
        "ok.test",
    ],
)
def test_a_list_read_back_is_judged_like_a_new_report(item: object) -> None:
    good = {"kind": "host", "what": "ok.test", "count": 1, "first": 1, "last": 1}
    data = json.dumps({"version": 1, "refusals": [good, item]}).encode()
    with pytest.raises(ValueError):
        decode("web", data)
    assert len(decode("web", json.dumps({"version": 1, "refusals": [good]}).encode())) == 1


def test_the_store_writes_on_its_thread_and_sets_aside_what_it_cannot_read(
    tmp_path: Path,
) -> None:
    store = RefusalStore(tmp_path / "refusals")
    log = RefusalLog()
    log.add("web", "host", "cdn.example.org", 5.0)
    store.save("web", encode(log.list("web")))
    store.save("work", encode(log.list("web")))
    store.save("work", None)  # an emptied list leaves no file
    with pytest.raises(ValueError):
        store.save("../web", None)
    store.close()
    assert sorted(p.name for p in (tmp_path / "refusals").iterdir()) == ["web.json"]
    (tmp_path / "refusals" / "gaming.json").write_text("{")
    again = RefusalStore(tmp_path / "refusals").load(decode)
    assert again == {"web": log.list("web")}
    assert (tmp_path / "refusals" / "gaming.json.bad").read_text() == "{"
