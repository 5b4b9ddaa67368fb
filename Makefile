# zionwm: `make run` and `make test` each set up a fresh Debian 12 machine by themselves.
# Set-up steps leave stamps in .stamps/, so a second run starts at once.

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMPS := .stamps
NATIVE_SRC := zionwm/compositor/native/build.py zionwm/compositor/native/cdefs.h
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
	$(VPY) -m pip install -q --no-binary pywayland,pywlroots,xkbcommon -e ".[test]"
	@touch $@

$(STAMPS)/native: $(STAMPS)/venv $(NATIVE_SRC)
	$(VPY) -m zionwm.compositor.native.build
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

bench: setup
	$(VPY) -m benchmarks.run

clean:
	rm -rf $(STAMPS) build *.egg-info zionwm/compositor/native/_zionwm_native*
