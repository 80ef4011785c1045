//! Key formats of time-window partitions: a strftime-style pattern compiled once, then rendered
//! and parsed without a general-purpose formatter (enumeration renders millions of keys).
//!
//! Parsing is strict: a key is accepted only if rendering the parsed instant gives the same
//! text back, so every window start has exactly one key and every key one window start.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// The directives a key format may use, besides literal text.
pub const SUPPORTED_DIRECTIVES: &str = "%Y %y %m %d %H %M %S %f %j %s %%";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Literal(String),
    Year,
    Year2,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Micros,
    DayOfYear,
    Unix,
}

/// A compiled key format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFormat {
    items: Vec<Item>,
    /// Bytes of a typical key, to allocate each key once.
    width_hint: usize,
}

impl KeyFormat {
    /// Compiles `fmt`; the error names an unsupported directive.
    pub fn compile(fmt: &str) -> Result<Self, String> {
        let mut items = Vec::new();
        let mut literal = String::new();
        let mut chars = fmt.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let item = match chars.next() {
                Some('%') => {
                    literal.push('%');
                    continue;
                }
                Some('Y') => Item::Year,
                Some('y') => Item::Year2,
                Some('m') => Item::Month,
                Some('d') => Item::Day,
                Some('H') => Item::Hour,
                Some('M') => Item::Minute,
                Some('S') => Item::Second,
                Some('f') => Item::Micros,
                Some('j') => Item::DayOfYear,
                Some('s') => Item::Unix,
                Some(other) => {
                    return Err(format!(
                        "format directive '%{other}' is not supported in partition keys; use {SUPPORTED_DIRECTIVES}"
                    ));
                }
                None => return Err("format ends with a lone '%'; write '%%' for a literal percent sign".into()),
            };
            if !literal.is_empty() {
                items.push(Item::Literal(std::mem::take(&mut literal)));
            }
            items.push(item);
        }
        if !literal.is_empty() {
            items.push(Item::Literal(literal));
        }
        let width_hint = items
            .iter()
            .map(|item| match item {
                Item::Literal(text) => text.len(),
                Item::Year => 4,
                Item::DayOfYear => 3,
                Item::Micros => 6,
                Item::Unix => 12,
                _ => 2,
            })
            .sum();
        Ok(Self { items, width_hint })
    }

    /// Appends the key of `t` to `out`.
    pub fn render_into(&self, t: NaiveDateTime, out: &mut String) {
        self.render_civil(&Civil::of(t.date()), t, out);
    }

    fn render_civil(&self, civil: &Civil, t: NaiveDateTime, out: &mut String) {
        for item in &self.items {
            self.render_item(item, civil, t, out);
        }
    }

    fn render_item(&self, item: &Item, civil: &Civil, t: NaiveDateTime, out: &mut String) {
        let seconds = t.num_seconds_from_midnight();
        match item {
            Item::Literal(text) => out.push_str(text),
            Item::Year => {
                if (0..=9999).contains(&civil.year) {
                    push_padded(out, civil.year as u32, 4);
                } else {
                    let _ = write!(out, "{}", civil.year);
                }
            }
            Item::Year2 => push_padded(out, civil.year.rem_euclid(100) as u32, 2),
            Item::Month => push_padded(out, civil.month, 2),
            Item::Day => push_padded(out, civil.day, 2),
            Item::Hour => push_padded(out, seconds / 3600, 2),
            Item::Minute => push_padded(out, seconds / 60 % 60, 2),
            Item::Second => push_padded(out, seconds % 60, 2),
            Item::Micros => push_padded(out, t.nanosecond() / 1000, 6),
            Item::DayOfYear => push_padded(out, civil.ordinal, 3),
            Item::Unix => {
                let _ = write!(out, "{}", t.and_utc().timestamp());
            }
        }
    }

    /// A renderer for keys of ascending instants: calendar fields are computed once per day.
    pub fn renderer(&self) -> KeyRenderer<'_> {
        KeyRenderer { format: self, day: None }
    }

    /// The key of `t`.
    pub fn render(&self, t: NaiveDateTime) -> String {
        let mut out = String::with_capacity(self.width_hint);
        self.render_into(t, &mut out);
        out
    }

    /// The instant whose key is exactly `text`, or `None`. Calendar fields the format lacks
    /// default to the start of the enclosing period (year 1900, month 1, day 1, 00:00:00).
    pub fn parse(&self, text: &str) -> Option<NaiveDateTime> {
        let mut fields = Fields::default();
        let mut rest = text;
        for item in &self.items {
            rest = match item {
                Item::Literal(lit) => rest.strip_prefix(lit.as_str())?,
                Item::Year => take_digits(rest, 4, &mut fields.year)?,
                Item::Year2 => {
                    let mut yy = None;
                    let rest = take_digits(rest, 2, &mut yy)?;
                    fields.year = yy.map(|y| if y >= 69 { 1900 + y } else { 2000 + y });
                    rest
                }
                Item::Month => take_digits(rest, 2, &mut fields.month)?,
                Item::Day => take_digits(rest, 2, &mut fields.day)?,
                Item::Hour => take_digits(rest, 2, &mut fields.hour)?,
                Item::Minute => take_digits(rest, 2, &mut fields.minute)?,
                Item::Second => take_digits(rest, 2, &mut fields.second)?,
                Item::Micros => take_digits(rest, 6, &mut fields.micros)?,
                Item::DayOfYear => take_digits(rest, 3, &mut fields.ordinal)?,
                Item::Unix => {
                    let negative = rest.starts_with('-');
                    let body = if negative { &rest[1..] } else { rest };
                    let len = body.bytes().take_while(u8::is_ascii_digit).count();
                    if len == 0 {
                        return None;
                    }
                    let value: i64 = body[..len].parse().ok()?;
                    fields.unix = Some(if negative { -value } else { value });
                    &body[len..]
                }
            };
        }
        if !rest.is_empty() {
            return None;
        }
        let instant = fields.instant()?;
        (self.render(instant) == text).then_some(instant)
    }
}

