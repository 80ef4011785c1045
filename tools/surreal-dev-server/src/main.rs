//! `surreal-dev-server start [OPTIONS] [PATH]`: the official SurrealDB server's command line
//! (`surreal start --bind 127.0.0.1:PORT --user root --pass root memory`), for tests only.

// SurrealDB's deeply nested async expression evaluator exceeds the default query depth when
// its layout is computed in this crate (the server crate raises the same limit).
#![recursion_limit = "256"]

fn main() -> std::process::ExitCode {
    surrealdb_server::init(surrealdb_server::core::CommunityComposer())
}
