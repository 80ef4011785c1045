#!/usr/bin/env bash
# Builds the dev-only SurrealDB server (tools/surreal-dev-server) used by the remote-storage
# tests and exports its path as RIVERS_SURREAL_SERVER. Source it: `source scripts/dev-server.sh`.
#
# It is a member of the rivers workspace built into the same target directory
# (~/.cache/rivers-target unless RIVERS_CARGO_TARGET_DIR is set) with the extension's dependency
# features (tools/workspace-hack), so after `scripts/setup.sh` only the server's own crate is left
# to compile. That crate instantiates the whole generic server (minutes on 2 cores), and cargo
# recompiles it in every fresh clone (its source is newer than the last build), so the binary is
# kept under a name derived from everything it is built from and reused while that is unchanged.
_rivers_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_rivers_target="${RIVERS_CARGO_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/rivers-target}}"
_rivers_inputs=(Cargo.lock Cargo.toml tools/surreal-dev-server/Cargo.toml tools/surreal-dev-server/src/main.rs
    tools/workspace-hack/Cargo.toml)
_rivers_key="$(cd "$_rivers_root" && cat "${_rivers_inputs[@]}" | sha256sum | cut -c1-16)"
_rivers_server="$_rivers_target/dev-server/surreal-dev-server-$_rivers_key"
if [ ! -x "$_rivers_server" ]; then
    CARGO_TARGET_DIR="$_rivers_target" cargo build --quiet --locked \
        --manifest-path "$_rivers_root/Cargo.toml" -p surreal-dev-server || return 1 2>/dev/null || exit 1
    mkdir -p "$_rivers_target/dev-server"
    cp "$_rivers_target/debug/surreal-dev-server" "$_rivers_server.tmp" && mv "$_rivers_server.tmp" "$_rivers_server"
fi
export RIVERS_SURREAL_SERVER="$_rivers_server"
unset _rivers_root _rivers_target _rivers_inputs _rivers_key _rivers_server
