//! `Graph` and `Plan`: the validated asset graph and execution plans, built in `rivers-core`.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyType;
use rivers_core::condition::check_selected_assets;
use rivers_core::partitions::{PartitionEnv, Partitions};
use rivers_core::{
    AssetGraph, ComputeDef, DefinitionsSnapshot, DepDef, ExecutorKind, HookDef, IoHandlerRef, JobDef, MapDef, NodeDef,
    NodeKind, OutputDef, ParamDef, PartitionsDecl, Plan, PlanOptions, PoolClaim, RetryPolicy, ScheduleDef, SensorDef,
};

use crate::condition::PyAutomationCondition;
use crate::error::BindingError;
use crate::exceptions::{PartitionDefinitionError, PartitionValidationError};
use crate::partitions::backfill::PyBackfillStrategy;
use crate::partitions::{declared_partitions, extract_key, extract_mapping, key_to_py, local_now};
use crate::retry::retry_spec;
use crate::schedule::Automations;
use crate::storage::PyStorage;

fn core<T>(result: rivers_core::Result<T>) -> PyResult<T> {
    result.map_err(|e| PyErr::from(BindingError::from(e)))
}

/// A parameter as `rivers._definitions.asset.ParamSpec` describes it.
#[derive(FromPyObject)]
struct ParamFields {
    #[pyo3(attribute("name"))]
    name: String,
    #[pyo3(attribute("role"))]
    role: String,
    #[pyo3(attribute("has_default"))]
    has_default: bool,
    #[pyo3(attribute("source"))]
    source: Option<String>,
    #[pyo3(attribute("gather"))]
    gather: Option<String>,
}

/// A multi-asset output with the multi-asset's defaults applied
/// (`rivers._execution.repository.OutputSpec`).
#[derive(FromPyObject)]
struct OutputFields<'py> {
    #[pyo3(attribute("name"))]
    name: String,
    #[pyo3(attribute("tags"))]
    tags: Vec<String>,
    #[pyo3(attribute("kinds"))]
    kinds: Vec<String>,
    #[pyo3(attribute("group"))]
    group: Option<String>,
    #[pyo3(attribute("code_version"))]
    code_version: Option<String>,
    #[pyo3(attribute("io_handler"))]
    io_handler: Bound<'py, PyAny>,
    #[pyo3(attribute("metadata"))]
    metadata: Vec<(String, String)>,
    #[pyo3(attribute("deps"))]
    deps: Vec<String>,
    #[pyo3(attribute("partitions_def"))]
    partitions_def: Bound<'py, PyAny>,
}

/// An explicit dependency as `rivers.DepDef` describes it.
#[derive(FromPyObject)]
struct DepFields<'py> {
    #[pyo3(attribute("name"))]
    name: String,
    #[pyo3(attribute("is_input"))]
    is_input: bool,
    #[pyo3(attribute("io_handler"))]
    io_handler: Bound<'py, PyAny>,
}

/// A step's resource request as `rivers.Compute` describes it.
#[derive(FromPyObject)]
struct ComputeFields {
    #[pyo3(attribute("cpu"))]
    cpu: Option<String>,
    #[pyo3(attribute("memory"))]
    memory: Option<String>,
    #[pyo3(attribute("gpu"))]
    gpu: Option<String>,
}

/// A hook as `rivers.Hook` describes it.
#[derive(FromPyObject)]
struct HookFields {
    #[pyo3(attribute("name"))]
    name: String,
    #[pyo3(attribute("hook_type"))]
    hook_type: String,
}

/// `module.QualName` of a Python class.
pub(crate) fn qualified_name(class: &Bound<'_, PyType>) -> PyResult<String> {
    Ok(format!("{}.{}", class.module()?, class.qualname()?))
}

/// `None` is the default handler, a string a resource key, anything else a handler object.
fn io_handler_ref(handler: &Bound<'_, PyAny>) -> PyResult<IoHandlerRef> {
    if handler.is_none() {
        return Ok(IoHandlerRef::Default);
    }
    if let Ok(key) = handler.extract::<String>() {
        return Ok(IoHandlerRef::Resource { key });
    }
    Ok(IoHandlerRef::Object { class: qualified_name(&handler.get_type())? })
}

fn invalid(err: rivers_core::Error) -> PyErr {
    PyErr::from(BindingError::from(err))
}

