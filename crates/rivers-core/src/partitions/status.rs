//! Reading partition status back as keys: grid position ranges turned into key ranges (for a
//! multi definition, the rectangles a position range spans) and into individual keys.

use std::collections::BTreeMap;

use super::definition::{PartitionEnv, Partitions};
use super::key::PartitionKey;
use super::key_range::{DimSelection, PartitionKeyRange};

impl Partitions {
    /// The key ranges covering the existing keys at grid positions `start..=end`.
    pub fn key_ranges(&self, start: u128, end: u128, env: &PartitionEnv) -> Vec<PartitionKeyRange> {
        let dims = self.dimensions();
        let mut rectangles = Vec::new();
        self.split(0, start, end, &mut Vec::new(), &mut rectangles);
        rectangles
            .into_iter()
            .filter_map(|rectangle| {
                let mut spans = Vec::with_capacity(dims.len());
                for ((_, dim), (from, to)) in dims.iter().zip(rectangle) {
                    spans.push(dim.existing_span(from, to, env)?);
                }
                Some(match self {
                    Partitions::Multi(_) => PartitionKeyRange::Multi(
                        dims.iter()
                            .zip(spans)
                            .map(|((name, _), (a, b))| ((*name).to_owned(), DimSelection::Range(a, b)))
                            .collect::<BTreeMap<_, _>>(),
                    ),
                    _ => {
                        let (from, to) = spans.into_iter().next()?;
                        PartitionKeyRange::Single { from, to }
                    }
                })
            })
            .collect()
    }

    /// Splits `start..=end` of dimension `level` and below into per-dimension position ranges.
    fn split(
        &self,
        level: usize,
        start: u128,
        end: u128,
        prefix: &mut Vec<(u128, u128)>,
        out: &mut Vec<Vec<(u128, u128)>>,
    ) {
        let Partitions::Multi(multi) = self else {
            out.push(vec![(start, end)]);
            return;
        };
        let last = multi.dimensions.len() - 1;
        if level == last {
            let mut rectangle = prefix.clone();
            rectangle.push((start, end));
            out.push(rectangle);
            return;
        }
        let weight = multi.weights[level];
        let full_below = |rectangle: &mut Vec<(u128, u128)>| {
            for (_, dim) in &multi.dimensions[level + 1..] {
                rectangle.push((0, dim.capacity().saturating_sub(1)));
            }
        };
        let (head, tail) = (start / weight, end / weight);
        let (head_rest, tail_rest) = (start % weight, end % weight);
        if head == tail {
            prefix.push((head, head));
            self.split(level + 1, head_rest, tail_rest, prefix, out);
            prefix.pop();
            return;
        }
        let mut first_full = head;
        if head_rest != 0 {
            prefix.push((head, head));
            self.split(level + 1, head_rest, weight - 1, prefix, out);
            prefix.pop();
            first_full += 1;
        }
        let tail_partial = tail_rest != weight - 1;
        let last_full = if tail_partial { tail.checked_sub(1) } else { Some(tail) };
        if let Some(last_full) = last_full.filter(|l| *l >= first_full) {
            let mut rectangle = prefix.clone();
            rectangle.push((first_full, last_full));
            full_below(&mut rectangle);
            out.push(rectangle);
        }
        if tail_partial {
            prefix.push((tail, tail));
            self.split(level + 1, 0, tail_rest, prefix, out);
            prefix.pop();
        }
    }

    /// The first and last existing keys of a one-dimensional definition at positions
    /// `from..=to`.
    fn existing_span(&self, from: u128, to: u128, env: &PartitionEnv) -> Option<(String, String)> {
        let count = self.dim_count(env);
        let (first, last) = match self {
            Partitions::Dynamic(_) => {
                let first = (0..count).find(|&i| self.dim_position(i, env).is_some_and(|p| p >= from))?;
                let last = (0..count).rev().find(|&i| self.dim_position(i, env).is_some_and(|p| p <= to))?;
                (first, last)
            }
            _ => {
                let first = u64::try_from(from).ok()?;
                let last = u64::try_from(to).unwrap_or(u64::MAX).min(count.checked_sub(1)?);
                (first, last)
            }
        };
        (first <= last).then(|| Some((self.dim_value(first, env)?, self.dim_value(last, env)?)))?
    }

    /// The existing individual keys at the positions of `ranges`, in position order.
    pub fn keys_at(&self, ranges: &[(u128, u128)], env: &PartitionEnv) -> Vec<PartitionKey> {
        let mut keys = Vec::new();
        for &(start, end) in ranges {
            if let Partitions::TimeWindow(windows) = self {
                let count = u128::from(windows.count(env.now));
                if start >= count {
                    continue;
                }
                let take = (end.min(count - 1) - start + 1) as usize;
                keys.extend(windows.keys_from(start as u64).take(take).map(|k| PartitionKey::Single(vec![k])));
                continue;
            }
            let mut position = start;
            loop {
                if let Some(key) = self.coords_at(position, env).and_then(|c| self.key_of(&c, env)) {
                    keys.push(key);
                }
                if position == end {
                    break;
                }
                position += 1;
            }
        }
        keys
    }
}
