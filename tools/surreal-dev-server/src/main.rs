//! `surreal-dev-server start [OPTIONS] [PATH]`: the official SurrealDB server's command line
//! (`surreal start --bind 127.0.0.1:PORT --user root --pass root memory`), for tests only.

fn main() -> std::process::ExitCode {
    surrealdb_server::init(surrealdb_server::core::CommunityComposer())
}
