"""System tests of the download quarantine: the real service process, real inotify, real
renames and xattrs, the real audit worker, files built at test time.

Every test works in its own XDG tree under tmp_path (ext4 here; the cross-filesystem release
uses /dev/shm). The service is started as `python -m zionwm.quarantine.service` and waited
for through its ready fd; `kill -9` is a real SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import select
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from inotify_simple import INotify
from inotify_simple import flags as inflags

from tests.documents import blank_pdf, png_8x8
from tests.harness import wait_for
from tests.system import clamd_fixture
from tests.system.clamd_fixture import EICAR, Clamd
from zionwm import paths
from zionwm.quarantine.client import QuarantineClient
from zionwm.quarantine.release import AUDIT_XATTR, Destination, release_file
from zionwm.quarantine.report import AuditReport, Verdict
from zionwm.quarantine.store import Kind, State, Store

_libc = ctypes.CDLL(None, use_errno=True)
clamd = clamd_fixture.clamd  # the shared clamd session fixture, under its own name
ORIGIN = "https://downloads.example.org/files/report.pdf"
TERMINAL = {"released", "rejected", "deleted"}


# -- helpers ---------------------------------------------------------------------------------


def browser_save(inbox: Path, name: str, data: bytes, origin: str | None = None) -> None:
    """Save like a browser: write `name.part`, set the origin xattr, rename to `name`."""
    part = inbox / (name + ".part")
    with open(part, "wb") as f:
        f.write(data)
        if origin:
            os.setxattr(f.fileno(), "user.xdg.origin.url", origin.encode())
    os.rename(part, inbox / name)


class QService:
    """The real zionwm-quarantined process, with its policy file."""

    def __init__(self, tmp: Path, policy: dict[str, Any], workers: int = 2) -> None:
        self.policy_file = tmp / "quarantine-policy.json"
        self.policy_file.write_text(json.dumps(policy))
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "service.log"

    def arguments(self, ready_fd: int, workers: int | None = None) -> list[str]:
        """The service's command-line arguments (after the program)."""
        return [
            "--policy-file",
            str(self.policy_file),
            "--ready-fd",
            str(ready_fd),
            "--workers",
            str(self.workers if workers is None else workers),
            "--log-level",
            "DEBUG",
        ]

    def start(self, deadline: float = 20.0) -> None:
        r, w = os.pipe()
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "zionwm.quarantine.service", *self.arguments(w)],
                pass_fds=(w,),
                stdout=logf,
                stderr=logf,
            )
        os.close(w)
        try:
            ready, _, _ = select.select([r], [], [], deadline)
            data = os.read(r, 64) if ready else b""
        finally:
            os.close(r)
        if data != b"READY\n":
            self.stop()
            raise AssertionError(f"service did not start: {self.log.read_text()[-3000:]}")

    def client(self) -> QuarantineClient:
        return QuarantineClient(timeout=30.0)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


def _pids_using(root: Path) -> set[int]:
    """Processes (other than this one) holding an fd on something under `root`."""
    prefix = str(root) + "/"
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(prefix):
                    found.add(int(pid))
                    break
        except OSError:
            continue
    return found


def kill_leftovers(root: Path) -> None:
    """SIGKILL what a killed service left behind (audit sandboxes caught in their start-up
    when their parent died: bwrap 0.8 has not armed die-with-parent yet at that point)."""
    pids = _pids_using(root)
    if pids:
        print(f"killing {len(pids)} leftover processes of killed services: {sorted(pids)}")
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not (_pids_using(root) & pids), 10, f"leftover processes {pids} gone")


def db_states() -> dict[int, str]:
    """Item states read straight from the store's database (read-only)."""
    db = paths.quarantine_dir() / "quarantine.db"
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return dict(con.execute("SELECT id, state FROM items").fetchall())
    finally:
        con.close()


def all_items(svc: QService) -> list[dict[str, Any]]:
    with svc.client() as c:
        return list(c.request("list", all=True)["items"])


