#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: formatting and lint checks, the
# Python type check, Rust crate tests, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${RIVERS_CARGO_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/rivers-target}}"
cargo fmt --all -- --check
.venv/bin/ruff check python tests examples benchmarks
.venv/bin/mypy python/rivers
.venv/bin/python -m mypy.stubtest rivers._core --allowlist .mypy-stubtest-allowlist
cargo test --workspace --exclude rivers-python --quiet
.venv/bin/python -m pytest -q