/// One node definition with every declared field, converted from Python once and reused by
/// every graph build (the conversion, not the validation, is what caching saves).
#[pyclass(name = "NodeSpec", module = "rivers._core", frozen)]
pub(crate) struct PyNodeSpec {
    def: NodeDef,
    /// Why the declared partitions definition breaks a construction rule (a raw variant): raised
    /// when the repository is validated, not when it is built.
    partitions_error: Option<String>,
}

/// A `partitions_def=` value: a registered name, or a definition (`Err` with the reason when it
/// breaks a construction rule).
fn partitions_decl(value: Option<&Bound<'_, PyAny>>) -> PyResult<Result<Option<PartitionsDecl>, String>> {
    let Some(value) = value.filter(|v| !v.is_none()) else { return Ok(Ok(None)) };
    if let Ok(name) = value.extract::<String>() {
        return Ok(Ok(Some(PartitionsDecl::Named(name))));
    }
    Ok(declared_partitions(value)?.map(|p| Some(PartitionsDecl::Defined(p))))
}

impl PyNodeSpec {
    /// A spec whose partitions break a rule: only its name survives, and validation raises.
    fn broken(name: String, kind: NodeKind, why: String) -> Self {
        let def = NodeDef { kind, ..NodeDef::asset(name) };
        PyNodeSpec { def, partitions_error: Some(why) }
    }
}

#[pymethods]
impl PyNodeSpec {
    #[new]
    #[pyo3(signature = (
        *, name, kind, params, deps, metadata, tags, kinds, group, code_version, io_handler,
        executor_override, is_async, retry, pools, hooks, observable, outputs = Vec::new(),
        never_retried = false, graph = None, members = Vec::new(), mapped = false, max_concurrency = None,
        partitions = None, partition_mappings = Vec::new(), compute = None, backfill_strategy = None,
        automation_condition = None
    ))]
    #[allow(clippy::too_many_arguments)] // keyword-only: one per declared field
    fn new(
        name: String,
        kind: &str,
        params: Vec<ParamFields>,
        deps: Vec<DepFields<'_>>,
        metadata: Vec<(String, String)>,
        tags: Vec<String>,
        kinds: Vec<String>,
        group: Option<String>,
        code_version: Option<String>,
        io_handler: Bound<'_, PyAny>,
        executor_override: Option<String>,
        is_async: bool,
        retry: Option<Bound<'_, PyAny>>,
        pools: Vec<(String, i64)>,
        hooks: Vec<HookFields>,
        observable: bool,
        outputs: Vec<OutputFields<'_>>,
        never_retried: bool,
        graph: Option<String>,
        members: Vec<String>,
        mapped: bool,
        max_concurrency: Option<u32>,
        partitions: Option<Bound<'_, PyAny>>,
        partition_mappings: Vec<(String, Bound<'_, PyAny>)>,
        compute: Option<ComputeFields>,
        backfill_strategy: Option<PyRef<'_, PyBackfillStrategy>>,
        automation_condition: Option<PyRef<'_, PyAutomationCondition>>,
    ) -> PyResult<Self> {
        let kind = match kind {
            "asset" => NodeKind::Asset,
            "multi" => NodeKind::Multi,
            "graph" => NodeKind::Graph,
            "task" => NodeKind::Task,
            "external" => NodeKind::External,
            other => {
                return Err(PyValueError::new_err(format!(
                    "NodeSpec kind must be asset, multi, graph, task or external, not {other:?}"
                )));
            }
        };
        let (partitions, partitions_error) = match partitions_decl(partitions.as_ref())? {
            Ok(decl) => (decl, None),
            Err(why) => (None, Some(why)),
        };
        let mut output_defs = Vec::with_capacity(outputs.len());
        for o in outputs {
            let output_partitions = match partitions_decl(Some(&o.partitions_def))? {
                Ok(decl) => decl,
                Err(why) => return Ok(PyNodeSpec::broken(name, kind, format!("output '{}': {why}", o.name))),
            };
            output_defs.push(OutputDef {
                io_handler: io_handler_ref(&o.io_handler)?,
                name: o.name,
                tags: o.tags,
                kinds: o.kinds,
                group: o.group,
                code_version: o.code_version,
                metadata: o.metadata,
                deps: o.deps,
                partitions: output_partitions,
            });
        }
        let partition_mappings = partition_mappings
            .into_iter()
            .map(|(upstream, mapping)| Ok((upstream, extract_mapping(&mapping)?)))
            .collect::<PyResult<_>>()?;
        let def = NodeDef {
            name,
            kind,
            params: params
                .into_iter()
                .map(|p| {
                    Ok(ParamDef {
                        role: p.role.parse().map_err(invalid)?,
                        name: p.name,
                        has_default: p.has_default,
                        source: p.source,
                        gather: p.gather.map(|g| g.parse()).transpose().map_err(invalid)?,
                    })
                })
                .collect::<PyResult<_>>()?,
            deps: deps
                .into_iter()
                .map(|d| {
                    let io_handler = Some(io_handler_ref(&d.io_handler)?).filter(|h| *h != IoHandlerRef::Default);
                    Ok(DepDef { name: d.name, is_input: d.is_input, io_handler })
                })
                .collect::<PyResult<_>>()?,
            metadata,
            tags,
            kinds,
            group,
            code_version,
            io_handler: io_handler_ref(&io_handler)?,
            executor_override,
            pinned_in_process: false,
            is_async,
            retry: retry.map(|spec| retry_spec(&spec)).transpose()?,
            pools: pools.into_iter().map(|(pool, slots)| PoolClaim { pool, slots }).collect(),
            hooks: hooks
                .into_iter()
                .map(|h| Ok(HookDef { hook_type: h.hook_type.parse().map_err(invalid)?, name: h.name }))
                .collect::<PyResult<_>>()?,
            observable,
            partitions,
            partition_mappings,
            automation_condition: automation_condition.map(|condition| condition.0.clone()),
            outputs: output_defs,
            never_retried,
            graph,
            members,
            map: mapped.then_some(MapDef { max_concurrency }),
            compute: compute.map(|c| ComputeDef { cpu: c.cpu, memory: c.memory, gpu: c.gpu }),
            backfill_strategy: backfill_strategy.map(|strategy| strategy.0.clone()),
        };
        Ok(PyNodeSpec { def, partitions_error })
    }

    fn __repr__(&self) -> String {
        format!("NodeSpec({:?})", self.def.name)
    }
}

