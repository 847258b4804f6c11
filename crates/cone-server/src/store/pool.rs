//! The connection pool and writing transactions, the few places where SQLite and PostgreSQL differ, and the
//! in-memory reads of the hot path.
//!
//! Writers run one at a time on both backends: within a process they queue before taking a connection; then
//! SQLite takes the write lock up front (`BEGIN IMMEDIATE`), PostgreSQL a transaction-scoped advisory lock (for
//! the other replicas). Every read-then-write of the store (and the audit chain) relies on
//! that; only the claiming of jobs and webhook deliveries runs beside other writers on PostgreSQL, with
//! `FOR UPDATE SKIP LOCKED`.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Executor, Transaction};
use tokio::sync::{Notify, OwnedMutexGuard};

use super::cache::{Cached, Generation};
use super::rows::{EntitlementRow, UserRow};
use crate::config::Database;

/// A writing transaction (see [`Db::begin`]). It dereferences to its connection, so statements run on `&mut **tx`;
/// it also knows the webhooks, so that an audit entry can queue their deliveries in it, and the cached reads'
/// generation.
pub struct Tx {
    inner: Transaction<'static, sqlx::Any>,
    pub(super) outbox: Arc<Outbox>,
    pub(super) queued: bool,
    /// Something to notify people of was recorded or queued.
    pub(super) notified: bool,
    pub(super) denials: Arc<Denials>,
    /// An early end to deny the sessions of was recorded.
    pub(super) denied: bool,
    generation: Generation,
    pub(super) backend: Backend,
    /// Declared after `inner`, so that the next writer's turn comes after this transaction's end.
    _turn: OwnedMutexGuard<()>,
}

impl Tx {
    /// Commits; then cached reads from before stop answering, and the webhook worker wakes if deliveries were
    /// queued.
    pub async fn commit(self) -> Result<()> {
        self.inner.commit().await?;
        self.generation.advance();
        if self.queued {
            self.outbox.queued.notify_one();
        }
        if self.notified {
            self.outbox.news.notify_one();
        }
        if self.denied {
            self.denials.changed.notify_one();
        }
        Ok(())
    }
}

impl Tx {
    /// Ends a transaction that wrote nothing, now, rather than leaving sqlx to roll it back after the drop.
    pub async fn rollback(self) -> Result<()> {
        Ok(self.inner.rollback().await?)
    }
}

impl Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

/// The webhooks recorded events are queued for (name and event patterns), and how the worker that sends them is
/// woken.
#[derive(Default)]
pub struct Outbox {
    routes: Vec<(String, Vec<String>)>,
    pub(super) queued: Notify,
    /// Wakes the notifier.
    pub(super) news: Notify,
}

