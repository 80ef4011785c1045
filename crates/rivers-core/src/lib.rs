//! The rivers domain, pure and synchronous: node definitions as data, the asset graph,
//! execution planning, retry policies, the fixed vocabularies (run statuses, event types,
//! failure reasons) and staleness.
//!
//! This crate must not depend on tokio, storage, or Python: everything here is testable with
//! plain values, and every higher crate (storage, engine, bindings) builds on it.

pub mod condition;
mod definition;
mod duration;
mod error;
mod graph;
pub mod partitions;
mod plan;
mod priority;
mod retry;
mod schedule;
mod staleness;
mod vocab;

pub use definition::{
    ComputeDef, DefinitionsSnapshot, DepDef, EvalMode, Gather, HookDef, HookType, IoHandlerRef, JobDef, MapDef,
    NodeDef, NodeKind, OutputDef, ParamDef, ParamRole, PartitionsDecl, PoolClaim, PoolLimitDef, ScheduleDef, SensorDef,
};
pub use duration::{DurationError, parse_duration};
pub use error::{Error, Result};
pub use graph::AssetGraph;
pub use plan::{Plan, PlanGrowth, PlanOptions, PlanStep, StepKey};
pub use priority::{BACKFILL_PRIORITY, DEFAULT_PRIORITY, PRIORITY_TAG, priority_of, run_priority};
pub use retry::{Backoff, RetryOn, RetryPolicy, RetrySpec};
pub use schedule::{CronSchedule, ScheduleError};
pub use staleness::{AssetVersionState, StaleCause, Staleness, StalenessStatus, compute_staleness};
pub use vocab::{
    AutomationStatus, AutomationType, BackfillState, EventType, ExecutorKind, FailurePolicy, FailureReason, LaunchedBy,
    RunBackendKind, RunStatus, TickStatus, UserRef,
};
