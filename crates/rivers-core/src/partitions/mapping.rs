//! Partition mappings: which upstream partitions a downstream partition reads, the check of a
//! mapping against the two definitions of its edge (at resolve), and the mapping itself (per
//! step, at run time).

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::definition::{Coords, PartitionEnv, Partitions, PartitionsKind, TimeWindowPartitions, cartesian};
use super::key::PartitionKey;
use super::key_range::PartitionKeyRange;

/// A key or a range (the selectors of `for_keys`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySelector {
    /// One key.
    Key(PartitionKey),
    /// A range.
    Range(PartitionKeyRange),
}

/// A mapping on one dependency edge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PartitionMapping {
    /// The same key upstream.
    Identity,
    /// Every current upstream key.
    AllPartitions,
    /// Downstream key → upstream key, in display form.
    Static {
        /// The pairs.
        mapping: BTreeMap<String, String>,
    },
    /// The window `offset` windows away (negative: earlier).
    TimeWindow {
        /// Windows to shift by.
        offset: i64,
    },
    /// Per downstream dimension: the upstream dimension and the mapping into it.
    Multi {
        /// Downstream dimension → (upstream dimension, mapping).
        dimension_mappings: BTreeMap<String, (String, PartitionMapping)>,
    },
    /// One dimension of a multi side to or from a one-dimensional side.
    MultiToSingle {
        /// The multi side's dimension.
        dimension_name: String,
        /// The mapping between that dimension and the other side.
        partition_mapping: Box<PartitionMapping>,
    },
    /// Exactly these upstream keys, in display form.
    SpecificPartitions {
        /// The keys.
        partition_keys: Vec<String>,
    },
    /// The unpartitioned upstream, only for downstream keys matching a selector.
    ForKeys {
        /// The selectors.
        selectors: Vec<KeySelector>,
    },
    /// Downstream key K reads upstream K when upstream has it.
    Subset,
}

/// What a step reads through one edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MappedInput {
    /// These upstream partitions, in upstream enumeration order without duplicates.
    Partitions(Vec<Coords>),
    /// The upstream is unpartitioned: load it whole.
    Whole,
    /// Nothing: the parameter receives `None` and the IO handler is not called.
    Nothing,
}

impl PartitionMapping {
    /// The name used in messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Identity => "identity()",
            Self::AllPartitions => "all_partitions()",
            Self::Static { .. } => "static_()",
            Self::TimeWindow { .. } => "time_window()",
            Self::Multi { .. } => "multi()",
            Self::MultiToSingle { .. } => "multi_to_single()",
            Self::SpecificPartitions { .. } => "specific_partitions()",
            Self::ForKeys { .. } => "for_keys()",
            Self::Subset => "subset()",
        }
    }
}

/// The mapping an edge uses: the declared one, else identity between two partitioned assets or
/// all partitions into an unpartitioned downstream. `None` when neither side is partitioned or
/// only the downstream is (the whole upstream is read).
pub fn effective_mapping<'a>(
    declared: Option<&'a PartitionMapping>,
    upstream: Option<&Partitions>,
    downstream: Option<&Partitions>,
) -> Option<&'a PartitionMapping> {
    const IDENTITY: &PartitionMapping = &PartitionMapping::Identity;
    const ALL: &PartitionMapping = &PartitionMapping::AllPartitions;
    declared.or(match (upstream, downstream) {
        (Some(_), Some(_)) => Some(IDENTITY),
        (Some(_), None) => Some(ALL),
        _ => None,
    })
}

