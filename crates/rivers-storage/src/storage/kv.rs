//! Key/value entries and dynamic partition keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::clock::now_ns;
use serde_json::{Value, json};

use super::Storage;
use crate::error::{Error, Result};

impl Storage {
    // ---- kv -----------------------------------------------------------------------------

    /// The value stored under `key`.
    pub async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let rows = self.rows("SELECT VALUE value FROM type::record('kv', $key)", json!({"key": key})).await?;
        match rows.first().and_then(Value::as_str) {
            None => Ok(None),
            Some(text) => BASE64
                .decode(text)
                .map(Some)
                .map_err(|err| Error::Backend(format!("kv entry '{key}' is corrupt: {err}"))),
        }
    }

    /// Inserts or overwrites `key`.
    pub async fn kv_set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.execute(
            "UPSERT type::record('kv', $key) CONTENT { key: $key, value: $value } RETURN NONE",
            json!({"key": key, "value": BASE64.encode(value)}),
        )
        .await
    }

    // ---- dynamic partitions -------------------------------------------------------------

    /// Registers keys of a dynamic partitions definition; existing keys are kept once.
    ///
    /// # Errors
    /// `InvalidArgument` (and nothing added) for an empty key or one containing `|` or `,`.
    pub async fn add_dynamic_partitions(&self, name: &str, keys: &[String]) -> Result<()> {
        if let Some(bad) = keys.iter().find(|k| k.is_empty() || k.contains('|') || k.contains(',')) {
            return Err(Error::InvalidArgument(format!(
                "invalid dynamic partition key {bad:?} for '{name}': keys must be non-empty and must not \
                 contain '|' or ','"
            )));
        }
        let rows: Vec<Value> = keys.iter().map(|k| json!({"key": k, "seq": now_ns()})).collect();
        self.execute(
            "FOR $k IN $keys { IF !record::exists(type::record('dynamic_partition', [$name, $k.key])) { \
             CREATE type::record('dynamic_partition', [$name, $k.key]) CONTENT { name: $name, key: $k.key, seq: $k.seq } \
             RETURN NONE; }; };",
            json!({"name": name, "keys": rows}),
        )
        .await
    }

    /// Removes one key; absent keys are a no-op.
    pub async fn delete_dynamic_partition(&self, name: &str, key: &str) -> Result<()> {
        self.execute(
            "DELETE type::record('dynamic_partition', [$name, $key]) RETURN NONE",
            json!({"name": name, "key": key}),
        )
        .await
    }

    /// Current keys in first-insertion order.
    pub async fn get_dynamic_partitions(&self, name: &str) -> Result<Vec<String>> {
        let rows = self
            .rows("SELECT VALUE key FROM dynamic_partition WHERE name = $name ORDER BY seq", json!({"name": name}))
            .await?;
        Ok(rows.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
    }

    /// Whether the key is registered.
    pub async fn has_dynamic_partition(&self, name: &str, key: &str) -> Result<bool> {
        let rows = self
            .rows(
                "RETURN record::exists(type::record('dynamic_partition', [$name, $key]))",
                json!({"name": name, "key": key}),
            )
            .await?;
        Ok(rows.first().and_then(Value::as_bool).unwrap_or(false))
    }
}
