//! Retry policies and backoff arithmetic.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::vocab::FailureReason;

/// Which failures a policy may retry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RetryOn {
    /// Every failure except cancellation.
    All,
    /// Only out-of-memory, timeout and infrastructure failures.
    Transient,
    /// An allow-list. Exception-class entries are matched by the step runner (which owns the
    /// exception object) and reported as `matched_exception_class`.
    List {
        /// Failure reasons that match.
        reasons: Vec<FailureReason>,
        /// Qualified names (`module.QualName`) of the exception classes that match, subclasses
        /// included.
        classes: Vec<String>,
        /// Opaque id of the exception-class entries in the process that declared them, which
        /// the step runner matches exceptions against; meaningless elsewhere, so not serialised.
        #[serde(skip)]
        class_filter: Option<usize>,
    },
}

/// Wait between attempts. All durations are seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Backoff {
    /// Always `delay`.
    Constant {
        /// Seconds.
        delay: f64,
        /// Relative jitter in `[0, 1]`.
        jitter: f64,
        /// Upper bound in seconds.
        max_delay: Option<f64>,
    },
    /// `initial + step * n`.
    Linear {
        /// Seconds added per failure.
        step: f64,
        /// Seconds before the first increment.
        initial: f64,
        /// Relative jitter in `[0, 1]`.
        jitter: f64,
        /// Upper bound in seconds.
        max_delay: Option<f64>,
    },
    /// `initial * factor^(n-1)`.
    Exponential {
        /// First wait in seconds.
        initial: f64,
        /// Growth factor.
        factor: f64,
        /// Relative jitter in `[0, 1]`.
        jitter: f64,
        /// Upper bound in seconds.
        max_delay: Option<f64>,
    },
    /// `schedule[min(n-1, len-1)]`.
    Fixed {
        /// Waits in seconds.
        schedule: Vec<f64>,
        /// Relative jitter in `[0, 1]`.
        jitter: f64,
    },
}

impl Backoff {
    /// The wait before the next attempt after `failures` failures (1 after the first), with
    /// `unit_random` in `[0, 1)` drawing the jitter.
    pub fn delay(&self, failures: u32, unit_random: f64) -> Duration {
        let n = f64::from(failures.max(1));
        let (computed, jitter, max_delay) = match self {
            Backoff::Constant { delay, jitter, max_delay } => (*delay, *jitter, *max_delay),
            Backoff::Linear { step, initial, jitter, max_delay } => (initial + step * n, *jitter, *max_delay),
            Backoff::Exponential { initial, factor, jitter, max_delay } => {
                (initial * factor.powf(n - 1.0), *jitter, *max_delay)
            }
            Backoff::Fixed { schedule, jitter } => {
                let index = (failures.max(1) as usize - 1).min(schedule.len().saturating_sub(1));
                (schedule.get(index).copied().unwrap_or(0.0), *jitter, None)
            }
        };
        let capped = max_delay.map_or(computed, |cap| computed.min(cap));
        let factor = 1.0 - jitter + 2.0 * jitter * unit_random;
        Duration::from_secs_f64((capped * factor).max(0.0))
    }

    /// Checks the arguments, naming the offending one.
    pub fn validate(&self) -> crate::Result<()> {
        let invalid = |msg: String| Err(crate::Error::InvalidValue(msg));
        let (values, jitter): (Vec<(&str, f64)>, f64) = match self {
            Backoff::Constant { delay, jitter, max_delay } => {
                (vec![("delay", *delay), ("max_delay", max_delay.unwrap_or(0.0))], *jitter)
            }
            Backoff::Linear { step, initial, jitter, max_delay } => {
                (vec![("step", *step), ("initial", *initial), ("max_delay", max_delay.unwrap_or(0.0))], *jitter)
            }
            Backoff::Exponential { initial, factor, jitter, max_delay } => {
                if *factor <= 0.0 {
                    return invalid(format!("Backoff factor must be > 0, got {factor}"));
                }
                (vec![("initial", *initial), ("max_delay", max_delay.unwrap_or(0.0))], *jitter)
            }
            Backoff::Fixed { schedule, jitter } => {
                if schedule.is_empty() {
                    return invalid("Backoff.fixed schedule must not be empty".into());
                }
                (schedule.iter().map(|s| ("schedule", *s)).collect(), *jitter)
            }
        };
        if let Some((name, value)) = values.iter().find(|(_, v)| *v < 0.0 || v.is_nan()) {
            return invalid(format!("Backoff {name} must be a non-negative duration, got {value}"));
        }
        if !(0.0..=1.0).contains(&jitter) {
            return invalid(format!("Backoff jitter must be within [0, 1], got {jitter}"));
        }
        Ok(())
    }
}

/// A retry policy: how many extra attempts, how long to wait, which failures qualify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Extra attempts after the first.
    pub max_retries: u32,
    /// Wait between attempts; `None` retries at once.
    pub backoff: Option<Backoff>,
    /// Which failures qualify.
    pub retry_on: RetryOn,
    /// Reasons that escalate compute; they are retriable even when `retry_on` omits them.
    pub escalate_on: Vec<FailureReason>,
}

impl RetryPolicy {
    /// Whether a failure with `reason` (and whether its exception matched a class entry of
    /// the allow-list) may be retried under this policy.
    pub fn allows(&self, reason: FailureReason, matched_exception_class: bool) -> bool {
        if reason == FailureReason::Canceled {
            return false;
        }
        if self.escalate_on.contains(&reason) {
            return true;
        }
        match &self.retry_on {
            RetryOn::All => true,
            RetryOn::Transient => {
                matches!(reason, FailureReason::OutOfMemory | FailureReason::Timeout | FailureReason::Infrastructure)
            }
            RetryOn::List { reasons, .. } => matched_exception_class || reasons.contains(&reason),
        }
    }
}

/// A policy given inline or by name (`CodeRepository(retries={...})`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RetrySpec {
    /// An inline policy.
    Policy(RetryPolicy),
    /// A key of the repository's registered policies.
    Named(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_matches_spec_example() {
        let b = Backoff::Exponential { initial: 0.5, factor: 3.0, jitter: 0.0, max_delay: Some(20.0) };
        let waits: Vec<f64> = (1..=5).map(|n| b.delay(n, 0.5).as_secs_f64()).collect();
        assert_eq!(waits, vec![0.5, 1.5, 4.5, 13.5, 20.0]);
    }

    #[test]
    fn fixed_repeats_last_entry() {
        let b = Backoff::Fixed { schedule: vec![1.0, 5.0, 30.0], jitter: 0.0 };
        assert_eq!(b.delay(5, 0.0), Duration::from_secs(30));
    }

    #[test]
    fn jitter_bounds() {
        let b = Backoff::Constant { delay: 10.0, jitter: 0.5, max_delay: None };
        assert_eq!(b.delay(1, 0.0), Duration::from_secs(5));
        assert_eq!(b.delay(1, 1.0), Duration::from_secs(15));
    }

    #[test]
    fn transient_skips_plain_errors() {
        let p = RetryPolicy { max_retries: 3, backoff: None, retry_on: RetryOn::Transient, escalate_on: vec![] };
        assert!(!p.allows(FailureReason::Error, false));
        assert!(p.allows(FailureReason::Timeout, false));
        assert!(!p.allows(FailureReason::Canceled, true));
    }
}
