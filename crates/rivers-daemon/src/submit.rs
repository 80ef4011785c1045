//! Turning an evaluation's requests into runs and backfills: target resolution, tag merging,
//! priority, run-key deduplication, and the immediate launch when there is no run queue.

use rivers_core::{AutomationType, DEFAULT_PRIORITY, LaunchedBy, RunBackendKind, RunStatus, run_priority};
use rivers_storage::{NewRun, QueuedRun, RunKey};

use crate::daemon::Context;
use crate::requests::{Request, RunRequest};

/// The automation a request came from.
pub(crate) struct Origin<'a> {
    pub(crate) automation_type: AutomationType,
    pub(crate) name: &'a str,
    pub(crate) job_name: Option<&'a str>,
    pub(crate) asset_selection: &'a [String],
    pub(crate) tags: &'a [(String, String)],
}

impl Origin<'_> {
    fn launched_by(&self) -> LaunchedBy {
        match self.automation_type {
            AutomationType::Schedule => LaunchedBy::Schedule { name: self.name.to_owned() },
            AutomationType::Sensor => LaunchedBy::Sensor { name: self.name.to_owned() },
            AutomationType::Condition => LaunchedBy::Condition,
        }
    }
}

/// What a tick created, and the error that stopped it, if any.
#[derive(Debug, Default)]
pub(crate) struct Submitted {
    pub(crate) run_ids: Vec<String>,
    pub(crate) backfill_ids: Vec<String>,
    pub(crate) error: Option<String>,
}

/// The automation's tags with the request's merged over them (the request wins).
fn merge_tags(base: &[(String, String)], request: &[(String, String)]) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> =
        base.iter().filter(|(key, _)| !request.iter().any(|(own, _)| own == key)).cloned().collect();
    tags.extend(request.iter().cloned());
    tags
}

/// Creates the runs and backfills of `requests` in order; stops at the first that cannot be
/// created (those created before stay listed).
pub(crate) async fn submit(context: &Context, origin: &Origin<'_>, requests: Vec<Request>) -> Submitted {
    let mut submitted = Submitted::default();
    for request in requests {
        let outcome = match request {
            Request::Run(run) => submit_run(context, origin, run).await.map(|id| submitted.run_ids.extend(id)),
            Request::Backfill(backfill) => context
                .location
                .submit_backfill(backfill, origin.launched_by())
                .await
                .map(|id| submitted.backfill_ids.push(id))
                .map_err(|error| format!("the backfill request could not be submitted: {error}")),
        };
        if let Err(error) = outcome {
            submitted.error = Some(error);
            break;
        }
    }
    // One pass for the whole tick, so its runs are admitted in priority order.
    if context.queue.is_some() && !submitted.run_ids.is_empty() {
        context.wake_coordinator.notify_one();
    }
    if !submitted.backfill_ids.is_empty() {
        context.wake_backfills.notify_one();
    }
    submitted
}

/// Creates (and without a queue, launches) the run of `request`; `None` when its run key was
/// used before.
async fn submit_run(context: &Context, origin: &Origin<'_>, request: RunRequest) -> Result<Option<String>, String> {
    let job_name = request.job_name.as_deref().or(origin.job_name);
    let (job_name, node_names) = match job_name {
        Some(job) => match context.automations.jobs.get(job) {
            Some(nodes) => (Some(job.to_owned()), nodes.clone()),
            None => {
                let mut known: Vec<&str> = context.automations.jobs.keys().map(String::as_str).collect();
                known.sort_unstable();
                return Err(format!(
                    "{} '{}' requested a run of job '{job}', which is not registered in this code location; \
                     registered jobs: [{}]",
                    origin.automation_type,
                    origin.name,
                    known.join(", ")
                ));
            }
        },
        None if !origin.asset_selection.is_empty() => (None, origin.asset_selection.to_vec()),
        None => {
            return Err(format!(
                "{} '{}' requested a run with no target: give the RunRequest or the {} a job_name{}",
                origin.automation_type,
                origin.name,
                origin.automation_type,
                if origin.automation_type == AutomationType::Sensor {
                    ", or the sensor an asset_selection"
                } else {
                    ""
                }
            ));
        }
    };
    let tags = merge_tags(origin.tags, &request.tags);
    let run_key = request.run_key.map(|key| RunKey {
        automation_type: origin.automation_type,
        automation_name: origin.name.to_owned(),
        key,
    });
    let target = RunTarget { job_name, node_names, partition_key: request.partition_key, tags };
    create_run(context, target, origin.launched_by(), run_key.as_ref()).await
}

/// What a requested run runs.
pub(crate) struct RunTarget {
    pub(crate) job_name: Option<String>,
    pub(crate) node_names: Vec<String>,
    pub(crate) partition_key: Option<rivers_core::partitions::PartitionKey>,
    pub(crate) tags: Vec<(String, String)>,
}

/// Creates a requested run (`Queued` with a run queue, else `NotStarted` and launched at
/// once); `None` when its run key was used before. The caller wakes the coordinator.
pub(crate) async fn create_run(
    context: &Context,
    target: RunTarget,
    launched_by: LaunchedBy,
    run_key: Option<&RunKey>,
) -> Result<Option<String>, String> {
    let queued = context.queue.is_some();
    let run = NewRun {
        run_id: uuid::Uuid::now_v7().to_string(),
        job_name: target.job_name,
        status: if queued { RunStatus::Queued } else { RunStatus::NotStarted },
        priority: run_priority(&target.tags, DEFAULT_PRIORITY),
        tags: target.tags,
        node_names: target.node_names,
        partition_key: target.partition_key.as_ref().and_then(|key| serde_json::to_value(key).ok()),
        launched_by,
        backend: RunBackendKind::Local,
    };
    let created = context
        .storage
        .create_requested_run(run, run_key)
        .await
        .map_err(|error| format!("the run could not be created: {error}"))?;
    let Some(record) = created else { return Ok(None) };
    let run_id = record.run_id.clone();
    if queued {
        let _ = context.queued.send(QueuedRun {
            run_id: record.run_id,
            priority: record.priority,
            queued_at: record.start_time,
            tags: record.tags,
            block_reason: None,
            backfill_id: None,
        });
    } else {
        crate::daemon::launch(context, record).await;
    }
    Ok(Some(run_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn request_tags_win_over_the_automations() {
        let merged = merge_tags(&pairs(&[("team", "core"), ("env", "prod")]), &pairs(&[("env", "dev")]));
        assert_eq!(merged, pairs(&[("team", "core"), ("env", "dev")]));
    }
}
