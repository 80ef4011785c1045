//! Stored records and the payloads used to create them.

use rivers_core::partitions::{BackfillStrategy, BackfillTarget, RangeSet};
use rivers_core::{BackfillState, EventType, FailurePolicy, LaunchedBy, RunBackendKind, RunStatus};
use serde::{Deserialize, Serialize};

/// One run event, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Unique event id.
    #[serde(rename = "eid")]
    pub id: String,
    /// Event kind.
    pub event_type: EventType,
    /// Asset or step node; `None` for run-level events.
    #[serde(default)]
    pub asset_key: Option<String>,
    /// Run that emitted the event.
    pub run_id: String,
    /// Canonical display string of the partition.
    #[serde(default)]
    pub partition_key: Option<String>,
    /// Nanoseconds since the epoch (the writing process's clock, strictly increasing within
    /// that process); orders events across runs.
    pub timestamp: i64,
    /// Position of the event in its run (1-based, gap-free per run): the order within a run,
    /// whichever process or clock wrote it (docs/storage.md, "Ordering").
    #[serde(default)]
    pub run_seq: i64,
    /// Metadata rendered as strings.
    #[serde(default)]
    pub metadata: Vec<(String, String)>,
    /// Data version of a materialization or observation.
    #[serde(default)]
    pub data_version: Option<String>,
    /// Code version in effect.
    #[serde(default)]
    pub code_version: Option<String>,
    /// `(upstream, data_version)` pairs consumed.
    #[serde(default)]
    pub input_data_versions: Vec<(String, String)>,
    /// Where a partitioned materialization lies on its asset's partition grid. An event whose
    /// span covers several partitions is stored once for all of them (`partition_key` is then
    /// `None`) and read as one event per partition (see `PartitionSpan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<PartitionSpan>,
}

/// The partitions of an asset one materialization covers, as positions on the grid of the
/// definition they were written under.
///
/// A step covering a million partitions stores one event with a span of one range; readers
/// that list events see one event per covered partition, each with its own display key, an
/// id `"<event id>.<position>"` that is the same on every read, and its own data version
/// (derived from the stored one when versions were generated, see [`PartitionSpan::version_at`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionSpan {
    /// Fingerprint of the partitions definition (see `definition_fingerprint`).
    #[serde(rename = "def")]
    pub definition: String,
    /// The covered positions.
    #[serde(rename = "pos")]
    pub positions: RangeSet,
    /// Whether each partition's data version is derived from the event's (generated
    /// versions); otherwise every partition has the event's explicit version.
    #[serde(rename = "derived", default)]
    pub derived_versions: bool,
}

impl PartitionSpan {
    /// The data version of the partition at `position`, given the stored event's.
    pub fn version_at(&self, stored: Option<&str>, position: u128) -> Option<String> {
        let stored = stored?;
        if !self.derived_versions {
            return Some(stored.to_string());
        }
        // A stored generated version is a UUID; each partition gets a UUID derived from it
        // and its position (the SHA-256 of both), the same on every read.
        use sha2::Digest;
        let digest =
            sha2::Sha256::new().chain_update(stored.as_bytes()).chain_update(position.to_be_bytes()).finalize();
        let bytes: [u8; 16] = digest[..16].try_into().expect("a SHA-256 digest has 32 bytes");
        Some(uuid::Builder::from_random_bytes(bytes).into_uuid().to_string())
    }
}

impl StoredEvent {
    /// Whether this stored event stands for several events, one per covered partition.
    pub fn is_compact(&self) -> bool {
        self.partition_key.is_none() && self.span.as_ref().is_some_and(|span| span.positions.len() > 1)
    }

    /// How many events this stored event stands for (numbers it takes in its run).
    pub fn weight(&self) -> i64 {
        if self.is_compact() {
            self.span.as_ref().map_or(1, |span| i64::try_from(span.positions.len()).unwrap_or(i64::MAX))
        } else {
            1
        }
    }

