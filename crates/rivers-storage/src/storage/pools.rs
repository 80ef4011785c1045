//! Concurrency pools: slot limits, leased slot claims, and the steps waiting for slots.
//!
//! A claim reads each pool's limit and unexpired holders, decides, and writes in one
//! transaction (one round trip, see [`claim_script`]); a granted claim bumps every claimed pool's
//! version so that concurrent claims of one pool conflict. Releases, expiries and renewals only
//! ever free capacity or keep it, so they need no version: a claim decided before one of them
//! is at worst too cautious. The record of a pool without a limit holds only that version
//! (`slot_limit` is absent), and the listings skip it.
//!
//! Leases: a holder row counts only while `lease_expires_at` lies ahead, whatever garbage
//! collection did, so a killed process's slots are free again once its lease ends. A renewal
//! extends only unexpired rows: reviving an expired one could overshoot a pool whose freed
//! slots were claimed meanwhile.

use std::collections::HashMap;
use std::time::Duration;

use rivers_core::PoolClaim;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Storage, decode};
use crate::clock::now_ns;
use crate::error::{Error, Result};
use crate::records::{BlockReason, ConcurrencyClaim, PoolBlockDetail, PoolInfo, PoolLimit, SlotHolder};

/// The lease of a pool nobody gave one: what `set_pool_limit` and the repository's
/// `pool_limits` use by default (long enough that a busy process renews it in time, short
/// enough that a killed one frees its slots within minutes).
pub const DEFAULT_POOL_LEASE: Duration = Duration::from_secs(300);

/// A claim of `pools` pools, decided and committed in one transaction (one round trip). Pool
/// `i` is `$k{i}` wanting `$s{i}` slots; `$lease` is the caller's lease in ns, or `NONE` for
/// the shortest of the pools' (`$default_lease` when none has a limit).
///
/// Every granted claim bumps the version of each of its pools' records (creating the record of
/// a pool without a limit): two claims that counted the same pool's holders then write the same
/// record, so one of them conflicts and is retried by the client, deciding again from what the
/// other committed. Counting the holders alone would not do: two transactions that each insert
/// a different holder row touch no common record, and both commit (write skew). A step's own
/// earlier rows are excluded from the count, as its claim replaces them; its waiting rows are
/// deleted by record id, so a step that never waited costs no scan.
///
/// Each pool's reads and writes are statements of their own, with the pool key a plain
/// parameter: so its counts are answered from the `_pool` indexes (within a closure SurrealDB
/// evaluates them row by row), and its record is fetched once. The last statement before
/// `COMMIT` returns the outcome: `{lease}` when claimed, `{lease, blocking, position}` when
/// pending.
fn claim_script(pools: usize) -> String {
    let each = |statement: &dyn Fn(usize) -> String, separator: &str| {
        (0..pools).map(statement).collect::<Vec<_>>().join(separator)
    };
    let read = each(
        &|i| {
            format!(
                "LET $limit{i} = type::record('pool_limit', $k{i}).{{slot_limit, lease_ns, version}}; \
                 LET $claimed{i} = math::sum(SELECT VALUE slots FROM pool_slot WHERE pool_key = $k{i} \
                     AND lease_expires_at > $now AND id != type::record('pool_slot', [$k{i}, $run, $step])); "
            )
        },
        "",
    );
    let blocking = each(
        &|i| {
            format!(
                "IF $limit{i}.slot_limit != NONE AND $claimed{i} + $s{i} > $limit{i}.slot_limit {{ \
                     {{ key: $k{i}, claimed: $claimed{i}, limit: $limit{i}.slot_limit }} }}"
            )
        },
        ", ",
    );
    let leases = each(&|i| format!("$limit{i}.lease_ns"), ", ");
    let ahead = each(
        &|i| {
            format!(
                "IF $blocking.key CONTAINS $k{i} {{ count(SELECT VALUE id FROM pool_pending WHERE pool_key = $k{i} \
                     AND expires_at > $now AND (priority > $priority OR (priority = $priority AND since < $since))) }} \
                 ELSE {{ 0 }}"
            )
        },
        ", ",
    );
    // A pool's record exists once it has a limit or was claimed; `UPDATE` is the cheaper write.
    let claim = each(
        &|i| {
            format!(
                "IF $limit{i}.version != NONE {{ \
                     UPDATE type::record('pool_limit', $k{i}) SET version += 1 RETURN NONE; \
                 }} ELSE {{ \
                     UPSERT type::record('pool_limit', $k{i}) SET version = 1 RETURN NONE; \
                 }}; \
                 UPSERT type::record('pool_slot', [$k{i}, $run, $step]) CONTENT {{ pool_key: $k{i}, run_id: $run, \
                     step_key: $step, slots: $s{i}, claimed_at: $now, lease_expires_at: $now + $lease }} RETURN NONE; \
                 DELETE type::record('pool_pending', [$k{i}, $run, $step]) RETURN NONE; "
            )
        },
        "",
    );
    let wait = each(
        &|i| {
            format!(
                "UPSERT type::record('pool_pending', [$k{i}, $run, $step]) SET pool_key = $k{i}, run_id = $run, \
                     step_key = $step, priority = $priority, since = since ?? $now, expires_at = $now + $lease \
                     RETURN NONE; "
            )
        },
        "",
    );
    format!(
        "BEGIN TRANSACTION; \
         {read}\
         LET $blocking = array::complement([{blocking}], [NONE]); \
         LET $lease = $lease ?? array::min(array::complement([{leases}], [NONE])) ?? $default_lease; \
         IF array::len($blocking) > 0 {{ \
             {wait}\
             LET $since = type::record('pool_pending', [$k0, $run, $step]).since; \
             {{ lease: $lease, blocking: $blocking, position: math::max([{ahead}]) + 1 }} \
         }} ELSE {{ \
             {claim}\
             {{ lease: $lease }} \
         }}; \
         COMMIT TRANSACTION;"
    )
}

