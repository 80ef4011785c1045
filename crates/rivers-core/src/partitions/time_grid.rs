//! The grid of a time-window definition: window starts laid on the naive wall-clock timeline by
//! a cron expression or a fixed interval. There is no time zone, so daylight saving never skips
//! or repeats a window.
//!
//! Ticks are numbered from the first one at or after `start`. Grids whose every day matches (any
//! cron with `*` for day of month, month and weekday) and interval grids answer "tick number
//! `i`", "number of `t`" and "ticks before `t`" in O(1); other cron grids walk matching days.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Weekday};
use croner::parser::{CronParser, Seconds, Year};
use croner::{CronPattern, Weekday as CronWeekday};

const NANOS_PER_SECOND: i128 = 1_000_000_000;
/// A cron grid whose first tick is further than this from `start` never fires in practice.
const MAX_SEARCH_DAYS: u64 = 400 * 366;

/// Window starts of a time-window definition.
#[derive(Clone, Debug)]
pub(crate) struct TimeGrid {
    kind: GridKind,
    first: NaiveDateTime,
}

#[derive(Clone, Debug)]
enum GridKind {
    Cron(CronGrid),
    Interval { step_ns: i128 },
}

#[derive(Clone, Debug)]
struct CronGrid {
    /// Seconds after midnight at which windows start on a matching day, ascending.
    offsets: Vec<u32>,
    /// `None` when every day matches.
    days: Option<Box<CronPattern>>,
    /// The first tick's day and its index in `offsets`.
    first_day: NaiveDate,
    first_slot: usize,
}

impl TimeGrid {
    /// A cron grid (5 fields, or 6 with leading seconds) starting at `start`.
    pub(crate) fn cron(expression: &str, start: NaiveDateTime) -> Result<Self, String> {
        let parser = CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build();
        let cron = parser
            .parse(expression)
            .map_err(|e| format!("cron_schedule {expression:?} is not a valid cron expression: {e}"))?;
        let pattern = cron.pattern;
        let mut offsets = Vec::new();
        for hour in pattern.hours.values() {
            for minute in pattern.minutes.values() {
                for second in pattern.seconds.values() {
                    offsets.push(u32::from(hour) * 3600 + u32::from(minute) * 60 + u32::from(second));
                }
            }
        }
        offsets.sort_unstable();
        let every_day = pattern.is_dom_wildcard()
            && pattern.is_dow_wildcard()
            && pattern.months.values().len() == 12
            && !pattern.days.has_modifiers()
            && !pattern.days_of_week.has_modifiers();
        let days = (!every_day).then(|| Box::new(pattern));
        let mut grid = CronGrid { offsets, days, first_day: start.date(), first_slot: 0 };
        if grid.offsets.is_empty() {
            return Err(format!("cron_schedule {expression:?} never fires"));
        }
        let start_second = start.num_seconds_from_midnight();
        let same_day_slot = grid.offsets.partition_point(|&o| o < start_second);
        let (first_day, first_slot) = if grid.matches(start.date()) && same_day_slot < grid.offsets.len() {
            (start.date(), same_day_slot)
        } else {
            let next = grid
                .next_matching_day(start.date())
                .ok_or_else(|| format!("cron_schedule {expression:?} never fires after {start}"))?;
            (next, 0)
        };
        grid.first_day = first_day;
        grid.first_slot = first_slot;
        let first = grid.at(first_day, first_slot);
        Ok(Self { kind: GridKind::Cron(grid), first })
    }

    /// Windows of `step_ns` nanoseconds starting at `start`.
    pub(crate) fn interval(step_ns: i128, start: NaiveDateTime) -> Self {
        Self { kind: GridKind::Interval { step_ns }, first: start }
    }

    /// The first window start.
    pub(crate) fn first(&self) -> NaiveDateTime {
        self.first
    }

    /// Window start number `i` (0 is `first()`), or `None` past the calendar's range.
    pub(crate) fn tick(&self, i: u64) -> Option<NaiveDateTime> {
        match &self.kind {
            GridKind::Interval { step_ns } => from_nanos(nanos(self.first) + i128::from(i) * step_ns),
            GridKind::Cron(grid) => {
                let n = grid.offsets.len() as u64;
                let k = i + grid.first_slot as u64;
                let day = grid.nth_matching_day(k / n)?;
                Some(grid.at(day, (k % n) as usize))
            }
        }
    }

    /// The number of the window starting exactly at `t`, or `None` if no window starts there.
    pub(crate) fn index_of(&self, t: NaiveDateTime) -> Option<u64> {
        if t < self.first {
            return None;
        }
        match &self.kind {
            GridKind::Interval { step_ns } => {
                let offset = nanos(t) - nanos(self.first);
                (offset % step_ns == 0).then(|| (offset / step_ns) as u64)
            }
            GridKind::Cron(grid) => {
                if t.nanosecond() != 0 || !grid.matches(t.date()) {
                    return None;
                }
                let slot = grid.offsets.binary_search(&t.num_seconds_from_midnight()).ok()?;
                let days = grid.matching_days_before(t.date());
                Some(days * grid.offsets.len() as u64 + slot as u64 - grid.first_slot as u64)
            }
        }
    }

