//! The asset graph: nodes, their edges, and the validation that makes a set of definitions a
//! well-formed DAG.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::DiGraph;

use crate::definition::{DefinitionsSnapshot, JobDef, NodeDef, NodeKind, ParamRole};
use crate::error::{Error, Result};
use crate::partitions::{GraphPartitions, Partitions};
use crate::retry::{RetryPolicy, RetrySpec};
use crate::vocab::ExecutorKind;

/// An edge from an upstream node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Edge {
    pub(crate) upstream: usize,
    /// Data edges load the upstream's value; lineage edges only order.
    pub(crate) is_data: bool,
    /// The output of a multi-asset upstream the edge reads; `None` for the node's own value.
    pub(crate) output: Option<u32>,
    /// A graph asset waiting for one of its internal nodes: ordering, not lineage.
    pub(crate) member: bool,
}

/// Where a loadable name lives: a node, and for a multi-asset output, which one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef {
    /// Node id.
    pub node: usize,
    /// Output index of a multi-asset; `None` for the node's own value.
    pub output: Option<u32>,
}

/// One asset key of the graph with the attributes its record carries.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetEntry<'a> {
    /// Asset key.
    pub key: &'a str,
    /// The node that produces it.
    pub node: &'a NodeDef,
    /// Tags.
    pub tags: &'a [String],
    /// Kinds.
    pub kinds: &'a [String],
    /// Group.
    pub group: Option<&'a str>,
    /// Code version.
    pub code_version: Option<&'a str>,
    /// Upstream asset keys (lineage).
    pub upstreams: Vec<String>,
}

