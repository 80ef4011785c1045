//! The registry of declared asset fields (tags, kinds, group, code version, pools, upstreams,
//! external or not), as `resolve()` registers them.
//!
//! Declared fields live in [`SHARDS`] documents (`asset_registry:<n>`, each asset in the one its
//! key hashes to), so that reading one asset's fields reads a sixty-fourth of the registry,
//! however many assets a store holds, while registering a whole repository stays a few writes
//! (rows per asset cost SurrealDB a write each). Each label an asset carries (a tag, a kind,
//! its group) has an `asset_label:[kind, value]` record listing the assets that carry it, so
//! that finding assets by tag, kind or group reads that record and those assets' shards. A
//! registration writes only the shards and labels whose content changed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::client::Client;
use crate::error::Result;

/// How many documents the registry is spread over.
const SHARDS: u64 = 64;

/// The registry document `asset_key` belongs to.
fn shard_of(asset_key: &str) -> u64 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(asset_key.as_bytes());
    let mut prefix = [0_u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(prefix) % SHARDS
}

/// What an asset can be looked up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LabelKind {
    Tag,
    Kind,
    Group,
}

impl LabelKind {
    fn as_str(self) -> &'static str {
        match self {
            LabelKind::Tag => "tag",
            LabelKind::Kind => "kind",
            LabelKind::Group => "group",
        }
    }
}

