//! The services: what the API and the console can do, each a function of plain values (the caller, ids, typed
//! filters) that checks, decides with `cone_core` and records through the store, answering with `cone_api` types or
//! an [`Error`](crate::error::Error). Neither HTTP nor the console's forms reach below this line.

pub mod access;
pub mod audit;
pub mod auth;
pub mod connector;
pub mod entitlements;
pub mod iam;
pub mod notifications;
pub mod operations;
pub mod reviews;
pub mod slack;
pub mod tasks;
pub mod tokens;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};

pub(crate) fn time(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

/// The number a page token carries (0 without one): an offset, or the audit log's last id. Clients treat it as
/// opaque.
pub(crate) fn page_token(token: Option<&str>) -> Result<i64> {
    match token {
        None | Some("") => Ok(0),
        Some(t) => t
            .parse()
            .ok()
            .filter(|n: &i64| *n >= 0)
            .ok_or_else(|| Error::invalid("Invalid page_token; start again without one.")),
    }
}

/// A page of a list: `size` rows from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: i64,
    pub size: i64,
}

impl Page {
    /// The page a client asks for with `token` (the previous page's `next_page_token`) and `size`: `default` rows
    /// when absent, at least 1 and at most `max`.
    pub fn new(token: Option<&str>, size: Option<i64>, default: i64, max: i64) -> Result<Page> {
        Ok(Page { offset: page_token(token)?, size: size.unwrap_or(default).clamp(1, max) })
    }

    /// How many rows to read: one more than the page, to tell whether another page exists.
    pub fn limit(self) -> i64 {
        self.size.saturating_add(1)
    }

    /// The page of `rows` (read with [`Page::limit`]) and the next page's token, when there is one.
    pub fn cut<T>(self, mut rows: Vec<T>) -> (Vec<T>, Option<String>) {
        let next = (rows.len() as i64 > self.size).then(|| self.offset.saturating_add(self.size).to_string());
        rows.truncate(usize::try_from(self.size).unwrap_or(0));
        (rows, next)
    }
}
