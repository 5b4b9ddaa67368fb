"""Attacks on the quarantine's promises, each made by a program running inside a real
sandbox of the web desktop of a running zionwm (started with `zionctl launch`, as a user's
program is), against the real quarantine service and a real clamd with a test database.

The attacker is a Python script run by the sandbox's own /usr/bin/python3. Where it must
wait for the host (a verdict, a release), the test drops a trigger file into Shared, which
the sandbox sees read-only as ~/Shared; where it reports back, it writes into its own home
(a non-ephemeral desktop's home is a host directory the test can read).
"""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.documents import odt_with_onload_macro
from tests.harness import Compositor, wait_for
from tests.system.clamd_fixture import Clamd, clamd  # noqa: F401 (fixture)
from zionwm.quarantine.policy import WINDOW_ENV

BASE = """\
from zionwm.config import desktop, Downloads, settings
desktop("personal", colour="#3b82f6")
desktop("web", colour="#ef4444", ephemeral={ephemeral},
        downloads=Downloads(release_to="personal", hold={hold!r}))
settings(clamd_socket={sock!r})
"""

PRELUDE = """\
import os, sys, time, json, mmap
HOME = os.path.expanduser("~")
DL, OUT, SHARED = HOME + "/Downloads", HOME + "/Outbox", HOME + "/Shared"
def wait(path, timeout=180):
    end = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > end:
            sys.exit("timed out waiting for " + path)
        time.sleep(0.05)
def report(name, data):
    with open(HOME + "/." + name + ".tmp", "w") as f:
        json.dump(data, f)
    os.rename(HOME + "/." + name + ".tmp", HOME + "/" + name)
"""


def start(make: Any, daemon: Clamd, hold: float, ephemeral: bool = False, **kw: Any) -> Compositor:
    """A compositor whose quarantine service runs and whose events it already receives.

    The service takes inbox entries as soon as it is up, and an event it emits before the
    compositor has subscribed reaches nobody: an attack started in that gap loses its first
    notifications (the flood test then saw too few to be summed up)."""
    comp: Compositor = make(
        BASE.format(ephemeral=ephemeral, hold=hold, sock=daemon.socket_path), **kw
    )
    wait_for(
        lambda: comp.zjson("status")["quarantine"]["running"],
        60,
        "the compositor subscribed to the quarantine's events",
    )
    return comp


def attack(comp: Compositor, body: str) -> None:
    """Run `body` (after PRELUDE) inside a sandbox of the web desktop."""
    script = PRELUDE + textwrap.dedent(body)
    comp.zionctl("launch", "web", "--", "/usr/bin/python3", "-c", script)


def data(comp: Compositor) -> Path:
    return comp.data / "zionwm"


def items(comp: Compositor) -> list[dict[str, Any]]:
    out = comp.zionctl("quarantine", "--json", "list", "--all").stdout
    return list(json.loads(out)["items"])


def item_named(comp: Compositor, name: str, state: str | None = None) -> dict[str, Any] | None:
    for it in items(comp):
        if it["name"] == name and (state is None or it["state"] == state):
            return it
    return None


def sandboxes(comp: Compositor) -> int:
    return int(comp.zjson("status")["sandboxes"])


def personal_downloads(comp: Compositor) -> Path:
    return data(comp) / "desktops" / "personal" / "home" / "Downloads"


def trigger(comp: Compositor, name: str) -> None:
    shared = data(comp) / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    (shared / name).write_text("go\n")


def wait_report(comp: Compositor, name: str) -> dict[str, Any]:
    path = data(comp) / "desktops" / "web" / "home" / name
    wait_for(path.exists, 120, f"the attacker's report {name}")
    return dict(json.loads(path.read_text()))


CLEAN = b"clean quarterly report, nothing to see\n" * 8


