//! Concurrency pools: slot limits, leased slot claims, and the steps waiting for slots.
//!
//! A claim is decided from one read (each pool's limit, lease and version, and its unexpired
//! holders) and committed in one transaction that first checks every pool's version is the one
//! read, then bumps it and writes the claim's holder rows. Two claims that read the same pool
//! therefore both write its record: SurrealDB makes one of them conflict (and the client retry
//! it, when the version check throws and the claim is decided again from a fresh read). Checking
//! the holders inside the transaction would not be enough: two transactions that each count the
//! holders and each insert a different holder row touch no common record, and both commit
//! (write skew). Releases, expiries and renewals only ever free capacity or keep it, so they
//! need no version: a claim decided before one of them is at worst too cautious.
//!
//! Leases: a holder row counts only while `lease_expires_at` lies ahead, whatever garbage
//! collection did, so a killed process's slots are free again once its lease ends. A renewal
//! extends only unexpired rows: reviving an expired one could overshoot a pool whose freed
//! slots were claimed meanwhile.

use std::collections::HashMap;
use std::time::Duration;

use rivers_core::PoolClaim;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Storage, decode};
use crate::clock::now_ns;
use crate::error::{Error, Result};
use crate::records::{BlockReason, ConcurrencyClaim, PoolBlockDetail, PoolInfo, PoolLimit, SlotHolder};

/// The lease of a pool nobody gave one: what `set_pool_limit` and the repository's
/// `pool_limits` use by default (long enough that a busy process renews it in time, short
/// enough that a killed one frees its slots within minutes).
pub const DEFAULT_POOL_LEASE: Duration = Duration::from_secs(300);

/// Claim decisions tried before giving up on concurrent claimers of the same pools. Each lost
/// round means another claim committed, so this is reached only under extreme contention.
const CLAIM_ATTEMPTS: usize = 32;

/// Thrown by a claim whose pools changed since it read them.
const POOLS_MOVED: &str = "pool claims moved";

/// The version recorded for a pool without a limit record (the check then asserts it is
/// still absent).
const ABSENT: i64 = -1;

#[derive(Deserialize)]
struct LimitRow {
    pool_key: String,
    slot_limit: i64,
    lease_ns: i64,
    #[serde(default)]
    version: i64,
}

impl LimitRow {
    fn limit(self) -> PoolLimit {
        PoolLimit { pool_key: self.pool_key, slot_limit: self.slot_limit, lease: nanos_duration(self.lease_ns) }
    }
}

#[derive(Deserialize)]
struct HolderRow {
    run_id: String,
    step_key: String,
    slots: i64,
    claimed_at: i64,
    lease_expires_at: i64,
}

#[derive(Deserialize)]
struct PoolCount {
    pool_key: String,
    count: i64,
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

fn nanos_duration(ns: i64) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// `owner`: what the lease is for, e.g. `pool 'db'`.
fn check_lease(owner: &str, lease: Duration) -> Result<()> {
    if lease.is_zero() {
        return Err(Error::InvalidArgument(format!(
            "the lease duration of {owner} must be positive, e.g. \"30s\" or \"5m\""
        )));
    }
    Ok(())
}

/// The claim's pools, each once with its largest slot count, in first-listed order.
fn merged(claims: &[PoolClaim]) -> Result<Vec<PoolClaim>> {
    let mut merged: Vec<PoolClaim> = Vec::with_capacity(claims.len());
    for claim in claims {
        if claim.slots < 1 {
            return Err(Error::InvalidArgument(format!(
                "a claim of pool '{}' asks for {} slots; slot counts must be at least 1",
                claim.pool, claim.slots
            )));
        }
        match merged.iter_mut().find(|seen| seen.pool == claim.pool) {
            Some(seen) => seen.slots = seen.slots.max(claim.slots),
            None => merged.push(claim.clone()),
        }
    }
    Ok(merged)
}

/// One pool of a claim as it was read.
struct ReadPool {
    claim: PoolClaim,
    limit: Option<LimitRow>,
    /// Slots others hold under unexpired leases.
    claimed: i64,
}

impl Storage {
    // ---- pools --------------------------------------------------------------------------

