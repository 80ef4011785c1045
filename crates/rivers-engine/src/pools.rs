//! The claim protocol of concurrency pools, step side: before a pooled step executes it
//! claims every pool it lists, all or none (`Storage::claim_concurrency_slots`); while the
//! claim is pending it polls again every `RIVERS_CLAIM_POLL_INTERVAL` plus a random jitter of
//! up to `RIVERS_CLAIM_POLL_JITTER`, and fails after `RIVERS_CLAIM_TIMEOUT`. Once claimed, a
//! background task renews the lease every third of its length until the step's attempt ends
//! and the slots are released. Each transition is recorded as a `StepSlot*` event.
//!
//! The scheduler claims outside the executor lanes: a step waiting for slots holds no
//! executor slot, so the run's other ready steps keep executing (docs/pools.md).

use std::time::{Duration, Instant};

use rivers_core::{EventType, PlanStep, PoolClaim, parse_duration};
use rivers_storage::{ConcurrencyClaim, NewEvent, Storage};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// `RIVERS_CLAIM_TIMEOUT`: how long a step waits for pool slots before it fails.
pub const CLAIM_TIMEOUT_VAR: &str = "RIVERS_CLAIM_TIMEOUT";
/// `RIVERS_CLAIM_POLL_INTERVAL`: the base interval between claim attempts of a waiting step.
pub const CLAIM_POLL_INTERVAL_VAR: &str = "RIVERS_CLAIM_POLL_INTERVAL";
/// `RIVERS_CLAIM_POLL_JITTER`: the most random jitter added to each interval (`0ms`: none).
pub const CLAIM_POLL_JITTER_VAR: &str = "RIVERS_CLAIM_POLL_JITTER";

/// Granularity at which a waiting step notices that its run stopped starting steps.
const STOP_TICK: Duration = Duration::from_millis(50);

/// How pooled steps wait for their slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimSettings {
    /// Longest wait before the step fails.
    pub timeout: Duration,
    /// Base interval between attempts.
    pub poll_interval: Duration,
    /// Most random jitter added to each interval, so that steps that were refused together
    /// do not all come back at the same instant.
    pub poll_jitter: Duration,
}

impl Default for ClaimSettings {
    /// Ten minutes' wait, polling every second plus up to half a second.
    fn default() -> Self {
        ClaimSettings {
            timeout: Duration::from_secs(600),
            poll_interval: Duration::from_secs(1),
            poll_jitter: Duration::from_millis(500),
        }
    }
}

impl ClaimSettings {
    /// The defaults, overridden by the `RIVERS_CLAIM_*` variables (duration strings). An
    /// unparsable value falls back to its default, with a warning.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`ClaimSettings::from_env`] with the environment given as a lookup function.
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Self {
        let defaults = ClaimSettings::default();
        let duration = |name: &str, default: Duration| match env(name).filter(|text| !text.trim().is_empty()) {
            None => default,
            Some(text) => parse_duration(&text).unwrap_or_else(|err| {
                tracing::warn!(variable = name, error = %err, "ignoring an unparsable claim setting");
                default
            }),
        };
        ClaimSettings {
            timeout: duration(CLAIM_TIMEOUT_VAR, defaults.timeout),
            poll_interval: duration(CLAIM_POLL_INTERVAL_VAR, defaults.poll_interval),
            poll_jitter: duration(CLAIM_POLL_JITTER_VAR, defaults.poll_jitter),
        }
    }

    fn next_pause(&self) -> Duration {
        let jitter = u64::try_from(self.poll_jitter.as_nanos()).unwrap_or(u64::MAX);
        self.poll_interval + Duration::from_nanos(if jitter == 0 { 0 } else { fastrand::u64(0..=jitter) })
    }
}

/// The pools a step claims before it executes: none for a fan-out template, which only reads
/// its producer's keys (its instances claim, each on its own).
pub(crate) fn step_claims(step: &PlanStep) -> &[PoolClaim] {
    if step.is_fan_out_template() { &[] } else { &step.pools }
}

/// One step of one run, as its slot claims and events name it.
#[derive(Clone)]
pub(crate) struct SlotClaimant {
    pub(crate) storage: Storage,
    pub(crate) run_id: String,
    pub(crate) step_key: String,
    /// The partition the step's events carry.
    pub(crate) partition: Option<String>,
    pub(crate) priority: i64,
}

impl SlotClaimant {
    fn event(&self, kind: EventType, metadata: Vec<(String, String)>) {
        self.storage.enqueue_event(NewEvent {
            asset_key: Some(self.step_key.clone()),
            partition_key: self.partition.clone(),
            metadata,
            ..NewEvent::new(kind, self.run_id.clone())
        });
    }