    /// The newest of the events this stored event stands for: a compact event's last
    /// partition (without its display key), or the event itself.
    pub fn latest(&self) -> StoredEvent {
        match self.span.as_ref().and_then(|span| span.positions.last()) {
            Some(last) if self.is_compact() => self.expanded_at(last),
            _ => self.clone(),
        }
    }

    /// The event of the partition at `position` of a compact event (`partition_key` left for
    /// the caller, who knows the definition): its id, number and data version.
    pub fn expanded_at(&self, position: u128) -> StoredEvent {
        let span = self.span.as_ref().expect("expanded_at is called on compact events");
        self.expanded_nth(span.positions.rank(position), position)
    }

    /// [`StoredEvent::expanded_at`] for a reader walking the span, which knows the position's
    /// index in it (no O(ranges) rank lookup per partition).
    pub(crate) fn expanded_nth(&self, index: u128, position: u128) -> StoredEvent {
        let span = self.span.as_ref().expect("expanded_nth is called on compact events");
        let index = i64::try_from(index).unwrap_or(i64::MAX);
        StoredEvent {
            id: format!("{}.{position}", self.id),
            run_seq: if self.run_seq > 0 { self.run_seq + index } else { 0 },
            data_version: span.version_at(self.data_version.as_deref(), position),
            span: Some(PartitionSpan { positions: RangeSet::span(position, position), ..span.clone() }),
            ..self.clone()
        }
    }
}

/// An event to append; id, timestamp and run sequence number are assigned when it is enqueued.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Event kind.
    pub event_type: EventType,
    /// Asset or step node.
    pub asset_key: Option<String>,
    /// Run id.
    pub run_id: String,
    /// Partition display string.
    pub partition_key: Option<String>,
    /// Metadata rendered as strings.
    pub metadata: Vec<(String, String)>,
    /// Data version.
    pub data_version: Option<String>,
    /// Code version.
    pub code_version: Option<String>,
    /// Input data versions.
    pub input_data_versions: Vec<(String, String)>,
    /// The partitions a materialization covers on its asset's grid.
    pub span: Option<PartitionSpan>,
}

impl NewEvent {
    /// An event of `event_type` in `run_id` with every optional field empty.
    pub fn new(event_type: EventType, run_id: impl Into<String>) -> Self {
        NewEvent {
            event_type,
            asset_key: None,
            run_id: run_id.into(),
            partition_key: None,
            metadata: Vec::new(),
            data_version: None,
            code_version: None,
            input_data_versions: Vec::new(),
            span: None,
        }
    }
}

/// One step execution's captured output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLog {
    /// Row id.
    #[serde(rename = "lid")]
    pub id: String,
    /// Run id.
    pub run_id: String,
    /// Step key.
    pub step_key: String,
    /// Nanoseconds since the epoch.
    pub timestamp: i64,
    /// Captured stdout.
    #[serde(default)]
    pub stdout: Option<String>,
    /// Captured stderr.
    #[serde(default)]
    pub stderr: Option<String>,
    /// Captured log records.
    #[serde(default)]
    pub logs: Option<String>,
}

/// What storage knows about one asset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssetRecord {
    /// Asset key.
    pub asset_key: String,
    /// Declared tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Declared kinds.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Declared group.
    #[serde(default)]
    pub group: Option<String>,
    /// Declared code version.
    #[serde(default)]
    pub code_version: Option<String>,
    /// Latest materialization event id.
    #[serde(default)]
    pub last_event_id: Option<String>,
    /// Run of that materialization.
    #[serde(default)]
    pub last_run_id: Option<String>,
    /// Its timestamp.
    #[serde(default)]
    pub last_timestamp: Option<i64>,
    /// Its data version.
    #[serde(default)]
    pub last_data_version: Option<String>,
    /// Code version at that materialization.
    #[serde(default)]
    pub last_materialization_code_version: Option<String>,
    /// Input data versions at that materialization.
    #[serde(default)]
    pub last_input_data_versions: Vec<(String, String)>,
    /// `(pool, slots)` claims.
    #[serde(default)]
    pub pool: Vec<(String, i64)>,
    /// Upstream asset keys (graph topology, for staleness).
    #[serde(default)]
    pub upstreams: Vec<String>,
    /// External assets are sources, never materialized.
    #[serde(default)]
    pub is_external: bool,
    /// Data version of the latest observation (external assets).
    #[serde(default)]
    pub last_observation_data_version: Option<String>,
}

