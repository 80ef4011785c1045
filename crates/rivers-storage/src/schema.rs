//! Schema bootstrap and the version stamp that guards against opening a database written by
//! an incompatible build.

/// Schema version written by this build.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// Tables and indexes. Tables stay schemaless: records are validated by the Rust types that
/// write and decode them, and indexes cover every filtered query.
///
/// Events are stored in segments, one per writer batch, indexed by the runs and assets they
/// mention: SurrealDB pays for every index entry, and a segment of a few hundred events costs a
/// handful of entries instead of two per event (measured: ~6 µs per event in a segment against
/// ~100 µs per individually indexed event record).
pub(crate) const BOOTSTRAP: &str = "
DEFINE TABLE IF NOT EXISTS event_segment SCHEMALESS;
DEFINE INDEX IF NOT EXISTS event_segment_runs ON event_segment FIELDS run_ids;
DEFINE INDEX IF NOT EXISTS event_segment_assets ON event_segment FIELDS asset_keys;
DEFINE TABLE IF NOT EXISTS run SCHEMALESS;
DEFINE INDEX IF NOT EXISTS run_status ON run FIELDS status;
DEFINE TABLE IF NOT EXISTS asset SCHEMALESS;
DEFINE TABLE IF NOT EXISTS asset_registry SCHEMALESS;
DEFINE TABLE IF NOT EXISTS run_log SCHEMALESS;
DEFINE INDEX IF NOT EXISTS run_log_run ON run_log FIELDS run_id;
DEFINE TABLE IF NOT EXISTS kv SCHEMALESS;
DEFINE TABLE IF NOT EXISTS dynamic_partition SCHEMALESS;
DEFINE INDEX IF NOT EXISTS dynamic_partition_name ON dynamic_partition FIELDS name;
DEFINE TABLE IF NOT EXISTS tick SCHEMALESS;
DEFINE TABLE IF NOT EXISTS schema_stamp SCHEMALESS;
";
