"""Chromium's own sandbox, running inside the web desktop's (nested_sandbox=True).

The browser is Debian's chromium, started with `zionctl launch` in a real headless zionwm,
without --no-sandbox. From the host the test then reads what the kernel says about its
processes: each renderer sits in user, PID and network namespaces of its own below the
desktop's, and under more seccomp filters than the desktop's one. The attacks check what the
nested-sandbox grant does not open: no mount namespace, no mounts, no setns, and desktops
without the grant cannot make a user namespace at all.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from tests.harness import Compositor, wait_for

CHROMIUM = "/usr/lib/chromium/chromium"  # the /usr/bin wrapper reads /etc/chromium.d

CONFIG = """\
from zionwm.config import Network, desktop
desktop("web", colour="#ef4444", nested_sandbox=True)
desktop("work", colour="#22c55e")
"""


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry))
    return out


def _tree(pid: int) -> list[int]:
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    return seen


def _cmdline(pid: int) -> list[str]:
    """Its arguments; Chromium's children rewrite theirs as one space-separated string."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return []
    return raw.replace("\0", " ").split()


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _ns(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def _browser(marker: str) -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = _cmdline(int(entry))
            ours = argv and argv[0] == CHROMIUM and any(marker in a for a in argv)
            if ours and not any(a.startswith("--type=") for a in argv):
                return int(entry)
    return None


@pytest.fixture
def comp(make_compositor):  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail(
            "Debian's chromium package is not installed"
            " (scripts/setup-system.sh installs it: a broken set-up)"
        )
    return make_compositor(CONFIG)


@pytest.mark.slow
@pytest.mark.security
def test_chromium_runs_with_its_own_sandbox_inside_the_web_desktop(comp: Compositor) -> None:
    marker = f"/tmp/zt-chromium-{uuid.uuid4().hex}"
    comp.zionctl(
        "launch",
        "web",
        "--",
        CHROMIUM,
        "--headless=new",
        "--no-first-run",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={marker}",
        "data:text/html,<p>sandboxed</p>",
    )
    browser = wait_for(lambda: _browser(marker), 60, "chromium's browser process")

    def renderers() -> list[int]:
        return [p for p in _tree(browser) if "--type=renderer" in _cmdline(p)]

    found = wait_for(renderers, 60, "a renderer process")
    argv = _cmdline(browser)
    assert "--no-sandbox" not in argv
    outer = _status(browser)
    own_filters = int(outer["Seccomp_filters"])
    assert outer["Seccomp"] == "2" and own_filters >= 1  # the desktop's filter
    for pid in found:
        # A renderer is named once the zygote forks it and stacks its own seccomp-bpf
        # layer a moment later, on top of the desktop's filter: wait for that layer.
        def layered(pid: int = pid) -> dict[str, str] | None:
            st = _status(pid)
            return st if int(st["Seccomp_filters"]) > own_filters else None

        st = wait_for(layered, 30, f"chromium's seccomp layer in renderer {pid}")
        assert st["Seccomp"] == "2"
        # Chromium's layer-1 sandbox: namespaces of its own below the desktop's.
        for kind in ("user", "pid", "net"):
            assert _ns(pid, kind) != _ns(browser, kind), kind
        # one PID namespace deeper than the browser
        assert len(st["NSpid"].split()) > len(outer["NSpid"].split())
        assert "--no-sandbox" not in _cmdline(pid)
    # the desktop's own namespaces are still those of every Chromium process
    assert _ns(browser, "mnt") != _ns(os.getpid(), "mnt")
    log = comp.zionctl("log", "web").stdout
    assert "No usable sandbox" not in log


ESCAPES = r"""
out=$HOME/$1
: > "$out"
try() {
    if "$@" >/dev/null 2>&1; then v=allowed; else v=refused; fi
    echo "$*: $v" >> "$out"
}
try unshare --user true
try unshare --user --map-root-user --mount true
try unshare --user --map-root-user --uts true
try unshare --user --map-root-user --ipc true
try unshare --user --map-root-user --cgroup true
try unshare --user --map-root-user sh -c 'mount -t tmpfs none /tmp'
try unshare --user --map-root-user sh -c 'mount --bind / /tmp'
try unshare --user --map-root-user nsenter -t 1 -m true
try unshare --user --map-root-user --net nft add table inet zt
echo done >> "$out"
"""


def _escapes(comp: Compositor, desktop: str) -> dict[str, str]:
    name = f"escapes-{uuid.uuid4().hex}.txt"
    comp.zionctl("launch", desktop, "--", "/bin/sh", "-c", ESCAPES, "sh", name)
    out = comp.desktop_home(desktop) / name

    def done() -> str:
        text = out.read_text() if out.exists() else ""
        return text if text.endswith("done\n") else ""

    text = wait_for(done, 30, f"the probe in {desktop} to finish")
    result = {}
    for line in text.splitlines()[:-1]:
        what, _, verdict = line.rpartition(": ")
        result[what] = verdict
    return result


@pytest.mark.security
def test_the_nested_sandbox_grant_opens_user_namespaces_only(comp: Compositor) -> None:
    """In web a program may make a user namespace (Chromium's layer 1 needs it), but no
    mount, UTS, IPC or cgroup namespace, no mount, no setns, and even as root of a network
    namespace of its own no netfilter (the usual way from a user namespace into the kernel);
    work may make none."""
    web = _escapes(comp, "web")
    assert web["unshare --user true"] == "allowed", web
    refused = {k: v for k, v in web.items() if k != "unshare --user true"}
    assert set(refused.values()) == {"refused"}, web
    work = _escapes(comp, "work")
    assert set(work.values()) == {"refused"}, work