/// A run, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Run id.
    pub run_id: String,
    /// Job name; `None` for ad-hoc runs.
    #[serde(default)]
    pub job_name: Option<String>,
    /// Status.
    pub status: RunStatus,
    /// Creation time (ns).
    pub start_time: i64,
    /// Terminal time (ns).
    #[serde(default)]
    pub end_time: Option<i64>,
    /// Run tags in insertion order.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Planned node names.
    #[serde(default)]
    pub node_names: Vec<String>,
    /// Queue priority.
    #[serde(default)]
    pub priority: i64,
    /// Targeted partition, as its JSON form.
    #[serde(default)]
    pub partition_key: Option<serde_json::Value>,
    /// Why the queue holds the run.
    #[serde(default)]
    pub block_reason: Option<String>,
    /// Origin.
    pub launched_by: LaunchedBy,
    /// Cooperative cancellation was requested.
    #[serde(default)]
    pub cancel_requested: bool,
    /// Failure message of the outcome.
    #[serde(default)]
    pub message: Option<String>,
    /// Display keys of the partitions its steps marked failed (`mark_partition_failed`),
    /// recorded before its outcome.
    #[serde(default)]
    pub failed_partitions: Vec<String>,
    /// Where the run executes.
    #[serde(default)]
    pub backend: RunBackendKind,
    /// The token of the execution that owns the run while it is `Running`.
    #[serde(default)]
    pub owner: Option<String>,
    /// The process executing the run (`host pid N`) while it is `Running`.
    #[serde(default)]
    pub owner_process: Option<String>,
    /// That process's host.
    #[serde(default)]
    pub owner_host: Option<String>,
    /// That process's id on its host.
    #[serde(default)]
    pub owner_pid: Option<u32>,
    /// When that process last proved it is alive (ns).
    #[serde(default)]
    pub heartbeat: Option<i64>,
    /// The code location the run belongs to (platform.md §2); `None` only in a record that
    /// was never stored.
    #[serde(default)]
    pub code_location: Option<String>,
}

/// Where a run stands, as a backfill follows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RunEnding {
    /// Run id.
    pub run_id: String,
    /// Status.
    pub status: RunStatus,
    /// Display keys of the partitions its steps marked failed.
    #[serde(default)]
    pub failed_partitions: Vec<String>,
}

/// The fields of a run to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// Run id.
    pub run_id: String,
    /// Job name.
    pub job_name: Option<String>,
    /// Initial status.
    pub status: rivers_core::RunStatus,
    /// Tags.
    pub tags: Vec<(String, String)>,
    /// Planned node names.
    pub node_names: Vec<String>,
    /// Priority.
    pub priority: i64,
    /// Partition JSON.
    pub partition_key: Option<serde_json::Value>,
    /// Origin.
    pub launched_by: LaunchedBy,
    /// Where the run executes.
    pub backend: RunBackendKind,
}

