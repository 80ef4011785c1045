//! Key ranges: inclusive `from..to` over a one-dimensional definition, or per-dimension ranges
//! and key lists over a multi definition. Endpoints are checked against the definition they are
//! used with, not at construction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::definition::{Coords, PartitionEnv, Partitions, cartesian};

/// What a multi range selects in one dimension.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DimSelection {
    /// Inclusive `(from, to)`.
    Range(String, String),
    /// Explicit keys.
    Keys(Vec<String>),
}

/// An inclusive range of keys, or a cartesian selection per dimension.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionKeyRange {
    /// `from..=to` over a one-dimensional definition.
    Single {
        /// First key.
        from: String,
        /// Last key.
        to: String,
    },
    /// Per-dimension selections; a dimension left out selects all of its keys.
    Multi(BTreeMap<String, DimSelection>),
}

impl PartitionKeyRange {
    /// The key numbers selected in each dimension of `definition`, or why the range does not fit.
    pub fn per_dimension(&self, definition: &Partitions, env: &PartitionEnv) -> Result<Vec<Vec<u64>>, String> {
        match (self, definition) {
            (Self::Single { .. }, Partitions::Multi(_)) => Err(format!(
                "range {self} is one-dimensional but the definition is multi-dimensional; use \
                 PartitionKeyRange.multi({{dim: (from, to)}})"
            )),
            (Self::Multi(_), one) if !matches!(one, Partitions::Multi(_)) => {
                Err(format!("range {self} is multi-dimensional but the definition has one dimension"))
            }
            (Self::Single { from, to }, one) => Ok(vec![span(one, "", from, to, env)?]),
            (Self::Multi(selections), multi) => {
                let dims = multi.dimensions();
                if let Some(unknown) = selections.keys().find(|name| !dims.iter().any(|(n, _)| n == name)) {
                    let names: Vec<&str> = dims.iter().map(|(n, _)| *n).collect();
                    return Err(format!("range {self} names dimension '{unknown}', which is not one of {names:?}"));
                }
                dims.iter()
                    .map(|(name, dim)| match selections.get(*name) {
                        None => Ok((0..dim.dim_count(env)).collect()),
                        Some(DimSelection::Range(from, to)) => span(dim, name, from, to, env),
                        Some(DimSelection::Keys(keys)) => {
                            let mut numbers = keys
                                .iter()
                                .map(|k| dim.dim_index(k, env).ok_or_else(|| not_a_key(dim, name, "key", k, env)))
                                .collect::<Result<Vec<_>, _>>()?;
                            numbers.sort_unstable();
                            numbers.dedup();
                            Ok(numbers)
                        }
                    })
                    .collect()
            }
        }
    }

    /// The individual partitions selected, in enumeration order.
    pub fn resolve(&self, definition: &Partitions, env: &PartitionEnv) -> Result<Vec<Coords>, String> {
        Ok(cartesian(&self.per_dimension(definition, env)?))
    }

    /// The same range with explicit key lists sorted (equality ignores their order).
    pub fn normalized(&self) -> Self {
        match self {
            Self::Single { .. } => self.clone(),
            Self::Multi(dims) => Self::Multi(
                dims.iter()
                    .map(|(name, sel)| {
                        let sel = match sel {
                            DimSelection::Keys(keys) => {
                                let mut keys = keys.clone();
                                keys.sort();
                                DimSelection::Keys(keys)
                            }
                            range => range.clone(),
                        };
                        (name.clone(), sel)
                    })
                    .collect(),
            ),
        }
    }
}

fn span(dim: &Partitions, name: &str, from: &str, to: &str, env: &PartitionEnv) -> Result<Vec<u64>, String> {
    let start = dim.dim_index(from, env).ok_or_else(|| not_a_key(dim, name, "start", from, env))?;
    let end = dim.dim_index(to, env).ok_or_else(|| not_a_key(dim, name, "end", to, env))?;
    if start > end {
        let within = if name.is_empty() { String::new() } else { format!(" in dimension '{name}'") };
        return Err(format!("range start '{from}' comes after range end '{to}'{within}"));
    }
    Ok((start..=end).collect())
}

/// Why `key` is not usable, with the nearest valid keys for time windows.
fn not_a_key(dim: &Partitions, name: &str, role: &str, key: &str, env: &PartitionEnv) -> String {
    let within = if name.is_empty() { String::new() } else { format!(" of dimension '{name}'") };
    let mut message = format!("range {role} '{key}' is not a partition key{within}");
    if let Partitions::TimeWindow(windows) = dim {
        let count = windows.count(env.now);
        let hint = match windows.parse(key).or_else(|| parse_loosely(key)) {
            Some(t) => {
                let next = windows.count_before(t).min(count);
                let before = next.checked_sub(1).and_then(|i| windows.key(i));
                let after = (next < count).then(|| windows.key(next)).flatten();
                match (before, after) {
                    (Some(b), Some(a)) => format!("; the nearest keys are '{b}' and '{a}'"),
                    (Some(b), None) => format!("; the last key is '{b}'"),
                    (None, Some(a)) => format!("; the first key is '{a}'"),
                    (None, None) => "; the definition has no keys yet".into(),
                }
            }
            None => format!("; keys have the format {:?}", windows.fmt),
        };
        message.push_str(&hint);
    }
    message
}

/// Reads a key written in a common timestamp layout other than the definition's format, to
/// suggest the nearest keys.
fn parse_loosely(key: &str) -> Option<chrono::NaiveDateTime> {
    const LAYOUTS: [&str; 7] =
        ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y-%m", "%Y"];
    LAYOUTS.iter().find_map(|layout| super::time_format::KeyFormat::compile(layout).ok()?.parse(key))
}

impl std::fmt::Display for PartitionKeyRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Single { from, to } => write!(f, "'{from}'..'{to}'"),
            Self::Multi(dims) => {
                let parts: Vec<String> = dims
                    .iter()
                    .map(|(name, sel)| match sel {
                        DimSelection::Range(a, b) => format!("{name}='{a}'..'{b}'"),
                        DimSelection::Keys(keys) => format!("{name}={keys:?}"),
                    })
                    .collect();
                write!(f, "{{{}}}", parts.join(", "))
            }
        }
    }
}
