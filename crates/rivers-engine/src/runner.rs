//! The `StepRunner` seam: "run this step and tell me what happened".

use futures::future::BoxFuture;
use rivers_core::{ExecutorKind, FailureReason, PlanGrowth, StepKey};

use crate::fan_out::FanIn;
use crate::partitions::StepScope;

/// What the engine asks a runner to execute: everything the runner needs to build the step
/// from its definition, at dispatch time.
#[derive(Debug, Clone)]
pub struct StepRequest {
    /// Run id.
    pub run_id: String,
    /// Step key.
    pub step_key: StepKey,
    /// Name of the node whose definition the step runs.
    pub node_name: String,
    /// Fan-out mapping key of the instance, if it is one.
    pub mapping_key: Option<String>,
    /// What the step covers and reads of partitions; `None` when partitions play no part.
    pub partition: Option<std::sync::Arc<StepScope>>,
    /// A multi-asset step: the outputs to persist (the selected ones); empty otherwise.
    pub output_selection: Vec<String>,
    /// The fan-outs this step gathers (`collect()` / `collect_stream()` consumers), with their
    /// instance keys.
    pub fan_in: Vec<FanIn>,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Effective executor of the step.
    pub executor: ExecutorKind,
    /// The step body is a coroutine.
    pub is_async: bool,
    /// Opaque id of the exception-class allow-list of the step's retry policy, for the
    /// runner to match failures against (it owns the exception objects).
    pub retry_class_filter: Option<usize>,
}

impl StepRequest {
    /// The step reads a fan-out's outcomes while its instances run ([`FanIn::live`]): it must
    /// run in the process driving the run, on a thread it may block (whatever its executor),
    /// since the outcomes reach it through memory.
    pub fn reads_live(&self) -> bool {
        self.fan_in.iter().any(|fan_in| fan_in.live)
    }
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

/// What a step printed and logged, as captured by the runner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturedOutput {
    /// Captured stdout.
    pub stdout: Option<String>,
    /// Captured stderr.
    pub stderr: Option<String>,
    /// Captured `rivers` log records, one per line.
    pub logs: Option<String>,
}

/// What a successful step produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOutput {
    /// Materializations, in the order they were persisted.
    pub materializations: Vec<Materialized>,
    /// Captured output of the attempt.
    pub captured: Option<CapturedOutput>,
    /// Steps this step adds to the run's plan; empty for most steps.
    pub growth: PlanGrowth,
    /// A fan-out template: the keys of its producer's elements, in element order. The engine
    /// adds one instance step per key.
    pub fan_out: Option<Vec<String>>,
    /// Covered partitions the body marked failed (`mark_partition_failed`): display form and
    /// message. They get no materialization.
    pub failed_partitions: Vec<(String, String)>,
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
    /// Values the attempt persisted before it failed (a multi-asset yielding its outputs
    /// writes each as it is yielded): they are recorded all the same.
    pub materializations: Vec<Materialized>,
    /// Captured output of the failed attempt (boxed: failures travel in `Result`s).
    pub captured: Option<Box<CapturedOutput>>,
}

impl StepFailure {
    /// A failure with a message and a reason, nothing captured and nothing persisted.
    pub fn new(message: impl Into<String>, reason: FailureReason) -> Self {
        StepFailure {
            message: message.into(),
            reason,
            matched_retry_class: false,
            captured: None,
            materializations: Vec::new(),
        }
    }
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

    /// Called once when run `run_id` is cancelled: interrupt the running steps that can be
    /// interrupted safely (their attempts then fail, and the engine classifies them
    /// `canceled`). Cancellation is cooperative, so the default interrupts nothing.
    fn cancel_running(&self, _run_id: &str) {}
}