    /// Sets a pool's slot limit and lease duration, creating the pool if needed.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty pool key, a negative limit or a zero lease; `Backend`
    /// for a failed write.
    pub async fn set_pool_limit(&self, pool_key: &str, limit: i64, lease: Duration) -> Result<()> {
        check_pool_limit(pool_key, limit)?;
        check_lease(&format!("pool '{pool_key}'"), lease)?;
        // The version moves too: a claim decided under the old limit must decide again.
        self.execute(
            "UPSERT type::record('pool_limit', $key) SET pool_key = $key, slot_limit = $limit, lease_ns = $lease, \
                 version = (version ?? 0) + 1 RETURN NONE",
            json!({"key": pool_key, "limit": limit, "lease": nanos(lease)}),
        )
        .await
    }

    /// Sets the limits a repository declares: a new pool gets [`DEFAULT_POOL_LEASE`], an
    /// existing one keeps its lease duration. One transaction for all of them.
    ///
    /// # Errors
    /// As [`Storage::set_pool_limit`].
    pub async fn declare_pool_limits(&self, limits: &[(String, i64)]) -> Result<()> {
        if limits.is_empty() {
            return Ok(());
        }
        for (pool_key, limit) in limits {
            check_pool_limit(pool_key, *limit)?;
        }
        let rows: Vec<Value> = limits.iter().map(|(key, limit)| json!({"key": key, "limit": limit})).collect();
        self.execute(
            "BEGIN TRANSACTION; \
             FOR $pool IN $pools { \
                 UPSERT type::record('pool_limit', $pool.key) SET pool_key = $pool.key, slot_limit = $pool.limit, \
                     lease_ns = lease_ns ?? $lease, version = (version ?? 0) + 1 RETURN NONE; \
             }; \
             COMMIT TRANSACTION;",
            json!({"pools": rows, "lease": nanos(DEFAULT_POOL_LEASE)}),
        )
        .await
    }

    /// Every configured pool, by ascending key.
    ///
    /// # Errors
    /// `Backend` for a failed read.
    pub async fn get_pool_limits(&self) -> Result<Vec<PoolLimit>> {
        let rows =
            self.rows("SELECT pool_key, slot_limit, lease_ns FROM pool_limit ORDER BY pool_key", json!({})).await?;
        Ok(decode::<LimitRow>("pool limit", rows)?.into_iter().map(LimitRow::limit).collect())
    }

    /// Every configured pool with its live counts, by ascending key. Reads only live rows
    /// (unexpired holders and waiting steps), never history.
    ///
    /// # Errors
    /// `Backend` for a failed read.
    pub async fn get_all_pool_infos(&self) -> Result<Vec<PoolInfo>> {
        let mut response = self
            .inner
            .client
            .query(
                "SELECT pool_key, slot_limit, lease_ns FROM pool_limit ORDER BY pool_key; \
                 SELECT pool_key, math::sum(slots) AS count FROM pool_slot WHERE lease_expires_at > $now \
                     GROUP BY pool_key; \
                 SELECT pool_key, count() AS count FROM pool_pending WHERE expires_at > $now GROUP BY pool_key;",
                json!({"now": now_ns()}),
            )
            .await?;
        let limits = decode::<LimitRow>("pool limit", response.take(0)?)?;
        let counts = |rows: Vec<Value>| -> Result<HashMap<String, i64>> {
            Ok(decode::<PoolCount>("pool count", rows)?.into_iter().map(|row| (row.pool_key, row.count)).collect())
        };
        let claimed = counts(response.take(1)?)?;
        let pending = counts(response.take(2)?)?;
        Ok(limits
            .into_iter()
            .map(|row| PoolInfo {
                claimed_count: claimed.get(&row.pool_key).copied().unwrap_or(0),
                pending_count: pending.get(&row.pool_key).copied().unwrap_or(0),
                limit: row.limit(),
            })
            .collect())
    }

    /// One pool's configuration and live counts.
    ///
    /// # Errors
    /// `InvalidArgument` for a pool without a limit; `Backend` for a failed read.
    pub async fn get_pool_info(&self, pool_key: &str) -> Result<PoolInfo> {
        let mut response = self
            .inner
            .client
            .query(
                "SELECT pool_key, slot_limit, lease_ns FROM type::record('pool_limit', $key); \
                 SELECT VALUE slots FROM pool_slot WHERE pool_key = $key AND lease_expires_at > $now; \
                 SELECT VALUE run_id FROM pool_pending WHERE pool_key = $key AND expires_at > $now;",
                json!({"key": pool_key, "now": now_ns()}),
            )
            .await?;
        let Some(limit) = decode::<LimitRow>("pool limit", response.take(0)?)?.into_iter().next() else {
            return Err(Error::InvalidArgument(format!(
                "unknown pool '{pool_key}': no limit is set for it; set one with set_pool_limit or \
                 CodeRepository(pool_limits=...)"
            )));
        };
        let claimed: Vec<i64> = response.take(1)?;
        let pending: Vec<Value> = response.take(2)?;
        Ok(PoolInfo { limit: limit.limit(), claimed_count: claimed.iter().sum(), pending_count: pending.len() as i64 })
    }