/// Checks `mapping` on an edge from `upstream` to `downstream` (either may be unpartitioned).
pub fn check_edge(
    mapping: &PartitionMapping,
    upstream: Option<&Partitions>,
    downstream: Option<&Partitions>,
    env: &PartitionEnv,
) -> Result<(), String> {
    use PartitionMapping as M;
    match (mapping, upstream, downstream) {
        (M::ForKeys { selectors }, None, Some(down)) => selectors.iter().try_for_each(|s| match s {
            KeySelector::Key(key) => down
                .individuals(key, env)
                .map(drop)
                .map_err(|why| format!("for_keys() selector '{key}' does not fit the downstream definition: {why}")),
            KeySelector::Range(range) => {
                range.per_dimension(down, env).map(drop).map_err(|why| format!("for_keys() selector: {why}"))
            }
        }),
        (M::ForKeys { .. }, _, _) => {
            Err("for_keys() needs an unpartitioned upstream and a partitioned downstream".into())
        }
        (M::AllPartitions, Some(_), _) => Ok(()),
        (M::SpecificPartitions { partition_keys }, Some(up), _) => partition_keys.iter().try_for_each(|text| {
            let key = parse_display(up, text)?;
            if up.validate(&key, env) {
                Ok(())
            } else {
                Err(format!("specific_partitions() key '{text}' is not a key of the upstream definition"))
            }
        }),
        (_, None, _) => Err(format!("{} needs a partitioned upstream", mapping.name())),
        (_, Some(_), None) => Err(format!("{} needs a partitioned downstream", mapping.name())),
        (mapping, Some(up), Some(down)) => check_partitioned(mapping, up, down, env),
    }
}

fn check_partitioned(
    mapping: &PartitionMapping,
    up: &Partitions,
    down: &Partitions,
    env: &PartitionEnv,
) -> Result<(), String> {
    use PartitionMapping as M;
    match mapping {
        M::Identity => check_identity(up, down),
        M::Subset => {
            if up.kind() != down.kind() {
                return Err(format!(
                    "subset() needs two definitions of one kind, not {:?} and {:?}",
                    up.kind(),
                    down.kind()
                ));
            }
            if let (Partitions::Static(u), Partitions::Static(d)) = (up, down)
                && let Some(extra) = u.keys().iter().find(|k| d.index_of(k).is_none())
            {
                return Err(format!("subset(): upstream key '{extra}' is not a downstream key"));
            }
            Ok(())
        }
        M::Static { mapping } => {
            for (from, to) in mapping {
                if !matches!(down, Partitions::Dynamic(_)) && !down.validate(&parse_display(down, from)?, env) {
                    return Err(format!("static_() maps '{from}', which is not a downstream key"));
                }
                if !matches!(up, Partitions::Dynamic(_)) && !up.validate(&parse_display(up, to)?, env) {
                    return Err(format!("static_() maps '{from}' to '{to}', which is not an upstream key"));
                }
            }
            Ok(())
        }
        M::TimeWindow { .. } => match (up, down) {
            (Partitions::TimeWindow(u), Partitions::TimeWindow(d)) => {
                if u.fmt != d.fmt {
                    return Err(format!(
                        "time_window() needs one key format on both sides, not {:?} and {:?}",
                        u.fmt, d.fmt
                    ));
                }
                if !u.grid_contains(d) {
                    return Err("time_window() needs the upstream grid to contain every downstream window start \
                                (same cron, or an aligned interval that divides the downstream one)"
                        .into());
                }
                Ok(())
            }
            _ => Err(format!(
                "time_window() needs two time-window definitions, not {:?} and {:?}",
                up.kind(),
                down.kind()
            )),
        },
        M::Multi { dimension_mappings } => {
            let (Partitions::Multi(_), Partitions::Multi(_)) = (up, down) else {
                return Err("multi() needs two multi definitions".into());
            };
            for (down_dim, dim_def) in down.dimensions() {
                let (up_dim, sub) = match dimension_mappings.get(down_dim) {
                    Some((target, sub)) => (target.as_str(), sub),
                    None => (down_dim, &M::Identity),
                };
                let up_def = up.dimension(up_dim).ok_or_else(|| {
                    format!("multi(): downstream dimension '{down_dim}' maps to '{up_dim}', which the upstream lacks")
                })?;
                check_partitioned(sub, up_def, dim_def, env)
                    .map_err(|why| format!("multi(), dimension '{down_dim}' → '{up_dim}': {why}"))?;
            }
            if let Some(unknown) = dimension_mappings.keys().find(|d| down.dimension(d).is_none()) {
                return Err(format!("multi() maps dimension '{unknown}', which the downstream lacks"));
            }
            Ok(())
        }
        M::MultiToSingle { dimension_name, partition_mapping } => {
            let up_multi = matches!(up, Partitions::Multi(_));
            if up_multi == matches!(down, Partitions::Multi(_)) {
                return Err("multi_to_single() needs exactly one multi side".into());
            }
            let multi_side = if up_multi { up } else { down };
            let Some(dim) = multi_side.dimension(dimension_name) else {
                let names: Vec<&str> = multi_side.dimensions().iter().map(|(n, _)| *n).collect();
                return Err(format!("multi_to_single(): '{dimension_name}' is not one of the dimensions {names:?}"));
            };
            let (up_side, down_side) = if up_multi { (dim, down) } else { (up, dim) };
            check_partitioned(partition_mapping, up_side, down_side, env)
                .map_err(|why| format!("multi_to_single('{dimension_name}'): {why}"))
        }
        M::AllPartitions | M::SpecificPartitions { .. } | M::ForKeys { .. } => {
            check_edge(mapping, Some(up), Some(down), env)
        }
    }
}

