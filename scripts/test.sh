#!/usr/bin/env bash
# Install everything the tests need into .venv and run lint, types and tests.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${CALCIMG_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[test,all]"
echo "== ruff"
"$VENV/bin/ruff" check --no-cache src tests scripts
"$VENV/bin/ruff" format --no-cache --check src tests scripts
echo "== mypy"
"$VENV/bin/mypy"
echo "== pytest"
"$VENV/bin/python" -m pytest "$@"
