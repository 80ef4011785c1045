//! Sorted, disjoint, non-adjacent ranges of grid positions: how partition status is stored. A
//! daily asset with ten years materialized is one range, whatever the number of keys.

use std::fmt;
use std::str::FromStr;

/// A set of positions kept as inclusive ranges `[start, end]`, sorted, never touching.
/// Serialises as its text form (see the `Display` impl).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct RangeSet {
    ranges: Vec<(u128, u128)>,
}

impl RangeSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The set of `positions` (any order, duplicates allowed).
    pub fn from_positions(positions: impl IntoIterator<Item = u128>) -> Self {
        let mut sorted: Vec<u128> = positions.into_iter().collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut ranges: Vec<(u128, u128)> = Vec::new();
        for p in sorted {
            match ranges.last_mut() {
                Some(last) if last.1 + 1 == p => last.1 = p,
                _ => ranges.push((p, p)),
            }
        }
        Self { ranges }
    }

    /// The ranges, sorted.
    pub fn ranges(&self) -> &[(u128, u128)] {
        &self.ranges
    }

    /// Whether no position is in the set.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The number of positions.
    pub fn len(&self) -> u128 {
        self.ranges.iter().map(|(s, e)| e - s + 1).sum()
    }

    /// Whether `position` is in the set (binary search over ranges).
    pub fn contains(&self, position: u128) -> bool {
        let i = self.ranges.partition_point(|&(_, end)| end < position);
        self.ranges.get(i).is_some_and(|&(start, _)| start <= position)
    }

    /// Every position, ascending.
    pub fn positions(&self) -> impl Iterator<Item = u128> + '_ {
        self.ranges.iter().flat_map(|&(s, e)| s..=e)
    }

    /// Every position, descending.
    pub fn positions_descending(&self) -> impl Iterator<Item = u128> + '_ {
        self.ranges.iter().rev().flat_map(|&(s, e)| (s..=e).rev())
    }

    /// The highest position.
    pub fn last(&self) -> Option<u128> {
        self.ranges.last().map(|&(_, end)| end)
    }

    /// How many positions of the set are below `position` (its index when it is in the set):
    /// O(ranges).
    pub fn rank(&self, position: u128) -> u128 {
        self.ranges
            .iter()
            .take_while(|&&(start, _)| start < position)
            .map(|&(start, end)| end.min(position - 1) - start + 1)
            .sum()
    }

    /// The set of one range.
    pub fn span(start: u128, end: u128) -> Self {
        if start > end { Self::default() } else { Self { ranges: vec![(start, end)] } }
    }

    /// `self ∪ other`, in one merge pass.
    pub fn union(&self, other: &RangeSet) -> RangeSet {
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(self.ranges.len() + other.ranges.len());
        let (mut a, mut b) = (self.ranges.iter().peekable(), other.ranges.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => {
                    if x.0 <= y.0 {
                        a.next()
                    } else {
                        b.next()
                    }
                }
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            let &(start, end) = next.unwrap_or(&(0, 0));
            match merged.last_mut() {
                Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        RangeSet { ranges: merged }
    }

    /// `self \ other`, in one merge pass.
    pub fn difference(&self, other: &RangeSet) -> RangeSet {
        let mut out = Vec::with_capacity(self.ranges.len());
        let mut j = 0;
        for &(start, end) in &self.ranges {
            let mut cursor = start;
            while j < other.ranges.len() && other.ranges[j].1 < cursor {
                j += 1;
            }
            let mut k = j;
            while cursor <= end {
                match other.ranges.get(k) {
                    Some(&(cut_start, cut_end)) if cut_start <= end => {
                        if cut_start > cursor {
                            out.push((cursor, cut_start - 1));
                        }
                        if cut_end >= end {
                            break;
                        }
                        cursor = cursor.max(cut_end + 1);
                        k += 1;
                    }
                    _ => {
                        out.push((cursor, end));
                        break;
                    }
                }
            }
        }
        RangeSet { ranges: out }
    }

    /// `self ∩ other`.
    pub fn intersection(&self, other: &RangeSet) -> RangeSet {
        self.difference(&self.difference(other))
    }
}

/// The stored text form: `start-end` pairs (or a lone position) joined by `,`, e.g. `0-999,1005`.
impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(start, end)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

impl From<RangeSet> for String {
    fn from(set: RangeSet) -> String {
        set.to_string()
    }
}

impl TryFrom<String> for RangeSet {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl FromStr for RangeSet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut ranges: Vec<(u128, u128)> = Vec::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let bad = || format!("'{part}' is not a position range");
            let (start, end) = match part.split_once('-') {
                Some((s, e)) => (s.parse().map_err(|_| bad())?, e.parse().map_err(|_| bad())?),
                None => {
                    let p = part.parse().map_err(|_| bad())?;
                    (p, p)
                }
            };
            if start > end || ranges.last().is_some_and(|last| last.1.saturating_add(1) >= start) {
                return Err(format!("position ranges '{text}' are not sorted and disjoint"));
            }
            ranges.push((start, end));
        }
        Ok(Self { ranges })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ranges: &[(u128, u128)]) -> RangeSet {
        RangeSet { ranges: ranges.to_vec() }
    }

    #[test]
    fn positions_collapse_into_ranges() {
        let s = RangeSet::from_positions([5, 1, 2, 3, 9, 2, 4]);
        assert_eq!(s.ranges(), &[(1, 5), (9, 9)]);
        assert_eq!(s.len(), 6);
        assert!(s.contains(4) && !s.contains(6) && s.contains(9));
    }

    #[test]
    fn union_merges_touching_and_overlapping_ranges() {
        let a = set(&[(0, 4), (10, 12)]);
        let b = set(&[(5, 6), (11, 20), (30, 30)]);
        assert_eq!(a.union(&b), set(&[(0, 6), (10, 20), (30, 30)]));
        assert_eq!(RangeSet::new().union(&a), a);
    }

    #[test]
    fn difference_cuts_holes_and_edges() {
        let a = set(&[(0, 9), (20, 29)]);
        let b = set(&[(0, 0), (4, 5), (9, 21), (25, 100)]);
        assert_eq!(a.difference(&b), set(&[(1, 3), (6, 8), (22, 24)]));
        assert_eq!(a.difference(&RangeSet::new()), a);
        assert_eq!(a.intersection(&b), set(&[(0, 0), (4, 5), (9, 9), (20, 21), (25, 29)]));
    }

    #[test]
    fn text_form_round_trips() {
        let s = set(&[(0, 999_999), (1_000_005, 1_000_005)]);
        assert_eq!(s.to_string(), "0-999999,1000005");
        assert_eq!("0-999999,1000005".parse::<RangeSet>().unwrap(), s);
        assert_eq!("".parse::<RangeSet>().unwrap(), RangeSet::new());
        assert!("5-3".parse::<RangeSet>().is_err());
        assert!("1-5,4-9".parse::<RangeSet>().is_err());
        assert_eq!(serde_json::to_value(&s).unwrap(), serde_json::json!("0-999999,1000005"));
        assert_eq!(serde_json::from_value::<RangeSet>(serde_json::json!("0-9")).unwrap(), set(&[(0, 9)]));
    }

    #[test]
    fn rank_counts_the_positions_below() {
        let s = set(&[(2, 4), (10, 12)]);
        assert_eq!([0, 2, 3, 5, 10, 12, 13].map(|p| s.rank(p)), [0, 0, 1, 3, 3, 5, 6]);
        assert_eq!(s.positions_descending().collect::<Vec<_>>(), [12, 11, 10, 4, 3, 2]);
        assert_eq!(s.last(), Some(12));
    }
}
