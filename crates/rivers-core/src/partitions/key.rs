//! Partition keys: one or more values of a one-dimensional definition, one or more values per
//! dimension of a multi definition, or a bundle of keys that is not a cartesian product.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A partition key. A key with one value (per dimension) is an individual partition; a key with
/// several values covers the cartesian product of its values.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionKey {
    /// Values of a one-dimensional definition.
    Single(Vec<String>),
    /// Values per dimension name.
    Multi(BTreeMap<String, Vec<String>>),
    /// Keys that do not form a cartesian product (a batched backfill group).
    Set(Vec<PartitionKey>),
}

impl PartitionKey {
    /// The individual key of one value.
    pub fn single(value: impl Into<String>) -> Self {
        Self::Single(vec![value.into()])
    }

    /// Reads a key in display form: `a` / `a,b` for one dimension, `d=a|e=b,c` for several.
    pub fn parse_display(text: &str, multi: bool) -> Result<Self, String> {
        if !multi {
            return Ok(Self::Single(text.split(',').map(str::to_owned).collect()));
        }
        let mut dims = BTreeMap::new();
        for segment in text.split('|') {
            let (dim, values) = segment.split_once('=').ok_or_else(|| {
                format!(
                    "partition key '{text}' is not in multi display form 'dim=value|dim=value' (segment '{segment}')"
                )
            })?;
            if dims.insert(dim.to_owned(), values.split(',').map(str::to_owned).collect()).is_some() {
                return Err(format!("partition key '{text}' names dimension '{dim}' twice"));
            }
        }
        Ok(Self::Multi(dims))
    }

    /// The JSON transport form (always a JSON object).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the JSON transport form.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let key: Self = serde_json::from_str(text).map_err(|e| format!("not a partition key JSON text: {e}"))?;
        key.check_not_empty()?;
        Ok(key)
    }

    /// Rejects keys without values (constructors do not accept them).
    pub fn check_not_empty(&self) -> Result<(), String> {
        match self {
            Self::Single(values) if values.is_empty() => Err("a partition key needs at least one value".into()),
            Self::Multi(dims) if dims.is_empty() => Err("a multi partition key needs at least one dimension".into()),
            Self::Multi(dims) => match dims.iter().find(|(_, values)| values.is_empty()) {
                Some((dim, _)) => Err(format!("dimension '{dim}' of the partition key has no values")),
                None => Ok(()),
            },
            Self::Set(keys) if keys.is_empty() => Err("a partition key set needs at least one key".into()),
            Self::Set(keys) => keys.iter().try_for_each(Self::check_not_empty),
            Self::Single(_) => Ok(()),
        }
    }

    /// Whether the key names exactly one individual partition.
    pub fn is_individual(&self) -> bool {
        match self {
            Self::Single(values) => values.len() == 1,
            Self::Multi(dims) => dims.values().all(|values| values.len() == 1),
            Self::Set(keys) => keys.len() == 1 && keys[0].is_individual(),
        }
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single(values) => f.write_str(&values.join(",")),
            Self::Multi(dims) => {
                for (i, (dim, values)) in dims.iter().enumerate() {
                    if i > 0 {
                        f.write_str("|")?;
                    }
                    write!(f, "{dim}={}", values.join(","))?;
                }
                Ok(())
            }
            Self::Set(keys) => {
                for (i, key) in keys.iter().enumerate() {
                    if i > 0 {
                        f.write_str(";")?;
                    }
                    write!(f, "{key}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multi(pairs: &[(&str, &[&str])]) -> PartitionKey {
        PartitionKey::Multi(
            pairs.iter().map(|(d, vs)| ((*d).to_owned(), vs.iter().map(|v| (*v).to_owned()).collect())).collect(),
        )
    }

    #[test]
    fn display_form_sorts_dimensions_and_joins_values() {
        assert_eq!(PartitionKey::Single(vec!["a".into(), "b".into()]).to_string(), "a,b");
        let key = multi(&[("year", &["2024"]), ("region", &["eu", "us"])]);
        assert_eq!(key.to_string(), "region=eu,us|year=2024");
        assert_eq!(PartitionKey::parse_display("region=eu,us|year=2024", true).unwrap(), key);
        assert!(PartitionKey::parse_display("region", true).is_err());
    }

    #[test]
    fn json_round_trips_every_variant() {
        for key in [
            PartitionKey::single("x"),
            multi(&[("d", &["1", "2"]), ("r", &["a"])]),
            PartitionKey::Set(vec![PartitionKey::single("a"), PartitionKey::single("c")]),
        ] {
            let text = key.to_json();
            assert!(text.starts_with('{'));
            assert_eq!(PartitionKey::from_json(&text).unwrap(), key);
        }
        assert!(PartitionKey::from_json("[1]").is_err());
        assert!(PartitionKey::from_json(r#"{"single": []}"#).is_err());
    }
}