fn check_identity(up: &Partitions, down: &Partitions) -> Result<(), String> {
    match (up, down) {
        (Partitions::Static(u), Partitions::Static(d)) => match d.keys().iter().find(|k| u.index_of(k).is_none()) {
            Some(missing) => Err(format!(
                "the downstream key '{missing}' is not an upstream key, so the default identity mapping cannot \
                 link them; declare a partition_mapping (for example static_() or subset())"
            )),
            None => Ok(()),
        },
        (Partitions::TimeWindow(u), Partitions::TimeWindow(d)) => {
            if u.fmt != d.fmt {
                Err(format!("identity needs one key format on both sides, not {:?} and {:?}", u.fmt, d.fmt))
            } else if !u.grid_contains(d) {
                Err("identity needs every downstream window start to be an upstream window start".into())
            } else {
                Ok(())
            }
        }
        (Partitions::Dynamic(u), Partitions::Dynamic(d)) => {
            if u.name == d.name {
                Ok(())
            } else {
                Err(format!("identity needs one dynamic key set, not '{}' and '{}'", u.name, d.name))
            }
        }
        (Partitions::Multi(_), Partitions::Multi(_)) => {
            let names = |p: &Partitions| {
                let mut n: Vec<String> = p.dimensions().iter().map(|(n, _)| (*n).to_owned()).collect();
                n.sort();
                n
            };
            if names(up) != names(down) {
                return Err(format!(
                    "identity needs the same dimensions on both sides, not {:?} and {:?}",
                    names(up),
                    names(down)
                ));
            }
            for (name, dim) in down.dimensions() {
                let up_dim = up.dimension(name).unwrap_or(dim);
                check_identity(up_dim, dim).map_err(|why| format!("dimension '{name}': {why}"))?;
            }
            Ok(())
        }
        _ => Err(format!(
            "identity needs two definitions of one kind, not {:?} (upstream) and {:?} (downstream); declare a \
             partition_mapping",
            kind_name(up.kind()),
            kind_name(down.kind())
        )),
    }
}

fn kind_name(kind: PartitionsKind) -> &'static str {
    match kind {
        PartitionsKind::Static => "static",
        PartitionsKind::TimeWindow => "time_window",
        PartitionsKind::Dynamic => "dynamic",
        PartitionsKind::Multi => "multi",
    }
}

fn parse_display(definition: &Partitions, text: &str) -> Result<PartitionKey, String> {
    PartitionKey::parse_display(text, matches!(definition, Partitions::Multi(_)))
}

