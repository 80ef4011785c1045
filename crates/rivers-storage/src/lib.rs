//! rivers persistent state: runs, events, asset records, captured step logs, kv entries and
//! dynamic partitions, stored in SurrealDB: in memory, embedded on RocksDB, or on a SurrealDB
//! server over WebSocket, all through one implementation.
//!
//! Writes of run events go through a batched writer (group commit): the engine enqueues events
//! without waiting, and a run's terminal status is written only after its events are durable
//! (`Storage::flush_run`). A batch that cannot be written is retried and then reported to
//! every flush that depends on it: no event is lost silently. Reads are answered from indexed
//! state tables kept in the same transactions as the events, never by decoding history. The
//! schema is a list of versioned migrations (`migrations/*.surql`).
//!
//! This crate depends on `rivers-core` only; it knows nothing of the engine or of Python.
//!
//! Features: `testing` adds fault injection (`Storage::fail_batches`) for tests of the failure
//! paths.

mod changes;
mod client;
mod clock;
mod error;
mod identity;
mod migrations;
mod partition_index;
mod records;
mod registry;
mod state;
mod storage;
mod writer;

pub use changes::{Change, ChangeFeed, FEED_POLL, FeedCursor, FeedEntry, FeedPage};
pub use client::RemoteTarget;
pub use clock::now_ns;
pub use error::{BoxedCause, Error, Result};
pub use identity::{CODE_LOCATION_VAR, CodeLocationId, DEPLOYMENT_VAR, Deployment, LOCAL_CODE_LOCATION};
pub use records::{
    AssetRecord, BackfillProgress, BackfillRecord, BlockKind, BlockReason, ConcurrencyClaim, NewEvent, NewRun,
    PartitionSpan, PoolBlockDetail, PoolInfo, PoolLimit, RunEnding, RunRecord, SlotHolder, StepState, StoredEvent,
    StoredLog, StoredTick,
};
pub use state::StepStatus;
pub use storage::{
    ActiveRun, AssetConditionState, AssetEventCursor, AssetLatest, BACKFILL_CLAIM_GRACE, CodeLocationRecord,
    ConditionCheckpoint, ConditionEvaluationRecord, DEFAULT_POOL_LEASE, GridStatus, Page, PageCursor, PartitionStatus,
    PartitionStatusChange, PartitionStatusKind, PartitionTransition, PlanRegistration, QueuedRun, RunClaim, RunFilter,
    RunKey, RunOwner, RunTargets, Storage, StorageKind, UnfinishedRun, definition_fingerprint,
};
#[cfg(feature = "testing")]
pub use writer::FailBatches;
