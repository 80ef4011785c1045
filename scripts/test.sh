#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: formatting and lint checks, the
# Python type check, Rust crate tests, then pytest. Builds the dev-only SurrealDB server first
# (scripts/dev-server.sh): the remote-storage tests run against it on loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${RIVERS_CARGO_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/rivers-target}}"
source scripts/dev-server.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
.venv/bin/ruff check python tests examples benchmarks
.venv/bin/mypy python/rivers
.venv/bin/python -m mypy.stubtest rivers._core --allowlist .mypy-stubtest-allowlist
cargo test --workspace --exclude rivers-python --quiet
.venv/bin/python -m pytest -q
