//! Run heartbeats: how the process that owns a run proves it is alive, and how old a
//! heartbeat may be before the run counts as abandoned (its owner killed, out of memory, or
//! on a lost node). An abandoned run may be claimed by a process that attaches to it, and is
//! failed by run monitoring (`Storage::fail_stale_runs`).

use std::sync::Arc;
use std::time::Duration;

use rivers_storage::{RunOwner, Storage};

/// `RIVERS_RUN_HEARTBEAT_INTERVAL`: seconds between an owner's heartbeats.
pub const HEARTBEAT_INTERVAL_VAR: &str = "RIVERS_RUN_HEARTBEAT_INTERVAL";
/// `RIVERS_RUN_HEARTBEAT_TIMEOUT`: seconds without a heartbeat after which a run's owner
/// counts as dead.
pub const HEARTBEAT_TIMEOUT_VAR: &str = "RIVERS_RUN_HEARTBEAT_TIMEOUT";

/// Heartbeat settings of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Time between two heartbeats of the owning process.
    pub interval: Duration,
    /// Age of the last heartbeat past which the owner counts as dead.
    pub dead_after: Duration,
}

impl Default for Liveness {
    /// A heartbeat every 5 s; dead after 30 s without one (six missed heartbeats: a busy
    /// process or a slow store never looks dead).
    fn default() -> Self {
        Liveness { interval: Duration::from_secs(5), dead_after: Duration::from_secs(30) }
    }
}

impl Liveness {
    /// The defaults, overridden by `RIVERS_RUN_HEARTBEAT_INTERVAL` and
    /// `RIVERS_RUN_HEARTBEAT_TIMEOUT` (seconds; empty counts as unset).
    ///
    /// # Errors
    /// A message naming the variable when a value is not a positive number of seconds, or the
    /// timeout is not longer than the interval.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Liveness::from_env`] with the environment given as a lookup function.
    ///
    /// # Errors
    /// As [`Liveness::from_env`].
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let seconds = |name: &str, default: Duration| -> Result<Duration, String> {
            match env(name).filter(|value| !value.trim().is_empty()) {
                None => Ok(default),
                Some(text) => text
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|value| value.is_finite() && *value > 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("{name}={text:?} is not a positive number of seconds")),
            }
        };
        let defaults = Liveness::default();
        let liveness = Liveness {
            interval: seconds(HEARTBEAT_INTERVAL_VAR, defaults.interval)?,
            dead_after: seconds(HEARTBEAT_TIMEOUT_VAR, defaults.dead_after)?,
        };
        if liveness.dead_after <= liveness.interval {
            return Err(format!(
                "{HEARTBEAT_TIMEOUT_VAR} ({} s) must be longer than {HEARTBEAT_INTERVAL_VAR} ({} s), or every \
                 running run would look dead between two heartbeats",
                liveness.dead_after.as_secs_f64(),
                liveness.interval.as_secs_f64()
            ));
        }
        Ok(liveness)
    }
}

/// Writes `owner`'s heartbeat on `run_id` every `interval` until stopped (or dropped).
pub(crate) struct Heartbeat {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Heartbeat {
    pub(crate) fn start(storage: Storage, run_id: String, owner: Arc<RunOwner>, interval: Duration) -> Self {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is immediate; the run was just claimed
            loop {
                ticks.tick().await;
                match storage.heartbeat_run(&run_id, &owner).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            run_id,
                            "this process no longer owns the run (another process failed or claimed it after \
                             missed heartbeats); its outcome will not be recorded"
                        );
                        return;
                    }
                    // A store that is briefly unreachable: the next heartbeat tries again.
                    Err(err) => tracing::warn!(run_id, error = %err, "writing the run's heartbeat failed"),
                }
            }
        });
        Heartbeat { task: Some(task) }
    }

    /// Stops the heartbeats and waits until the task has let go of its storage handle, so
    /// that a store closed right after the run is released at once.
    pub(crate) async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Liveness, String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Liveness::from_lookup(|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_apply_unless_the_environment_overrides_them() {
        assert_eq!(from(&[]).unwrap(), Liveness::default());
        assert_eq!(from(&[(HEARTBEAT_INTERVAL_VAR, "")]).unwrap(), Liveness::default());
        let tuned = from(&[(HEARTBEAT_INTERVAL_VAR, "0.2"), (HEARTBEAT_TIMEOUT_VAR, "1.5")]).unwrap();
        assert_eq!(tuned, Liveness { interval: Duration::from_millis(200), dead_after: Duration::from_millis(1500) });
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = from(&[(HEARTBEAT_INTERVAL_VAR, "soon")]).unwrap_err();
        assert!(err.contains(HEARTBEAT_INTERVAL_VAR) && err.contains("soon"), "{err}");
        let err = from(&[(HEARTBEAT_TIMEOUT_VAR, "-3")]).unwrap_err();
        assert!(err.contains(HEARTBEAT_TIMEOUT_VAR), "{err}");
        let err = from(&[(HEARTBEAT_INTERVAL_VAR, "10"), (HEARTBEAT_TIMEOUT_VAR, "5")]).unwrap_err();
        assert!(err.contains("must be longer"), "{err}");
    }
}