    /// The steps holding unexpired slots of a pool, oldest claim first (none for an unknown
    /// pool).
    ///
    /// # Errors
    /// `Backend` for a failed read.
    pub async fn get_pool_slot_holders(&self, pool_key: &str) -> Result<Vec<SlotHolder>> {
        let rows = self
            .rows(
                "SELECT run_id, step_key, slots, claimed_at, lease_expires_at FROM pool_slot \
                 WHERE pool_key = $key AND lease_expires_at > $now ORDER BY claimed_at",
                json!({"key": pool_key, "now": now_ns()}),
            )
            .await?;
        Ok(decode::<HolderRow>("pool slot", rows)?
            .into_iter()
            .map(|row| SlotHolder {
                run_id: row.run_id,
                step_key: row.step_key,
                slots_consumed: row.slots,
                claimed_at: row.claimed_at,
                lease_expires_at: row.lease_expires_at,
            })
            .collect())
    }

    /// Claims slots in every pool of `claims` for one step, all or none: when some pool has
    /// no room, nothing is claimed, the step is recorded as waiting for its pools, and the
    /// result says which pools block and the step's position among the waiting ones (by
    /// `priority` descending, then arrival). A pool without a limit never blocks; its slots
    /// are recorded all the same. A pool listed twice counts once, with its largest count.
    ///
    /// The slots are leased for `lease`, or, when `None`, for the shortest lease of the
    /// claimed pools ([`DEFAULT_POOL_LEASE`] for pools without a limit). A step claiming
    /// again replaces its own slots.
    ///
    /// # Errors
    /// `InvalidArgument` for a slot count below 1 or a zero lease; `Contended` when
    /// concurrent claims of the same pools kept winning; `Backend` for a failed query.
    pub async fn claim_concurrency_slots(
        &self,
        claims: &[PoolClaim],
        run_id: &str,
        step_key: &str,
        priority: i64,
        lease: Option<Duration>,
    ) -> Result<ConcurrencyClaim> {
        let claims = merged(claims)?;
        if let Some(lease) = lease {
            check_lease(&format!("the slots of step '{step_key}'"), lease)?;
        }
        for _ in 0..CLAIM_ATTEMPTS {
            let now = now_ns();
            let pools = self.read_claim(&claims, run_id, step_key, now).await?;
            let lease = lease.unwrap_or_else(|| {
                pools
                    .iter()
                    .filter_map(|p| p.limit.as_ref())
                    .map(|l| nanos_duration(l.lease_ns))
                    .min()
                    .unwrap_or(DEFAULT_POOL_LEASE)
            });
            let blocking: Vec<PoolBlockDetail> = pools
                .iter()
                .filter_map(|pool| {
                    let limit = pool.limit.as_ref()?.slot_limit;
                    (pool.claimed + pool.claim.slots > limit).then(|| PoolBlockDetail {
                        pool_key: pool.claim.pool.clone(),
                        claimed: pool.claimed,
                        limit,
                    })
                })
                .collect();
            if !blocking.is_empty() {
                let position = self.wait_for_pools(&claims, &blocking, run_id, step_key, priority, lease, now).await?;
                return Ok(ConcurrencyClaim::Pending { position, reason: BlockReason { pools: blocking } });
            }
            let checks: Vec<Value> = pools
                .iter()
                .map(|pool| json!({"key": pool.claim.pool, "version": pool.limit.as_ref().map_or(ABSENT, |l| l.version)}))
                .collect();
            let rows: Vec<Value> =
                claims.iter().map(|claim| json!({"key": claim.pool, "slots": claim.slots})).collect();
            let committed = self
                .execute(
                    "BEGIN TRANSACTION; \
                     FOR $pool IN $checks { \
                         LET $limit = type::record('pool_limit', $pool.key); \
                         IF ((SELECT VALUE version FROM $limit)[0] ?? $absent) != $pool.version { THROW $moved; }; \
                         UPDATE $limit SET version = version + 1 RETURN NONE; \
                     }; \
                     FOR $claim IN $claims { \
                         UPSERT type::record('pool_slot', [$claim.key, $run, $step]) CONTENT { \
                             pool_key: $claim.key, run_id: $run, step_key: $step, slots: $claim.slots, \
                             claimed_at: $now, lease_expires_at: $expires } RETURN NONE; \
                     }; \
                     DELETE pool_pending WHERE run_id = $run AND step_key = $step RETURN NONE; \
                     COMMIT TRANSACTION;",
                    json!({"checks": checks, "claims": rows, "run": run_id, "step": step_key, "now": now,
                           "expires": now + nanos(lease), "absent": ABSENT, "moved": POOLS_MOVED}),
                )
                .await;
            match committed {
                Ok(()) => return Ok(ConcurrencyClaim::Claimed { lease }),
                // Another claim (or a limit change) committed first: decide again.
                Err(err) if err.is_thrown(POOLS_MOVED) => {}
                Err(err) => return Err(err),
            }
        }
        Err(Error::Contended { what: format!("claim pool slots for step '{step_key}' of run '{run_id}'") })
    }

