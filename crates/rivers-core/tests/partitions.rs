//! Partitions: definitions, keys, key ranges, mappings and position range sets, exercised
//! through the public `rivers_core::partitions` API.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use rivers_core::Error;
use rivers_core::partitions::{
    Coords, DAILY_FORMAT, DEFAULT_TIME_FORMAT, DimSelection, DynamicKeys, HOURLY_FORMAT, KeySelector, MappedInput,
    PartitionEnv, PartitionKey, PartitionKeyRange, PartitionMapping, Partitions, PartitionsData, PartitionsKind,
    RangeSet, check_edge, effective_mapping, map_keys,
};

// ---- helpers -------------------------------------------------------------------------------

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d).unwrap().and_hms_opt(h, mi, s).unwrap()
}

fn day(y: i32, mo: u32, d: u32) -> NaiveDateTime {
    at(y, mo, d, 0, 0, 0)
}

/// A clock far after every closed grid used here.
fn env() -> PartitionEnv {
    PartitionEnv::at(day(2030, 1, 1))
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

fn static_(keys: &[&str]) -> Partitions {
    Partitions::static_(strings(keys)).unwrap()
}

fn daily(start: NaiveDateTime, end: Option<NaiveDateTime>) -> Partitions {
    Partitions::daily(start, end, None).unwrap()
}

fn cron(start: NaiveDateTime, expression: &str, end: Option<NaiveDateTime>, fmt: Option<&str>) -> Partitions {
    Partitions::time_window(start, Some(expression.into()), None, end, fmt.map(str::to_owned)).unwrap()
}

fn interval(start: NaiveDateTime, seconds: f64, end: Option<NaiveDateTime>, fmt: Option<&str>) -> Partitions {
    Partitions::time_window(start, None, Some(seconds), end, fmt.map(str::to_owned)).unwrap()
}

fn multi(dimensions: Vec<(&str, Partitions)>) -> Partitions {
    Partitions::multi(dimensions.into_iter().map(|(n, d)| (n.to_owned(), d)).collect()).unwrap()
}

fn mkey(pairs: &[(&str, &[&str])]) -> PartitionKey {
    PartitionKey::Multi(pairs.iter().map(|(d, vs)| ((*d).to_owned(), strings(vs))).collect())
}

fn dynamic_keys(entries: &[(&str, u64)]) -> DynamicKeys {
    DynamicKeys::new(entries.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect())
}

/// Display forms of every current key, in enumeration order.
fn keys_of(p: &Partitions, env: &PartitionEnv) -> Vec<String> {
    p.all_coords(env).iter().map(|c| p.key_of(c, env).unwrap().to_string()).collect()
}

/// Display forms of the given individual partitions.
fn texts(p: &Partitions, coords: &[Coords], env: &PartitionEnv) -> Vec<String> {
    coords.iter().map(|c| p.key_of(c, env).unwrap().to_string()).collect()
}

fn coords_of(p: &Partitions, key: &str, env: &PartitionEnv) -> Coords {
    let key = if matches!(p, Partitions::Multi(_)) {
        PartitionKey::parse_display(key, true).unwrap()
    } else {
        PartitionKey::single(key)
    };
    let mut all = p.individuals(&key, env).unwrap();
    assert_eq!(all.len(), 1, "{key} is not an individual partition");
    all.remove(0)
}

#[track_caller]
fn definition_error(result: rivers_core::Result<Partitions>) -> String {
    match result {
        Err(Error::PartitionDefinition(message)) => message,
        Err(other) => panic!("expected a partition definition error, got {other:?}"),
        Ok(p) => panic!("expected a partition definition error, got {p:?}"),
    }
}

fn windows(p: &Partitions) -> &rivers_core::partitions::TimeWindowPartitions {
    match p {
        Partitions::TimeWindow(t) => t,
        other => panic!("not a time window definition: {other:?}"),
    }
}

/// Mapped upstream keys in display form; `None` for `Whole`/`Nothing`.
fn mapped(result: Result<MappedInput, String>, up: &Partitions, env: &PartitionEnv) -> Vec<String> {
    match result.unwrap() {
        MappedInput::Partitions(coords) => texts(up, &coords, env),
        other => panic!("expected upstream partitions, got {other:?}"),
    }
}

// ---- construction --------------------------------------------------------------------------

#[test]
fn static_construction_errors() {
    assert!(definition_error(Partitions::static_(vec![])).contains("at least one key"));
    assert!(definition_error(Partitions::static_(strings(&[""]))).contains("empty"));
    assert!(definition_error(Partitions::static_(strings(&["a|b"]))).contains("'a|b'"));
    assert!(definition_error(Partitions::static_(strings(&["a,b"]))).contains("'a,b'"));
    assert!(definition_error(Partitions::static_(strings(&["ok", ""]))).contains("empty"));
    let message = definition_error(Partitions::static_(strings(&["a", "b", "a"])));
    assert!(message.contains("'a'") && message.contains("twice"), "{message}");
}

#[test]
fn static_keys_keep_positional_order() {
    let p = static_(&["b", "a"]);
    assert_eq!(p.kind(), PartitionsKind::Static);
    assert_eq!(keys_of(&p, &env()), ["b", "a"]);
    let keys: Vec<PartitionKey> = p.all_coords(&env()).iter().map(|c| p.key_of(c, &env()).unwrap()).collect();
    assert_eq!(keys, [PartitionKey::single("b"), PartitionKey::single("a")]);
    let Partitions::Static(s) = &p else { unreachable!() };
    assert_eq!(s.keys(), ["b", "a"]);
    assert_eq!(s.index_of("a"), Some(1));
}

#[test]
fn time_window_needs_exactly_one_grid() {
    let start = day(2024, 1, 1);
    let both = Partitions::time_window(start, Some("0 0 * * *".into()), Some(60.0), None, None);
    assert!(definition_error(both).contains("exactly one"));
    let neither = Partitions::time_window(start, None, None, None, None);
    assert!(definition_error(neither).contains("exactly one"));
}

#[test]
fn interval_must_be_positive_finite_and_at_least_a_nanosecond() {
    let start = day(2024, 1, 1);
    for bad in [0.0, -1.0, -0.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e-10, 4e-10] {
        let message = definition_error(Partitions::time_window(start, None, Some(bad), None, None));
        assert!(message.contains("interval_seconds"), "{bad}: {message}");
    }
}

#[test]
fn cron_start_must_be_on_a_whole_second() {
    let start = at(2024, 1, 1, 0, 0, 0) + TimeDelta::microseconds(5);
    let message = definition_error(Partitions::time_window(start, Some("0 0 * * *".into()), None, None, None));
    assert!(message.contains("whole second"), "{message}");
    assert!(definition_error(Partitions::daily(start, None, None)).contains("whole second"));
    assert!(definition_error(Partitions::hourly(start, None, None)).contains("whole second"));
    // Interval grids may start anywhere.
    interval(start, 60.0, None, Some("%Y-%m-%dT%H:%M:%S.%f"));
}

#[test]
fn invalid_cron_expressions_are_rejected() {
    let start = day(2024, 1, 1);
    for expression in ["61 * * * *", "not a cron", "* * *", "0 0 32 * *", "0 0 * * * * 2025"] {
        let message = definition_error(Partitions::time_window(start, Some(expression.into()), None, None, None));
        assert!(message.contains("cron"), "{expression}: {message}");
    }
}

#[test]
fn end_must_come_after_start() {
    let start = day(2024, 1, 5);
    assert!(definition_error(Partitions::daily(start, Some(start), None)).contains("must come after"));
    assert!(definition_error(Partitions::daily(start, Some(day(2024, 1, 1)), None)).contains("must come after"));
    let message = definition_error(Partitions::time_window(start, None, Some(60.0), Some(start), None));
    assert!(message.contains("must come after"), "{message}");
}

#[test]
fn formats_must_round_trip() {
    let start = day(2024, 1, 1);
    // R8 examples.
    let hourly = definition_error(Partitions::hourly(start, None, Some("%Y-%m-%d".into())));
    assert!(hourly.contains("cannot tell windows apart"), "{hourly}");
    let daily = definition_error(Partitions::daily(start, None, Some("%Y-%m".into())));
    assert!(daily.contains("cannot tell windows apart"), "{daily}");
    cron(start, "0 0 1 * *", None, Some("%Y-%m"));
    // Drifting interval grid: 31 days lands on 2024-03-03, which "%Y-%m" cannot name.
    let drifting = Partitions::time_window(start, None, Some(31.0 * 86400.0), None, Some("%Y-%m".into()));
    let message = definition_error(drifting);
    assert!(message.contains("2024-03-03"), "{message}");
    // The same drift is caught even when the grid is closed after a few windows.
    let closed =
        Partitions::time_window(start, None, Some(31.0 * 86400.0), Some(day(2024, 4, 1)), Some("%Y-%m".into()));
    definition_error(closed);
    // A closed grid that stops before the drift is fine.
    interval(start, 31.0 * 86400.0, Some(day(2024, 2, 2)), Some("%Y-%m"));
    // Unsupported directives are named.
    assert!(definition_error(Partitions::daily(start, None, Some("%Y-%b-%d".into()))).contains("%b"));
    assert!(definition_error(Partitions::daily(start, None, Some("%Y-%m-%d%".into()))).contains("'%'"));
}

#[test]
fn formats_rendering_reserved_characters_are_rejected() {
    let start = day(2024, 1, 1);
    for fmt in ["%Y|%m|%d", "%Y,%m,%d", "day %d, %m %Y"] {
        let message = definition_error(Partitions::daily(start, None, Some(fmt.into())));
        assert!(message.contains("'|' or ','"), "{fmt}: {message}");
    }
}

#[test]
fn multi_construction_errors() {
    assert!(definition_error(Partitions::multi(vec![])).contains("at least one dimension"));
    let nested = multi(vec![("a", static_(&["x"]))]);
    let message = definition_error(Partitions::multi(vec![("outer".into(), nested)]));
    assert!(message.contains("flatten"), "{message}");
    for bad in ["", "a|b", "a,b", "a=b"] {
        let message = definition_error(Partitions::multi(vec![(bad.into(), static_(&["x"]))]));
        assert!(message.contains("dimension name"), "{bad:?}: {message}");
    }
    let twice = Partitions::multi(vec![("a".into(), static_(&["x"])), ("a".into(), static_(&["y"]))]);
    assert!(definition_error(twice).contains("twice"));
    // One dimension, and several of one kind, are fine.
    multi(vec![("only", static_(&["x"]))]);
    multi(vec![
        ("d1", daily(day(2024, 1, 1), None)),
        ("d2", daily(day(2024, 1, 1), None)),
        ("t1", Partitions::dynamic("a".into()).unwrap()),
        ("t2", Partitions::dynamic("b".into()).unwrap()),
    ]);
}

#[test]
fn dynamic_needs_a_name() {
    assert!(definition_error(Partitions::dynamic(String::new())).contains("non-empty name"));
    let p = Partitions::dynamic("tenants".into()).unwrap();
    assert_eq!(p.kind(), PartitionsKind::Dynamic);
    let Partitions::Dynamic(d) = &p else { unreachable!() };
    assert_eq!(d.name, "tenants");
    // No storage in the environment: no keys.
    assert_eq!(p.count(&env()), 0);
    assert!(p.all_coords(&env()).is_empty());
}

#[test]
fn factory_defaults() {
    let start = day(2024, 1, 1);
    let d = Partitions::daily(start, None, None).unwrap();
    let t = windows(&d);
    assert_eq!(t.cron_schedule.as_deref(), Some("0 0 * * *"));
    assert_eq!(t.interval_seconds, None);
    assert_eq!(t.fmt, "%Y-%m-%d");
    assert_eq!(t.fmt, DAILY_FORMAT);
    assert_eq!((t.start, t.end), (start, None));

    let h = Partitions::hourly(start, Some(day(2024, 1, 2)), None).unwrap();
    let t = windows(&h);
    assert_eq!(t.cron_schedule.as_deref(), Some("0 * * * *"));
    assert_eq!(t.interval_seconds, None);
    assert_eq!(t.fmt, "%Y-%m-%dT%H:00");
    assert_eq!(t.fmt, HOURLY_FORMAT);
    assert_eq!(t.end, Some(day(2024, 1, 2)));
    assert_eq!(keys_of(&h, &env())[7], "2024-01-01T07:00");

    let w = Partitions::time_window(start, Some("0 */6 * * *".into()), None, None, None).unwrap();
    assert_eq!(windows(&w).fmt, "%Y-%m-%dT%H:%M:%S");
    assert_eq!(windows(&w).fmt, DEFAULT_TIME_FORMAT);
    let i = Partitions::time_window(start, None, Some(2700.0), None, None).unwrap();
    assert_eq!(windows(&i).cron_schedule, None);
    assert_eq!(windows(&i).interval_seconds, Some(2700.0));
    assert_eq!(windows(&i).fmt, DEFAULT_TIME_FORMAT);

    let custom = Partitions::daily(start, None, Some("%Y%m%d".into())).unwrap();
    assert_eq!(windows(&custom).fmt, "%Y%m%d");
    assert_eq!(custom.kind(), PartitionsKind::TimeWindow);
}

#[test]
fn definitions_compare_by_value() {
    let start = day(2024, 1, 1);
    assert_eq!(daily(start, None), daily(start, None));
    assert_ne!(daily(start, None), daily(start, Some(day(2024, 2, 1))));
    assert_ne!(daily(start, None), Partitions::hourly(start, None, None).unwrap());
    assert_eq!(static_(&["a", "b"]), static_(&["a", "b"]));
    assert_ne!(static_(&["a", "b"]), static_(&["b", "a"]));
    assert_eq!(multi(vec![("x", static_(&["a"]))]), multi(vec![("x", static_(&["a"]))]));
}

// ---- time grids ----------------------------------------------------------------------------

#[test]
fn end_is_exclusive_on_window_starts() {
    let p = daily(day(2024, 1, 1), Some(day(2024, 1, 5)));
    assert_eq!(keys_of(&p, &env()), ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]);
    assert!(p.validate(&PartitionKey::single("2024-01-04"), &env()));
    assert!(!p.validate(&PartitionKey::single("2024-01-05"), &env()));
    // An end inside a window still admits that window's start.
    let p = daily(day(2024, 1, 1), Some(at(2024, 1, 3, 0, 0, 1)));
    assert_eq!(keys_of(&p, &env()), ["2024-01-01", "2024-01-02", "2024-01-03"]);
}