/// A job as `rivers.Job` describes it.
#[derive(FromPyObject)]
pub(crate) struct JobFields<'py> {
    #[pyo3(attribute("name"))]
    name: String,
    #[pyo3(attribute("assets"))]
    assets: Vec<Bound<'py, PyAny>>,
    #[pyo3(attribute("executor"))]
    executor: Option<Bound<'py, PyAny>>,
    #[pyo3(attribute("allow_incomplete_deps"))]
    allow_incomplete_deps: bool,
    #[pyo3(attribute("retry"))]
    retry: Option<Bound<'py, PyAny>>,
}

fn executor_kind(executor: &Bound<'_, PyAny>) -> PyResult<ExecutorKind> {
    core(executor.getattr("kind")?.extract::<String>()?.parse::<ExecutorKind>())
}

impl TryFrom<JobFields<'_>> for JobDef {
    type Error = PyErr;

    fn try_from(job: JobFields<'_>) -> PyResult<JobDef> {
        Ok(JobDef {
            name: job.name,
            nodes: job.assets.iter().map(|a| a.getattr("name")?.extract()).collect::<PyResult<_>>()?,
            executor: job.executor.as_ref().map(executor_kind).transpose()?,
            allow_incomplete_deps: job.allow_incomplete_deps,
            retry: job.retry.map(|spec| retry_spec(&spec)).transpose()?,
        })
    }
}

/// The validated asset graph of a repository.
#[pyclass(name = "Graph", module = "rivers._core", frozen)]
pub(crate) struct PyGraph {
    graph: AssetGraph,
}

impl PyGraph {
    pub(crate) fn graph(&self) -> &AssetGraph {
        &self.graph
    }

    /// The repository's definitions: this graph's nodes, `jobs`, `automations` (schedules
    /// and sensors) and the repository-wide defaults.
    pub(crate) fn snapshot(
        &self,
        jobs: Vec<JobFields<'_>>,
        automations: Automations<'_>,
        default_executor: &Bound<'_, PyAny>,
        default_retry: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<DefinitionsSnapshot> {
        let jobs = jobs.into_iter().map(JobDef::try_from).collect::<PyResult<_>>()?;
        let default_retry = default_retry.map(retry_spec).transpose()?;
        let mut snapshot = self.graph.snapshot(jobs, executor_kind(default_executor)?, default_retry);
        snapshot.schedules = automations.schedules.into_iter().map(ScheduleDef::try_from).collect::<PyResult<_>>()?;
        snapshot.sensors = automations.sensors.into_iter().map(SensorDef::try_from).collect::<PyResult<_>>()?;
        Ok(snapshot)
    }

    fn options(
        &self,
        executor: &str,
        run_retry: Option<Bound<'_, PyAny>>,
        default_retry: Option<Bound<'_, PyAny>>,
    ) -> PyResult<PlanOptions> {
        let resolve = |spec: Option<Bound<'_, PyAny>>, site: &str| -> PyResult<Option<RetryPolicy>> {
            spec.map(|s| core(self.graph.resolve_retry(&retry_spec(&s)?, site))).transpose()
        };
        Ok(PlanOptions {
            executor: core(executor.parse::<ExecutorKind>())?,
            run_retry: resolve(run_retry, "the run")?,
            default_retry: resolve(default_retry, "default_retry_policy")?,
        })
    }
}