    /// Each pool's limit record and the slots others hold in it under unexpired leases.
    async fn read_claim(&self, claims: &[PoolClaim], run_id: &str, step_key: &str, now: i64) -> Result<Vec<ReadPool>> {
        let mut sql = String::new();
        let mut vars = Map::new();
        for (i, claim) in claims.iter().enumerate() {
            sql.push_str(&format!(
                "SELECT pool_key, slot_limit, lease_ns, version FROM type::record('pool_limit', $k{i}); \
                 SELECT VALUE slots FROM pool_slot WHERE pool_key = $k{i} AND lease_expires_at > $now \
                     AND (run_id != $run OR step_key != $step); "
            ));
            vars.insert(format!("k{i}"), json!(claim.pool));
        }
        vars.insert("now".into(), json!(now));
        vars.insert("run".into(), json!(run_id));
        vars.insert("step".into(), json!(step_key));
        let mut response = self.inner.client.query(&sql, Value::Object(vars)).await?;
        let mut pools = Vec::with_capacity(claims.len());
        for (i, claim) in claims.iter().enumerate() {
            let limit = decode::<LimitRow>("pool limit", response.take(2 * i)?)?.into_iter().next();
            let held: Vec<i64> = response.take(2 * i + 1)?;
            pools.push(ReadPool { claim: claim.clone(), limit, claimed: held.iter().sum() });
        }
        Ok(pools)
    }

    /// Records (or refreshes) that a step waits for its pools, until `now + lease` unless it
    /// polls again, and returns its 1-based position among the steps waiting for the
    /// blocking pools (the furthest back of its positions in each).
    #[allow(clippy::too_many_arguments)] // one step's identity, its pools, and the poll's clock
    async fn wait_for_pools(
        &self,
        claims: &[PoolClaim],
        blocking: &[PoolBlockDetail],
        run_id: &str,
        step_key: &str,
        priority: i64,
        lease: Duration,
        now: i64,
    ) -> Result<i64> {
        let mut sql = String::from(
            "FOR $key IN $keys { \
                 UPSERT type::record('pool_pending', [$key, $run, $step]) SET pool_key = $key, run_id = $run, \
                     step_key = $step, priority = $priority, since = since ?? $now, expires_at = $expires \
                     RETURN NONE; \
             }; \
             LET $since = (SELECT VALUE since FROM type::record('pool_pending', [$keys[0], $run, $step]))[0]; ",
        );
        let mut vars = Map::new();
        for (i, pool) in blocking.iter().enumerate() {
            sql.push_str(&format!(
                "SELECT VALUE step_key FROM pool_pending WHERE pool_key = $b{i} AND expires_at > $now \
                     AND (priority > $priority OR (priority = $priority AND since < $since)); "
            ));
            vars.insert(format!("b{i}"), json!(pool.pool_key));
        }
        let keys: Vec<&str> = claims.iter().map(|claim| claim.pool.as_str()).collect();
        vars.insert("keys".into(), json!(keys));
        vars.insert("run".into(), json!(run_id));
        vars.insert("step".into(), json!(step_key));
        vars.insert("priority".into(), json!(priority));
        vars.insert("now".into(), json!(now));
        vars.insert("expires".into(), json!(now + nanos(lease)));
        let mut response = self.inner.client.query(&sql, Value::Object(vars)).await?;
        let mut ahead = 0;
        for i in 0..blocking.len() {
            let waiting: Vec<Value> = response.take(2 + i)?;
            ahead = ahead.max(waiting.len() as i64);
        }
        Ok(ahead + 1)
    }

