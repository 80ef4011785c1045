//! Partitions definitions, compiled: the four kinds, their construction rules, and the
//! arithmetic every other partition feature builds on (counting, enumerating, validating and
//! numbering keys).
//!
//! Each one-dimensional definition numbers its keys two ways. The **index** is the key's place
//! in the current enumeration. The **position** is where the key sits on the definition's grid
//! and never moves when keys are added: the tick number of a time window, the list position of a
//! static key, and the registration number of a dynamic key. Partition status is stored as
//! ranges of positions; a multi definition combines its dimensions' positions in mixed radix.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use serde::{Deserialize, Serialize};

use super::key::PartitionKey;
use super::time_format::KeyFormat;
use super::time_grid::TimeGrid;
use crate::error::{Error, Result};

/// The default key format of `time_window()`.
pub const DEFAULT_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";
/// The default key format of `daily()`.
pub const DAILY_FORMAT: &str = "%Y-%m-%d";
/// The default key format of `hourly()`.
pub const HOURLY_FORMAT: &str = "%Y-%m-%dT%H:00";
/// Dynamic keys are numbered from 0 by registration; positions leave room for this many.
pub const DYNAMIC_CAPACITY: u128 = 1 << 40;
/// The round-trip rule checks at most this many windows...
const ROUND_TRIP_WINDOWS: u64 = 1024;
/// ...starting within this many days of the first one.
const ROUND_TRIP_DAYS: i64 = 4 * 366;

/// What a partitions definition is, without its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionsKind {
    /// A fixed, ordered list of keys.
    Static,
    /// Formatted window starts on a cron or interval grid.
    TimeWindow,
    /// A named key set kept in storage.
    Dynamic,
    /// The cartesian product of named dimensions.
    Multi,
}

/// A compiled partitions definition. Serializes as its declared data and is compiled again (with
/// every construction rule checked) when deserialized.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PartitionsData", into = "PartitionsData")]
pub enum Partitions {
    /// See [`StaticPartitions`].
    Static(StaticPartitions),
    /// See [`TimeWindowPartitions`].
    TimeWindow(TimeWindowPartitions),
    /// See [`DynamicPartitions`].
    Dynamic(DynamicPartitions),
    /// See [`MultiPartitions`].
    Multi(MultiPartitions),
}

/// A fixed list of keys; the list order is the range order.
#[derive(Clone, Debug)]
pub struct StaticPartitions {
    keys: Vec<String>,
    index: HashMap<String, u64>,
}

/// Windows on a cron or interval grid, keyed by their formatted start.
#[derive(Clone, Debug)]
pub struct TimeWindowPartitions {
    /// The cron expression, when the grid is a cron grid.
    pub cron_schedule: Option<String>,
    /// The window length, when the grid is an interval grid.
    pub interval_seconds: Option<f64>,
    /// Naive start of the grid.
    pub start: NaiveDateTime,
    /// Exclusive bound on window starts.
    pub end: Option<NaiveDateTime>,
    /// The key format.
    pub fmt: String,
    grid: TimeGrid,
    format: KeyFormat,
}

/// A named key set kept in storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicPartitions {
    /// The set's name in storage.
    pub name: String,
}

/// Named dimensions, the first varying slowest.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiPartitions {
    /// `(name, definition)` in declaration order; no dimension is itself multi.
    pub dimensions: Vec<(String, Partitions)>,
    /// Position weight of each dimension (mixed radix, the first dimension most significant).
    pub(crate) weights: Vec<u128>,
}

/// What key enumeration depends on besides the definition: the clock (open-ended grids) and
/// the dynamic key sets in storage.
#[derive(Clone, Debug)]
pub struct PartitionEnv {
    /// The host's local wall-clock time.
    pub now: NaiveDateTime,
    dynamic: HashMap<String, Arc<DynamicKeys>>,
}

/// The current keys of one dynamic set with their registration numbers.
#[derive(Clone, Debug, Default)]
pub struct DynamicKeys {
    keys: Vec<String>,
    numbers: Vec<u64>,
    index: HashMap<String, usize>,
    /// Deleted keys by number: no longer partitions, but history recorded for them still
    /// names them.
    deleted: HashMap<u64, String>,
}

