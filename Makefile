# zionwm: `make run` and `make test` each set up a fresh Debian 12 machine by themselves.
# Set-up steps leave stamps in .stamps/, so a second run starts at once.

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMPS := .stamps
NATIVE_SRC := zionwm/compositor/native/build.py zionwm/compositor/native/cdefs.h \
              zionwm/compositor/native/zionwm_native.c zionwm/compositor/native/zionwm_native.h \
              zionwm/compositor/native/text.c zionwm/compositor/native/text.h \
              zionwm/compositor/native/occlusion.c zionwm/compositor/native/occlusion.h \
              zionwm/quarantine/native/audit_zygote.c zionwm/quarantine/native/build.py
PYTEST_ARGS ?=

PREFIX  ?= /usr/local
DESTDIR ?=

.PHONY: all setup run test lint typecheck check bench clean install uninstall

all: setup

setup: $(STAMPS)/native

$(STAMPS)/system: scripts/setup-system.sh
	@mkdir -p $(STAMPS)
	sh scripts/setup-system.sh --with-tests
	@touch $@

# pywayland/pywlroots/xkbcommon must be built from source against the system libwayland and
# libwlroots: their binary wheels bundle private copies that segfault when mixed.
$(STAMPS)/venv: $(STAMPS)/system pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip setuptools wheel "cffi>=1.17"
	$(VPY) -m pip install -q --no-binary pywayland,pywlroots,xkbcommon \
	    "pywayland==0.4.17" "pywlroots==0.15.24" "xkbcommon==1.5.1"
	$(VPY) -m pip install -q --no-binary pywayland,pywlroots,xkbcommon -e ".[test,manager]"
	@touch $@

$(STAMPS)/native: $(STAMPS)/venv $(NATIVE_SRC) zionwm/isolation/enter.c scripts/build-enter.sh
	$(VPY) zionwm/compositor/native/build.py
	$(VPY) zionwm/quarantine/native/build.py
	sh scripts/build-enter.sh
	@touch $@

run: setup
	sh scripts/run.sh

test: setup
	sh scripts/test.sh $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check zionwm tests benchmarks
	$(VENV)/bin/ruff format --check zionwm tests benchmarks

typecheck: setup
	$(VENV)/bin/mypy zionwm

check: lint typecheck

$(STAMPS)/bench: $(STAMPS)/venv
	$(VPY) -m pip install -q -e ".[bench]"
	@touch $@

bench: setup $(STAMPS)/bench
	$(VPY) -m benchmarks.run

clean:
	rm -rf $(STAMPS) build *.egg-info zionwm/compositor/native/_zionwm_native* \
	    zionwm/isolation/zionwm-enter

# ---- install / uninstall ---------------------------------------------------------------
# `make install` puts a private Python environment in $(PREFIX)/lib/zionwm (the zionwm package
# with the native module, plus its runtime dependencies copied from $(VENV), which `make
# setup` built from source against this system's libwlroots and libwayland), launchers for
# the commands in $(PREFIX)/bin, the session entry and program, and the default config
# template. It runs neither apt nor pip, so it also works as a packaging step:
#     make install DESTDIR=$(pkgdir) PREFIX=/usr
# No file content depends on DESTDIR. `make uninstall` (same PREFIX and DESTDIR) removes
# exactly what install put there. INSTALL_PYTHON is the interpreter the installed commands
# run with: the venv's base interpreter, whose ABI the copied extension modules match.
# INSTALL_EXTRA_DEPS: extra modules to copy beside the declared runtime dependencies.
BINDIR   = $(PREFIX)/bin
DATADIR  = $(PREFIX)/share
ZLIBDIR  = $(PREFIX)/lib/zionwm
SESSIONS = $(DATADIR)/wayland-sessions
INSTALL_PYTHON ?= $(shell $(VPY) -c 'import sys; print(sys._base_executable)' 2>/dev/null)
INSTALLED_LIST  = $(ZLIBDIR)/installed-files
# zionwm-manager's toolkit bindings, when the venv has them (the `manager` extra)
INSTALL_EXTRA_DEPS ?= $(shell $(VPY) -c 'import importlib.metadata as m; m.version("pygobject"); print("pygobject")' 2>/dev/null)
MANAGER_DATA = zionwm/manager/data
APPS     = $(DATADIR)/applications
ICONS    = $(DATADIR)/icons/hicolor/scalable/apps

# Runs under $(VPY): argv = DESTDIR ZLIBDIR BINDIR INSTALL_PYTHON [EXTRA_DEP...].
define ZIONWM_INSTALL_TREE
import importlib.metadata as md, shutil, sys, sysconfig, tomllib
from pathlib import Path
try:
    from packaging.requirements import Requirement
except ImportError:  # a venv without the test extras: pip carries its own copy
    from pip._vendor.packaging.requirements import Requirement
destdir, zlib, bindir, python = sys.argv[1:5]
root = Path(destdir + zlib)
ver = sysconfig.get_python_version()
site = root / "lib" / f"python{ver}" / "site-packages"
site.mkdir(parents=True)
(root / "bin").mkdir()
(root / "bin" / "python").symlink_to(python)
(root / "pyvenv.cfg").write_text(
    f"home = {Path(python).parent}\ninclude-system-site-packages = false\nversion = {ver}\n")
