//! Versioned schema migrations.
//!
//! The schema is the ordered list of `.surql` files in `migrations/`; a store's
//! `schema_stamp:current.version` says how many of them it has applied. Opening a store whose
//! stamp is behind this build fails with `SchemaMigrationNeeded` (nothing is changed);
//! `migrate` applies the missing ones under a short cross-process lease, each followed by the
//! data step it needs (for example deriving indexed state from the events already stored), and
//! advances the stamp after each, so an interrupted migration resumes where it stopped.
//! A fresh store is created by running every migration.

use std::time::Duration;

use serde_json::{Value, json};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::records::StoredEvent;
use crate::storage::decode_events;

/// One schema step.
struct Migration {
    version: i64,
    name: &'static str,
    ddl: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "initial", ddl: include_str!("../migrations/0001_initial.surql") },
    Migration { version: 2, name: "indexed_state", ddl: include_str!("../migrations/0002_indexed_state.surql") },
    Migration { version: 3, name: "events_as_text", ddl: include_str!("../migrations/0003_events_as_text.surql") },
    Migration { version: 4, name: "run_tag_time", ddl: include_str!("../migrations/0004_run_tag_time.surql") },
    Migration { version: 5, name: "partitions", ddl: include_str!("../migrations/0005_partitions.surql") },
    Migration { version: 6, name: "shared_runs", ddl: include_str!("../migrations/0006_shared_runs.surql") },
    Migration { version: 7, name: "partition_ranges", ddl: include_str!("../migrations/0007_partition_ranges.surql") },
    Migration { version: 8, name: "code_locations", ddl: include_str!("../migrations/0008_code_locations.surql") },
    Migration {
        version: 9,
        name: "run_partition_keys",
        ddl: include_str!("../migrations/0009_run_partition_keys.surql"),
    },
    Migration { version: 10, name: "change_feed", ddl: include_str!("../migrations/0010_change_feed.surql") },
    Migration { version: 11, name: "asset_labels", ddl: include_str!("../migrations/0011_asset_labels.surql") },
    Migration {
        version: 12,
        name: "deleted_dynamic_keys",
        ddl: include_str!("../migrations/0012_deleted_dynamic_keys.surql"),
    },
    Migration { version: 13, name: "pools", ddl: include_str!("../migrations/0013_pools.surql") },
    Migration { version: 14, name: "automation", ddl: include_str!("../migrations/0014_automation.surql") },
    Migration { version: 15, name: "conditions", ddl: include_str!("../migrations/0015_conditions.surql") },
];

/// Schema version written by this build.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// How long a migration lease is valid; a migrating process that died frees the store after
/// this. Migrations of our stores take seconds; the lease is renewed before each step.
const LEASE_TTL: Duration = Duration::from_secs(120);

/// The stamp of a store: `None` for an empty one.
pub(crate) async fn stored_version(client: &Client) -> Result<Option<i64>> {
    // A store nobody initialised has no tables at all; reading the stamp table would fail.
    let mut response = client
        .query(
            "IF (INFO FOR DB).tables.schema_stamp = NONE { RETURN NONE } \
             ELSE { RETURN (SELECT VALUE version FROM schema_stamp:current)[0] }",
            json!({}),
        )
        .await?;
    let stamp: Option<Value> = response.take(0)?;
    match stamp {
        None | Some(Value::Null) => Ok(None),
        // An unreadable stamp is not an empty store: treating it as one would recreate the schema.
        Some(value) => value.as_i64().map(Some).ok_or_else(|| Error::Corrupt {
            what: "schema stamp".into(),
            detail: format!("the version is {value}, not an integer"),
        }),
    }
}

/// Checks that the store at `location` can be used by this build, creating the schema of an
/// empty store.
///
/// # Errors
/// `SchemaMigrationNeeded` for an older store, `Backend` for a newer one or a failed query.
pub(crate) async fn ensure_current(client: &Client, location: &str) -> Result<()> {
    match stored_version(client).await? {
        None => migrate(client, location).await,
        Some(found) if found < SCHEMA_VERSION => {
            Err(Error::SchemaMigrationNeeded { location: location.into(), found, expected: SCHEMA_VERSION })
        }
        Some(found) if found > SCHEMA_VERSION => {
            Err(Error::SchemaTooNew { location: location.into(), found, supported: SCHEMA_VERSION })
        }
        Some(_) => Ok(()),
    }
}

