//! The run-queue coordinator's pass over a long queue: 10,000 queued runs, three tag limits,
//! the global limit reached, on memory and embedded storage. The coordinator holds the queue in
//! memory (loaded once, then followed through the change feed), so a pass reads the store's
//! active runs and decides over the in-memory queue; the example prints the median and spread
//! of that pass in steady state, the first pass (which also records block reasons), and the
//! whole-queue reload the coordinator does once a minute.
//!
//! `cargo run -p rivers-daemon --example queue_pass [-- RUNS]`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rivers_core::{LaunchedBy, RunBackendKind, RunStatus};
use rivers_daemon::{RunQueueConfig, TagConcurrencyLimit, admit};
use rivers_storage::{NewRun, Storage};

fn new_run(index: usize, status: RunStatus) -> NewRun {
    let tenant = format!("tenant-{}", index % 50);
    let tier = if index.is_multiple_of(3) { "gold" } else { "silver" };
    NewRun {
        run_id: uuid::Uuid::now_v7().to_string(),
        job_name: Some("refresh".into()),
        status,
        tags: vec![("tenant".into(), tenant), ("tier".into(), tier.into()), ("team".into(), "core".into())],
        node_names: vec!["orders".into()],
        priority: (index % 7) as i64,
        partition_key: None,
        launched_by: LaunchedBy::Sensor { name: "burst".into() },
        backend: RunBackendKind::Local,
    }
}

fn config() -> RunQueueConfig {
    let limit = |key: &str, limit, value: Option<&str>, per_unique_value| TagConcurrencyLimit {
        key: key.into(),
        limit,
        value: value.map(Into::into),
        per_unique_value,
    };
    RunQueueConfig {
        max_concurrent_runs: Some(20),
        tag_limits: vec![
            limit("tenant", 1, None, true),
            limit("tier", 5, Some("gold"), false),
            limit("team", 20, None, false),
        ],
        ..RunQueueConfig::default()
    }
}

async fn measure(label: &str, storage: Storage, runs: usize) {
    for index in 0..runs {
        storage.create_requested_run(new_run(index, RunStatus::Queued), None).await.expect("queued");
    }
    for index in 0..20 {
        storage.create_requested_run(new_run(index, RunStatus::Running), None).await.expect("active");
    }
    let config = config();
    let reload = Instant::now();
    let mut queued = storage.queued_runs_here().await.unwrap();
    let reload = reload.elapsed();
    let first = Instant::now();
    let active = storage.active_runs().await.unwrap();
    let decision = admit(&config, &queued, &active, &HashMap::new());
    storage.set_block_reasons(&decision.block_reasons).await.unwrap();
    for (run_id, reason) in decision.block_reasons {
        if let Some(run) = queued.iter_mut().find(|run| run.run_id == run_id) {
            run.block_reason = reason;
        }
    }
    let first = first.elapsed();
    let mut samples: Vec<Duration> = Vec::new();
    for _ in 0..15 {
        let started = Instant::now();
        let active = storage.active_runs().await.unwrap();
        let decision = admit(&config, &queued, &active, &HashMap::new());
        storage.set_block_reasons(&decision.block_reasons).await.unwrap();
        assert!(decision.admit.is_empty() && decision.block_reasons.is_empty());
        samples.push(started.elapsed());
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label}: {runs} queued runs, 3 tag limits: pass median {:.2} ms (min {:.2}, max {:.2}); first pass with \
         block reasons {:.0} ms; whole-queue reload {:.0} ms",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        ms(first),
        ms(reload)
    );
}

#[tokio::main]
async fn main() {
    let runs = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    measure("memory", Storage::memory().await.expect("memory storage"), runs).await;
    let dir = std::env::temp_dir().join(format!("rivers-queue-pass-{}", std::process::id()));
    measure("embedded", Storage::embedded(&dir).await.expect("embedded storage"), runs).await;
    let _ = std::fs::remove_dir_all(dir);
}