impl DynamicKeys {
    /// Keys in registration order with their registration numbers.
    pub fn new(entries: Vec<(String, u64)>) -> Self {
        let index = entries.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
        let (keys, numbers) = entries.into_iter().unzip();
        Self { keys, numbers, index, deleted: HashMap::new() }
    }

    /// These keys, knowing the numbers of deleted ones as well (for reading history).
    #[must_use]
    pub fn with_deleted(mut self, deleted: Vec<(String, u64)>) -> Self {
        self.deleted = deleted.into_iter().map(|(key, number)| (number, key)).collect();
        self
    }

    /// The keys in registration order.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

impl PartitionEnv {
    /// An environment at `now` with no dynamic key sets (dynamic definitions list no keys).
    pub fn at(now: NaiveDateTime) -> Self {
        Self { now, dynamic: HashMap::new() }
    }

    /// Adds the keys of one dynamic set (shared: a large set is read once and kept).
    pub fn with_dynamic(mut self, name: impl Into<String>, keys: impl Into<Arc<DynamicKeys>>) -> Self {
        self.dynamic.insert(name.into(), keys.into());
        self
    }

    fn dynamic(&self, name: &str) -> Option<&DynamicKeys> {
        self.dynamic.get(name).map(Arc::as_ref)
    }

    /// This environment with the dynamic key sets of `other` added.
    pub fn merged(mut self, other: PartitionEnv) -> Self {
        self.dynamic.extend(other.dynamic);
        self
    }
}

// ---- construction --------------------------------------------------------------------------

fn definition_error(message: impl Into<String>) -> Error {
    Error::PartitionDefinition(message.into())
}

fn check_key_text(what: &str, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(definition_error(format!("{what} must not be empty")));
    }
    if key.contains('|') || key.contains(',') {
        return Err(definition_error(format!(
            "{what} '{key}' contains '|' or ',', which partition keys may not contain"
        )));
    }
    Ok(())
}

