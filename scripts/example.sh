#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the example pipelines end to end on the embedded default
# storage (.rivers/storage/ under each example's folder; the partitions example keeps everything in
# memory), printing their results.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
(cd examples/weather && ../../.venv/bin/python pipeline.py)
(cd examples/shop && ../../.venv/bin/python pipeline.py)
(cd examples/partitions && ../../.venv/bin/python pipeline.py)