/// Renders keys of ascending instants: each day's key is rendered once as a template, and each
/// instant patches its time-of-day digits into a copy (enumeration renders millions of keys).
pub struct KeyRenderer<'a> {
    format: &'a KeyFormat,
    day: Option<DayTemplate>,
}

struct DayTemplate {
    date: NaiveDate,
    bytes: Vec<u8>,
    /// Byte offset and field of each time-of-day directive; `None` when the format has a
    /// directive of variable width (`%s`), which is rendered in full instead.
    slots: Option<Vec<(usize, Item)>>,
}

impl KeyRenderer<'_> {
    /// The key of `t`.
    pub fn render(&mut self, t: NaiveDateTime) -> String {
        let date = t.date();
        if self.day.as_ref().is_none_or(|day| day.date != date) {
            self.day = Some(self.format.day_template(date));
        }
        let Some(DayTemplate { bytes, slots: Some(slots), .. }) = &self.day else {
            return self.format.render(t);
        };
        let mut key = bytes.clone();
        let seconds = t.num_seconds_from_midnight();
        for (offset, item) in slots {
            let (value, width) = match item {
                Item::Hour => (seconds / 3600, 2),
                Item::Minute => (seconds / 60 % 60, 2),
                Item::Second => (seconds % 60, 2),
                _ => (t.nanosecond() / 1000, 6),
            };
            write_digits(&mut key[*offset..*offset + width], value);
        }
        String::from_utf8(key).unwrap_or_default()
    }
}

