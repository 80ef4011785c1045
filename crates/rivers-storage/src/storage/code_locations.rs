//! Code locations and their definitions snapshots: what a daemon, gRPC server or UI reads to
//! list a location's assets, jobs, schedules and sensors without importing its Python.
//!
//! One `code_location` record per identity holds the snapshot as JSON text with its digest;
//! a resolve that changes nothing writes nothing.

use rivers_core::DefinitionsSnapshot;
use serde_json::json;

use super::Storage;
use crate::clock::now_ns;
use crate::error::{Error, Result};

/// A code location as stored, without its snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct CodeLocationRecord {
    /// The location's identity.
    pub code_location: String,
    /// SHA-256 of the snapshot's JSON.
    pub digest: String,
    /// When the snapshot last changed (ns).
    pub updated: i64,
}

impl Storage {
    /// Stores `snapshot` as this handle's code location's definitions; `false` when the stored
    /// one is the same.
    ///
    /// # Errors
    /// `MissingCodeLocation` without an identity; `Backend` for a failed write.
    pub async fn put_definitions_snapshot(&self, snapshot: &DefinitionsSnapshot) -> Result<bool> {
        let code_location = self.code_location.for_writing(|| "the definitions snapshot")?;
        let text = snapshot.to_json();
        let digest = super::sha256_hex(&text, 32);
        // One statement: the record is written only when its digest differs (or it is new).
        let written = self
            .rows(
                "UPSERT type::record('code_location', $id) \
                     SET code_location = $id, digest = $digest, snapshot = $text, updated = $now \
                 WHERE digest != $digest RETURN VALUE true",
                json!({"id": code_location, "digest": digest, "text": text, "now": now_ns()}),
            )
            .await?;
        Ok(!written.is_empty())
    }

    /// The definitions snapshot of `code_location`, if it stored one.
    ///
    /// # Errors
    /// `Corrupt` for a snapshot this build cannot read; `Backend` for a failed read.
    pub async fn get_definitions_snapshot(&self, code_location: &str) -> Result<Option<DefinitionsSnapshot>> {
        let rows = self
            .rows("SELECT VALUE snapshot FROM type::record('code_location', $id)", json!({"id": code_location}))
            .await?;
        let Some(text) = rows.first().and_then(|v| v.as_str()) else { return Ok(None) };
        DefinitionsSnapshot::from_json(text).map(Some).map_err(|err| Error::Corrupt {
            what: format!("definitions snapshot of code location '{code_location}'"),
            detail: err.to_string(),
        })
    }

    /// Every code location that stored a snapshot, by identity.
    ///
    /// # Errors
    /// `Backend` for a failed read.
    pub async fn list_code_locations(&self) -> Result<Vec<CodeLocationRecord>> {
        let rows = self
            .rows("SELECT code_location, digest, updated FROM code_location ORDER BY code_location", json!({}))
            .await?;
        super::decode("code location", rows)
    }
}
