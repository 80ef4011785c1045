//! Run priority: default 0, backfill runs -10, and the `rivers/priority` run tag overriding
//! either on every launch path when its value is an integer (any other value is ignored).

/// The run tag that overrides a run's priority.
pub const PRIORITY_TAG: &str = "rivers/priority";

/// The priority of a run without the tag.
pub const DEFAULT_PRIORITY: i64 = 0;

/// The priority of a backfill's runs without the tag.
pub const BACKFILL_PRIORITY: i64 = -10;

/// `rivers/priority` as an integer; `None` when absent or not an integer.
pub fn priority_of(tags: &[(String, String)]) -> Option<i64> {
    tags.iter().find(|(key, _)| key == PRIORITY_TAG).and_then(|(_, value)| value.trim().parse().ok())
}

/// The priority of a run tagged `tags`: the tag's when it is an integer, else `default`.
pub fn run_priority(tags: &[(String, String)], default: i64) -> i64 {
    priority_of(tags).unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn the_priority_tag_is_read_only_when_it_is_an_integer() {
        assert_eq!(priority_of(&pairs(&[(PRIORITY_TAG, "5")])), Some(5));
        assert_eq!(priority_of(&pairs(&[(PRIORITY_TAG, "-3")])), Some(-3));
        assert_eq!(priority_of(&pairs(&[(PRIORITY_TAG, "high")])), None);
        assert_eq!(priority_of(&[]), None);
        assert_eq!(run_priority(&pairs(&[(PRIORITY_TAG, "high")]), BACKFILL_PRIORITY), BACKFILL_PRIORITY);
    }
}
