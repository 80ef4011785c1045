//! rivers persistent state: runs, events, asset records, captured step logs, kv entries and
//! dynamic partitions, stored in SurrealDB (in memory, or embedded on RocksDB).
//!
//! Writes of run events go through a batched writer (group commit): the engine enqueues events
//! without waiting, and a run's terminal status is written only after its events are durable
//! (`Storage::flush`). This crate depends on `rivers-core` only; it knows nothing of the engine
//! or of Python.

mod clock;
mod error;
mod records;
mod schema;
mod storage;
mod writer;

pub use clock::now_ns;
pub use error::{Error, Result};
pub use records::{AssetRecord, NewEvent, NewRun, RunRecord, StoredEvent, StoredLog, StoredTick};
pub use storage::{Storage, StorageKind};