impl Partitions {
    /// A static definition over `keys`, in that order.
    pub fn static_(keys: Vec<String>) -> Result<Self> {
        if keys.is_empty() {
            return Err(definition_error("a static partitions definition needs at least one key"));
        }
        let mut index = HashMap::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            check_key_text("static partition key", key)?;
            if index.insert(key.clone(), i as u64).is_some() {
                return Err(definition_error(format!("static partition key '{key}' is listed twice")));
            }
        }
        Ok(Self::Static(StaticPartitions { keys, index }))
    }

    /// One window per day from the first midnight at or after `start`.
    pub fn daily(start: NaiveDateTime, end: Option<NaiveDateTime>, fmt: Option<String>) -> Result<Self> {
        Self::time_window(start, Some("0 0 * * *".into()), None, end, Some(fmt.unwrap_or_else(|| DAILY_FORMAT.into())))
    }

    /// One window per hour from the first full hour at or after `start`.
    pub fn hourly(start: NaiveDateTime, end: Option<NaiveDateTime>, fmt: Option<String>) -> Result<Self> {
        Self::time_window(start, Some("0 * * * *".into()), None, end, Some(fmt.unwrap_or_else(|| HOURLY_FORMAT.into())))
    }

    /// Windows on a cron grid or of a fixed length; exactly one of the two must be given.
    pub fn time_window(
        start: NaiveDateTime,
        cron_schedule: Option<String>,
        interval_seconds: Option<f64>,
        end: Option<NaiveDateTime>,
        fmt: Option<String>,
    ) -> Result<Self> {
        let fmt = fmt.unwrap_or_else(|| DEFAULT_TIME_FORMAT.into());
        let grid = match (&cron_schedule, interval_seconds) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(definition_error("time_window needs exactly one of cron_schedule= and interval_seconds="));
            }
            (Some(cron), None) => {
                if start.and_utc().timestamp_subsec_nanos() != 0 {
                    return Err(definition_error(format!(
                        "start {start} has a fraction of a second, but cron grids have one-second resolution; \
                         start on a whole second"
                    )));
                }
                TimeGrid::cron(cron, start).map_err(definition_error)?
            }
            (None, Some(seconds)) => {
                let step_ns = seconds * 1e9;
                if !seconds.is_finite() || seconds <= 0.0 || step_ns.round() < 1.0 {
                    return Err(definition_error(format!(
                        "interval_seconds={seconds} must be a positive, finite number of at least one nanosecond"
                    )));
                }
                TimeGrid::interval(step_ns.round() as i128, start)
            }
        };
        if let Some(end) = end
            && end <= start
        {
            return Err(definition_error(format!("end {end} must come after start {start}")));
        }
        let format = KeyFormat::compile(&fmt).map_err(|e| definition_error(format!("fmt {fmt:?}: {e}")))?;
        let windows = TimeWindowPartitions { cron_schedule, interval_seconds, start, end, fmt, grid, format };
        windows.check_round_trip()?;
        Ok(Self::TimeWindow(windows))
    }

    /// A dynamic definition over the storage key set `name`.
    pub fn dynamic(name: String) -> Result<Self> {
        if name.is_empty() {
            return Err(definition_error("a dynamic partitions definition needs a non-empty name"));
        }
        Ok(Self::Dynamic(DynamicPartitions { name }))
    }

    /// The cartesian product of `dimensions`, the first varying slowest.
    pub fn multi(dimensions: Vec<(String, Partitions)>) -> Result<Self> {
        if dimensions.is_empty() {
            return Err(definition_error("a multi partitions definition needs at least one dimension"));
        }
        let mut seen = std::collections::HashSet::new();
        for (name, dim) in &dimensions {
            if name.is_empty() || name.contains(['|', ',', '=']) {
                return Err(definition_error(format!(
                    "dimension name '{name}' must be non-empty and must not contain '|', ',' or '='"
                )));
            }
            if !seen.insert(name.as_str()) {
                return Err(definition_error(format!("dimension '{name}' is declared twice")));
            }
            if matches!(dim, Partitions::Multi(_)) {
                return Err(definition_error(format!(
                    "dimension '{name}' is itself a multi definition; flatten its dimensions into this one"
                )));
            }
        }
        let mut weights = vec![1u128; dimensions.len()];
        for i in (0..dimensions.len().saturating_sub(1)).rev() {
            weights[i] = weights[i + 1].checked_mul(dimensions[i + 1].1.capacity()).ok_or_else(|| {
                definition_error("the dimensions of this multi definition are too large to number together")
            })?;
        }
        Ok(Self::Multi(MultiPartitions { dimensions, weights }))
    }
}

impl TimeWindowPartitions {
    /// R8: every window start in the checked span formats to a key that parses back to it.
    fn check_round_trip(&self) -> Result<()> {
        let horizon = self.grid.first() + TimeDelta::days(ROUND_TRIP_DAYS);
        for t in self.grid.iter_from(0).take(ROUND_TRIP_WINDOWS as usize) {
            if t > horizon || self.end.is_some_and(|end| t >= end) {
                break;
            }
            let key = self.format.render(t);
            if key.contains('|') || key.contains(',') {
                return Err(definition_error(format!(
                    "fmt {:?} renders the window starting {t} as '{key}', which contains '|' or ','",
                    self.fmt
                )));
            }
            if self.format.parse(&key) != Some(t) {
                return Err(definition_error(format!(
                    "fmt {:?} cannot tell windows apart: the window starting {t} is keyed '{key}', which does \
                     not parse back to that start; use a format as fine as the grid",
                    self.fmt
                )));
            }
        }
        Ok(())
    }

    /// Number of windows that exist now: starts before `end`, or at or before `now` when
    /// open-ended.
    pub fn count(&self, now: NaiveDateTime) -> u64 {
        match self.end {
            Some(end) => self.grid.count_before(end),
            None => self.grid.count_before(now + TimeDelta::nanoseconds(1)),
        }
    }

