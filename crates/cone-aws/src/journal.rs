//! What a sync has read so far, kept where it outlives the process, so that a sync that stops part-way (a crash, a
//! call that kept failing) resumes where it stopped instead of reading everything again.
//!
//! A sync is mostly many small units of the same kind: one per group (its members), per permission set, per
//! account (what is provisioned there) and per principal or (account, permission set) pair (the assignments).
//! Each finished unit's result is recorded in the [`Journal`]; the next sync takes a unit from the journal if it was
//! recorded within the last 30 minutes. Whoever stores a completed sync clears the journal, so that a journal only
//! ever speeds up the sync after one that did not finish. The cheap top-level listings (accounts, permission sets,
//! users, groups) are always read again: a principal or group that is gone is not asked about, one that is new is.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::AnyPool;

use crate::error::ConnectorError;

/// Units recorded longer ago than this (milliseconds) are read again: the journal resumes an interrupted sync, it is
/// not a cache.
const RESUME_WITHIN: i64 = 30 * 60 * 1000;

pub type JournalError = Box<dyn std::error::Error + Send + Sync>;

/// Storage for a sync's finished units: a table of `unit` (text key) → `body` (JSON text) and when it was recorded
/// (unix milliseconds, so that a sync restarted at once can tell its own entries from the interrupted one's). A
/// journal that fails to read or write slows a resumed sync down; it never fails a sync.
pub trait Journal: Send + Sync {
    /// The body recorded for `unit` at or after `since` and before `until`, with when it was recorded.
    fn recall<'a>(
        &'a self,
        unit: &'a str,
        since: i64,
        until: i64,
    ) -> BoxFuture<'a, Result<Option<(String, i64)>, JournalError>>;
    /// Records `body` for `unit` at `at`, replacing what was recorded for it before.
    fn record<'a>(&'a self, unit: &'a str, body: &'a str, at: i64) -> BoxFuture<'a, Result<(), JournalError>>;
}

/// No journal: every unit is read from AWS, and nothing is kept.
pub struct NoJournal;

impl Journal for NoJournal {
    fn recall<'a>(&'a self, _: &'a str, _: i64, _: i64) -> BoxFuture<'a, Result<Option<(String, i64)>, JournalError>> {
        Box::pin(async { Ok(None) })
    }
    fn record<'a>(&'a self, _: &'a str, _: &'a str, _: i64) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A journal in a SQL table of `(unit TEXT PRIMARY KEY, body TEXT NOT NULL, recorded_at BIGINT NOT NULL)`, on SQLite
/// or PostgreSQL. The table is this type's own: [`SqlJournal::open`] creates it where it is missing.
pub struct SqlJournal {
    pool: AnyPool,
    recall: String,
    record: String,
    clear: String,
}

impl SqlJournal {
    /// The journal in `table` (a trusted name: it is written into the statements), created if missing.
    pub async fn open(pool: AnyPool, table: &str) -> Result<SqlJournal, JournalError> {
        create_table(
            &pool,
            table,
            &format!(
                "CREATE TABLE IF NOT EXISTS {table} (unit TEXT PRIMARY KEY, body TEXT NOT NULL, recorded_at BIGINT NOT NULL)"
            ),
        )
        .await?;
        Ok(SqlJournal {
            pool,
            recall: format!(
                "SELECT body, recorded_at FROM {table} WHERE unit = $1 AND recorded_at >= $2 AND recorded_at < $3"
            ),
            record: format!(
                "INSERT INTO {table} (unit, body, recorded_at) VALUES ($1, $2, $3)
                 ON CONFLICT (unit) DO UPDATE SET body = excluded.body, recorded_at = excluded.recorded_at"
            ),
            clear: format!("DELETE FROM {table}"),
        })
    }

    /// Forgets every unit, on `conn` (so that a consumer clears the journal in the transaction that stores the
    /// sync it served).
    pub async fn clear(&self, conn: &mut sqlx::AnyConnection) -> Result<(), JournalError> {
        sqlx::query(&self.clear).execute(conn).await?;
        Ok(())
    }
}

