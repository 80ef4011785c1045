//! The asset graph: nodes, their edges, and the validation that makes a set of definitions a
//! well-formed DAG.

use std::collections::{HashMap, HashSet};

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::DiGraph;

use crate::definition::{DefinitionsSnapshot, JobDef, NodeDef, NodeKind, ParamRole};
use crate::error::{Error, Result};
use crate::retry::{RetryPolicy, RetrySpec};
use crate::vocab::ExecutorKind;

/// An edge from an upstream node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Edge {
    pub(crate) upstream: usize,
    /// Data edges load the upstream's value; lineage edges only order.
    pub(crate) is_data: bool,
}

/// A validated asset graph. Node ids are indices into registration order.
#[derive(Debug, Clone)]
pub struct AssetGraph {
    pub(crate) nodes: Vec<NodeDef>,
    index: HashMap<String, usize>,
    pub(crate) upstream: Vec<Vec<Edge>>,
    pub(crate) executors: Vec<Option<ExecutorKind>>,
    pub(crate) retries: Vec<Option<RetryPolicy>>,
    registered_retries: HashMap<String, RetryPolicy>,
    resource_keys: Vec<String>,
    warnings: Vec<String>,
}

impl AssetGraph {
    /// Builds and validates the graph.
    ///
    /// # Errors
    /// `GraphValidation` for duplicate names, unknown explicit deps and cycles;
    /// `Configuration` for parameters that match no upstream or resource, unknown retry
    /// policy names and invalid `rivers/executor` values.
    pub fn build(
        nodes: Vec<NodeDef>,
        resource_keys: &[String],
        registered_retries: HashMap<String, RetryPolicy>,
    ) -> Result<Self> {
        Self::build_checked(nodes, resource_keys, registered_retries, true)
    }

    /// Builds the graph; with `check_bindings == false` only the graph structure is checked
    /// (what `CodeRepository(...)` construction reports), leaving parameter bindings, executor
    /// overrides and retry names to `validate()`.
    ///
    /// # Errors
    /// As [`AssetGraph::build`], minus the binding checks when they are off.
    pub fn build_checked(
        nodes: Vec<NodeDef>,
        resource_keys: &[String],
        registered_retries: HashMap<String, RetryPolicy>,
        check_bindings: bool,
    ) -> Result<Self> {
        let mut index = HashMap::with_capacity(nodes.len());
        for (id, node) in nodes.iter().enumerate() {
            if index.insert(node.name.clone(), id).is_some() {
                return Err(Error::GraphValidation(format!(
                    "duplicate node name '{}': every asset and task name must be unique in a repository",
                    node.name
                )));
            }
        }
        let resources: HashSet<&str> = resource_keys.iter().map(String::as_str).collect();
        let mut warnings = Vec::new();
        let mut shadowed: Vec<&String> = resource_keys.iter().filter(|key| index.contains_key(*key)).collect();
        shadowed.sort_unstable();
        for key in shadowed {
            warnings.push(format!(
                "resource key '{key}' has the name of an asset; parameters named '{key}' receive the \
                 asset's value, not the resource"
            ));
        }
        let mut upstream = Vec::with_capacity(nodes.len());
        for node in &nodes {
            upstream.push(Self::node_edges(node, &index, &resources, check_bindings)?);
        }
        let executors = nodes
            .iter()
            .map(|node| match node.parsed_executor() {
                Err(_) if !check_bindings => Ok(None),
                other => other,
            })
            .collect::<Result<Vec<_>>>()?;
        let retries = nodes
            .iter()
            .map(|node| match &node.retry {
                None => Ok(None),
                Some(spec) => match resolve_retry(spec, &registered_retries, &format!("asset '{}'", node.name)) {
                    Err(_) if !check_bindings => Ok(None),
                    other => other.map(Some),
                },
            })
            .collect::<Result<Vec<_>>>()?;
        let graph = AssetGraph {
            nodes,
            index,
            upstream,
            executors,
            retries,
            registered_retries,
            resource_keys: resource_keys.to_vec(),
            warnings,
        };
        graph.check_acyclic()?;
        Ok(graph)
    }

