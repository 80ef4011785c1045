//! `collect_stream()` consumers (graph-and-tasks.md R50-R52, R57): when they become ready, and
//! how the instances' outcomes reach them while they run.
//!
//! The runner here is scripted with async closures, so that a consumer can wait on its feed
//! and an instance can wait for something the consumer did: ordering is proven by causality,
//! never by timing. Every wait is bounded by `PATIENCE` so that a missing delivery fails the
//! test instead of hanging it.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use rivers_core::{ExecutorKind, FailureReason, Gather, Plan, RunStatus};
use rivers_engine::{
    FanIn, InstanceFeed, InstanceOutcome, RunOptions, StepFailure, StepOutput, StepRequest, StepRunner, execute_run,
};
use rivers_storage::Storage;
use tokio::sync::watch;

/// How long anything in these tests may wait for something that must happen.
const PATIENCE: Duration = Duration::from_secs(10);

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<InstanceFeed>();
    send_sync::<FanIn>();
};

type StepResult = Result<StepOutput, StepFailure>;
type Script = dyn Fn(StepRequest) -> BoxFuture<'static, StepResult> + Send + Sync;

/// A runner whose steps are async closures.
struct ScriptedRunner(Box<Script>);

impl StepRunner for ScriptedRunner {
    fn run_step(&self, request: StepRequest) -> BoxFuture<'static, StepResult> {
        (self.0)(request)
    }

    fn on_final_failure(&self, _request: StepRequest, _failure: StepFailure) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

fn options(run_id: &str) -> RunOptions {
    RunOptions::manual(run_id, 4)
}

/// Graph `g` of `mapped_graph_plan`, its `g/total` streaming the scores (`collect_stream()`).
fn streaming_plan(executor: ExecutorKind, max_concurrency: Option<u32>) -> Plan {
    super::mapped_graph_plan(max_concurrency, executor, Some(Gather::Stream))
}

/// What the consumer `g/total` saw: its fan-in when it started, and the outcomes it read.
#[derive(Default)]
struct Consumer {
    fan_in: Mutex<Option<FanIn>>,
    read: Mutex<Vec<InstanceOutcome>>,
    /// Outcomes read so far, for instances that wait on the consumer.
    progress: Option<watch::Sender<usize>>,
}

impl Consumer {
    fn new() -> Arc<Self> {
        Arc::new(Consumer { progress: Some(watch::Sender::new(0)), ..Default::default() })
    }

    /// Waits until the consumer has read `count` outcomes; panics after `PATIENCE`.
    async fn has_read(&self, count: usize) {
        let mut progress = self.progress.as_ref().unwrap().subscribe();
        let waited = tokio::time::timeout(PATIENCE, progress.wait_for(|read| *read >= count)).await;
        assert!(waited.is_ok(), "the consumer never read {count} outcome(s): it was not running beside the instances");
    }

    /// Reads up to `limit` outcomes from its feed (all of them when `None`), then succeeds, or
    /// fails at a failed instance as the Python stream raises.
    async fn consume(self: Arc<Self>, request: StepRequest, limit: Option<usize>) -> StepResult {
        let fan_in = request.fan_in.first().cloned().expect("the consumer gathers g/score");
        *self.fan_in.lock() = Some(fan_in.clone());
        let feed = fan_in.outcomes.expect("a stream consumer gets the instances' outcomes");
        for index in 0..limit.unwrap_or(fan_in.keys.len()).min(fan_in.keys.len()) {
            let outcome =
                tokio::time::timeout(PATIENCE, feed.outcome(index)).await.expect("an outcome within PATIENCE");
            let outcome = outcome.expect("the run delivers one outcome per key before it ends");
            self.read.lock().push(outcome.clone());
            self.progress.as_ref().unwrap().send_modify(|read| *read += 1);
            if let Some(message) = outcome.failure() {
                let message = format!("fan-out instance 'g/score[{}]' failed: {message}", outcome.key());
                return Err(StepFailure::new(message, FailureReason::Error));
            }
        }
        Ok(StepOutput::default())
    }

    fn keys_read(&self) -> Vec<String> {
        self.read.lock().iter().map(|o| o.key().to_string()).collect()
    }
}

/// The template `g/score` reports `keys`; `g/items` and `g` succeed; instances and the
/// consumer run `instance` and `consumer`.
fn scripted(
    keys: &'static [&'static str],
    instance: impl Fn(String) -> BoxFuture<'static, StepResult> + Send + Sync + 'static,
    consumer: impl Fn(StepRequest) -> BoxFuture<'static, StepResult> + Send + Sync + 'static,
) -> Arc<ScriptedRunner> {
    Arc::new(ScriptedRunner(Box::new(move |request: StepRequest| -> BoxFuture<'static, StepResult> {
        if let Some(key) = request.mapping_key.clone() {
            return instance(key);
        }
        match request.step_key.as_str() {
            "g/total" => consumer(request),
            "g/score" => {
                let fan_out = Some(keys.iter().map(|k| k.to_string()).collect());
                Box::pin(async move { Ok(StepOutput { fan_out, ..Default::default() }) })
            }
            _ => Box::pin(async { Ok(StepOutput::default()) }),
        }
    })))
}

