#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: formatting and lint checks, the
# Python type check, Rust crate tests, then pytest. Checks first that every build of the
# workspace selects the same dependency features (scripts/check-features.sh: otherwise SurrealDB
# is compiled more than once), and builds the dev-only SurrealDB server (scripts/dev-server.sh):
# the remote-storage tests run against it on loopback ports. Each stage prints its duration.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${RIVERS_CARGO_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/rivers-target}}"

stage() {
    local started=$SECONDS
    "$@"
    echo "[test.sh] $* took $((SECONDS - started)) s" >&2
}

stage bash scripts/check-features.sh
stage bash scripts/setup.sh
started=$SECONDS
source scripts/dev-server.sh
echo "[test.sh] dev server build took $((SECONDS - started)) s" >&2
stage cargo fmt --all -- --check
stage cargo clippy --workspace --exclude surreal-dev-server --all-targets --quiet -- -D warnings
stage .venv/bin/ruff check python tests examples benchmarks
stage .venv/bin/mypy python/rivers
stage .venv/bin/python -m mypy.stubtest rivers._core --allowlist .mypy-stubtest-allowlist
stage cargo test --workspace --exclude rivers-python --exclude surreal-dev-server --lib --tests --quiet
stage .venv/bin/python -m pytest -q
