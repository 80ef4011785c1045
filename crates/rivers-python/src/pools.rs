//! Concurrency-pool data classes of `rivers._core.storage` (read-only views).

use pyo3::prelude::*;

/// A pool's configured limit.
#[pyclass(name = "PoolLimit", module = "rivers._core.storage", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyPoolLimit {
    pool_key: String,
    slot_limit: i64,
    lease_duration_secs: i64,
}

/// A pool's limit and live usage.
#[pyclass(name = "PoolInfo", module = "rivers._core.storage", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyPoolInfo {
    pool_key: String,
    slot_limit: i64,
    lease_duration_secs: i64,
    claimed_count: i64,
    pending_count: i64,
}

/// One pool that blocked a claim.
#[pyclass(name = "PoolBlockDetail", module = "rivers._core.storage", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyPoolBlockDetail {
    pool_key: String,
    claimed: i64,
    limit: i64,
}

/// Why a claim is pending.
#[pyclass(name = "BlockReason", module = "rivers._core.storage", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyBlockReason {
    kind: String,
    pool_key: String,
    claimed: i64,
    limit: i64,
    pools: Vec<PyPoolBlockDetail>,
}

/// Result of a claim attempt.
#[pyclass(name = "ConcurrencyClaimStatus", module = "rivers._core.storage", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyConcurrencyClaimStatus {
    status: String,
    position: i64,
    reason: Option<PyBlockReason>,
}

#[pymethods]
impl PyConcurrencyClaimStatus {
    #[getter]
    fn is_claimed(&self) -> bool {
        self.status == "claimed"
    }
}

/// A run/step holding pool slots.
#[pyclass(name = "SlotHolder", module = "rivers._core.storage", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PySlotHolder {
    run_id: String,
    step_key: String,
    slots_consumed: i64,
    claimed_at: i64,
    lease_expires_at: i64,
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPoolLimit>()?;
    m.add_class::<PyPoolInfo>()?;
    m.add_class::<PyPoolBlockDetail>()?;
    m.add_class::<PyBlockReason>()?;
    m.add_class::<PyConcurrencyClaimStatus>()?;
    m.add_class::<PySlotHolder>()?;
    Ok(())
}
