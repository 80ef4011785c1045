#!/usr/bin/env bash
# Builds the dev-only SurrealDB server (tools/surreal-dev-server) used by the remote-storage
# tests and exports its path as RIVERS_SURREAL_SERVER. Source it: `source scripts/dev-server.sh`.
#
# It is a member of the rivers workspace built into the same target directory
# (~/.cache/rivers-target unless RIVERS_CARGO_TARGET_DIR is set) with the extension's dependency
# features (tools/workspace-hack), so after `scripts/setup.sh` only the server's own crates are
# left to compile, and a second run is a no-op.
_rivers_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_rivers_target="${RIVERS_CARGO_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/rivers-target}}"
CARGO_TARGET_DIR="$_rivers_target" cargo build --quiet --locked \
    --manifest-path "$_rivers_root/Cargo.toml" -p surreal-dev-server || return 1 2>/dev/null || exit 1
export RIVERS_SURREAL_SERVER="$_rivers_target/debug/surreal-dev-server"
unset _rivers_root _rivers_target