    fn node_edges(
        node: &NodeDef,
        index: &HashMap<String, usize>,
        resources: &HashSet<&str>,
        check_bindings: bool,
    ) -> Result<Vec<Edge>> {
        let mut edges: Vec<Edge> = Vec::new();
        let add = |edges: &mut Vec<Edge>, upstream: usize, is_data: bool| match edges
            .iter_mut()
            .find(|e| e.upstream == upstream)
        {
            Some(existing) => existing.is_data |= is_data,
            None => edges.push(Edge { upstream, is_data }),
        };
        for dep in &node.deps {
            let Some(&upstream) = index.get(&dep.name) else {
                return Err(Error::GraphValidation(format!(
                    "asset '{}' declares a dependency on '{}', which is not a registered asset; \
                     register it in CodeRepository(assets=[...]) or fix the name",
                    node.name, dep.name
                )));
            };
            add(&mut edges, upstream, dep.is_input);
        }
        for param in &node.params {
            let named = match param.role {
                ParamRole::Named => true,
                ParamRole::ContextByName => index.contains_key(&param.name),
                _ => false,
            };
            if !named {
                continue;
            }
            if let Some(&upstream) = index.get(&param.name) {
                add(&mut edges, upstream, true);
            } else if check_bindings && !resources.contains(param.name.as_str()) && !param.has_default {
                return Err(Error::Configuration(format!(
                    "parameter '{}' of '{}' matches no upstream asset and no resource key; rename it \
                     after an asset, register a resource under that key, or give it a default value",
                    param.name, node.name
                )));
            }
        }
        Ok(edges)
    }