#[pymethods]
impl PyGraph {
    /// Builds and validates the graph from node specs and, per node, whether its step must stay
    /// in the calling process (see `rivers._execution.repository`).
    #[new]
    #[pyo3(signature = (nodes, pinned, resource_keys, retries, check_bindings = true, partition_defs = HashMap::new()))]
    fn new(
        py: Python<'_>,
        nodes: Vec<PyRef<'_, PyNodeSpec>>,
        pinned: Vec<bool>,
        resource_keys: Vec<String>,
        retries: HashMap<String, Py<PyAny>>,
        check_bindings: bool,
        partition_defs: HashMap<String, Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if check_bindings && let Some(spec) = nodes.iter().find(|spec| spec.partitions_error.is_some()) {
            let why = spec.partitions_error.as_deref().unwrap_or_default();
            return Err(PartitionDefinitionError::new_err(format!(
                "'{}' declares partitions_def: {why}",
                spec.def.name
            )));
        }
        let mut named = HashMap::with_capacity(partition_defs.len());
        for (name, definition) in &partition_defs {
            match declared_partitions(definition)? {
                Ok(partitions) => {
                    named.insert(name.clone(), partitions);
                }
                Err(why) if check_bindings => {
                    return Err(PartitionDefinitionError::new_err(format!("partition_defs['{name}']: {why}")));
                }
                Err(_) => {}
            }
        }
        let nodes: Vec<NodeDef> = nodes
            .iter()
            .zip(pinned.iter().copied().chain(std::iter::repeat(false)))
            .map(|(spec, pinned_in_process)| NodeDef { pinned_in_process, ..spec.def.clone() })
            .collect();
        let mut registered = HashMap::with_capacity(retries.len());
        for (name, spec) in retries {
            match retry_spec(spec.bind(py))? {
                rivers_core::RetrySpec::Policy(policy) => {
                    registered.insert(name, policy);
                }
                rivers_core::RetrySpec::Named(_) => {
                    return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                        "retries['{name}'] must be a RetryPolicy, not a policy name"
                    )));
                }
            }
        }
        if check_bindings {
            core(check_selected_assets(&nodes))?;
        }
        let mut graph = core(AssetGraph::build_checked(nodes, &resource_keys, registered, check_bindings))?;
        core(graph.resolve_partitions(&named, &PartitionEnv::at(local_now()), check_bindings))?;
        Ok(PyGraph { graph })
    }

    /// Which `tasks=` entries among `candidates` (positions in `nodes`, entries that a graph
    /// asset also calls) exist only inside graph assets ([`AssetGraph::graph_only_tasks`]).
    #[staticmethod]
    fn graph_only_tasks(
        nodes: Vec<PyRef<'_, PyNodeSpec>>,
        candidates: Vec<usize>,
        resource_keys: Vec<String>,
    ) -> PyResult<Vec<usize>> {
        if let Some(&bad) = candidates.iter().find(|&&id| id >= nodes.len()) {
            return Err(PyValueError::new_err(format!("candidate {bad} is not a position in nodes")));
        }
        let nodes: Vec<&NodeDef> = nodes.iter().map(|spec| &spec.def).collect();
        Ok(AssetGraph::graph_only_tasks(&nodes, &candidates, &resource_keys))
    }

    /// The repository's definitions as JSON (`rivers_core::DefinitionsSnapshot`): the nodes of
    /// this graph, `jobs`, the schedules and sensors of `automations` and the repository-wide
    /// defaults.
    #[pyo3(signature = (jobs, automations, default_executor, default_retry = None))]
    fn snapshot_json(
        &self,
        jobs: Vec<JobFields<'_>>,
        automations: Automations<'_>,
        default_executor: Bound<'_, PyAny>,
        default_retry: Option<Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        Ok(self.snapshot(jobs, automations, &default_executor, default_retry.as_ref())?.to_json())
    }

    /// Warnings found while building.
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.graph.warnings().to_vec()
    }

    /// Validates a retry spec (a name or an inline policy) against the registered policies.
    fn check_retry(&self, spec: Bound<'_, PyAny>, site: &str) -> PyResult<()> {
        core(self.graph.resolve_retry(&retry_spec(&spec)?, site)).map(drop)
    }

    /// An ephemeral plan over a selection.
    #[pyo3(signature = (selection, include_upstream, executor, run_retry = None, default_retry = None))]
    fn plan(
        &self,
        selection: Option<Vec<String>>,
        include_upstream: bool,
        executor: &str,
        run_retry: Option<Bound<'_, PyAny>>,
        default_retry: Option<Bound<'_, PyAny>>,
    ) -> PyResult<PyPlan> {
        let options = self.options(executor, run_retry, default_retry)?;
        Ok(PyPlan(core(self.graph.plan(selection.as_deref(), include_upstream, &options))?))
    }

    /// Validates a job's node list; returns its plan.
    #[pyo3(signature = (job, names, allow_incomplete_deps, executor, run_retry = None, default_retry = None))]
    fn plan_job(
        &self,
        job: &str,
        names: Vec<String>,
        allow_incomplete_deps: bool,
        executor: &str,
        run_retry: Option<Bound<'_, PyAny>>,
        default_retry: Option<Bound<'_, PyAny>>,
    ) -> PyResult<PyPlan> {
        let ids = core(self.graph.validate_job(job, &names, allow_incomplete_deps))?;
        let options = self.options(executor, run_retry, default_retry)?;
        Ok(PyPlan(self.graph.plan_nodes(&ids, &options)))
    }
}

