//! The fixed vocabularies of the spec. Each enum's `as_str` / `FromStr` pair is the only
//! spelling table for its strings.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every member, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        // Stored and sent in their canonical spelling, so a record decodes only if every
        // value is one of the spec's strings.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(Error::InvalidValue(format!(
                        "unknown {} {other:?}; expected one of: {}",
                        stringify!($name),
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
    };
}

vocabulary! {
    /// Status of a run record.
    RunStatus {
        /// Waiting in the run queue.
        Queued => "Queued",
        /// Admitted by the queue, not running yet.
        NotStarted => "NotStarted",
        /// Steps are executing.
        Running => "Running",
        /// Every step succeeded.
        Success => "Success",
        /// A step failed or the launch failed.
        Failure => "Failure",
        /// Cancelled before or during execution.
        Canceled => "Canceled",
    }
}

impl RunStatus {
    /// Whether the run can no longer change status.
    pub fn is_terminal(self) -> bool {
        matches!(self, RunStatus::Success | RunStatus::Failure | RunStatus::Canceled)
    }

    /// The statuses a run may move to `next` from, along the lifecycle of
    /// repository-and-execution.md: `Queued → NotStarted → Running → terminal`, `Queued →
    /// Canceled`, `NotStarted → Failure` (a launch failure or start timeout), and a terminal run
    /// back to `Running` when a process attaches to it to execute it again (`run_id_override`,
    /// with or without `resume`). A run created directly is created `Running`; nothing moves a
    /// run back to `Queued` or `NotStarted`.
    pub fn predecessors(next: RunStatus) -> &'static [RunStatus] {
        use RunStatus::{Canceled, Failure, NotStarted, Queued, Running, Success};
        match next {
            Queued => &[],
            NotStarted => &[Queued],
            Running => &[NotStarted, Success, Failure, Canceled],
            Success => &[Running],
            Failure => &[NotStarted, Running],
            Canceled => &[Queued, Running],
        }
    }

    /// Whether the lifecycle allows moving from `self` to `next`.
    pub fn may_become(self, next: RunStatus) -> bool {
        RunStatus::predecessors(next).contains(&self)
    }
}

vocabulary! {
    /// `StoredEvent.event_type` values.
    EventType {
        /// Execution of a run began.
        RunStart => "RunStart",
        /// The run ended with every step successful.
        RunSuccess => "RunSuccess",
        /// The run ended with a failure.
        RunFailure => "RunFailure",
        /// The run was cancelled.
        RunCanceled => "RunCanceled",
        /// A queued submission.
        RunQueued => "RunQueued",
        /// Queue admission.
        RunDequeued => "RunDequeued",
        /// The launch failed.
        RunLaunchFailed => "RunLaunchFailed",
        /// A step body is about to run.
        StepStart => "StepStart",
        /// A step succeeded.
        StepSuccess => "StepSuccess",
        /// A step's final attempt failed.
        StepFailure => "StepFailure",
        /// A step was not run because an upstream step failed.
        StepSkipped => "StepSkipped",
        /// A failed attempt will be retried.
        StepRetry => "StepRetry",
        /// A step's first pending pool claim.
        StepSlotWaiting => "StepSlotWaiting",
        /// Pool slots were granted.
        StepSlotClaimed => "StepSlotClaimed",
        /// A pool lease was renewed.
        StepSlotRenewed => "StepSlotRenewed",
        /// Pool slots were released.
        StepSlotReleased => "StepSlotReleased",
        /// An asset value was persisted.
        Materialization => "Materialization",
        /// An external asset was observed.
        Observation => "Observation",
        /// A partition a step covered was marked failed (`mark_partition_failed`).
        PartitionFailure => "PartitionFailure",
    }
}

vocabulary! {
    /// Classification of a step failure (`rivers/failure_reason`).
    FailureReason {
        /// An ordinary exception from user code.
        Error => "error",
        /// Memory exhaustion.
        OutOfMemory => "out_of_memory",
        /// A deadline was exceeded.
        Timeout => "timeout",
        /// The environment failed (dead worker, vanished pod).
        Infrastructure => "infrastructure",
        /// Cancellation was requested.
        Canceled => "canceled",
    }
}

vocabulary! {
    /// Executor kinds, as spelled in the `rivers/executor` metadata key.
    ExecutorKind {
        /// Serially in the calling process.
        InProcess => "in_process",
        /// A loky subprocess pool plus concurrent async tasks.
        Parallel => "parallel",
        /// One Kubernetes pod per step.
        Kubernetes => "kubernetes",
    }
}

vocabulary! {
    /// Lifecycle of a backfill: `Requested` (submitted for another process to execute) →
    /// `InProgress` → one of the terminal statuses. Python reports both non-terminal states as
    /// `"in_progress"`.
    BackfillState {
        /// Submitted; no coordinator has taken it yet.
        Requested => "requested",
        /// A coordinator is launching its runs.
        InProgress => "in_progress",
        /// Every partition completed.
        Completed => "completed",
        /// At least one partition failed, or the backfill itself failed.
        Failed => "failed",
        /// Stopped by `cancel_backfill`.
        Canceled => "canceled",
    }
}

impl BackfillState {
    /// Whether the backfill has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, BackfillState::Completed | BackfillState::Failed | BackfillState::Canceled)
    }

    /// The status Python reports: both non-terminal states read `"in_progress"`.
    pub fn reported(self) -> &'static str {
        match self {
            BackfillState::Requested => BackfillState::InProgress.as_str(),
            other => other.as_str(),
        }
    }
}

