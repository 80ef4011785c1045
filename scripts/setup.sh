#!/usr/bin/env bash
# Sets up a fresh machine for rivers: system packages the Rust dependencies need, a virtualenv at
# .venv with the Python dependencies, and the native extension built into it.
#
# The Rust build directory defaults to ~/.cache/rivers-target (outside the clone) so repeated
# setups and CI runs are incremental; override it with RIVERS_CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${RIVERS_CARGO_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/rivers-target}}"

need_packages=()
command -v clang >/dev/null 2>&1 || need_packages+=(clang)
[ -e /usr/lib/llvm-14/lib/libclang.so ] || ls /usr/lib/llvm-*/lib/libclang*.so >/dev/null 2>&1 || need_packages+=(libclang-dev)
command -v pkg-config >/dev/null 2>&1 || need_packages+=(pkg-config)
command -v cmake >/dev/null 2>&1 || need_packages+=(cmake)
if [ ${#need_packages[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_packages[@]}"
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "maturin>=1.7,<2"
# Build the extension into the virtualenv with the runtime and test dependencies (dev profile:
# dependencies at opt-level 3, our crates at 2).
VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --quiet --extras test