/// Applies every migration the store lacks. Idempotent. While another process migrates the
/// store (or creates the schema of an empty one), waits for it to finish, then applies
/// whatever it left to do (usually nothing).
///
/// # Errors
/// `Backend` when a step fails (the stamp then names the last step that completed).
pub(crate) async fn migrate(client: &Client, location: &str) -> Result<()> {
    let holder = uuid::Uuid::new_v4().to_string();
    acquire_lease(client, location, &holder).await?;
    let outcome = apply_pending(client, location, &holder).await;
    let released =
        client.query("DELETE schema_lease:current WHERE holder = $holder RETURN NONE", json!({"holder": holder})).await;
    outcome?;
    released?.check()?;
    Ok(())
}

async fn apply_pending(client: &Client, location: &str, holder: &str) -> Result<()> {
    let current = stored_version(client).await?.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew { location: location.into(), found: current, supported: SCHEMA_VERSION });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        renew_lease(client, holder).await?;
        let fresh = current == 0;
        client.query_within(migration.ddl, json!({}), None).await?.check().map_err(|source| Error::Migration {
            version: migration.version,
            name: migration.name,
            location: location.into(),
            source: Box::new(source.into()),
        })?;
        if !fresh {
            backfill(client, migration.version).await?;
        }
        // A new store is stamped once, when complete: a process opening it meanwhile sees no
        // stamp and waits for this migration instead of finding an older schema.
        if !fresh || migration.version == SCHEMA_VERSION {
            client
                .query(
                    "UPSERT schema_stamp:current SET version = $version RETURN NONE",
                    json!({"version": migration.version}),
                )
                .await?
                .check()?;
        }
        if fresh {
            tracing::debug!(version = migration.version, name = migration.name, location, "created schema");
        } else {
            tracing::info!(version = migration.version, name = migration.name, location, "applied schema migration");
        }
    }
    Ok(())
}

/// The data step of a migration on a store that already holds data.
async fn backfill(client: &Client, version: i64) -> Result<()> {
    if version == 2 {
        // Schema 1 answered "latest materialization" and "which steps succeeded" by decoding
        // history; derive the state tables from it once, oldest segment first.
        let rows: Vec<Value> = client
            .query_within("SELECT VALUE events FROM event_segment ORDER BY seq", json!({}), None)
            .await?
            .take(0)?;
        let mut events: Vec<StoredEvent> = Vec::new();
        for row in rows {
            if let Value::Array(items) = row {
                events.extend(decode_events(items)?);
            }
        }
        events.sort_by_key(|e| e.timestamp);
        // Schema 1 events carry no run sequence number; number them per run in time order.
        let mut next_seq: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        for event in &mut events {
            let seq = next_seq.entry(event.run_id.clone()).or_default();
            *seq += 1;
            event.run_seq = *seq;
        }
        crate::writer::apply_state(client, &events).await?;
        // Numbering continues after each run's last event (schema 6 moves this to its counter).
        let lasts: Vec<Value> = next_seq.into_iter().map(|(run, last)| json!({"run": run, "last": last})).collect();
        client
            .query_within(
                "FOR $run IN $lasts { UPDATE type::record('run', $run.run) SET last_event_seq = $run.last RETURN NONE; };",
                json!({"lasts": lasts}),
                None,
            )
            .await?;
    }
    if version == 5 {
        // Dynamic keys were stamped with their insertion time; number them 0, 1, ... per set in
        // that order, and start each set's counter after its last key.
        let rows: Vec<Value> = client
            .query_within("SELECT name, key FROM dynamic_partition ORDER BY name, seq", json!({}), None)
            .await?
            .take(0)?;
        let mut next: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        let mut numbered = Vec::with_capacity(rows.len());
        for row in rows {
            let (Some(name), Some(key)) = (row["name"].as_str(), row["key"].as_str()) else { continue };
            let number = next.entry(name.to_owned()).or_default();
            numbered.push(json!({"name": name, "key": key, "seq": *number}));
            *number += 1;
        }
        let counters: Vec<Value> = next.into_iter().map(|(name, next)| json!({"name": name, "next": next})).collect();
        client
            .query_within(
                "FOR $row IN $numbered { UPDATE type::record('dynamic_partition', [$row.name, $row.key]) SET seq = $row.seq RETURN NONE; }; \
                 FOR $counter IN $counters { UPSERT type::record('dynamic_partition_counter', $counter.name) CONTENT { next: $counter.next } RETURN NONE; };",
                json!({"numbered": numbered, "counters": counters}),
                None,
            )
            .await?
            .check()?;
    }
    if version == 6 {
        // Event numbers and progress were kept on the run record; the counters continue from
        // there.
        client
            .query_within(
                "FOR $run IN (SELECT record::id(id) AS id, last_event_seq, completed_steps, total_steps FROM run) { \
                     UPSERT type::record('run_counter', $run.id) SET last = $run.last_event_seq ?? 0, \
                         completed = $run.completed_steps ?? 0, total = $run.total_steps ?? 0 RETURN NONE; \
                 };",
                json!({}),
                None,
            )
            .await?
            .check()?;
        // Backfill records held their strategy as JSON text and one list of the failed and
        // canceled partitions; they become typed records.
        let records: Vec<Value> = client
            .query_within("SELECT record::id(id) AS key, strategy, unfinished FROM backfill", json!({}), None)
            .await?
            .take(0)?;
        let converted: Vec<Value> = records
            .into_iter()
            .filter_map(|row| {
                let strategy = match &row["strategy"] {
                    Value::String(text) => serde_json::from_str(text).ok()?,
                    other => other.clone(),
                };
                Some(json!({"key": row["key"], "strategy": strategy, "failed_keys": row["unfinished"]}))
            })
            .collect();
        client
            .query_within(
                "FOR $row IN $rows { UPDATE type::record('backfill', $row.key) SET strategy = $row.strategy, \
                     failed_keys = $row.failed_keys ?? [], canceled_keys = [], unfinished = NONE RETURN NONE; };",
                json!({"rows": converted}),
                None,
            )
            .await?;
    }
    if version == 7 {
        partition_ranges(client).await?;
    }
    if version == 11 {
        // The single registry document of schemas 1 to 10 moves into shards and labels.
        let rows: Vec<Value> =
            client.query("SELECT VALUE assets FROM asset_registry:current", json!({})).await?.take(0)?;
        if let Some(Value::Object(assets)) = rows.into_iter().next() {
            crate::registry::register(client, assets.into_iter().collect()).await?;
        }
        client.query("DELETE asset_registry:current RETURN NONE", json!({})).await?.check()?;
    }
    Ok(())
}