/// The index of [`claim_script`]'s outcome among the results of a claim of `pools` pools
/// (`BEGIN` has one too, and each pool two reads).
fn claim_outcome(pools: usize) -> usize {
    2 * pools + 3
}

/// What [`claim_script`] returns.
#[derive(Deserialize)]
struct ClaimOutcome {
    /// The lease of the slots (claimed) or of the waiting records (pending), in ns.
    lease: i64,
    /// The pools without room (pending only).
    #[serde(default)]
    blocking: Vec<BlockingPool>,
    /// The step's 1-based position among the waiting ones (pending only).
    position: Option<i64>,
}

#[derive(Deserialize)]
struct BlockingPool {
    key: String,
    claimed: i64,
    limit: i64,
}

#[derive(Deserialize)]
struct LimitRow {
    pool_key: String,
    slot_limit: i64,
    lease_ns: i64,
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
        let rows = self
            .rows(
                "SELECT pool_key, slot_limit, lease_ns FROM pool_limit WHERE slot_limit != NONE ORDER BY pool_key",
                json!({}),
            )
            .await?;
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
                "SELECT pool_key, slot_limit, lease_ns FROM pool_limit WHERE slot_limit != NONE ORDER BY pool_key; \
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
                "SELECT pool_key, slot_limit, lease_ns FROM type::record('pool_limit', $key) WHERE slot_limit != NONE; \
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
    /// `InvalidArgument` for a slot count below 1 or a zero lease; `Conflict` when concurrent
    /// claims of the same pools kept winning through every retry; `Backend` for a failed query.
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
        let mut vars = json!({"run": run_id, "step": step_key, "priority": priority, "now": now_ns(),
                              "lease": lease.map(nanos), "default_lease": nanos(DEFAULT_POOL_LEASE)});
        for (i, claim) in claims.iter().enumerate() {
            vars[format!("k{i}")] = json!(claim.pool);
            vars[format!("s{i}")] = json!(claim.slots);
        }
        let mut response = self.inner.client.query(&claim_script(claims.len()), vars).await?;
        let outcome: Vec<Value> = response.take(claim_outcome(claims.len()))?;
        let outcome = serde_json::from_value::<ClaimOutcome>(outcome.into_iter().next().unwrap_or_default())
            .map_err(|source| Error::Decode { what: "pool claim", source })?;
        let lease = nanos_duration(outcome.lease);
        Ok(match outcome.position {
            None => ConcurrencyClaim::Claimed { lease },
            Some(position) => ConcurrencyClaim::Pending {
                position,
                reason: BlockReason {
                    pools: outcome
                        .blocking
                        .into_iter()
                        .map(|pool| PoolBlockDetail { pool_key: pool.key, claimed: pool.claimed, limit: pool.limit })
                        .collect(),
                },
            },
        })
    }

    /// Releases one step's slots and withdraws its waiting; a no-op when it holds none.
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn free_concurrency_slots(&self, run_id: &str, step_key: &str) -> Result<()> {
        self.execute(
            // One statement, one commit; both tables answer from their `[run_id, step_key]` index.
            "DELETE pool_slot, pool_pending WHERE run_id = $run AND step_key = $step RETURN NONE",
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
        self.execute("DELETE pool_slot, pool_pending WHERE run_id = $run RETURN NONE", json!({"run": run_id})).await
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

    /// The reads that run on every claim, release and listing are served by the pool indexes
    /// (a release's `DELETE ... WHERE` selects its rows as the `SELECT`s with its conditions do).
    #[tokio::test]
    async fn pool_reads_use_their_indexes() {
        let storage = Storage::memory().await.unwrap();
        let reads = [
            "SELECT VALUE slots FROM pool_slot WHERE pool_key = $key AND lease_expires_at > $now \
                 AND id != type::record('pool_slot', [$key, $run, $step])",
            "SELECT VALUE run_id FROM pool_pending WHERE pool_key = $key AND expires_at > $now",
            "SELECT VALUE id FROM pool_slot WHERE run_id = $run AND step_key = $step",
            "SELECT VALUE id FROM pool_pending WHERE run_id = $run AND step_key = $step",
            "SELECT VALUE id FROM pool_slot WHERE run_id = $run",
            "SELECT VALUE id FROM pool_pending WHERE run_id = $run",
        ];
        for sql in reads {
            let vars = json!({"key": "db", "now": 1, "run": "r", "step": "s"});
            let plan = storage.rows(&format!("{sql} EXPLAIN"), vars).await.unwrap();
            let plan = serde_json::to_string(&plan).unwrap();
            assert!(plan.contains("Index") && !plan.contains("TableScan"), "{sql}\n{plan}");
        }
        storage.close().await.unwrap();
    }
}