    /// The start of window `i`.
    pub fn window_start(&self, i: u64) -> Option<NaiveDateTime> {
        self.grid.tick(i)
    }

    /// The half-open window `i`; it ends where the next one starts.
    pub fn window(&self, i: u64) -> Option<(NaiveDateTime, NaiveDateTime)> {
        Some((self.grid.tick(i)?, self.grid.tick(i + 1)?))
    }

    /// The key of window `i`.
    pub fn key(&self, i: u64) -> Option<String> {
        self.grid.tick(i).map(|t| self.format.render(t))
    }

    /// Keys from window `from` on.
    pub fn keys_from(&self, from: u64) -> impl Iterator<Item = String> + '_ {
        let mut renderer = self.format.renderer();
        self.grid.iter_from(from).map(move |t| renderer.render(t))
    }

    /// Window starts from window `from` on.
    pub fn starts_from(&self, from: u64) -> impl Iterator<Item = NaiveDateTime> + '_ {
        self.grid.iter_from(from)
    }

    /// Renders a window start.
    pub fn render(&self, t: NaiveDateTime, out: &mut String) {
        self.format.render_into(t, out);
    }

    /// The window number of `key` if it is a window start on the grid (existence aside).
    pub fn grid_index(&self, key: &str) -> Option<u64> {
        self.grid.index_of(self.format.parse(key)?)
    }

    /// The parsed instant of `key`, on or off the grid.
    pub fn parse(&self, key: &str) -> Option<NaiveDateTime> {
        self.format.parse(key)
    }

    /// The number of windows starting before `t`.
    pub fn count_before(&self, t: NaiveDateTime) -> u64 {
        self.grid.count_before(t)
    }

    /// The first window start.
    pub fn first_start(&self) -> NaiveDateTime {
        self.grid.first()
    }

    /// Whether every window start of `other` is a window start here (same cron, or an interval
    /// grid that `other`'s interval grid is a coarsening of, with aligned starts).
    pub fn grid_contains(&self, other: &TimeWindowPartitions) -> bool {
        match (&self.cron_schedule, &other.cron_schedule) {
            (Some(a), Some(b)) => a.split_whitespace().eq(b.split_whitespace()) || same_ticks(self, other),
            _ => {
                let (Some(mine), Some(theirs)) = (self.interval_seconds, other.interval_seconds) else {
                    return same_ticks(self, other);
                };
                let (mine, theirs) = ((mine * 1e9).round() as i128, (theirs * 1e9).round() as i128);
                let offset = super::time_grid::nanos(other.grid.first()) - super::time_grid::nanos(self.grid.first());
                theirs % mine == 0 && offset % mine == 0
            }
        }
    }
}

/// Grids of different declarations that still share ticks (checked on a sample of windows).
fn same_ticks(a: &TimeWindowPartitions, b: &TimeWindowPartitions) -> bool {
    b.grid.iter_from(0).take(ROUND_TRIP_WINDOWS as usize).all(|t| a.grid.index_of(t).is_some())
}

impl PartialEq for TimeWindowPartitions {
    fn eq(&self, other: &Self) -> bool {
        self.cron_schedule == other.cron_schedule
            && self.interval_seconds == other.interval_seconds
            && self.start == other.start
            && self.end == other.end
            && self.fmt == other.fmt
    }
}

impl PartialEq for StaticPartitions {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
    }
}

impl StaticPartitions {
    /// The keys in order.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The list position of `key`.
    pub fn index_of(&self, key: &str) -> Option<u64> {
        self.index.get(key).copied()
    }
}

// ---- one-dimensional arithmetic ------------------------------------------------------------

impl Partitions {
    /// The kind.
    pub fn kind(&self) -> PartitionsKind {
        match self {
            Self::Static(_) => PartitionsKind::Static,
            Self::TimeWindow(_) => PartitionsKind::TimeWindow,
            Self::Dynamic(_) => PartitionsKind::Dynamic,
            Self::Multi(_) => PartitionsKind::Multi,
        }
    }

