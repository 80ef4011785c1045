//! The run-queue coordinator: admits this code location's queued runs in priority order
//! under the global and tag limits (counted over the whole store), launches them, and fails
//! admitted runs that no executor started within `start_timeout`.

use std::collections::HashMap;
use std::time::Duration;

use rivers_core::RunStatus;
use rivers_storage::{ActiveRun, QueuedRun};

/// A limit on runs carrying a tag (`TagConcurrencyLimit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagConcurrencyLimit {
    /// The tag key.
    pub key: String,
    /// Runs the limit admits at once.
    pub limit: usize,
    /// With a value, only runs tagged `key=value` count and are gated.
    pub value: Option<String>,
    /// Without a value: the limit applies to each distinct value on its own.
    pub per_unique_value: bool,
}

/// How the queue admits runs (`RunQueueConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunQueueConfig {
    /// Dequeued, unfinished runs at once; `None` is unlimited.
    pub max_concurrent_runs: Option<usize>,
    /// Further limits per tag.
    pub tag_limits: Vec<TagConcurrencyLimit>,
    /// Time between coordinator passes.
    pub dequeue_interval: Duration,
    /// How long an admitted run may go without an executor before it fails.
    pub start_timeout: Duration,
}

impl Default for RunQueueConfig {
    fn default() -> Self {
        Self {
            max_concurrent_runs: Some(10),
            tag_limits: Vec::new(),
            dequeue_interval: Duration::from_millis(250),
            start_timeout: Duration::from_secs(180),
        }
    }
}

/// What one admission pass decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// Runs to dequeue, in admission order, with their priorities.
    pub admit: Vec<(String, i64)>,
    /// Why each run that stays queued does, when that changed (`None` clears it).
    pub block_reasons: Vec<(String, Option<String>)>,
}

/// The tag slots one run takes under one limit: which bucket it counts in, if any.
fn bucket<'a>(limit: &TagConcurrencyLimit, tags: &'a [(String, String)]) -> Option<Option<&'a str>> {
    let value = tags.iter().find(|(key, _)| *key == limit.key).map(|(_, value)| value.as_str())?;
    match &limit.value {
        Some(wanted) => (wanted == value).then_some(None),
        None if limit.per_unique_value => Some(Some(value)),
        None => Some(None),
    }
}

fn describe(limit: &TagConcurrencyLimit, value: Option<&str>) -> String {
    match (&limit.value, value) {
        (Some(wanted), _) => format!("tag limit {}={} ({} at once) reached", limit.key, wanted, limit.limit),
        (None, Some(value)) => {
            format!("tag limit {} per value ({} at once) reached for {}={}", limit.key, limit.limit, limit.key, value)
        }
        (None, None) => format!("tag limit {} ({} at once) reached", limit.key, limit.limit),
    }
}

/// How many of the runs waiting behind a reached global limit get it recorded as their block
/// reason: the ones next in line, which a user looks at; recording it on a queue of thousands
/// would rewrite every one of them whenever the limit is reached.
pub const GLOBAL_BLOCK_REASONS: usize = 100;

