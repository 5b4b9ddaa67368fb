#!/bin/sh
# `make test`: the whole suite against the real compositor, real clients and real kernel
# facilities. Extra arguments go to pytest (make test PYTEST_ARGS="-k clipboard").
set -eu
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1
# tests make their own private runtime/config/data directories; start from a clean slate
unset WAYLAND_DISPLAY DISPLAY SWAYSOCK ZIONWM_SOCK || true
# lint and types first: they take seconds and the codebase is kept clean
.venv/bin/ruff check zionwm tests benchmarks
.venv/bin/ruff format --check --quiet zionwm tests benchmarks
.venv/bin/mypy zionwm
# the dependency rule (pyproject.toml [tool.importlinter]): names the offending import
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