    /// The dimensions: `(name, definition)` for multi, one unnamed dimension otherwise.
    pub fn dimensions(&self) -> Vec<(&str, &Partitions)> {
        match self {
            Self::Multi(multi) => multi.dimensions.iter().map(|(n, d)| (n.as_str(), d)).collect(),
            other => vec![("", other)],
        }
    }

    /// The dimension named `name` of a multi definition.
    pub fn dimension(&self, name: &str) -> Option<&Partitions> {
        match self {
            Self::Multi(multi) => multi.dimensions.iter().find(|(n, _)| n == name).map(|(_, d)| d),
            _ => None,
        }
    }

    /// Number of keys of a one-dimensional definition that exist in `env`.
    pub fn dim_count(&self, env: &PartitionEnv) -> u64 {
        match self {
            Self::Static(s) => s.keys.len() as u64,
            Self::TimeWindow(t) => t.count(env.now),
            Self::Dynamic(d) => env.dynamic(&d.name).map_or(0, |keys| keys.keys.len() as u64),
            Self::Multi(_) => 0,
        }
    }

    /// Key number `i` of a one-dimensional definition.
    pub fn dim_value(&self, i: u64, env: &PartitionEnv) -> Option<String> {
        if i >= self.dim_count(env) {
            return None;
        }
        match self {
            Self::Static(s) => s.keys.get(i as usize).cloned(),
            Self::TimeWindow(t) => t.key(i),
            Self::Dynamic(d) => env.dynamic(&d.name)?.keys.get(i as usize).cloned(),
            Self::Multi(_) => None,
        }
    }

    /// The number of `value` in a one-dimensional definition, if it is a current key.
    pub fn dim_index(&self, value: &str, env: &PartitionEnv) -> Option<u64> {
        let i = match self {
            Self::Static(s) => s.index_of(value)?,
            Self::TimeWindow(t) => t.grid_index(value)?,
            Self::Dynamic(d) => *env.dynamic(&d.name)?.index.get(value)? as u64,
            Self::Multi(_) => return None,
        };
        (i < self.dim_count(env)).then_some(i)
    }

    /// Whether `value` is well formed for a one-dimensional definition, whether or not it exists
    /// now (dynamic values are not checked against storage).
    pub fn dim_accepts(&self, value: &str, env: &PartitionEnv) -> bool {
        match self {
            Self::Dynamic(_) => !value.is_empty() && !value.contains(['|', ',']),
            _ => self.dim_index(value, env).is_some(),
        }
    }

    /// The grid position of key number `i` (dynamic keys: their registration number).
    pub fn dim_position(&self, i: u64, env: &PartitionEnv) -> Option<u128> {
        match self {
            Self::Dynamic(d) => env.dynamic(&d.name)?.numbers.get(i as usize).map(|&n| u128::from(n)),
            Self::Multi(_) => None,
            _ => Some(u128::from(i)),
        }
    }

    /// The key number at grid position `position`, if that key exists in `env`.
    pub fn dim_index_at(&self, position: u128, env: &PartitionEnv) -> Option<u64> {
        match self {
            Self::Dynamic(d) => {
                let keys = env.dynamic(&d.name)?;
                let number = u64::try_from(position).ok()?;
                keys.numbers.binary_search(&number).ok().map(|i| i as u64)
            }
            Self::Multi(_) => None,
            _ => {
                let i = u64::try_from(position).ok()?;
                (i < self.dim_count(env)).then_some(i)
            }
        }
    }

    /// An exclusive upper bound of grid positions, fixed for the definition's life.
    pub fn capacity(&self) -> u128 {
        match self {
            Self::Static(s) => s.keys.len() as u128,
            Self::Dynamic(_) => DYNAMIC_CAPACITY,
            Self::TimeWindow(t) => {
                let horizon = NaiveDate::from_ymd_opt(10_000, 1, 1).map(|d| d.and_time(NaiveTime::MIN));
                let limit = match (t.end, horizon) {
                    (Some(end), _) => end,
                    (None, Some(h)) => h,
                    (None, None) => return u128::from(u64::MAX),
                };
                u128::from(t.grid.count_before(limit).max(1))
            }
            Self::Multi(multi) => multi.weights[0].saturating_mul(multi.dimensions[0].1.capacity()),
        }
    }
}