@pytest.mark.security
def test_a_handle_kept_by_the_source_cannot_change_the_file_after_its_audit(
    make_compositor: Any,
    clamd: Clamd,  # noqa: F811
) -> None:
    """The attacker saves a download and keeps a read-only descriptor on it. Once the
    audit found it clean (held), it reopens that descriptor for writing through
    /proc/self/fd and writes, also through a shared writable mapping; after the release it
    does the same again and links the inode back into its Downloads. The released file
    must hold exactly the audited bytes, and none of those handles may reach it."""
    comp = start(make_compositor, clamd, hold=3600)
    attack(
        comp,
        f"""
        path = DL + "/report.txt"
        with open(path, "wb") as f:
            f.write({CLEAN!r})
        keep = os.open(path, os.O_RDONLY)
        def tamper(tag, link):
            out = {{}}
            try:
                w = os.open("/proc/self/fd/%d" % keep, os.O_RDWR)
                os.pwrite(w, b"EVIL-" + tag, 0)
                m = mmap.mmap(w, 0)
                m[40:45] = b"MMAP!"
                m.flush()
                m.close()
                os.close(w)
                out["fd+mmap"] = "written"
            except (OSError, ValueError) as e:
                out["fd+mmap"] = repr(e)
            if link:
                try:
                    os.link("/proc/self/fd/%d" % keep, DL + "/.handle")
                    with open(DL + "/.handle", "r+b") as f:
                        f.seek(60)
                        f.write(b"LINK!")
                    out["link"] = "written"
                except OSError as e:
                    out["link"] = repr(e)
            return out
        wait(SHARED + "/phase1")
        report("phase1.json", tamper(b"1", False))
        wait(SHARED + "/phase2")
        report("phase2.json", tamper(b"2", True))
        """,
    )
    held = wait_for(lambda: item_named(comp, "report.txt", "held"), 90, "a clean verdict")
    assert held["sha256"] == hashlib.sha256(CLEAN).hexdigest()

    trigger(comp, "phase1")
    print("attacker, after the verdict:", wait_report(comp, "phase1.json"))
    comp.zionctl("quarantine", "release", str(held["id"]))
    target = personal_downloads(comp) / "report.txt"
    assert target.read_bytes() == CLEAN, "the released file is not what the audit saw"
    stamp = json.loads(os.getxattr(target, "user.zionwm.audit"))
    assert stamp["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()

    trigger(comp, "phase2")
    print("attacker, after the release:", wait_report(comp, "phase2.json"))
    assert target.read_bytes() == CLEAN, "a handle kept by the source reached the destination"
    assert target.stat().st_nlink == 1
    assert comp.alive()


@pytest.mark.security
def test_forged_xattrs_are_dropped_and_the_origin_is_recorded_as_claimed(
    make_compositor: Any,
    clamd: Clamd,  # noqa: F811
) -> None:
    """The attacker sets a made-up origin, a `user.xdg.comment` vouching for the file and
    its own `user.zionwm.*` attributes. Only the origin attributes browsers write survive,
    recorded in the audit stamp as claimed by web; the rest are gone."""
    comp = start(make_compositor, clamd, hold=0)
    attack(
        comp,
        """
        with open(DL + "/statement.txt", "wb") as f:
            f.write(b"account statement\\n" * 20)
            for key, value in [
                ("user.xdg.origin.url", b"https://bank.example/statement"),
                ("user.xdg.comment", b"Verified by zionwm"),
                ("user.zionwm.audit", b'{"verdict": "clean", "item": 4242}'),
                ("user.zionwm.trusted", b"yes"),
            ]:
                os.setxattr(f.fileno(), key, value)
        """,
    )
    target = personal_downloads(comp) / "statement.txt"
    wait_for(target.exists, 90, "the download to be released")
    names = {n for n in os.listxattr(target) if n.startswith("user.")}
    assert names == {"user.xdg.origin.url", "user.zionwm.audit"}, names
    assert os.getxattr(target, "user.xdg.origin.url") == b"https://bank.example/statement"
    stamp = json.loads(os.getxattr(target, "user.zionwm.audit"))
    it = item_named(comp, "statement.txt")
    assert it is not None
    assert stamp["verdict"] == "clean" and stamp["item"] == it["id"] != 4242
    assert stamp["source"] == "web"
    assert stamp["claimed_by_source"] == ["user.xdg.origin.url"]
    shown = comp.zionctl("quarantine", "show", str(it["id"])).stdout
    assert "claimed by web, not verified" in shown


@pytest.mark.security
def test_the_outbox_waits_for_the_source_desktops_hold(
    make_compositor: Any,
    clamd: Clamd,  # noqa: F811
) -> None:
    """The web desktop's downloads are held 8 s; its Outbox (to Shared, readable by every
    desktop) must wait as long: the file is not in Shared before the hold ends."""
    hold = 8.0
    comp = start(make_compositor, clamd, hold=hold)
    shared = data(comp) / "shared" / "flyer.txt"
    attack(
        comp,
        """
        with open(OUT + "/flyer.txt", "wb") as f:
            f.write(b"bake sale on friday\\n" * 10)
        """,
    )
    seen: list[dict[str, Any]] = []

    def released() -> bool:
        it = item_named(comp, "flyer.txt")
        if it is None:
            return False
        seen.append(it)
        if it["state"] != "released":
            assert not shared.exists(), f"in Shared while {it['state']}"
        return bool(it["state"] == "released")

    wait_for(released, 90, "the outbox item to be released")
    last = seen[-1]
    assert last["kind"] == "outbox"
    assert last["hold_until"] >= last["received_at"] + hold, last
    assert last["released_at"] >= last["hold_until"]
    assert shared.exists()


@pytest.mark.security
def test_a_document_whose_macro_runs_on_opening_is_kept(
    make_compositor: Any,
    clamd: Clamd,  # noqa: F811
) -> None:
    """The web desktop saves an OpenDocument text whose Basic macro is bound to the
    document's opening (LibreOffice's AutoOpen): it is kept, and says why, instead of being
    released as a clean file."""
    comp = start(make_compositor, clamd, hold=0)
    document = odt_with_onload_macro("/tmp/pwned")
    attack(
        comp,
        f"""
        with open(DL + "/.minutes.odt.part", "wb") as f:
            f.write({document!r})
        os.rename(DL + "/.minutes.odt.part", DL + "/minutes.odt")
        """,
    )
    kept = wait_for(lambda: item_named(comp, "minutes.odt", "rejected"), 90, "the document kept")
    assert kept["verdict"] == "suspicious", kept
    shown = comp.zionctl("quarantine", "show", str(kept["id"])).stdout
    assert "runs a macro by itself on dom:load" in shown, shown
    assert not (personal_downloads(comp) / "minutes.odt").exists()


FAKE_LINE = "Copied passwords.kdbx from personal"


@pytest.mark.security
def test_file_names_cannot_forge_lines_or_reorder_trusted_text(
    make_compositor: Any,
    clamd: Clamd,  # noqa: F811
) -> None:
    """Download names with a newline and a right-to-left override reach the notifications,
    the log and `zionctl quarantine list` escaped: no forged line, no reordered text."""
    comp = start(make_compositor, clamd, hold=0)
    attack(
        comp,
        f"""
        # spelled in two pieces, so the launch line in the log does not hold it whole
        for name in ["x\\n{FAKE_LINE[:10]}" + "{FAKE_LINE[10:]}", "report\\u202efdp.txt"]:
            with open(DL + "/" + name, "wb") as f:
                f.write(b"plain words\\n" * 10)
        """,
    )
    wait_for(
        lambda: len([i for i in items(comp) if i["state"] == "released"]) == 2,
        90,
        "both downloads to be released",
    )
    wait_for(
        lambda: len([n for n in comp.zjson("status")["notifications"] if "Released" in n]) == 2,
        20,
        "two notifications",
    )
    notes = comp.zjson("status")["notifications"]
    listing = comp.zionctl("quarantine", "list", "--all").stdout
    for text in [*notes, listing, comp.log()]:
        assert "\u202e" not in text
        for line in text.splitlines():
            assert not line.startswith(FAKE_LINE), f"forged line: {line!r}"
    assert any("\\x0a" + FAKE_LINE in n for n in notes), notes
    assert any("\\u202e" in n for n in notes), notes
    released = sorted(p.name for p in personal_downloads(comp).iterdir())
    assert released == ["report_fdp.txt", f"x_{FAKE_LINE}"]


@pytest.mark.security
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_flood_of_refused_entries_is_rate_limited(
    make_compositor: Any,
    clamd: Clamd,  # noqa: F811
) -> None:
    """300 symlinks dropped into Downloads: each is refused and removed, but only a bounded
    number is recorded one by one and notified; the rest come as one summary row and one
    summary notification. (Both are due when their windows end: 60 s and 30 s, made 5 s here
    through the environment.)"""
    comp = start(make_compositor, clamd, hold=0, extra_env={WINDOW_ENV: "5"})
    inbox = data(comp) / "desktops" / "web" / "downloads-inbox"
    attack(
        comp,
        """
        for i in range(300):
            os.symlink("/etc/passwd", DL + "/link%03d" % i)
        """,
    )
    wait_for(lambda: sandboxes(comp) == 0 and not any(inbox.iterdir()), 60, "every link removed")
    refused = [i for i in items(comp) if i["source"] == "web" and i["state"] == "rejected"]
    assert 1 <= len(refused) <= 10, len(refused)

    def summed() -> dict[str, Any] | None:
        return next((i for i in items(comp) if i["name"].endswith(" entries)")), None)

    summary = wait_for(summed, 90, "the summary row of the entries not recorded")
    assert summary["name"] == f"({300 - len(refused)} entries)"
    assert " in 5 s: removed from the inbox without a record each" in summary["reason"], summary
    wait_for(
        lambda: "notification: Quarantine: more from web than shown" in comp.log(),
        90,
        "the summary notification",
    )
    kept_notes = [ln for ln in comp.log().splitlines() if "notification: Quarantine kept" in ln]
    assert len(kept_notes) <= 4, len(kept_notes)  # 3 one by one, then the summary row's
    assert len(items(comp)) <= 11


@pytest.mark.security
@pytest.mark.slow
def test_an_ephemeral_session_leaves_nothing_for_the_next_one(
    make_compositor: Any,
    clamd: Clamd,  # noqa: F811
) -> None:
    """An ephemeral web session writes a tracking dotfile, a partial download and a
    sub-folder with a payload into Downloads and Outbox, then ends. The next session finds
    nothing there; each wiped entry was logged."""
    comp = start(make_compositor, clamd, hold=0, ephemeral=True)
    attack(
        comp,
        """
        for base in (DL, OUT):
            with open(base + "/.tracker", "w") as f:
                f.write("id=4f2a9c")
            os.mkdir(base + "/sub")
            with open(base + "/sub/payload", "w") as f:
                f.write("#!/bin/sh\\necho pwned\\n")
            os.chmod(base + "/sub/payload", 0o755)
            with open(base + "/movie.mkv.part", "w") as f:
                f.write("half")
        """,
    )
    wait_for(lambda: sandboxes(comp) == 0, 60, "the first session to end")
    attack(
        comp,
        """
        found = []
        for base in (DL, OUT):
            for root, dirs, files in os.walk(base):
                found += [os.path.join(root, n) for n in dirs + files]
        with open(DL + "/listing.txt", "w") as f:
            f.write("seen:" + repr(sorted(found)) + "\\n")
        """,
    )
    listing = personal_downloads(comp) / "listing.txt"
    wait_for(listing.exists, 90, "the second session's listing to be released")
    assert listing.read_text() == "seen:[]\n", listing.read_text()
    wiped = [ln for ln in comp.log().splitlines() if "session over, wiped" in ln]
    for what in ("Downloads/.tracker", "Downloads/sub", "Downloads/movie.mkv.part"):
        assert any(what in ln for ln in wiped), (what, wiped)
    for what in ("Outbox/.tracker", "Outbox/sub", "Outbox/movie.mkv.part"):
        assert any(what in ln for ln in wiped), (what, wiped)


@pytest.mark.security
def test_an_ephemeral_session_cut_short_by_the_compositor_is_wiped_at_the_next_start(
    make_compositor: Any,
    clamd: Clamd,  # noqa: F811
) -> None:
    """The session is still running when zionwm stops: the next zionwm, on the same data,
    wipes what it left before any program of the desktop can start."""
    config = BASE.format(ephemeral=True, hold=0, sock=clamd.socket_path)
    comp = make_compositor(config)
    attack(
        comp,
        """
        with open(DL + "/.tracker", "w") as f:
            f.write("id=77")
        os.mkdir(OUT + "/keep")
        with open(OUT + "/keep/payload", "w") as f:
            f.write("still here?")
        with open(OUT + "/.ready", "w") as f:
            f.write("1")
        time.sleep(600)
        """,
    )
    edges = data(comp) / "desktops" / "web"
    wait_for((edges / "outbox" / ".ready").exists, 60, "the attacker to write its leftovers")
    comp.stop()
    assert (edges / "downloads-inbox" / ".tracker").exists()  # nothing ended the session
    comp = make_compositor(config)
    assert not any((edges / "downloads-inbox").iterdir())
    assert not any((edges / "outbox").iterdir())
    assert "session over, wiped ~/Outbox/keep (directory: 1 entries" in comp.log()
