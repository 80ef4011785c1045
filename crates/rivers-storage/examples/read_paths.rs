//! Read paths at scale: the newest 50 runs out of 100,000, and the latest materialization of
//! an asset with 100,000 events, on memory and embedded storage (and a SurrealDB server when
//! `RIVERS_BENCH_SURREAL_ENDPOINT` is set). Prints the median and spread of each query.
//!
//! `cargo run -p rivers-storage --example read_paths [-- RUNS EVENTS]`

use std::time::Instant;

use futures::future::try_join_all;
use rivers_core::{EventType, LaunchedBy, RunBackendKind, RunStatus};
use rivers_storage::{NewEvent, NewRun, RemoteTarget, RunFilter, Storage};

/// Timed repetitions of each query.
const SAMPLES: usize = 25;
/// Runs created concurrently while filling the store.
const FILL_CONCURRENCY: usize = 32;

async fn fill(storage: &Storage, runs: usize, events: usize) {
    let started = Instant::now();
    for chunk in (0..runs).collect::<Vec<_>>().chunks(FILL_CONCURRENCY) {
        try_join_all(chunk.iter().map(|i| async move {
            let run_id = format!("run-{i:07}");
            storage
                .create_run(NewRun {
                    run_id: run_id.clone(),
                    job_name: Some(format!("job-{}", i % 10)),
                    status: RunStatus::Running,
                    tags: vec![("team".into(), format!("t{}", i % 7))],
                    node_names: vec!["hot".into()],
                    priority: 0,
                    partition_key: None,
                    launched_by: LaunchedBy::MANUAL,
                    backend: RunBackendKind::Local,
                })
                .await?;
            if i % 3 == 0 { storage.set_run_outcome(&run_id, RunStatus::Success, 1, 1, None).await } else { Ok(()) }
        }))
        .await
        .unwrap();
    }
    for i in 0..events {
        storage.enqueue_event(NewEvent {
            asset_key: Some("hot".into()),
            data_version: Some(format!("v{i}")),
            ..NewEvent::new(EventType::Materialization, format!("run-{:07}", i % runs.max(1)))
        });
        if i % 4096 == 4095 {
            storage.flush().await.unwrap();
        }
    }
    storage.flush().await.unwrap();
    eprintln!("  filled {runs} runs and {events} events in {:.1} s", started.elapsed().as_secs_f64());
}

async fn time<F, Fut, T>(label: &str, mut query: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = rivers_storage::Result<T>>,
{
    query().await.unwrap();
    let mut samples: Vec<f64> = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        query().await.unwrap();
        samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    let median = samples[SAMPLES / 2];
    println!("  {label:<44} median {median:>8.3} ms   (min {:.3}, max {:.3})", samples[0], samples[SAMPLES - 1]);
}

async fn measure(name: &str, storage: Storage, runs: usize, events: usize) {
    println!("{name}:");
    fill(&storage, runs, events).await;
    let latest = storage.get_latest_materialization("hot", None).await.unwrap().unwrap();
    assert_eq!(latest.data_version.as_deref(), Some(format!("v{}", events - 1).as_str()));
    assert_eq!(storage.get_runs(50, None).await.unwrap()[0].run_id, format!("run-{:07}", runs - 1));
    time("get_runs(limit=50)", || storage.get_runs(50, None)).await;
    time("get_runs(limit=50, status=Success)", || storage.get_runs(50, Some(RunStatus::Success))).await;
    let job = RunFilter::Job("job-3".into());
    time("runs of a job (limit=50)", || storage.get_runs_where(&job, 50)).await;
    let tag = RunFilter::Tag { key: "team".into(), value: "t3".into() };
    time("runs with a tag (limit=50)", || storage.get_runs_where(&tag, 50)).await;
    time("get_run(one id)", || storage.get_run("run-0000042")).await;
    time("get_latest_materialization(asset)", || storage.get_latest_materialization("hot", None)).await;
    time("get_asset_record(asset)", || storage.get_asset_record("hot")).await;
    time("succeeded_steps(run) [resume]", || storage.succeeded_steps("run-0000042", None)).await;
    time("get_events_for_run(one run)", || storage.get_events_for_run("run-0000042")).await;
    time("get_events_for_asset(asset, limit=50)", || storage.get_events_for_asset("hot", 50)).await;
    let local = RunFilter::CodeLocation { code_location: rivers_storage::LOCAL_CODE_LOCATION.into(), status: None };
    time("runs of a code location (limit=50)", || storage.get_runs_where(&local, 50)).await;
    storage.close().await.unwrap();
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("RUNS and EVENTS are integers"));
    let runs = args.next().unwrap_or(100_000);
    let events = args.next().unwrap_or(100_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        measure("memory", Storage::memory().await.unwrap(), runs, events).await;
        let dir = std::env::temp_dir().join(format!("rivers-read-paths-{}", std::process::id()));
        measure("embedded", Storage::embedded(&dir).await.unwrap(), runs, events).await;
        let _ = std::fs::remove_dir_all(&dir);
        if let Ok(endpoint) = std::env::var("RIVERS_BENCH_SURREAL_ENDPOINT") {
            let target = RemoteTarget::resolve(endpoint, None, None, None, None);
            measure("remote", Storage::connect(&target).await.unwrap(), runs, events).await;
        }
    });
}
