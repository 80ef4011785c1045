//! The latest materialization of each partition, as an interval map: disjoint position ranges
//! of one asset's grid, each pointing at the event that materialized it last.
//!
//! A step that materialized a million partitions adds one interval; a run per partition adds
//! one per run. Entries are stored keyed by `[asset, definition, end]` (the end zero-padded, so
//! keys sort as positions do), so the entry holding a position is the first one whose end is
//! not below it: one range read. This module computes how a batch changes the entries it read;
//! it is pure so the rules are testable without a database.

use std::collections::BTreeMap;

use rivers_core::partitions::RangeSet;
use serde_json::{Value, json};

/// Digits of the largest position (`u128::MAX`): the width ends are padded to.
const POSITION_DIGITS: usize = 39;

/// A position as it appears in an entry key.
pub(crate) fn padded(position: u128) -> String {
    format!("{position:0POSITION_DIGITS$}")
}

/// One interval: positions `start..=end` were last materialized by `event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interval {
    pub(crate) start: u128,
    pub(crate) end: u128,
    /// The event's time (nanoseconds): a position keeps the newer event.
    pub(crate) time: i64,
    /// The event's id (intervals of one event merge when they touch).
    pub(crate) event_id: String,
    /// The stored event text.
    pub(crate) event: String,
}

impl Interval {
    /// Decodes a stored entry (`start`, `end`, `time`, `event_id`, `event`).
    pub(crate) fn decode(row: &Value) -> Option<Self> {
        Some(Interval {
            start: row["start"].as_str()?.parse().ok()?,
            end: row["end"].as_str()?.parse().ok()?,
            time: row["time"].as_i64()?,
            event_id: row["event_id"].as_str()?.to_string(),
            event: row["event"].as_str()?.to_string(),
        })
    }

    /// The stored form of the entry of `asset` on grid `definition`.
    pub(crate) fn row(&self, asset: &str, definition: &str) -> Value {
        json!({
            "id": [asset, definition, padded(self.end)],
            "start": self.start.to_string(),
            "end": self.end.to_string(),
            "time": self.time,
            "event_id": self.event_id,
            "event": self.event,
        })
    }

    fn piece(&self, start: u128, end: u128) -> Interval {
        Interval { start, end, ..self.clone() }
    }
}

/// The entries of one asset's grid that a batch read (every entry touching the positions the
/// batch writes), changed in memory, then written back as a difference.
#[derive(Debug, Default)]
pub(crate) struct IntervalRegion {
    /// As read, by end.
    read: BTreeMap<u128, Interval>,
    /// As changed, by end.
    current: BTreeMap<u128, Interval>,
}

impl IntervalRegion {
    /// A region holding the entries read.
    pub(crate) fn new(entries: impl IntoIterator<Item = Interval>) -> Self {
        let read: BTreeMap<u128, Interval> = entries.into_iter().map(|entry| (entry.end, entry)).collect();
        IntervalRegion { current: read.clone(), read }
    }

    /// Records that `event` (at `time`) materialized `positions`: each position takes it unless
    /// it holds a newer event. Equal times go to the later call (the batch's order).
    pub(crate) fn overlay(&mut self, positions: &RangeSet, time: i64, event_id: &str, event: &str) {
        let new = Interval { start: 0, end: 0, time, event_id: event_id.to_string(), event: event.to_string() };
        for &(start, end) in positions.ranges() {
            let touched: Vec<Interval> = self
                .current
                .range(start..)
                .map(|(_, entry)| entry)
                .take_while(|entry| entry.start <= end)
                .cloned()
                .collect();
            let mut pieces = Vec::with_capacity(touched.len() * 2 + 1);
            // The first position not yet placed (`None` past `u128::MAX`).
            let mut next = Some(start);
            for old in touched {
                self.current.remove(&old.end);
                if old.start < start {
                    pieces.push(old.piece(old.start, start - 1));
                }
                let (from, to) = (old.start.max(start), old.end.min(end));
                if let Some(gap) = next.filter(|&gap| gap < from) {
                    pieces.push(new.piece(gap, from - 1));
                }
                pieces.push(if old.time > time { old.piece(from, to) } else { new.piece(from, to) });
                if old.end > end {
                    pieces.push(old.piece(end + 1, old.end));
                }
                next = to.checked_add(1);
            }
            if let Some(gap) = next.filter(|&gap| gap <= end) {
                pieces.push(new.piece(gap, end));
            }
            self.insert_merged(pieces);
        }
    }

