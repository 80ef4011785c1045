#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the example pipeline end to end on the embedded default
# storage (.rivers/storage/ under examples/weather), printing its results.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cd examples/weather
../../.venv/bin/python pipeline.py
