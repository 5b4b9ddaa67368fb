"""A download in the web desktop, end to end: real wget with --xattr inside the sandbox
(from an HTTP server inside the same sandbox's own network namespace), the inbox bound as
~/Downloads, the real quarantine service, real clamd with a test database, and release into
the destination desktop — or rejection with the user told."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Compositor, wait_for
from tests.system.clamd_fixture import EICAR, Clamd, clamd  # noqa: F401 (fixture)
from zionwm.quarantine.engines import DEFAULT_CLAMD_SOCKET

CONFIG = """\
from zionwm.config import desktop, Downloads, settings
desktop("personal", colour="#3b82f6")
desktop("web", colour="#ef4444", ephemeral=True,
        downloads=Downloads(release_to="personal", hold=0))
settings(clamd_socket={sock!r})
"""


def _download(comp: Compositor, name: str, content: bytes) -> None:
    """Serve `content` inside the web sandbox and fetch it with wget --xattr into
    ~/Downloads, as a browser would (wget retries until the server is up)."""
    octal = "".join(f"\\{b:03o}" for b in content)
    script = (
        "mkdir -p /tmp/srv && cd /tmp/srv && "
        f"printf '{octal}' > {name} && "
        "(/usr/bin/python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1 &) && "
        # wait for the server (bounded) so wget's own retries never leave an empty file
        "i=0; until wget -q -O /dev/null http://127.0.0.1:8000/; do "
        "i=$((i+1)); [ $i -gt 200 ] && exit 1; sleep 0.05; done; "
        f"wget -q --xattr -O ~/Downloads/{name} http://127.0.0.1:8000/{name}"
    )
    comp.zionctl("launch", "web", "--", "sh", "-c", script)


def _items(comp: Compositor) -> list[dict[str, Any]]:
    out = comp.zionctl("quarantine", "--json", "list", "--all").stdout
    data = json.loads(out)
    return list(data["items"] if isinstance(data, dict) else data)


@pytest.mark.security
def test_clean_download_is_released_with_its_origin_and_eicar_is_kept(
    make_compositor: Any,
    clamd: Clamd,  # noqa: F811 (the fixture imported above)
) -> None:
    comp = make_compositor(CONFIG.format(sock=clamd.socket_path))
    released = comp.desktop_home("personal") / "Downloads"

    _download(comp, "notes.txt", b"meeting at noon\n")
    target = released / "notes.txt"
    wait_for(target.exists, 60, "the clean download to be released into personal")
    assert target.read_bytes() == b"meeting at noon\n"
    assert os.getxattr(target, "user.xdg.origin.url") == b"http://127.0.0.1:8000/notes.txt"
    audit = json.loads(os.getxattr(target, "user.zionwm.audit"))
    assert audit["verdict"] == "clean"
    assert not target.stat().st_mode & 0o111

    _download(comp, "eicar.com", EICAR)
    wait_for(
        lambda: [i for i in _items(comp) if i["name"] == "eicar.com" and i["state"] == "rejected"],
        60,
        "EICAR to be rejected",
    )
    (item,) = [i for i in _items(comp) if i["name"] == "eicar.com"]
    assert item["verdict"] == "malicious"
    assert not (released / "eicar.com").exists()
    wait_for(
        lambda: any("eicar.com" in n for n in comp.zjson("status")["notifications"]),
        10,
        "the user to be told",
    )
    assert comp.desktops()  # the compositor kept running throughout


def test_quarantine_service_is_restarted_after_a_crash(make_compositor: Any) -> None:
    import signal

    comp = make_compositor(
        CONFIG.format(sock=None).replace(
            "settings(clamd_socket=None)", 'settings(antivirus="if-available")'
        )
    )
    pid = wait_for(lambda: comp.zjson("status")["quarantine"]["pid"], 20, "the service")
    wait_for(lambda: comp.zjson("status")["quarantine"]["running"], 20, "the service ready")
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: (
            comp.zjson("status")["quarantine"]["pid"] not in (None, pid)
            and comp.zjson("status")["quarantine"]["running"]
        ),
        20,
        "a new quarantine service",
    )
    _download(comp, "after.txt", b"still works\n")
    target = comp.desktop_home("personal") / "Downloads" / "after.txt"
    wait_for(target.exists, 60, "a download after the restart to be released")


@pytest.fixture(autouse=True)
def _no_stray_home(tmp_path: Path) -> None:
    assert not Path(tmp_path, "data").exists()


SERVER = (
    "import http.server as h\n"
    "class H(h.SimpleHTTPRequestHandler):\n"
    "    def end_headers(self):\n"
    "        self.send_header('Content-Disposition', 'attachment; filename=report.txt')\n"
    "        super().end_headers()\n"
    "h.ThreadingHTTPServer(('127.0.0.1', 8000), H).serve_forever()\n"
)


@pytest.mark.slow
def test_a_real_browser_in_the_web_desktop_downloads_through_quarantine(
    make_compositor: Any,
) -> None:
    """Debian's Chromium runs inside the web desktop's sandbox (our sandbox replaces its
    own, which needs namespaces the sandbox's seccomp filter denies: --no-sandbox), shows a
    window on the web desktop, and what it downloads reaches personal only via quarantine."""
    import shutil

    chromium = "/usr/lib/chromium/chromium"  # the /usr/bin wrapper reads /etc/chromium.d
    if not Path(chromium).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium package is not installed")
    comp = make_compositor(
        CONFIG.format(sock=None).replace(
            "settings(clamd_socket=None)", 'settings(antivirus="if-available")'
        )
    )
    comp.zionctl("switch", "web")
    script = (
        "mkdir -p /tmp/srv && cd /tmp/srv && printf 'quarterly numbers\\n' > report.txt && "
        f'(/usr/bin/python3 -c "{SERVER}" &) && '
        "i=0; until wget -q -O /dev/null http://127.0.0.1:8000/; do "
        "i=$((i+1)); [ $i -gt 200 ] && exit 1; sleep 0.05; done; "
        f"exec {chromium} --no-sandbox --ozone-platform=wayland --no-first-run "
        "--disable-background-networking --disable-component-update --disable-sync "
        "--user-data-dir=/tmp/profile http://127.0.0.1:8000/report.txt"
    )
    comp.zionctl("launch", "web", "--", "sh", "-c", script)
    (win,) = comp.wait_window("web", "chromium-browser", timeout=60)
    assert win["desktop"] == "web"
    target = comp.desktop_home("personal") / "Downloads" / "report.txt"
    wait_for(target.exists, 90, "the browser's download to be audited and released")
    assert target.read_bytes() == b"quarterly numbers\n"
    audit = json.loads(os.getxattr(target, "user.zionwm.audit"))
    # no clamd in this test, unless one runs at the usual place
    assert audit["verdict"] == (
        "clean" if os.path.exists(DEFAULT_CLAMD_SOCKET) else "no-antivirus-scan"
    )
    # nothing of it is left in the web desktop
    inbox = comp.data / "zionwm" / "desktops" / "web"
    assert not [p for p in inbox.rglob("report.txt*")]
