#!/usr/bin/env bash
# The oldest Python ci-risk supports (python_requires >= 3.9): a fresh default install
# (what pre-commit installs) scores a push with the bundled model and records an outcome.
# Usage: bash scripts/oldest_python.sh PATH-TO-PYTHON3.9
set -euo pipefail
PYTHON=${1:?usage: oldest_python.sh PATH-TO-PYTHON}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Installed from a copy: pip builds a project in its own directory (build/, *.egg-info), and .ci/run runs
# this beside scripts/test.sh's install of the same checkout. The copy holds the tracked files only: the
# checkout's top directory gains .venv, build/ and caches meanwhile, and tar fails on a directory that
# changes while it reads it ("file changed as we read it" failed a CI run).
mkdir "$work/src"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$work/src"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$work/src"
export CI_RISK_HOME="$work/home" GIT_CONFIG_GLOBAL="$work/gitconfig" GIT_CONFIG_NOSYSTEM=1
git config --file "$work/gitconfig" user.name "Oldest Python"
git config --file "$work/gitconfig" user.email "oldest@example.com"
git init -q -b main "$work/repo"
cd "$work/repo"
git commit -q --allow-empty -m "start"
printf 'x = 1\n' > app.py && git add app.py && git commit -q -m "add app"
out=$("$work/venv/bin/ci-risk" check --from HEAD~1 --strict)
case "$out" in
    "ci-risk: risk "*) ;;
    *) echo "oldest Python: check did not score: $out" >&2; exit 1 ;;
esac
"$work/venv/bin/ci-risk" record --status pass --db "$work/home/history.sqlite" >/dev/null
echo "oldest Python ($("$PYTHON" --version 2>&1)): default install scores a push and records an outcome"