def item(svc: QService, item_id: int) -> dict[str, Any]:
    with svc.client() as c:
        return dict(c.request("show", id=item_id)["item"])


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("XDG_RUNTIME_DIR", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        d = tmp_path / var.lower()
        d.mkdir(mode=0o700)
        monkeypatch.setenv(var, str(d))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def policy(hold: float = 0.0, **on: str) -> dict[str, Any]:
    return {
        "desktops": [
            {"desktop": "web", "downloads": {"release_to": "personal", "hold": hold, **on}},
            {"desktop": "personal"},
            {"desktop": "work"},
        ],
        "send": {"hold": 0},
        "outbox": {"hold": 0},
        # no clamd in most tests (not even one running at the usual place): release what
        # every other scanner passed, marked as such
        "audit": {"antivirus": "if-available", "clamd_socket": ""},
    }


@pytest.fixture
def service(xdg: Path) -> Iterator[Callable[..., QService]]:
    started: list[QService] = []

    def start(pol: dict[str, Any] | None = None, workers: int = 2) -> QService:
        svc = QService(xdg, pol or policy(), workers)
        started.append(svc)
        svc.start()
        return svc

    yield start
    for svc in started:
        svc.stop()
    kill_leftovers(xdg)


def downloads(desktop: str) -> Path:
    return paths.desktop_home(desktop) / "Downloads"


# -- intake ----------------------------------------------------------------------------------


@pytest.mark.security
def test_control_socket_is_private(service: Callable[..., QService]) -> None:
    service()
    sock = paths.runtime_dir() / "quarantine.sock"
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    assert stat.S_ISSOCK(os.stat(sock).st_mode)


@pytest.mark.security
def test_symlink_in_inbox_is_refused_and_its_target_never_opened(
    xdg: Path, service: Callable[..., QService]
) -> None:
    ssh = xdg / "home" / ".ssh"
    ssh.mkdir(parents=True)
    secret = ssh / "id_ed25519"
    secret.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY----- not really\n")
    watch = INotify()
    watch.add_watch(secret, inflags.OPEN | inflags.ACCESS)
    svc = service()
    inbox = paths.desktop_inbox("web")
    os.symlink(secret, inbox / "invoice.pdf")
    os.link(secret, inbox / "hardlinked.pdf")

    def refused() -> list[dict[str, Any]]:
        got = [i for i in all_items(svc) if i["state"] == "rejected"]
        return got if len(got) == 2 else []

    got = wait_for(refused, 10, "two refusals")
    reasons = {i["name"]: i["reason"] for i in got}
    assert "symbolic link" in reasons["invoice.pdf"]
    assert "hard link" in reasons["hardlinked.pdf"]
    assert all(not i["content"] for i in got)
    assert sorted(os.listdir(inbox)) == []  # the entries are gone, not the target
    assert secret.read_bytes().startswith(b"-----BEGIN")
    assert not os.listdir(paths.quarantine_dir() / "items")
    events = [e for e in watch.read(timeout=0) if e.mask & (inflags.OPEN | inflags.ACCESS)]
    # Our own read_bytes above opened it once; the service must not have.
    assert len([e for e in events if e.mask & inflags.OPEN]) == 1
    watch.close()


def test_file_still_being_written_is_not_taken_until_closed(
    service: Callable[..., QService],
) -> None:
    svc = service()
    inbox = paths.desktop_inbox("web")
    f = open(inbox / "movie.bin", "wb")
    try:
        f.write(b"x" * 100_000)
        f.flush()
        os.fsync(f.fileno())
        # An empty close-after-write of the same name from another open: the classic trap.
        os.close(os.open(inbox / "movie.bin", os.O_WRONLY))
        # A complete file after it: once it is taken, the service has seen both events.
        browser_save(inbox, "marker.txt", b"marker\n")
        wait_for(
            lambda: any(i["name"] == "marker.txt" for i in all_items(svc)),
            10,
            "the marker to be taken",
        )
        assert (inbox / "movie.bin").exists()
        assert not any(i["name"] == "movie.bin" for i in all_items(svc))
        f.write(b"y" * 50_000)
    finally:
        f.close()
    taken = wait_for(
        lambda: [i for i in all_items(svc) if i["name"] == "movie.bin"], 10, "movie.bin taken"
    )
    assert len(taken) == 1 and taken[0]["size"] == 150_000
    assert not (inbox / "movie.bin").exists()


def test_a_browsers_empty_placeholder_is_not_taken_for_the_download(
    service: Callable[..., QService],
) -> None:
    """Firefox and Chromium reserve the final name with an empty file, write `name.part` /
    `name.crdownload`, then rename it over the placeholder. Only that is the download."""
    svc = service()
    inbox = paths.desktop_inbox("web")
    (inbox / "report.txt").write_bytes(b"")  # the placeholder: created, closed, empty
    with open(inbox / "report.txt.part", "wb") as part:
        part.write(b"quarterly numbers\n")
    os.rename(inbox / "report.txt.part", inbox / "report.txt")
    taken = wait_for(
        lambda: [i for i in all_items(svc) if i["name"].startswith("report")], 10, "the take"
    )
    assert [(i["name"], i["size"]) for i in taken] == [("report.txt", 18)]


def test_an_empty_file_is_taken_once_no_download_is_in_progress(
    service: Callable[..., QService],
) -> None:
    svc = service()
    inbox = paths.desktop_inbox("web")
    (inbox / "big.iso.crdownload").write_bytes(b"partial")
    (inbox / "empty.txt").write_bytes(b"")
    browser_save(inbox, "marker.txt", b"marker\n")
    wait_for(lambda: any(i["name"] == "marker.txt" for i in all_items(svc)), 10, "marker")
    assert not any(i["name"] == "empty.txt" for i in all_items(svc))
    (inbox / "big.iso.crdownload").unlink()  # the download was cancelled
    taken = wait_for(
        lambda: [i for i in all_items(svc) if i["name"] == "empty.txt"], 10, "empty.txt"
    )
    assert taken[0]["size"] == 0


def test_partial_names_and_subdirectories_are_left_alone(service: Callable[..., QService]) -> None:
    svc = service()
    inbox = paths.desktop_inbox("web")
    (inbox / "big.iso.crdownload").write_bytes(b"partial")
    (inbox / "folder").mkdir()
    (inbox / "folder" / "inner.txt").write_bytes(b"inner")
    browser_save(inbox, "done.txt", b"done\n")
    wait_for(lambda: any(i["name"] == "done.txt" for i in all_items(svc)), 10, "done.txt")
    assert {i["name"] for i in all_items(svc)} == {"done.txt"}
    assert (inbox / "big.iso.crdownload").exists()
    assert (inbox / "folder" / "inner.txt").exists()


def test_files_that_arrived_while_down_are_taken_at_start(
    xdg: Path, service: Callable[..., QService]
) -> None:
    inbox = paths.desktop_inbox("web")
    inbox.mkdir(parents=True)
    for n in range(5):
        (inbox / f"early-{n}.txt").write_bytes(b"early %d\n" % n)
    svc = service()
    wait_for(lambda: len(all_items(svc)) == 5, 10, "5 items")
    assert not os.listdir(inbox)


# -- release (kernel-level, without the service) ---------------------------------------------


def _put_in_store(
    store: Store,
    name: str,
    data: bytes,
    *,
    mode: int | None = None,
    origin: str | None = None,
    **take: Any,
) -> tuple[int, os.stat_result]:
    """A file of web's Downloads copied into the store by hand: the take's intent recorded
    (`take`: more of its fields) and the copy renamed into place, nothing after."""
    tmp = store.root / "crafting"
    tmp.write_bytes(data)
    if mode is not None:
        os.chmod(tmp, mode)
    if origin:
        os.setxattr(tmp, "user.xdg.origin.url", origin.encode())
    st = os.stat(tmp)
    item_id = store.begin_take(
        kind=Kind.DOWNLOAD,
        source="web",
        dest="personal",
        subdir=("home", "Downloads"),
        name=name,
        size=st.st_size,
        dev=st.st_dev,
        ino=st.st_ino,
        inbox_name=name,
        **take,
    )
    os.rename(tmp, store.root / "items" / str(item_id))
    return item_id, st


def _stored_file(store: Store, data: bytes, origin: str | None = ORIGIN) -> int:
    """An executable a.pdf taken from web, its origin claimed, as if its take had copied it."""
    item_id, _ = _put_in_store(store, "a.pdf", data, mode=0o755, origin=origin)
    return item_id


def test_release_name_clash_xattrs_and_exec_bits(tmp_path: Path) -> None:
    store = Store(tmp_path / "q")
    dest_root = tmp_path / "personal"
    (dest_root / "home" / "Downloads").mkdir(parents=True)
    (dest_root / "home" / "Downloads" / "a.pdf").write_bytes(b"the user's own file")
    tried: list[str] = []
    item_id = _stored_file(store, b"%PDF-1.4 released\n")
    final = release_file(
        store.items_fd,
        src_name=str(item_id),
        dest=Destination(dest_root, ("home", "Downloads")),
        name="a.pdf",
        stamp=b'{"item": %d}' % item_id,
        on_attempt=tried.append,
    )
    assert final == "a (1).pdf" and tried == ["a.pdf", "a (1).pdf"]
    out = dest_root / "home" / "Downloads" / final
    assert out.read_bytes() == b"%PDF-1.4 released\n"
    assert (dest_root / "home" / "Downloads" / "a.pdf").read_bytes() == b"the user's own file"
    assert os.getxattr(out, "user.xdg.origin.url").decode() == ORIGIN
    assert json.loads(os.getxattr(out, AUDIT_XATTR)) == {"item": item_id}
    assert stat.S_IMODE(out.stat().st_mode) & 0o111 == 0
    assert not (store.root / "items" / str(item_id)).exists()
    store.close()


def test_release_across_filesystems_copies_with_xattrs(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem (/dev/shm tmpfs) to release across")
    store = Store(tmp_path / "q")
    dest_root = shm / f"zionwm-test-{os.getpid()}-{time.monotonic_ns()}"
    try:
        (dest_root / "Downloads").mkdir(parents=True)
        (dest_root / "Downloads" / "a.pdf").write_bytes(b"clash")
        item_id = _stored_file(store, b"x" * 300_000)
        final = release_file(
            store.items_fd,
            src_name=str(item_id),
            dest=Destination(dest_root, ("Downloads",)),
            name="a.pdf",
            stamp=b"{}",
            on_attempt=lambda _n: None,
        )
        out = dest_root / "Downloads" / final
        assert final == "a (1).pdf"
        assert out.read_bytes() == b"x" * 300_000
        assert os.getxattr(out, "user.xdg.origin.url").decode() == ORIGIN
        assert os.getxattr(out, AUDIT_XATTR) == b"{}"
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
        assert not (store.root / "items" / str(item_id)).exists()
        assert sorted(os.listdir(dest_root / "Downloads")) == ["a (1).pdf", "a.pdf"]
    finally:
        store.close()
        for p in sorted(dest_root.rglob("*"), reverse=True):
            p.unlink() if not p.is_dir() else p.rmdir()
        dest_root.rmdir()


@pytest.mark.security
def test_symlink_swapped_in_a_loop_never_redirects_a_release(tmp_path: Path) -> None:
    store = Store(tmp_path / "q")
    dest_root = tmp_path / "personal"
    home = dest_root / "home"
    home.mkdir(parents=True)
    (home / "Downloads").mkdir()
    real_ino = os.stat(home / "Downloads").st_ino
    outside = tmp_path / "outside"  # e.g. the user's ~/.config/autostart
    outside.mkdir()
    os.symlink(outside, home / "Downloads.link")
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        # Atomically exchange the real directory and a symlink pointing outside, so that
        # "Downloads" is always present and is a symlink half of the time.
        nonlocal swaps
        while not stop.is_set():
            rc = _libc.renameat2(
                -100, b"%s/Downloads" % bytes(home), -100, b"%s/Downloads.link" % bytes(home), 2
            )  # RENAME_EXCHANGE
            assert rc == 0, os.strerror(ctypes.get_errno())
            swaps += 1

    ok = failed = 0
    t = threading.Thread(target=swapper)
    t.start()
    try:
        for n in range(300):
            item_id = _stored_file(store, b"payload %d\n" % n, origin=None)
            try:
                release_file(
                    store.items_fd,
                    src_name=str(item_id),
                    dest=Destination(dest_root, ("home", "Downloads")),
                    name=f"f{n}.txt",
                    stamp=b"{}",
                    on_attempt=lambda _n: None,
                )
                ok += 1
            except OSError:
                failed += 1
                assert (store.root / "items" / str(item_id)).exists()  # still quarantined
    finally:
        stop.set()
        t.join()
    assert swaps > 100 and ok > 0 and failed > 0, (swaps, ok, failed)
    assert os.listdir(outside) == []
    real = next(p for p in home.iterdir() if not p.is_symlink())
    assert real.stat().st_ino == real_ino
    landed = [p for p in real.iterdir() if p.is_file() and not p.is_symlink()]
    assert len(landed) == ok
    store.close()


# -- the whole pipeline with the real audit worker -------------------------------------------


def wait_terminal(svc: QService, count: int, timeout: float) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]]:
        items = all_items(svc)
        if len(items) >= count and all(i["state"] in TERMINAL for i in items):
            return items
        return []

    return list(wait_for(done, timeout, f"{count} items to finish", interval=0.1))