fn write_digits(slot: &mut [u8], mut value: u32) {
    for byte in slot.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl KeyFormat {
    fn day_template(&self, date: NaiveDate) -> DayTemplate {
        let civil = Civil::of(date);
        let midnight = date.and_time(NaiveTime::MIN);
        let mut text = String::with_capacity(self.width_hint);
        let mut slots = Some(Vec::new());
        for item in &self.items {
            let offset = text.len();
            self.render_item(item, &civil, midnight, &mut text);
            match item {
                Item::Hour | Item::Minute | Item::Second | Item::Micros => {
                    if let Some(slots) = &mut slots {
                        slots.push((offset, item.clone()));
                    }
                }
                Item::Unix => slots = None,
                _ => {}
            }
        }
        DayTemplate { date, bytes: text.into_bytes(), slots }
    }
}

struct Civil {
    year: i32,
    month: u32,
    day: u32,
    ordinal: u32,
}

impl Civil {
    fn of(date: NaiveDate) -> Self {
        Self { year: date.year(), month: date.month(), day: date.day(), ordinal: date.ordinal() }
    }
}

#[derive(Default)]
struct Fields {
    year: Option<u32>,
    month: Option<u32>,
    day: Option<u32>,
    hour: Option<u32>,
    minute: Option<u32>,
    second: Option<u32>,
    micros: Option<u32>,
    ordinal: Option<u32>,
    unix: Option<i64>,
}

impl Fields {
    fn instant(&self) -> Option<NaiveDateTime> {
        if let Some(unix) = self.unix {
            let base = DateTime::from_timestamp(unix, 0)?.naive_utc();
            return base.with_nanosecond(self.micros.unwrap_or(0) * 1000);
        }
        let year = self.year.unwrap_or(1900) as i32;
        let date = match (self.ordinal, self.month, self.day) {
            (Some(ordinal), None, None) => NaiveDate::from_yo_opt(year, ordinal)?,
            _ => NaiveDate::from_ymd_opt(year, self.month.unwrap_or(1), self.day.unwrap_or(1))?,
        };
        let time = NaiveTime::from_hms_micro_opt(
            self.hour.unwrap_or(0),
            self.minute.unwrap_or(0),
            self.second.unwrap_or(0),
            self.micros.unwrap_or(0),
        )?;
        Some(date.and_time(time))
    }
}

/// Reads exactly `width` ASCII digits.
fn take_digits<'a>(text: &'a str, width: usize, slot: &mut Option<u32>) -> Option<&'a str> {
    let digits = text.as_bytes().get(..width)?;
    let mut value = 0u32;
    for d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(d - b'0');
    }
    *slot = Some(value);
    Some(&text[width..])
}

fn push_padded(out: &mut String, value: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut v = value;
    let mut i = buf.len();
    while v > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let start = i.min(buf.len() - width);
    for &digit in &buf[start..] {
        out.push(char::from(digit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d).unwrap().and_hms_opt(h, mi, s).unwrap()
    }

    #[test]
    fn renders_and_parses_every_directive() {
        let fmt = KeyFormat::compile("%Y-%m-%dT%H:%M:%S.%f|%y|%j|%%").unwrap();
        let t = at(2024, 3, 1, 7, 5, 9).with_nanosecond(120_000).unwrap();
        assert_eq!(fmt.render(t), "2024-03-01T07:05:09.000120|24|061|%");
        assert_eq!(fmt.parse("2024-03-01T07:05:09.000120|24|061|%"), Some(t));
        let unix = KeyFormat::compile("%s").unwrap();
        assert_eq!(unix.render(at(1970, 1, 2, 0, 0, 0)), "86400");
        assert_eq!(unix.parse("86400"), Some(at(1970, 1, 2, 0, 0, 0)));
    }

    #[test]
    fn missing_fields_default_to_the_start_of_the_period() {
        assert_eq!(KeyFormat::compile("%Y-%m").unwrap().parse("2024-05"), Some(at(2024, 5, 1, 0, 0, 0)));
        assert_eq!(KeyFormat::compile("%Y").unwrap().parse("2020"), Some(at(2020, 1, 1, 0, 0, 0)));
        assert_eq!(KeyFormat::compile("%Y/%j").unwrap().parse("2024/032"), Some(at(2024, 2, 1, 0, 0, 0)));
    }

    #[test]
    fn parsing_is_strict() {
        let fmt = KeyFormat::compile("%Y-%m-%d").unwrap();
        assert_eq!(fmt.parse("2024-1-05"), None);
        assert_eq!(fmt.parse("2024-02-30"), None);
        assert_eq!(fmt.parse("2024-01-05x"), None);
        assert_eq!(fmt.parse("garbage"), None);
    }

    #[test]
    fn the_day_template_renderer_matches_full_rendering() {
        for fmt in ["%Y-%m-%dT%H:%M:%S", "%H%M%S.%f on %j/%y", "%s", "%Y%m%d"] {
            let format = KeyFormat::compile(fmt).unwrap();
            let mut renderer = format.renderer();
            let mut t = at(2023, 12, 31, 23, 58, 0).with_nanosecond(250_000).unwrap();
            for _ in 0..200 {
                assert_eq!(renderer.render(t), format.render(t), "{fmt} at {t}");
                t += chrono::TimeDelta::seconds(37);
            }
        }
    }

    #[test]
    fn unsupported_directives_are_named() {
        let err = KeyFormat::compile("%Y-%b").unwrap_err();
        assert!(err.contains("'%b'"), "{err}");
    }
}
