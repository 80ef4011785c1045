//! Launching a run in the background: the path every launcher that does not wait for the run
//! takes (background submissions today; the daemon and the gRPC service later).

use std::sync::Arc;
use std::time::Duration;

use rivers_core::Plan;
use rivers_storage::Storage;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::run::{RunOptions, RunOutcome, execute_run};
use crate::runner::StepRunner;

/// How a launched run ended: its outcome, or the storage error that stopped it.
pub type LaunchOutcome = Arc<Result<RunOutcome>>;

/// A run executing on the runtime it was launched on. Any number of callers can wait for it.
pub struct LaunchedRun {
    run_id: String,
    outcome: watch::Receiver<Option<LaunchOutcome>>,
}

impl LaunchedRun {
    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// How the run ended, or `None` while it runs.
    pub fn outcome(&self) -> Option<LaunchOutcome> {
        self.outcome.borrow().clone()
    }

    /// Waits for the run's end; `None` when `timeout` passed first (the run goes on).
    pub async fn wait(&self, timeout: Option<Duration>) -> Option<LaunchOutcome> {
        let mut outcome = self.outcome.clone();
        let ended = outcome.wait_for(Option::is_some);
        let ended = match timeout {
            Some(limit) => tokio::time::timeout(limit, ended).await.ok()?,
            None => ended.await,
        };
        match ended {
            Ok(value) => value.clone(),
            // The task dropped its sender without sending: it panicked.
            Err(_) => Some(Arc::new(Err(Error::Aborted { run_id: self.run_id.clone() }))),
        }
    }
}

/// Starts executing `plan` as run `options.run_id` on the current tokio runtime and returns at
/// once; the run creates its record itself, as with [`execute_run`].
pub fn launch_run(storage: Storage, plan: Plan, runner: Arc<dyn StepRunner>, options: RunOptions) -> LaunchedRun {
    let run_id = options.run_id.clone();
    let (sender, receiver) = watch::channel(None);
    tokio::spawn(async move {
        let outcome = execute_run(&storage, &plan, runner, options).await;
        sender.send_replace(Some(Arc::new(outcome)));
    });
    LaunchedRun { run_id, outcome: receiver }
}
