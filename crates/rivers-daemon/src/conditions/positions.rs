//! Partition geometry in grid positions: an asset's current positions, its latest time window,
//! the key of a position and the positions of a key, and the pre-image of a partition mapping.
//! Everything the common shapes need (one time or static dimension, identity and time-window
//! mappings, whole upstreams) is computed range by range; only exotic mappings fall back to
//! mapping position by position.

use chrono::NaiveDateTime;
use rivers_core::partitions::{
    MappedInput, PartitionEnv, PartitionKey, PartitionKeyRange, PartitionMapping, Partitions, RangeSet, map_keys,
};

/// Every current position of `definition` (`{0}` when unpartitioned).
pub(crate) fn candidates(definition: Option<&Partitions>, env: &PartitionEnv) -> RangeSet {
    let Some(definition) = definition else { return RangeSet::span(0, 0) };
    match definition {
        Partitions::Multi(multi) => {
            let dims: Vec<&Partitions> = multi.dimensions.iter().map(|(_, dim)| dim).collect();
            let Some((last, leading)) = dims.split_last() else { return RangeSet::new() };
            let counts: Vec<Vec<u64>> = leading.iter().map(|dim| (0..dim.dim_count(env)).collect()).collect();
            let last_count = last.dim_count(env);
            let mut all = RangeSet::new();
            if last_count == 0 {
                return all;
            }
            for prefix in rivers_core::partitions::cartesian(&counts) {
                let at = |i: u64| {
                    let mut coords = prefix.clone();
                    coords.push(i);
                    definition.position(&coords, env)
                };
                let contiguous = !matches!(last, Partitions::Dynamic(_));
                let block = if contiguous {
                    match (at(0), at(last_count - 1)) {
                        (Some(first), Some(end)) => RangeSet::span(first, end),
                        _ => RangeSet::new(),
                    }
                } else {
                    RangeSet::from_positions((0..last_count).filter_map(at))
                };
                all = all.union(&block);
            }
            all
        }
        Partitions::Dynamic(_) => {
            RangeSet::from_positions((0..definition.dim_count(env)).filter_map(|i| definition.dim_position(i, env)))
        }
        one => match one.dim_count(env) {
            0 => RangeSet::new(),
            n => RangeSet::span(0, u128::from(n) - 1),
        },
    }
}

/// The start of the latest window of a one-dimensional time-window definition.
pub(crate) fn latest_window_start(definition: Option<&Partitions>, env: &PartitionEnv) -> Option<NaiveDateTime> {
    let Some(Partitions::TimeWindow(windows)) = definition else { return None };
    let count = windows.count(env.now);
    windows.window_start(count.checked_sub(1)?)
}

/// Positions of a one-dimensional time-window definition whose window starts at or after
/// `start` (every position for other definitions).
pub(crate) fn starting_from(definition: Option<&Partitions>, start: NaiveDateTime, env: &PartitionEnv) -> RangeSet {
    let all = candidates(definition, env);
    let Some(Partitions::TimeWindow(windows)) = definition else { return all };
    let first = u128::from(windows.count_before(start));
    match all.last() {
        Some(last) if first <= last => RangeSet::span(first, last),
        _ => RangeSet::new(),
    }
}

/// The key of the partition at `position`.
pub(crate) fn key_at(definition: &Partitions, position: u128, env: &PartitionEnv) -> Option<PartitionKey> {
    definition.recorded_key_at(position, env)
}

/// The positions `key` covers (empty when it does not fit the definition).
pub(crate) fn positions_of_key(definition: &Partitions, key: &PartitionKey, env: &PartitionEnv) -> RangeSet {
    let coords = definition.individuals(key, env).unwrap_or_default();
    RangeSet::from_positions(coords.iter().filter_map(|coords| definition.position(coords, env)))
}

/// The positions a key range covers.
pub(crate) fn positions_of_range(definition: &Partitions, range: &PartitionKeyRange, env: &PartitionEnv) -> RangeSet {
    match (definition, range.per_dimension(definition, env)) {
        // One non-dynamic dimension: the range is contiguous.
        (Partitions::Static(_) | Partitions::TimeWindow(_), Ok(per_dim)) => match per_dim.first() {
            Some(numbers) if !numbers.is_empty() => {
                let first = numbers.iter().min().copied().unwrap_or_default();
                let last = numbers.iter().max().copied().unwrap_or_default();
                RangeSet::span(u128::from(first), u128::from(last))
            }
            _ => RangeSet::new(),
        },
        (_, Ok(_)) => RangeSet::from_positions(
            range.resolve(definition, env).unwrap_or_default().iter().filter_map(|c| definition.position(c, env)),
        ),
        (_, Err(_)) => RangeSet::new(),
    }
}

