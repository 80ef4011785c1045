//! Partitions on the asset graph: every node's definition resolved (inline, or by the name it
//! was registered under), and every edge's mapping checked against the definitions at its two
//! ends, when a repository is validated.

use std::collections::HashMap;
use std::sync::Arc;

use super::definition::{PartitionEnv, Partitions};
use super::mapping::{PartitionMapping, check_edge, effective_mapping};
use crate::definition::{NodeKind, PartitionsDecl};
use crate::error::{Error, Result};
use crate::graph::{AssetGraph, Edge, KeyRef};

/// The partitions a planned step runs under, and the mapping of each partitioned input.
#[derive(Debug, Clone, PartialEq)]
pub struct StepPartitions {
    /// The step's definition; `None` for an unpartitioned step reading partitioned upstreams.
    pub definition: Option<Arc<Partitions>>,
    /// Data inputs that read partitions (or an unpartitioned upstream through `for_keys`).
    pub inputs: Vec<PartitionedInput>,
    /// A multi-asset step whose selected outputs declare definitions other than
    /// [`StepPartitions::definition`] (the first selected output's): those outputs and their
    /// definitions. A run's key must be valid for each of them too.
    pub other_outputs: Vec<(String, Arc<Partitions>)>,
}

/// One input of a step and how its upstream partitions are chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionedInput {
    /// The upstream's loadable name.
    pub upstream: String,
    /// The upstream's definition; `None` when it is unpartitioned.
    pub definition: Option<Arc<Partitions>>,
    /// The edge's effective mapping.
    pub mapping: PartitionMapping,
}

/// Each node's resolved definition, and multi-asset outputs whose own definition differs.
#[derive(Debug, Clone, Default)]
pub(crate) struct GraphPartitions {
    nodes: Vec<Option<Arc<Partitions>>>,
    outputs: HashMap<(usize, u32), Arc<Partitions>>,
}

impl AssetGraph {
    /// Resolves every node's partitions. With `check`, an unknown name is a `Configuration`
    /// error, a multi-asset whose outputs disagree an `AssetDefinition` error, and an edge whose
    /// mapping does not fit its definitions a `PartitionValidation` error; without it (graph
    /// structure only), what cannot be resolved is left unpartitioned.
    ///
    /// # Errors
    /// As above, only with `check`.
    pub fn resolve_partitions(
        &mut self,
        named: &HashMap<String, Arc<Partitions>>,
        env: &PartitionEnv,
        check: bool,
    ) -> Result<()> {
        let lookup = |owner: &str, decl: &Option<PartitionsDecl>| -> Result<Option<Arc<Partitions>>> {
            match decl {
                None => Ok(None),
                Some(PartitionsDecl::Defined(partitions)) => Ok(Some(partitions.clone())),
                Some(PartitionsDecl::Named(name)) => match named.get(name) {
                    Some(partitions) => Ok(Some(partitions.clone())),
                    None if !check => Ok(None),
                    None => {
                        let mut known: Vec<&str> = named.keys().map(String::as_str).collect();
                        known.sort_unstable();
                        Err(Error::Configuration(format!(
                            "'{owner}' declares partitions_def='{name}', which is not a registered partitions \
                             definition; registered partition_defs: {known:?}"
                        )))
                    }
                },
            }
        };
        let mut resolved = GraphPartitions { nodes: Vec::with_capacity(self.nodes.len()), outputs: HashMap::new() };
        for (id, node) in self.nodes.iter().enumerate() {
            let own = lookup(&node.name, &node.partitions)?;
            if node.kind != NodeKind::Multi || own.is_some() {
                resolved.nodes.push(own);
                continue;
            }
            let outputs = node
                .outputs
                .iter()
                .map(|o| lookup(&o.name, &o.partitions))
                .collect::<Result<Vec<Option<Arc<Partitions>>>>>()?;
            let first = outputs.iter().flatten().next().cloned();
            if check && let Some(first) = &first {
                check_output_partitions(&node.name, &node.outputs, &outputs, env)?;
                for (i, partitions) in outputs.iter().enumerate() {
                    if let Some(partitions) = partitions.as_ref().filter(|p| **p != *first) {
                        resolved.outputs.insert((id, i as u32), partitions.clone());
                    }
                }
            }
            resolved.nodes.push(first);
        }
        // Graph-internal tasks run under their graph's partitions; one that declares its own
        // must declare the same definition.
        for id in 0..self.nodes.len() {
            let Some(graph) = self.nodes[id].graph.as_ref().and_then(|g| self.node_id(g)) else { continue };
            match (&resolved.nodes[id], &resolved.nodes[graph]) {
                (None, inherited) => resolved.nodes[id] = inherited.clone(),
                (Some(own), graph_partitions) if check && graph_partitions.as_ref() != Some(own) => {
                    return Err(Error::PartitionValidation(format!(
                        "task '{}' declares a partitions_def that differs from its graph '{}'s; internal tasks run \
                         under the graph's partitions: remove partitions_def from the task or make it the same",
                        self.nodes[id].name, self.nodes[graph].name
                    )));
                }
                _ => {}
            }
        }
        self.partitions = resolved;
        self.named_partitions = named.iter().map(|(name, partitions)| (name.clone(), Arc::clone(partitions))).collect();
        if check {
            self.check_partition_edges(env)?;
        }
        Ok(())
    }

