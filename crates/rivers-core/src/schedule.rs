//! Cron schedules in a time zone: when a schedule's next tick falls.
//!
//! Cron fields match the zone's local wall-clock time (UTC when no zone is given). A local time
//! that a daylight-saving jump skips does not fire; a local time that occurs twice fires once,
//! at its first occurrence. Ticks missed while nothing was running are not caught up: the
//! daemon asks for the next tick after now.

use chrono::{DateTime, LocalResult, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use crate::partitions::time_grid::TimeGrid;

/// Why a schedule's cron expression or time zone is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Not a cron expression of 5 or 6 fields, or one that never fires.
    #[error("{0}")]
    Cron(String),
    /// Not an IANA time zone name.
    #[error("unknown timezone {0:?}: use an IANA name such as \"Europe/Berlin\", or none for UTC")]
    Timezone(String),
}

/// A cron expression (5 fields, or 6 with leading seconds) evaluated in a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    zone: Tz,
}

impl CronSchedule {
    /// Parses `expression` for `timezone` (an IANA name; `None` is UTC).
    ///
    /// # Errors
    /// `Cron` for an expression with another number of fields, an unparsable field, or one
    /// that never fires; `Timezone` for an unknown zone.
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Self, ScheduleError> {
        let fields = expression.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(ScheduleError::Cron(format!(
                "cron_schedule {expression:?} has {fields} fields: use 5 (minute hour day month weekday) \
                 or 6 (second minute hour day month weekday)"
            )));
        }
        let checked_from = NaiveDate::from_ymd_opt(2000, 1, 1).and_then(|day| day.and_hms_opt(0, 0, 0));
        TimeGrid::cron(expression, checked_from.unwrap_or_default()).map_err(ScheduleError::Cron)?;
        let zone = match timezone {
            None => Tz::UTC,
            Some(name) => name.parse().map_err(|_| ScheduleError::Timezone(name.to_owned()))?,
        };
        Ok(Self { expression: expression.to_owned(), zone })
    }

    /// The expression, as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The zone cron fields are matched in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first tick strictly after `after`, in the schedule's zone; `None` when the
    /// expression never fires again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Tz>> {
        // Local wall-clock time can run backwards (a repeated hour), so the search starts a
        // little before `after`'s local time and skips ticks that are not after it.
        let local = after.with_timezone(&self.zone).naive_local() - TimeDelta::hours(3);
        let grid = TimeGrid::cron(&self.expression, local).ok()?;
        grid.iter_from(0).find_map(|tick| {
            let instant = match self.zone.from_local_datetime(&tick) {
                LocalResult::Single(instant) | LocalResult::Ambiguous(instant, _) => instant,
                LocalResult::None => return None,
            };
            (instant.with_timezone(&Utc) > after).then_some(instant)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn next(expression: &str, zone: Option<&str>, after: &str) -> String {
        CronSchedule::parse(expression, zone).unwrap().next_after(utc(after)).unwrap().to_rfc3339()
    }

    #[test]
    fn five_fields_fire_at_second_zero_strictly_after_the_instant() {
        assert_eq!(next("0 3 * * *", None, "2025-06-01T02:59:59Z"), "2025-06-01T03:00:00+00:00");
        assert_eq!(next("0 3 * * *", None, "2025-06-01T03:00:00Z"), "2025-06-02T03:00:00+00:00");
    }

    #[test]
    fn six_fields_lead_with_seconds_and_accept_weekday_names() {
        assert_eq!(next("*/15 * * * * *", None, "2025-06-01T12:00:07Z"), "2025-06-01T12:00:15+00:00");
        // Friday 2025-06-06 after six: the next weekday six o'clock is Monday's.
        assert_eq!(next("0 0 6 * * MON-FRI", None, "2025-06-06T07:00:00Z"), "2025-06-09T06:00:00+00:00");
    }

    #[test]
    fn fields_match_local_time_in_the_zone() {
        assert_eq!(next("0 9 * * *", Some("Europe/Berlin"), "2025-06-01T00:00:00Z"), "2025-06-01T09:00:00+02:00");
    }

    #[test]
    fn a_local_time_a_daylight_saving_jump_skips_does_not_fire() {
        // 2025-03-30 02:30 does not exist in Berlin (02:00 CET jumps to 03:00 CEST).
        assert_eq!(next("30 2 * * *", Some("Europe/Berlin"), "2025-03-29T12:00:00Z"), "2025-03-31T02:30:00+02:00");
    }

    #[test]
    fn a_repeated_local_time_fires_once() {
        // 2025-10-26 02:30 occurs twice in Berlin (CEST, then CET): only the first fires.
        let first = next("30 2 * * *", Some("Europe/Berlin"), "2025-10-25T12:00:00Z");
        assert_eq!(first, "2025-10-26T02:30:00+02:00");
        assert_eq!(next("30 2 * * *", Some("Europe/Berlin"), &first), "2025-10-27T02:30:00+01:00");
    }

    #[test]
    fn bad_expressions_and_zones_are_refused_naming_the_fix() {
        let four = CronSchedule::parse("* * * *", None).unwrap_err();
        assert!(matches!(&four, ScheduleError::Cron(why) if why.contains("4 fields")), "{four}");
        assert!(matches!(CronSchedule::parse("61 * * * *", None), Err(ScheduleError::Cron(_))));
        assert!(matches!(CronSchedule::parse("0 0 30 2 *", None), Err(ScheduleError::Cron(_))), "never fires");
        let zone = CronSchedule::parse("0 3 * * *", Some("Mars/Olympus")).unwrap_err();
        assert_eq!(zone, ScheduleError::Timezone("Mars/Olympus".into()));
        assert!(zone.to_string().contains("IANA"));
    }
}
