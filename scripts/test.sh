#!/usr/bin/env bash
# The test command: creates .venv if needed, installs ci-risk with its test
# extra the way pre-commit installs a hook (non-editable: the tests exercise
# the installed package, bundled model included), and runs the whole suite.
# PostgreSQL tests use CI_RISK_TEST_POSTGRES_URL when it is set and are
# skipped (visibly) otherwise; with CI=true any skipped test fails the run.
# `--install-only`: stop after installing (.ci/run installs while it installs the browser).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
# pip always reinstalls a project given as a directory, even at the installed version: one install suffices.
.venv/bin/python -m pip install --quiet --disable-pip-version-check '.[test]'
rm -rf build  # setuptools' scratch directory from the non-editable build
if [ "${1:-}" = "--install-only" ]; then
    exit 0
fi
# The checks CI runs too (the same as .pre-commit-config.yaml): lint, format, types.
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
.venv/bin/mypy
# pytest's own script, not `python -m pytest`: that would put the checkout first on sys.path.
# Two workers (pytest-xdist), each taking a whole test file at a time, so a module's fixtures (a venv,
# a browser) are built once; the slowest files first, in tests/conftest.py's order (--no-loadscope-reorder);
# `-n 0` among the arguments runs everything in one process.
exec .venv/bin/pytest --numprocesses 2 --dist loadfile --no-loadscope-reorder "$@"