/// Decides which of `queued` (in admission order) to admit, given the `active` runs of the
/// whole store and the `max_concurrency` of the backfills the queued runs belong to. Runs
/// admitted in this pass count towards the limits; a run blocked by a tag or backfill limit
/// does not hold back the runs behind it; admission stops at the global limit.
pub fn admit<'a>(
    config: &RunQueueConfig,
    queued: impl IntoIterator<Item = &'a QueuedRun>,
    active: &[ActiveRun],
    backfill_limits: &HashMap<String, usize>,
) -> Admission {
    let mut running = active.len();
    let mut per_backfill: HashMap<String, usize> = HashMap::new();
    for backfill_id in active.iter().filter_map(|run| run.backfill_id.as_ref()) {
        *per_backfill.entry(backfill_id.clone()).or_default() += 1;
    }
    // Per limit: runs counted in each bucket (the `None` bucket when values are not told apart).
    let mut counts: Vec<HashMap<Option<String>, usize>> = vec![HashMap::new(); config.tag_limits.len()];
    for run in active {
        for (limit, count) in config.tag_limits.iter().zip(&mut counts) {
            if let Some(value) = bucket(limit, &run.tags) {
                *count.entry(value.map(str::to_owned)).or_default() += 1;
            }
        }
    }
    let global_reason = config.max_concurrent_runs.map(|max| format!("max_concurrent_runs ({max}) reached"));
    let mut admission = Admission::default();
    let mut behind_global_limit = 0;
    for run in queued {
        let reason = if config.max_concurrent_runs.is_some_and(|max| running >= max) {
            if behind_global_limit == GLOBAL_BLOCK_REASONS {
                break;
            }
            behind_global_limit += 1;
            global_reason.clone()
        } else {
            config
                .tag_limits
                .iter()
                .zip(&counts)
                .find_map(|(limit, count)| {
                    let value = bucket(limit, &run.tags)?;
                    let taken = count.get(&value.map(str::to_owned)).copied().unwrap_or(0);
                    (taken >= limit.limit).then(|| describe(limit, value))
                })
                .or_else(|| {
                    let backfill_id = run.backfill_id.as_ref()?;
                    let limit = *backfill_limits.get(backfill_id)?;
                    let taken = per_backfill.get(backfill_id).copied().unwrap_or(0);
                    (taken >= limit).then(|| format!("backfill {backfill_id} runs {limit} at once (max_concurrency)"))
                })
        };
        match reason {
            Some(reason) => {
                if run.block_reason.as_deref() != Some(reason.as_str()) {
                    admission.block_reasons.push((run.run_id.clone(), Some(reason)));
                }
            }
            None => {
                for (limit, count) in config.tag_limits.iter().zip(&mut counts) {
                    if let Some(value) = bucket(limit, &run.tags) {
                        *count.entry(value.map(str::to_owned)).or_default() += 1;
                    }
                }
                if let Some(backfill_id) = &run.backfill_id {
                    *per_backfill.entry(backfill_id.clone()).or_default() += 1;
                }
                running += 1;
                admission.admit.push((run.run_id.clone(), run.priority));
            }
        }
    }
    admission
}