    /// Inserts sorted, disjoint pieces, merging neighbours of one event that touch (also with
    /// the entries just outside them).
    fn insert_merged(&mut self, pieces: Vec<Interval>) {
        let mut merged: Vec<Interval> = Vec::with_capacity(pieces.len());
        let before = pieces.first().and_then(|first| first.start.checked_sub(1)).and_then(|p| self.current.remove(&p));
        for piece in before.into_iter().chain(pieces) {
            match merged.last_mut() {
                Some(last) if last.event_id == piece.event_id && last.end.checked_add(1) == Some(piece.start) => {
                    last.end = piece.end;
                }
                _ => merged.push(piece),
            }
        }
        if let Some(last) = merged.last_mut()
            && let Some(after_start) = last.end.checked_add(1)
        {
            let after = self.current.range(after_start..).next().map(|(_, entry)| entry.clone());
            if let Some(after) = after.filter(|a| a.start == after_start && a.event_id == last.event_id) {
                self.current.remove(&after.end);
                last.end = after.end;
            }
        }
        for entry in merged {
            self.current.insert(entry.end, entry);
        }
    }

    /// The entries to delete (by end) and to write, against what was read.
    pub(crate) fn changes(&self) -> (Vec<u128>, Vec<&Interval>) {
        let deleted = self.read.keys().filter(|end| !self.current.contains_key(end)).copied().collect();
        let written = self.current.values().filter(|entry| self.read.get(&entry.end) != Some(*entry)).collect();
        (deleted, written)
    }

    /// Every entry as changed, by end.
    #[cfg(test)]
    fn entries(&self) -> Vec<(u128, u128, &str)> {
        self.current.values().map(|e| (e.start, e.end, e.event_id.as_str())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(start: u128, end: u128, time: i64, id: &str) -> Interval {
        Interval { start, end, time, event_id: id.into(), event: format!("text of {id}") }
    }

    fn ranges(list: &[(u128, u128)]) -> RangeSet {
        list.iter().fold(RangeSet::new(), |set, &(s, e)| set.union(&RangeSet::span(s, e)))
    }

    #[test]
    fn a_new_event_fills_gaps_and_replaces_older_entries() {
        let mut region = IntervalRegion::new([entry(0, 4, 1, "a"), entry(8, 9, 1, "b")]);
        region.overlay(&ranges(&[(3, 12)]), 5, "c", "text of c");
        assert_eq!(region.entries(), [(0, 2, "a"), (3, 12, "c")]);
        let (deleted, written) = region.changes();
        assert_eq!(deleted, [4, 9]);
        let written: Vec<(u128, u128)> = written.iter().map(|e| (e.start, e.end)).collect();
        assert_eq!(written, [(0, 2), (3, 12)]);
    }

    #[test]
    fn positions_holding_a_newer_event_keep_it() {
        let mut region = IntervalRegion::new([entry(2, 3, 9, "newer"), entry(6, 6, 1, "older")]);
        region.overlay(&ranges(&[(0, 7)]), 5, "n", "text of n");
        assert_eq!(region.entries(), [(0, 1, "n"), (2, 3, "newer"), (4, 7, "n")]);
    }

    #[test]
    fn an_event_inside_an_entry_splits_it_and_equal_times_go_to_the_later_write() {
        let mut region = IntervalRegion::new([entry(0, 9, 5, "a")]);
        region.overlay(&ranges(&[(4, 5)]), 5, "b", "text of b");
        assert_eq!(region.entries(), [(0, 3, "a"), (4, 5, "b"), (6, 9, "a")]);
        // Writing "a" again over the middle merges it back into one entry.
        region.overlay(&ranges(&[(4, 5)]), 6, "a", "text of a");
        assert_eq!(region.entries(), [(0, 9, "a")]);
    }

    #[test]
    fn several_ranges_and_touching_entries_of_one_event_merge() {
        let mut region = IntervalRegion::default();
        region.overlay(&ranges(&[(0, 2), (5, 6)]), 1, "a", "text of a");
        region.overlay(&ranges(&[(3, 4)]), 1, "a", "text of a");
        assert_eq!(region.entries(), [(0, 6, "a")]);
        region.overlay(&ranges(&[(u128::MAX - 1, u128::MAX)]), 2, "b", "text of b");
        assert_eq!(region.entries(), [(0, 6, "a"), (u128::MAX - 1, u128::MAX, "b")]);
    }

    #[test]
    fn keys_sort_as_positions() {
        assert!(padded(9) < padded(10) && padded(10) < padded(u128::MAX));
        assert_eq!(padded(u128::MAX).len(), POSITION_DIGITS);
    }
}
