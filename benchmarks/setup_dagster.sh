#!/usr/bin/env bash
# Create the virtualenv the benchmark suite uses for the Dagster side.
#
# Dagster lives in its own interpreter so that its (large) dependency tree can
# never leak into, or be shadowed by, the rivers development environment, and so
# that `import dagster` timings are not polluted by rivers' packages.
#
# Usage: bash benchmarks/setup_dagster.sh [VENV_DIR]
# Default VENV_DIR: ${DAGSTER_VENV:-$HOME/.cache/rivers-bench/dagster-venv}
set -euo pipefail

VENV_DIR="${1:-${DAGSTER_VENV:-$HOME/.cache/rivers-bench/dagster-venv}}"
PYTHON="${PYTHON:-python3}"
# Pin loosely so figures stay comparable across runs; override with DAGSTER_SPEC.
DAGSTER_SPEC="${DAGSTER_SPEC:-dagster>=1.8,<2}"

if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    echo "creating virtualenv at $VENV_DIR"
    mkdir -p "$(dirname "$VENV_DIR")"
    "$PYTHON" -m venv "$VENV_DIR"
fi

"$VENV_DIR/bin/python" -m pip install --quiet --upgrade pip
"$VENV_DIR/bin/python" -m pip install --quiet "$DAGSTER_SPEC"
"$VENV_DIR/bin/python" -c "import dagster; print('dagster', dagster.__version__, 'ready in $VENV_DIR')"