/// The admitted runs of `location` that no executor started within `start_timeout` of `now`
/// (nanoseconds).
pub(crate) fn unstarted_past_timeout<'a>(
    active: &'a [ActiveRun],
    location: &str,
    start_timeout: Duration,
    now: i64,
) -> impl Iterator<Item = &'a ActiveRun> {
    let cutoff = now - i64::try_from(start_timeout.as_nanos()).unwrap_or(i64::MAX);
    active.iter().filter(move |run| {
        run.status == RunStatus::NotStarted && run.since < cutoff && run.code_location.as_deref() == Some(location)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(id: &str, priority: i64, at: i64, tags: &[(&str, &str)]) -> QueuedRun {
        QueuedRun {
            run_id: id.into(),
            priority,
            queued_at: at,
            tags: tags.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            block_reason: None,
            backfill_id: None,
        }
    }

    fn active(id: &str, tags: &[(&str, &str)]) -> ActiveRun {
        ActiveRun {
            run_id: id.into(),
            status: RunStatus::Running,
            tags: tags.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            since: 0,
            code_location: Some("here".into()),
            backfill_id: None,
        }
    }

    fn config(max: Option<usize>, limits: Vec<TagConcurrencyLimit>) -> RunQueueConfig {
        RunQueueConfig { max_concurrent_runs: max, tag_limits: limits, ..RunQueueConfig::default() }
    }

    fn limit(key: &str, limit: usize, value: Option<&str>, per_unique_value: bool) -> TagConcurrencyLimit {
        TagConcurrencyLimit { key: key.into(), limit, value: value.map(Into::into), per_unique_value }
    }

    fn admitted(admission: &Admission) -> Vec<&str> {
        admission.admit.iter().map(|(id, _)| id.as_str()).collect()
    }

    #[test]
    fn the_global_limit_counts_active_runs_and_runs_admitted_in_the_same_pass() {
        let queue = [queued("a", 0, 1, &[]), queued("b", 0, 2, &[]), queued("c", 0, 3, &[])];
        let decision = admit(&config(Some(3), vec![]), &queue, &[active("x", &[])], &HashMap::new());
        assert_eq!(admitted(&decision), ["a", "b"]);
        assert_eq!(decision.block_reasons, [("c".to_owned(), Some("max_concurrent_runs (3) reached".to_owned()))]);
        assert_eq!(
            admitted(&admit(&config(None, vec![]), &queue, &[active("x", &[])], &HashMap::new())),
            ["a", "b", "c"]
        );
        assert!(admitted(&admit(&config(Some(0), vec![]), &queue, &[], &HashMap::new())).is_empty());
    }

    #[test]
    fn a_fixed_value_limit_gates_only_runs_with_that_value() {
        let queue = [queued("gold1", 0, 1, &[("tier", "gold")]), queued("silver", 0, 2, &[("tier", "silver")])];
        let decision = admit(
            &config(None, vec![limit("tier", 1, Some("gold"), false)]),
            &queue,
            &[active("x", &[("tier", "gold")])],
            &HashMap::new(),
        );
        assert_eq!(admitted(&decision), ["silver"]);
        assert_eq!(decision.block_reasons[0].0, "gold1");
        assert!(decision.block_reasons[0].1.as_deref().unwrap().contains("tier=gold"));
    }

    #[test]
    fn an_any_value_limit_counts_every_value_together_and_per_unique_value_apart() {
        let queue = [
            queued("a1", 0, 1, &[("tenant", "acme")]),
            queued("g1", 0, 2, &[("tenant", "globex")]),
            queued("a2", 0, 3, &[("tenant", "acme")]),
            queued("none", 0, 4, &[]),
        ];
        let together = admit(&config(None, vec![limit("tenant", 1, None, false)]), &queue, &[], &HashMap::new());
        assert_eq!(admitted(&together), ["a1", "none"]);
        let apart = admit(&config(None, vec![limit("tenant", 1, None, true)]), &queue, &[], &HashMap::new());
        assert_eq!(admitted(&apart), ["a1", "g1", "none"]);
        assert!(apart.block_reasons[0].1.as_deref().unwrap().contains("tenant=acme"));
    }

    #[test]
    fn a_tag_blocked_run_does_not_hold_back_lower_priority_runs() {
        let queue = [queued("blocked", 5, 1, &[("db", "x")]), queued("free", 0, 2, &[])];
        let decision = admit(&config(Some(5), vec![limit("db", 0, None, false)]), &queue, &[], &HashMap::new());
        assert_eq!(admitted(&decision), ["free"]);
    }

    #[test]
    fn only_the_runs_next_in_line_behind_the_global_limit_get_its_reason() {
        let queue: Vec<QueuedRun> =
            (0..GLOBAL_BLOCK_REASONS as i64 + 50).map(|n| queued(&n.to_string(), 0, n, &[])).collect();
        let decision = admit(&config(Some(0), vec![]), &queue, &[], &HashMap::new());
        assert_eq!(decision.block_reasons.len(), GLOBAL_BLOCK_REASONS);
        assert_eq!(decision.block_reasons[0].0, "0");
    }

    #[test]
    fn an_unchanged_block_reason_is_not_rewritten() {
        let mut run = queued("a", 0, 1, &[]);
        let first = admit(&config(Some(0), vec![]), std::slice::from_ref(&run), &[], &HashMap::new());
        run.block_reason = first.block_reasons[0].1.clone();
        assert!(admit(&config(Some(0), vec![]), &[run], &[], &HashMap::new()).block_reasons.is_empty());
    }

    #[test]
    fn a_backfill_runs_at_most_its_max_concurrency_without_holding_back_other_runs() {
        let of = |mut run: QueuedRun, backfill: &str| {
            run.backfill_id = Some(backfill.into());
            run
        };
        let queue = [
            of(queued("b1", -10, 1, &[]), "bf"),
            of(queued("b2", -10, 2, &[]), "bf"),
            of(queued("b3", -10, 3, &[]), "bf"),
            queued("manual", -20, 4, &[]),
        ];
        let limits = HashMap::from([("bf".to_owned(), 2)]);
        let decision = admit(&config(None, vec![]), &queue, &[], &limits);
        assert_eq!(admitted(&decision), ["b1", "b2", "manual"]);
        assert_eq!(decision.block_reasons[0].0, "b3");
        assert!(decision.block_reasons[0].1.as_deref().unwrap().contains("max_concurrency"));
        let mut running = active("b0", &[]);
        running.backfill_id = Some("bf".into());
        let decision = admit(&config(None, vec![]), &queue, &[running], &limits);
        assert_eq!(admitted(&decision), ["b1", "manual"], "a running run of the backfill counts");
        assert_eq!(admitted(&admit(&config(None, vec![]), &queue, &[], &HashMap::new())).len(), 4);
    }
}
