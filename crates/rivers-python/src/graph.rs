//! `Graph` and `Plan`: the validated asset graph and execution plans, built in `rivers-core`.

use std::collections::HashMap;

use pyo3::prelude::*;
use rivers_core::{
    AssetGraph, DepDef, ExecutorKind, NodeDef, NodeKind, ParamDef, ParamRole, Plan, PlanOptions, RetryPolicy,
};

use crate::error::BindingError;
use crate::retry::retry_spec;

fn core<T>(result: rivers_core::Result<T>) -> PyResult<T> {
    result.map_err(|e| PyErr::from(BindingError::from(e)))
}

fn param_role(text: &str) -> ParamRole {
    match text {
        "context" => ParamRole::Context,
        "context_by_name" => ParamRole::ContextByName,
        "misplaced_context" => ParamRole::MisplacedContext,
        "self" => ParamRole::SelfDependency,
        _ => ParamRole::Named,
    }
}

type NodeTuple =
    (String, String, Vec<(String, String, bool)>, Vec<(String, bool)>, Option<String>, bool, bool, Option<Py<PyAny>>);

fn node_def(py: Python<'_>, tuple: NodeTuple) -> PyResult<NodeDef> {
    let (name, kind, params, deps, executor_override, pinned_in_process, is_async, retry) = tuple;
    Ok(NodeDef {
        name,
        kind: if kind == "external" { NodeKind::External } else { NodeKind::Asset },
        params: params
            .into_iter()
            .map(|(name, role, has_default)| ParamDef { name, role: param_role(&role), has_default })
            .collect(),
        deps: deps.into_iter().map(|(name, is_input)| DepDef { name, is_input }).collect(),
        executor_override,
        pinned_in_process,
        is_async,
        retry: retry.map(|spec| retry_spec(spec.bind(py))).transpose()?,
    })
}

/// One node definition, converted from Python once and reused by every graph build (the
/// conversion, not the validation, is what caching saves).
#[pyclass(name = "NodeSpec", module = "rivers._core", frozen)]
pub(crate) struct PyNodeSpec(NodeDef);

#[pymethods]
impl PyNodeSpec {
    /// `(name, kind, params, deps, executor_override, pinned, is_async, retry)`; `pinned` is
    /// replaced per graph build.
    #[new]
    fn new(py: Python<'_>, node: NodeTuple) -> PyResult<Self> {
        Ok(PyNodeSpec(node_def(py, node)?))
    }

    fn __repr__(&self) -> String {
        format!("NodeSpec({:?})", self.0.name)
    }
}

/// The validated asset graph of a repository.
#[pyclass(name = "Graph", module = "rivers._core", frozen)]
pub(crate) struct PyGraph {
    graph: AssetGraph,
}

impl PyGraph {
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
    #[pyo3(signature = (nodes, pinned, resource_keys, retries, check_bindings = true))]
    fn new(
        py: Python<'_>,
        nodes: Vec<PyRef<'_, PyNodeSpec>>,
        pinned: Vec<bool>,
        resource_keys: Vec<String>,
        retries: HashMap<String, Py<PyAny>>,
        check_bindings: bool,
    ) -> PyResult<Self> {
        let nodes: Vec<NodeDef> = nodes
            .iter()
            .zip(pinned.iter().copied().chain(std::iter::repeat(false)))
            .map(|(spec, pinned_in_process)| NodeDef { pinned_in_process, ..spec.0.clone() })
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
        Ok(PyGraph { graph: core(AssetGraph::build_checked(nodes, &resource_keys, registered, check_bindings))? })
    }

    /// Warnings found while building.
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.graph.warnings().to_vec()
    }

    /// Upstream names of `name` with whether each edge loads data.
    fn upstreams(&self, name: &str) -> Vec<(String, bool)> {
        self.graph
            .node_id(name)
            .map(|id| self.graph.upstream_names(id).map(|(n, d)| (n.to_string(), d)).collect())
            .unwrap_or_default()
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
}