/// The steps of one run.
#[pyclass(name = "Plan", module = "rivers._core", frozen)]
pub(crate) struct PyPlan(pub(crate) Plan);

#[pymethods]
impl PyPlan {
    /// Planned node names in plan order.
    #[getter]
    fn node_names(&self) -> Vec<String> {
        self.0.node_names()
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    /// Whether a step of the plan runs under a partitions definition.
    #[getter]
    fn is_partitioned(&self) -> bool {
        self.partitioned_steps().next().is_some()
    }

    /// Checks a run's partition key against every partitioned step of the plan (dynamic values
    /// against `storage`) and returns it as a `PartitionKey`; a `str` is read in display form.
    fn check_partition_key<'py>(
        &self,
        py: Python<'py>,
        storage: PyRef<'_, PyStorage>,
        key: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(first) = self.partitioned_steps().next() else {
            return Err(PartitionValidationError::new_err(format!(
                "partition_key {} was given but none of the planned assets is partitioned",
                key.repr()?
            )));
        };
        let multi = matches!(**first.1, Partitions::Multi(_));
        let key = extract_key(&key, multi).map_err(|e| PartitionValidationError::new_err(e.to_string()))?;
        if let Err(why) = key.check_not_empty() {
            return Err(PartitionValidationError::new_err(why));
        }
        let env = storage.sync(py, rivers_engine::partition_env(storage.inner(), &self.0))?;
        for (name, definition) in self.partitioned_names() {
            if let Err(why) = definition.individuals(&key, &env) {
                return Err(PartitionValidationError::new_err(format!(
                    "Invalid partition_key '{key}' for '{name}': {why}"
                )));
            }
        }
        key_to_py(py, key)
    }
}

impl PyPlan {
    /// `(name, definition)` of the plan's partitioned steps: the node's name, or for a
    /// multi-asset step the selected output whose definition it runs under.
    fn partitioned_steps(&self) -> impl Iterator<Item = (&str, &Arc<Partitions>)> {
        self.0.steps().iter().filter_map(|step| {
            let definition = step.partitions.as_ref()?.definition.as_ref()?;
            Some((step.outputs.first().unwrap_or(&step.node_name).as_str(), definition))
        })
    }

    /// [`PyPlan::partitioned_steps`], and the selected outputs of multi-asset steps that
    /// declare definitions of their own.
    fn partitioned_names(&self) -> impl Iterator<Item = (&str, &Arc<Partitions>)> {
        let outputs = self.0.steps().iter().filter_map(|step| step.partitions.as_ref()).flat_map(|partitions| {
            partitions.other_outputs.iter().map(|(name, definition)| (name.as_str(), definition))
        });
        self.partitioned_steps().chain(outputs)
    }
}
