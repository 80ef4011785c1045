//! The `StepRunner` seam: "run this step and tell me what happened".

use futures::future::BoxFuture;
use rivers_core::{ExecutorKind, FailureReason};

/// What the engine asks a runner to execute.
#[derive(Debug, Clone)]
pub struct StepRequest {
    /// Run id.
    pub run_id: String,
    /// Index of the step in the plan.
    pub step_index: usize,
    /// Step key (node name).
    pub step_key: String,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Effective executor of the step.
    pub executor: ExecutorKind,
    /// Partition display string of the run, if any.
    pub partition_key: Option<String>,
    /// Opaque id of the exception-class allow-list of the step's retry policy, for the
    /// runner to match failures against (it owns the exception objects).
    pub retry_class_filter: Option<usize>,
}

/// One persisted asset value (or a returned `Materialization`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Materialized {
    /// Asset key.
    pub asset_key: String,
    /// Output metadata rendered as strings.
    pub metadata: Vec<(String, String)>,
    /// Explicit or registered data version; the engine generates one when absent.
    pub data_version: Option<String>,
    /// Code version in effect.
    pub code_version: Option<String>,
}

/// What a successful step produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOutput {
    /// Materializations, in the order they were persisted.
    pub materializations: Vec<Materialized>,
    /// Captured stdout, stderr and log records.
    pub captured: Option<(Option<String>, Option<String>, Option<String>)>,
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct StepFailure {
    /// Error message (contains the original exception's message).
    pub message: String,
    /// Classified reason.
    pub reason: FailureReason,
    /// Whether the exception matched a class entry of the retry policy's allow-list.
    pub matched_retry_class: bool,
    /// Captured output of the failed attempt.
    pub captured: Option<(Option<String>, Option<String>, Option<String>)>,
}

/// Executes steps for the engine.
///
/// Implementations must be cheap to call concurrently: the engine calls `run_step` for as many
/// steps at once as the executor caps allow.
pub trait StepRunner: Send + Sync + 'static {
    /// Runs one attempt of a step.
    ///
    /// # Errors
    /// A [`StepFailure`] describing the failed attempt; the engine decides about retries.
    ///
    /// # Cancel safety
    /// The engine never drops a returned future before it completes.
    fn run_step(&self, request: StepRequest) -> BoxFuture<'static, Result<StepOutput, StepFailure>>;

    /// Called once after a step's final attempt failed (runs failure hooks).
    fn on_final_failure(&self, request: StepRequest, failure: StepFailure) -> BoxFuture<'static, ()>;
}