/// One schedule, sensor or condition evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTick {
    /// Tick id.
    #[serde(rename = "tid")]
    pub id: String,
    /// Schedule / sensor name, or asset key for condition ticks.
    pub automation_name: String,
    /// What was evaluated.
    pub automation_type: rivers_core::AutomationType,
    /// How the evaluation ended.
    pub status: rivers_core::TickStatus,
    /// Nanoseconds since the epoch.
    pub timestamp: i64,
    /// Runs requested.
    #[serde(default)]
    pub run_ids: Vec<String>,
    /// Backfills requested.
    #[serde(default)]
    pub backfill_ids: Vec<String>,
    /// Skip message.
    #[serde(default)]
    pub skip_reason: Option<String>,
    /// Evaluation error.
    #[serde(default)]
    pub error: Option<String>,
    /// Sensor cursor after the tick.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A backfill, as stored: its request (what it is planned from), its progress and outcome.
/// Written whole once when it is submitted, then changed by targeted updates only (counters,
/// run ids, outcome sets, status, the cancel marker), so writers in several processes never
/// overwrite each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillRecord {
    /// Backfill id.
    pub backfill_id: String,
    /// Lifecycle status.
    pub status: BackfillState,
    /// Asset names requested (`None`: every partitioned asset).
    #[serde(default)]
    pub selection: Option<Vec<String>>,
    /// The partitions requested, as planned from.
    #[serde(default)]
    pub target: Option<BackfillTarget>,
    /// How partitions are grouped into runs.
    pub strategy: BackfillStrategy,
    /// What a failed partition does to the rest.
    pub failure_policy: FailurePolicy,
    /// Most runs executing at once.
    pub max_concurrency: u32,
    /// Tags applied to every run.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Run config (JSON), when it is JSON.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// Individual partitions planned.
    pub num_partitions: u64,
    /// Runs planned.
    pub num_runs: u64,
    /// Partitions completed.
    #[serde(default)]
    pub completed: u64,
    /// Partitions failed.
    #[serde(default)]
    pub failed: u64,
    /// Partitions canceled (never finished).
    #[serde(default)]
    pub canceled: u64,
    /// Runs created, in launch order.
    #[serde(default)]
    pub run_ids: Vec<String>,
    /// Display keys of the failed partitions.
    #[serde(default)]
    pub failed_keys: Vec<String>,
    /// Display keys of the canceled partitions (never finished, or never started).
    #[serde(default)]
    pub canceled_keys: Vec<String>,
    /// Why the backfill itself failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Origin.
    pub launched_by: LaunchedBy,
    /// Another process asked the coordinator to stop.
    #[serde(default)]
    pub cancel_requested: bool,
    /// Submission time (ns).
    #[serde(default)]
    pub created: i64,
    /// The code location that submitted it: the storing handle's identity, which
    /// `create_backfill` writes in place of this field.
    #[serde(default)]
    pub code_location: Option<String>,
}

impl BackfillRecord {
    /// A backfill about to be submitted with `status`: nothing selected, targeted, tagged or
    /// configured, one run at a time, and no progress yet; set the rest with struct update
    /// syntax.
    pub fn new(
        backfill_id: impl Into<String>,
        status: BackfillState,
        strategy: BackfillStrategy,
        failure_policy: FailurePolicy,
        launched_by: LaunchedBy,
    ) -> Self {
        BackfillRecord {
            backfill_id: backfill_id.into(),
            status,
            selection: None,
            target: None,
            strategy,
            failure_policy,
            max_concurrency: 1,
            tags: Vec::new(),
            config: None,
            num_partitions: 0,
            num_runs: 0,
            completed: 0,
            failed: 0,
            canceled: 0,
            run_ids: Vec::new(),
            failed_keys: Vec::new(),
            canceled_keys: Vec::new(),
            error: None,
            launched_by,
            cancel_requested: false,
            created: 0,
            code_location: None,
        }
    }
}

/// What some finished runs of a backfill changed, written in one targeted update.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BackfillProgress {
    /// Partitions completed.
    pub completed: u64,
    /// Partitions failed.
    pub failed: u64,
    /// Partitions canceled.
    pub canceled: u64,
    /// Runs created.
    pub run_ids: Vec<String>,
    /// Display keys of partitions failed.
    pub failed_keys: Vec<String>,
    /// Display keys of partitions canceled.
    pub canceled_keys: Vec<String>,
}