/// The labels of a declared-fields document.
fn labels_of(declared: Option<&Value>) -> BTreeSet<(LabelKind, String)> {
    let Some(declared) = declared else { return BTreeSet::new() };
    let values = |field: &str| {
        declared[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let tags = values("tags").into_iter().map(|tag| (LabelKind::Tag, tag));
    let kinds = values("kinds").into_iter().map(|kind| (LabelKind::Kind, kind));
    let group = declared["group"].as_str().map(|group| (LabelKind::Group, group.to_owned()));
    tags.chain(kinds).chain(group).collect()
}

/// Writes the declared fields of `assets` (asset key → document), replacing what each had;
/// other assets keep theirs.
pub(crate) async fn register(client: &Client, assets: Vec<(String, Value)>) -> Result<()> {
    let mut by_shard: BTreeMap<u64, Vec<(String, Value)>> = BTreeMap::new();
    for (key, declared) in assets {
        by_shard.entry(shard_of(&key)).or_default().push((key, declared));
    }
    let shards: Vec<u64> = by_shard.keys().copied().collect();
    let stored = read_shards(client, &shards).await?;

    let mut changed_shards = Vec::new();
    let mut added: BTreeMap<(LabelKind, String), Vec<String>> = BTreeMap::new();
    let mut removed: BTreeMap<(LabelKind, String), Vec<String>> = BTreeMap::new();
    for (shard, assets) in by_shard {
        let mut changed = Map::new();
        for (key, declared) in assets {
            let before = stored.get(&key);
            if before == Some(&declared) {
                continue;
            }
            let (old, new) = (labels_of(before), labels_of(Some(&declared)));
            for label in old.difference(&new) {
                removed.entry(label.clone()).or_default().push(key.clone());
            }
            for label in new.difference(&old) {
                added.entry(label.clone()).or_default().push(key.clone());
            }
            changed.insert(key, declared);
        }
        if !changed.is_empty() {
            changed_shards.push(json!({"shard": shard, "assets": changed}));
        }
    }
    if changed_shards.is_empty() {
        return Ok(());
    }
    let labelled = |labels: BTreeMap<(LabelKind, String), Vec<String>>| -> Vec<Value> {
        labels
            .into_iter()
            .map(|((kind, value), keys)| json!({"kind": kind.as_str(), "value": value, "keys": keys}))
            .collect()
    };
    client
        .query(
            "BEGIN TRANSACTION; \
             FOR $s IN $shards { \
                 UPSERT type::record('asset_registry', $s.shard) MERGE { shard: $s.shard, assets: $s.assets } \
                     RETURN NONE; \
             }; \
             FOR $l IN $removed { \
                 UPDATE type::record('asset_label', [$l.kind, $l.value]) \
                     SET assets = array::complement(assets ?? [], $l.keys) RETURN NONE; \
             }; \
             FOR $l IN $added { \
                 UPSERT type::record('asset_label', [$l.kind, $l.value]) \
                     SET kind = $l.kind, value = $l.value, assets = array::union(assets ?? [], $l.keys) RETURN NONE; \
             }; \
             COMMIT TRANSACTION;",
            json!({"shards": changed_shards, "added": labelled(added), "removed": labelled(removed)}),
        )
        .await?
        .check()?;
    Ok(())
}

/// The declared fields stored in `shards`, by asset key.
async fn read_shards(client: &Client, shards: &[u64]) -> Result<BTreeMap<String, Value>> {
    let rows: Vec<Value> = client
        .query(
            "SELECT VALUE assets FROM array::map($shards, |$shard| type::record('asset_registry', $shard))",
            json!({"shards": shards}),
        )
        .await?
        .take(0)?;
    Ok(rows
        .into_iter()
        .filter_map(|row| if let Value::Object(assets) = row { Some(assets) } else { None })
        .flatten()
        .collect())
}

/// The declared fields of `keys` that are registered.
pub(crate) async fn declared(client: &Client, keys: &[String]) -> Result<BTreeMap<String, Value>> {
    let shards: BTreeSet<u64> = keys.iter().map(|key| shard_of(key)).collect();
    let mut stored = read_shards(client, &shards.into_iter().collect::<Vec<_>>()).await?;
    let wanted: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    stored.retain(|key, _| wanted.contains(key.as_str()));
    Ok(stored)
}

/// The declared fields of every registered asset.
pub(crate) async fn all(client: &Client) -> Result<BTreeMap<String, Value>> {
    read_shards(client, &(0..SHARDS).collect::<Vec<_>>()).await
}

/// The keys of the assets carrying a label, sorted.
pub(crate) async fn labelled(client: &Client, kind: LabelKind, value: &str) -> Result<Vec<String>> {
    let rows: Vec<Value> = client
        .query(
            "SELECT VALUE assets FROM type::record('asset_label', [$kind, $value])",
            json!({"kind": kind.as_str(), "value": value}),
        )
        .await?
        .take(0)?;
    let mut keys: Vec<String> = rows
        .into_iter()
        .filter_map(|row| if let Value::Array(keys) = row { Some(keys) } else { None })
        .flatten()
        .filter_map(|key| key.as_str().map(str::to_owned))
        .collect();
    keys.sort_unstable();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_tags_kinds_and_group_a_document_declares() {
        let declared = json!({"tags": ["finance", "raw"], "kinds": ["table"], "group": "sales", "pool": []});
        let found = labels_of(Some(&declared));
        let labels: Vec<(LabelKind, &str)> = found.iter().map(|(kind, value)| (*kind, value.as_str())).collect();
        assert_eq!(
            labels,
            [
                (LabelKind::Tag, "finance"),
                (LabelKind::Tag, "raw"),
                (LabelKind::Kind, "table"),
                (LabelKind::Group, "sales")
            ]
        );
        assert!(labels_of(Some(&json!({"tags": [], "kinds": [], "group": null}))).is_empty());
        assert!(labels_of(None).is_empty());
    }

    #[test]
    fn an_asset_always_hashes_to_the_same_shard() {
        assert_eq!(shard_of("orders"), shard_of("orders"));
        assert!(shard_of("orders") < SHARDS);
        // Spread: a thousand keys land in most shards.
        let used: BTreeSet<u64> = (0..1000).map(|i| shard_of(&format!("asset_{i}"))).collect();
        assert!(used.len() > 60, "{} shards used", used.len());
    }
}
