//! Duration strings of the automation API: a number and a unit (`ms`, `s`, `m`, `h`, `d`),
//! units combinable (`"1h30m"`, `"250ms"`).

use std::time::Duration;

/// Why a duration string is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration: {reason}; write a number and a unit (ms, s, m, h, d), e.g. \"30s\" or \"1h30m\"")]
pub struct DurationError {
    text: String,
    reason: String,
}

/// Parses a duration string such as `"250ms"`, `"30s"`, `"5m"` or `"1h30m"`.
///
/// # Errors
/// A string without a unit, with an unknown unit, or not a number.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(text.trim())
        .map_err(|error| DurationError { text: text.to_owned(), reason: error.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_combine_and_milliseconds_are_exact() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
    }

    #[test]
    fn a_number_without_unit_or_an_unknown_unit_is_rejected_with_the_text() {
        for bad in ["30", "", "5 parsecs", "soon"] {
            let error = parse_duration(bad).unwrap_err().to_string();
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
    }
}