impl Outbox {
    /// The names of the webhooks subscribed to `event`.
    pub(super) fn subscribers(&self, event: &str) -> Vec<&str> {
        self.routes
            .iter()
            .filter(|(_, patterns)| patterns.iter().any(|p| crate::webhooks::matches(p, event)))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// Whether an early end also denies the role sessions issued before it (`aws.revoke_sessions`), and how the worker
/// that keeps the deny policy in AWS is woken.
#[derive(Default)]
pub struct Denials {
    pub(super) on: bool,
    pub(super) changed: Notify,
}

/// How the connector's calls are waited for (`connector`): queued ones by the hosts' long polls, answered ones by
/// the workers that queued them. Waiters enable their `Notified` before they look at the table.
#[derive(Default)]
pub struct CallSignals {
    pub(super) queued: Notify,
    pub(super) answered: Notify,
    /// When this process last recorded each connector host's contact: recorded again only after a while, so that a
    /// busy connector's every request is not a write.
    pub(super) contacts: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    /// The calls this process queued and waits on: a host's answer reaching this process is handed over here,
    /// without being written down for another replica to read.
    pub(super) waiting: std::sync::Mutex<std::collections::HashMap<i64, tokio::sync::oneshot::Sender<String>>>,
}

/// The store. Its pool is its own: every statement of the server is in this module.
#[derive(Clone)]
pub struct Db {
    pub(super) pool: AnyPool,
    pub(super) backend: Backend,
    outbox: Arc<Outbox>,
    denials: Arc<Denials>,
    pub(super) calls: Arc<CallSignals>,
    pub(super) reads: Arc<Reads>,
    pub(super) journal: Arc<cone_aws::journal::SqlJournal>,
    /// This process's writers queue here before they take a connection. Waiting for the database's write lock
    /// inside a connection would let writers fill the pool while the one holding the lock waits for a connection
    /// to read a spool part: stuck until SQLite's busy timeout.
    turns: Arc<tokio::sync::Mutex<()>>,
}

/// The hot path's reads in memory (see `cache`): a token's user and expiry, a user's active grants and what they
/// hold through groups, an entitlement by (app, id).
#[derive(Default)]
pub(super) struct Reads {
    pub(super) generation: Generation,
    pub(super) tokens: Cached<String, Option<(UserRow, i64)>>,
    pub(super) grants: Cached<i64, Vec<(String, String, i64)>>,
    pub(super) through_groups: Cached<i64, Vec<(String, String, String)>>,
    pub(super) entitlements: Cached<(String, String), Option<EntitlementRow>>,
    /// The whole catalog and its group routes, which every catalog page and search reads.
    pub(super) catalog: Cached<(), Arc<Vec<EntitlementRow>>>,
    pub(super) group_routes: Cached<(), Arc<Vec<super::rows::GroupRouteRow>>>,
}

/// Where the SQL of the two backends differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The advisory lock key PostgreSQL writers hold for their transaction (any constant; "cone" in ASCII).
const WRITER_LOCK: i64 = 0x636f_6e65;
/// The advisory lock key job claims hold for their transaction ("job" in ASCII).
const CLAIM_LOCK: i64 = 0x006a_6f62;

impl Backend {
    /// A table expression of the values of a JSON array bound as text at `param`, as a column `value`.
    pub(super) fn json_values(self, param: &str) -> String {
        match self {
            Backend::Sqlite => format!("json_each({param})"),
            Backend::Postgres => format!("json_array_elements_text({param}::json)"),
        }
    }

    /// A subquery of the row ids in a JSON array bound as text at `param`: one statement for any number of rows,
    /// where a list of placeholders would need one per row and a limit.
    pub(super) fn json_ids(self, param: &str) -> String {
        format!("SELECT CAST(value AS BIGINT) FROM {}", self.json_values(param))
    }

    /// Locks the rows of `table` (a name or alias) a claim selects; a row another replica is claiming is skipped
    /// rather than waited for.
    pub(super) fn skip_locked(self, table: &str) -> String {
        match self {
            Backend::Sqlite => String::new(),
            Backend::Postgres => format!(" FOR UPDATE OF {table} SKIP LOCKED"),
        }
    }

    fn begin_statement(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }
}

/// Makes the SQLite file (created if need be) and its WAL and shared-memory files, if any, readable by their owner
/// only: the database holds every secret's hash and the audit log. SQLite gives the files it creates later the
/// database file's mode.
fn owner_only(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let private = std::fs::Permissions::from_mode(0o600);
    let fix = |path: &std::path::Path| {
        std::fs::set_permissions(path, private.clone())
            .with_context(|| format!("cannot make {} readable by its owner only (mode 0600)", path.display()))
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the SQLite database {}", path.display()))?;
    fix(path)?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = std::path::PathBuf::from(side);
        if side.exists() {
            fix(&side)?;
        }
    }
    Ok(())
}

impl Db {
    /// Opens (creating it when needed) and migrates the database.
    pub async fn open(database: &Database) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let (backend, options) = match database {
            Database::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
                }
                owner_only(path)?;
                let url =
                    sqlx::sqlite::SqliteConnectOptions::new().filename(path).create_if_missing(true).to_url_lossy();
                (Backend::Sqlite, AnyConnectOptions::from_url(&url)?)
            }
            Database::Postgres { url, .. } => (Backend::Postgres, url.parse::<AnyConnectOptions>()?),
        };
        // One connection first, so that a database that cannot be reached says why (a pool only says it timed out).
        let probe = sqlx::AnyConnection::connect_with(&options).await.with_context(|| match database {
            Database::Sqlite(path) => format!("cannot open the SQLite database {}", path.display()),
            Database::Postgres { .. } => format!(
                "cannot connect to {database}; check that PostgreSQL runs there and that the user, database name \
                 in `database:` and the password (there or where `database_password_env` or `_file` names) are right"
            ),
        })?;
        probe.close().await?;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
                             PRAGMA busy_timeout = 10000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open {database}"))?;
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::VersionMissing(version) => anyhow::anyhow!(
                "{database} was upgraded by a newer cone-server (its migration {version} is unknown to this one): run \
                 that version again, or restore the backup taken before the upgrade (docs/operations.md)"
            ),
            e => anyhow::Error::new(e).context(format!("cannot apply the migrations to {database}")),
        })?;
        // The sync's journal is the connector's table, made by its own code: beside the data it feeds and shared by
        // the replicas, so that a sync interrupted on one resumes on whichever syncs next.
        let journal = cone_aws::journal::SqlJournal::open(pool.clone(), "sync_journal")
            .await
            .map_err(|e| anyhow::anyhow!("cannot prepare the sync's journal in {database}: {e}"))?;
        Ok(Db {
            pool,
            backend,
            outbox: Arc::default(),
            denials: Arc::default(),
            calls: Arc::default(),
            reads: Arc::default(),
            journal: Arc::new(journal),
            turns: Arc::default(),
        })
    }

    /// From now on, task and grant events recorded through this handle (and its clones) queue a delivery for each
    /// of these webhooks (name, event patterns) that subscribes to them.
    pub fn with_webhooks(mut self, routes: Vec<(String, Vec<String>)>) -> Db {
        self.outbox = Arc::new(Outbox { routes, ..Outbox::default() });
        self
    }

    /// From now on, ending a grant early through this handle (and its clones) records the role sessions to deny.
    pub fn with_session_denials(mut self, on: bool) -> Db {
        self.denials = Arc::new(Denials { on, changed: Notify::new() });
        self
    }

    /// Notified when a committed transaction recorded sessions to deny.
    pub fn denials_changed(&self) -> &Notify {
        &self.denials.changed
    }

    /// Notified when a committed transaction recorded an event people may be told of, or queued a notification.
    pub fn news(&self) -> &Notify {
        &self.outbox.news
    }

    /// Notified when a committed transaction queued webhook deliveries.
    pub fn deliveries_queued(&self) -> &Notify {
        &self.outbox.queued
    }

    /// The sync's journal (see `cone_aws::journal`); [`Db::apply_sync`] clears it.
    pub fn sync_journal(&self) -> &cone_aws::journal::SqlJournal {
        &self.journal
    }

    /// Another replica changed what the cached reads read (PostgreSQL's `cone_cache` notification).
    pub fn data_changed(&self) {
        self.reads.generation.advance();
    }

    /// A read through `cache`: answered from memory in the generation it was read in, else from the database.
    pub(super) async fn cached<K: std::hash::Hash + Eq, V: Clone>(
        &self,
        cache: &Cached<K, V>,
        key: K,
        read: impl Future<Output = Result<V>>,
    ) -> Result<V> {
        let generation = self.reads.generation.current();
        if let Some(v) = cache.get(&key, generation) {
            return Ok(v);
        }
        let v = read.await?;
        cache.put(key, generation, v.clone());
        Ok(v)
    }

    /// Which database this is, for tests that reach behind the store.
    #[cfg(test)]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for tests that check what the store wrote.
    #[cfg(test)]
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A writing transaction; it runs alone among writers (see the module's comment).
    pub async fn begin(&self) -> Result<Tx> {
        let turn = self.turns.clone().lock_owned().await;
        let mut tx = self.pool.begin_with(self.backend.begin_statement()).await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)").bind(WRITER_LOCK).execute(&mut *tx).await?;
        }
        Ok(Tx {
            inner: tx,
            outbox: self.outbox.clone(),
            queued: false,
            notified: false,
            denials: self.denials.clone(),
            denied: false,
            generation: self.reads.generation.clone(),
            backend: self.backend,
            _turn: turn,
        })
    }

    /// A claiming transaction: beside the writers on PostgreSQL, taking turns with other claimants of the same
    /// `kind` of work when `turns` (jobs: a replica must see another's lease before it picks); on SQLite, which has
    /// one write lock, in the writers' queue (the turn is returned, to be held until the end). It changes nothing
    /// the cached reads depend on.
    pub(super) async fn begin_claim(
        &self,
        turns: bool,
    ) -> Result<(Option<OwnedMutexGuard<()>>, Transaction<'static, sqlx::Any>)> {
        let turn = match self.backend {
            Backend::Sqlite => Some(self.turns.clone().lock_owned().await),
            Backend::Postgres => None,
        };
        let mut tx = self.pool.begin_with(self.backend.begin_statement()).await?;
        if turns && self.backend == Backend::Postgres {
            sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)").bind(CLAIM_LOCK).execute(&mut *tx).await?;
        }
        Ok((turn, tx))
    }
}