    fn check_acyclic(&self) -> Result<()> {
        let mut graph = DiGraph::<usize, ()>::with_capacity(self.nodes.len(), self.nodes.len());
        let ids: Vec<_> = (0..self.nodes.len()).map(|i| graph.add_node(i)).collect();
        for (node, edges) in self.upstream.iter().enumerate() {
            for edge in edges {
                graph.add_edge(ids[edge.upstream], ids[node], ());
            }
        }
        if toposort(&graph, None).is_ok() {
            return Ok(());
        }
        let cycle = tarjan_scc(&graph)
            .into_iter()
            .find(|scc| scc.len() > 1 || scc.iter().any(|n| graph.contains_edge(*n, *n)))
            .unwrap_or_default();
        let mut names: Vec<&str> = cycle.iter().map(|n| self.nodes[graph[*n]].name.as_str()).collect();
        names.sort_unstable();
        Err(Error::GraphValidation(format!(
            "dependency cycle between assets: {}; remove one of the dependencies (use \
             SelfDependency to read an asset's own previous value)",
            names.join(" -> ")
        )))
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node id of `name`.
    pub fn node_id(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The definition of node `id`.
    pub fn node(&self, id: usize) -> &NodeDef {
        &self.nodes[id]
    }

    /// Every node definition, in registration order.
    pub fn nodes(&self) -> &[NodeDef] {
        &self.nodes
    }

    /// The repository's definitions as data: these nodes with `jobs` and the repository-wide
    /// defaults.
    pub fn snapshot(
        &self,
        jobs: Vec<JobDef>,
        default_executor: ExecutorKind,
        default_retry: Option<RetrySpec>,
    ) -> DefinitionsSnapshot {
        DefinitionsSnapshot {
            nodes: self.nodes.clone(),
            jobs,
            resources: self.resource_keys.clone(),
            default_executor,
            default_retry,
            retries: self.registered_retries.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }

    /// Upstream node names of `id` with whether each edge carries data.
    pub fn upstream_names(&self, id: usize) -> impl Iterator<Item = (&str, bool)> {
        self.upstream[id].iter().map(|e| (self.nodes[e.upstream].name.as_str(), e.is_data))
    }

    /// Warnings found while building (e.g. a resource key shadowed by an asset name).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Resolves a run-level retry spec against the registered policies.
    ///
    /// # Errors
    /// `Configuration` for an unknown policy name, listing the registered names.
    pub fn resolve_retry(&self, spec: &RetrySpec, site: &str) -> Result<RetryPolicy> {
        resolve_retry(spec, &self.registered_retries, site)
    }

    /// Checks a job's node list: every name registered and no broken upstream chains.
    ///
    /// # Errors
    /// `GraphValidation` naming the unregistered node or the missing upstream.
    pub fn validate_job(&self, job: &str, names: &[String], allow_incomplete_deps: bool) -> Result<Vec<usize>> {
        let mut ids = Vec::with_capacity(names.len());
        for name in names {
            let id = self.node_id(name).ok_or_else(|| {
                Error::GraphValidation(format!(
                    "job '{job}' includes '{name}', which is not registered in the repository"
                ))
            })?;
            ids.push(id);
        }
        if !allow_incomplete_deps {
            let members: HashSet<usize> = ids.iter().copied().collect();
            for &id in &ids {
                for edge in &self.upstream[id] {
                    let up = &self.nodes[edge.upstream];
                    if up.kind != NodeKind::External && !members.contains(&edge.upstream) {
                        return Err(Error::GraphValidation(format!(
                            "job '{job}' includes '{}' but not its upstream '{}'; add '{}' to the job \
                             or pass allow_incomplete_deps=True",
                            self.nodes[id].name, up.name, up.name
                        )));
                    }
                }
            }
        }
        Ok(ids)
    }

    /// Every transitive upstream of `roots` (excluding the roots themselves).
    pub(crate) fn ancestors(&self, roots: &[usize]) -> HashSet<usize> {
        let mut seen = HashSet::new();
        let mut stack: Vec<usize> = roots.to_vec();
        while let Some(id) = stack.pop() {
            for edge in &self.upstream[id] {
                if seen.insert(edge.upstream) {
                    stack.push(edge.upstream);
                }
            }
        }
        seen
    }
}

fn resolve_retry(spec: &RetrySpec, registered: &HashMap<String, RetryPolicy>, site: &str) -> Result<RetryPolicy> {
    match spec {
        RetrySpec::Policy(policy) => Ok(policy.clone()),
        RetrySpec::Named(name) => registered.get(name).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = registered.keys().map(String::as_str).collect();
            known.sort_unstable();
            Error::Configuration(format!(
                "{site} uses retry policy '{name}', which is not registered; registered policies: [{}]",
                known.join(", ")
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(nodes: Vec<NodeDef>) -> Result<AssetGraph> {
        AssetGraph::build(nodes, &[], HashMap::new())
    }

    #[test]
    fn parameters_become_data_edges() {
        let g = build(vec![NodeDef::asset("a"), NodeDef::asset("b").with_param("a")]).unwrap();
        assert_eq!(g.upstream_names(1).collect::<Vec<_>>(), vec![("a", true)]);
    }

    #[test]
    fn cycle_is_reported_with_its_members() {
        let err = build(vec![NodeDef::asset("a").with_param("b"), NodeDef::asset("b").with_param("a")]).unwrap_err();
        assert!(matches!(&err, Error::GraphValidation(m) if m.contains("a -> b")), "{err}");
    }

    #[test]
    fn unknown_dep_and_duplicates_are_graph_errors() {
        assert!(matches!(build(vec![NodeDef::asset("a").with_dep("zz")]), Err(Error::GraphValidation(_))));
        assert!(matches!(build(vec![NodeDef::asset("a"), NodeDef::asset("a")]), Err(Error::GraphValidation(_))));
    }

    #[test]
    fn unknown_parameter_is_configuration_error() {
        let err = build(vec![NodeDef::asset("a").with_param("nothing")]).unwrap_err();
        assert!(matches!(err, Error::Configuration(m) if m.contains("'nothing'")));
    }

    #[test]
    fn resource_parameter_is_not_an_edge_and_shadowing_warns() {
        let g = AssetGraph::build(
            vec![NodeDef::asset("db"), NodeDef::asset("b").with_param("db").with_param("client")],
            &["client".into(), "db".into()],
            HashMap::new(),
        )
        .unwrap();
        assert_eq!(g.upstream_names(1).count(), 1);
        assert_eq!(g.warnings().len(), 1);
    }

    #[test]
    fn job_with_missing_upstream_is_rejected() {
        let g = build(vec![NodeDef::asset("a"), NodeDef::asset("b").with_param("a")]).unwrap();
        assert!(g.validate_job("j", &["b".into()], false).is_err());
        assert!(g.validate_job("j", &["b".into()], true).is_ok());
        assert!(g.validate_job("j", &["zz".into()], true).is_err());
    }
}