/// The upstream partitions a step covering `downstream_keys` reads through `mapping`.
pub fn map_keys(
    mapping: &PartitionMapping,
    upstream: Option<&Partitions>,
    downstream: Option<&Partitions>,
    downstream_keys: &[Coords],
    env: &PartitionEnv,
) -> Result<MappedInput, String> {
    use PartitionMapping as M;
    let Some(downstream) = downstream else {
        // An unpartitioned step reads whole or fixed sets of upstream partitions.
        return match (mapping, upstream) {
            (M::AllPartitions, Some(up)) => Ok(MappedInput::Partitions(up.all_coords(env))),
            (M::SpecificPartitions { .. }, Some(up)) => map_keys(mapping, Some(up), Some(up), &[], env),
            (_, None) => Ok(MappedInput::Whole),
            (other, Some(_)) => Err(format!("{} needs a partitioned downstream", other.name())),
        };
    };
    let Some(up) = upstream else {
        return match mapping {
            M::ForKeys { selectors } => {
                let matches = downstream_keys.iter().any(|coords| {
                    selectors.iter().any(|s| match s {
                        KeySelector::Key(key) => downstream.individuals(key, env).is_ok_and(|c| c.contains(coords)),
                        KeySelector::Range(range) => range.resolve(downstream, env).is_ok_and(|c| c.contains(coords)),
                    })
                });
                Ok(if matches { MappedInput::Whole } else { MappedInput::Nothing })
            }
            _ => Ok(MappedInput::Whole),
        };
    };
    let mut out: Vec<Coords> = match mapping {
        M::AllPartitions => up.all_coords(env),
        M::SpecificPartitions { partition_keys } => {
            let mut all = Vec::new();
            for text in partition_keys {
                all.extend(up.individuals(&parse_display(up, text)?, env)?);
            }
            all
        }
        M::Subset => {
            let found: Vec<Coords> = downstream_keys.iter().filter_map(|c| translate(downstream, up, c, env)).collect();
            if found.is_empty() {
                return Ok(MappedInput::Nothing);
            }
            found
        }
        _ => {
            let mut all = Vec::new();
            for coords in downstream_keys {
                all.extend(map_one(mapping, up, downstream, coords, env)?);
            }
            all
        }
    };
    out.sort_unstable();
    out.dedup();
    Ok(MappedInput::Partitions(out))
}

/// The same key (by value) in another definition of the same shape.
fn translate(from: &Partitions, to: &Partitions, coords: &[u64], env: &PartitionEnv) -> Option<Coords> {
    let key = from.key_of(coords, env)?;
    to.individuals(&key, env).ok()?.into_iter().next()
}

fn key_text(definition: &Partitions, coords: &[u64], env: &PartitionEnv) -> String {
    definition.key_of(coords, env).map_or_else(|| format!("{coords:?}"), |k| k.to_string())
}

/// The upstream grid (same cron or interval and format) laid from `from` on, to count and name
/// windows before the upstream's first one.
fn regrid(u: &TimeWindowPartitions, from: NaiveDateTime) -> Option<TimeWindowPartitions> {
    match Partitions::time_window(from, u.cron_schedule.clone(), u.interval_seconds, None, Some(u.fmt.clone())) {
        Ok(Partitions::TimeWindow(grid)) => Some(grid),
        _ => None,
    }
}

/// The start of the upstream window `back` windows before the upstream's first one.
fn start_before_first(u: &TimeWindowPartitions, back: u128) -> Option<NaiveDateTime> {
    let back = u64::try_from(back).ok()?;
    let first = u.first_start();
    let (a, b) = u.window(0)?;
    let mut span = (b - a).checked_mul(i32::try_from(back).ok()?)?;
    for _ in 0..16 {
        let grid = regrid(u, first.checked_sub_signed(span)?)?;
        let before = grid.count_before(first);
        if before >= back {
            return grid.window_start(before - back);
        }
        span = span.checked_mul(2)?;
    }
    None
}

