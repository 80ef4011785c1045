//! A [`StepRunner`] made of plain closures, for tests of the engine and of crates built on it
//! (enabled by the `testing` feature).
//!
//! Every call is recorded (step key and attempt, in call order), failure hooks are counted,
//! and the runner tracks how many steps run at once per executor so that tests can check the
//! lanes' caps without timing anything.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use rivers_core::{ExecutorKind, FailureReason};

use crate::runner::{Materialized, StepFailure, StepOutput, StepRequest, StepRunner};

type Body = dyn Fn(&StepRequest) -> Result<StepOutput, StepFailure> + Send + Sync;

/// A runner whose steps are closures.
pub struct FakeRunner {
    body: Box<Body>,
    /// How long each step stays "running" after its body returned, so that concurrent steps
    /// overlap; zero by default.
    hold: Duration,
    calls: Mutex<Vec<(String, u32)>>,
    failure_hooks: AtomicUsize,
    cancellations: Mutex<Vec<String>>,
    tracking: Arc<Tracking>,
}

/// What the runner observed of concurrency, shared with the step futures.
#[derive(Default)]
struct Tracking {
    running: Mutex<HashMap<ExecutorKind, usize>>,
    peak: Mutex<HashMap<ExecutorKind, usize>>,
    /// The most steps running at once, whatever their executor.
    peak_total: AtomicUsize,
    /// Step keys in the order their attempts finished.
    finished: Mutex<Vec<String>>,
}

impl Tracking {
    fn enter(&self, executor: ExecutorKind) {
        let mut running = self.running.lock();
        let now = running.entry(executor).or_default();
        *now += 1;
        let mut peak = self.peak.lock();
        let top = peak.entry(executor).or_default();
        *top = (*top).max(*now);
        self.peak_total.fetch_max(running.values().sum(), Ordering::SeqCst);
    }

    fn leave(&self, executor: ExecutorKind, key: String) {
        *self.running.lock().entry(executor).or_default() -= 1;
        self.finished.lock().push(key);
    }
}

impl FakeRunner {
    /// A runner calling `body` for every attempt.
    pub fn new(body: impl Fn(&StepRequest) -> Result<StepOutput, StepFailure> + Send + Sync + 'static) -> Arc<Self> {
        Self::holding(Duration::ZERO, body)
    }

    /// A runner whose steps each stay running for `hold` (on the tokio timer) after `body`.
    pub fn holding(
        hold: Duration,
        body: impl Fn(&StepRequest) -> Result<StepOutput, StepFailure> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(FakeRunner {
            body: Box::new(body),
            hold,
            calls: Mutex::new(Vec::new()),
            failure_hooks: AtomicUsize::new(0),
            cancellations: Mutex::new(Vec::new()),
            tracking: Arc::default(),
        })
    }

    /// Step keys called, in call order (one entry per attempt).
    pub fn called(&self) -> Vec<String> {
        self.calls.lock().iter().map(|(key, _)| key.clone()).collect()
    }

    /// `(step key, attempt)` of every call, in call order.
    pub fn calls(&self) -> Vec<(String, u32)> {
        self.calls.lock().clone()
    }

    /// Runs whose running steps the engine asked to interrupt, in order.
    pub fn cancellations(&self) -> Vec<String> {
        self.cancellations.lock().clone()
    }

    /// How many times failure hooks ran.
    pub fn failure_hooks(&self) -> usize {
        self.failure_hooks.load(Ordering::SeqCst)
    }

    /// The most steps of `executor` that were running at the same time.
    pub fn peak_concurrency(&self, executor: ExecutorKind) -> usize {
        self.tracking.peak.lock().get(&executor).copied().unwrap_or(0)
    }

    /// The most steps running at the same time, whatever their executor.
    pub fn peak_total(&self) -> usize {
        self.tracking.peak_total.load(Ordering::SeqCst)
    }

    /// Step keys in the order their attempts finished.
    pub fn finished(&self) -> Vec<String> {
        self.tracking.finished.lock().clone()
    }
}

impl StepRunner for FakeRunner {
    fn run_step(&self, request: StepRequest) -> BoxFuture<'static, Result<StepOutput, StepFailure>> {
        self.calls.lock().push((request.step_key.to_string(), request.attempt));
        self.tracking.enter(request.executor);
        let outcome = (self.body)(&request);
        let tracking = Arc::clone(&self.tracking);
        let hold = self.hold;
        Box::pin(async move {
            if !hold.is_zero() {
                tokio::time::sleep(hold).await;
            }
            tracking.leave(request.executor, request.step_key.to_string());
            outcome
        })
    }

    fn on_final_failure(&self, _request: StepRequest, _failure: StepFailure) -> BoxFuture<'static, ()> {
        self.failure_hooks.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }

    fn cancel_running(&self, run_id: &str) {
        self.cancellations.lock().push(run_id.to_string());
    }
}

/// A successful attempt materializing the step's own asset.
pub fn materialized(request: &StepRequest) -> Result<StepOutput, StepFailure> {
    Ok(StepOutput {
        materializations: vec![Materialized { asset_key: request.node_name.clone(), ..Default::default() }],
        ..Default::default()
    })
}

/// A failed attempt with an ordinary error.
pub fn failure(message: &str) -> StepFailure {
    StepFailure::new(message, FailureReason::Error)
}
