#!/usr/bin/env bash
# Install calcimg into .venv and analyse the bundled sample_dicoms/ into out/.
# Usage: bash scripts/demo.sh [extra calcimg analyze options...]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${CALCIMG_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e .
# the films only: the truth masks beside them are PNGs that a folder walk would read
"$VENV/bin/calcimg" analyze sample_dicoms/*.dcm --out out "$@"