/// Maps one downstream individual partition.
fn map_one(
    mapping: &PartitionMapping,
    up: &Partitions,
    down: &Partitions,
    coords: &[u64],
    env: &PartitionEnv,
) -> Result<Vec<Coords>, String> {
    use PartitionMapping as M;
    match mapping {
        M::Identity => translate(down, up, coords, env)
            .map(|c| vec![c])
            .ok_or_else(|| format!("partition '{}' does not exist upstream", key_text(down, coords, env))),
        M::Static { mapping } => {
            let key = key_text(down, coords, env);
            let target =
                mapping.get(&key).ok_or_else(|| format!("the static_() mapping has no entry for partition '{key}'"))?;
            up.individuals(&parse_display(up, target)?, env)
                .map_err(|why| format!("static_() maps '{key}' to '{target}': {why}"))
        }
        M::TimeWindow { offset } => {
            let (Partitions::TimeWindow(u), Partitions::TimeWindow(d)) = (up, down) else {
                return Err("time_window() needs two time-window definitions".into());
            };
            let start = d.window_start(coords[0]).ok_or("the downstream window does not exist")?;
            // Windows are counted on the upstream grid; a start before the upstream's first window
            // has a negative number (the upstream windows between it and the first one).
            let first = u.first_start();
            let base = if start < first {
                regrid(u, start).and_then(|before| {
                    let n = before.count_before(first);
                    (before.first_start() == start && before.window_start(n) == Some(first)).then(|| -(n as i128))
                })
            } else {
                let n = u.count_before(start);
                (u.window_start(n) == Some(start)).then_some(n as i128)
            };
            let base = base.ok_or_else(|| {
                format!(
                    "time_window(offset={offset}): partition '{}' starts at {start}, which is not an upstream window start",
                    key_text(down, coords, env)
                )
            })?;
            let shifted = base + i128::from(*offset);
            let count = u.count(env.now) as i128;
            let upstream_range = match (u.key(0), count.checked_sub(1).and_then(|l| u.key(l as u64))) {
                (Some(first), Some(last)) if count > 0 => format!("'{first}'..'{last}'"),
                _ => "empty".into(),
            };
            if shifted < 0 || shifted >= count {
                let described = if shifted >= 0 {
                    u.key(shifted as u64)
                } else {
                    start_before_first(u, shifted.unsigned_abs()).map(|t| {
                        let mut key = String::new();
                        u.render(t, &mut key);
                        key
                    })
                }
                .map_or_else(|| format!("{shifted} windows from the first"), |k| format!("'{k}'"));
                return Err(format!(
                    "time_window(offset={offset}) shifts partition '{}' to {described}, outside the upstream range {upstream_range}",
                    key_text(down, coords, env)
                ));
            }
            Ok(vec![vec![shifted as u64]])
        }
        M::Multi { dimension_mappings } => {
            let mut per_up_dim: Vec<Option<Vec<u64>>> = vec![None; up.dimensions().len()];
            for (d_index, (down_dim, down_def)) in down.dimensions().into_iter().enumerate() {
                let (up_dim, sub) = match dimension_mappings.get(down_dim) {
                    Some((target, sub)) => (target.as_str(), sub),
                    None => (down_dim, &M::Identity),
                };
                let u_index = up
                    .dimensions()
                    .iter()
                    .position(|(n, _)| *n == up_dim)
                    .ok_or_else(|| format!("upstream dimension '{up_dim}' does not exist"))?;
                let up_def = up.dimensions()[u_index].1;
                let values = map_one(sub, up_def, down_def, &[coords[d_index]], env)?;
                let slot = per_up_dim[u_index].get_or_insert_with(Vec::new);
                slot.extend(values.into_iter().map(|c| c[0]));
            }
            let per_dim: Vec<Vec<u64>> = per_up_dim
                .into_iter()
                .zip(up.dimensions())
                .map(|(values, (_, dim))| values.unwrap_or_else(|| (0..dim.dim_count(env)).collect()))
                .collect();
            Ok(cartesian(&per_dim))
        }
        M::MultiToSingle { dimension_name, partition_mapping } => {
            if let Partitions::Multi(_) = down {
                let d_index = down
                    .dimensions()
                    .iter()
                    .position(|(n, _)| n == dimension_name)
                    .ok_or_else(|| format!("downstream dimension '{dimension_name}' does not exist"))?;
                let dim = down.dimensions()[d_index].1;
                map_one(partition_mapping, up, dim, &[coords[d_index]], env)
            } else {
                let u_index = up
                    .dimensions()
                    .iter()
                    .position(|(n, _)| n == dimension_name)
                    .ok_or_else(|| format!("upstream dimension '{dimension_name}' does not exist"))?;
                let dim = up.dimensions()[u_index].1;
                let values: Vec<u64> =
                    map_one(partition_mapping, dim, down, coords, env)?.into_iter().map(|c| c[0]).collect();
                let per_dim: Vec<Vec<u64>> = up
                    .dimensions()
                    .iter()
                    .enumerate()
                    .map(|(i, (_, d))| if i == u_index { values.clone() } else { (0..d.dim_count(env)).collect() })
                    .collect();
                Ok(cartesian(&per_dim))
            }
        }
        M::AllPartitions | M::SpecificPartitions { .. } | M::Subset | M::ForKeys { .. } => {
            match map_keys(mapping, Some(up), Some(down), &[coords.to_vec()], env)? {
                MappedInput::Partitions(keys) => Ok(keys),
                MappedInput::Whole | MappedInput::Nothing => Ok(Vec::new()),
            }
        }
    }
}
