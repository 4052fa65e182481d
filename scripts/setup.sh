#!/usr/bin/env bash
# Create .venv and install the project from its own files. Usage: scripts/setup.sh [EXTRAS]
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python_bin="$(command -v python3.11 || command -v python3)"
if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "robustgate needs Python 3.11 (found $("$python_bin" --version))" >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    "$python_bin" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
target="."
if [ -n "$extras" ]; then target=".[$extras]"; fi
# pip prints a warning per local index folder it cannot use; keep the log readable.
.venv/bin/python -m pip install --quiet -e "$target" 2>&1 | grep -v -e "is ignored" -e "^$" || true
.venv/bin/python -c "import service, workers, verifiers, torch, onnxruntime" \
    || { echo "installation failed" >&2; exit 2; }