/// Runs `create` (a `CREATE ... IF NOT EXISTS` of `table`). On PostgreSQL two processes creating the same table at
/// once can fail the second although the table then exists; a table that answers is taken as made.
pub(crate) async fn create_table(pool: &AnyPool, table: &str, create: &str) -> Result<(), JournalError> {
    match sqlx::query(create).execute(pool).await {
        Err(e) if sqlx::query(&format!("SELECT 1 FROM {table} LIMIT 0")).execute(pool).await.is_err() => Err(e.into()),
        _ => Ok(()),
    }
}

impl Journal for SqlJournal {
    fn recall<'a>(
        &'a self,
        unit: &'a str,
        since: i64,
        until: i64,
    ) -> BoxFuture<'a, Result<Option<(String, i64)>, JournalError>> {
        Box::pin(async move {
            let row =
                sqlx::query_as(&self.recall).bind(unit).bind(since).bind(until).fetch_optional(&self.pool).await?;
            Ok(row)
        })
    }

    fn record<'a>(&'a self, unit: &'a str, body: &'a str, at: i64) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            sqlx::query(&self.record).bind(unit).bind(body).bind(at).execute(&self.pool).await?;
            Ok(())
        })
    }
}

/// What a sync took from its journal rather than from AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Resumed {
    /// Units taken from the journal.
    pub units: usize,
    /// Units read from AWS (and recorded).
    pub read: usize,
    /// When the oldest unit taken was recorded (unix seconds, rounded down): what the sync reports is as of then at
    /// the earliest.
    pub oldest: i64,
}

/// One sync's use of its journal: the units under one Identity Center instance, and what was taken.
pub(crate) struct Units<'a> {
    journal: &'a dyn Journal,
    scope: String,
    since: i64,
    /// When this sync started: what it recorded itself is not resumed from.
    until: i64,
    taken: AtomicUsize,
    read: AtomicUsize,
    oldest: Mutex<Option<i64>>,
}

impl<'a> Units<'a> {
    pub(crate) fn new(journal: &'a dyn Journal, instance_arn: &str) -> Units<'a> {
        let now = now();
        Units {
            journal,
            scope: instance_arn.to_string(),
            since: now - RESUME_WITHIN,
            until: now,
            taken: AtomicUsize::new(0),
            read: AtomicUsize::new(0),
            oldest: Mutex::new(None),
        }
    }

    /// The unit `kind`/`id` from the journal, or else `read` from AWS and recorded.
    pub(crate) async fn unit<T, F>(&self, kind: &str, id: &str, read: F) -> Result<T, ConnectorError>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, ConnectorError>>,
    {
        let key = format!("{} {kind} {id}", self.scope);
        match self.journal.recall(&key, self.since, self.until).await {
            Ok(Some((body, at))) => match serde_json::from_str(&body) {
                Ok(value) => {
                    self.taken.fetch_add(1, Ordering::Relaxed);
                    let mut oldest = self.oldest.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    *oldest = Some(oldest.map_or(at, |o| o.min(at)));
                    return Ok(value);
                }
                // Written by another version of the connector, say: read it again.
                Err(e) => tracing::debug!(unit = key, "unreadable journal entry, reading it again: {e}"),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(unit = key, "cannot read the sync journal, reading from AWS instead: {e}"),
        }
        let value = read.await?;
        self.read.fetch_add(1, Ordering::Relaxed);
        match serde_json::to_string(&value) {
            Ok(body) => {
                if let Err(e) = self.journal.record(&key, &body, now()).await {
                    tracing::warn!(unit = key, "cannot write the sync journal; a resumed sync reads this again: {e}");
                }
            }
            Err(e) => tracing::warn!(unit = key, "cannot encode a journal entry: {e}"),
        }
        Ok(value)
    }

    /// What was resumed, if anything.
    pub(crate) fn finish(self) -> Option<Resumed> {
        let oldest = self.oldest.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())?;
        Some(Resumed { units: self.taken.into_inner(), read: self.read.into_inner(), oldest: oldest.div_euclid(1000) })
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
