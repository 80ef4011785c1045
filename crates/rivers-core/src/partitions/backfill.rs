//! Backfill planning: the requested partitions expanded into individual partitions (without
//! duplicates, in enumeration order) and grouped into runs by the strategy.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::definition::{Coords, PartitionEnv, Partitions};
use super::key::PartitionKey;
use super::key_range::PartitionKeyRange;

/// How a backfill groups its partitions into runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackfillStrategy {
    /// One run per partition.
    MultiRun,
    /// One run for every partition.
    SingleRun,
    /// One run per combination of the multi-run dimensions' values, batching the others.
    PerDimension {
        /// Dimensions that get a run per value.
        multi_run: Vec<String>,
        /// Dimensions batched into each run.
        single_run: Vec<String>,
    },
}

impl BackfillStrategy {
    /// `per_dimension`: both lists non-empty and disjoint.
    pub fn per_dimension(multi_run: Vec<String>, single_run: Vec<String>) -> Result<Self, String> {
        if multi_run.is_empty() || single_run.is_empty() {
            return Err(
                "BackfillStrategy.per_dimension() needs at least one multi_run and one single_run dimension".into()
            );
        }
        if let Some(both) = multi_run.iter().find(|d| single_run.contains(d)) {
            return Err(format!("dimension '{both}' is listed in both multi_run and single_run"));
        }
        Ok(Self::PerDimension { multi_run, single_run })
    }
}

/// The partitions a backfill asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackfillTarget {
    /// Explicit keys (a key with several values adds every partition it covers).
    Keys(Vec<PartitionKey>),
    /// An inclusive range or cartesian selection.
    Range(PartitionKeyRange),
}

/// A planned backfill.
#[derive(Clone, Debug, PartialEq)]
pub struct BackfillPlan {
    /// Individual partitions, in enumeration order without duplicates.
    pub partitions: Vec<Coords>,
    /// Each run's partitions, as indices into `partitions`, in run order.
    pub runs: Vec<Vec<usize>>,
}

/// Plans a backfill of `target` over `definition`; the error says which key, range endpoint
/// or dimension does not fit.
pub fn plan_backfill(
    definition: &Partitions,
    target: &BackfillTarget,
    strategy: &BackfillStrategy,
    env: &PartitionEnv,
) -> Result<BackfillPlan, String> {
    let mut partitions = match target {
        BackfillTarget::Keys(keys) => {
            let mut all = Vec::new();
            for key in keys {
                all.extend(definition.individuals(key, env).map_err(|why| format!("partition key '{key}': {why}"))?);
            }
            all
        }
        BackfillTarget::Range(range) => range.resolve(definition, env)?,
    };
    partitions.sort_unstable();
    partitions.dedup();
    let runs = match strategy {
        BackfillStrategy::MultiRun => (0..partitions.len()).map(|i| vec![i]).collect(),
        BackfillStrategy::SingleRun => {
            if partitions.is_empty() {
                Vec::new()
            } else {
                vec![(0..partitions.len()).collect()]
            }
        }
        BackfillStrategy::PerDimension { multi_run, single_run } => {
            let Partitions::Multi(multi) = definition else {
                return Err("per_dimension() backfills need a multi partitions definition".into());
            };
            let names: Vec<&str> = multi.dimensions.iter().map(|(n, _)| n.as_str()).collect();
            if let Some(unknown) = multi_run.iter().chain(single_run).find(|d| !names.contains(&d.as_str())) {
                return Err(format!("per_dimension() names dimension '{unknown}', which is not one of {names:?}"));
            }
            // Dimensions listed in neither list get a run per value.
            let batched: Vec<bool> = names.iter().map(|n| single_run.iter().any(|d| d == n)).collect();
            let mut groups: Vec<Vec<usize>> = Vec::new();
            let mut index: HashMap<Vec<u64>, usize> = HashMap::new();
            for (i, coords) in partitions.iter().enumerate() {
                let run_key: Vec<u64> =
                    coords.iter().zip(&batched).filter(|(_, batched)| !**batched).map(|(c, _)| *c).collect();
                let group = *index.entry(run_key).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[group].push(i);
            }
            groups
        }
    };
    Ok(BackfillPlan { partitions, runs })
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn env() -> PartitionEnv {
        PartitionEnv::at(NaiveDate::from_ymd_opt(2030, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap())
    }

    fn days() -> Partitions {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
        Partitions::daily(start, None, None).unwrap()
    }

    #[test]
    fn strategies_group_partitions_into_runs() {
        let range =
            BackfillTarget::Range(PartitionKeyRange::Single { from: "2024-01-01".into(), to: "2024-01-10".into() });
        let multi = plan_backfill(&days(), &range, &BackfillStrategy::MultiRun, &env()).unwrap();
        assert_eq!((multi.partitions.len(), multi.runs.len()), (10, 10));
        let single = plan_backfill(&days(), &range, &BackfillStrategy::SingleRun, &env()).unwrap();
        assert_eq!(single.runs, vec![(0..10).collect::<Vec<_>>()]);
        let grid = Partitions::multi(vec![
            ("day".into(), days()),
            ("shop".into(), Partitions::static_(vec!["a".into(), "b".into(), "c".into()]).unwrap()),
        ])
        .unwrap();
        let four_days = BackfillTarget::Range(PartitionKeyRange::Multi(
            [("day".to_string(), super::super::DimSelection::Range("2024-01-01".into(), "2024-01-04".into()))]
                .into_iter()
                .collect(),
        ));
        let strategy = BackfillStrategy::per_dimension(vec!["day".into()], vec!["shop".into()]).unwrap();
        let per_day = plan_backfill(&grid, &four_days, &strategy, &env()).unwrap();
        assert_eq!((per_day.partitions.len(), per_day.runs.len()), (12, 4));
        assert!(per_day.runs.iter().all(|run| run.len() == 3));
    }

    #[test]
    fn keys_expand_without_duplicates_in_enumeration_order() {
        let keys = BackfillTarget::Keys(vec![
            PartitionKey::Single(vec!["2024-01-03".into(), "2024-01-02".into()]),
            PartitionKey::single("2024-01-02"),
        ]);
        let plan = plan_backfill(&days(), &keys, &BackfillStrategy::MultiRun, &env()).unwrap();
        assert_eq!(plan.partitions, vec![vec![1], vec![2]]);
    }

    #[test]
    fn per_dimension_needs_a_multi_definition_and_known_disjoint_dimensions() {
        assert!(BackfillStrategy::per_dimension(vec![], vec!["a".into()]).is_err());
        assert!(BackfillStrategy::per_dimension(vec!["a".into()], vec!["a".into()]).is_err());
        let strategy = BackfillStrategy::per_dimension(vec!["day".into()], vec!["x".into()]).unwrap();
        let keys = BackfillTarget::Keys(vec![PartitionKey::single("2024-01-02")]);
        assert!(plan_backfill(&days(), &keys, &strategy, &env()).unwrap_err().contains("multi"));
    }
}