fn instance_failure(key: &str) -> StepResult {
    Err(StepFailure::new(format!("RuntimeError: instance {key} broke"), FailureReason::Error))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_consumer_starts_with_its_template_and_reads_outcomes_as_instances_end() {
    let storage = Storage::memory().await.unwrap();
    let consumer = Consumer::new();
    let waits = Arc::clone(&consumer);
    let reads = Arc::clone(&consumer);
    // `c` ends at once; `a` only after the consumer read one outcome, `b` after it read two:
    // the consumer can only read them while they run, and in that order.
    let runner = scripted(
        &["a", "b", "c"],
        move |key| {
            let consumer = Arc::clone(&waits);
            Box::pin(async move {
                match key.as_str() {
                    "a" => consumer.has_read(1).await,
                    "b" => consumer.has_read(2).await,
                    _ => {}
                }
                Ok(StepOutput::default())
            })
        },
        move |request| Box::pin(Arc::clone(&reads).consume(request, None)),
    );
    let plan = streaming_plan(ExecutorKind::Parallel, None);
    let outcome = execute_run(&storage, &plan, runner, options("live")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success, "{:?}", outcome.failed);
    assert_eq!(consumer.keys_read(), vec!["c", "a", "b"], "completion order");
    let fan_in = consumer.fan_in.lock().clone().unwrap();
    assert!(fan_in.live);
    assert_eq!(fan_in.keys, vec!["a", "b", "c"], "element order");
    assert!(fan_in.completed.len() < 3, "it started before every instance ended: {:?}", fan_in.completed);
    assert!(outcome.attempted.contains(&"g".to_string()), "the graph step ran after all of them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_instance_reaches_the_live_consumer_which_fails_while_its_siblings_finish() {
    let storage = Storage::memory().await.unwrap();
    let consumer = Consumer::new();
    let waits = Arc::clone(&consumer);
    let reads = Arc::clone(&consumer);
    // `b` fails first; `a` and `c` end only after the consumer has read (and failed at) it.
    let runner = scripted(
        &["a", "b", "c"],
        move |key| {
            let consumer = Arc::clone(&waits);
            Box::pin(async move {
                if key == "b" {
                    return instance_failure(&key);
                }
                consumer.has_read(1).await;
                Ok(StepOutput::default())
            })
        },
        move |request| Box::pin(Arc::clone(&reads).consume(request, None)),
    );
    let plan = streaming_plan(ExecutorKind::Parallel, None);
    let outcome = execute_run(&storage, &plan, runner, options("live-failure")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failure);
    let read = consumer.read.lock().clone();
    assert_eq!(
        read,
        vec![InstanceOutcome::Failed { key: "b".into(), message: "RuntimeError: instance b broke".into() }]
    );
    let failed: Vec<&str> = outcome.failed.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(failed[0], "g/score[b]");
    assert!(failed.contains(&"g/total"), "the consumer fails at the failed instance: {failed:?}");
    assert!(failed.contains(&"g"), "and so does the graph step: {failed:?}");
    for sibling in ["g/score[a]", "g/score[c]"] {
        assert!(outcome.attempted.contains(&sibling.to_string()), "{sibling} still ran: {:?}", outcome.attempted);
        assert!(!failed.contains(&sibling), "{sibling} succeeded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_in_process_executor_the_consumer_waits_for_every_instance_to_end_and_sees_failures() {
    let storage = Storage::memory().await.unwrap();
    let consumer = Consumer::new();
    let reads = Arc::clone(&consumer);
    let runner = scripted(
        &["a", "b", "c"],
        |key| Box::pin(async move { if key == "b" { instance_failure(&key) } else { Ok(StepOutput::default()) } }),
        move |request| Box::pin(Arc::clone(&reads).consume(request, None)),
    );
    let plan = streaming_plan(ExecutorKind::InProcess, None);
    let outcome = execute_run(&storage, &plan, runner, options("barrier")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failure);
    let fan_in = consumer.fan_in.lock().clone().expect("the consumer runs although an instance failed");
    assert!(!fan_in.live);
    let delivered = fan_in.outcomes.unwrap().delivered();
    assert_eq!(delivered.len(), 3, "every instance ended before the consumer started: {delivered:?}");
    assert_eq!(consumer.keys_read(), vec!["a", "b"], "it reads up to the failed instance, in completion order");
    assert!(outcome.failed.iter().any(|(key, _)| key == "g/total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_fan_out_gives_the_live_consumer_no_outcomes_and_the_graph_still_runs() {
    let storage = Storage::memory().await.unwrap();
    let consumer = Consumer::new();
    let reads = Arc::clone(&consumer);
    let runner = scripted(
        &[],
        |_| Box::pin(async { Ok(StepOutput::default()) }),
        move |request| Box::pin(Arc::clone(&reads).consume(request, None)),
    );
    let plan = streaming_plan(ExecutorKind::Parallel, None);
    let outcome = execute_run(&storage, &plan, runner, options("empty")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success, "{:?}", outcome.failed);
    let fan_in = consumer.fan_in.lock().clone().unwrap();
    assert!(fan_in.keys.is_empty());
    assert!(fan_in.outcomes.unwrap().delivered().is_empty());
    assert!(outcome.attempted.contains(&"g".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_run_stops_starting_steps_the_live_consumer_is_told_which_instances_never_ran() {
    let storage = Storage::memory().await.unwrap();
    let consumer = Consumer::new();
    let reads = Arc::clone(&consumer);
    // One instance at a time: `a` fails first and stops the run; `b` and `c` never start.
    let runner = scripted(
        &["a", "b", "c"],
        |key| Box::pin(async move { instance_failure(&key) }),
        move |request| {
            let consumer = Arc::clone(&reads);
            // Read every outcome: the first one is a failure, but keep going to see all.
            Box::pin(async move {
                let fan_in = request.fan_in[0].clone();
                *consumer.fan_in.lock() = Some(fan_in.clone());
                let feed = fan_in.outcomes.unwrap();
                for index in 0..3 {
                    let outcome = tokio::time::timeout(PATIENCE, feed.outcome(index)).await.expect("no hang");
                    consumer.read.lock().push(outcome.expect("one outcome per key"));
                }
                Ok(StepOutput::default())
            })
        },
    );
    let mut opts = options("stopped");
    opts.stop_on_failure = true;
    let plan = streaming_plan(ExecutorKind::Parallel, Some(1));
    let outcome = tokio::time::timeout(PATIENCE, execute_run(&storage, &plan, runner, opts))
        .await
        .expect("the run ends")
        .unwrap();
    assert_eq!(outcome.status, RunStatus::Failure);
    let read = consumer.read.lock().clone();
    assert_eq!(read.iter().map(InstanceOutcome::key).collect::<Vec<_>>(), vec!["a", "b", "c"]);
    assert_eq!(read[0].failure(), Some("RuntimeError: instance a broke"));
    for never_ran in &read[1..] {
        assert!(never_ran.failure().is_some_and(|m| m.contains("did not run")), "{never_ran:?}");
    }
    assert!(!outcome.attempted.contains(&"g/score[b]".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_counts_earlier_instances_as_ended_even_after_the_consumer_succeeded() {
    let storage = Storage::memory().await.unwrap();
    let plan = streaming_plan(ExecutorKind::Parallel, None);
    // The first attempt: the consumer reads one outcome (not `b`'s) and succeeds; then `b` fails.
    let consumer = Consumer::new();
    let waits = Arc::clone(&consumer);
    let reads = Arc::clone(&consumer);
    let runner = scripted(
        &["a", "b", "c"],
        move |key| {
            let consumer = Arc::clone(&waits);
            Box::pin(async move {
                if key != "b" {
                    return Ok(StepOutput::default());
                }
                consumer.has_read(1).await;
                instance_failure(&key)
            })
        },
        move |request| Box::pin(Arc::clone(&reads).consume(request, Some(1))),
    );
    let first = execute_run(&storage, &plan, runner, options("resumed")).await.unwrap();
    assert_eq!(first.status, RunStatus::Failure);
    assert!(!first.failed.iter().any(|(key, _)| key == "g/total"), "{:?}", first.failed);

    let ran = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&ran);
    let runner = scripted(
        &["a", "b", "c"],
        move |key| {
            record.lock().push(key);
            Box::pin(async { Ok(StepOutput::default()) })
        },
        |_| panic!("the consumer succeeded before: resume does not run it again"),
    );
    let mut opts = options("resumed");
    opts.resume = true;
    let second = execute_run(&storage, &plan, runner, opts).await.unwrap();
    assert_eq!(second.status, RunStatus::Success, "{:?}", second.failed);
    assert_eq!(*ran.lock(), vec!["b".to_string()], "only the instance that failed runs again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_live_consumer_reads_earlier_instances_and_the_rerun_one() {
    let storage = Storage::memory().await.unwrap();
    let plan = streaming_plan(ExecutorKind::Parallel, None);
    let failing = scripted(
        &["a", "b", "c"],
        |key| Box::pin(async move { if key == "b" { instance_failure(&key) } else { Ok(StepOutput::default()) } }),
        |_| Box::pin(async { Err(StepFailure::new("stream raised", FailureReason::Error)) }),
    );
    let first = execute_run(&storage, &plan, failing, options("resumed-live")).await.unwrap();
    assert_eq!(first.status, RunStatus::Failure);

    let consumer = Consumer::new();
    let reads = Arc::clone(&consumer);
    let runner = scripted(
        &["a", "b", "c"],
        |_| Box::pin(async { Ok(StepOutput::default()) }),
        move |request| Box::pin(Arc::clone(&reads).consume(request, None)),
    );
    let mut opts = options("resumed-live");
    opts.resume = true;
    let second = execute_run(&storage, &plan, runner, opts).await.unwrap();
    assert_eq!(second.status, RunStatus::Success, "{:?}", second.failed);
    let mut read = consumer.keys_read();
    read.sort();
    assert_eq!(read, vec!["a", "b", "c"], "each instance once, the earlier ones included");
}