    /// How many windows start strictly before `limit`.
    pub(crate) fn count_before(&self, limit: NaiveDateTime) -> u64 {
        if limit <= self.first {
            return 0;
        }
        match &self.kind {
            GridKind::Interval { step_ns } => {
                let span = nanos(limit) - nanos(self.first);
                ((span + step_ns - 1) / step_ns) as u64
            }
            GridKind::Cron(grid) => {
                let day = limit.date();
                let on_day = if grid.matches(day) {
                    let time = limit.time();
                    let whole = time.num_seconds_from_midnight();
                    let exact = time.nanosecond() == 0;
                    grid.offsets.partition_point(|&o| o < whole || (!exact && o == whole)) as u64
                } else {
                    0
                };
                grid.matching_days_before(day) * grid.offsets.len() as u64 + on_day - grid.first_slot as u64
            }
        }
    }

    /// Window starts from number `from` on, in order.
    pub(crate) fn iter_from(&self, from: u64) -> impl Iterator<Item = NaiveDateTime> + '_ {
        let mut state = match &self.kind {
            GridKind::Interval { .. } => None,
            GridKind::Cron(grid) => {
                let n = grid.offsets.len() as u64;
                let k = from + grid.first_slot as u64;
                grid.nth_matching_day(k / n).map(|day| (grid, day, (k % n) as usize))
            }
        };
        let mut i = from;
        std::iter::from_fn(move || match &mut state {
            None => {
                let t = self.tick(i)?;
                i += 1;
                Some(t)
            }
            Some((grid, day, slot)) => {
                let t = grid.at(*day, *slot);
                *slot += 1;
                if *slot == grid.offsets.len() {
                    *slot = 0;
                    *day = grid.next_matching_day(*day)?;
                }
                Some(t)
            }
        })
    }
}

impl CronGrid {
    fn at(&self, day: NaiveDate, slot: usize) -> NaiveDateTime {
        let seconds = self.offsets[slot];
        day.and_time(NaiveTime::from_num_seconds_from_midnight_opt(seconds, 0).unwrap_or_default())
    }

    fn matches(&self, day: NaiveDate) -> bool {
        let Some(pattern) = &self.days else { return true };
        pattern.month_match(day.month()).unwrap_or(false)
            && pattern.day_match(day.year(), day.month(), day.day(), cron_weekday(day.weekday())).unwrap_or(false)
    }

    fn next_matching_day(&self, after: NaiveDate) -> Option<NaiveDate> {
        let mut day = after;
        for _ in 0..MAX_SEARCH_DAYS {
            day = day.succ_opt()?;
            if self.matches(day) {
                return Some(day);
            }
        }
        None
    }

    /// The `n`-th matching day from the first tick's day (which is number 0).
    fn nth_matching_day(&self, n: u64) -> Option<NaiveDate> {
        if self.days.is_none() {
            return self.first_day.checked_add_days(Days::new(n));
        }
        let mut day = self.first_day;
        for _ in 0..n {
            day = self.next_matching_day(day)?;
        }
        Some(day)
    }

    /// Matching days in `[first_day, day)`.
    fn matching_days_before(&self, day: NaiveDate) -> u64 {
        if day <= self.first_day {
            return 0;
        }
        if self.days.is_none() {
            return (day - self.first_day).num_days() as u64;
        }
        let mut count = 0;
        let mut current = self.first_day;
        while current < day {
            if self.matches(current) {
                count += 1;
            }
            match current.succ_opt() {
                Some(next) => current = next,
                None => break,
            }
        }
        count
    }
}

fn cron_weekday(day: Weekday) -> CronWeekday {
    match day {
        Weekday::Sun => CronWeekday::Sunday,
        Weekday::Mon => CronWeekday::Monday,
        Weekday::Tue => CronWeekday::Tuesday,
        Weekday::Wed => CronWeekday::Wednesday,
        Weekday::Thu => CronWeekday::Thursday,
        Weekday::Fri => CronWeekday::Friday,
        Weekday::Sat => CronWeekday::Saturday,
    }
}

/// Nanoseconds of a naive instant, read as if it were UTC.
pub(crate) fn nanos(t: NaiveDateTime) -> i128 {
    let utc = t.and_utc();
    i128::from(utc.timestamp()) * NANOS_PER_SECOND + i128::from(utc.timestamp_subsec_nanos())
}