impl BackfillProgress {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        *self == BackfillProgress::default()
    }
}

/// One step of a run, as its timeline shows it (from the run's step states, not its events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    /// Step key.
    pub step_key: String,
    /// The step's partition (display form) when its run targets one partition.
    #[serde(default)]
    pub partition_key: Option<String>,
    /// Where it is.
    pub status: crate::StepStatus,
    /// When it first started (nanoseconds since the epoch).
    #[serde(default)]
    pub start_time: Option<i64>,
    /// When it last ended.
    #[serde(default)]
    pub end_time: Option<i64>,
    /// Attempts made: 1 plus its retries.
    pub attempts: u32,
}

/// A concurrency pool's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLimit {
    /// Pool key.
    pub pool_key: String,
    /// Slots that may be held at once.
    pub slot_limit: i64,
    /// How long a claim's lease lasts before it must be renewed.
    pub lease: std::time::Duration,
}

/// A pool's configuration and live usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    /// The configuration.
    pub limit: PoolLimit,
    /// Slots held under unexpired leases.
    pub claimed_count: i64,
    /// Steps waiting for the pool.
    pub pending_count: i64,
}

/// One step holding slots of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotHolder {
    /// Holding run.
    pub run_id: String,
    /// Holding step.
    pub step_key: String,
    /// Slots it holds.
    pub slots_consumed: i64,
    /// When it claimed them (nanoseconds since the epoch).
    pub claimed_at: i64,
    /// When its lease ends unless renewed (nanoseconds since the epoch).
    pub lease_expires_at: i64,
}

/// One pool that had no room for a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolBlockDetail {
    /// Pool key.
    pub pool_key: String,
    /// Slots held under unexpired leases.
    pub claimed: i64,
    /// The pool's limit.
    pub limit: i64,
}

/// Why a claim is pending: every pool that had no room, in the order the claim listed them
/// (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockReason {
    /// The blocking pools.
    pub pools: Vec<PoolBlockDetail>,
}

/// How many pools block a claim, as `BlockReason.kind` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// One pool has no room.
    PoolFull,
    /// Several pools have no room.
    PoolsFull,
}

impl BlockKind {
    /// `pool_full` or `pools_full`.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::PoolFull => "pool_full",
            BlockKind::PoolsFull => "pools_full",
        }
    }
}

impl BlockReason {
    /// One pool blocks, or several.
    pub fn kind(&self) -> BlockKind {
        if self.pools.len() > 1 { BlockKind::PoolsFull } else { BlockKind::PoolFull }
    }

    /// The first blocking pool.
    pub fn first(&self) -> &PoolBlockDetail {
        &self.pools[0]
    }
}

impl std::fmt::Display for BlockReason {
    /// `pool_full: pool 'db' has 2 of 2 slots claimed`, or for several pools
    /// `pools_full: pool 'db' has 2 of 2 slots claimed; pool 'api' has 1 of 1 slots claimed`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.kind().as_str())?;
        for (i, pool) in self.pools.iter().enumerate() {
            let separator = if i == 0 { "" } else { "; " };
            write!(f, "{separator}pool '{}' has {} of {} slots claimed", pool.pool_key, pool.claimed, pool.limit)?;
        }
        Ok(())
    }
}

/// What a claim of pool slots got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConcurrencyClaim {
    /// Every pool granted its slots; they are leased for `lease`.
    Claimed {
        /// The lease length the slots were claimed with (renew within it).
        lease: std::time::Duration,
    },
    /// Some pool had no room: nothing was claimed.
    Pending {
        /// 1-based position among the steps waiting for the blocking pools (by priority
        /// descending, then arrival).
        position: i64,
        /// The pools without room.
        reason: BlockReason,
    },
}