/// A validated asset graph. Node ids are indices into registration order.
#[derive(Debug, Clone)]
pub struct AssetGraph {
    pub(crate) nodes: Vec<NodeDef>,
    /// Step names: every node's own name.
    index: HashMap<String, usize>,
    /// Loadable names: asset keys (multi-asset outputs included) and task names.
    keys: HashMap<String, KeyRef>,
    pub(crate) upstream: Vec<Vec<Edge>>,
    pub(crate) executors: Vec<Option<ExecutorKind>>,
    pub(crate) retries: Vec<Option<RetryPolicy>>,
    registered_retries: HashMap<String, RetryPolicy>,
    resource_keys: Vec<String>,
    warnings: Vec<String>,
    /// Resolved partitions ([`AssetGraph::resolve_partitions`]).
    pub(crate) partitions: GraphPartitions,
    /// The definitions registered by name that partitions were resolved against.
    pub(crate) named_partitions: BTreeMap<String, Arc<Partitions>>,
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
        let (index, keys) = Self::name_tables(&nodes)?;
        let resources: HashSet<&str> = resource_keys.iter().map(String::as_str).collect();
        let mut warnings = Vec::new();
        let mut shadowed: Vec<&String> = resource_keys.iter().filter(|key| keys.contains_key(*key)).collect();
        shadowed.sort_unstable();
        for key in shadowed {
            warnings.push(format!(
                "resource key '{key}' has the name of an asset; parameters named '{key}' receive the \
                 asset's value, not the resource"
            ));
        }
        let mut upstream = Vec::with_capacity(nodes.len());
        for node in &nodes {
            upstream.push(Self::node_edges(node, &index, &keys, &resources, check_bindings)?);
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
                Some(spec) => match resolve_retry(spec, &registered_retries, &format!("'{}'", node.name)) {
                    Err(_) if !check_bindings => Ok(None),
                    other => other.map(Some),
                },
            })
            .collect::<Result<Vec<_>>>()?;
        let graph = AssetGraph {
            nodes,
            index,
            keys,
            upstream,
            executors,
            retries,
            registered_retries,
            resource_keys: resource_keys.to_vec(),
            warnings,
            partitions: GraphPartitions::default(),
            named_partitions: BTreeMap::new(),
        };
        graph.check_acyclic()?;
        Ok(graph)
    }

    /// Which of `candidates` exist only inside graph assets (graph-and-tasks.md R7, R60).
    ///
    /// `candidates` are the node ids of `tasks=` entries that a registered graph asset also
    /// calls. Such an entry is a standalone node only when every parameter resolves by the
    /// standalone rules (context, a same-named asset or standalone task, a resource key, a
    /// default); otherwise its parameters are wired by the graph body, and it exists only as
    /// the graph's internal node. Dropping one entry can leave another without the upstream
    /// its parameter named, so the check repeats until nothing more is dropped. Returns the
    /// dropped ids, ascending.
    pub fn graph_only_tasks<N: Borrow<NodeDef>>(
        nodes: &[N],
        candidates: &[usize],
        resource_keys: &[String],
    ) -> Vec<usize> {
        // How many nodes produce each loadable name (a clash is `build`'s to report).
        let mut producers: HashMap<&str, usize> = HashMap::new();
        for node in nodes {
            for name in node.borrow().output_names() {
                *producers.entry(name).or_default() += 1;
            }
        }
        let mut pending: Vec<usize> = candidates.to_vec();
        let mut dropped: Vec<usize> = Vec::new();
        loop {
            let resolves = |node: &NodeDef| {
                node.params.iter().all(|param| {
                    param.role != ParamRole::Named
                        || producers.contains_key(param.name.as_str())
                        || resource_keys.contains(&param.name)
                        || param.has_default
                })
            };
            let (newly, kept): (Vec<usize>, Vec<usize>) =
                pending.iter().partition(|&&id| !resolves(nodes[id].borrow()));
            if newly.is_empty() {
                dropped.sort_unstable();
                return dropped;
            }
            for &id in &newly {
                for name in nodes[id].borrow().output_names() {
                    if let Some(count) = producers.get_mut(name) {
                        *count -= 1;
                        if *count == 0 {
                            producers.remove(name);
                        }
                    }
                }
            }
            dropped.extend(newly);
            pending = kept;
        }
    }

    /// The step-name and loadable-name tables; every name is produced by one node only.
    fn name_tables(nodes: &[NodeDef]) -> Result<(HashMap<String, usize>, HashMap<String, KeyRef>)> {
        let duplicate = |name: &str| {
            Error::GraphValidation(format!(
                "duplicate node name '{name}': every asset, multi-asset output and task name must be unique \
                 in a repository"
            ))
        };
        let mut index = HashMap::with_capacity(nodes.len());
        let mut keys = HashMap::with_capacity(nodes.len());
        for (id, node) in nodes.iter().enumerate() {
            if index.insert(node.name.clone(), id).is_some() {
                return Err(duplicate(&node.name));
            }
            if node.kind == NodeKind::Multi {
                if node.outputs.is_empty() {
                    return Err(Error::GraphValidation(format!(
                        "multi-asset '{}' declares no outputs; pass at least one AssetDef in output_defs",
                        node.name
                    )));
                }
                for (i, output) in node.outputs.iter().enumerate() {
                    let key = KeyRef { node: id, output: Some(i as u32) };
                    if keys.insert(output.name.clone(), key).is_some() {
                        return Err(duplicate(&output.name));
                    }
                }
            } else if keys.insert(node.name.clone(), KeyRef { node: id, output: None }).is_some() {
                return Err(duplicate(&node.name));
            }
        }
        // A multi-asset's own name may equal one of its outputs, never another node's key.
        for (id, node) in nodes.iter().enumerate() {
            if node.kind == NodeKind::Multi && keys.get(&node.name).is_some_and(|k| k.node != id) {
                return Err(duplicate(&node.name));
            }
        }
        Ok((index, keys))
    }

    fn node_edges(
        node: &NodeDef,
        index: &HashMap<String, usize>,
        keys: &HashMap<String, KeyRef>,
        resources: &HashSet<&str>,
        check_bindings: bool,
    ) -> Result<Vec<Edge>> {
        let mut edges: Vec<Edge> = Vec::new();
        let add = |edges: &mut Vec<Edge>, key: KeyRef, is_data: bool, member: bool| match edges
            .iter_mut()
            .find(|e| e.upstream == key.node && e.output == key.output)
        {
            Some(existing) => existing.is_data |= is_data,
            None => edges.push(Edge { upstream: key.node, is_data, output: key.output, member }),
        };
        let unknown = |what: &str, name: &str| {
            Error::GraphValidation(format!(
                "'{}' {what} '{name}', which is not a registered asset or task; register it in \
                 CodeRepository(assets=[...]) / tasks=[...] or fix the name",
                node.name
            ))
        };
        for dep in &node.deps {
            let key = *keys.get(&dep.name).ok_or_else(|| unknown("declares a dependency on", &dep.name))?;
            add(&mut edges, key, dep.is_input, false);
        }
        for output in &node.outputs {
            for dep in &output.deps {
                let key = *keys.get(dep).ok_or_else(|| unknown("declares a dependency on", dep))?;
                add(&mut edges, key, false, false);
            }
        }
        for (position, member) in node.members.iter().enumerate() {
            let id = *index.get(member).ok_or_else(|| unknown("has an internal node", member))?;
            add(&mut edges, KeyRef { node: id, output: None }, position == 0, true);
        }
        for param in &node.params {
            let named = match param.role {
                ParamRole::Named => true,
                ParamRole::ContextByName => keys.contains_key(&param.name),
                ParamRole::Wired => {
                    let source = param.source.as_deref().unwrap_or_default();
                    match keys.get(source) {
                        Some(&key) => add(&mut edges, key, true, false),
                        None if check_bindings => {
                            return Err(Error::Configuration(format!(
                                "parameter '{}' of '{}' reads '{source}', which is not a registered asset or \
                                 task; register it or rename the graph parameter after an asset",
                                param.name, node.name
                            )));
                        }
                        None => {}
                    }
                    false
                }
                _ => false,
            };
            if !named {
                continue;
            }
            if let Some(&key) = keys.get(&param.name) {
                add(&mut edges, key, true, false);
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

    /// Node id of the node (step) named `name`.
    pub fn node_id(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Where the loadable name `name` (an asset key, a multi-asset output or a task) lives.
    pub fn key(&self, name: &str) -> Option<KeyRef> {
        self.keys.get(name).copied()
    }

    /// The name an edge reads: the output's for a multi-asset upstream, else the node's.
    pub(crate) fn edge_key(&self, edge: &Edge) -> &str {
        let node = &self.nodes[edge.upstream];
        match edge.output {
            Some(i) => &node.outputs[i as usize].name,
            None => &node.name,
        }
    }

    /// The asset keys `id` depends on for lineage (and input data versions): its own edges'
    /// keys; for a graph asset, what its internal nodes read from outside the graph.
    pub fn lineage(&self, id: usize) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        let mut push = |key: &str| {
            if !keys.iter().any(|k| k == key) {
                keys.push(key.to_string());
            }
        };
        for edge in &self.upstream[id] {
            if edge.member {
                for inner in &self.upstream[edge.upstream] {
                    if self.nodes[inner.upstream].graph.as_deref() != Some(self.nodes[id].name.as_str()) {
                        push(self.edge_key(inner));
                    }
                }
            } else {
                push(self.edge_key(edge));
            }
        }
        keys
    }

    /// Every asset key of the graph with its record's attributes, in registration order
    /// (tasks are not assets; a multi-asset contributes one entry per output).
    pub fn assets(&self) -> Vec<AssetEntry<'_>> {
        let mut entries = Vec::with_capacity(self.nodes.len());
        for (id, node) in self.nodes.iter().enumerate() {
            match node.kind {
                NodeKind::Task => {}
                NodeKind::Multi => {
                    let own_deps: HashSet<&str> =
                        node.outputs.iter().flat_map(|o| o.deps.iter().map(String::as_str)).collect();
                    let shared: Vec<String> =
                        self.lineage(id).into_iter().filter(|k| !own_deps.contains(k.as_str())).collect();
                    for output in &node.outputs {
                        let mut upstreams = shared.clone();
                        upstreams.extend(output.deps.iter().cloned());
                        entries.push(AssetEntry {
                            key: &output.name,
                            node,
                            tags: &output.tags,
                            kinds: &output.kinds,
                            group: output.group.as_deref(),
                            code_version: output.code_version.as_deref(),
                            upstreams,
                        });
                    }
                }
                _ => entries.push(AssetEntry {
                    key: &node.name,
                    node,
                    tags: &node.tags,
                    kinds: &node.kinds,
                    group: node.group.as_deref(),
                    code_version: node.code_version.as_deref(),
                    upstreams: self.lineage(id),
                }),
            }
        }
        entries
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
            partitions: self.named_partitions.iter().map(|(k, v)| (k.clone(), (**v).clone())).collect(),
            schedules: Vec::new(),
            sensors: Vec::new(),
            pool_limits: Vec::new(),
        }
    }

    /// Upstream names of `id` (output names for multi-asset upstreams) with whether each edge
    /// carries data.
    pub fn upstream_names(&self, id: usize) -> impl Iterator<Item = (&str, bool)> {
        self.upstream[id].iter().map(|e| (self.edge_key(e), e.is_data))
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

    /// Checks a job's node list: every name registered and no broken upstream chains. A graph
    /// asset brings its internal nodes; a multi-asset (or one of its outputs) all its outputs.
    ///
    /// # Errors
    /// `GraphValidation` naming the unregistered node or the missing upstream.
    pub fn validate_job(&self, job: &str, names: &[String], allow_incomplete_deps: bool) -> Result<Vec<usize>> {
        let mut ids = Vec::with_capacity(names.len());
        for name in names {
            let id = self.node_id(name).or_else(|| self.key(name).map(|k| k.node)).ok_or_else(|| {
                Error::GraphValidation(format!(
                    "job '{job}' includes '{name}', which is not registered in the repository"
                ))
            })?;
            ids.push(id);
        }
        let ids = self.with_members(ids);
        if !allow_incomplete_deps {
            let members: HashSet<usize> = ids.iter().copied().collect();
            for &id in &ids {
                for edge in &self.upstream[id] {
                    let up = &self.nodes[edge.upstream];
                    if up.kind != NodeKind::External && !members.contains(&edge.upstream) {
                        let node = &self.nodes[id];
                        let includer = match &node.graph {
                            Some(graph) => format!("graph asset '{graph}' (its node '{}' reads it)", node.name),
                            None => format!("'{}'", node.name),
                        };
                        let missing = self.edge_key(edge);
                        return Err(Error::GraphValidation(format!(
                            "job '{job}' includes {includer} but not its upstream '{missing}'; add '{}' to \
                             the job or pass allow_incomplete_deps=True",
                            up.name
                        )));
                    }
                }
            }
        }
        Ok(ids)
    }

    /// `ids` with the internal nodes of every graph asset among them.
    pub(crate) fn with_members(&self, mut ids: Vec<usize>) -> Vec<usize> {
        let graphs: Vec<usize> = ids.iter().copied().filter(|&id| self.nodes[id].kind == NodeKind::Graph).collect();
        for id in graphs {
            ids.extend(self.nodes[id].members.iter().filter_map(|m| self.node_id(m)));
        }
        ids
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
    fn graph_only_tasks_are_the_candidates_whose_parameters_do_not_resolve_standalone() {
        let nodes = vec![
            NodeDef::asset("source"),
            NodeDef::task("ingest").with_param("source"),
            NodeDef::task("transform").with_param("value"),
            NodeDef::task("configured").with_param("client"),
            // Reads `transform`, which is dropped: dropped in the next round.
            NodeDef::task("after").with_param("transform"),
            NodeDef::task("standalone_only").with_param("missing"),
        ];
        let resources = ["client".to_string()];
        let dropped = AssetGraph::graph_only_tasks(&nodes, &[1, 2, 3, 4], &resources);
        assert_eq!(dropped, vec![2, 4]);
        // Entries no graph calls are not candidates: never dropped (R6's error stays with build()).
        assert_eq!(AssetGraph::graph_only_tasks(&nodes, &[], &resources), Vec::<usize>::new());
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