project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
# runtime dependencies only (no extras), transitively, as installed in the venv
todo = [Requirement(r) for r in project["dependencies"] + sys.argv[5:]]
seen = set()
while todo:
    req = todo.pop()
    if req.marker and not req.marker.evaluate({"extra": ""}):
        continue
    dist = md.distribution(req.name)
    if dist.metadata["Name"].lower() in seen:
        continue
    seen.add(dist.metadata["Name"].lower())
    todo += [Requirement(r) for r in dist.requires or []]
    for f in dist.files or []:
        src = Path(dist.locate_file(f))
        if f.parts[0] == ".." or "__pycache__" in f.parts or not src.is_file():
            continue  # their own command-line tools and bytecode are not needed
        (site / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, site / f)
shutil.copytree("zionwm", site / "zionwm",
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
listed = []
for name, target in project["scripts"].items():
    module, func = target.split(":")
    path = Path(destdir + bindir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    # -I: a trusted program ignores PYTHONPATH and the user's site directory
    path.write_text(f"#!{zlib}/bin/python -I\nimport sys\nfrom {module} import {func}\n"
                    f"sys.exit({func}())\n")
    path.chmod(0o755)
    listed.append(f"{bindir}/{name}")
(root / "installed-files").write_text("".join(p + "\n" for p in listed))
print(f"installed {len(seen)} runtime dependencies and zionwm in {zlib}")
endef
export ZIONWM_INSTALL_TREE

install:
	@test -x $(VPY) && ls zionwm/compositor/native/_zionwm_native*.so >/dev/null 2>&1 || \
	    { echo "make install: run 'make setup' first (it builds $(VENV) and the native" \
	           "module that get installed)" >&2; exit 1; }
	@test -n "$(INSTALL_PYTHON)" || { echo "make install: INSTALL_PYTHON is unknown" >&2; exit 1; }
	rm -rf "$(DESTDIR)$(ZLIBDIR)"
	$(VPY) -c "$$ZIONWM_INSTALL_TREE" "$(DESTDIR)" "$(ZLIBDIR)" "$(BINDIR)" "$(INSTALL_PYTHON)" \
	    $(INSTALL_EXTRA_DEPS)
	mkdir -p "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(SESSIONS)" "$(DESTDIR)$(DATADIR)/zionwm"
	sed '1s|^#!.*|#!$(ZLIBDIR)/bin/python -I|' session/zionwm-session \
	    > "$(DESTDIR)$(BINDIR)/zionwm-session"
	chmod 755 "$(DESTDIR)$(BINDIR)/zionwm-session"
	sed -e 's|^Exec=.*|Exec=$(BINDIR)/zionwm-session|' \
	    -e 's|^TryExec=.*|TryExec=$(BINDIR)/zionwm-session|' \
	    session/zionwm.desktop > "$(DESTDIR)$(SESSIONS)/zionwm.desktop"
	chmod 644 "$(DESTDIR)$(SESSIONS)/zionwm.desktop"
	install -m 644 zionwm/default_config.py "$(DESTDIR)$(DATADIR)/zionwm/config.py"
	printf '%s\n' "$(BINDIR)/zionwm-session" "$(SESSIONS)/zionwm.desktop" \
	    "$(DATADIR)/zionwm/config.py" >> "$(DESTDIR)$(INSTALLED_LIST)"
	mkdir -p "$(DESTDIR)$(APPS)" "$(DESTDIR)$(ICONS)"
	sed -e 's|^Exec=.*|Exec=$(BINDIR)/zionwm-manager|' \
	    -e 's|^TryExec=.*|TryExec=$(BINDIR)/zionwm-manager|' \
	    $(MANAGER_DATA)/org.zionwm.Manager.desktop > "$(DESTDIR)$(APPS)/org.zionwm.Manager.desktop"
	chmod 644 "$(DESTDIR)$(APPS)/org.zionwm.Manager.desktop"
	install -m 644 $(MANAGER_DATA)/org.zionwm.Manager.svg "$(DESTDIR)$(ICONS)/org.zionwm.Manager.svg"
	printf '%s\n' "$(APPS)/org.zionwm.Manager.desktop" "$(ICONS)/org.zionwm.Manager.svg" \
	    >> "$(DESTDIR)$(INSTALLED_LIST)"

uninstall:
	@if [ -f "$(DESTDIR)$(INSTALLED_LIST)" ]; then \
	    while IFS= read -r f; do \
	        case "$$f" in "$(PREFIX)"/*) rm -f "$(DESTDIR)$$f" ;; esac; \
	    done < "$(DESTDIR)$(INSTALLED_LIST)"; \
	else \
	    echo "make uninstall: no $(DESTDIR)$(INSTALLED_LIST); nothing listed to remove" >&2; \
	fi
	rm -rf "$(DESTDIR)$(ZLIBDIR)"
	rmdir "$(DESTDIR)$(DATADIR)/zionwm" "$(DESTDIR)$(SESSIONS)" 2>/dev/null || true
	@# the applications directory is shared with every other program: it stays
	d="$(ICONS)"; while [ "$$d" != "$(DATADIR)" ] && rmdir "$(DESTDIR)$$d" 2>/dev/null; \
	    do d=$$(dirname "$$d"); done
ifneq ($(DESTDIR),)
	@# a staging tree: also remove the directories install created there, if now empty
	rmdir "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(PREFIX)/lib" "$(DESTDIR)$(DATADIR)" 2>/dev/null || true
	d="$(PREFIX)"; while [ -n "$$d" ] && [ "$$d" != / ] && rmdir "$(DESTDIR)$$d" 2>/dev/null; \
	    do d=$$(dirname "$$d"); done
endif
