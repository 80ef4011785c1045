//! `BackfillStrategy` and the backfill plan: the requested partitions expanded and grouped into
//! runs in `rivers-core`; Python coordinates the runs.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use rivers_core::partitions::{
    BackfillPlan, BackfillStrategy, BackfillTarget, PartitionEnv, PartitionKey, Partitions, plan_backfill,
};

use super::definition::extract_partitions;
use super::key::{PyPartitionKeyRange, extract_key, key_to_py};
use crate::exceptions::PartitionValidationError;
use crate::storage::PyStorage;

/// How a backfill groups partitions into runs; see the variant classes.
#[pyclass(name = "BackfillStrategy", module = "rivers", subclass, frozen)]
pub(crate) struct PyBackfillStrategy(pub(crate) BackfillStrategy);

/// One run per partition.
#[pyclass(name = "MultiRun", module = "rivers", extends = PyBackfillStrategy, frozen)]
pub(crate) struct PyMultiRun;

/// One run for every partition.
#[pyclass(name = "SingleRun", module = "rivers", extends = PyBackfillStrategy, frozen)]
pub(crate) struct PySingleRun;

/// One run per combination of the multi-run dimensions' values.
#[pyclass(name = "PerDimension", module = "rivers", extends = PyBackfillStrategy, frozen)]
pub(crate) struct PyPerDimension;

pub(crate) fn strategy_to_py(py: Python<'_>, strategy: BackfillStrategy) -> PyResult<Bound<'_, PyAny>> {
    let init = |s: BackfillStrategy| PyClassInitializer::from(PyBackfillStrategy(s));
    Ok(match strategy {
        BackfillStrategy::MultiRun => Bound::new(py, init(strategy).add_subclass(PyMultiRun))?.into_any(),
        BackfillStrategy::SingleRun => Bound::new(py, init(strategy).add_subclass(PySingleRun))?.into_any(),
        BackfillStrategy::PerDimension { .. } => {
            Bound::new(py, init(strategy).add_subclass(PyPerDimension))?.into_any()
        }
    })
}

#[pymethods]
impl PyBackfillStrategy {
    /// One run per individual partition (the default).
    #[staticmethod]
    fn multi_run(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        strategy_to_py(py, BackfillStrategy::MultiRun)
    }

    /// One batched run for every partition of the backfill.
    #[staticmethod]
    fn single_run(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        strategy_to_py(py, BackfillStrategy::SingleRun)
    }

    /// One run per combination of the `multi_run` dimensions' values, batching `single_run`.
    #[staticmethod]
    fn per_dimension(py: Python<'_>, multi_run: Vec<String>, single_run: Vec<String>) -> PyResult<Bound<'_, PyAny>> {
        let strategy = BackfillStrategy::per_dimension(multi_run, single_run).map_err(PyValueError::new_err)?;
        strategy_to_py(py, strategy)
    }

    /// The JSON form (stored with a backfill, for `rerun_backfill`).
    fn _to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_default()
    }

    /// Reads the JSON form.
    #[staticmethod]
    fn _from_json<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
        let strategy = serde_json::from_str(text).map_err(|e| PyValueError::new_err(format!("not a strategy: {e}")))?;
        strategy_to_py(py, strategy)
    }

    /// Pickles as its JSON form (a request travels back from a subprocess evaluation).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        Ok((py.get_type::<PyBackfillStrategy>().getattr("_from_json")?, (self._to_json(),)))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Self>().is_ok_and(|o| o.get().0 == self.0)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.0.hash(&mut hasher);
        hasher.finish()
    }

    fn __repr__(&self) -> String {
        match &self.0 {
            BackfillStrategy::MultiRun => "BackfillStrategy.multi_run()".into(),
            BackfillStrategy::SingleRun => "BackfillStrategy.single_run()".into(),
            BackfillStrategy::PerDimension { multi_run, single_run } => {
                format!("BackfillStrategy.per_dimension(multi_run={multi_run:?}, single_run={single_run:?})")
            }
        }
    }
}

#[pymethods]
impl PyPerDimension {
    /// Dimensions with a run per value.
    #[getter]
    fn multi_run_dims(slf: PyRef<'_, Self>) -> Vec<String> {
        match &slf.as_super().0 {
            BackfillStrategy::PerDimension { multi_run, .. } => multi_run.clone(),
            _ => Vec::new(),
        }
    }

    /// Dimensions batched into each run.
    #[getter]
    fn single_run_dims(slf: PyRef<'_, Self>) -> Vec<String> {
        match &slf.as_super().0 {
            BackfillStrategy::PerDimension { single_run, .. } => single_run.clone(),
            _ => Vec::new(),
        }
    }
}

/// A planned backfill: its individual partitions and its runs' groups of them.
#[pyclass(name = "BackfillPlan", module = "rivers._core", frozen)]
pub(crate) struct PyBackfillPlan(pub(crate) Arc<PlannedBackfill>);

pub(crate) struct PlannedBackfill {
    definition: Arc<Partitions>,
    env: PartitionEnv,
    plan: BackfillPlan,
    /// What was asked for, and how it is grouped (stored with the backfill).
    pub(crate) target: BackfillTarget,
    pub(crate) strategy: BackfillStrategy,
}

impl PlannedBackfill {
    /// Run `index`: its key (the group bundled into one key) and its individual keys.
    pub(crate) fn run_partition(&self, index: usize) -> Option<(PartitionKey, Vec<PartitionKey>)> {
        let group: Vec<Vec<u64>> =
            self.plan.runs.get(index)?.iter().map(|&i| self.plan.partitions[i].clone()).collect();
        let keys = group.iter().filter_map(|c| self.definition.key_of(c, &self.env)).collect();
        Some((self.definition.bundle(&group, &self.env)?, keys))
    }