    /// The partitions a node's step runs under.
    pub fn partitions(&self, id: usize) -> Option<&Arc<Partitions>> {
        self.partitions.nodes.get(id).and_then(Option::as_ref)
    }

    /// The partitions of a loadable name (a multi-asset output may have its own).
    pub fn key_partitions(&self, key: KeyRef) -> Option<&Arc<Partitions>> {
        key.output
            .and_then(|output| self.partitions.outputs.get(&(key.node, output)))
            .or_else(|| self.partitions(key.node))
    }

    /// The mapping declared on the edge from `edge` into `node`; a graph-internal task uses its
    /// graph's mapping for an upstream it does not map itself.
    pub(crate) fn declared_mapping(&self, node: usize, edge: &Edge) -> Option<&PartitionMapping> {
        let upstream = self.edge_key(edge);
        let own = &self.nodes[node];
        let find = |id: usize| self.nodes[id].partition_mappings.iter().find(|(k, _)| k == upstream).map(|(_, m)| m);
        find(node).or_else(|| own.graph.as_ref().and_then(|g| self.node_id(g)).and_then(find))
    }

    /// What the step of node `id` needs to know about partitions; `None` when nothing.
    /// `outputs` are the selected outputs of a multi-asset step: the step runs under the first
    /// one's definition.
    pub(crate) fn step_partitions(&self, id: usize, outputs: &[String]) -> Option<StepPartitions> {
        let mut output_definitions =
            self.nodes[id].outputs.iter().enumerate().filter(|(_, output)| outputs.contains(&output.name)).map(
                |(i, output)| {
                    let key = KeyRef { node: id, output: Some(i as u32) };
                    (output.name.clone(), self.key_partitions(key).cloned())
                },
            );
        let (definition, other_outputs) = match output_definitions.next() {
            Some((_, first)) => {
                let others = output_definitions
                    .filter_map(|(name, own)| own.filter(|own| Some(own) != first.as_ref()).map(|own| (name, own)))
                    .collect();
                (first, others)
            }
            None => (self.partitions(id).cloned(), Vec::new()),
        };
        // A graph's own step reads its final member's value (a data edge to a member).
        let inputs: Vec<PartitionedInput> = self.upstream[id]
            .iter()
            .filter(|e| e.is_data)
            .filter_map(|edge| {
                let upstream = self.key_partitions(KeyRef { node: edge.upstream, output: edge.output }).cloned();
                let declared = self.declared_mapping(id, edge);
                let mapping = effective_mapping(declared, upstream.as_deref(), definition.as_deref())?.clone();
                Some(PartitionedInput { upstream: self.edge_key(edge).to_owned(), definition: upstream, mapping })
            })
            .collect();
        (definition.is_some() || !inputs.is_empty()).then_some(StepPartitions { definition, inputs, other_outputs })
    }

    fn check_partition_edges(&self, env: &PartitionEnv) -> Result<()> {
        for (id, edges) in self.upstream.iter().enumerate() {
            let downstream = self.partitions(id).map(Arc::as_ref);
            for edge in edges.iter().filter(|e| !e.member) {
                let key = KeyRef { node: edge.upstream, output: edge.output };
                let upstream = self.key_partitions(key).map(Arc::as_ref);
                let declared = self.declared_mapping(id, edge);
                let Some(mapping) = effective_mapping(declared, upstream, downstream) else { continue };
                check_edge(mapping, upstream, downstream, env).map_err(|why| {
                    Error::PartitionValidation(format!(
                        "dependency '{}' -> '{}' ({}): {why}",
                        self.edge_key(edge),
                        self.nodes[id].name,
                        mapping.name()
                    ))
                })?;
            }
        }
        // A mapping naming no upstream of its node would be silently ignored.
        for (id, node) in self.nodes.iter().enumerate() {
            for (upstream, _) in &node.partition_mappings {
                if !self.upstream[id].iter().any(|e| self.edge_key(e) == upstream) {
                    return Err(Error::PartitionValidation(format!(
                        "'{}' declares a partition mapping for '{upstream}', which is not one of its upstreams",
                        node.name
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Per-output definitions of a multi-asset: all declared, of one kind, sharing a key.
fn check_output_partitions(
    node: &str,
    outputs: &[crate::definition::OutputDef],
    partitions: &[Option<Arc<Partitions>>],
    env: &PartitionEnv,
) -> Result<()> {
    let error = |why: String| Error::AssetDefinition(format!("multi-asset '{node}': {why}"));
    if let Some(i) = partitions.iter().position(Option::is_none) {
        return Err(error(format!(
            "output '{}' declares no partitions_def while other outputs do; give every output one, or pass \
             partitions_def= to the multi-asset",
            outputs[i].name
        )));
    }
    let all: Vec<&Partitions> = partitions.iter().flatten().map(Arc::as_ref).collect();
    if all.windows(2).any(|pair| pair[0].kind() != pair[1].kind()) {
        return Err(error("per-output partitions definitions must all be of one kind".into()));
    }
    let shared = all[0]
        .all_coords(env)
        .iter()
        .filter_map(|c| all[0].key_of(c, env))
        .any(|key| all.iter().all(|p| p.validate(&key, env)));
    if !shared && !matches!(all[0], Partitions::Dynamic(_)) {
        return Err(error("per-output partitions definitions share no partition key".into()));
    }
    Ok(())
}