#[test]
fn compact_daily_format_example() {
    let days = Partitions::daily(day(2023, 6, 1), Some(day(2023, 6, 8)), Some("%Y%m%d".into())).unwrap();
    let keys = keys_of(&days, &env());
    assert_eq!(keys[..2], ["20230601", "20230602"]);
    assert_eq!(keys.len(), 7);
    assert!(days.validate(&PartitionKey::single("20230607"), &env()));
    assert!(!days.validate(&PartitionKey::single("20230608"), &env()));
    assert!(!days.validate(&PartitionKey::single("2023-06-07"), &env()));
}

#[test]
fn daily_and_hourly_start_at_the_next_boundary() {
    let d = daily(at(2024, 1, 1, 10, 0, 0), Some(day(2024, 1, 4)));
    assert_eq!(keys_of(&d, &env()), ["2024-01-02", "2024-01-03"]);
    assert_eq!(windows(&d).first_start(), day(2024, 1, 2));
    let h = Partitions::hourly(at(2024, 1, 1, 7, 30, 0), Some(at(2024, 1, 1, 10, 0, 0)), None).unwrap();
    assert_eq!(keys_of(&h, &env()), ["2024-01-01T08:00", "2024-01-01T09:00"]);
}

#[test]
fn five_and_six_field_crons() {
    let start = day(2024, 1, 1);
    let seconds = cron(start, "*/30 * * * * *", Some(at(2024, 1, 1, 0, 2, 0)), None);
    assert_eq!(
        keys_of(&seconds, &env()),
        ["2024-01-01T00:00:00", "2024-01-01T00:00:30", "2024-01-01T00:01:00", "2024-01-01T00:01:30"]
    );
    let minutes = cron(start, "*/15 * * * *", Some(at(2024, 1, 1, 1, 0, 0)), None);
    assert_eq!(
        keys_of(&minutes, &env()),
        ["2024-01-01T00:00:00", "2024-01-01T00:15:00", "2024-01-01T00:30:00", "2024-01-01T00:45:00"]
    );
    // A 5-field cron fires at second 0 only.
    assert!(!minutes.validate(&PartitionKey::single("2024-01-01T00:15:30"), &env()));
    assert!(minutes.validate(&PartitionKey::single("2024-01-01T00:15:00"), &env()));
}

#[test]
fn seconds_level_grids_enumerate_at_second_spacing() {
    let start = at(2024, 5, 1, 12, 0, 0);
    let every_15 = cron(start, "*/15 * * * * *", Some(at(2024, 5, 1, 13, 0, 0)), None);
    assert_eq!(every_15.count(&env()), 240);
    let starts: Vec<NaiveDateTime> = windows(&every_15).starts_from(0).take(240).collect();
    assert!(starts.windows(2).all(|w| w[1] - w[0] == TimeDelta::seconds(15)));
    let every_second = cron(start, "* * * * * *", Some(at(2024, 5, 1, 12, 1, 0)), None);
    assert_eq!(every_second.count(&env()), 60);
    assert_eq!(every_second.key_of(&[59], &env()).unwrap().to_string(), "2024-05-01T12:00:59");
    assert_eq!(windows(&every_second).window(3), Some((at(2024, 5, 1, 12, 0, 3), at(2024, 5, 1, 12, 0, 4))));
}

#[test]
fn coarse_grids_through_cron_and_coarse_formats() {
    let weekly = cron(day(2024, 1, 1), "0 0 * * 1", Some(day(2024, 2, 1)), Some("%Y-%m-%d"));
    assert_eq!(keys_of(&weekly, &env()), ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22", "2024-01-29"]);
    assert!(!weekly.validate(&PartitionKey::single("2024-01-02"), &env()));
    assert_eq!(windows(&weekly).window(0), Some((day(2024, 1, 1), day(2024, 1, 8))));

    let monthly = cron(day(2024, 1, 1), "0 0 1 * *", Some(day(2025, 1, 1)), Some("%Y-%m"));
    let keys = keys_of(&monthly, &env());
    assert_eq!(keys.len(), 12);
    assert_eq!((keys[0].as_str(), keys[11].as_str()), ("2024-01", "2024-12"));
    assert!(monthly.validate(&PartitionKey::single("2024-05"), &env()));
    assert!(!monthly.validate(&PartitionKey::single("2025-01"), &env()));
    assert!(!monthly.validate(&PartitionKey::single("2024-13"), &env()));
    assert_eq!(windows(&monthly).window(1), Some((day(2024, 2, 1), day(2024, 3, 1))));

    let yearly = cron(day(2020, 1, 1), "0 0 1 1 *", Some(day(2025, 1, 1)), Some("%Y"));
    assert_eq!(keys_of(&yearly, &env()), ["2020", "2021", "2022", "2023", "2024"]);

    let six_hours = cron(day(2024, 1, 1), "0 */6 * * *", Some(day(2024, 1, 2)), None);
    assert_eq!(six_hours.count(&env()), 4);
    assert_eq!(keys_of(&six_hours, &env())[3], "2024-01-01T18:00:00");

    let every_45 = interval(day(2024, 1, 1), 2700.0, Some(day(2024, 1, 2)), None);
    assert_eq!(every_45.count(&env()), 32);
    assert_eq!(keys_of(&every_45, &env())[..3], ["2024-01-01T00:00:00", "2024-01-01T00:45:00", "2024-01-01T01:30:00"]);

    // Monthly grid with a format whose text order is not chronological: still ordered by time.
    let dotted = cron(day(2023, 11, 1), "0 0 1 * *", Some(day(2024, 3, 1)), Some("%m.%Y"));
    assert_eq!(keys_of(&dotted, &env()), ["11.2023", "12.2023", "01.2024", "02.2024"]);
}

#[test]
fn sub_second_interval_grids_need_a_fine_format() {
    let start = day(2024, 1, 1);
    let fine = interval(start, 0.25, Some(at(2024, 1, 1, 0, 0, 1)), Some("%Y-%m-%dT%H:%M:%S.%f"));
    assert_eq!(
        keys_of(&fine, &env()),
        [
            "2024-01-01T00:00:00.000000",
            "2024-01-01T00:00:00.250000",
            "2024-01-01T00:00:00.500000",
            "2024-01-01T00:00:00.750000"
        ]
    );
    assert!(fine.validate(&PartitionKey::single("2024-01-01T00:00:00.500000"), &env()));
    assert!(!fine.validate(&PartitionKey::single("2024-01-01T00:00:00.100000"), &env()));
    let message = definition_error(Partitions::time_window(start, None, Some(0.25), None, None));
    assert!(message.contains("cannot tell windows apart"), "{message}");
    // Microsecond intervals fit %f; nanosecond ones do not.
    interval(start, 0.0005, None, Some("%H:%M:%S.%f %Y-%m-%d"));
    definition_error(Partitions::time_window(start, None, Some(5e-7), None, Some("%Y-%m-%dT%H:%M:%S.%f".into())));
}

#[test]
fn daylight_saving_days_have_24_hourly_keys() {
    for (y, m, d) in [(2024, 3, 31), (2024, 10, 27), (2024, 3, 10), (2024, 11, 3)] {
        let start = day(y, m, d);
        let p = Partitions::hourly(start, Some(start + TimeDelta::days(1)), None).unwrap();
        let keys = keys_of(&p, &env());
        let expected: Vec<String> = (0..24).map(|h| format!("{y:04}-{m:02}-{d:02}T{h:02}:00")).collect();
        assert_eq!(keys, expected, "{y}-{m}-{d}");
        assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), 24);
        // The same day seen through an open-ended grid that started earlier.
        let open = Partitions::hourly(start - TimeDelta::days(2), None, None).unwrap();
        let env = PartitionEnv::at(start + TimeDelta::days(1));
        assert_eq!(open.count(&env), 3 * 24 + 1);
        let day_keys: Vec<String> = (48..72).map(|i| open.dim_value(i, &env).unwrap()).collect();
        assert_eq!(day_keys, expected);
        for (i, key) in expected.iter().enumerate() {
            assert_eq!(open.dim_index(key, &env), Some(48 + i as u64));
        }
    }
}

#[test]
fn open_ended_grids_include_the_window_in_progress() {
    let p = daily(day(2024, 1, 1), None);
    assert_eq!(p.count(&PartitionEnv::at(at(2024, 1, 10, 12, 0, 0))), 10);
    assert_eq!(p.count(&PartitionEnv::at(day(2024, 1, 10))), 10);
    assert_eq!(p.count(&PartitionEnv::at(at(2024, 1, 9, 23, 59, 59))), 9);
    assert_eq!(p.count(&PartitionEnv::at(at(2023, 12, 31, 23, 0, 0))), 0);
    let now = PartitionEnv::at(at(2024, 1, 10, 12, 0, 0));
    assert_eq!(keys_of(&p, &now).last().map(String::as_str), Some("2024-01-10"));
    assert!(p.validate(&PartitionKey::single("2024-01-10"), &now));
    assert!(!p.validate(&PartitionKey::single("2024-01-11"), &now));

    let h = Partitions::hourly(day(2024, 1, 1), None, None).unwrap();
    assert_eq!(h.count(&PartitionEnv::at(at(2024, 1, 1, 5, 30, 0))), 6);
    assert_eq!(h.count(&PartitionEnv::at(at(2024, 1, 1, 5, 0, 0))), 6);
    let just_before = at(2024, 1, 1, 5, 0, 0) - TimeDelta::nanoseconds(1);
    assert_eq!(h.count(&PartitionEnv::at(just_before)), 5);

    let fine = interval(day(2024, 1, 1), 0.5, None, Some("%Y-%m-%dT%H:%M:%S.%f"));
    assert_eq!(fine.count(&PartitionEnv::at(at(2024, 1, 1, 0, 0, 1))), 3);
    assert_eq!(fine.count(&PartitionEnv::at(at(2024, 1, 1, 0, 0, 1) - TimeDelta::microseconds(1))), 2);

    let weekly = cron(day(2024, 1, 1), "0 0 * * 1", None, Some("%Y-%m-%d"));
    assert_eq!(weekly.count(&PartitionEnv::at(day(2024, 1, 15))), 3);
    assert_eq!(weekly.count(&PartitionEnv::at(at(2024, 1, 21, 23, 0, 0))), 3);
}