def test_clean_pdf_and_png_are_released_after_the_hold_with_origin_kept(
    service: Callable[..., QService],
) -> None:
    svc = service(policy(hold=1.5))
    events = svc.client()
    events.subscribe()
    inbox = paths.desktop_inbox("web")
    pdf, png = blank_pdf(), png_8x8()
    (downloads("personal")).mkdir(parents=True)
    (downloads("personal") / "report.pdf").write_bytes(b"an older report")
    browser_save(inbox, "report.pdf", pdf, ORIGIN)
    browser_save(inbox, "photo.png", png, "https://images.example.org/photo.png")
    items = wait_terminal(svc, 2, 30)
    seen: list[dict[str, Any]] = []
    while len([e for e in seen if e["event"] == "released"]) < 2:
        seen.append(events.next_event(5))
    events.close()
    by_name = {i["name"]: i for i in items}
    for name, data in (("report.pdf", pdf), ("photo.png", png)):
        it = item(svc, by_name[name]["id"])
        assert it["state"] == "released" and it["verdict"] == "no-antivirus-scan", it
        assert it["sha256"] == hashlib.sha256(data).hexdigest()
        assert it["hold_until"] - it["received_at"] >= 1.5
        assert it["released_at"] >= it["hold_until"]
        out = downloads("personal") / it["release_name"]
        assert out.read_bytes() == data
        stamp = json.loads(os.getxattr(out, AUDIT_XATTR))
        assert stamp["item"] == it["id"] and stamp["verdict"] == "no-antivirus-scan"
        assert stamp["sha256"] == it["sha256"] and stamp["scanners"]
    assert by_name["report.pdf"]["release_name"] == "report (1).pdf"
    assert (downloads("personal") / "report.pdf").read_bytes() == b"an older report"
    assert (
        os.getxattr(downloads("personal") / "report (1).pdf", "user.xdg.origin.url").decode()
        == ORIGIN
    )
    kinds = [e["event"] for e in seen]
    assert kinds.count("received") == 2 and kinds.count("held") == 2
    assert seen[-1]["counts"] == {"pending": 0, "kept": 0}


