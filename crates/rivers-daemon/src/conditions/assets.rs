//! The assets of a code location as the condition evaluator sees them: each asset's condition,
//! partitions definition and upstream edges (with their effective partition mappings), read
//! once from the definitions snapshot.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rivers_core::condition::Condition;
use rivers_core::partitions::{PartitionEnv, PartitionMapping, Partitions, effective_mapping};
use rivers_core::{AssetGraph, DefinitionsSnapshot, NodeKind};

/// One upstream edge of an asset.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetDep {
    /// The upstream asset key.
    pub key: String,
    /// The edge's effective mapping; `None` when the upstream is read whole.
    pub mapping: Option<PartitionMapping>,
}

/// One asset of the code location.
#[derive(Debug, Clone)]
pub struct ConditionAsset {
    /// Asset key.
    pub key: String,
    /// The condition it wears, if any.
    pub condition: Option<Condition>,
    /// Its partitions definition; `None` when unpartitioned.
    pub partitions: Option<Arc<Partitions>>,
    /// Its direct upstream assets.
    pub deps: Vec<AssetDep>,
    /// Whether it is an external asset (observed, never materialized).
    pub is_external: bool,
    /// Its declared code version.
    pub code_version: Option<String>,
}

/// Every asset of a code location, by key.
#[derive(Debug, Clone, Default)]
pub struct ConditionAssets {
    assets: BTreeMap<String, ConditionAsset>,
    /// The conditions by asset, built once: every pass evaluates them.
    conditions: BTreeMap<String, Condition>,
    /// Whether some condition reads the tags of an asset's latest run
    /// (`last_executed_with_tags`): only then does a pass read every asset's latest run.
    reads_latest_run_tags: bool,
}

impl ConditionAssets {
    /// The assets of `snapshot`.
    ///
    /// # Errors
    /// The text of the error that makes the graph of the snapshot invalid.
    pub fn from_snapshot(snapshot: &DefinitionsSnapshot) -> Result<Self, String> {
        let retries = snapshot.retries.iter().map(|(name, policy)| (name.clone(), policy.clone())).collect();
        let mut graph = AssetGraph::build_checked(snapshot.nodes.clone(), &snapshot.resources, retries, false)
            .map_err(|error| error.to_string())?;
        let named: HashMap<String, Arc<Partitions>> =
            snapshot.partitions.iter().map(|(name, definition)| (name.clone(), Arc::new(definition.clone()))).collect();
        let env = PartitionEnv::at(chrono::Utc::now().naive_utc());
        graph.resolve_partitions(&named, &env, false).map_err(|error| error.to_string())?;
        let partitions_of = |key: &str| graph.key(key).and_then(|key| graph.key_partitions(key)).cloned();
        let mut assets = BTreeMap::new();
        for entry in graph.assets() {
            let partitions = partitions_of(entry.key);
            // A multi-asset's condition applies to each of its outputs.
            let condition = entry.node.automation_condition.clone();
            let deps = entry
                .upstreams
                .iter()
                .filter(|upstream| *upstream != entry.key)
                .map(|upstream| {
                    let declared = entry
                        .node
                        .partition_mappings
                        .iter()
                        .find(|(key, _)| key == upstream)
                        .map(|(_, mapping)| mapping);
                    let upstream_partitions = partitions_of(upstream);
                    let mapping =
                        effective_mapping(declared, upstream_partitions.as_deref(), partitions.as_deref()).cloned();
                    AssetDep { key: upstream.clone(), mapping }
                })
                .collect();
            assets.insert(
                entry.key.to_owned(),
                ConditionAsset {
                    key: entry.key.to_owned(),
                    condition,
                    partitions,
                    deps,
                    is_external: entry.node.kind == NodeKind::External,
                    code_version: entry.code_version.map(str::to_owned),
                },
            );
        }
        Ok(Self::new(assets.into_values()))
    }

    /// Assets given directly (tests and tools that build definitions without a snapshot).
    pub fn new(assets: impl IntoIterator<Item = ConditionAsset>) -> Self {
        let assets: BTreeMap<String, ConditionAsset> =
            assets.into_iter().map(|asset| (asset.key.clone(), asset)).collect();
        let conditions: BTreeMap<String, Condition> =
            assets.values().filter_map(|asset| Some((asset.key.clone(), asset.condition.clone()?))).collect();
        let reads_latest_run_tags = conditions.values().any(|condition| {
            serde_json::to_string(condition).is_ok_and(|tree| tree.contains("last_executed_with_tags"))
        });
        Self { assets, conditions, reads_latest_run_tags }
    }

    /// Whether any asset wears a condition.
    pub fn has_conditions(&self) -> bool {
        !self.conditions.is_empty()
    }

    /// One asset.
    pub fn get(&self, key: &str) -> Option<&ConditionAsset> {
        self.assets.get(key)
    }

    /// Every asset, by key.
    pub fn iter(&self) -> impl Iterator<Item = &ConditionAsset> {
        self.assets.values()
    }

    /// Whether some condition reads the tags of an asset's latest run.
    pub(crate) fn reads_latest_run_tags(&self) -> bool {
        self.reads_latest_run_tags
    }

    /// The condition of every asset that wears one.
    pub(crate) fn conditions(&self) -> &BTreeMap<String, Condition> {
        &self.conditions
    }
}
