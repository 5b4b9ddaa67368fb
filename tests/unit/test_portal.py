"""The portal's pure parts: path rules on a real directory tree (with real symlinks), the
Settings values, method dispatch on real D-Bus messages, the file rules, and the config."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import pytest
from jeepney import DBusAddress, HeaderFields, Message, new_method_call
from jeepney.low_level import Parser

from zionwm import paths
from zionwm.compositor.portal_link import match_rule
from zionwm.config import load_config
from zionwm.desktopbus import events, files, policy, portal
from zionwm.desktopbus.policy import Notice
from zionwm.desktopbus.service import DesktopService

INSIDE = "/home/u"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[files.Root, ...]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for d in ("work", "personal"):
        paths.desktop_home(d).mkdir(parents=True)
        paths.desktop_outbox(d).mkdir(parents=True)
    paths.shared_dir().mkdir(parents=True)
    work = paths.desktop_home("work")
    (work / "Documents").mkdir()
    (work / "Documents" / "a.txt").write_text("a")
    (work / "Incoming" / "web").mkdir(parents=True)
    (work / "Shared").mkdir()  # the placeholder a mount goes over
    (paths.shared_dir() / "s.txt").write_text("s")
    (paths.desktop_home("personal") / "secret").write_text("x")
    return files.roots("work", INSIDE)


def test_paths_map_both_ways(tree: tuple[files.Root, ...]) -> None:
    work = paths.desktop_home("work")
    assert files.to_inside(tree, work / "Documents" / "a.txt") == f"{INSIDE}/Documents/a.txt"
    assert files.to_inside(tree, paths.shared_dir() / "s.txt") == f"{INSIDE}/Shared/s.txt"
    assert files.to_host(tree, f"{INSIDE}/Shared/s.txt") == paths.shared_dir() / "s.txt"
    assert (
        files.to_host(tree, f"{INSIDE}/Documents/../Documents/a.txt")
        == (work / "Documents" / "a.txt").resolve()
    )
    assert files.root_of(tree, str(work / "Incoming" / "web")).label == "Incoming"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "how", ["host path", "climb", "absolute link", "relative link", "linked folder", "shadowed"]
)
def test_nothing_outside_the_roots_is_accepted(tree: tuple[files.Root, ...], how: str) -> None:
    work = paths.desktop_home("work")
    secret = paths.desktop_home("personal") / "secret"
    if how == "host path":
        with pytest.raises(files.OutsideRoots):
            files.to_host(tree, str(secret))
        with pytest.raises(files.OutsideRoots):
            files.to_inside(tree, secret)
    elif how == "climb":
        with pytest.raises(files.OutsideRoots):
            files.to_host(tree, f"{INSIDE}/../../{secret}")
    elif how == "absolute link":
        (work / "l").symlink_to(secret)
        with pytest.raises(files.OutsideRoots):
            files.to_inside(tree, work / "l")
        with pytest.raises(files.OutsideRoots):
            files.to_host(tree, f"{INSIDE}/l")
    elif how == "relative link":
        (work / "r").symlink_to(os.path.relpath(secret, work))
        with pytest.raises(files.OutsideRoots):
            files.to_host(tree, f"{INSIDE}/r")
    elif how == "linked folder":
        (work / "d").symlink_to(secret.parent)
        with pytest.raises(files.OutsideRoots):
            files.to_host(tree, f"{INSIDE}/d/secret")
    else:  # the home's own placeholder under the Shared mount names nothing inside
        with pytest.raises(files.OutsideRoots):
            files.to_inside(tree, work / "Shared")


def test_a_save_goes_only_into_a_writable_folder_and_not_through_a_planted_link(
    tree: tuple[files.Root, ...],
) -> None:
    work = paths.desktop_home("work")
    host, inside = files.save_target(tree, work / "Documents", "new.odt")
    assert inside == f"{INSIDE}/Documents/new.odt" and host == work.resolve() / "Documents/new.odt"
    with pytest.raises(files.OutsideRoots, match="read-only"):
        files.save_target(tree, paths.shared_dir(), "x")
    for bad in ("", ".", "..", "a/b", "a\0"):
        with pytest.raises(files.OutsideRoots):
            files.save_target(tree, work, bad)
    (work / "out.txt").symlink_to(paths.desktop_home("personal") / "secret")
    with pytest.raises(files.OutsideRoots):
        files.save_target(tree, work, "out.txt")


def test_uris() -> None:
    assert files.file_uri("/home/u/a b#.txt") == "file:///home/u/a%20b%23.txt"
    assert files.from_uri("file:///home/u/a%20b.txt") == "/home/u/a b.txt"
    assert files.from_uri("https://x/y") is None
    assert files.from_uri("file://evil.example/x") is None


# ---------------------------------------------------------------- dispatch


def _wire(msg: Message, sender: str = ":1.7") -> Message:
    """The message as the bus delivers it (with its sender), through the real parser."""
    msg.header.fields[HeaderFields.sender] = sender
    p = Parser()
    p.add_data(msg.serialise(serial=5))
    out = p.get_next_message()
    assert out is not None
    return out


def _call(iface: str, member: str, sig: str | None = None, body: tuple = ()) -> Message:
    addr = DBusAddress(portal.PORTAL_PATH, bus_name=portal.PORTAL_NAME, interface=iface)
    return _wire(new_method_call(addr, member, sig, body))


def _replies(sent: list[Message]) -> list[tuple[str, object]]:
    return [(m.header.message_type.name, m.body) for m in sent]


def test_settings_and_version() -> None:
    sent: list[Message] = []
    p = portal.Portal("work", sent.append, portal.Appearance("light", "#ff0000", "Inter 10"))
    p.handle(_call(portal.SETTINGS, "ReadAll", "as", (["org.freedesktop.*"],)))
    (kind, (values,)) = _replies(sent)[-1]  # type: ignore[misc]
    assert kind == "method_return"
    assert list(values) == ["org.freedesktop.appearance"]
    assert values["org.freedesktop.appearance"]["color-scheme"] == ("u", 2)
    assert values["org.freedesktop.appearance"]["accent-color"] == ("(ddd)", (1.0, 0.0, 0.0))
    p.handle(_call(portal.SETTINGS, "ReadOne", "ss", ("org.gnome.desktop.interface", "font-name")))
    assert _replies(sent)[-1] == ("method_return", (("s", "Inter 10"),))
    p.handle(_call(portal.SETTINGS, "Read", "ss", ("nope", "x")))
    assert sent[-1].header.fields[HeaderFields.error_name] == portal.ERR_NOT_FOUND
    p.handle(_call(portal.PROPERTIES, "Get", "ss", (portal.FILECHOOSER, "version")))
    assert _replies(sent)[-1] == ("method_return", (("u", 3),))


def test_requests_answer_with_a_handle_and_respond_to_the_caller_only() -> None:
    sent: list[Message] = []
    p = portal.Portal("work", sent.append)
    opts = {"handle_token": ("s", "t1"), "current_file": ("ay", b"/home/u/a.txt\0")}
    ev = p.handle(_call(portal.FILECHOOSER, "OpenFile", "ssa{sv}", ("", "Open", opts)))
    assert isinstance(ev, events.ChooseRequest)
    assert ev.desktop == "work" and ev.current_file == "/home/u/a.txt"
    handle = portal.REQUEST_PREFIX + "1_7/t1"
    assert ev.handle == handle and _replies(sent)[-1] == ("method_return", (handle,))
    # one chooser at a time per desktop
    again = {"handle_token": ("s", "t2")}
    assert p.handle(_call(portal.FILECHOOSER, "OpenFile", "ssa{sv}", ("", "x", again))) is None
    assert sent[-1].header.fields[HeaderFields.error_name] == portal.ERR_NOT_ALLOWED
    # another program cannot close it
    close = new_method_call(DBusAddress(handle, bus_name=portal.PORTAL_NAME), "Close")
    close.header.fields[HeaderFields.interface] = portal.REQUEST_IFACE
    assert p.handle(_wire(close, sender=":1.9")) is None
    p.respond(handle, portal.SUCCESS, {"uris": ("as", ["file:///home/u/a.txt"])})
    sig = sent[-1]
    assert sig.header.fields[HeaderFields.destination] == ":1.7"
    assert sig.header.fields[HeaderFields.path] == handle
    assert sig.body == (0, {"uris": ("as", ["file:///home/u/a.txt"])})
    assert handle not in p.pending


def test_notification_and_links() -> None:
    sent: list[Message] = []
    p = portal.Portal("work", sent.append)
    n = {"title": ("s", "\u202eHi"), "body": ("s", "there"), "priority": ("s", "urgent")}
    ev = p.handle(_call(portal.NOTIFICATION, "AddNotification", "sa{sv}", ("id", n)))
    assert isinstance(ev, Notice) and ev.desktop == "work" and ev.title == "Hi" and ev.urgent
    ev = p.handle(_call(portal.OPENURI, "OpenURI", "ssa{sv}", ("", "javascript:x", {})))
    assert sent[-1].header.fields[HeaderFields.error_name] == portal.ERR_NOT_ALLOWED
    ev = p.handle(_call(portal.OPENURI, "OpenURI", "ssa{sv}", ("", "file:///home/u/a.pdf", {})))
    assert isinstance(ev, events.OpenFileRequest) and ev.path == "/home/u/a.pdf"


def test_links_past_the_rate_limit_are_refused_to_the_program_and_told_to_the_user() -> None:
    sent: list[Message] = []
    p = portal.Portal("work", sent.append)
    link = ("", "https://example.org/", {})
    opened = [p.handle(_call(portal.OPENURI, "OpenURI", "ssa{sv}", link)) for _ in range(5)]
    assert all(isinstance(ev, events.OpenRequest) for ev in opened)
    # the sixth at once: an error to the program (not a "done" with nothing opened), and
    # one notice for the user, not one per link
    ev = p.handle(_call(portal.OPENURI, "OpenURI", "ssa{sv}", link))
    assert sent[-1].header.fields[HeaderFields.error_name] == portal.ERR_NOT_ALLOWED
    assert isinstance(ev, events.Refused) and ev.reason == "too many links at once"
    assert ev.desktop == "work"
    ev = p.handle(_call(portal.OPENURI, "OpenURI", "ssa{sv}", link))
    assert ev is None and sent[-1].header.fields[HeaderFields.error_name] == portal.ERR_NOT_ALLOWED


def test_the_portal_and_org_zionwm_open_share_one_link_budget() -> None:
    svc = DesktopService("work")
    assert svc.link_rate is svc.portal.link_rate
    sent: list[Message] = []
    svc._queue = sent.append  # type: ignore[method-assign]
    addr = DBusAddress(
        policy.OPEN_PATH, bus_name=policy.OPEN_INTERFACE, interface=policy.OPEN_INTERFACE
    )
    evs = [
        svc.handle(_wire(new_method_call(addr, "OpenURI", "s", (f"https://e.example/{i}",))))
        for i in range(6)
    ]
    assert all(isinstance(ev, events.OpenRequest) for ev in evs[:5])
    # the sixth is refused, and the notice names the link (it said "(empty)")
    assert isinstance(evs[5], events.Refused) and evs[5].what == "https://e.example/5"
    assert svc.link_rate.available() == 0


def test_file_rules() -> None:
    rules = (("application/pdf", "web"), ("image/*", "personal"), ("*", "web"))
    assert match_rule(rules, "application/pdf") == "web"
    assert match_rule(rules, "image/png") == "personal"
    assert match_rule(rules, "text/plain") == "web"
    assert match_rule((("image/*", "x"),), "text/plain") is None


def test_config_appearance_and_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "config.py"
    path.write_text(
        textwrap.dedent(
            """\
            from zionwm.config import *
            settings(color_scheme="dark", accent_colour="#3584E4", font="Cantarell 11")
            desktop("work", colour="#112233", open_files_in={"application/pdf": "web"})
            desktop("web", colour="#332211")
            """
        )
    )
    config, errors = load_config(path)
    assert config is not None, errors
    assert config.settings.color_scheme == "dark"
    assert config.settings.accent_colour == "#3584e4"
    assert config.desktops[0].open_files_in == (("application/pdf", "web"),)
    path.write_text(
        textwrap.dedent(
            """\
            from zionwm.config import *
            settings(color_scheme="purple")
            desktop("work", colour="#112233", open_files_in={"pdf": "nowhere"})
            """
        )
    )
    config, errors = load_config(path)
    text = " ".join(e.message for e in errors)
    assert config is None
    assert "color_scheme" in text and "open_files_in" in text


def test_screenshots_are_rate_limited() -> None:
    sent: list[Message] = []
    p = portal.Portal("work", sent.append)
    got = [
        p.handle(
            _call(portal.SCREENSHOT, "Screenshot", "sa{sv}", ("", {"handle_token": ("s", f"s{i}")}))
        )
        for i in range(4)
    ]
    assert [isinstance(g, events.ScreenshotRequest) for g in got] == [True, True, False, False]
    assert sent[-1].header.fields[HeaderFields.error_name] == portal.ERR_NOT_ALLOWED


def _owner_gone(name: str) -> Message:
    from jeepney import new_signal

    bus = DBusAddress("/org/freedesktop/DBus", interface="org.freedesktop.DBus")
    return new_signal(bus, "NameOwnerChanged", "sss", (name, name, ""))


def test_a_caller_leaving_the_bus_ends_its_open_request() -> None:
    from zionwm.desktopbus.service import DesktopService

    svc = DesktopService("work")
    opts = {"handle_token": ("s", "t1")}
    ev = svc.handle(_call(portal.FILECHOOSER, "OpenFile", "ssa{sv}", ("", "Open", opts)))
    assert isinstance(ev, events.ChooseRequest)
    # another program leaving changes nothing; the caller leaving closes its request
    assert svc.handle(_wire(_owner_gone(":1.8"), sender="org.freedesktop.DBus")) is None
    closed = svc.handle(_wire(_owner_gone(":1.7"), sender="org.freedesktop.DBus"))
    assert closed == events.CloseRequest("work", ev.handle)
    assert not svc.portal.pending
    # a program cannot fake the bus's signal
    svc.handle(_call(portal.FILECHOOSER, "OpenFile", "ssa{sv}", ("", "Open", opts)))
    assert svc.handle(_wire(_owner_gone(":1.7"), sender=":1.9")) is None
    assert svc.portal.pending


def test_a_desktop_with_a_throwaway_home_offers_no_home(tree: tuple[files.Root, ...]) -> None:
    rs = files.roots("work", INSIDE, has_home=False)
    assert [r.label for r in rs] == ["Shared", "Outbox"]
    with pytest.raises(files.OutsideRoots):
        files.to_host(rs, f"{INSIDE}/Documents/a.txt")
    assert files.to_host(rs, f"{INSIDE}/Shared/s.txt") == paths.shared_dir() / "s.txt"


# ---------------------------------------------------------------- the table of methods

_BODY = {"s": "", "as": [], "a{sv}": {}, "h": 0}
_GOOD = {  # arguments the call is answered for (a setting there is, a link that may open)
    (portal.SETTINGS, "Read"): ("org.freedesktop.appearance", "color-scheme"),
    (portal.SETTINGS, "ReadOne"): ("org.freedesktop.appearance", "color-scheme"),
    (portal.OPENURI, "OpenURI"): ("", "https://example.org/", {}),
}


def test_introspection_lists_exactly_the_table() -> None:
    root = ElementTree.fromstring(portal.INTROSPECTION[portal.INTROSPECTION.index("<node>") :])
    served = {}
    for iface in root.iter("interface"):
        name = iface.get("name")
        assert [p.get("name") for p in iface.iter("property")] == ["version"]
        served[name] = [
            (
                el.tag,
                el.get("name"),
                [(a.get("type"), a.get("direction")) for a in el.iter("arg")],
            )
            for el in iface
            if el.tag in ("method", "signal")
        ]
    assert set(served) == set(portal.INTERFACES) == set(portal.VERSIONS)
    for iface, items in portal.INTERFACES.items():
        want = []
        for item in items:
            if isinstance(item, portal.Method):
                args = [(t, "in") for t in portal.single_types(item.args)]
                args += [(t, "out") for t in portal.single_types(item.returns)]
                want.append(("method", item.name, args))
            else:
                args = [(t, None) for t in portal.single_types(item.args)]
                want.append(("signal", item.name, args))
        assert served[iface] == want
    assert portal.single_types("sa{sa{sv}}(ddd)av") == ["s", "a{sa{sv}}", "(ddd)", "av"]


@pytest.mark.parametrize(
    "key",
    sorted(portal.METHODS),
    ids=[f"{i.rsplit('.', 1)[-1]}.{m}" for i, m in sorted(portal.METHODS)],
)
def test_every_method_of_the_table_is_served_with_its_signatures(key: tuple[str, str]) -> None:
    iface, member = key
    method = portal.METHODS[key]
    sent: list[Message] = []
    p = portal.Portal("work", sent.append)
    body = tuple(_BODY.get(t, "") for t in portal.single_types(method.args))
    body = _GOOD.get(key, body)
    fds = []
    if "h" in method.args:
        # a descriptor is passed beside the message; the call is handed over as the bus
        # connection parses it
        msg = new_method_call(
            DBusAddress(portal.PORTAL_PATH, bus_name=portal.PORTAL_NAME, interface=iface),
            member,
            method.args,
            body,
        )
        msg.header.fields[HeaderFields.sender] = ":1.7"
        fds = [os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)]
    else:
        msg = _call(iface, member, method.args, body)
    try:
        ev = p.handle(msg, fds)
    finally:
        for fd in fds:
            os.close(fd)
    if getattr(ev, "fd", -1) >= 0:
        os.close(ev.fd)
    reply = sent[0]
    assert reply.header.message_type.name == "method_return", reply
    assert reply.header.fields.get(HeaderFields.signature, "") == method.returns


@pytest.mark.parametrize(
    ("iface", "member", "sig", "body"),
    [
        (portal.OPENURI, "OpenURI", "ss", ("", "https://example.org")),
        (portal.FILECHOOSER, "OpenFile", "sa{sv}", ("", {})),
        (portal.FILECHOOSER, "SelectFolder", "ssa{sv}", ("", "x", {})),
        (portal.SETTINGS, "SettingChanged", "ssv", ("a", "b", ("s", "c"))),
        (portal.SCREENSHOT, "PickColor", "sa{sv}", ("", {})),
    ],
)
def test_nothing_outside_the_table_is_served(
    iface: str, member: str, sig: str, body: tuple
) -> None:
    sent: list[Message] = []
    p = portal.Portal("work", sent.append)
    assert p.handle(_call(iface, member, sig, body)) is None
    assert sent[-1].header.fields[HeaderFields.error_name] == portal.ERR_UNKNOWN_METHOD
    assert not p.pending


def test_a_released_send_is_found_under_the_targets_home_only() -> None:
    from zionwm.compositor.portal_link import released_path

    ok = {"subdir": "home/Incoming/work", "release_name": "a (1).pdf", "name": "a.pdf"}
    assert released_path("/home/u", ok) == "/home/u/Incoming/work/a (1).pdf"
    assert released_path("/home/u", {**ok, "subdir": "shared"}) is None
    assert released_path("/home/u", {**ok, "subdir": "home/../etc"}) is None
    assert released_path("/home/u", {**ok, "release_name": "../x"}) is None
    assert released_path("/home/u", {**ok, "release_name": ".."}) is None