vocabulary! {
    /// What a tick evaluated (`StoredTick.automation_type`).
    AutomationType {
        /// A cron schedule.
        Schedule => "schedule",
        /// A sensor.
        Sensor => "sensor",
        /// An asset's automation condition.
        Condition => "condition",
    }
}

vocabulary! {
    /// How a tick ended (`StoredTick.status`).
    TickStatus {
        /// The evaluation completed and created at least one run or backfill.
        Success => "Success",
        /// The evaluation completed and created nothing.
        Skipped => "Skipped",
        /// The evaluation raised, timed out, returned an invalid value, or a request could not
        /// be launched.
        Failure => "Failure",
    }
}

vocabulary! {
    /// Whether the daemon ticks a schedule or sensor (`ScheduleStatus` / `SensorStatus`).
    AutomationStatus {
        /// Ticked by the daemon.
        Running => "Running",
        /// Registered and visible, but not ticked.
        Stopped => "Stopped",
    }
}

vocabulary! {
    /// What a backfill does after a partition fails.
    FailurePolicy {
        /// Failures do not stop other partitions.
        Continue => "continue",
        /// The first failed partition stops the backfill; unfinished partitions are canceled.
        StopOnFailure => "stop_on_failure",
    }
}

vocabulary! {
    /// Where a run executes, which decides who recovers it when its process dies: a local run
    /// is failed by run monitoring, a Kubernetes run is restarted by its operator.
    #[derive(Default)]
    RunBackendKind {
        /// In the launching process or a local subprocess (the default).
        #[default]
        Local => "local",
        /// A Kubernetes run pod.
        Kubernetes => "kubernetes",
    }
}

/// The user behind a manual launch through the authenticated UI (`UserRef`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct UserRef {
    /// Stable id: the OIDC `sub` claim or the forward-auth user header.
    pub subject: String,
    /// E-mail address, when the identity provider gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name, when the identity provider gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl UserRef {
    /// The name, else the e-mail address, else the subject.
    pub fn display(&self) -> &str {
        self.name.as_deref().or(self.email.as_deref()).unwrap_or(&self.subject)
    }
}

/// Origin of a run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LaunchedBy {
    /// `materialize()`, `Job.execute()` or a manual UI launch.
    Manual {
        /// The acting user of an authenticated UI launch; `None` from Python and the CLI.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<UserRef>,
    },
    /// A schedule tick.
    Schedule {
        /// Schedule name.
        name: String,
    },
    /// A sensor tick.
    Sensor {
        /// Sensor name.
        name: String,
    },
    /// A backfill.
    Backfill {
        /// Backfill id.
        backfill_id: String,
    },
    /// An automation condition.
    Condition,
}

impl LaunchedBy {
    /// A manual launch without an acting user (Python, the CLI).
    pub const MANUAL: LaunchedBy = LaunchedBy::Manual { user: None };

    /// The `kind` string.
    pub fn kind(&self) -> &'static str {
        match self {
            LaunchedBy::Manual { .. } => "manual",
            LaunchedBy::Schedule { .. } => "schedule",
            LaunchedBy::Sensor { .. } => "sensor",
            LaunchedBy::Backfill { .. } => "backfill",
            LaunchedBy::Condition => "condition",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_lifecycle_moves_forward_and_only_attaching_reopens_a_finished_run() {
        use RunStatus::{Canceled, Failure, NotStarted, Queued, Running, Success};
        let allowed = [
            (Queued, NotStarted),
            (Queued, Canceled),
            (NotStarted, Running),
            (NotStarted, Failure),
            (Running, Success),
            (Running, Failure),
            (Running, Canceled),
            (Success, Running),
            (Failure, Running),
            (Canceled, Running),
        ];
        for from in RunStatus::ALL {
            for to in RunStatus::ALL {
                assert_eq!(from.may_become(*to), allowed.contains(&(*from, *to)), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn spellings_round_trip() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>().unwrap(), *status);
        }
        for reason in FailureReason::ALL {
            assert_eq!(reason.as_str().parse::<FailureReason>().unwrap(), *reason);
        }
    }

    #[test]
    fn unknown_spelling_lists_valid_ones() {
        let err = "threads".parse::<ExecutorKind>().unwrap_err();
        assert!(err.to_string().contains("in_process, parallel, kubernetes"));
    }

    #[test]
    fn a_manual_origin_stored_without_a_user_reads_back_and_one_with_a_user_keeps_it() {
        let stored: LaunchedBy = serde_json::from_str(r#"{"kind":"manual"}"#).unwrap();
        assert_eq!(stored, LaunchedBy::MANUAL);
        assert_eq!(serde_json::to_string(&LaunchedBy::MANUAL).unwrap(), r#"{"kind":"manual"}"#);
        let user = UserRef { subject: "u-1".into(), email: Some("ada@example.com".into()), name: None };
        assert_eq!(user.display(), "ada@example.com");
        let origin = LaunchedBy::Manual { user: Some(user) };
        let text = serde_json::to_string(&origin).unwrap();
        assert_eq!(serde_json::from_str::<LaunchedBy>(&text).unwrap(), origin);
        assert_ne!(origin, LaunchedBy::MANUAL);
    }
}