pub(crate) fn from_nanos(ns: i128) -> Option<NaiveDateTime> {
    let seconds = i64::try_from(ns.div_euclid(NANOS_PER_SECOND)).ok()?;
    let sub = ns.rem_euclid(NANOS_PER_SECOND) as u32;
    DateTime::from_timestamp(seconds, sub).map(|t| t.naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d).unwrap().and_hms_opt(h, mi, s).unwrap()
    }

    #[test]
    fn every_day_cron_grids_are_regular() {
        let grid = TimeGrid::cron("0 * * * *", at(2024, 3, 1, 7, 30, 0)).unwrap();
        assert_eq!(grid.first(), at(2024, 3, 1, 8, 0, 0));
        assert_eq!(grid.tick(16), Some(at(2024, 3, 2, 0, 0, 0)));
        assert_eq!(grid.index_of(at(2024, 3, 2, 0, 0, 0)), Some(16));
        assert_eq!(grid.index_of(at(2024, 3, 2, 0, 30, 0)), None);
        assert_eq!(grid.count_before(at(2024, 3, 2, 0, 0, 0)), 16);
        assert_eq!(grid.count_before(at(2024, 3, 2, 0, 0, 1)), 17);
    }

    #[test]
    fn six_field_crons_have_second_resolution() {
        let grid = TimeGrid::cron("*/30 * * * * *", at(2024, 1, 1, 0, 0, 0)).unwrap();
        let ticks: Vec<_> = grid.iter_from(0).take(3).collect();
        assert_eq!(ticks, vec![at(2024, 1, 1, 0, 0, 0), at(2024, 1, 1, 0, 0, 30), at(2024, 1, 1, 0, 1, 0)]);
        assert_eq!(grid.index_of(at(2024, 1, 2, 0, 0, 0)), Some(2880));
    }

    #[test]
    fn weekly_and_monthly_grids_walk_matching_days() {
        let weekly = TimeGrid::cron("0 0 * * 1", at(2024, 1, 3, 0, 0, 0)).unwrap();
        assert_eq!(weekly.first(), at(2024, 1, 8, 0, 0, 0));
        assert_eq!(weekly.tick(2), Some(at(2024, 1, 22, 0, 0, 0)));
        assert_eq!(weekly.index_of(at(2024, 1, 22, 0, 0, 0)), Some(2));
        assert_eq!(weekly.count_before(at(2024, 1, 22, 0, 0, 0)), 2);
        let monthly = TimeGrid::cron("0 0 1 * *", at(2024, 1, 1, 0, 0, 0)).unwrap();
        let ticks: Vec<_> = monthly.iter_from(1).take(2).collect();
        assert_eq!(ticks, vec![at(2024, 2, 1, 0, 0, 0), at(2024, 3, 1, 0, 0, 0)]);
        assert_eq!(monthly.index_of(at(2025, 1, 1, 0, 0, 0)), Some(12));
    }

    #[test]
    fn weekday_names_sunday_as_seven_and_either_day_field_matching() {
        let sundays = TimeGrid::cron("0 0 * * 7", at(2024, 1, 1, 0, 0, 0)).unwrap();
        assert_eq!(sundays.first(), at(2024, 1, 7, 0, 0, 0));
        let named = TimeGrid::cron("0 0 * JAN SUN", at(2024, 1, 1, 0, 0, 0)).unwrap();
        assert_eq!(named.first(), at(2024, 1, 7, 0, 0, 0));
        // Day 15 or any Monday: both restricted, so either matches.
        let either = TimeGrid::cron("0 0 15 * 1", at(2024, 1, 9, 0, 0, 0)).unwrap();
        let ticks: Vec<_> = either.iter_from(0).take(3).collect();
        assert_eq!(ticks, vec![at(2024, 1, 15, 0, 0, 0), at(2024, 1, 22, 0, 0, 0), at(2024, 1, 29, 0, 0, 0)]);
    }

    #[test]
    fn interval_grids_allow_fractions_of_a_second() {
        let grid = TimeGrid::interval(250_000_000, at(2024, 1, 1, 0, 0, 0));
        assert_eq!(grid.tick(5), Some(at(2024, 1, 1, 0, 0, 1).with_nanosecond(250_000_000).unwrap()));
        assert_eq!(grid.index_of(at(2024, 1, 1, 0, 0, 2)), Some(8));
        assert_eq!(grid.count_before(at(2024, 1, 1, 0, 0, 2)), 8);
    }

    #[test]
    fn daylight_saving_days_have_24_hours_on_the_naive_timeline() {
        let grid = TimeGrid::cron("0 * * * *", at(2024, 3, 31, 0, 0, 0)).unwrap();
        assert_eq!(grid.count_before(at(2024, 4, 1, 0, 0, 0)), 24);
        assert_eq!(grid.tick(2), Some(at(2024, 3, 31, 2, 0, 0)));
    }

    #[test]
    fn bad_expressions_are_named() {
        let err = TimeGrid::cron("61 * * * *", at(2024, 1, 1, 0, 0, 0)).unwrap_err();
        assert!(err.contains("\"61 * * * *\""), "{err}");
        assert!(TimeGrid::cron("0 0 * * * * 2025", at(2024, 1, 1, 0, 0, 0)).is_err());
    }
}