/// Schema 7's data step: each asset's status becomes the grid of its definition, and the
/// latest materialization of each partition moves from its `asset_partition` row into the
/// interval index (a row whose key is not on the asset's grid stays where it was).
async fn partition_ranges(client: &Client) -> Result<()> {
    use rivers_core::partitions::{DynamicKeys, PartitionEnv, PartitionKey, Partitions, RangeSet};

    use crate::partition_index::Interval;
    use crate::storage::definition_fingerprint;

    let statuses = client_rows(
        client,
        // Only records of the old shape: a data step interrupted after rewriting some runs again.
        "SELECT record::id(id) AS key, definition, materialized, failed, version FROM partition_status \
         WHERE grids = NONE",
        json!({}),
    )
    .await?;
    let mut grids: std::collections::BTreeMap<String, (Partitions, PartitionEnv)> = std::collections::BTreeMap::new();
    let mut records: Vec<(String, String, Value, RangeSet, RangeSet, i64)> = Vec::new();
    let mut definitions = Vec::new();
    for row in statuses {
        let Some(key) = row["key"].as_str() else { continue };
        let Ok(definition) = serde_json::from_value::<Partitions>(row["definition"].clone()) else {
            // Written before the asset was registered: nothing places its positions.
            tracing::warn!(asset = key, "partition status without a definition is not migrated");
            continue;
        };
        let fingerprint = definition_fingerprint(&definition);
        let mut env = PartitionEnv::at(chrono::Local::now().naive_local());
        for (_, dim) in definition.dimensions() {
            if let Partitions::Dynamic(dynamic) = dim {
                let numbered = client_rows(
                    client,
                    "SELECT key, seq FROM dynamic_partition WHERE name = $name ORDER BY seq",
                    json!({"name": dynamic.name}),
                )
                .await?
                .iter()
                .filter_map(|r| Some((r["key"].as_str()?.to_owned(), r["seq"].as_u64()?)))
                .collect();
                env = env.with_dynamic(dynamic.name.clone(), DynamicKeys::new(numbered));
            }
        }
        let ranges = |field: &str| {
            row[field].as_str().unwrap_or_default().parse::<RangeSet>().map_err(|why| Error::Corrupt {
                what: format!("partition status of '{key}'"),
                detail: format!("{field}: {why}"),
            })
        };
        let (materialized, failed) = (ranges("materialized")?, ranges("failed")?);
        let version = row["version"].as_i64().unwrap_or(0) + 1;
        records.push((key.to_owned(), fingerprint.clone(), json!(definition), materialized, failed, version));
        definitions.push(json!({"id": fingerprint, "definition": definition}));
        grids.insert(key.to_owned(), (definition, env));
    }
    let rows = client_rows(
        client,
        "SELECT asset_key, partition_key, last_materialization, last_materialization_time FROM asset_partition \
         WHERE last_materialization != NONE",
        json!({}),
    )
    .await?;
    let mut entries = Vec::new();
    let mut moved = Vec::new();
    let mut moved_positions: std::collections::BTreeMap<String, Vec<u128>> = std::collections::BTreeMap::new();
    for row in rows {
        let (Some(asset), Some(partition), Some(text)) =
            (row["asset_key"].as_str(), row["partition_key"].as_str(), row["last_materialization"].as_str())
        else {
            continue;
        };
        let Some((definition, env)) = grids.get(asset) else { continue };
        let position = PartitionKey::parse_display(partition, partition.contains('='))
            .ok()
            .and_then(|key| definition.individuals(&key, env).ok())
            .and_then(|coords| match coords.as_slice() {
                [one] => definition.position(one, env),
                _ => None,
            });
        let (Some(position), Ok(event)) = (position, serde_json::from_str::<StoredEvent>(text)) else { continue };
        let interval = Interval {
            start: position,
            end: position,
            time: row["last_materialization_time"].as_i64().unwrap_or(event.timestamp),
            event_id: event.id,
            event: text.to_owned(),
        };
        entries.push(interval.row(asset, &definition_fingerprint(definition)));
        moved.push(json!([asset, partition]));
        moved_positions.entry(asset.to_owned()).or_default().push(position);
    }
    // Partitions the rows knew are materialized (status kept before schema 5 had none).
    let records: Vec<Value> = records
        .into_iter()
        .map(|(key, fingerprint, definition, materialized, failed, version)| {
            let moved = RangeSet::from_positions(moved_positions.remove(&key).unwrap_or_default());
            let grid = json!({"materialized": materialized.union(&moved), "failed": failed, "in_progress": {}});
            let grids: serde_json::Map<String, Value> = [(fingerprint.clone(), grid)].into_iter().collect();
            json!({"key": key, "row": {"asset_key": key, "current": fingerprint, "definition": definition,
                                        "grids": grids, "version": version}})
        })
        .collect();
    client
        .query_within(
            "BEGIN TRANSACTION; \
             INSERT IGNORE INTO partition_definition $definitions RETURN NONE; \
             FOR $record IN $records { UPSERT type::record('partition_status', $record.key) CONTENT $record.row RETURN NONE; }; \
             INSERT IGNORE INTO partition_latest $entries RETURN NONE; \
             FOR $id IN $moved { UPDATE type::record('asset_partition', $id) UNSET last_materialization, last_materialization_time RETURN NONE; }; \
             COMMIT TRANSACTION;",
            json!({"definitions": definitions, "records": records, "entries": entries, "moved": moved}),
            None,
        )
        .await?
        .check()?;
    Ok(())
}

