//! Integration tests of rivers-storage, in one binary: each module is one topic. (One binary per
//! topic linked SurrealDB once per topic, which cost more than running the tests.)

mod backends;
mod backfills;
mod changes;
mod code_locations;
mod common;
mod migrations;
mod partition_state;
mod pools;
mod reads;
mod shared_runs;
mod writes;
