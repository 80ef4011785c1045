//! What an evaluation returns, once normalised at the border: requests for runs and backfills,
//! a skip reason and a new sensor cursor.

use rivers_core::FailurePolicy;
use rivers_core::partitions::{BackfillStrategy, PartitionKey, PartitionKeyRange};

/// A request for one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRequest {
    /// Idempotency key: a key already used by the same schedule or sensor launches nothing.
    pub run_key: Option<String>,
    /// Tags of the run; they win over the automation's tags with the same key.
    pub tags: Vec<(String, String)>,
    /// The partition to run.
    pub partition_key: Option<PartitionKey>,
    /// The job to run, instead of the automation's.
    pub job_name: Option<String>,
}

/// Which partitions a backfill covers.
#[derive(Debug, Clone, PartialEq)]
pub enum BackfillPartitions {
    /// Every partition of the selection.
    All,
    /// These keys.
    Keys(Vec<PartitionKey>),
    /// A range or a product of ranges.
    Range(PartitionKeyRange),
}

/// A request for a backfill.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillRequest {
    /// Asset names to backfill.
    pub selection: Vec<String>,
    /// The partitions it covers.
    pub partitions: BackfillPartitions,
    /// How partitions are grouped into runs; `None` falls back to the assets' strategy.
    pub strategy: Option<BackfillStrategy>,
    /// What happens after a partition fails.
    pub failure_policy: FailurePolicy,
    /// Partition runs in flight at once.
    pub max_concurrency: usize,
    /// Tags of every run it spawns.
    pub tags: Vec<(String, String)>,
}

/// One request of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// A run.
    Run(RunRequest),
    /// A backfill.
    Backfill(BackfillRequest),
}

/// An evaluation's normalised result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    /// Requests, in the order the function returned them.
    pub requests: Vec<Request>,
    /// Why nothing (or not everything) was requested.
    pub skip_reason: Option<String>,
    /// A sensor's new cursor; `None` keeps the previous one.
    pub cursor: Option<String>,
}

impl Evaluation {
    /// The result of a schedule without an evaluation function: one run of its job.
    pub fn default_run() -> Self {
        Self { requests: vec![Request::Run(RunRequest::default())], ..Self::default() }
    }
}
