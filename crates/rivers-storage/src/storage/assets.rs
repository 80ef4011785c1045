//! Asset records: each asset's declared fields (an `asset_def` row, indexed by tag, kind and
//! group) merged with its materialization state (its `asset` row).

use rivers_core::{AssetVersionState, Staleness, compute_staleness};
use sha2::{Digest, Sha256};

use crate::records::AssetRecord;
use serde_json::{Value, json};

use super::{Storage, decode_events};
use crate::error::{Error, Result};

/// The columns of an `asset_def` row that make up a record's declared fields.
const DECLARED: &str = "SELECT * OMIT id, digest";
/// The columns of an `asset` row that make up a record's state.
const STATE: &str = "SELECT * OMIT id, last_observation";

impl Storage {
    // ---- assets -------------------------------------------------------------------------

    /// Registers assets: declared fields are replaced, `last_*` fields are kept.
    ///
    /// Each asset's declared fields are one `asset_def` row carrying a digest of them; only
    /// rows whose digest changed are written, so resolving an unchanged repository reads the
    /// digests and writes nothing.
    pub async fn register_assets(&self, records: Vec<AssetRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let declared: Vec<Value> = records
            .into_iter()
            .map(|r| {
                let mut doc = json!({"asset_key": r.asset_key, "tags": r.tags, "kinds": r.kinds, "group": r.group,
                                     "code_version": r.code_version, "pool": r.pool, "upstreams": r.upstreams,
                                     "is_external": r.is_external});
                doc["digest"] = json!(digest_of(&doc));
                doc
            })
            .collect();
        let keys: Vec<&Value> = declared.iter().map(|doc| &doc["asset_key"]).collect();
        let stored = self
            .rows(
                "SELECT asset_key, digest FROM array::map($keys, |$key| type::record('asset_def', $key))",
                json!({"keys": keys}),
            )
            .await?;
        let known: std::collections::HashMap<&str, &str> =
            stored.iter().filter_map(|row| Some((row["asset_key"].as_str()?, row["digest"].as_str()?))).collect();
        let changed: Vec<&Value> = declared
            .iter()
            .filter(|doc| known.get(doc["asset_key"].as_str().unwrap_or_default()) != doc["digest"].as_str().as_ref())
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        self.execute(
            "FOR $doc IN $docs { UPSERT type::record('asset_def', $doc.asset_key) CONTENT $doc RETURN NONE; }",
            json!({"docs": changed}),
        )
        .await
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
    pub async fn get_asset_record(&self, asset_key: &str) -> Result<Option<AssetRecord>> {
        self.flush().await?;
        let mut response = self
            .inner
            .client
            .query(
                &format!("{DECLARED} FROM type::record('asset_def', $key); {STATE} FROM type::record('asset', $key);"),
                json!({"key": asset_key}),
            )
            .await?;
        let declared: Vec<Value> = response.take(0)?;
        let state: Vec<Value> = response.take(1)?;
        let (declared, state) = (declared.into_iter().next(), state.into_iter().next());
        if declared.is_none() && state.is_none() {
            return Ok(None);
        }
        Self::merge_record(asset_key, declared.as_ref(), state).map(Some)
    }

    /// Every asset record, by ascending key.
    pub async fn get_asset_records(&self) -> Result<Vec<AssetRecord>> {
        self.flush().await?;
        let mut response =
            self.inner.client.query(&format!("{DECLARED} FROM asset_def; {STATE} FROM asset;"), json!({})).await?;
        let declared: Vec<Value> = response.take(0)?;
        let states: Vec<Value> = response.take(1)?;
        Self::merge_records(declared, states, true)
    }

    /// The records of the assets whose declared fields match `condition` (`$value` bound to
    /// `value`), found from `index`; only their state rows are read.
    async fn get_asset_records_where(&self, index: &str, condition: &str, value: &str) -> Result<Vec<AssetRecord>> {
        self.flush().await?;
        let declared = self.rows(&declared_where(index, condition), json!({"value": value})).await?;
        let keys: Vec<&Value> = declared.iter().map(|doc| &doc["asset_key"]).collect();
        let states = self
            .rows(&format!("{STATE} FROM array::map($keys, |$key| type::record('asset', $key))"), json!({"keys": keys}))
            .await?;
        Self::merge_records(declared, states, false)
    }

    /// Merges declared rows with state rows by asset key, ascending; with `every_state`, assets
    /// that only have state (materialized but never declared) are listed too.
    fn merge_records(declared: Vec<Value>, states: Vec<Value>, every_state: bool) -> Result<Vec<AssetRecord>> {
        let mut by_key: std::collections::BTreeMap<String, (Option<Value>, Option<Value>)> = declared
            .into_iter()
            .filter_map(|doc| Some((doc["asset_key"].as_str()?.to_owned(), (Some(doc), None))))
            .collect();
        for state in states {
            let Some(key) = state["asset_key"].as_str().map(str::to_owned) else { continue };
            match by_key.get_mut(&key) {
                Some(entry) => entry.1 = Some(state),
                None if every_state => {
                    by_key.insert(key, (None, Some(state)));
                }
                None => {}
            }
        }
        by_key.into_iter().map(|(key, (declared, state))| Self::merge_record(&key, declared.as_ref(), state)).collect()
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

    /// Records whose tags contain `tag` (from the tag index).
    pub async fn get_assets_by_tag(&self, tag: &str) -> Result<Vec<AssetRecord>> {
        self.get_asset_records_where(BY_TAG.0, BY_TAG.1, tag).await
    }

    /// Records whose kinds contain `kind` (from the kind index).
    pub async fn get_assets_by_kind(&self, kind: &str) -> Result<Vec<AssetRecord>> {
        self.get_asset_records_where(BY_KIND.0, BY_KIND.1, kind).await
    }

    /// Records of group `group` (from the group index).
    pub async fn get_assets_by_group(&self, group: &str) -> Result<Vec<AssetRecord>> {
        self.get_asset_records_where(BY_GROUP.0, BY_GROUP.1, group).await
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

/// The declared rows matching `condition`, read from `index`.
pub(super) fn declared_where(index: &str, condition: &str) -> String {
    format!("{DECLARED} FROM asset_def WITH INDEX {index} WHERE {condition}")
}

/// The index and condition of each lookup by a declared field.
pub(super) const BY_TAG: (&str, &str) = ("asset_def_tags", "tags CONTAINS $value");
pub(super) const BY_KIND: (&str, &str) = ("asset_def_kinds", "kinds CONTAINS $value");
pub(super) const BY_GROUP: (&str, &str) = ("asset_def_group", "`group` = $value");

/// SHA-256 of a declared document's JSON text, hex-encoded.
fn digest_of(doc: &Value) -> String {
    Sha256::digest(doc.to_string().as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}