def test_user_commands_on_a_kept_item(service: Callable[..., QService]) -> None:
    svc = service()
    inbox = paths.desktop_inbox("web")
    elf = Path("/bin/true").read_bytes()
    browser_save(inbox, "invoice.pdf", elf)
    browser_save(inbox, "other.pdf", elf)
    items = wait_terminal(svc, 2, 30)
    assert all(i["state"] == "rejected" and i["content"] for i in items), items
    a, b = sorted(i["id"] for i in items)
    ctl = [sys.executable, "-m", "zionwm.ctl", "quarantine"]
    shown = subprocess.run([*ctl, "show", str(a)], capture_output=True, text=True, check=True)
    assert "finding" in shown.stdout and "invoice.pdf" in shown.stdout
    refused = subprocess.run([*ctl, "release", str(a)], capture_output=True, text=True, check=False)
    assert refused.returncode == 1 and "--i-understand" in refused.stderr
    assert not downloads("personal").exists() or not os.listdir(downloads("personal"))
    forced = subprocess.run(
        [*ctl, "release", str(a), "--i-understand"], capture_output=True, text=True, check=False
    )
    assert forced.returncode == 0, forced.stderr
    out = downloads("personal") / "invoice.pdf"
    assert out.read_bytes() == elf and stat.S_IMODE(out.stat().st_mode) & 0o111 == 0
    assert json.loads(os.getxattr(out, AUDIT_XATTR))["forced"] is True
    rescan = subprocess.run([*ctl, "rescan", str(b)], capture_output=True, text=True, check=False)
    assert rescan.returncode == 0, rescan.stderr
    wait_for(
        lambda: item(svc, b)["state"] == "rejected" and item(svc, b)["report"], 30, "the rescan"
    )
    delete = subprocess.run([*ctl, "delete", str(b)], capture_output=True, text=True, check=False)
    assert delete.returncode == 0, delete.stderr
    assert item(svc, b)["state"] == "deleted"
    assert not (paths.quarantine_dir() / "items" / str(b)).exists()
    listing = subprocess.run([*ctl, "list"], capture_output=True, text=True, check=True)
    assert "0 pending, 0 kept" in listing.stdout


def test_outbox_goes_to_shared(service: Callable[..., QService]) -> None:
    svc = service()
    out = paths.desktop_outbox("work")
    wait_for(out.is_dir, 5, "the outbox")
    browser_save(out, "minutes.txt", b"meeting minutes\n")
    items = wait_terminal(svc, 1, 30)
    assert items[0]["state"] == "released" and items[0]["dest"] == "@shared"
    assert (paths.shared_dir() / "minutes.txt").read_bytes() == b"meeting minutes\n"