    /// Claims `claims`, waiting as [`ClaimSettings`] say. `stopped` is asked between polls:
    /// when it turns true (the run was cancelled or starts no further step) the wait ends.
    pub(crate) async fn acquire(
        self,
        claims: &[PoolClaim],
        settings: ClaimSettings,
        stopped: impl Fn() -> bool,
    ) -> Acquired {
        let deadline = Instant::now() + settings.timeout;
        let mut waiting = false;
        loop {
            let claim = self.storage.claim_concurrency_slots(claims, &self.run_id, &self.step_key, self.priority, None);
            match claim.await {
                Ok(ConcurrencyClaim::Claimed { lease }) => {
                    let pools = claims.iter().map(|c| c.pool.as_str()).collect::<Vec<_>>().join(",");
                    self.event(EventType::StepSlotClaimed, vec![("pools".into(), pools)]);
                    return Acquired::Held(HeldSlots::start(self, lease));
                }
                Ok(ConcurrencyClaim::Pending { reason, .. }) => {
                    if !waiting {
                        waiting = true;
                        self.event(EventType::StepSlotWaiting, vec![("reason".into(), reason.to_string())]);
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        self.withdraw().await;
                        return Acquired::TimedOut(format!(
                            "step '{}' waited {:?} for slots of pool(s) {} without getting them ({reason}); raise \
                             the pool limit (set_pool_limit or CodeRepository(pool_limits=...)), lower the step's pool_slots, \
                             or wait longer with RIVERS_CLAIM_TIMEOUT",
                            self.step_key,
                            settings.timeout,
                            claims.iter().map(|c| format!("'{}'", c.pool)).collect::<Vec<_>>().join(", "),
                        ));
                    }
                    if !pause_unless(settings.next_pause().min(deadline - now), &stopped).await {
                        self.withdraw().await;
                        return Acquired::Stopped;
                    }
                }
                Err(err) => {
                    self.withdraw().await;
                    return Acquired::Failed(format!("could not claim pool slots for step '{}': {err}", self.step_key));
                }
            }
        }
    }

    /// Takes the step off the pools' waiting lists.
    async fn withdraw(&self) {
        if let Err(err) = self.storage.free_concurrency_slots(&self.run_id, &self.step_key).await {
            tracing::warn!(step = self.step_key, error = %err, "could not withdraw a step's wait for pool slots");
        }
    }
}

/// Sleeps `pause` in ticks; `false` as soon as `stopped` says so.
async fn pause_unless(pause: Duration, stopped: &impl Fn() -> bool) -> bool {
    let until = Instant::now() + pause;
    loop {
        if stopped() {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        tokio::time::sleep((until - now).min(STOP_TICK)).await;
    }
}

/// How a step's wait for its pool slots ended.
pub(crate) enum Acquired {
    /// Every pool granted its slots.
    Held(HeldSlots),
    /// `RIVERS_CLAIM_TIMEOUT` passed: the step fails with this message.
    TimedOut(String),
    /// The store failed: the step fails with this message.
    Failed(String),
    /// The run stopped starting steps while the step waited.
    Stopped,
}

/// Slots a step holds, with the task renewing their lease. Release them with
/// [`HeldSlots::release`]; dropping stops the renewal only (the lease then runs out).
pub(crate) struct HeldSlots {
    claimant: SlotClaimant,
    stop_renewal: Option<oneshot::Sender<()>>,
    renewal: Option<JoinHandle<()>>,
}

impl HeldSlots {
    fn start(claimant: SlotClaimant, lease: Duration) -> Self {
        let (stop_renewal, mut stopped) = oneshot::channel::<()>();
        let renewer = claimant.clone();
        // A third of the lease: two renewals may fail or run late before the lease ends.
        let every = lease / 3;
        let renewal = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    () = tokio::time::sleep(every) => {}
                }
                match renewer.storage.renew_slot_lease(&renewer.run_id, &renewer.step_key, lease).await {
                    Ok(0) => tracing::warn!(
                        step = renewer.step_key,
                        "the step's pool slots expired before their lease was renewed; other steps may take them"
                    ),
                    Ok(_) => renewer.event(EventType::StepSlotRenewed, Vec::new()),
                    Err(err) => tracing::warn!(step = renewer.step_key, error = %err, "could not renew a pool lease"),
                }
            }
        });
        HeldSlots { claimant, stop_renewal: Some(stop_renewal), renewal: Some(renewal) }
    }

    /// Stops the renewal and releases the slots.
    pub(crate) async fn release(mut self) {
        if let Some(stop) = self.stop_renewal.take() {
            let _ = stop.send(());
        }
        if let Some(renewal) = self.renewal.take() {
            let _ = renewal.await;
        }
        let claimant = &self.claimant;
        match claimant.storage.free_concurrency_slots(&claimant.run_id, &claimant.step_key).await {
            Ok(()) => claimant.event(EventType::StepSlotReleased, Vec::new()),
            // The run's end releases them again, and their lease runs out at the latest.
            Err(err) => tracing::warn!(step = claimant.step_key, error = %err, "could not release pool slots"),
        }
    }
}

impl Drop for HeldSlots {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_the_environment_and_unparsable_values_fall_back() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_string())
        };
        assert_eq!(ClaimSettings::from_lookup(env(&[])), ClaimSettings::default());
        let set = ClaimSettings::from_lookup(env(&[
            (CLAIM_TIMEOUT_VAR, "2s"),
            (CLAIM_POLL_INTERVAL_VAR, "20ms"),
            (CLAIM_POLL_JITTER_VAR, "0ms"),
        ]));
        assert_eq!(
            set,
            ClaimSettings {
                timeout: Duration::from_secs(2),
                poll_interval: Duration::from_millis(20),
                poll_jitter: Duration::ZERO
            }
        );
        assert_eq!(set.next_pause(), Duration::from_millis(20));
        let broken = ClaimSettings::from_lookup(env(&[(CLAIM_TIMEOUT_VAR, "soon"), (CLAIM_POLL_JITTER_VAR, "")]));
        assert_eq!(broken, ClaimSettings::default());
        let pause = ClaimSettings::default().next_pause();
        assert!(pause >= Duration::from_secs(1) && pause <= Duration::from_millis(1500), "{pause:?}");
    }
}
