//! `rivers._core`: the native module behind the `rivers` Python package.
//!
//! A thin translation layer: arguments are converted to `rivers-core` / `rivers-storage` /
//! `rivers-engine` types, one call is made, the result is converted back. Graph validation,
//! planning, scheduling, retries and storage queries all live in the lower crates.

use pyo3::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod backfill;
mod command;
mod condition;
mod condition_eval;
mod daemon;
mod error;
mod exceptions;
mod graph;
mod logging;
mod partitions;
mod pools;
mod queue;
mod records;
mod retry;
mod run;
mod runtime;
mod schedule;
mod step;
mod storage;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    logging::init();
    m.add_function(wrap_pyfunction!(logging::_log, m)?)?;
    exceptions::register(m)?;
    m.add_function(wrap_pyfunction!(command::run_command, m)?)?;
    m.add_class::<command::PyCommandResult>()?;
    m.add_class::<condition::PyAutomationCondition>()?;
    m.add_class::<graph::PyGraph>()?;
    m.add_class::<graph::PyNodeSpec>()?;
    m.add_class::<graph::PyPlan>()?;
    m.add_class::<retry::PyBackoff>()?;
    partitions::register(m)?;
    run::register(m)?;
    backfill::register(m)?;
    step::register(m)?;
    schedule::register(m)?;
    queue::register(m)?;
    daemon::register(m)?;
    condition_eval::register(m)?;

    let storage_module = PyModule::new(py, "storage")?;
    storage::register(&storage_module)?;
    m.add_submodule(&storage_module)?;
    // PyO3 submodules are attributes, not importable packages: register the dotted name so
    // `import rivers._core.storage` and `from rivers._core.storage import X` work.
    py.import("sys")?.getattr("modules")?.set_item("rivers._core.storage", &storage_module)?;
    for name in
        ["Storage", "StoredEvent", "StoredLog", "AssetRecord", "RunRecord", "LaunchedBy", "StaleCause", "StoredTick"]
    {
        m.add(name, storage_module.getattr(name)?)?;
    }
    Ok(())
}