/// A value of a row [`insert_rows`] writes.
pub(super) enum Cell<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
}

/// Inserts `rows` into `table`'s `columns`, many rows a statement: a campaign's snapshot is tens of thousands of
/// rows, and one round trip each is seconds on PostgreSQL. (sqlx's `QueryBuilder` writes `?` placeholders for
/// `Any`, which PostgreSQL refuses, hence the placeholders written here.)
pub(super) async fn insert_rows(tx: &mut Tx, table: &str, columns: &[&str], rows: Vec<Vec<Cell<'_>>>) -> Result<()> {
    // About 500 parameters a statement: on SQLite a statement costs more than its size (20,000 rows of 17 columns
    // took 15 s in statements of 30,000 parameters, 0.4 s in statements of 500); PostgreSQL hardly minds.
    let per_statement = (500 / columns.len().max(1)).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Cell<'_>>> = rows.by_ref().take(per_statement).collect();
        let tuples: Vec<String> = (0..chunk.len())
            .map(|r| {
                let params: Vec<String> = (1..=columns.len()).map(|c| format!("${}", r * columns.len() + c)).collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let sql = format!("INSERT INTO {table} ({}) VALUES {}", columns.join(", "), tuples.join(", "));
        let mut query = sqlx::query(&sql);
        for cell in chunk.into_iter().flatten() {
            query = match cell {
                Cell::Text(t) => query.bind(t),
                Cell::Int(t) => query.bind(t),
            };
        }
        query.execute(&mut **tx).await.with_context(|| format!("storing rows of {table}"))?;
    }
    Ok(())
}

/// Names as an SQL list, `('a', 'b')`, for `IN`: the states and kinds a statement may meet, spelled from
/// `cone_core`'s names, never from input.
pub(super) fn sql_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.into_iter().map(|n| format!("'{n}'")).collect();
    format!("({})", quoted.join(", "))
}

/// `text` as a `LIKE` pattern that matches it literally, for statements that say `ESCAPE '\'`: `_` and `%` in names
/// would otherwise be wildcards.
pub(super) fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
