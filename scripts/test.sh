#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: Rust crate tests, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${RIVERS_CARGO_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/rivers-target}}"
cargo test --workspace --exclude rivers-python --quiet
.venv/bin/python -m pytest -q
