//! No code: this crate exists for its `Cargo.toml`, which unifies dependency features across
//! the workspace so that SurrealDB and its dependencies are compiled once (see the manifest).
