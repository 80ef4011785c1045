#!/usr/bin/env bash
# Fails when two builds of the workspace would compile a shared dependency with different
# features: the extension (`maturin develop`, rivers-python alone), the crate tests (`cargo test`
# without the extension) and the dev-only SurrealDB server. A difference means that dependency,
# and everything above it (surrealdb-core among them), is compiled twice; fix it by adding the
# crate with the union of its features to tools/workspace-hack/Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
target="$(rustc -vV | sed -n 's/^host: //p')"
tree() { cargo tree --locked --target "$target" --prefix none -f '{p}|{f}' "$@"; }
ext="$(tree -p rivers-python -e normal,build)"
server="$(tree -p surreal-dev-server -e normal,build)"
tests="$(tree --workspace --exclude rivers-python --exclude surreal-dev-server -e normal,build,dev)"
EXT="$ext" SERVER="$server" TESTS="$tests" python3 - <<'PY'
import os
import sys

# Our own crates may differ (the tests enable their `testing` features): they are small.
OURS = ("rivers-",)


def features(text: str) -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = {}
    for line in text.splitlines():
        package, _, names = line.partition("|")
        package = package.split(" (")[0].strip()
        wanted = found.setdefault(package, set())
        wanted.update(n.replace(" (*)", "").strip() for n in names.split(",") if n.replace(" (*)", "").strip())
    return {package: frozenset(names) for package, names in found.items()}


builds = {name: features(os.environ[name]) for name in ("EXT", "SERVER", "TESTS")}
drift = []
for package in sorted(set().union(*builds.values())):
    if package.startswith(OURS):
        continue
    sets = {name: tree[package] for name, tree in builds.items() if package in tree}
    if len(set(sets.values())) > 1:
        union = frozenset().union(*sets.values())
        missing = {name: sorted(union - names) for name, names in sets.items() if union - names}
        drift.append(f"  {package}: union {sorted(union)}; missing {missing}")
if drift:
    print("dependencies built with different features (add them to tools/workspace-hack):")
    print("\n".join(drift))
    sys.exit(1)
PY
