//! Concurrency-pool data classes of `rivers._core.storage` (read-only views of the storage
//! records), and the lease-duration argument of the pool methods.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rivers_storage::{BlockReason, ConcurrencyClaim, PoolBlockDetail, PoolInfo, PoolLimit, SlotHolder};

/// A `lease_duration` argument (`"30s"`, `"5m"`, `"1h30m"`).
pub(crate) fn lease_arg(text: &str) -> PyResult<std::time::Duration> {
    rivers_core::parse_duration(text).map_err(|err| PyValueError::new_err(format!("lease_duration: {err}")))
}

/// Whole seconds of a lease, as `lease_duration_secs` reports it.
fn lease_secs(lease: std::time::Duration) -> i64 {
    i64::try_from(lease.as_secs()).unwrap_or(i64::MAX)
}

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

impl From<PoolLimit> for PyPoolLimit {
    fn from(limit: PoolLimit) -> Self {
        PyPoolLimit {
            lease_duration_secs: lease_secs(limit.lease),
            pool_key: limit.pool_key,
            slot_limit: limit.slot_limit,
        }
    }
}

impl From<PoolInfo> for PyPoolInfo {
    fn from(info: PoolInfo) -> Self {
        PyPoolInfo {
            lease_duration_secs: lease_secs(info.limit.lease),
            pool_key: info.limit.pool_key,
            slot_limit: info.limit.slot_limit,
            claimed_count: info.claimed_count,
            pending_count: info.pending_count,
        }
    }
}

impl From<&PoolBlockDetail> for PyPoolBlockDetail {
    fn from(detail: &PoolBlockDetail) -> Self {
        PyPoolBlockDetail { pool_key: detail.pool_key.clone(), claimed: detail.claimed, limit: detail.limit }
    }
}

impl From<BlockReason> for PyBlockReason {
    fn from(reason: BlockReason) -> Self {
        let kind = reason.kind();
        let first = reason.first();
        PyBlockReason {
            kind: kind.as_str().to_string(),
            pool_key: first.pool_key.clone(),
            claimed: first.claimed,
            limit: first.limit,
            // Listed only when several pools block; the fields above describe a single one.
            pools: match kind {
                rivers_storage::BlockKind::PoolsFull => reason.pools.iter().map(PyPoolBlockDetail::from).collect(),
                rivers_storage::BlockKind::PoolFull => Vec::new(),
            },
        }
    }
}

impl From<ConcurrencyClaim> for PyConcurrencyClaimStatus {
    fn from(claim: ConcurrencyClaim) -> Self {
        match claim {
            ConcurrencyClaim::Claimed { .. } => {
                PyConcurrencyClaimStatus { status: CLAIMED.to_string(), position: 0, reason: None }
            }
            ConcurrencyClaim::Pending { position, reason } => {
                PyConcurrencyClaimStatus { status: PENDING.to_string(), position, reason: Some(reason.into()) }
            }
        }
    }
}

impl From<SlotHolder> for PySlotHolder {
    fn from(holder: SlotHolder) -> Self {
        PySlotHolder {
            run_id: holder.run_id,
            step_key: holder.step_key,
            slots_consumed: holder.slots_consumed,
            claimed_at: holder.claimed_at,
            lease_expires_at: holder.lease_expires_at,
        }
    }
}

/// `ConcurrencyClaimStatus.status` of a granted claim.
const CLAIMED: &str = "claimed";
/// `ConcurrencyClaimStatus.status` of a claim that waits.
const PENDING: &str = "pending";

#[pymethods]
impl PyConcurrencyClaimStatus {
    #[getter]
    fn is_claimed(&self) -> bool {
        self.status == CLAIMED
    }

    fn __repr__(&self) -> String {
        match &self.reason {
            Some(reason) => format!(
                "ConcurrencyClaimStatus(status={:?}, position={}, reason={})",
                self.status,
                self.position,
                reason.__repr__()
            ),
            None => format!("ConcurrencyClaimStatus(status={:?})", self.status),
        }
    }
}

#[pymethods]
impl PyPoolLimit {
    fn __repr__(&self) -> String {
        format!(
            "PoolLimit(pool_key={:?}, slot_limit={}, lease_duration_secs={})",
            self.pool_key, self.slot_limit, self.lease_duration_secs
        )
    }
}

#[pymethods]
impl PyPoolInfo {
    fn __repr__(&self) -> String {
        format!(
            "PoolInfo(pool_key={:?}, slot_limit={}, claimed_count={}, pending_count={}, lease_duration_secs={})",
            self.pool_key, self.slot_limit, self.claimed_count, self.pending_count, self.lease_duration_secs
        )
    }
}

#[pymethods]
impl PyPoolBlockDetail {
    fn __repr__(&self) -> String {
        format!("PoolBlockDetail(pool_key={:?}, claimed={}, limit={})", self.pool_key, self.claimed, self.limit)
    }
}

#[pymethods]
impl PyBlockReason {
    fn __repr__(&self) -> String {
        format!(
            "BlockReason(kind={:?}, pool_key={:?}, claimed={}, limit={}, pools=[{}])",
            self.kind,
            self.pool_key,
            self.claimed,
            self.limit,
            self.pools.iter().map(PyPoolBlockDetail::__repr__).collect::<Vec<_>>().join(", ")
        )
    }
}

#[pymethods]
impl PySlotHolder {
    fn __repr__(&self) -> String {
        format!(
            "SlotHolder(run_id={:?}, step_key={:?}, slots_consumed={}, lease_expires_at={})",
            self.run_id, self.step_key, self.slots_consumed, self.lease_expires_at
        )
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
