//! Schema bootstrap and the version stamp that guards against opening a database written by
//! an incompatible build.

/// Schema version written by this build.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// Tables and indexes. Tables stay schemaless: records are validated by the Rust types that
/// write and decode them, and indexes cover every filtered query.
pub(crate) const BOOTSTRAP: &str = "
DEFINE TABLE IF NOT EXISTS event SCHEMALESS;
DEFINE INDEX IF NOT EXISTS event_run ON event FIELDS run_id;
DEFINE INDEX IF NOT EXISTS event_asset ON event FIELDS asset_key;
DEFINE TABLE IF NOT EXISTS run SCHEMALESS;
DEFINE INDEX IF NOT EXISTS run_status ON run FIELDS status;
DEFINE TABLE IF NOT EXISTS asset SCHEMALESS;
DEFINE TABLE IF NOT EXISTS run_log SCHEMALESS;
DEFINE INDEX IF NOT EXISTS run_log_run ON run_log FIELDS run_id;
DEFINE TABLE IF NOT EXISTS kv SCHEMALESS;
DEFINE TABLE IF NOT EXISTS dynamic_partition SCHEMALESS;
DEFINE INDEX IF NOT EXISTS dynamic_partition_name ON dynamic_partition FIELDS name;
DEFINE TABLE IF NOT EXISTS tick SCHEMALESS;
DEFINE TABLE IF NOT EXISTS schema_stamp SCHEMALESS;
";