/// The positions of the downstream side of an edge that read at least one of `upstream`'s
/// positions through `mapping` (`downstream_all` are the downstream's current positions).
pub(crate) fn pre_image(
    mapping: Option<&PartitionMapping>,
    upstream_definition: Option<&Partitions>,
    downstream_definition: Option<&Partitions>,
    upstream: &RangeSet,
    downstream_all: &RangeSet,
    env: &PartitionEnv,
) -> RangeSet {
    if upstream.is_empty() {
        return RangeSet::new();
    }
    match (mapping, upstream_definition, downstream_definition) {
        // An unpartitioned side: every downstream position reads the upstream (or the whole
        // upstream is read by the single downstream position).
        (_, None, _) | (_, _, None) | (Some(PartitionMapping::AllPartitions), ..) => downstream_all.clone(),
        (Some(PartitionMapping::Identity), Some(up), Some(down)) if up == down => upstream.intersection(downstream_all),
        // Downstream window p reads upstream window p + offset on the same grid.
        (Some(PartitionMapping::TimeWindow { offset }), Some(up), Some(down)) if up == down => {
            shift(upstream, -i128::from(*offset)).intersection(downstream_all)
        }
        (Some(mapping), Some(up), Some(down)) => {
            // Other mappings (and identity across different definitions): map each downstream
            // position and keep those that read one of the upstream positions.
            RangeSet::from_positions(downstream_all.positions().filter(|&position| {
                let Some(coords) = down.coords_at(position, env) else { return false };
                match map_keys(mapping, Some(up), Some(down), &[coords], env) {
                    Ok(MappedInput::Partitions(read)) => {
                        read.iter().filter_map(|c| up.position(c, env)).any(|p| upstream.contains(p))
                    }
                    Ok(MappedInput::Whole) => true,
                    _ => false,
                }
            }))
        }
        (None, Some(_), Some(_)) => upstream.intersection(downstream_all),
    }
}

/// `positions` moved by `by` (positions that would fall below zero are dropped).
fn shift(positions: &RangeSet, by: i128) -> RangeSet {
    positions
        .ranges()
        .iter()
        .filter_map(|&(start, end)| {
            let (start, end) = (start as i128 + by, end as i128 + by);
            (end >= 0).then(|| RangeSet::span(start.max(0) as u128, end as u128))
        })
        .fold(RangeSet::new(), |all, range| all.union(&range))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn minutely() -> Partitions {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
        Partitions::time_window(start, Some("* * * * *".into()), None, None, None).unwrap()
    }

    fn env_at(minutes: i64) -> PartitionEnv {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
        PartitionEnv::at(start + chrono::TimeDelta::minutes(minutes))
    }

    #[test]
    fn a_million_minutes_are_one_range_and_the_latest_window_is_the_last() {
        let definition = minutely();
        let env = env_at(999_999);
        let all = candidates(Some(&definition), &env);
        assert_eq!(all.ranges(), [(0, 999_999)]);
        let latest = latest_window_start(Some(&definition), &env).unwrap();
        assert_eq!(starting_from(Some(&definition), latest, &env).ranges(), [(999_999, 999_999)]);
        assert_eq!(candidates(None, &env).ranges(), [(0, 0)]);
    }

    #[test]
    fn identity_and_time_window_mappings_are_mapped_range_by_range() {
        let definition = minutely();
        let env = env_at(99);
        let all = candidates(Some(&definition), &env);
        let up = RangeSet::from_positions([5, 6, 50]);
        let identity =
            pre_image(Some(&PartitionMapping::Identity), Some(&definition), Some(&definition), &up, &all, &env);
        assert_eq!(identity, up);
        // Downstream p reads upstream p - 1: upstream 5 is read by downstream 6.
        let previous = PartitionMapping::TimeWindow { offset: -1 };
        let shifted = pre_image(Some(&previous), Some(&definition), Some(&definition), &up, &all, &env);
        assert_eq!(shifted, RangeSet::from_positions([6, 7, 51]));
        // An unpartitioned downstream reads any upstream change.
        let whole = pre_image(Some(&PartitionMapping::AllPartitions), Some(&definition), None, &up, &all, &env);
        assert_eq!(whole, all);
    }
}
