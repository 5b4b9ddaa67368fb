"""Start zionwm-manager, the trusted manager, on the host socket (the `manager` command).

The manager is a host program: it gets the host's WAYLAND_DISPLAY and the control socket,
never a sandbox. One at a time: asking again while it runs is answered, not doubled.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any

log = logging.getLogger(__name__)


def start(server: Any) -> str:
    for child in server.children.running.values():
        if child.extra.get("manager"):
            return f"the manager is already open (pid {child.pid})"
    # The compositor's own environment: WAYLAND_DISPLAY is the host socket and ZIONWM_SOCK
    # the control socket (both set at start-up).
    env = dict(os.environ)
    # Without a GPU (pixman), GTK's GL renderer would fail first; go straight to cairo.
    if os.environ.get("WLR_RENDERER") == "pixman":
        env.setdefault("GSK_RENDERER", "cairo")
    argv = [sys.executable, "-m", "zionwm.manager"]
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    child = server.children.adopt(proc.pid, argv, None, proc.poll, proc.kill)
    child.extra["manager"] = True
    return f"started the manager (pid {proc.pid})"