// ---- keys ----------------------------------------------------------------------------------

/// An individual partition as key numbers, one per dimension in declaration order.
pub type Coords = Vec<u64>;

impl Partitions {
    /// Every individual partition that exists in `env`, in enumeration order.
    pub fn count(&self, env: &PartitionEnv) -> u64 {
        match self {
            Self::Multi(multi) => multi.dimensions.iter().map(|(_, d)| d.dim_count(env)).product(),
            one => one.dim_count(env),
        }
    }

    /// The key of an individual partition.
    pub fn key_of(&self, coords: &[u64], env: &PartitionEnv) -> Option<PartitionKey> {
        match self {
            Self::Multi(multi) => {
                let mut dims = BTreeMap::new();
                for ((name, dim), &i) in multi.dimensions.iter().zip(coords) {
                    dims.insert(name.clone(), vec![dim.dim_value(i, env)?]);
                }
                Some(PartitionKey::Multi(dims))
            }
            one => Some(PartitionKey::Single(vec![one.dim_value(*coords.first()?, env)?])),
        }
    }

    /// The grid position of an individual partition.
    pub fn position(&self, coords: &[u64], env: &PartitionEnv) -> Option<u128> {
        match self {
            Self::Multi(multi) => {
                let mut position = 0u128;
                for (((_, dim), &i), weight) in multi.dimensions.iter().zip(coords).zip(&multi.weights) {
                    position = position.checked_add(dim.dim_position(i, env)?.checked_mul(*weight)?)?;
                }
                Some(position)
            }
            one => one.dim_position(*coords.first()?, env),
        }
    }

    /// The key of the individual partition at grid position `position` when it was recorded:
    /// like [`Partitions::coords_at`] then [`Partitions::key_of`], except that a dynamic
    /// value deleted since is still named (history keeps the keys it was written with).
    pub fn recorded_key_at(&self, position: u128, env: &PartitionEnv) -> Option<PartitionKey> {
        let value_at = |dim: &Partitions, dim_position: u128| match dim {
            Self::Dynamic(d) => {
                let keys = env.dynamic(&d.name)?;
                let number = u64::try_from(dim_position).ok()?;
                match keys.numbers.binary_search(&number) {
                    Ok(i) => keys.keys.get(i).cloned(),
                    Err(_) => keys.deleted.get(&number).cloned(),
                }
            }
            other => other.dim_value(other.dim_index_at(dim_position, env)?, env),
        };
        match self {
            Self::Multi(multi) => {
                let mut rest = position;
                let mut dims = BTreeMap::new();
                for ((name, dim), weight) in multi.dimensions.iter().zip(&multi.weights) {
                    dims.insert(name.clone(), vec![value_at(dim, rest / weight)?]);
                    rest %= weight;
                }
                Some(PartitionKey::Multi(dims))
            }
            one => Some(PartitionKey::Single(vec![value_at(one, position)?])),
        }
    }

    /// The individual partition at grid position `position`, if it exists in `env`.
    pub fn coords_at(&self, position: u128, env: &PartitionEnv) -> Option<Coords> {
        match self {
            Self::Multi(multi) => {
                let mut rest = position;
                let mut coords = Vec::with_capacity(multi.dimensions.len());
                for ((_, dim), weight) in multi.dimensions.iter().zip(&multi.weights) {
                    coords.push(dim.dim_index_at(rest / weight, env)?);
                    rest %= weight;
                }
                Some(coords)
            }
            one => Some(vec![one.dim_index_at(position, env)?]),
        }
    }

