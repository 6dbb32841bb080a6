#!/usr/bin/env bash
# The test command: creates .venv if needed, installs ci-risk with its test
# extra, and runs the whole suite. PostgreSQL tests use
# CI_RISK_TEST_POSTGRES_URL when it is set and are skipped (visibly) otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"