#[test]
fn a_minutely_grid_with_more_than_a_million_keys() {
    let start = day(2024, 1, 1);
    let p = cron(start, "* * * * *", None, None);
    let now = at(2026, 11, 28, 12, 34, 56);
    let env = PartitionEnv::at(now);
    // 2024 (366 days) + 2025 (365) + 2026 up to 28 November (331), then 12:34 of the last day,
    // plus the window in progress.
    let expected = (366 + 365 + 331) * 1440 + 12 * 60 + 34 + 1;
    assert_eq!(expected as i64, (now - start).num_minutes() + 1);
    assert_eq!(p.count(&env), expected);
    assert!(p.count(&env) > 1_000_000);

    let key = p.dim_value(1_000_000, &env).unwrap();
    let expected_key = (start + TimeDelta::minutes(1_000_000)).format("%Y-%m-%dT%H:%M:%S").to_string();
    assert_eq!(key, expected_key);
    assert_eq!(p.dim_index(&key, &env), Some(1_000_000));
    assert_eq!(p.key_of(&[1_000_000], &env), Some(PartitionKey::single(key.clone())));
    assert_eq!(p.individuals(&PartitionKey::single(key.clone()), &env).unwrap(), [vec![1_000_000]]);
    assert_eq!(p.position(&[1_000_000], &env), Some(1_000_000));
    assert_eq!(p.coords_at(1_000_000, &env), Some(vec![1_000_000]));
    assert!(p.validate(&PartitionKey::single(key), &env));

    let last = p.dim_value(expected - 1, &env).unwrap();
    assert_eq!(last, "2026-11-28T12:34:00");
    assert_eq!(p.dim_value(expected, &env), None);
    assert_eq!(p.dim_index("2026-11-28T12:35:00", &env), None);
    let next: Vec<String> = windows(&p).keys_from(999_999).take(3).collect();
    assert_eq!(next[1], p.dim_value(1_000_000, &env).unwrap());

    // Counting and indexing do not walk the grid: a second-level grid over years answers too.
    let seconds = cron(start, "* * * * * *", None, None);
    let expected_seconds = (now - start).num_seconds() as u64 + 1;
    assert_eq!(seconds.count(&env), expected_seconds);
    assert_eq!(seconds.dim_index("2026-01-01T00:00:00", &env), Some((day(2026, 1, 1) - start).num_seconds() as u64));
}

// ---- validation ----------------------------------------------------------------------------

#[test]
fn validation_rejects_without_raising() {
    let env = env();
    // Off-grid instants that parse.
    let hourly = cron(day(2024, 1, 1), "0 * * * *", None, None);
    assert!(hourly.validate(&PartitionKey::single("2024-01-01T07:00:00"), &env));
    assert!(!hourly.validate(&PartitionKey::single("2024-01-01T07:30:00"), &env));
    let default_hourly = Partitions::hourly(day(2024, 1, 1), None, None).unwrap();
    assert!(!default_hourly.validate(&PartitionKey::single("2024-01-01T07:30"), &env));
    let every_45 = interval(day(2024, 1, 1), 2700.0, None, None);
    assert!(every_45.validate(&PartitionKey::single("2024-01-01T00:45:00"), &env));
    assert!(!every_45.validate(&PartitionKey::single("2024-01-01T00:30:00"), &env));
    // Before the first window, at and after the end.
    let closed = daily(day(2024, 1, 1), Some(day(2024, 2, 1)));
    assert!(!closed.validate(&PartitionKey::single("2023-12-31"), &env));
    assert!(closed.validate(&PartitionKey::single("2024-01-31"), &env));
    assert!(!closed.validate(&PartitionKey::single("2024-02-01"), &env));
    assert!(!closed.validate(&PartitionKey::single("2024-03-01"), &env));
    // Text that does not parse.
    for bad in ["garbage", "", "2024-1-05", "2024-02-30", "2024-01-05x", "2024-01-05,2024-01-06"] {
        assert!(!closed.validate(&PartitionKey::single(bad), &env), "{bad:?}");
    }
    // Multi-valued single keys: every value must be valid.
    assert!(closed.validate(&PartitionKey::Single(strings(&["2024-01-02", "2024-01-03"])), &env));
    assert!(!closed.validate(&PartitionKey::Single(strings(&["2024-01-02", "2024-02-03"])), &env));
    // Static.
    let s = static_(&["a", "b"]);
    assert!(s.validate(&PartitionKey::single("a"), &env));
    assert!(!s.validate(&PartitionKey::single("zz"), &env));
    assert!(!s.validate(&PartitionKey::single("a,b"), &env));
    assert!(s.validate(&PartitionKey::Single(strings(&["b", "a"])), &env));
}

#[test]
fn validation_of_key_shapes() {
    let env = env();
    let s = static_(&["a", "b"]);
    let m = multi(vec![("d", daily(day(2024, 1, 1), Some(day(2024, 1, 3)))), ("r", static_(&["a", "b"]))]);
    // Single against multi, multi against single.
    assert!(!m.validate(&PartitionKey::single("a"), &env));
    assert!(!m.validate(&PartitionKey::single("d=2024-01-01|r=a"), &env));
    assert!(!s.validate(&mkey(&[("x", &["a"])]), &env));
    // Dimension names must match exactly.
    assert!(m.validate(&mkey(&[("d", &["2024-01-01"]), ("r", &["a"])]), &env));
    assert!(m.validate(&mkey(&[("r", &["b", "a"]), ("d", &["2024-01-02", "2024-01-01"])]), &env));
    assert!(!m.validate(&mkey(&[("d", &["2024-01-01"])]), &env));
    assert!(!m.validate(&mkey(&[("d", &["2024-01-01"]), ("r", &["a"]), ("x", &["a"])]), &env));
    assert!(!m.validate(&mkey(&[("d", &["2024-01-01"]), ("q", &["a"])]), &env));
    assert!(!m.validate(&mkey(&[("d", &["2024-01-03"]), ("r", &["a"])]), &env));
    assert!(!m.validate(&mkey(&[("d", &["2024-01-01"]), ("r", &["a", "c"])]), &env));
    // Key sets: every member.
    let set = PartitionKey::Set(vec![
        mkey(&[("d", &["2024-01-01"]), ("r", &["a"])]),
        mkey(&[("d", &["2024-01-02"]), ("r", &["b"])]),
    ]);
    assert!(m.validate(&set, &env));
    let bad_set = PartitionKey::Set(vec![mkey(&[("d", &["2024-01-01"]), ("r", &["a"])]), PartitionKey::single("a")]);
    assert!(!m.validate(&bad_set, &env));
}

#[test]
fn dynamic_accepts_any_well_formed_value() {
    let env = env();
    let p = Partitions::dynamic("tenants".into()).unwrap();
    assert!(p.validate(&PartitionKey::single("never-registered"), &env));
    assert!(p.validate(&PartitionKey::Single(strings(&["x", "y"])), &env));
    assert!(!p.validate(&PartitionKey::single(""), &env));
    assert!(!p.validate(&PartitionKey::single("a|b"), &env));
    assert!(!p.validate(&PartitionKey::single("a,b"), &env));
    assert!(!p.validate(&mkey(&[("tenants", &["x"])]), &env));
    // Inside a multi too.
    let m = multi(vec![("tenant", p), ("r", static_(&["a"]))]);
    assert!(m.validate(&mkey(&[("tenant", &["anyone"]), ("r", &["a"])]), &env));
    assert!(!m.validate(&mkey(&[("tenant", &["any|one"]), ("r", &["a"])]), &env));
}

// ---- multi enumeration and positions -------------------------------------------------------

fn shop_day_tenant() -> Partitions {
    multi(vec![
        ("shop", static_(&["z", "x", "y"])),
        ("day", daily(day(2024, 1, 1), Some(day(2024, 1, 3)))),
        ("tenant", Partitions::dynamic("tenants".into()).unwrap()),
    ])
}

fn tenants_env(entries: &[(&str, u64)]) -> PartitionEnv {
    env().with_dynamic("tenants", dynamic_keys(entries))
}