    /// Runs planned.
    pub(crate) fn num_runs(&self) -> usize {
        self.plan.runs.len()
    }

    /// Individual partitions planned.
    pub(crate) fn num_partitions(&self) -> usize {
        self.plan.partitions.len()
    }

    /// Display keys of run `index`'s partitions.
    pub(crate) fn run_keys(&self, index: usize) -> Vec<String> {
        self.run_partition(index).map(|(_, keys)| keys.iter().map(ToString::to_string).collect()).unwrap_or_default()
    }
}

/// The definitions of a backfill's partitioned assets, compiled; the first one enumerates.
fn compile(definitions: &[(String, Bound<'_, PyAny>)]) -> PyResult<Vec<(String, Arc<Partitions>)>> {
    let compiled =
        definitions.iter().map(|(name, d)| Ok((name.clone(), extract_partitions(d)?))).collect::<PyResult<Vec<_>>>()?;
    if compiled.is_empty() {
        return Err(PartitionValidationError::new_err("the backfill selection has no partitioned asset"));
    }
    Ok(compiled)
}

/// Plans `target` grouped by `strategy` over the first definition, and checks every planned
/// partition against the others.
fn plan(
    py: Python<'_>,
    storage: &PyStorage,
    compiled: Vec<(String, Arc<Partitions>)>,
    target: BackfillTarget,
    strategy: BackfillStrategy,
) -> PyResult<PyBackfillPlan> {
    let definition = Arc::clone(&compiled[0].1);
    let mut env = PartitionEnv::at(super::definition::local_now());
    for (_, d) in &compiled {
        let definition_env = storage.sync(py, storage.inner().partition_env(d))?;
        env = env.merged(definition_env);
    }
    let plan = plan_backfill(&definition, &target, &strategy, &env)
        .map_err(|why| PartitionValidationError::new_err(format!("backfill of '{}': {why}", compiled[0].0)))?;
    for (name, other) in compiled.iter().skip(1) {
        for coords in &plan.partitions {
            let Some(key) = definition.key_of(coords, &env) else { continue };
            if let Err(why) = other.individuals(&key, &env) {
                return Err(PartitionValidationError::new_err(format!(
                    "partition '{key}' of the backfill is not valid for '{name}': {why}"
                )));
            }
        }
    }
    Ok(PyBackfillPlan(Arc::new(PlannedBackfill { definition, env, plan, target, strategy })))
}

#[pymethods]
impl PyBackfillPlan {
    /// Plans a backfill over `definitions` (name → definition of each partitioned asset of the
    /// selection; the first one enumerates), reading dynamic keys from `storage`.
    #[staticmethod]
    #[pyo3(signature = (storage, definitions, strategy, partition_keys = None, partition_range = None))]
    fn build(
        py: Python<'_>,
        storage: PyRef<'_, PyStorage>,
        definitions: Vec<(String, Bound<'_, PyAny>)>,
        strategy: PyRef<'_, PyBackfillStrategy>,
        partition_keys: Option<Vec<Bound<'_, PyAny>>>,
        partition_range: Option<PyRef<'_, PyPartitionKeyRange>>,
    ) -> PyResult<Self> {
        let compiled = compile(&definitions)?;
        let multi = matches!(*compiled[0].1, Partitions::Multi(_));
        let target = match (partition_keys, partition_range) {
            (Some(keys), None) => BackfillTarget::Keys(
                keys.iter()
                    .map(|k| extract_key(k, multi).map_err(|e| PartitionValidationError::new_err(e.to_string())))
                    .collect::<PyResult<_>>()?,
            ),
            (None, Some(range)) => BackfillTarget::Range(range.0.clone()),
            _ => return Err(PyValueError::new_err("pass exactly one of partition_keys= and partition_range=")),
        };
        plan(py, &storage, compiled, target, strategy.0.clone())
    }

    /// Plans stored backfill `backfill_id` again, from its target and strategy, over
    /// `definitions` as in `build`.
    #[staticmethod]
    fn replan(
        py: Python<'_>,
        storage: PyRef<'_, PyStorage>,
        definitions: Vec<(String, Bound<'_, PyAny>)>,
        backfill_id: String,
    ) -> PyResult<Self> {
        let compiled = compile(&definitions)?;
        let inner = storage.inner().clone();
        let id = backfill_id.clone();
        let record = storage
            .sync(py, async move { inner.get_backfill(&id).await })?
            .ok_or_else(|| PyValueError::new_err(format!("no backfill has the id {backfill_id:?}")))?;
        let target = record.target.ok_or_else(|| {
            PyValueError::new_err(format!("backfill {backfill_id:?} was stored without its partitions"))
        })?;
        plan(py, &storage, compiled, target, record.strategy)
    }

    /// Individual partitions planned.
    #[getter]
    fn num_partitions(&self) -> usize {
        self.0.num_partitions()
    }

    /// Runs the strategy produces.
    #[getter]
    fn num_runs(&self) -> usize {
        self.0.num_runs()
    }

    /// The individual partitions, in planning order.
    fn partition_keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let planned = &self.0;
        let keys = planned.plan.partitions.iter().filter_map(|c| planned.definition.key_of(c, &planned.env));
        PyList::new(py, keys.map(|k| key_to_py(py, k)).collect::<PyResult<Vec<_>>>()?)
    }

    /// How many partitions run `index` covers.
    fn run_size(&self, index: usize) -> usize {
        self.0.plan.runs.get(index).map_or(0, Vec::len)
    }

    /// The display forms of run `index`'s partitions.
    fn run_keys(&self, index: usize) -> Vec<String> {
        self.0.run_keys(index)
    }
}
