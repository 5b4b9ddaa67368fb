"""Build the native audit zygote: `python zionwm/quarantine/native/build.py` (the Makefile's
set-up does). Needs gcc and the headers of libmagic and libyara (libmagic-dev, libyara-dev)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    out = HERE / "audit-zygote"
    tmp = out.with_suffix(".tmp")
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-D_FORTIFY_SOURCE=2", "-fstack-protector-strong"]
    # every symbol bound at start: a child would otherwise resolve each one it calls again
    cmd += ["-Wl,-z,now"]
    cmd += ["-o", str(tmp), str(HERE / "audit_zygote.c"), "-lmagic", "-lyara", "-lm"]
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        print("native audit zygote not built: the Python zygote audits every file", file=sys.stderr)
        return 0  # optional: the quarantine works without it
    tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