    /// Releases one step's slots and withdraws its waiting; a no-op when it holds none.
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn free_concurrency_slots(&self, run_id: &str, step_key: &str) -> Result<()> {
        self.execute(
            "DELETE pool_slot WHERE run_id = $run AND step_key = $step RETURN NONE; \
             DELETE pool_pending WHERE run_id = $run AND step_key = $step RETURN NONE;",
            json!({"run": run_id, "step": step_key}),
        )
        .await
    }

    /// Releases every slot of a run and withdraws all its waiting steps (the defensive
    /// cleanup at the end of a run); a no-op when it holds none.
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn free_concurrency_slots_for_run(&self, run_id: &str) -> Result<()> {
        self.execute(
            "DELETE pool_slot WHERE run_id = $run RETURN NONE; DELETE pool_pending WHERE run_id = $run RETURN NONE;",
            json!({"run": run_id}),
        )
        .await
    }

    /// Extends the lease of one step's unexpired slots to now + `lease`; returns how many
    /// slot rows (one per pool) were renewed. An expired lease is not revived: its slots may
    /// have been claimed by another step since.
    ///
    /// # Errors
    /// `InvalidArgument` for a zero lease; `Backend` for a failed write.
    pub async fn renew_slot_lease(&self, run_id: &str, step_key: &str, lease: Duration) -> Result<u64> {
        check_lease(&format!("the slots of step '{step_key}'"), lease)?;
        let now = now_ns();
        let renewed = self
            .rows(
                "UPDATE pool_slot SET lease_expires_at = $expires \
                 WHERE run_id = $run AND step_key = $step AND lease_expires_at > $now RETURN VALUE true",
                json!({"run": run_id, "step": step_key, "now": now, "expires": now + nanos(lease)}),
            )
            .await?;
        Ok(renewed.len() as u64)
    }

    /// Deletes the slot rows whose lease has expired (and the waiting records of steps that
    /// stopped polling); returns the number of slots freed.
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn free_expired_leases(&self) -> Result<u64> {
        let freed = self
            .rows(
                "DELETE pool_slot WHERE lease_expires_at <= $now RETURN BEFORE; \
                 DELETE pool_pending WHERE expires_at <= $now RETURN NONE;",
                json!({"now": now_ns()}),
            )
            .await?;
        Ok(freed.iter().filter_map(|row| row["slots"].as_i64()).map(|slots| slots.max(0) as u64).sum())
    }
}

fn check_pool_limit(pool_key: &str, limit: i64) -> Result<()> {
    if pool_key.is_empty() {
        return Err(Error::InvalidArgument("a pool key must not be empty".into()));
    }
    if limit < 0 {
        return Err(Error::InvalidArgument(format!(
            "the limit of pool '{pool_key}' is {limit}; a pool's slot limit must be 0 or more"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_listed_twice_is_claimed_once_with_its_largest_count() {
        let claims = [
            PoolClaim { pool: "db".into(), slots: 1 },
            PoolClaim { pool: "api".into(), slots: 1 },
            PoolClaim { pool: "db".into(), slots: 3 },
        ];
        let merged = merged(&claims).unwrap();
        assert_eq!(merged.iter().map(|c| (c.pool.as_str(), c.slots)).collect::<Vec<_>>(), [("db", 3), ("api", 1)]);
        let zero = super::merged(&[PoolClaim { pool: "db".into(), slots: 0 }]).unwrap_err().to_string();
        assert!(zero.contains("'db'") && zero.contains("at least 1"), "{zero}");
    }

    /// The reads that run on every claim and every listing are served by the pool indexes.
    #[tokio::test]
    async fn pool_reads_use_their_indexes() {
        let storage = Storage::memory().await.unwrap();
        let reads = [
            "SELECT VALUE slots FROM pool_slot WHERE pool_key = $key AND lease_expires_at > $now",
            "SELECT VALUE run_id FROM pool_pending WHERE pool_key = $key AND expires_at > $now",
        ];
        for sql in reads {
            let plan = storage.rows(&format!("{sql} EXPLAIN"), json!({"key": "db", "now": 1})).await.unwrap();
            let plan = serde_json::to_string(&plan).unwrap();
            assert!(plan.contains("Index") && !plan.contains("TableScan"), "{sql}\n{plan}");
        }
        storage.close().await.unwrap();
    }
}
