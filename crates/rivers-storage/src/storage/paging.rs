//! Cursors for newest-first pages read from an index on (…, time): runs by creation time,
//! backfills by submission time.
//!
//! A page ends at some time `t`; several records may share it. The next page reads from `t`
//! down again and drops the records of `t` already listed, so each page costs what its records
//! cost however deep it is, and records created meanwhile never shift it.

use serde::{Deserialize, Serialize};

/// Where the next page starts: before `at`, or at it for the records not yet listed. Opaque to
/// callers; serialisable, so that a UI can hand it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageCursor {
    at: i64,
    listed: Vec<String>,
}

/// A newest-first page of `T`, with the cursor `C` of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, C = PageCursor> {
    /// The records.
    pub items: Vec<T>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<C>,
}

/// How many records a page after `after` reads to return `limit` (the listed ones come back).
pub(crate) fn fetch_size(limit: usize, after: Option<&PageCursor>) -> usize {
    limit + after.map_or(0, |cursor| cursor.listed.len())
}

/// The time bound a page after `after` reads from.
pub(crate) fn bound(after: Option<&PageCursor>) -> Option<i64> {
    after.map(|cursor| cursor.at)
}

/// Cuts `read` (newest first, bounded by [`bound`]) into the page after `after`: drops what
/// was listed, keeps `limit`, and says where the next page starts.
pub(crate) fn page<T>(
    mut read: Vec<T>,
    limit: usize,
    after: Option<&PageCursor>,
    time: impl Fn(&T) -> i64,
    id: impl Fn(&T) -> &str,
) -> Page<T> {
    if let Some(cursor) = after {
        read.retain(|item| time(item) < cursor.at || !cursor.listed.iter().any(|listed| listed == id(item)));
    }
    read.truncate(limit);
    let next = (read.len() == limit && limit > 0).then(|| {
        let at = time(&read[limit - 1]);
        let mut listed: Vec<String> =
            read.iter().filter(|item| time(item) == at).map(|item| id(item).to_owned()).collect();
        if let Some(cursor) = after.filter(|cursor| cursor.at == at) {
            listed.extend(cursor.listed.iter().cloned());
        }
        PageCursor { at, listed }
    });
    Page { items: read, next }
}
