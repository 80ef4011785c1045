//! Key/value entries and dynamic partition keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use std::sync::Arc;

use rivers_core::partitions::DynamicKeys;
use serde_json::{Value, json};

use super::Storage;
use crate::error::{Error, Result};

/// Commits of `add_dynamic_partitions` tried before giving up on concurrent writers.
const ADD_ATTEMPTS: usize = 8;

/// Thrown by an add whose counter another writer moved since it was read.
const NUMBERS_MOVED: &str = "dynamic partition numbers moved";

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
                .map_err(|err| Error::Corrupt { what: format!("kv entry '{key}'"), detail: err.to_string() }),
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

    /// Registers keys of a dynamic partitions definition; existing keys are kept once. New keys
    /// are numbered after the set's last number (a key's number is its grid position; a key
    /// deleted and added again is a new partition).
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
        // Numbers come from the set's counter; a commit that finds the counter moved (another
        // process added keys meanwhile) throws and is retried with fresh numbers.
        for _ in 0..ADD_ATTEMPTS {
            let known: std::collections::HashSet<String> = self
                .rows(
                    "SELECT VALUE key FROM dynamic_partition WHERE name = $name AND key IN $keys",
                    json!({"name": name, "keys": keys}),
                )
                .await?
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            let next = self
                .rows("SELECT VALUE next FROM type::record('dynamic_partition_counter', $name)", json!({"name": name}))
                .await?
                .first()
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let mut seen = std::collections::HashSet::new();
            let fresh: Vec<Value> = keys
                .iter()
                .filter(|k| !known.contains(*k) && seen.insert(k.as_str()))
                .enumerate()
                .map(|(i, k)| json!({"key": k, "seq": next + i as i64}))
                .collect();
            if fresh.is_empty() {
                return Ok(());
            }
            let committed = self
                .execute(
                    "BEGIN TRANSACTION; \
                     IF ((SELECT VALUE next FROM type::record('dynamic_partition_counter', $name))[0] ?? 0) != $expected { \
                         THROW $moved; \
                     }; \
                     FOR $k IN $rows { CREATE type::record('dynamic_partition', [$name, $k.key]) \
                         CONTENT { name: $name, key: $k.key, seq: $k.seq } RETURN NONE; }; \
                     UPSERT type::record('dynamic_partition_counter', $name) \
                         SET next = $next, changes = (changes ?? 0) + 1 RETURN NONE; \
                     COMMIT TRANSACTION;",
                    json!({
                        "name": name, "rows": fresh, "expected": next, "next": next + fresh.len() as i64,
                        "moved": NUMBERS_MOVED,
                    }),
                )
                .await;
            match committed {
                Ok(()) => return Ok(()),
                // Another writer numbered keys meanwhile: read the counter again.
                Err(err) if err.is_thrown(NUMBERS_MOVED) || matches!(err, Error::AlreadyExists { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Err(Error::Contended { what: format!("add dynamic partitions to '{name}'") })
    }

    /// Removes one key from the set; absent keys are a no-op. The number it had is kept in a
    /// record of deleted keys, so that history recorded for it still names it; numbers are
    /// never given to another key.
    pub async fn delete_dynamic_partition(&self, name: &str, key: &str) -> Result<()> {
        self.execute(
            "BEGIN TRANSACTION; \
             LET $live = type::record('dynamic_partition', [$name, $key]); \
             LET $number = (SELECT VALUE seq FROM $live)[0]; \
             IF $number != NONE { \
                 UPSERT type::record('dynamic_partition_deleted', [$name, $number]) \
                     CONTENT { name: $name, key: $key, number: $number } RETURN NONE; \
                 DELETE $live RETURN NONE; \
                 UPSERT type::record('dynamic_partition_counter', $name) SET changes = (changes ?? 0) + 1 \
                     RETURN NONE; \
             }; \
             COMMIT TRANSACTION;",
            json!({"name": name, "key": key}),
        )
        .await
    }

    /// Current keys in first-insertion order.
    pub async fn get_dynamic_partitions(&self, name: &str) -> Result<Vec<String>> {
        Ok(self.get_dynamic_partition_numbers(name).await?.into_iter().map(|(key, _)| key).collect())
    }

    /// Current keys with their numbers (grid positions), in number order.
    pub async fn get_dynamic_partition_numbers(&self, name: &str) -> Result<Vec<(String, u64)>> {
        let rows = self
            .rows("SELECT key, seq FROM dynamic_partition WHERE name = $name ORDER BY seq", json!({"name": name}))
            .await?;
        Ok(rows.into_iter().filter_map(|row| Some((row["key"].as_str()?.to_owned(), row["seq"].as_u64()?))).collect())
    }

    /// Deleted keys with the numbers they had, in number order.
    pub async fn get_deleted_dynamic_partition_numbers(&self, name: &str) -> Result<Vec<(String, u64)>> {
        let rows = self
            .rows(
                "SELECT key, number FROM dynamic_partition_deleted WHERE name = $name ORDER BY number",
                json!({"name": name}),
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| Some((row["key"].as_str()?.to_owned(), row["number"].as_u64()?)))
            .collect())
    }

    /// The current keys of a dynamic set, with the numbers of its deleted keys, as environments
    /// use them. Read once per change of the set: a handle keeps the last read and only checks
    /// the set's change count (one small record) to reuse it, so runs over a set of a million
    /// keys do not each read it whole.
    ///
    /// # Errors
    /// A failed read.
    pub async fn dynamic_keys(&self, name: &str) -> Result<Arc<DynamicKeys>> {
        let changes = self
            .rows(
                "SELECT VALUE changes ?? 0 FROM type::record('dynamic_partition_counter', $name)",
                json!({"name": name}),
            )
            .await?
            .first()
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if let Some((read_at, keys)) = self.inner.dynamic_keys.lock().get(name)
            && *read_at == changes
        {
            return Ok(Arc::clone(keys));
        }
        let current = self.get_dynamic_partition_numbers(name).await?;
        let deleted = self.get_deleted_dynamic_partition_numbers(name).await?;
        let keys = Arc::new(DynamicKeys::new(current).with_deleted(deleted));
        // Read after the count: a change made in between makes the next call read again.
        self.inner.dynamic_keys.lock().insert(name.to_owned(), (changes, Arc::clone(&keys)));
        Ok(keys)
    }

    /// Whether the key is a current key of the set.
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
