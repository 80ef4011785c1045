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