async fn client_rows(client: &Client, sql: &str, vars: Value) -> Result<Vec<Value>> {
    Ok(client.query(sql, vars).await?.take(0)?)
}

/// How often a process waiting for another one's migration checks whether it finished.
const LEASE_POLL: Duration = Duration::from_millis(50);

/// Takes the migration lease, waiting while another live process holds it. A holder renews
/// its lease before each step, so the wait lasts as long as that migration; a holder that died
/// frees the store when its lease expires.
async fn acquire_lease(client: &Client, location: &str, holder: &str) -> Result<()> {
    let mut waiting_for: Option<String> = None;
    loop {
        let now = crate::clock::now_ns();
        let rows = client_rows(
            client,
            "IF record::exists(schema_lease:current) AND schema_lease:current.expires > $now { RETURN schema_lease:current.holder } \
             ELSE { UPSERT schema_lease:current CONTENT { holder: $holder, expires: $expires } RETURN NONE; RETURN NONE }",
            json!({"now": now, "holder": holder, "expires": now + LEASE_TTL.as_nanos() as i64}),
        )
        .await?;
        let Some(Value::String(other)) = rows.into_iter().next() else { return Ok(()) };
        if waiting_for.as_deref() != Some(other.as_str()) {
            tracing::info!(location, holder = %other, "another process is migrating the store; waiting for it");
            waiting_for = Some(other);
        }
        tokio::time::sleep(LEASE_POLL).await;
    }
}

async fn renew_lease(client: &Client, holder: &str) -> Result<()> {
    let expires = crate::clock::now_ns() + LEASE_TTL.as_nanos() as i64;
    client
        .query(
            "UPDATE schema_lease:current SET expires = $expires WHERE holder = $holder RETURN NONE",
            json!({"expires": expires, "holder": holder}),
        )
        .await?
        .check()?;
    Ok(())
}