#[test]
fn multi_enumerates_with_the_first_dimension_slowest() {
    let p = shop_day_tenant();
    let env = tenants_env(&[("t2", 0), ("t1", 1)]);
    assert_eq!(p.count(&env), 12);
    let mut expected = Vec::new();
    for shop in ["z", "x", "y"] {
        for day in ["2024-01-01", "2024-01-02"] {
            for tenant in ["t2", "t1"] {
                expected.push(format!("day={day}|shop={shop}|tenant={tenant}"));
            }
        }
    }
    assert_eq!(keys_of(&p, &env), expected);
    let keys: Vec<PartitionKey> = p.all_coords(&env).iter().map(|c| p.key_of(c, &env).unwrap()).collect();
    assert_eq!(keys[1], mkey(&[("shop", &["z"]), ("day", &["2024-01-01"]), ("tenant", &["t1"])]));
    assert!(keys.iter().all(|k| k.is_individual() && p.validate(k, &env)));
    assert_eq!(p.all_coords(&env)[5], vec![1, 0, 1]);
    // Without the dynamic keys the product is empty.
    assert_eq!(p.count(&PartitionEnv::at(day(2030, 1, 1))), 0);
    assert!(p.all_coords(&PartitionEnv::at(day(2030, 1, 1))).is_empty());
    // R16: 3 x 2.
    let small = multi(vec![("a", static_(&["1", "2", "3"])), ("b", static_(&["p", "q"]))]);
    assert_eq!(keys_of(&small, &env), ["a=1|b=p", "a=1|b=q", "a=2|b=p", "a=2|b=q", "a=3|b=p", "a=3|b=q"]);
    let Partitions::Multi(m) = &small else { unreachable!() };
    assert_eq!(m.dimensions.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn positions_round_trip_and_are_distinct() {
    let p = shop_day_tenant();
    let env = tenants_env(&[("t1", 0), ("t2", 1), ("t3", 4)]);
    let mut seen = BTreeSet::new();
    for coords in p.all_coords(&env) {
        let position = p.position(&coords, &env).unwrap();
        assert!(seen.insert(position), "position {position} repeats");
        assert_eq!(p.coords_at(position, &env), Some(coords));
    }
    assert_eq!(seen.len(), 18);
    // A registration number that is not registered maps to no partition.
    let hole = p.position(&[0, 0, 0], &env).unwrap() + 2;
    assert_eq!(p.coords_at(hole, &env), None);
    // One-dimensional definitions: positions are key numbers.
    let s = static_(&["a", "b", "c"]);
    assert_eq!(s.position(&[2], &env), Some(2));
    assert_eq!(s.coords_at(2, &env), Some(vec![2]));
    assert_eq!(s.coords_at(3, &env), None);
}

#[test]
fn positions_are_stable_when_an_open_ended_first_dimension_grows() {
    let p = multi(vec![
        ("day", daily(day(2024, 1, 1), None)),
        ("shop", static_(&["n", "s"])),
        ("hour", Partitions::hourly(day(2024, 1, 1), None, None).unwrap()),
    ]);
    let early = PartitionEnv::at(at(2024, 1, 1, 2, 0, 0));
    let late = PartitionEnv::at(at(2024, 3, 1, 12, 0, 0));
    assert_eq!(p.count(&early), 6);
    assert!(p.count(&late) > p.count(&early));
    for coords in p.all_coords(&early) {
        let key = p.key_of(&coords, &early).unwrap();
        let position = p.position(&coords, &early).unwrap();
        let later_coords = p.individuals(&key, &late).unwrap();
        assert_eq!(later_coords, std::slice::from_ref(&coords));
        assert_eq!(p.position(&coords, &late), Some(position));
        assert_eq!(p.coords_at(position, &late), Some(coords));
    }
    // Positions of later keys do not collide with earlier ones.
    let positions: BTreeSet<u128> =
        p.all_coords(&late).iter().take(5000).map(|c| p.position(c, &late).unwrap()).collect();
    assert_eq!(positions.len(), 5000);
    // Positions beyond `now` exist on the grid but not in the environment.
    let future = p.position(&[59, 0, 0], &late).unwrap();
    assert_eq!(p.coords_at(future, &early), None);
    assert_eq!(p.coords_at(future, &late), Some(vec![59, 0, 0]));
}

#[test]
fn positions_are_stable_when_dynamic_keys_change() {
    let p = shop_day_tenant();
    let before = tenants_env(&[("t1", 0), ("t2", 1)]);
    let appended = tenants_env(&[("t1", 0), ("t2", 1), ("t3", 2)]);
    let deleted = tenants_env(&[("t1", 0), ("t3", 2)]);
    for coords in p.all_coords(&before) {
        let key = p.key_of(&coords, &before).unwrap();
        let position = p.position(&coords, &before).unwrap();
        let after = p.individuals(&key, &appended).unwrap().remove(0);
        assert_eq!(p.position(&after, &appended), Some(position));
        assert_eq!(p.key_of(&p.coords_at(position, &appended).unwrap(), &appended), Some(key));
    }
    // t3's index moves when t2 is deleted, its position does not.
    let t3 = mkey(&[("shop", &["x"]), ("day", &["2024-01-02"]), ("tenant", &["t3"])]);
    let in_appended = p.individuals(&t3, &appended).unwrap().remove(0);
    let in_deleted = p.individuals(&t3, &deleted).unwrap().remove(0);
    assert_ne!(in_appended, in_deleted);
    let position = p.position(&in_appended, &appended).unwrap();
    assert_eq!(p.position(&in_deleted, &deleted), Some(position));
    assert_eq!(p.coords_at(position, &deleted), Some(in_deleted));
    // The deleted key's position no longer resolves.
    let t2 = mkey(&[("shop", &["x"]), ("day", &["2024-01-02"]), ("tenant", &["t2"])]);
    let t2_position = p.position(&p.individuals(&t2, &appended).unwrap()[0], &appended).unwrap();
    assert_eq!(p.coords_at(t2_position, &deleted), None);
    assert!(p.individuals(&t2, &deleted).is_err());
}

#[test]
fn individuals_of_multi_valued_keys_and_sets() {
    let p = shop_day_tenant();
    let env = tenants_env(&[("t1", 0), ("t2", 1)]);
    let key = mkey(&[("shop", &["y", "z"]), ("day", &["2024-01-02"]), ("tenant", &["t2", "t1", "t2"])]);
    let covered = p.individuals(&key, &env).unwrap();
    assert_eq!(covered, [vec![0, 1, 0], vec![0, 1, 1], vec![2, 1, 0], vec![2, 1, 1]]);
    assert!(!key.is_individual());
    assert!(p.validate(&key, &env));

    let set = PartitionKey::Set(vec![
        mkey(&[("shop", &["y"]), ("day", &["2024-01-01"]), ("tenant", &["t1"])]),
        mkey(&[("shop", &["z"]), ("day", &["2024-01-02"]), ("tenant", &["t1", "t2"])]),
        mkey(&[("shop", &["z"]), ("day", &["2024-01-02"]), ("tenant", &["t2"])]),
    ]);
    assert_eq!(p.individuals(&set, &env).unwrap(), [vec![0, 1, 0], vec![0, 1, 1], vec![2, 0, 0]]);

    let s = static_(&["a", "b", "c"]);
    assert_eq!(s.individuals(&PartitionKey::Single(strings(&["c", "a"])), &env).unwrap(), [vec![0], vec![2]]);
    let message = s.individuals(&PartitionKey::single("zz"), &env).unwrap_err();
    assert!(message.contains("'zz'"), "{message}");
    let message =
        p.individuals(&mkey(&[("shop", &["q"]), ("day", &["2024-01-01"]), ("tenant", &["t1"])]), &env).unwrap_err();
    assert!(message.contains("'q'") && message.contains("'shop'"), "{message}");
    assert!(p.individuals(&PartitionKey::single("x"), &env).is_err());
    assert!(s.individuals(&mkey(&[("x", &["a"])]), &env).is_err());
    assert!(p.individuals(&mkey(&[("shop", &["x"])]), &env).is_err());
}

#[test]
fn bundle_produces_cartesian_keys_or_sets() {
    let p = shop_day_tenant();
    let env = tenants_env(&[("t1", 0), ("t2", 1)]);
    let product = vec![vec![0, 0, 0], vec![0, 0, 1], vec![1, 0, 0], vec![1, 0, 1]];
    let key = p.bundle(&product, &env).unwrap();
    assert_eq!(key, mkey(&[("shop", &["z", "x"]), ("day", &["2024-01-01"]), ("tenant", &["t1", "t2"])]));
    assert_eq!(p.individuals(&key, &env).unwrap(), product);

    let diagonal = vec![vec![0, 0, 0], vec![1, 1, 1]];
    let key = p.bundle(&diagonal, &env).unwrap();
    assert_eq!(
        key,
        PartitionKey::Set(vec![
            mkey(&[("shop", &["z"]), ("day", &["2024-01-01"]), ("tenant", &["t1"])]),
            mkey(&[("shop", &["x"]), ("day", &["2024-01-02"]), ("tenant", &["t2"])]),
        ])
    );
    assert_eq!(p.individuals(&key, &env).unwrap(), diagonal);
    assert!(p.validate(&key, &env));

    let s = static_(&["a", "b", "c"]);
    assert_eq!(s.bundle(&[vec![0], vec![2]], &env), Some(PartitionKey::Single(strings(&["a", "c"]))));
    assert_eq!(s.bundle(&[vec![1]], &env), Some(PartitionKey::single("b")));
    assert_eq!(s.bundle(&[], &env), None);
    assert_eq!(p.bundle(&[vec![0, 0, 0]], &env).map(|k| k.is_individual()), Some(true));
}

// ---- key ranges ----------------------------------------------------------------------------

fn range(from: &str, to: &str) -> PartitionKeyRange {
    PartitionKeyRange::Single { from: from.into(), to: to.into() }
}

fn multi_range(selections: Vec<(&str, DimSelection)>) -> PartitionKeyRange {
    PartitionKeyRange::Multi(selections.into_iter().map(|(n, s)| (n.to_owned(), s)).collect())
}

fn span(from: &str, to: &str) -> DimSelection {
    DimSelection::Range(from.into(), to.into())
}

#[test]
fn single_ranges_resolve_inclusively_in_definition_order() {
    let env = env();
    let d = daily(day(2024, 1, 1), Some(day(2024, 2, 1)));
    let resolved = range("2024-01-02", "2024-01-04").resolve(&d, &env).unwrap();
    assert_eq!(texts(&d, &resolved, &env), ["2024-01-02", "2024-01-03", "2024-01-04"]);
    assert_eq!(range("2024-01-10", "2024-01-10").resolve(&d, &env).unwrap(), [vec![9]]);
    assert_eq!(range("2024-01-01", "2024-01-31").resolve(&d, &env).unwrap().len(), 31);

    let s = static_(&["b", "a", "c"]);
    assert_eq!(texts(&s, &range("a", "c").resolve(&s, &env).unwrap(), &env), ["a", "c"]);
    assert_eq!(texts(&s, &range("b", "c").resolve(&s, &env).unwrap(), &env), ["b", "a", "c"]);

    // A format whose text order differs from time order.
    let dotted = Partitions::daily(day(2023, 12, 30), Some(day(2024, 1, 3)), Some("%d.%m.%Y".into())).unwrap();
    let resolved = range("31.12.2023", "02.01.2024").resolve(&dotted, &env).unwrap();
    assert_eq!(texts(&dotted, &resolved, &env), ["31.12.2023", "01.01.2024", "02.01.2024"]);

    // Dynamic: registration order.
    let dynamic = Partitions::dynamic("tenants".into()).unwrap();
    let env = tenants_env(&[("zeta", 0), ("alpha", 1), ("mid", 2)]);
    assert_eq!(texts(&dynamic, &range("zeta", "alpha").resolve(&dynamic, &env).unwrap(), &env), ["zeta", "alpha"]);
    assert!(range("mid", "zeta").resolve(&dynamic, &env).is_err());
}

#[test]
fn range_endpoint_errors() {
    let env = env();
    let s = static_(&["a", "b", "c"]);
    let message = range("a", "zz").resolve(&s, &env).unwrap_err();
    assert!(message.contains("'zz'") && message.contains("end"), "{message}");
    let message = range("zz", "a").resolve(&s, &env).unwrap_err();
    assert!(message.contains("'zz'") && message.contains("start"), "{message}");
    let message = range("c", "a").resolve(&s, &env).unwrap_err();
    assert!(message.contains("'c'") && message.contains("'a'") && message.contains("after"), "{message}");

    // Time windows: off-grid endpoints name the nearest keys.
    let weekly = cron(day(2024, 1, 1), "0 0 * * 1", Some(day(2024, 3, 1)), Some("%Y-%m-%d"));
    let message = range("2024-01-10", "2024-01-22").resolve(&weekly, &env).unwrap_err();
    assert!(message.contains("'2024-01-10'"), "{message}");
    assert!(message.contains("'2024-01-08'") && message.contains("'2024-01-15'"), "{message}");
    let d = daily(day(2024, 1, 1), Some(day(2024, 1, 5)));
    let message = range("2024-01-02", "2024-01-07").resolve(&d, &env).unwrap_err();
    assert!(message.contains("'2024-01-07'") && message.contains("'2024-01-04'"), "{message}");
    let message = range("2023-12-01", "2024-01-02").resolve(&d, &env).unwrap_err();
    assert!(message.contains("'2023-12-01'") && message.contains("'2024-01-01'"), "{message}");
    let message = range("2024-01-01T05:00", "2024-01-02").resolve(&d, &env).unwrap_err();
    // Written in another layout than the definition's format: still named, with the nearest keys.
    assert!(message.contains("'2024-01-01T05:00'") && message.contains("nearest"), "{message}");
    assert!(message.contains("'2024-01-01'") && message.contains("'2024-01-02'"), "{message}");
    let message = range("yesterday", "2024-01-02").resolve(&d, &env).unwrap_err();
    assert!(message.contains("'yesterday'") && message.contains("%Y-%m-%d"), "{message}");
    let hourly = Partitions::hourly(day(2024, 1, 1), None, None).unwrap();
    let message = range("2024-01-01T00:00", "2024-01-01T05:30").resolve(&hourly, &env).unwrap_err();
    assert!(message.contains("'2024-01-01T05:30'"), "{message}");
    // Future keys of open-ended grids are not keys yet.
    let open = daily(day(2024, 1, 1), None);
    let now = PartitionEnv::at(at(2024, 1, 10, 8, 0, 0));
    let message = range("2024-01-05", "2024-01-12").resolve(&open, &now).unwrap_err();
    assert!(message.contains("'2024-01-12'") && message.contains("'2024-01-10'"), "{message}");
    assert!(range("2024-01-05", "2024-01-04").resolve(&open, &now).unwrap_err().contains("after"));
}

#[test]
fn multi_ranges_expand_omitted_dimensions() {
    let env = env();
    let p = multi(vec![("day", daily(day(2024, 1, 1), Some(day(2024, 1, 5)))), ("shop", static_(&["n", "s", "e"]))]);
    let resolved = multi_range(vec![("day", span("2024-01-02", "2024-01-03"))]).resolve(&p, &env).unwrap();
    assert_eq!(
        texts(&p, &resolved, &env),
        [
            "day=2024-01-02|shop=n",
            "day=2024-01-02|shop=s",
            "day=2024-01-02|shop=e",
            "day=2024-01-03|shop=n",
            "day=2024-01-03|shop=s",
            "day=2024-01-03|shop=e"
        ]
    );
    let keys = multi_range(vec![("shop", DimSelection::Keys(strings(&["e", "n", "e"])))]).resolve(&p, &env).unwrap();
    assert_eq!(keys.len(), 8);
    assert_eq!(texts(&p, &keys[..2], &env), ["day=2024-01-01|shop=n", "day=2024-01-01|shop=e"]);
    let both = multi_range(vec![("shop", span("s", "e")), ("day", DimSelection::Keys(strings(&["2024-01-04"])))]);
    assert_eq!(texts(&p, &both.resolve(&p, &env).unwrap(), &env), ["day=2024-01-04|shop=s", "day=2024-01-04|shop=e"]);
    assert_eq!(multi_range(vec![]).resolve(&p, &env).unwrap(), p.all_coords(&env));
    let per_dim = multi_range(vec![("shop", span("s", "s"))]).per_dimension(&p, &env).unwrap();
    assert_eq!(per_dim, [vec![0, 1, 2, 3], vec![1]]);

    // The month x country example: 3 months x 3 countries.
    let grid = multi(vec![
        ("month", cron(day(2022, 1, 1), "0 0 1 * *", None, Some("%Y-%m"))),
        ("country", static_(&["nl", "be", "lu"])),
    ]);
    let now = PartitionEnv::at(day(2024, 6, 1));
    assert_eq!(multi_range(vec![("month", span("2022-01", "2022-03"))]).resolve(&grid, &now).unwrap().len(), 9);
}

#[test]
fn multi_range_errors() {
    let env = env();
    let p = multi(vec![("day", daily(day(2024, 1, 1), Some(day(2024, 1, 5)))), ("shop", static_(&["n", "s", "e"]))]);
    let message = multi_range(vec![("region", span("a", "b"))]).resolve(&p, &env).unwrap_err();
    assert!(message.contains("'region'") && message.contains("shop"), "{message}");
    let message = range("2024-01-01", "2024-01-02").resolve(&p, &env).unwrap_err();
    assert!(message.contains("multi"), "{message}");
    let message = multi_range(vec![("shop", span("e", "n"))]).resolve(&p, &env).unwrap_err();
    assert!(message.contains("after") && message.contains("'shop'"), "{message}");
    let message = multi_range(vec![("shop", DimSelection::Keys(strings(&["n", "w"])))]).resolve(&p, &env).unwrap_err();
    assert!(message.contains("'w'") && message.contains("'shop'"), "{message}");
    let message = multi_range(vec![("day", span("2024-01-01", "2024-01-09"))]).resolve(&p, &env).unwrap_err();
    assert!(
        message.contains("'2024-01-09'") && message.contains("'day'") && message.contains("'2024-01-04'"),
        "{message}"
    );
    let message = multi_range(vec![("shop", span("n", "s"))]).resolve(&static_(&["n", "s"]), &env).unwrap_err();
    assert!(message.contains("one dimension"), "{message}");
}

#[test]
fn range_equality_ignores_key_list_order_after_normalizing() {
    let a = multi_range(vec![("shop", DimSelection::Keys(strings(&["s", "n"]))), ("day", span("1", "2"))]);
    let b = multi_range(vec![("day", span("1", "2")), ("shop", DimSelection::Keys(strings(&["n", "s"])))]);
    assert_eq!(a.normalized(), b.normalized());
    assert_eq!(a.normalized().to_string(), "{day='1'..'2', shop=[\"n\", \"s\"]}");
    assert_eq!(range("a", "b").normalized(), range("a", "b"));
}

// ---- mappings ------------------------------------------------------------------------------

fn all(p: &Partitions, env: &PartitionEnv) -> Vec<Coords> {
    p.all_coords(env)
}

#[test]
fn identity_is_the_default_between_partitioned_assets() {
    let s = static_(&["a", "b"]);
    let declared = PartitionMapping::TimeWindow { offset: -1 };
    assert_eq!(effective_mapping(None, Some(&s), Some(&s)), Some(&PartitionMapping::Identity));
    assert_eq!(effective_mapping(None, Some(&s), None), Some(&PartitionMapping::AllPartitions));
    assert_eq!(effective_mapping(None, None, Some(&s)), None);
    assert_eq!(effective_mapping(None, None, None), None);
    assert_eq!(effective_mapping(Some(&declared), Some(&s), Some(&s)), Some(&declared));
    assert_eq!(effective_mapping(Some(&declared), None, None), Some(&declared));
}

#[test]
fn identity_maps_keys_by_value() {
    let env = env();
    let up = static_(&["c", "a", "b"]);
    let down = static_(&["a", "c"]);
    check_edge(&PartitionMapping::Identity, Some(&up), Some(&down), &env).unwrap();
    let out = map_keys(&PartitionMapping::Identity, Some(&up), Some(&down), &[vec![0]], &env);
    assert_eq!(mapped(out, &up, &env), ["a"]);
    let out = map_keys(&PartitionMapping::Identity, Some(&up), Some(&down), &all(&down, &env), &env);
    assert_eq!(mapped(out, &up, &env), ["c", "a"]);

    let d = daily(day(2024, 1, 1), Some(day(2024, 2, 1)));
    check_edge(&PartitionMapping::Identity, Some(&d), Some(&d), &env).unwrap();
    let later = daily(day(2024, 1, 10), Some(day(2024, 2, 1)));
    let out = map_keys(&PartitionMapping::Identity, Some(&d), Some(&later), &[vec![0]], &env);
    assert_eq!(mapped(out, &d, &env), ["2024-01-10"]);
    let message = map_keys(&PartitionMapping::Identity, Some(&later), Some(&d), &[vec![0]], &env).unwrap_err();
    assert!(message.contains("'2024-01-01'"), "{message}");

    let dynamic = Partitions::dynamic("t".into()).unwrap();
    check_edge(&PartitionMapping::Identity, Some(&dynamic), Some(&dynamic), &env).unwrap();
    let other = Partitions::dynamic("u".into()).unwrap();
    assert!(check_edge(&PartitionMapping::Identity, Some(&dynamic), Some(&other), &env).is_err());

    let m = multi(vec![("a", static_(&["1", "2"])), ("b", static_(&["x", "y"]))]);
    let swapped = multi(vec![("b", static_(&["y", "x"])), ("a", static_(&["2"]))]);
    check_edge(&PartitionMapping::Identity, Some(&m), Some(&swapped), &env).unwrap();
    let out = map_keys(&PartitionMapping::Identity, Some(&m), Some(&swapped), &[vec![0, 0]], &env);
    assert_eq!(mapped(out, &m, &env), ["a=2|b=y"]);
    let renamed = multi(vec![("a", static_(&["1", "2"])), ("c", static_(&["x", "y"]))]);
    assert!(check_edge(&PartitionMapping::Identity, Some(&m), Some(&renamed), &env).is_err());
    let wider = multi(vec![("a", static_(&["1", "3"])), ("b", static_(&["x", "y"]))]);
    let message = check_edge(&PartitionMapping::Identity, Some(&m), Some(&wider), &env).unwrap_err();
    assert!(message.contains("'a'") && message.contains("'3'"), "{message}");
}

#[test]
fn identity_across_kinds_or_incompatible_static_keys_fails() {
    let env = env();
    let up = static_(&["1", "2", "3"]);
    let down = static_(&["a", "b"]);
    let message = check_edge(&PartitionMapping::Identity, Some(&up), Some(&down), &env).unwrap_err();
    assert!(message.contains("'a'"), "{message}");
    let d = daily(day(2024, 1, 1), None);
    assert!(check_edge(&PartitionMapping::Identity, Some(&up), Some(&d), &env).is_err());
    assert!(check_edge(&PartitionMapping::Identity, Some(&d), Some(&up), &env).is_err());
    let compact = Partitions::daily(day(2024, 1, 1), None, Some("%Y%m%d".into())).unwrap();
    assert!(check_edge(&PartitionMapping::Identity, Some(&d), Some(&compact), &env).is_err());
    let m = multi(vec![("a", static_(&["1"]))]);
    assert!(check_edge(&PartitionMapping::Identity, Some(&m), Some(&up), &env).is_err());
    // Identity needs both sides partitioned.
    assert!(check_edge(&PartitionMapping::Identity, None, Some(&up), &env).is_err());
    assert!(check_edge(&PartitionMapping::Identity, Some(&up), None, &env).is_err());
}

#[test]
fn static_mapping_links_different_key_sets() {
    let env = env();
    let up = static_(&["1", "2", "3"]);
    let down = static_(&["a", "b"]);
    let mapping = PartitionMapping::Static {
        mapping: BTreeMap::from([("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]),
    };
    check_edge(&mapping, Some(&up), Some(&down), &env).unwrap();
    assert_eq!(mapped(map_keys(&mapping, Some(&up), Some(&down), &[vec![0]], &env), &up, &env), ["1"]);
    assert_eq!(mapped(map_keys(&mapping, Some(&up), Some(&down), &[vec![1]], &env), &up, &env), ["2"]);
    assert_eq!(mapped(map_keys(&mapping, Some(&up), Some(&down), &[vec![1], vec![0]], &env), &up, &env), ["1", "2"]);

    let bad_down = PartitionMapping::Static { mapping: BTreeMap::from([("zz".to_owned(), "1".to_owned())]) };
    assert!(check_edge(&bad_down, Some(&up), Some(&down), &env).unwrap_err().contains("'zz'"));
    let bad_up = PartitionMapping::Static { mapping: BTreeMap::from([("a".to_owned(), "9".to_owned())]) };
    assert!(check_edge(&bad_up, Some(&up), Some(&down), &env).unwrap_err().contains("'9'"));
    let partial = PartitionMapping::Static { mapping: BTreeMap::from([("a".to_owned(), "3".to_owned())]) };
    check_edge(&partial, Some(&up), Some(&down), &env).unwrap();
    let message = map_keys(&partial, Some(&up), Some(&down), &[vec![1]], &env).unwrap_err();
    assert!(message.contains("'b'"), "{message}");
    // Dynamic sides are not checked.
    let dynamic = Partitions::dynamic("t".into()).unwrap();
    let to_dynamic = PartitionMapping::Static { mapping: BTreeMap::from([("a".to_owned(), "anything".to_owned())]) };
    check_edge(&to_dynamic, Some(&dynamic), Some(&down), &env).unwrap();
    // Multi sides use the display form.
    let m = multi(vec![("r", static_(&["eu", "us"])), ("y", static_(&["2024"]))]);
    let into_multi = PartitionMapping::Static { mapping: BTreeMap::from([("a".to_owned(), "r=us|y=2024".to_owned())]) };
    check_edge(&into_multi, Some(&m), Some(&down), &env).unwrap();
    assert_eq!(mapped(map_keys(&into_multi, Some(&m), Some(&down), &[vec![0]], &env), &m, &env), ["r=us|y=2024"]);
}

#[test]
fn time_window_offset_loads_the_shifted_key() {
    let env = env();
    let d = daily(day(2024, 1, 1), Some(day(2024, 2, 1)));
    let previous = PartitionMapping::TimeWindow { offset: -1 };
    check_edge(&previous, Some(&d), Some(&d), &env).unwrap();
    let k = coords_of(&d, "2024-01-05", &env);
    assert_eq!(
        mapped(map_keys(&previous, Some(&d), Some(&d), std::slice::from_ref(&k), &env), &d, &env),
        ["2024-01-04"]
    );
    let same = PartitionMapping::TimeWindow { offset: 0 };
    assert_eq!(mapped(map_keys(&same, Some(&d), Some(&d), std::slice::from_ref(&k), &env), &d, &env), ["2024-01-05"]);
    let three_ahead = PartitionMapping::TimeWindow { offset: 3 };
    assert_eq!(mapped(map_keys(&three_ahead, Some(&d), Some(&d), &[k], &env), &d, &env), ["2024-01-08"]);
    // Several downstream keys merge.
    let span: Vec<Coords> = (1..4).map(|i| vec![i]).collect();
    assert_eq!(
        mapped(map_keys(&previous, Some(&d), Some(&d), &span, &env), &d, &env),
        ["2024-01-01", "2024-01-02", "2024-01-03"]
    );

    // Out of range: the message names the shifted key and the upstream range.
    let first = coords_of(&d, "2024-01-01", &env);
    let message = map_keys(&previous, Some(&d), Some(&d), &[first], &env).unwrap_err();
    assert!(message.contains("'2024-01-01'") && message.contains("'2024-01-01'..'2024-01-31'"), "{message}");
    assert!(message.contains("offset=-1") && message.contains("'2023-12-31'"), "{message}");
    let far_back = PartitionMapping::TimeWindow { offset: -40 };
    let message = map_keys(&far_back, Some(&d), Some(&d), &[coords_of(&d, "2024-01-05", &env)], &env).unwrap_err();
    assert!(message.contains("'2023-11-26'"), "{message}");
    let next = PartitionMapping::TimeWindow { offset: 1 };
    let last = coords_of(&d, "2024-01-31", &env);
    let message = map_keys(&next, Some(&d), Some(&d), &[last], &env).unwrap_err();
    assert!(message.contains("'2024-02-01'") && message.contains("'2024-01-01'..'2024-01-31'"), "{message}");

    // Upstream and downstream start on different days.
    let later = daily(day(2024, 1, 10), Some(day(2024, 2, 1)));
    check_edge(&previous, Some(&d), Some(&later), &env).unwrap();
    assert_eq!(mapped(map_keys(&previous, Some(&d), Some(&later), &[vec![0]], &env), &d, &env), ["2024-01-09"]);

    // Open-ended upstream: the window after `now` does not exist yet.
    let open = daily(day(2024, 1, 1), None);
    let now = PartitionEnv::at(at(2024, 1, 10, 6, 0, 0));
    let today = coords_of(&open, "2024-01-10", &now);
    let message = map_keys(&next, Some(&open), Some(&open), &[today], &now).unwrap_err();
    assert!(message.contains("'2024-01-11'") && message.contains("'2024-01-01'..'2024-01-10'"), "{message}");
}

#[test]
fn time_window_offset_before_the_upstream_start_fails() {
    // The downstream grid starts before the upstream one: shifting must count windows on the
    // real timeline, not from the upstream's first window.
    let env = env();
    let up = daily(day(2024, 1, 10), Some(day(2024, 2, 1)));
    let down = daily(day(2024, 1, 1), Some(day(2024, 2, 1)));
    let same = PartitionMapping::TimeWindow { offset: 0 };
    check_edge(&same, Some(&up), Some(&down), &env).unwrap();
    let early = coords_of(&down, "2024-01-01", &env);
    let message = map_keys(&same, Some(&up), Some(&down), std::slice::from_ref(&early), &env).unwrap_err();
    assert!(message.contains("'2024-01-01'") && message.contains("'2024-01-10'..'2024-01-31'"), "{message}");
    let next = PartitionMapping::TimeWindow { offset: 1 };
    let message = map_keys(&next, Some(&up), Some(&down), &[early], &env).unwrap_err();
    assert!(message.contains("'2024-01-02'"), "{message}");
    let ninth = coords_of(&down, "2024-01-09", &env);
    assert_eq!(
        mapped(map_keys(&next, Some(&up), Some(&down), std::slice::from_ref(&ninth), &env), &up, &env),
        ["2024-01-10"]
    );
    assert!(map_keys(&same, Some(&up), Some(&down), &[ninth], &env).is_err());
    let tenth = coords_of(&down, "2024-01-10", &env);
    assert_eq!(mapped(map_keys(&same, Some(&up), Some(&down), &[tenth], &env), &up, &env), ["2024-01-10"]);

    // A monthly cron grid.
    let up = cron(day(2024, 3, 1), "0 0 1 * *", None, Some("%Y-%m"));
    let down = cron(day(2024, 1, 1), "0 0 1 * *", None, Some("%Y-%m"));
    let january = coords_of(&down, "2024-01", &env);
    let message = map_keys(&same, Some(&up), Some(&down), std::slice::from_ref(&january), &env).unwrap_err();
    assert!(message.contains("'2024-01'"), "{message}");
    let two = PartitionMapping::TimeWindow { offset: 2 };
    assert_eq!(
        mapped(map_keys(&two, Some(&up), Some(&down), std::slice::from_ref(&january), &env), &up, &env),
        ["2024-03"]
    );
    let message =
        map_keys(&PartitionMapping::TimeWindow { offset: -3 }, Some(&up), Some(&down), &[january], &env).unwrap_err();
    assert!(message.contains("'2023-10'"), "{message}");

    // The same on an interval grid.
    let up = interval(at(2024, 1, 1, 3, 0, 0), 3600.0, None, None);
    let down = interval(day(2024, 1, 1), 3600.0, None, None);
    check_edge(&next, Some(&up), Some(&down), &env).unwrap();
    let one = coords_of(&down, "2024-01-01T01:00:00", &env);
    assert!(map_keys(&next, Some(&up), Some(&down), &[one], &env).is_err());
    let two = coords_of(&down, "2024-01-01T02:00:00", &env);
    assert_eq!(mapped(map_keys(&next, Some(&up), Some(&down), &[two], &env), &up, &env), ["2024-01-01T03:00:00"]);
}

#[test]
fn time_window_mapping_needs_compatible_grids() {
    let env = env();
    let offset = PartitionMapping::TimeWindow { offset: -1 };
    let d = daily(day(2024, 1, 1), None);
    // Different formats.
    let compact = Partitions::daily(day(2024, 1, 1), None, Some("%Y%m%d".into())).unwrap();
    let message = check_edge(&offset, Some(&d), Some(&compact), &env).unwrap_err();
    assert!(message.contains("format"), "{message}");
    // Different crons.
    let noon = cron(day(2024, 1, 1), "0 12 * * *", None, None);
    let midnight = cron(day(2024, 1, 1), "0 0 * * *", None, None);
    assert!(check_edge(&offset, Some(&noon), Some(&midnight), &env).is_err());
    assert!(check_edge(&offset, Some(&midnight), Some(&noon), &env).is_err());
    let six_hours = cron(day(2024, 1, 1), "0 */6 * * *", None, None);
    let daily_default_fmt = cron(day(2024, 1, 1), "0 0 * * *", None, None);
    assert!(check_edge(&offset, Some(&daily_default_fmt), Some(&six_hours), &env).is_err());
    assert!(check_edge(&PartitionMapping::Identity, Some(&daily_default_fmt), Some(&six_hours), &env).is_err());
    // Equivalent spellings of one cron.
    let spaced = cron(day(2024, 1, 1), "0  0 * * *", None, None);
    check_edge(&offset, Some(&spaced), Some(&midnight), &env).unwrap();
    // Interval grids: non-multiple, non-aligned, aligned multiple.
    let hour = interval(day(2024, 1, 1), 3600.0, None, None);
    let ninety = interval(day(2024, 1, 1), 5400.0, None, None);
    let shifted = interval(at(2024, 1, 1, 0, 30, 0), 3600.0, None, None);
    let two_hours = interval(at(2024, 1, 1, 2, 0, 0), 7200.0, None, None);
    assert!(check_edge(&offset, Some(&hour), Some(&ninety), &env).is_err());
    assert!(check_edge(&offset, Some(&hour), Some(&shifted), &env).is_err());
    assert!(check_edge(&PartitionMapping::Identity, Some(&hour), Some(&shifted), &env).is_err());
    assert!(check_edge(&offset, Some(&two_hours), Some(&hour), &env).is_err());
    check_edge(&offset, Some(&hour), Some(&two_hours), &env).unwrap();
    check_edge(&PartitionMapping::Identity, Some(&hour), Some(&two_hours), &env).unwrap();
    let zero = PartitionMapping::TimeWindow { offset: 0 };
    assert_eq!(
        mapped(map_keys(&zero, Some(&hour), Some(&two_hours), &[vec![0]], &env), &hour, &env),
        ["2024-01-01T02:00:00"]
    );
    assert_eq!(
        mapped(map_keys(&offset, Some(&hour), Some(&two_hours), &[vec![1]], &env), &hour, &env),
        ["2024-01-01T03:00:00"]
    );
    let identity = map_keys(&PartitionMapping::Identity, Some(&hour), Some(&two_hours), &[vec![1]], &env);
    assert_eq!(mapped(identity, &hour, &env), ["2024-01-01T04:00:00"]);
    // An aligned interval grid and a cron grid with the same ticks.
    let hourly_cron = cron(day(2024, 1, 1), "0 * * * *", None, None);
    check_edge(&offset, Some(&hour), Some(&hourly_cron), &env).unwrap();
    // Across kinds.
    let s = static_(&["a"]);
    assert!(check_edge(&offset, Some(&s), Some(&d), &env).is_err());
    assert!(check_edge(&offset, Some(&d), Some(&s), &env).is_err());
    assert!(check_edge(&offset, None, Some(&d), &env).is_err());
}

#[test]
fn for_keys_loads_the_unpartitioned_upstream_for_matching_keys() {
    let env = env();
    let down = static_(&["a", "b"]);
    let mapping = PartitionMapping::ForKeys { selectors: vec![KeySelector::Key(PartitionKey::single("a"))] };
    check_edge(&mapping, None, Some(&down), &env).unwrap();
    assert_eq!(map_keys(&mapping, None, Some(&down), &[vec![0]], &env), Ok(MappedInput::Whole));
    assert_eq!(map_keys(&mapping, None, Some(&down), &[vec![1]], &env), Ok(MappedInput::Nothing));
    assert_eq!(map_keys(&mapping, None, Some(&down), &[vec![1], vec![0]], &env), Ok(MappedInput::Whole));

    // Range selectors.
    let d = daily(day(2024, 1, 1), Some(day(2024, 2, 1)));
    let ranged = PartitionMapping::ForKeys {
        selectors: vec![
            KeySelector::Range(range("2024-01-03", "2024-01-05")),
            KeySelector::Key(PartitionKey::single("2024-01-20")),
        ],
    };
    check_edge(&ranged, None, Some(&d), &env).unwrap();
    let found: Vec<String> = all(&d, &env)
        .into_iter()
        .filter(|c| map_keys(&ranged, None, Some(&d), std::slice::from_ref(c), &env) == Ok(MappedInput::Whole))
        .map(|c| d.dim_value(c[0], &env).unwrap())
        .collect();
    assert_eq!(found, ["2024-01-03", "2024-01-04", "2024-01-05", "2024-01-20"]);

    // Partitioned upstream.
    let message = check_edge(&mapping, Some(&down), Some(&down), &env).unwrap_err();
    assert!(message.contains("unpartitioned upstream"), "{message}");
    assert!(check_edge(&mapping, None, None, &env).is_err());
    // Selectors that do not fit the downstream.
    let unknown = PartitionMapping::ForKeys { selectors: vec![KeySelector::Key(PartitionKey::single("zz"))] };
    assert!(check_edge(&unknown, None, Some(&down), &env).unwrap_err().contains("'zz'"));
    let inverted = PartitionMapping::ForKeys { selectors: vec![KeySelector::Range(range("b", "a"))] };
    assert!(check_edge(&inverted, None, Some(&down), &env).unwrap_err().contains("after"));
    let unknown_end = PartitionMapping::ForKeys { selectors: vec![KeySelector::Range(range("a", "zz"))] };
    assert!(check_edge(&unknown_end, None, Some(&down), &env).unwrap_err().contains("'zz'"));
    let off_grid =
        PartitionMapping::ForKeys { selectors: vec![KeySelector::Range(range("2024-01-01", "2024-01-01T05:00"))] };
    assert!(check_edge(&off_grid, None, Some(&d), &env).is_err());
    let m = multi(vec![("day", d.clone()), ("shop", static_(&["n"]))]);
    let single_against_multi = PartitionMapping::ForKeys { selectors: vec![KeySelector::Range(range("a", "b"))] };
    assert!(check_edge(&single_against_multi, None, Some(&m), &env).is_err());
    let unknown_dim = PartitionMapping::ForKeys {
        selectors: vec![KeySelector::Range(multi_range(vec![("region", span("a", "b"))]))],
    };
    assert!(check_edge(&unknown_dim, None, Some(&m), &env).unwrap_err().contains("'region'"));
    let multi_ok =
        PartitionMapping::ForKeys { selectors: vec![KeySelector::Range(multi_range(vec![("shop", span("n", "n"))]))] };
    check_edge(&multi_ok, None, Some(&m), &env).unwrap();
    assert_eq!(map_keys(&multi_ok, None, Some(&m), &[vec![4, 0]], &env), Ok(MappedInput::Whole));
}

#[test]
fn subset_loads_the_same_key_when_upstream_has_it() {
    let env = env();
    let up = static_(&["b", "a"]);
    let down = static_(&["a", "b", "c"]);
    let subset = PartitionMapping::Subset;
    check_edge(&subset, Some(&up), Some(&down), &env).unwrap();
    assert_eq!(mapped(map_keys(&subset, Some(&up), Some(&down), &[vec![0]], &env), &up, &env), ["a"]);
    assert_eq!(map_keys(&subset, Some(&up), Some(&down), &[vec![2]], &env), Ok(MappedInput::Nothing));
    assert_eq!(
        mapped(map_keys(&subset, Some(&up), Some(&down), &[vec![2], vec![1], vec![0]], &env), &up, &env),
        ["b", "a"]
    );
    // Upstream keys must be downstream keys.
    let message = check_edge(&subset, Some(&static_(&["a", "z"])), Some(&down), &env).unwrap_err();
    assert!(message.contains("'z'"), "{message}");
    // Same kind only.
    assert!(check_edge(&subset, Some(&up), Some(&daily(day(2024, 1, 1), None)), &env).is_err());
    assert!(check_edge(&subset, None, Some(&down), &env).is_err());
    // Time windows: the upstream's shorter span.
    let short = daily(day(2024, 1, 5), Some(day(2024, 1, 8)));
    let long = daily(day(2024, 1, 1), Some(day(2024, 1, 10)));
    check_edge(&subset, Some(&short), Some(&long), &env).unwrap();
    assert_eq!(map_keys(&subset, Some(&short), Some(&long), &[vec![0]], &env), Ok(MappedInput::Nothing));
    assert_eq!(mapped(map_keys(&subset, Some(&short), Some(&long), &[vec![5]], &env), &short, &env), ["2024-01-06"]);
}

#[test]
fn all_partitions_loads_every_current_upstream_key() {
    let up = static_(&["p", "q", "r"]);
    let down = daily(day(2024, 1, 1), None);
    let env = PartitionEnv::at(day(2024, 1, 3));
    let mapping = PartitionMapping::AllPartitions;
    check_edge(&mapping, Some(&up), Some(&down), &env).unwrap();
    check_edge(&mapping, Some(&up), None, &env).unwrap();
    assert!(check_edge(&mapping, None, Some(&down), &env).is_err());
    assert_eq!(mapped(map_keys(&mapping, Some(&up), Some(&down), &[vec![1]], &env), &up, &env), ["p", "q", "r"]);
    // Open-ended and dynamic upstreams list what exists in the environment.
    assert_eq!(
        mapped(map_keys(&mapping, Some(&down), Some(&up), &[vec![0]], &env), &down, &env),
        ["2024-01-01", "2024-01-02", "2024-01-03"]
    );
    let dynamic = Partitions::dynamic("t".into()).unwrap();
    let env = env.with_dynamic("t", dynamic_keys(&[("x", 0), ("y", 3)]));
    assert_eq!(mapped(map_keys(&mapping, Some(&dynamic), Some(&up), &[vec![0]], &env), &dynamic, &env), ["x", "y"]);
}

#[test]
fn specific_partitions_loads_the_listed_keys() {
    let env = env();
    let up = static_(&["q", "p", "r"]);
    let down = daily(day(2024, 1, 1), Some(day(2024, 1, 10)));
    let mapping = PartitionMapping::SpecificPartitions { partition_keys: strings(&["p", "q"]) };
    check_edge(&mapping, Some(&up), Some(&down), &env).unwrap();
    check_edge(&mapping, Some(&up), None, &env).unwrap();
    for coords in all(&down, &env) {
        assert_eq!(mapped(map_keys(&mapping, Some(&up), Some(&down), &[coords], &env), &up, &env), ["q", "p"]);
    }
    let unknown = PartitionMapping::SpecificPartitions { partition_keys: strings(&["p", "zz"]) };
    assert!(check_edge(&unknown, Some(&up), Some(&down), &env).unwrap_err().contains("'zz'"));
    assert!(check_edge(&mapping, None, Some(&down), &env).is_err());
    let m = multi(vec![("year", static_(&["2024"])), ("region", static_(&["eu", "us"]))]);
    let by_display = PartitionMapping::SpecificPartitions { partition_keys: strings(&["region=us|year=2024"]) };
    check_edge(&by_display, Some(&m), Some(&down), &env).unwrap();
    assert_eq!(
        mapped(map_keys(&by_display, Some(&m), Some(&down), &[vec![0]], &env), &m, &env),
        ["region=us|year=2024"]
    );
    let bad_display = PartitionMapping::SpecificPartitions { partition_keys: strings(&["us"]) };
    assert!(check_edge(&bad_display, Some(&m), Some(&down), &env).is_err());
}

#[test]
fn multi_to_single_in_both_directions() {
    let env = env();
    let days = daily(day(2024, 1, 1), Some(day(2024, 1, 5)));
    let shops = multi(vec![("day", days.clone()), ("shop", static_(&["n", "s", "e"]))]);
    let mapping = PartitionMapping::MultiToSingle {
        dimension_name: "day".into(),
        partition_mapping: Box::new(PartitionMapping::Identity),
    };
    // Upstream multi: every shop of the day.
    check_edge(&mapping, Some(&shops), Some(&days), &env).unwrap();
    let k = coords_of(&days, "2024-01-02", &env);
    assert_eq!(
        mapped(map_keys(&mapping, Some(&shops), Some(&days), &[k], &env), &shops, &env),
        ["day=2024-01-02|shop=n", "day=2024-01-02|shop=s", "day=2024-01-02|shop=e"]
    );
    // Downstream multi: the day's single key.
    check_edge(&mapping, Some(&days), Some(&shops), &env).unwrap();
    let k = coords_of(&shops, "day=2024-01-03|shop=e", &env);
    assert_eq!(mapped(map_keys(&mapping, Some(&days), Some(&shops), &[k], &env), &days, &env), ["2024-01-03"]);
    let group: Vec<Coords> =
        multi_range(vec![("day", span("2024-01-02", "2024-01-03"))]).resolve(&shops, &env).unwrap();
    assert_eq!(
        mapped(map_keys(&mapping, Some(&days), Some(&shops), &group, &env), &days, &env),
        ["2024-01-02", "2024-01-03"]
    );

    // With a nested mapping.
    let previous = PartitionMapping::MultiToSingle {
        dimension_name: "day".into(),
        partition_mapping: Box::new(PartitionMapping::TimeWindow { offset: -1 }),
    };
    check_edge(&previous, Some(&shops), Some(&days), &env).unwrap();
    let k = coords_of(&days, "2024-01-03", &env);
    assert_eq!(
        mapped(map_keys(&previous, Some(&shops), Some(&days), &[k], &env), &shops, &env),
        ["day=2024-01-02|shop=n", "day=2024-01-02|shop=s", "day=2024-01-02|shop=e"]
    );
    assert!(map_keys(&previous, Some(&shops), Some(&days), &[vec![0]], &env).is_err());

    // Errors.
    let unknown = PartitionMapping::MultiToSingle {
        dimension_name: "region".into(),
        partition_mapping: Box::new(PartitionMapping::Identity),
    };
    let message = check_edge(&unknown, Some(&shops), Some(&days), &env).unwrap_err();
    assert!(message.contains("'region'") && message.contains("shop"), "{message}");
    assert!(check_edge(&mapping, Some(&shops), Some(&shops), &env).is_err());
    assert!(check_edge(&mapping, Some(&days), Some(&days), &env).is_err());
    let shop_dim = PartitionMapping::MultiToSingle {
        dimension_name: "shop".into(),
        partition_mapping: Box::new(PartitionMapping::Identity),
    };
    assert!(check_edge(&shop_dim, Some(&shops), Some(&days), &env).is_err());
    check_edge(&shop_dim, Some(&shops), Some(&static_(&["s", "e"])), &env).unwrap();
}

#[test]
fn multi_mapping_renames_and_defaults_to_identity() {
    let env = env();
    let up = multi(vec![("date", daily(day(2024, 1, 1), Some(day(2024, 1, 10)))), ("region", static_(&["eu", "us"]))]);
    let down = multi(vec![("region", static_(&["us"])), ("day", daily(day(2024, 1, 1), Some(day(2024, 1, 10))))]);
    let renamed = PartitionMapping::Multi {
        dimension_mappings: BTreeMap::from([("day".to_owned(), ("date".to_owned(), PartitionMapping::Identity))]),
    };
    check_edge(&renamed, Some(&up), Some(&down), &env).unwrap();
    let k = coords_of(&down, "day=2024-01-04|region=us", &env);
    assert_eq!(
        mapped(map_keys(&renamed, Some(&up), Some(&down), std::slice::from_ref(&k), &env), &up, &env),
        ["date=2024-01-04|region=us"]
    );

    let shifted = PartitionMapping::Multi {
        dimension_mappings: BTreeMap::from([(
            "day".to_owned(),
            ("date".to_owned(), PartitionMapping::TimeWindow { offset: -1 }),
        )]),
    };
    check_edge(&shifted, Some(&up), Some(&down), &env).unwrap();
    assert_eq!(
        mapped(map_keys(&shifted, Some(&up), Some(&down), &[k], &env), &up, &env),
        ["date=2024-01-03|region=us"]
    );
    let first = coords_of(&down, "day=2024-01-01|region=us", &env);
    assert!(map_keys(&shifted, Some(&up), Some(&down), &[first], &env).is_err());

    // An unlisted dimension uses identity with the same-named upstream dimension.
    let wider_down =
        multi(vec![("region", static_(&["us", "apac"])), ("day", daily(day(2024, 1, 1), Some(day(2024, 1, 10))))]);
    let message = check_edge(&renamed, Some(&up), Some(&wider_down), &env).unwrap_err();
    assert!(message.contains("'region'") && message.contains("'apac'"), "{message}");
    let no_region = multi(vec![("date", daily(day(2024, 1, 1), Some(day(2024, 1, 10))))]);
    let message = check_edge(&renamed, Some(&no_region), Some(&down), &env).unwrap_err();
    assert!(message.contains("'region'"), "{message}");
    // Unknown targets and sources.
    let bad_target = PartitionMapping::Multi {
        dimension_mappings: BTreeMap::from([("day".to_owned(), ("when".to_owned(), PartitionMapping::Identity))]),
    };
    assert!(check_edge(&bad_target, Some(&up), Some(&down), &env).unwrap_err().contains("'when'"));
    let bad_source = PartitionMapping::Multi {
        dimension_mappings: BTreeMap::from([
            ("day".to_owned(), ("date".to_owned(), PartitionMapping::Identity)),
            ("hour".to_owned(), ("date".to_owned(), PartitionMapping::Identity)),
        ]),
    };
    assert!(check_edge(&bad_source, Some(&up), Some(&down), &env).unwrap_err().contains("'hour'"));
    // Both sides must be multi.
    assert!(check_edge(&renamed, Some(&up), Some(&static_(&["us"])), &env).is_err());
    // A static mapping inside a dimension.
    let regions = PartitionMapping::Multi {
        dimension_mappings: BTreeMap::from([
            ("day".to_owned(), ("date".to_owned(), PartitionMapping::Identity)),
            (
                "region".to_owned(),
                (
                    "region".to_owned(),
                    PartitionMapping::Static {
                        mapping: BTreeMap::from([
                            ("apac".to_owned(), "eu".to_owned()),
                            ("us".to_owned(), "us".to_owned()),
                        ]),
                    },
                ),
            ),
        ]),
    };
    check_edge(&regions, Some(&up), Some(&wider_down), &env).unwrap();
    let k = coords_of(&wider_down, "day=2024-01-02|region=apac", &env);
    assert_eq!(
        mapped(map_keys(&regions, Some(&up), Some(&wider_down), &[k], &env), &up, &env),
        ["date=2024-01-02|region=eu"]
    );
}

#[test]
fn mapping_check_rejects_unpartitioned_sides() {
    let env = env();
    let s = static_(&["a"]);
    for mapping in [
        PartitionMapping::Identity,
        PartitionMapping::Subset,
        PartitionMapping::TimeWindow { offset: 0 },
        PartitionMapping::Static { mapping: BTreeMap::new() },
    ] {
        assert!(check_edge(&mapping, None, Some(&s), &env).is_err(), "{}", mapping.name());
        assert!(check_edge(&mapping, Some(&s), None, &env).is_err(), "{}", mapping.name());
    }
    // An unpartitioned upstream is read whole through any other mapping.
    assert_eq!(map_keys(&PartitionMapping::AllPartitions, None, Some(&s), &[vec![0]], &env), Ok(MappedInput::Whole));
}

// ---- range sets ----------------------------------------------------------------------------

/// A small deterministic generator (64-bit LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Clustered positions: a few runs plus scattered points, offset by `base`.
    fn positions(&mut self, base: u128) -> BTreeSet<u128> {
        let mut set = BTreeSet::new();
        for _ in 0..self.below(6) {
            let start = self.below(200);
            for p in start..start + self.below(25) {
                set.insert(base + u128::from(p));
            }
        }
        for _ in 0..self.below(12) {
            set.insert(base + u128::from(self.below(240)));
        }
        set
    }
}

#[track_caller]
fn assert_matches_model(set: &RangeSet, model: &BTreeSet<u128>) {
    let ranges = set.ranges();
    for (start, end) in ranges {
        assert!(start <= end, "{set}");
    }
    for pair in ranges.windows(2) {
        assert!(pair[0].1.saturating_add(1) < pair[1].0, "ranges touch or overlap: {set}");
    }
    assert_eq!(set.positions().collect::<BTreeSet<_>>(), *model, "{set}");
    assert_eq!(set.len(), model.len() as u128);
    assert_eq!(set.is_empty(), model.is_empty());
    assert_eq!(set.to_string().parse::<RangeSet>().as_ref(), Ok(set));
}

#[test]
fn range_sets_agree_with_a_naive_set_model() {
    let mut rng = Lcg(0x5eed_1234_abcd_0042);
    for trial in 0..2000 {
        let base = match trial % 7 {
            0 => u128::MAX - 300,
            1 => u128::from(u64::MAX) - 100,
            _ => 0,
        };
        let (a_model, b_model) = (rng.positions(base), rng.positions(base));
        let a = RangeSet::from_positions(a_model.iter().rev().copied().chain(a_model.iter().copied()));
        let b = RangeSet::from_positions(b_model.iter().copied());
        assert_matches_model(&a, &a_model);
        assert_matches_model(&b, &b_model);

        let union = a.union(&b);
        assert_matches_model(&union, &a_model.union(&b_model).copied().collect());
        assert_eq!(union, b.union(&a));
        assert_matches_model(&a.difference(&b), &a_model.difference(&b_model).copied().collect());
        assert_matches_model(&b.difference(&a), &b_model.difference(&a_model).copied().collect());
        assert_matches_model(&a.intersection(&b), &a_model.intersection(&b_model).copied().collect());
        assert_eq!(a.union(&a), a);
        assert!(a.difference(&a).is_empty());
        assert_eq!(a.difference(&RangeSet::new()), a);
        assert_eq!(RangeSet::new().union(&a), a);
        assert_eq!(a.union(&b).difference(&b), a.difference(&b));

        for probe in 0..260u128 {
            let p = base.saturating_add(probe);
            assert_eq!(a.contains(p), a_model.contains(&p), "{a} contains {p}");
        }
        assert!(!a.contains(base.wrapping_sub(1)) || a_model.contains(&base.wrapping_sub(1)));
    }
}

#[test]
fn range_sets_at_the_edges_of_the_position_space() {
    let top = RangeSet::from_positions([u128::MAX, u128::MAX - 1, 0]);
    assert_eq!(top.ranges(), &[(0, 0), (u128::MAX - 1, u128::MAX)]);
    assert_eq!(top.union(&RangeSet::from_positions([u128::MAX - 2])).ranges(), &[(0, 0), (u128::MAX - 2, u128::MAX)]);
    assert_eq!(
        top.difference(&RangeSet::from_positions([u128::MAX])).ranges(),
        &[(0, 0), (u128::MAX - 1, u128::MAX - 1)]
    );
    assert_eq!(top.difference(&top), RangeSet::new());
    assert_eq!(top.to_string().parse::<RangeSet>(), Ok(top));
    let big: RangeSet = "0-999999,1000005".parse().unwrap();
    assert_eq!(big.len(), 1_000_001);
    assert!(big.contains(999_999) && !big.contains(1_000_000) && big.contains(1_000_005));
    assert!("x".parse::<RangeSet>().is_err());
    assert!("3-1".parse::<RangeSet>().is_err());
    assert!("1-3,4".parse::<RangeSet>().is_err());
}

#[test]
fn positions_of_materialized_keys_collapse_into_ranges() {
    let p = daily(day(2014, 1, 1), None);
    let env = PartitionEnv::at(day(2024, 1, 1));
    let positions = p.all_coords(&env).into_iter().map(|c| p.position(&c, &env).unwrap());
    let done = RangeSet::from_positions(positions);
    assert_eq!(done.ranges().len(), 1);
    assert_eq!(done.len(), u128::from(p.count(&env)));
    let missing = RangeSet::from_positions([0, 1, 2]).difference(&done);
    assert!(missing.is_empty());
}

// ---- serde ---------------------------------------------------------------------------------

#[test]
fn definitions_round_trip_through_json() {
    let definitions = [
        static_(&["b", "a"]),
        daily(day(2024, 1, 1), Some(day(2024, 3, 1))),
        Partitions::hourly(at(2024, 1, 1, 7, 0, 0), None, Some("%Y%m%d%H".into())).unwrap(),
        cron(day(2024, 1, 1), "*/15 * * * * *", None, None),
        interval(at(2024, 1, 1, 0, 0, 0) + TimeDelta::microseconds(250), 0.25, None, Some("%Y-%m-%dT%H:%M:%S.%f")),
        Partitions::dynamic("tenants".into()).unwrap(),
        shop_day_tenant(),
    ];
    let env = PartitionEnv::at(at(2024, 1, 1, 1, 0, 0)).with_dynamic("tenants", dynamic_keys(&[("t1", 0), ("t2", 7)]));
    for p in definitions {
        let text = serde_json::to_string(&p).unwrap();
        let back: Partitions = serde_json::from_str(&text).unwrap();
        assert_eq!(back, p, "{text}");
        assert_eq!(keys_of(&back, &env)[..], keys_of(&p, &env)[..]);
        let data: PartitionsData = serde_json::from_str(&text).unwrap();
        assert_eq!(PartitionsData::from(p.clone()), data);
        assert_eq!(Partitions::try_from(data).unwrap(), p);
    }
    let text = serde_json::to_string(&daily(day(2024, 1, 1), None)).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["kind"], "time_window");
    assert_eq!(value["cron_schedule"], "0 0 * * *");
    assert_eq!(value["fmt"], "%Y-%m-%d");
}

#[test]
fn invalid_json_definitions_fail_with_the_construction_error() {
    let cases = [
        (r#"{"kind":"static","keys":[]}"#, "at least one key"),
        (r#"{"kind":"static","keys":["a","a"]}"#, "twice"),
        (r#"{"kind":"dynamic","name":""}"#, "non-empty name"),
        (r#"{"kind":"multi","dimensions":[]}"#, "at least one dimension"),
        (r#"{"kind":"multi","dimensions":[["a=b",{"kind":"static","keys":["x"]}]]}"#, "dimension name"),
        (r#"{"kind":"multi","dimensions":[["a",{"kind":"static","keys":["x|y"]}]]}"#, "'x|y'"),
        (
            r#"{"kind":"time_window","cron_schedule":"0 0 * * *","interval_seconds":null,"start":"2024-01-01T00:00:00","end":null,"fmt":"%Y-%m"}"#,
            "cannot tell windows apart",
        ),
        (
            r#"{"kind":"time_window","cron_schedule":"0 0 * * *","interval_seconds":60.0,"start":"2024-01-01T00:00:00","end":null,"fmt":"%Y"}"#,
            "exactly one",
        ),
        (
            r#"{"kind":"time_window","cron_schedule":null,"interval_seconds":-5.0,"start":"2024-01-01T00:00:00","end":null,"fmt":"%Y"}"#,
            "interval_seconds",
        ),
        (
            r#"{"kind":"time_window","cron_schedule":"0 0 * * *","interval_seconds":null,"start":"2024-01-05T00:00:00","end":"2024-01-01T00:00:00","fmt":"%Y-%m-%d"}"#,
            "must come after",
        ),
    ];
    for (text, expected) in cases {
        let error = serde_json::from_str::<Partitions>(text).unwrap_err().to_string();
        assert!(error.contains(expected), "{text}: {error}");
        // The declared data itself deserializes; compiling it fails with the same error.
        let data: PartitionsData = serde_json::from_str(text).unwrap();
        let message = definition_error(Partitions::try_from(data));
        assert!(message.contains(expected), "{text}: {message}");
    }
    assert!(serde_json::from_str::<Partitions>(r#"{"kind":"weekly"}"#).is_err());
}

// ---- keys ----------------------------------------------------------------------------------

#[test]
fn keys_compare_display_and_travel_as_json() {
    assert_eq!(PartitionKey::single("x"), PartitionKey::Single(strings(&["x"])));
    let a = mkey(&[("a", &["1"]), ("b", &["2"])]);
    let b = mkey(&[("b", &["2"]), ("a", &["1"])]);
    assert_eq!(a, b);
    let hashes: std::collections::HashSet<PartitionKey> = [a.clone(), b].into_iter().collect();
    assert_eq!(hashes.len(), 1);
    assert_ne!(PartitionKey::Single(strings(&["a", "b"])), PartitionKey::Single(strings(&["b", "a"])));
    assert_eq!(
        mkey(&[("shop", &["north", "south"]), ("day", &["2024-03-02"])]).to_string(),
        "day=2024-03-02|shop=north,south"
    );
    assert_eq!(PartitionKey::Single(strings(&["a", "b"])).to_string(), "a,b");
    for key in [
        PartitionKey::single("2024-01-01"),
        PartitionKey::Single(strings(&["a", "b"])),
        a,
        PartitionKey::Set(vec![PartitionKey::single("a"), PartitionKey::single("c")]),
    ] {
        let json = key.to_json();
        assert!(json.starts_with('{'), "{json}");
        assert_eq!(PartitionKey::from_json(&json), Ok(key));
    }
    assert!(PartitionKey::from_json("not json").is_err());
    assert!(PartitionKey::from_json(r#"{"multi":{}}"#).is_err());
    assert!(PartitionKey::from_json(r#"{"multi":{"a":[]}}"#).is_err());
    assert_eq!(PartitionKey::parse_display("a=1|b=2,3", true), Ok(mkey(&[("a", &["1"]), ("b", &["2", "3"])])));
    assert!(PartitionKey::parse_display("a=1|a=2", true).is_err());
    assert_eq!(PartitionKey::parse_display("x,y", false), Ok(PartitionKey::Single(strings(&["x", "y"]))));
}

#[test]
fn time_window_shift_never_loads_a_window_the_downstream_key_is_not_on() {
    // Upstream minutes skip 23:xx; a downstream minute at 23:30 has no upstream window to shift
    // from, whatever the edge check concluded from its sample of windows.
    let env = env();
    let up = cron(day(2024, 1, 1), "* 0-22 * * *", None, None);
    let down = cron(day(2024, 1, 1), "* * * * *", None, None);
    let late = coords_of(&down, "2024-01-01T23:30:00", &env);
    for offset in [-1, 0, 1] {
        let mapping = PartitionMapping::TimeWindow { offset };
        let message = map_keys(&mapping, Some(&up), Some(&down), std::slice::from_ref(&late), &env).unwrap_err();
        assert!(message.contains("'2024-01-01T23:30:00'"), "{message}");
    }
    assert!(map_keys(&PartitionMapping::Identity, Some(&up), Some(&down), std::slice::from_ref(&late), &env).is_err());
    let early = coords_of(&down, "2024-01-01T22:59:00", &env);
    let next = PartitionMapping::TimeWindow { offset: 1 };
    assert_eq!(mapped(map_keys(&next, Some(&up), Some(&down), &[early], &env), &up, &env), ["2024-01-02T00:00:00"]);
}

#[test]
fn closed_grids_list_every_window_before_end_whatever_the_clock() {
    let closed = daily(day(2024, 1, 1), Some(day(2024, 1, 10)));
    for now in [day(2023, 1, 1), day(2024, 1, 5), day(2030, 1, 1)] {
        assert_eq!(closed.count(&PartitionEnv::at(now)), 9);
        assert!(closed.validate(&PartitionKey::single("2024-01-09"), &PartitionEnv::at(now)));
    }
}