    /// The key numbers a key covers in each dimension, or why the key does not belong here.
    fn covered_values(&self, key: &PartitionKey, env: &PartitionEnv) -> std::result::Result<Vec<Vec<u64>>, String> {
        let lookup = |dim: &Partitions, dim_name: &str, values: &[String]| {
            let mut numbers = Vec::with_capacity(values.len());
            for value in values {
                match dim.dim_index(value, env) {
                    Some(i) => numbers.push(i),
                    None if matches!(dim, Partitions::Dynamic(_)) && dim.dim_accepts(value, env) => {
                        let Partitions::Dynamic(set) = dim else { unreachable!() };
                        return Err(format!(
                            "'{value}' is not a registered key of dynamic partitions '{name}'; add it with \
                             storage.add_dynamic_partitions('{name}', ['{value}'])",
                            name = set.name
                        ));
                    }
                    None if dim_name.is_empty() => return Err(format!("'{value}' is not a key of this definition")),
                    None => return Err(format!("'{value}' is not a key of dimension '{dim_name}'")),
                }
            }
            numbers.sort_unstable();
            numbers.dedup();
            Ok(numbers)
        };
        match (self, key) {
            (Self::Multi(multi), PartitionKey::Multi(dims)) => {
                if dims.len() != multi.dimensions.len() || multi.dimensions.iter().any(|(n, _)| !dims.contains_key(n)) {
                    let expected: Vec<&str> = multi.dimensions.iter().map(|(n, _)| n.as_str()).collect();
                    let given: Vec<&str> = dims.keys().map(String::as_str).collect();
                    return Err(format!("the key names dimensions {given:?}; the definition has {expected:?}"));
                }
                multi.dimensions.iter().map(|(name, dim)| lookup(dim, name, &dims[name])).collect()
            }
            (Self::Multi(_), PartitionKey::Single(_)) => {
                Err("a single-dimension key was given for a multi definition; use dim=value|dim=value".into())
            }
            (_, PartitionKey::Multi(_)) => Err("a multi key was given for a one-dimensional definition".into()),
            (one, PartitionKey::Single(values)) => Ok(vec![lookup(one, "", values)?]),
            (_, PartitionKey::Set(_)) => Err("a key set cannot be read as one cartesian key".into()),
        }
    }

    /// The individual partitions `key` covers, in enumeration order without duplicates, or why
    /// the key is not valid here.
    pub fn individuals(&self, key: &PartitionKey, env: &PartitionEnv) -> std::result::Result<Vec<Coords>, String> {
        if let PartitionKey::Set(keys) = key {
            let mut all = Vec::new();
            for member in keys {
                all.extend(self.individuals(member, env)?);
            }
            all.sort_unstable();
            all.dedup();
            return Ok(all);
        }
        let per_dim = self.covered_values(key, env)?;
        Ok(cartesian(&per_dim))
    }

    /// Whether every individual partition `key` covers is a current key (`validate_partition_key`).
    pub fn validate(&self, key: &PartitionKey, env: &PartitionEnv) -> bool {
        match key {
            PartitionKey::Set(keys) => keys.iter().all(|k| self.validate(k, env)),
            _ => self.accepts(key, env),
        }
    }

    fn accepts(&self, key: &PartitionKey, env: &PartitionEnv) -> bool {
        match (self, key) {
            (Self::Multi(multi), PartitionKey::Multi(dims)) => {
                dims.len() == multi.dimensions.len()
                    && multi.dimensions.iter().all(|(name, dim)| {
                        dims.get(name).is_some_and(|values| values.iter().all(|v| dim.dim_accepts(v, env)))
                    })
            }
            (Self::Multi(_), _) | (_, PartitionKey::Multi(_) | PartitionKey::Set(_)) => false,
            (one, PartitionKey::Single(values)) => values.iter().all(|v| one.dim_accepts(v, env)),
        }
    }

