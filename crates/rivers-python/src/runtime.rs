//! The one way across the GIL: release it, block on a future on the shared tokio runtime,
//! convert the error.

use std::future::Future;

use pyo3::prelude::*;

use crate::error::BindingError;

/// The process-wide runtime (shared with `pyo3-async-runtimes` for the `async_` methods).
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Runs `future` to completion on `handle` with the GIL released.
///
/// Every call into storage or the engine goes through here, so no Rust future ever runs while
/// holding the GIL and Python threads keep running meanwhile.
pub(crate) fn block_on<T, E>(
    py: Python<'_>,
    handle: &tokio::runtime::Handle,
    future: impl Future<Output = Result<T, E>> + Send,
) -> PyResult<T>
where
    T: Send,
    E: Into<BindingError> + Send,
{
    py.detach(|| handle.block_on(future)).map_err(|err| PyErr::from(err.into()))
}

/// How often a blocked call wakes up to let Python handle signals (Ctrl-C).
pub(crate) const SIGNAL_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Like [`block_on`], for long calls that Ctrl-C must be able to stop: the GIL is re-taken
/// every [`SIGNAL_POLL`] to run Python's signal handlers. When one raises (`KeyboardInterrupt`),
/// `interrupt` is awaited (it asks the work to stop, e.g. cancels the run), the work is awaited
/// to its end so nothing is left half-written, and the handler's exception is raised.
pub(crate) fn block_on_interruptible<T, E, I>(
    py: Python<'_>,
    handle: &tokio::runtime::Handle,
    future: impl Future<Output = Result<T, E>> + Send + 'static,
    interrupt: impl FnOnce() -> I,
) -> PyResult<T>
where
    T: Send + 'static,
    E: Into<BindingError> + Send + 'static,
    I: Future<Output = ()> + Send,
{
    let mut task = handle.spawn(future);
    loop {
        let finished = py.detach(|| handle.block_on(async { tokio::time::timeout(SIGNAL_POLL, &mut task).await }));
        match finished {
            Ok(joined) => return unwrap_joined(joined),
            Err(_still_running) => {
                if let Err(signal) = py.check_signals() {
                    let stop = interrupt();
                    let outcome = py.detach(|| {
                        handle.block_on(async move {
                            stop.await;
                            task.await
                        })
                    });
                    if let Ok(Err(err)) = outcome {
                        let err: BindingError = err.into();
                        tracing::warn!(error = %err, "the interrupted call ended with an error");
                    }
                    return Err(signal);
                }
            }
        }
    }
}

fn unwrap_joined<T, E: Into<BindingError>>(joined: Result<Result<T, E>, tokio::task::JoinError>) -> PyResult<T> {
    match joined {
        Ok(result) => result.map_err(|err| PyErr::from(err.into())),
        Err(join) => Err(pyo3::exceptions::PyRuntimeError::new_err(format!("the call's task failed: {join}"))),
    }
}
