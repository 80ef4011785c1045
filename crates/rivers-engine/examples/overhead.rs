//! Orchestration overhead of the engine alone: a 200-step layered plan whose steps do nothing,
//! on in-memory storage. `cargo run --release -p rivers-engine --example overhead`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use rivers_core::{AssetGraph, ExecutorKind, NodeDef, PlanOptions};
use rivers_engine::{Materialized, RunOptions, StepFailure, StepOutput, StepRequest, StepRunner, execute_run};
use rivers_storage::Storage;

struct Noop;

impl StepRunner for Noop {
    fn run_step(&self, request: StepRequest) -> BoxFuture<'static, Result<StepOutput, StepFailure>> {
        Box::pin(async move {
            Ok(StepOutput {
                materializations: vec![Materialized { asset_key: request.node_name, ..Default::default() }],
                ..Default::default()
            })
        })
    }

    fn on_final_failure(&self, _request: StepRequest, _failure: StepFailure) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

fn main() {
    // `RUST_LOG=debug` shows the engine's and storage's tracing output.
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (layers, width) = (20, 10);
    let mut nodes = Vec::new();
    for l in 0..layers {
        for w in 0..width {
            let mut node = NodeDef::asset(format!("a_{l}_{w}"));
            if l > 0 {
                node =
                    node.with_param(format!("a_{}_{w}", l - 1)).with_param(format!("a_{}_{}", l - 1, (w + 1) % width));
            }
            nodes.push(node);
        }
    }
    let graph = AssetGraph::build(nodes, &[], HashMap::new()).expect("graph");
    let plan = graph
        .plan(None, false, &PlanOptions { executor: ExecutorKind::InProcess, run_retry: None, default_retry: None })
        .expect("plan");
    runtime.block_on(async {
        let storage = match std::env::args().nth(1).as_deref() {
            Some(path) => Storage::embedded(std::path::Path::new(path)).await.expect("storage"),
            None => Storage::memory().await.expect("storage"),
        };
        for round in 0..6 {
            let started = Instant::now();
            let options = RunOptions::manual(format!("run-{round}"), 1);
            execute_run(&storage, &plan, Arc::new(Noop), options).await.expect("run");
            let elapsed = started.elapsed();
            println!("round {round}: {:.3} ms/step", elapsed.as_secs_f64() * 1000.0 / plan.len() as f64);
        }
    });
}
