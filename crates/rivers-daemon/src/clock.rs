//! Time as the daemon sees it: the system clock in production, a virtual clock in tests and
//! in `simulate_automation`, so every loop can be driven through hours of cron ticks without
//! sleeping.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::watch;

/// The daemon's source of the current time and of timers.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// Completes once [`Clock::now`] has reached `deadline` (at once when it already has).
    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()>;
}

/// The system clock, with tokio's timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // Re-check after waking: the wall clock may have been adjusted while asleep, and a
            // cron tick must not fire early.
            loop {
                let left = deadline - Utc::now();
                let Ok(left) = left.to_std() else { return };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left).await;
            }
        })
    }
}

/// A clock that moves only when told to. Sleepers wake as soon as an
/// [`advance`](VirtualClock::advance) reaches their deadline.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    now: Arc<watch::Sender<DateTime<Utc>>>,
}

impl VirtualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self { now: Arc::new(watch::Sender::new(start)) }
    }

    /// Moves the clock forward by `step` (never backwards).
    pub fn advance(&self, step: chrono::TimeDelta) {
        self.now.send_modify(|now| *now += step.max(chrono::TimeDelta::zero()));
    }

    /// Moves the clock to `time`, if that is later than now.
    pub fn advance_to(&self, time: DateTime<Utc>) {
        self.now.send_if_modified(|now| {
            let later = time > *now;
            if later {
                *now = time;
            }
            later
        });
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; a dropped clock never reaches the deadline.
            if now.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[tokio::test]
    async fn a_virtual_sleeper_wakes_only_when_the_clock_reaches_its_deadline() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = VirtualClock::new(start);
        let mut sleeper = tokio::spawn(clock.sleep_until(start + TimeDelta::seconds(10)));
        clock.advance(TimeDelta::seconds(9));
        tokio::task::yield_now().await;
        assert!(futures::poll!(&mut sleeper).is_pending());
        clock.advance(TimeDelta::seconds(1));
        sleeper.await.unwrap();
        assert_eq!(clock.now(), start + TimeDelta::seconds(10));
        // A deadline already passed completes at once.
        clock.sleep_until(start).await;
    }
}