    /// Bundles individual partitions into one key: a cartesian key when they form a product,
    /// else a key set.
    pub fn bundle(&self, group: &[Coords], env: &PartitionEnv) -> Option<PartitionKey> {
        let dims = group.first()?.len();
        let mut per_dim: Vec<Vec<u64>> = vec![Vec::new(); dims];
        for coords in group {
            for (values, &i) in per_dim.iter_mut().zip(coords) {
                values.push(i);
            }
        }
        for values in &mut per_dim {
            values.sort_unstable();
            values.dedup();
        }
        let product: usize = per_dim.iter().map(Vec::len).product();
        if product != group.len() {
            let keys = group.iter().map(|c| self.key_of(c, env)).collect::<Option<Vec<_>>>()?;
            return Some(PartitionKey::Set(keys));
        }
        let names = self.dimensions();
        let values = |dim: &Partitions, numbers: &[u64]| -> Option<Vec<String>> {
            numbers.iter().map(|&i| dim.dim_value(i, env)).collect()
        };
        match self {
            Self::Multi(_) => {
                let mut map = BTreeMap::new();
                for ((name, dim), numbers) in names.iter().zip(&per_dim) {
                    map.insert((*name).to_owned(), values(dim, numbers)?);
                }
                Some(PartitionKey::Multi(map))
            }
            one => Some(PartitionKey::Single(values(one, &per_dim[0])?)),
        }
    }

    /// Every current individual partition in enumeration order (the first dimension slowest).
    pub fn all_coords(&self, env: &PartitionEnv) -> Vec<Coords> {
        let per_dim: Vec<Vec<u64>> =
            self.dimensions().iter().map(|(_, dim)| (0..dim.dim_count(env)).collect()).collect();
        cartesian(&per_dim)
    }
}

/// The cartesian product of per-dimension numbers, the first dimension slowest.
pub fn cartesian(per_dim: &[Vec<u64>]) -> Vec<Coords> {
    if per_dim.iter().any(Vec::is_empty) {
        return Vec::new();
    }
    let total: usize = per_dim.iter().map(Vec::len).product();
    let mut out = Vec::with_capacity(total);
    let mut cursor = vec![0usize; per_dim.len()];
    for _ in 0..total {
        out.push(cursor.iter().zip(per_dim).map(|(&c, values)| values[c]).collect());
        for d in (0..per_dim.len()).rev() {
            cursor[d] += 1;
            if cursor[d] < per_dim[d].len() {
                break;
            }
            cursor[d] = 0;
        }
    }
    out
}

// ---- serde form ----------------------------------------------------------------------------

/// The declared data of a definition, as stored and sent across processes. It may break the
/// construction rules; compiling it into [`Partitions`] checks them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum PartitionsData {
    Static {
        keys: Vec<String>,
    },
    TimeWindow {
        cron_schedule: Option<String>,
        interval_seconds: Option<f64>,
        start: NaiveDateTime,
        end: Option<NaiveDateTime>,
        fmt: String,
    },
    Dynamic {
        name: String,
    },
    Multi {
        dimensions: Vec<(String, PartitionsData)>,
    },
}

impl TryFrom<PartitionsData> for Partitions {
    type Error = Error;

    fn try_from(data: PartitionsData) -> Result<Self> {
        match data {
            PartitionsData::Static { keys } => Self::static_(keys),
            PartitionsData::TimeWindow { cron_schedule, interval_seconds, start, end, fmt } => {
                Self::time_window(start, cron_schedule, interval_seconds, end, Some(fmt))
            }
            PartitionsData::Dynamic { name } => Self::dynamic(name),
            PartitionsData::Multi { dimensions } => Self::multi(
                dimensions.into_iter().map(|(n, d)| Ok((n, Self::try_from(d)?))).collect::<Result<Vec<_>>>()?,
            ),
        }
    }
}

impl From<Partitions> for PartitionsData {
    fn from(partitions: Partitions) -> Self {
        match partitions {
            Partitions::Static(s) => Self::Static { keys: s.keys },
            Partitions::TimeWindow(t) => Self::TimeWindow {
                cron_schedule: t.cron_schedule,
                interval_seconds: t.interval_seconds,
                start: t.start,
                end: t.end,
                fmt: t.fmt,
            },
            Partitions::Dynamic(d) => Self::Dynamic { name: d.name },
            Partitions::Multi(m) => {
                Self::Multi { dimensions: m.dimensions.into_iter().map(|(n, d)| (n, d.into())).collect() }
            }
        }
    }
}
