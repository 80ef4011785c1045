//! Asset records: the registry document of declared fields merged with materialization state.

use rivers_core::{AssetVersionState, Staleness, compute_staleness};

use crate::records::AssetRecord;
use serde_json::{Value, json};

use super::{Storage, decode_events};
use crate::error::{Error, Result};
use crate::registry::{self, LabelKind};
use std::collections::BTreeMap;

impl Storage {
    // ---- assets -------------------------------------------------------------------------

    /// Registers assets: declared fields are replaced, `last_*` fields are kept.
    ///
    /// Declared fields live in the registry (a few shard documents for a whole repository,
    /// and a record per tag, kind and group; see `registry.rs`); the `asset` table holds only
    /// what materializations and observations record.
    ///
    /// # Errors
    /// A failed read or write.
    pub async fn register_assets(&self, records: Vec<AssetRecord>) -> Result<()> {
        let declared = records
            .into_iter()
            .map(|r| {
                let doc = json!({"tags": r.tags, "kinds": r.kinds, "group": r.group, "code_version": r.code_version,
                                 "pool": r.pool, "upstreams": r.upstreams, "is_external": r.is_external});
                (r.asset_key, doc)
            })
            .collect();
        registry::register(&self.inner.client, declared).await
    }

    /// Combines a registry entry (declared fields) with an `asset` row (`last_*` fields, read
    /// from the latest materialization event the row holds).
    fn merge_record(asset_key: &str, declared: Option<&Value>, state: Option<Value>) -> Result<AssetRecord> {
        let mut doc = state.unwrap_or_else(|| json!({}));
        if let Value::Object(row) = &mut doc {
            row.remove("last_observation");
            if let Some(stored) = row.remove("last_materialization").filter(|v| !v.is_null()) {
                let event = decode_events(vec![stored])?.remove(0).latest();
                row.insert("last_event_id".into(), json!(event.id));
                row.insert("last_run_id".into(), json!(event.run_id));
                row.insert("last_timestamp".into(), json!(event.timestamp));
                row.insert("last_data_version".into(), json!(event.data_version));
                row.insert("last_materialization_code_version".into(), json!(event.code_version));
                row.insert("last_input_data_versions".into(), json!(event.input_data_versions));
            }
        }
        if let (Some(Value::Object(fields)), Value::Object(target)) = (declared, &mut doc) {
            for (key, value) in fields {
                target.insert(key.clone(), value.clone());
            }
        }
        doc["asset_key"] = Value::String(asset_key.to_string());
        serde_json::from_value(doc).map_err(|source| Error::Decode { what: "asset", source })
    }

    /// One asset's record.
    ///
    /// # Errors
    /// A failed read, or a record this build cannot decode.
    pub async fn get_asset_record(&self, asset_key: &str) -> Result<Option<AssetRecord>> {
        Ok(self.records_of(vec![asset_key.to_owned()]).await?.into_iter().next())
    }

    /// Every asset record, by ascending key.
    ///
    /// # Errors
    /// A failed read, or a record this build cannot decode.
    pub async fn get_asset_records(&self) -> Result<Vec<AssetRecord>> {
        self.flush().await?;
        let declared = registry::all(&self.inner.client).await?;
        let states = self.rows("SELECT * OMIT id, last_observation FROM asset", json!({})).await?;
        Self::merge_records(declared, states)
    }

    /// The records of `keys` that are registered or have state, by ascending key.
    async fn records_of(&self, keys: Vec<String>) -> Result<Vec<AssetRecord>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.flush().await?;
        let declared = registry::declared(&self.inner.client, &keys).await?;
        let states = self
            .rows(
                "SELECT * OMIT id, last_observation FROM array::map($keys, |$key| type::record('asset', $key))",
                json!({"keys": keys}),
            )
            .await?;
        Self::merge_records(declared, states)
    }

    /// Declared fields and state rows combined per asset, by ascending key.
    fn merge_records(declared: BTreeMap<String, Value>, states: Vec<Value>) -> Result<Vec<AssetRecord>> {
        let mut by_key: BTreeMap<String, Option<Value>> = declared.keys().map(|k| (k.clone(), None)).collect();
        for state in states {
            if let Some(key) = state["asset_key"].as_str() {
                by_key.insert(key.to_string(), Some(state));
            }
        }
        by_key.into_iter().map(|(key, state)| Self::merge_record(&key, declared.get(&key), state)).collect()
    }

    /// The current data version of each of `asset_keys` that has one (the latest
    /// materialization's, or for external assets the latest observation's). Reads only those
    /// keys' rows, however many assets the store holds.
    pub async fn current_data_versions(&self, asset_keys: &[String]) -> Result<Vec<(String, String)>> {
        if asset_keys.is_empty() {
            return Ok(Vec::new());
        }
        self.flush().await?;
        let rows = self
            .rows(
                "SELECT asset_key, last_data_version ?? last_observation_data_version AS version \
                 FROM array::map($keys, |$key| type::record('asset', $key))",
                json!({"keys": asset_keys}),
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| Some((row["asset_key"].as_str()?.to_owned(), row["version"].as_str()?.to_owned())))
            .collect())
    }

    /// Records whose tags contain `tag`, by ascending key (from the tag's label record).
    ///
    /// # Errors
    /// A failed read, or a record this build cannot decode.
    pub async fn get_assets_by_tag(&self, tag: &str) -> Result<Vec<AssetRecord>> {
        self.records_labelled(LabelKind::Tag, tag).await
    }

    /// Records whose kinds contain `kind`, by ascending key (from the kind's label record).
    ///
    /// # Errors
    /// A failed read, or a record this build cannot decode.
    pub async fn get_assets_by_kind(&self, kind: &str) -> Result<Vec<AssetRecord>> {
        self.records_labelled(LabelKind::Kind, kind).await
    }

    /// Records of group `group`, by ascending key (from the group's label record).
    ///
    /// # Errors
    /// A failed read, or a record this build cannot decode.
    pub async fn get_assets_by_group(&self, group: &str) -> Result<Vec<AssetRecord>> {
        self.records_labelled(LabelKind::Group, group).await
    }

    async fn records_labelled(&self, kind: LabelKind, value: &str) -> Result<Vec<AssetRecord>> {
        let keys = registry::labelled(&self.inner.client, kind, value).await?;
        self.records_of(keys).await
    }

    /// Live staleness of every asset record, keyed by asset key (ascending).
    pub async fn compute_staleness(&self) -> Result<Vec<(String, Staleness)>> {
        let states: Vec<AssetVersionState> = self
            .get_asset_records()
            .await?
            .into_iter()
            .map(|r| AssetVersionState {
                current_data_version: if r.is_external { r.last_observation_data_version } else { r.last_data_version },
                materialized: r.last_event_id.is_some(),
                asset_key: r.asset_key,
                is_external: r.is_external,
                code_version: r.code_version,
                last_materialization_code_version: r.last_materialization_code_version,
                last_input_data_versions: r.last_input_data_versions,
                upstreams: r.upstreams,
            })
            .collect();
        Ok(compute_staleness(&states))
    }
}