@pytest.mark.security
def test_send_work_to_personal_and_symlink_outside_refused(
    xdg: Path, service: Callable[..., QService]
) -> None:
    svc = service()
    work = paths.desktop_home("work")
    (work / "notes").mkdir(parents=True)
    (work / "notes" / "report.txt").write_bytes(b"quarterly numbers\n")
    os.symlink(xdg / "home", work / "evil")  # points outside work's home
    os.symlink(work / "notes" / "report.txt", work / "alias.txt")  # inside, still a symlink
    ctl = [
        sys.executable,
        "-m",
        "zionwm.ctl",
        "send",
        "--from",
        "work",
        "--to",
        "personal",
        "--wait",
        "--timeout",
        "60",
    ]
    run = subprocess.run(
        [
            *ctl,
            "notes/report.txt",
            "evil/.ssh",
            "alias.txt",
            str(work / "notes" / "report.txt"),
            "/etc/passwd",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.count("refused") == 3, run.stderr
    incoming = paths.desktop_home("personal") / "Incoming" / "work"
    assert sorted(os.listdir(incoming)) == ["report (1).txt", "report.txt"]
    for name in os.listdir(incoming):
        assert (incoming / name).read_bytes() == b"quarterly numbers\n"
        stamp = json.loads(os.getxattr(incoming / name, AUDIT_XATTR))
        assert stamp["verdict"] == "no-antivirus-scan"
    assert (work / "notes" / "report.txt").exists()  # a send copies
    assert len(all_items(svc)) == 2


@pytest.mark.security
def test_eicar_is_rejected_end_to_end_with_clamd(
    service: Callable[..., QService], clamd: Clamd
) -> None:
    pol = policy()
    pol["audit"] = {"clamd_socket": clamd.socket_path, "antivirus": "required"}
    svc = service(pol)
    browser_save(paths.desktop_inbox("web"), "game-crack.com", EICAR, "http://192.0.2.7/x")
    browser_save(paths.desktop_inbox("web"), "readme.txt", b"nothing to see\n")
    items = {i["name"]: i for i in wait_terminal(svc, 2, 60)}
    bad = item(svc, items["game-crack.com"]["id"])
    assert bad["state"] == "rejected" and bad["verdict"] == "malicious", bad
    assert any(f["scanner"] == "clamd" for f in bad["report"]["findings"])
    assert "clamd" in bad["report"]["scanners"]
    assert bad["origin_url"] == "http://192.0.2.7/x"
    assert items["readme.txt"]["state"] == "released"
    assert sorted(os.listdir(downloads("personal"))) == ["readme.txt"]


# -- crashes ---------------------------------------------------------------------------------


def test_restart_resolves_every_crash_state_exactly_once(
    xdg: Path, service: Callable[..., QService]
) -> None:
    """The on-disk states a kill -9 leaves between an intent and its outcome, built by hand
    (each one is a window too narrow to hit reliably with a real SIGKILL)."""
    from zionwm.quarantine.release import audit_stamp

    store = Store(paths.quarantine_dir())
    inbox = paths.desktop_inbox("web")
    inbox.mkdir(parents=True)
    dl = downloads("personal")
    dl.mkdir(parents=True)
    clean = AuditReport(scanners=("magic",))
    # A: intent recorded, rename never happened: the file is still in the inbox.
    (inbox / "a.txt").write_bytes(b"A\n")
    st = os.stat(inbox / "a.txt")
    store.begin_take(
        kind=Kind.DOWNLOAD,
        source="web",
        dest="personal",
        subdir=("home", "Downloads"),
        name="a.txt",
        size=2,
        dev=st.st_dev,
        ino=st.st_ino,
        inbox_name="a.txt",
    )
    # B: renamed into the store, not yet recorded as received.
    _put_in_store(store, "b.txt", b"B\n")
    # C: killed mid-audit.
    c, _ = _put_in_store(store, "c.txt", b"C\n")
    store.transition(c, State.RECEIVED, content=True)
    store.transition(c, State.AUDITING)

    def held(name: str, data: bytes) -> int:
        i, _ = _put_in_store(store, name, data)
        store.transition(i, State.RECEIVED, content=True)
        store.transition(i, State.AUDITING)
        store.transition(
            i,
            State.HELD,
            verdict=Verdict.CLEAN,
            report=clean,
            hold_until=0.0,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        return i

    # D: released (renamed into Downloads, stamped) but not recorded as released.
    d = held("d.txt", b"D\n")
    store.transition(d, State.RELEASING)
    store.set_release_name(d, "d.txt")
    os.setxattr(
        store.root / "items" / str(d), AUDIT_XATTR, audit_stamp(d, "clean", None, (), False)
    )
    os.rename(store.root / "items" / str(d), dl / "d.txt")
    # E: release intent recorded, rename not done.
    e = held("e.txt", b"E\n")
    store.transition(e, State.RELEASING)
    store.set_release_name(e, "e.txt")
    # F: the user's delete, killed before the unlink.
    f = held("f.txt", b"F\n")
    store.transition(f, State.DELETING)
    # G: held, its hold passed while the service was down.
    held("g.txt", b"G\n")
    # H: release intent recorded, not done; meanwhile the destination desktop forged a file
    # with the intended name and this item's stamp: the real content must not be dropped.
    h = held("h.txt", b"H\n")
    store.transition(h, State.RELEASING)
    store.set_release_name(h, "h.txt")
    (dl / "h.txt").write_bytes(b"forged\n")
    os.setxattr(dl / "h.txt", AUDIT_XATTR, audit_stamp(h, "clean", None, (), False))
    store.close()

    svc = service()
    items = wait_terminal(svc, 8, 60)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for it in items:
        by_name.setdefault(it["name"], []).append(it)
    assert sorted(by_name) == [f"{x}.txt" for x in "abcdefgh"]
    assert all(len(v) == 1 for v in by_name.values()), by_name
    assert by_name["f.txt"][0]["state"] == "deleted"
    released = sorted(os.listdir(dl))
    assert released == sorted([*(f"{x}.txt" for x in "abcdegh"), "h (1).txt"]), released
    for name in released:
        if name != "h.txt":
            assert (dl / name).read_bytes() == name[0].upper().encode() + b"\n"
    assert by_name["h.txt"][0]["release_name"] == "h (1).txt"
    assert not os.listdir(paths.quarantine_dir() / "items")
    assert not os.listdir(inbox)


def _in_state(state: str) -> bool:
    return state in db_states().values()


@pytest.mark.slow
def test_kill9_at_every_stage_then_restart_loses_and_duplicates_nothing(
    service: Callable[..., QService],
) -> None:
    inbox = paths.desktop_inbox("web")
    # A short hold makes "held" a window SIGKILL can land in; "received" (8 files queue
    # behind 2 workers) and "auditing" (a sandbox per file) are windows already.
    svc = service(policy(hold=0.5))
    sent: dict[str, bytes] = {}
    # None: kill right after the files land, wherever intake is.
    targets: list[str | None] = [None, "auditing", "held", "releasing", "received"]
    hit: list[str] = []
    for cycle, target in enumerate(targets):
        for n in range(8):
            name = f"c{cycle}-{n}.bin"
            sent[name] = os.urandom(64) + name.encode()
            browser_save(inbox, name, sent[name])
        if target is not None:
            try:
                wait_for(partial(_in_state, target), 3, target, interval=0.002)
                hit.append(target)
            except AssertionError:
                pass  # the stage went by too fast to catch: kill wherever it is
        svc.kill9()
        svc.start()
    items = wait_terminal(svc, len(sent), 120)
    names = [i["name"] for i in items]
    assert sorted(names) == sorted(sent), "an item was lost or duplicated"
    assert all(i["state"] == "released" for i in items), [
        (i["name"], i["state"], i["reason"]) for i in items if i["state"] != "released"
    ]
    dl = downloads("personal")
    assert sorted(os.listdir(dl)) == sorted(sent)
    for name, data in sent.items():
        assert (dl / name).read_bytes() == data
    assert not os.listdir(inbox)
    assert not os.listdir(paths.quarantine_dir() / "items")
    print("stages hit by SIGKILL:", hit)
    assert len(hit) >= 3, hit


# -- flood -----------------------------------------------------------------------------------


def test_inbox_flood_of_1000_files_loses_none(service: Callable[..., QService]) -> None:
    """1,000 files arriving at once are all taken and recorded exactly once. (Auditing all of
    them takes minutes with one sandbox per file; benchmarks/quarantine.py measures that.)"""
    svc = service(workers=1)
    inbox = paths.desktop_inbox("web")
    t0 = time.monotonic()
    for n in range(1000):
        fd = os.open(inbox / f"f{n:04d}.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"file %d\n" % n)
        os.close(fd)

    def all_taken() -> bool:
        states = db_states()
        return len(states) >= 1000 and "taking" not in states.values()

    wait_for(all_taken, 60, "1000 items taken", interval=0.1)
    took = time.monotonic() - t0
    assert not os.listdir(inbox)
    svc.stop()  # a still picture: audits and releases go on while the service runs
    store = Store(paths.quarantine_dir())
    try:
        items = store.list()
    finally:
        store.close()
    assert sorted(i.name for i in items) == [f"f{n:04d}.txt" for n in range(1000)]
    assert all(i.state is not State.REJECTED for i in items)
    in_store = {int(n) for n in os.listdir(paths.quarantine_dir() / "items")}
    assert in_store == {i.id for i in items if i.content}
    assert all(i.content or i.state is State.RELEASED for i in items)
    print(f"1000 files taken in {took:.2f} s")


def _queue_limit() -> int:
    return int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())


@pytest.mark.slow
def test_inotify_queue_overflow_is_recovered_by_a_rescan(
    service: Callable[..., QService],
) -> None:
    """With the service stopped (SIGSTOP), more files arrive than its inotify queue holds
    (two queued events per file); after SIGCONT the overflow rescan must still take all."""
    limit = _queue_limit()
    count = limit // 2 + 200
    if count > 20_000:
        pytest.skip(f"fs.inotify.max_queued_events is {limit}: too many files to overflow it")
    svc = service(workers=1)
    assert svc.proc is not None
    inbox = paths.desktop_inbox("web")
    svc.proc.send_signal(signal.SIGSTOP)
    try:
        for n in range(count):
            fd = os.open(inbox / f"o{n:05d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"%d" % n)
            os.close(fd)
    finally:
        svc.proc.send_signal(signal.SIGCONT)

    def all_taken() -> bool:
        states = db_states()
        return len(states) >= count and "taking" not in states.values()

    wait_for(all_taken, 120, f"{count} items taken", interval=0.2)
    assert not os.listdir(inbox)
    assert "inotify queue overflowed" in svc.log.read_text()
    names = sorted(i["name"] for i in all_items(svc))
    assert names == [f"o{n:05d}" for n in range(count)]


# -- the service's edges ---------------------------------------------------------------------


def test_event_stream_for_the_compositor(service: Callable[..., QService]) -> None:
    from zionwm.quarantine.client import EventStream

    svc = service()
    stream = EventStream()
    assert stream.counts == {"pending": 0, "kept": 0}
    browser_save(paths.desktop_inbox("web"), "a.txt", b"a\n")
    seen: list[dict[str, Any]] = []

    def released() -> bool:
        select.select([stream], [], [], 0.5)
        seen.extend(stream.read_events())
        return any(e["event"] == "released" for e in seen)

    wait_for(released, 30, "a released event")
    assert [e["event"] for e in seen] == ["received", "held", "released"]
    assert seen[0]["counts"]["pending"] == 1 and stream.counts["pending"] == 0
    svc.stop()
    wait_for(lambda: (stream.read_events() or True) and stream.closed, 10, "the stream end")
    stream.close()


def test_policy_delete_removes_content_and_keeps_the_record(
    service: Callable[..., QService],
) -> None:
    svc = service(policy(on_suspicious="delete", on_malicious="delete", on_cannot_inspect="delete"))
    browser_save(paths.desktop_inbox("web"), "invoice.pdf", Path("/bin/true").read_bytes())
    (it,) = wait_terminal(svc, 1, 30)
    full = item(svc, it["id"])
    assert full["state"] == "rejected" and not full["content"]
    assert "deleted by policy" in full["reason"] and full["report"]["findings"]
    assert not os.listdir(paths.quarantine_dir() / "items")


def test_sighup_reloads_the_policy_and_watches_new_inboxes(
    service: Callable[..., QService],
) -> None:
    svc = service()
    assert not paths.desktop_outbox("gaming").exists()
    pol = policy()
    pol["desktops"].append({"desktop": "gaming"})
    svc.policy_file.write_text(json.dumps(pol))
    assert svc.proc is not None
    svc.proc.send_signal(signal.SIGHUP)
    wait_for(paths.desktop_outbox("gaming").is_dir, 10, "the new outbox")
    browser_save(paths.desktop_outbox("gaming"), "score.txt", b"42\n")
    wait_for(
        lambda: any(i["source"] == "gaming" for i in all_items(svc)),
        10,
        "an item from the new outbox",
    )


def test_a_second_service_on_the_same_store_is_refused(
    xdg: Path, service: Callable[..., QService]
) -> None:
    svc = service()
    second = subprocess.run(
        [sys.executable, "-m", "zionwm.quarantine.service", "--policy-file", str(svc.policy_file)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert second.returncode == 1
    # the store lock is taken before the socket is looked at: always this refusal
    assert "another zionwm-quarantined owns this quarantine" in second.stderr, second.stderr
    with svc.client() as c:
        assert c.request("ping")["ok"]


@pytest.mark.security
def test_peers_of_another_uid_are_refused(service: Callable[..., QService]) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to connect as another uid (setuid)")
    service()
    sock = paths.runtime_dir() / "quarantine.sock"
    # Opened up only so that another uid reaches the SO_PEERCRED check at all; the child
    # starts in the socket's directory, so the private directories above it stay closed.
    os.chmod(paths.runtime_dir(), 0o711)
    os.chmod(sock, 0o666)
    code = (
        "import os, socket, sys\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.settimeout(10)\n"
        "s.connect('quarantine.sock')\n"
        "try:\n"
        '    s.sendall(b\'{"cmd": "list", "all": true}\\n\')\n'
        "    reply = s.recv(100)\n"
        "except (ConnectionResetError, BrokenPipeError):\n"
        "    reply = b''\n"
        "sys.exit(0 if reply == b'' else 3)\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=paths.runtime_dir(),
    )
    assert other.returncode == 0, other.stderr


@pytest.mark.security
def test_symlink_swapped_in_a_loop_during_intake_is_never_followed(tmp_path: Path) -> None:
    """A desktop exchanging its download with a symlink to a secret while it is being taken:
    whatever lands in the store is the regular file, and the secret is never opened."""
    from zionwm.quarantine.inbox import InboxSpec, Outcome, take

    secret = tmp_path / "id_ed25519"
    secret.write_bytes(b"secret key\n")
    watch = INotify()
    watch.add_watch(secret, inflags.OPEN)
    store = Store(tmp_path / "q")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    spec = InboxSpec("web", inbox, Kind.DOWNLOAD, "personal", ("home", "Downloads"))
    dir_fd = os.open(inbox, os.O_RDONLY | os.O_DIRECTORY)
    outcomes: dict[Outcome, int] = {}
    reasons: dict[str, int] = {}
    try:
        # Race until both outcomes were seen (at least 300 rounds, at most 3000): which side
        # of the swap take() lands on is up to the scheduler, and the test must have
        # exercised both for its invariants to mean anything.
        for n in range(3000):
            if n >= 300 and outcomes.get(Outcome.TAKEN) and outcomes.get(Outcome.REFUSED):
                break
            (inbox / "doc.pdf").write_bytes(b"document %d\n" % n)
            os.symlink(secret, inbox / ".lnk")
            stop = threading.Event()

            def swapper(stop: threading.Event) -> None:
                while not stop.is_set():
                    _libc.renameat2(dir_fd, b"doc.pdf", dir_fd, b".lnk", 2)  # EXCHANGE

            t = threading.Thread(target=swapper, args=(stop,))
            t.start()
            try:
                result = take(store, spec, dir_fd, "doc.pdf")
            finally:
                stop.set()
                t.join()
            if result.outcome is Outcome.SETTLING:
                # the copy saw the file change under it and was thrown away; the service
                # looks again shortly, as here once the swapping has stopped (whichever of
                # the two the name then holds)
                result = take(store, spec, dir_fd, "doc.pdf")
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
            reasons[result.reason] = reasons.get(result.reason, 0) + 1
            if result.outcome is Outcome.TAKEN:
                assert result.item_id is not None
                landed = store.root / "items" / str(result.item_id)
                assert not landed.is_symlink() and landed.read_bytes() == b"document %d\n" % n
            for leftover in inbox.iterdir():
                leftover.unlink()
        assert not any(p.is_symlink() for p in (store.root / "items").iterdir())
        assert watch.read(timeout=0) == []  # the secret was never opened
        assert outcomes.get(Outcome.TAKEN, 0) > 0, outcomes
        assert outcomes.get(Outcome.REFUSED, 0) > 0, outcomes
        print("intake under swapping:", reasons)
    finally:
        os.close(dir_fd)
        watch.close()
        store.close()


def test_undecodable_file_name_is_taken_and_released_under_a_valid_name(
    service: Callable[..., QService],
) -> None:
    svc = service()
    inbox = bytes(paths.desktop_inbox("web"))
    fd = os.open(inbox + b"/caf\xe9.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b"latin-1 name\n")
    os.close(fd)
    browser_save(paths.desktop_inbox("web"), "after.txt", b"after\n")
    items = {i["name"]: i for i in wait_terminal(svc, 2, 30)}
    assert items["caf\ufffd.txt"]["state"] == "released"
    assert (downloads("personal") / "caf\ufffd.txt").read_bytes() == b"latin-1 name\n"
    assert items["after.txt"]["state"] == "released"


def test_writer_detection_without_leases(tmp_path: Path) -> None:
    """The /proc fallback (used where a read lease cannot be taken) sees another process's
    writable fd, and only a writable one."""
    from zionwm.quarantine.release import no_writers, proc_has_writer

    target = tmp_path / "download.bin"
    target.write_bytes(b"partial")
    st = os.stat(target)
    with open(target, "ab") as w:
        writer = subprocess.Popen(["sleep", "60"], stdout=w)
    try:
        assert proc_has_writer(st)
        fd = os.open(target, os.O_RDONLY)
        try:
            assert not no_writers(fd)
        finally:
            os.close(fd)
    finally:
        writer.kill()
        writer.wait()
    with open(target, "rb") as r:
        reader = subprocess.Popen(["sleep", "60"], stdin=r)
    try:
        assert not proc_has_writer(st)
        fd = os.open(target, os.O_RDONLY)
        try:
            assert no_writers(fd)
        finally:
            os.close(fd)
    finally:
        reader.kill()
        reader.wait()


def test_hold_survives_a_restart(service: Callable[..., QService]) -> None:
    svc = service(policy(hold=2.0))
    browser_save(paths.desktop_inbox("web"), "slow.txt", b"held\n")
    wait_for(lambda: "held" in db_states().values(), 30, "the item held")
    svc.kill9()
    svc.start()
    (it,) = wait_terminal(svc, 1, 30)
    full = item(svc, it["id"])
    assert full["state"] == "released"
    assert full["released_at"] >= full["hold_until"] >= full["received_at"] + 2.0
    assert (downloads("personal") / "slow.txt").read_bytes() == b"held\n"


def test_inbox_directory_replaced_is_watched_again(service: Callable[..., QService]) -> None:
    svc = service()
    inbox = paths.desktop_inbox("web")
    os.rename(inbox, inbox.with_name("old-inbox"))
    wait_for(inbox.is_dir, 10, "the inbox recreated")
    browser_save(inbox, "after-move.txt", b"1\n")
    wait_for(
        lambda: any(i["name"] == "after-move.txt" for i in all_items(svc)),
        10,
        "a file in the recreated inbox",
    )
    shutil.rmtree(inbox)
    wait_for(inbox.is_dir, 10, "the inbox recreated again")
    browser_save(inbox, "after-delete.txt", b"2\n")
    wait_for(
        lambda: any(i["name"] == "after-delete.txt" for i in all_items(svc)),
        10,
        "a file in the inbox recreated after deletion",
    )


def test_a_supervisor_gone_before_ready_stops_the_service_quietly(xdg: Path) -> None:
    """The compositor may quit while the service is still starting: the service must stop
    cleanly (status 0, no traceback) when its ready pipe has no reader any more."""
    policy = xdg / "policy.json"
    policy.write_text(json.dumps({"desktops": [{"desktop": "web"}]}))
    rfd, wfd = os.pipe()
    os.close(rfd)  # the supervisor is gone
    proc = subprocess.run(
        [sys.executable, "-m", "zionwm.quarantine.service", "--policy-file", str(policy),
         "--ready-fd", str(wfd)],
        pass_fds=(wfd,), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    os.close(wfd)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_stored_copy_changed_after_its_audit_is_kept_with_a_report(
    service: Callable[..., QService],
) -> None:
    """The digest is checked again at release: content that is not what the audit saw
    (here changed in the store behind the service's back) stays, with a finding."""
    svc = service(policy(hold=3600, on_cannot_inspect="release"))
    browser_save(paths.desktop_inbox("web"), "plan.txt", b"the audited plan\n")
    it = wait_for(
        lambda: next((i for i in all_items(svc) if i["state"] == "held"), None), 60, "held"
    )
    stored = paths.quarantine_dir() / "items" / str(it["id"])
    with open(stored, "r+b") as f:
        f.write(b"THE")
    with svc.client() as c:
        reply = c.call("release", id=it["id"])
    assert not reply["ok"] and "changed after its audit" in reply["error"]
    kept = item(svc, it["id"])
    assert kept["state"] == "rejected" and kept["content"]
    assert kept["report"]["findings"][-1]["rule"] == "changed-after-audit"
    assert not downloads("personal").exists() or not os.listdir(downloads("personal"))


def test_a_take_killed_after_its_copy_is_finished_once(
    xdg: Path, service: Callable[..., QService]
) -> None:
    """Killed between placing the copy in the store and removing the inbox entry: recovery
    removes the entry it copied (a rescan would take it twice otherwise)."""
    store = Store(paths.quarantine_dir())
    inbox = paths.desktop_inbox("web")
    inbox.mkdir(parents=True)
    (inbox / "once.txt").write_bytes(b"only once\n")
    src = os.stat(inbox / "once.txt")
    item_id, _ = _put_in_store(
        store, "once.txt", b"only once\n", src_dev=src.st_dev, src_ino=src.st_ino
    )
    store.close()
    svc = service(policy(on_cannot_inspect="release"))
    wait_terminal(svc, 1, 60)
    assert [i["id"] for i in all_items(svc)] == [item_id]
    assert not (inbox / "once.txt").exists()
    assert (downloads("personal") / "once.txt").read_bytes() == b"only once\n"


def test_outbox_and_send_from_a_desktop_with_a_downloads_policy_wait_for_its_hold(
    service: Callable[..., QService],
) -> None:
    """web's downloads are held an hour: what it puts in its Outbox, and what is sent from
    it, waits as long (work, without a downloads policy, keeps the outbox's own hold)."""
    pol = policy(hold=3600, on_cannot_inspect="release")
    pol["send"] = {"hold": 0, "on_cannot_inspect": "release"}
    pol["outbox"] = {"hold": 0, "on_cannot_inspect": "release"}
    svc = service(pol)
    browser_save(paths.desktop_outbox("web"), "flyer.txt", b"bake sale\n")
    browser_save(paths.desktop_outbox("work"), "minutes.txt", b"minutes\n")
    web_home = paths.desktop_home("web")
    web_home.mkdir(parents=True, exist_ok=True)
    (web_home / "page.txt").write_bytes(b"saved page\n")
    with svc.client() as c:
        assert c.request("send", **{"from": "web", "to": "personal", "paths": ["page.txt"]})

    def settled() -> dict[str, dict[str, Any]] | None:
        got = {i["name"]: i for i in all_items(svc)}
        done = {"held", "released"}
        ok = len(got) == 3 and all(i["state"] in done for i in got.values())
        return got if ok else None

    got = wait_for(settled, 60, "three audited items")
    for name in ("flyer.txt", "page.txt"):
        assert got[name]["state"] == "held", got[name]
        assert got[name]["hold_until"] >= got[name]["received_at"] + 3600
    assert not (paths.shared_dir() / "flyer.txt").exists()
    assert got["minutes.txt"]["state"] == "released"
