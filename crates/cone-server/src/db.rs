//! The store: every SQL statement of the server lives here, written once for both backends through sqlx's `Any`
//! driver (`$N` placeholders, which SQLite accepts too). SQLite in WAL mode is the embedded default; PostgreSQL
//! serves several replicas. [`Backend`] holds the few places where the two differ.
//!
//! Writers run one at a time on both: SQLite takes the write lock up front (`BEGIN IMMEDIATE`), PostgreSQL a
//! transaction-scoped advisory lock. Every read-then-write below (and the audit chain) relies on that; only the
//! claiming of jobs and webhook deliveries runs beside other writers on PostgreSQL, with `FOR UPDATE SKIP LOCKED`.

use std::collections::HashSet;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cone_aws::{Part, PartStream, PermissionSet};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Executor, FromRow, Transaction};
use tokio::sync::Notify;

use crate::cache::{Cached, Generation};
use crate::config::Database;

/// A writing transaction (see [`Db::begin`]). It dereferences to its connection, so statements run on `&mut *tx`;
/// it also knows the webhooks, so that [`audit`] can queue their deliveries in it, and the cached reads' generation.
pub struct Tx {
    inner: Transaction<'static, sqlx::Any>,
    outbox: Arc<Outbox>,
    queued: bool,
    generation: Generation,
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
        Ok(())
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
    queued: Notify,
}

impl Outbox {
    /// The names of the webhooks subscribed to `event`.
    fn subscribers(&self, event: &str) -> Vec<&str> {
        self.routes
            .iter()
            .filter(|(_, patterns)| patterns.iter().any(|p| crate::webhooks::matches(p, event)))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    outbox: Arc<Outbox>,
    reads: Arc<Reads>,
}

/// The hot path's reads in memory (see `cache`): a token's user and expiry, a user's active grants and what they
/// hold through groups, an entitlement by (app, id).
#[derive(Default)]
struct Reads {
    generation: Generation,
    tokens: Cached<String, Option<(UserRow, i64)>>,
    grants: Cached<i64, Vec<(String, String, i64)>>,
    through_groups: Cached<i64, Vec<(String, String, String)>>,
    entitlements: Cached<(String, String), Option<EntitlementRow>>,
}

/// Where the SQL of the two backends differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How many audit entries a reader of the whole log holds at once.
pub const AUDIT_BATCH: i64 = 1000;

/// The advisory lock key PostgreSQL writers hold for their transaction (any constant; "cone" in ASCII).
const WRITER_LOCK: i64 = 0x636f_6e65;
/// The advisory lock key job claims hold for their transaction ("job" in ASCII).
const CLAIM_LOCK: i64 = 0x006a_6f62;

impl Backend {
    /// A table expression of the values of a JSON array bound as text at `param`, as a column `value`.
    fn json_values(self, param: &str) -> String {
        match self {
            Backend::Sqlite => format!("json_each({param})"),
            Backend::Postgres => format!("json_array_elements_text({param}::json)"),
        }
    }

    /// Locks the rows of `table` (a name or alias) a claim selects; a row another replica is claiming is skipped
    /// rather than waited for.
    fn skip_locked(self, table: &str) -> String {
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

/// A session token's user and end.
#[derive(FromRow)]
struct TokenUser {
    #[sqlx(flatten)]
    user: UserRow,
    expires_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub idc_user_id: Option<String>,
    pub password_hash: Option<String>,
    /// `person`, or `service` for a service account ([`USER_SERVICE`]).
    pub kind: String,
}

/// The kind of a service account's user row.
pub const USER_SERVICE: &str = "service";

/// An API token with the usernames of its owner and creator.
#[derive(Debug, Clone, FromRow)]
pub struct ApiTokenRow {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub user_id: i64,
    pub owner: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const API_TOKEN_SELECT: &str = "SELECT t.id, t.kind, t.name, t.user_id, u.username AS owner, c.username AS created_by,
        t.created_at, t.expires_at, t.last_used_at, t.revoked_at
    FROM api_tokens t JOIN users u ON u.id = t.user_id JOIN users c ON c.id = t.created_by";

/// A version of the access document, with the username of whoever applied it through the API.
#[derive(Debug, Clone, FromRow)]
pub struct ConfigVersionRow {
    pub id: i64,
    pub document: String,
    pub digest: String,
    /// `file` or `api`.
    pub source: String,
    pub author: Option<String>,
    pub comment: String,
    pub created_at: i64,
}

const CONFIG_SELECT: &str = "SELECT v.id, v.document, v.digest, v.source, u.username AS author, v.comment, v.created_at
    FROM config_versions v LEFT JOIN users u ON u.id = v.author_id";

/// What became of an access document applied through the API.
#[derive(Debug)]
pub enum Applied {
    New(ConfigVersionRow),
    /// The newest version says the same: nothing recorded.
    Unchanged(ConfigVersionRow),
    /// The version its author started from is no longer the newest, which is this one.
    Stale(i64),
}

/// An API token presented by a request, with the user it acts as.
#[derive(Debug, Clone, FromRow)]
pub struct TokenUse {
    pub token_id: i64,
    pub token_name: String,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    #[sqlx(flatten)]
    pub user: UserRow,
}

/// Whom a new API token acts as.
pub enum TokenOwner<'a> {
    /// Its creator, a person (a personal token).
    Creator,
    /// The service account of this username, created with its first token.
    Service(&'a str),
}

/// A new API token, its secret already hashed.
pub struct NewApiToken<'a> {
    pub token_hash: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub owner: TokenOwner<'a>,
    pub created_by: i64,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, FromRow)]
pub struct EntitlementRow {
    pub app_id: String,
    pub id: String,
    pub alias: String,
    pub account_id: String,
    pub account_name: String,
    pub permission_set_arn: String,
    pub permission_set_name: String,
    pub instance_arn: String,
}

/// Someone who holds an entitlement: `source` is `grant` (with the task and the end) or `group` (with its name).
#[derive(Debug, Clone, FromRow)]
pub struct HolderRow {
    pub username: String,
    pub display_name: String,
    pub source: String,
    pub task_id: Option<i64>,
    pub expires_at: Option<i64>,
    pub group_name: Option<String>,
}

#[derive(Debug, Clone, FromRow)]
pub struct TaskRow {
    pub id: i64,
    pub kind: String,
    /// 0 or 1.
    pub emergency: i64,
    pub requester_id: i64,
    pub requester: String,
    pub app_id: String,
    pub entitlement_id: String,
    pub state: String,
    pub justification: String,
    pub duration_secs: i64,
    pub steps_json: String,
    pub step_index: i64,
    pub waiting_for_group: Option<String>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub grant_expires_at: Option<i64>,
    pub permission_set_name: Option<String>,
    pub account_name: Option<String>,
}

#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    /// Every kind but `remove_drift` is about a grant.
    pub grant_id: Option<i64>,
    /// `reprovision` and `remove_drift` repair a drift finding.
    pub finding_id: Option<i64>,
    pub attempts: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct GrantRow {
    pub id: i64,
    pub task_id: i64,
    pub instance_arn: String,
    pub account_id: String,
    pub permission_set_arn: String,
    pub principal_id: String,
    pub duration_secs: i64,
}

#[derive(FromRow)]
struct DeviceRow {
    expires_at: i64,
    interval_secs: i64,
    last_poll_at: Option<i64>,
    user_id: Option<i64>,
    denied: i64,
}

/// An audit log entry as stored.
#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Which audit entries to read: those after `after_id` (in id order), from `since` (inclusive) to `until`
/// (exclusive), with the action `action` or, for `family.*`, any action of the family.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub after_id: i64,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub action: Option<String>,
}

/// A webhook delivery to attempt.
#[derive(Debug, Clone, FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub delivery_id: String,
    pub webhook: String,
    pub event: String,
    pub body: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

/// What a device-code poll finds (RFC 8628 §3.5).
#[derive(Debug, PartialEq, Eq)]
pub enum DevicePoll {
    Unknown,
    Pending,
    SlowDown,
    Expired,
    Denied,
    Approved(i64),
}

/// A new grant request, already checked against its policy.
pub struct NewTask<'a> {
    pub requester_id: i64,
    pub entitlement: &'a EntitlementRow,
    pub principal_id: &'a str,
    /// The active grant this task would extend, instead of creating a grant of its own.
    pub extends_grant_id: Option<i64>,
    pub max_duration_secs: i64,
    pub emergency: bool,
    pub justification: &'a str,
    pub duration_secs: i64,
    pub form_json: String,
    pub policy_name: &'a str,
    pub steps_json: String,
}

/// Where the policy left a task after a decision.
pub enum Placement<'a> {
    /// At step `index`; `group` when the step waits for a group's approval.
    Waiting {
        index: usize,
        group: Option<&'a str>,
    },
    Provision,
    Denied,
}

const TASK_SELECT: &str =
    "SELECT t.id, t.kind, t.emergency, t.requester_id, u.username AS requester, t.app_id, t.entitlement_id, t.state,
        t.justification, t.duration_secs, t.steps_json, t.step_index, t.waiting_for_group,
        d.username AS decided_by, t.reason, t.created_at, t.updated_at, g.expires_at AS grant_expires_at,
        e.permission_set_name, r.name AS account_name
    FROM tasks t JOIN users u ON u.id = t.requester_id LEFT JOIN users d ON d.id = t.decided_by
    LEFT JOIN grants g ON g.id = COALESCE(t.extends_grant_id, (SELECT id FROM grants WHERE task_id = t.id))
    LEFT JOIN entitlements e ON e.app_id = t.app_id AND e.id = t.entitlement_id
    LEFT JOIN resources r ON r.app_id = e.app_id AND r.id = e.resource_id";

/// Which tasks a search returns.
pub enum TaskFilter<'a> {
    /// The caller's own requests.
    Requested(i64),
    /// Requests waiting for a decision by one of these groups or by named people (the caller filters those),
    /// other than the caller's own.
    Approvable { user_id: i64, groups: &'a [String] },
}

/// One audit entry about a task, with the actor's username when it is a person.
#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// A drift finding with the names Cone knows for its account, permission set and user.
#[derive(Debug, Clone, FromRow)]
pub struct DriftRow {
    pub id: i64,
    pub kind: String,
    pub instance_arn: String,
    pub account_id: String,
    pub account_name: Option<String>,
    pub permission_set_arn: String,
    pub permission_set_name: Option<String>,
    pub principal_id: String,
    pub username: Option<String>,
    pub task_id: Option<i64>,
    pub remedy: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub resolved_at: Option<i64>,
}

impl DriftRow {
    /// The audit entry's detail: what drifted, by id and by name.
    fn audit_detail(&self) -> String {
        serde_json::json!({
            "account_id": self.account_id, "account": self.account_name,
            "permission_set_arn": self.permission_set_arn, "permission_set": self.permission_set_name,
            "principal_id": self.principal_id, "user": self.username,
            "task_id": self.task_id, "remedy": self.remedy,
        })
        .to_string()
    }
}

const DRIFT_SELECT: &str = "SELECT f.id, f.kind, f.instance_arn, f.account_id,
        (SELECT name FROM resources WHERE id = f.account_id LIMIT 1) AS account_name, f.permission_set_arn,
        (SELECT permission_set_name FROM entitlements WHERE permission_set_arn = f.permission_set_arn LIMIT 1)
            AS permission_set_name,
        f.principal_id, (SELECT username FROM users WHERE idc_user_id = f.principal_id) AS username,
        g.task_id, f.remedy, f.first_seen, f.last_seen, f.resolved_at
    FROM drift_findings f LEFT JOIN grants g ON g.id = f.grant_id";

/// Grant states in which the grant's assignment exists or may exist (being made, held, or being removed).
const HOLDING_STATES: &str = "('provisioning', 'active', 'revoking', 'released')";

/// What recording a sweep changed.
#[derive(Default)]
pub struct DriftRecord {
    /// Findings seen for the first time.
    pub opened: Vec<DriftRow>,
    pub resolved: usize,
    /// Repair jobs queued.
    pub queued: usize,
}

/// How a drift repair job ended.
pub enum Repair {
    /// Nothing to do any more (see the job).
    Skipped,
    /// The unexplained assignment was removed.
    Removed,
    /// The job's grant has its assignment again.
    Restored,
}

const ENTITLEMENT_SELECT: &str = "SELECT e.app_id, e.id, e.alias, e.resource_id AS account_id, r.name AS account_name,
        e.permission_set_arn, e.permission_set_name, a.instance_arn
    FROM entitlements e JOIN resources r ON r.app_id = e.app_id AND r.id = e.resource_id JOIN apps a ON a.id = e.app_id
    WHERE e.present = 1";

impl Db {
    /// Opens (creating it when needed) and migrates the database.
    pub async fn open(database: &Database) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let (backend, options) = match database {
            Database::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
                }
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
                "cannot connect to {database}; check that PostgreSQL runs there and that the user, password and \
                 database name in `database:` are right"
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
        migrator.run(&pool).await.with_context(|| format!("cannot apply the migrations to {database}"))?;
        Ok(Db { pool, backend, outbox: Arc::default(), reads: Arc::default() })
    }

    /// From now on, task and grant events recorded through this handle (and its clones) queue a delivery for each
    /// of these webhooks (name, event patterns) that subscribes to them.
    pub fn with_webhooks(mut self, routes: Vec<(String, Vec<String>)>) -> Db {
        self.outbox = Arc::new(Outbox { routes, queued: Notify::new() });
        self
    }

    /// Notified when a committed transaction queued webhook deliveries.
    pub fn deliveries_queued(&self) -> &Notify {
        &self.outbox.queued
    }

    /// For the operations endpoints' read-only queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The sync's journal (see `cone_aws::journal`): beside the data it feeds and shared by the replicas, so that a
    /// sync interrupted on one resumes on whichever syncs next. [`Db::apply_sync`] clears it.
    pub fn sync_journal(&self) -> cone_aws::journal::SqlJournal {
        cone_aws::journal::SqlJournal::new(self.pool.clone(), "sync_journal")
    }

    /// Another replica changed what the cached reads read (PostgreSQL's `cone_cache` notification).
    pub fn data_changed(&self) {
        self.reads.generation.advance();
    }

    /// A read through `cache`: answered from memory in the generation it was read in, else from the database.
    async fn cached<K: std::hash::Hash + Eq, V: Clone>(
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

    #[cfg(test)]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A writing transaction; it runs alone among writers (see the module's comment).
    pub async fn begin(&self) -> Result<Tx> {
        let mut tx = self.pool.begin_with(self.backend.begin_statement()).await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)").bind(WRITER_LOCK).execute(&mut *tx).await?;
        }
        Ok(Tx { inner: tx, outbox: self.outbox.clone(), queued: false, generation: self.reads.generation.clone() })
    }

    // ---- identities and sign-in ----

    /// Sets a person's password (creating the user); a service account never gets one.
    pub async fn set_password(&self, username: &str, hash: &str) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO users (username, password_hash) VALUES ($1, $2)
             ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash WHERE users.kind = 'person'",
        )
        .bind(username)
        .bind(hash)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            anyhow::bail!(
                "{username} is a service account, which signs in only with its API tokens; give a person the password"
            );
        }
        self.data_changed();
        Ok(())
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(
            "SELECT id, username, display_name, email, idc_user_id, password_hash, kind FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// People (not service accounts) whose email is `email`, ignoring case; at most two, enough to tell that an
    /// email names more than one.
    pub async fn people_by_email(&self, email: &str) -> Result<Vec<UserRow>> {
        Ok(sqlx::query_as(
            "SELECT id, username, display_name, email, idc_user_id, password_hash, kind FROM users
             WHERE lower(email) = lower($1) AND email <> '' AND kind <> $2 ORDER BY id LIMIT 2",
        )
        .bind(email)
        .bind(USER_SERVICE)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn user_groups(&self, user_id: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT g.name FROM groups g JOIN group_members m ON m.group_id = g.id WHERE m.user_id = $1 ORDER BY g.name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn create_device_code(
        &self,
        code_hash: &str,
        user_code: &str,
        expires_at: i64,
        interval: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO device_codes (device_code_hash, user_code, expires_at, interval_secs) VALUES ($1, $2, $3, $4)",
        )
        .bind(code_hash)
        .bind(user_code)
        .bind(expires_at)
        .bind(interval)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Approves (for `user_id`) or denies a pending, unexpired device code; false when there is none with that
    /// user code.
    pub async fn decide_device_code(&self, user_code: &str, user_id: i64, approve: bool, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE device_codes SET user_id = CASE WHEN $1 THEN $2 END, denied = CASE WHEN $1 THEN 0 ELSE 1 END
             WHERE user_code = $3 AND expires_at > $4 AND user_id IS NULL AND denied = 0",
        )
        .bind(approve)
        .bind(user_id)
        .bind(user_code)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn poll_device_code(&self, code_hash: &str, now: i64) -> Result<DevicePoll> {
        let mut tx = self.begin().await?;
        let row: Option<DeviceRow> = sqlx::query_as(
            "SELECT expires_at, interval_secs, last_poll_at, user_id, denied FROM device_codes WHERE device_code_hash = $1",
        )
        .bind(code_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(DeviceRow { expires_at, interval_secs: interval, last_poll_at: last_poll, user_id, denied }) = row
        else {
            return Ok(DevicePoll::Unknown);
        };
        let result = if expires_at <= now {
            DevicePoll::Expired
        } else if denied != 0 {
            DevicePoll::Denied
        } else if let Some(user_id) = user_id {
            DevicePoll::Approved(user_id)
        } else if last_poll.is_some_and(|t| now - t < interval) {
            DevicePoll::SlowDown
        } else {
            DevicePoll::Pending
        };
        if matches!(result, DevicePoll::Approved(_) | DevicePoll::Expired | DevicePoll::Denied) {
            // A device code is redeemed once.
            sqlx::query("DELETE FROM device_codes WHERE device_code_hash = $1")
                .bind(code_hash)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("UPDATE device_codes SET last_poll_at = $1 WHERE device_code_hash = $2")
                .bind(now)
                .bind(code_hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(result)
    }

    pub async fn insert_access_token(&self, token_hash: &str, user_id: i64, now: i64, expires_at: i64) -> Result<()> {
        self.sign_in("access_tokens", token_hash, user_id, now, expires_at, serde_json::json!({})).await
    }

    /// Stores a new sign-in's hashed token in `table` and audits the `login`, in one transaction; expired rows
    /// of `table` go at the same time, so sign-ins keep it small.
    async fn sign_in(
        &self,
        table: &'static str,
        token_hash: &str,
        user_id: i64,
        now: i64,
        expires_at: i64,
        detail: serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(&format!("DELETE FROM {table} WHERE expires_at <= $1")).bind(now).execute(&mut *tx).await?;
        sqlx::query(&format!(
            "INSERT INTO {table} (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)"
        ))
        .bind(token_hash)
        .bind(user_id)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        let user = format!("user:{user_id}");
        audit(&mut tx, now, &user, "login", &user, &detail.to_string()).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn revoke_access_token(&self, token_hash: &str, user_id: i64, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM access_tokens WHERE token_hash = $1").bind(token_hash).execute(&mut *tx).await?;
        audit(&mut tx, now, &format!("user:{user_id}"), "logout", &format!("user:{user_id}"), "{}").await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn user_for_token(&self, token_hash: &str, now: i64) -> Result<Option<UserRow>> {
        // Built inside the block, so that a cache hit builds no query.
        let read = async {
            let row: Option<TokenUser> = sqlx::query_as(
                "SELECT u.id, u.username, u.display_name, u.email, u.idc_user_id, u.password_hash, u.kind, t.expires_at
                 FROM access_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.map(|r| (r.user, r.expires_at)))
        };
        let found = self.cached(&self.reads.tokens, token_hash.to_string(), read).await?;
        Ok(found.filter(|(_, expires_at)| *expires_at > now).map(|(user, _)| user))
    }

    // ---- API tokens ----

    /// Stores a new API token (and, for a service token, its service account when new) with its audit entry.
    /// `None` when the service account's username belongs to a person.
    pub async fn create_api_token(&self, t: &NewApiToken<'_>, now: i64) -> Result<Option<ApiTokenRow>> {
        let mut tx = self.begin().await?;
        let user_id = match t.owner {
            TokenOwner::Creator => t.created_by,
            TokenOwner::Service(username) => {
                let existing: Option<(i64, String)> = sqlx::query_as("SELECT id, kind FROM users WHERE username = $1")
                    .bind(username)
                    .fetch_optional(&mut *tx)
                    .await?;
                match existing {
                    Some((id, kind)) if kind == USER_SERVICE => id,
                    Some(_) => return Ok(None),
                    None => {
                        let id: i64 = sqlx::query_scalar(
                            "INSERT INTO users (username, display_name, kind) VALUES ($1, $2, $3) RETURNING id",
                        )
                        .bind(username)
                        .bind(username)
                        .bind(USER_SERVICE)
                        .fetch_one(&mut *tx)
                        .await?;
                        let detail = serde_json::json!({ "username": username }).to_string();
                        audit(
                            &mut tx,
                            now,
                            &format!("user:{}", t.created_by),
                            "service_account.create",
                            &format!("user:{id}"),
                            &detail,
                        )
                        .await?;
                        id
                    }
                }
            }
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (token_hash, user_id, kind, name, created_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(t.token_hash)
        .bind(user_id)
        .bind(t.kind)
        .bind(t.name)
        .bind(t.created_by)
        .bind(now)
        .bind(t.expires_at)
        .fetch_one(&mut *tx)
        .await?;
        let detail = serde_json::json!({ "kind": t.kind, "name": t.name, "owner": format!("user:{user_id}"),
            "expires_at": t.expires_at });
        audit(
            &mut tx,
            now,
            &format!("user:{}", t.created_by),
            "token.create",
            &format!("token:{id}"),
            &detail.to_string(),
        )
        .await?;
        let row = sqlx::query_as(&format!("{API_TOKEN_SELECT} WHERE t.id = $1")).bind(id).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(Some(row))
    }

    /// The unrevoked API tokens acting as `user_id`, and every service token too when `with_service`.
    pub async fn api_tokens(&self, user_id: i64, with_service: bool) -> Result<Vec<ApiTokenRow>> {
        Ok(sqlx::query_as(&format!(
            "{API_TOKEN_SELECT} WHERE t.revoked_at IS NULL AND (t.user_id = $1 OR ($2 = 1 AND t.kind = 'service'))
             ORDER BY t.id"
        ))
        .bind(user_id)
        .bind(i64::from(with_service))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes an API token acting as `by`, or any when `any` (an administrator); a token already revoked is
    /// returned as it is. `None` when there is no such token the caller may revoke.
    pub async fn revoke_api_token(&self, id: i64, by: i64, any: bool, now: i64) -> Result<Option<ApiTokenRow>> {
        let mut tx = self.begin().await?;
        let row: Option<ApiTokenRow> =
            sqlx::query_as(&format!("{API_TOKEN_SELECT} WHERE t.id = $1")).bind(id).fetch_optional(&mut *tx).await?;
        let Some(mut row) = row.filter(|r| any || r.user_id == by) else {
            return Ok(None);
        };
        if row.revoked_at.is_none() {
            sqlx::query("UPDATE api_tokens SET revoked_at = $1, revoked_by = $2 WHERE id = $3")
                .bind(now)
                .bind(by)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let detail = serde_json::json!({ "kind": row.kind, "name": row.name, "owner": row.owner });
            audit(&mut tx, now, &format!("user:{by}"), "token.revoke", &format!("token:{id}"), &detail.to_string())
                .await?;
            row.revoked_at = Some(now);
        }
        tx.commit().await?;
        Ok(Some(row))
    }

    /// The API token with this hash, whatever its state, with the user it acts as.
    pub async fn api_token_use(&self, token_hash: &str) -> Result<Option<TokenUse>> {
        Ok(sqlx::query_as(
            "SELECT t.id AS token_id, t.name AS token_name, t.expires_at, t.revoked_at, t.last_used_at, u.id, u.username,
                 u.display_name, u.email, u.idc_user_id, u.password_hash, u.kind
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records that a token was used, at most once a minute (a write per request would be wasted): `used` is what
    /// `api_token_use` read, so a token used within the minute costs no statement at all.
    pub async fn touch_api_token(&self, used: &TokenUse, now: i64) -> Result<()> {
        if used.last_used_at.is_some_and(|at| at > now - 60) {
            return Ok(());
        }
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .bind(now)
        .bind(used.token_id)
        .bind(now - 60)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- catalog ----

    /// Replaces the catalog and identities with what a sync read, from its `parts` in [`Part::kind`] order (as
    /// [`cone_aws::SqlSpool::parts`] gives them), and clears the sync journal (this sync is stored; the next one reads
    /// AWS afresh). Holds the accounts' ids and the permission sets, not the rest; returns the permission sets.
    pub async fn apply_sync(
        &self,
        app_id: &str,
        instance_arn: &str,
        mut parts: PartStream<'_>,
        now: i64,
    ) -> Result<Vec<PermissionSet>> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sync_journal").execute(&mut *tx).await?;
        sqlx::query("INSERT INTO apps (id, name, instance_arn) VALUES ($1, 'AWS', $2) ON CONFLICT (id) DO UPDATE SET instance_arn = excluded.instance_arn")
            .bind(app_id)
            .bind(instance_arn)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE entitlements SET present = 0 WHERE app_id = $1").bind(app_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM group_assignments WHERE app_id = $1").bind(app_id).execute(&mut *tx).await?;
        let mut accounts = HashSet::new();
        let mut permission_sets = Vec::new();
        let (mut users, mut groups, mut group_assignments) = (0, 0, 0);
        while let Some(part) = parts.next().await {
            match part? {
                Part::Accounts(list) => {
                    for a in list {
                        sqlx::query("INSERT INTO resources (app_id, id, name) VALUES ($1, $2, $3) ON CONFLICT (app_id, id) DO UPDATE SET name = excluded.name")
                            .bind(app_id)
                            .bind(&a.id)
                            .bind(&a.name)
                            .execute(&mut *tx)
                            .await?;
                        accounts.insert(a.id);
                    }
                }
                Part::PermissionSets(list) => permission_sets.extend(list),
                Part::Provisioned(pairs) => {
                    for (account_id, ps_arn) in &pairs {
                        let Some(ps) = permission_sets.iter().find(|p| &p.arn == ps_arn) else {
                            continue;
                        };
                        if !accounts.contains(account_id) {
                            continue;
                        }
                        sqlx::query(
                            "INSERT INTO entitlements (app_id, id, resource_id, permission_set_arn, permission_set_name, present)
                             VALUES ($1, $2, $3, $4, $5, 1)
                             ON CONFLICT (app_id, id) DO UPDATE SET present = 1, permission_set_name = excluded.permission_set_name",
                        )
                        .bind(app_id)
                        .bind(format!("{account_id}|{ps_arn}"))
                        .bind(account_id)
                        .bind(ps_arn)
                        .bind(&ps.name)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                Part::Users(list) => {
                    users += list.len();
                    for u in &list {
                        // Link a local user of the same name (the one who set a password) to its Identity Center user;
                        // never a service account, which would otherwise become that person.
                        sqlx::query(
                            "INSERT INTO users (username, display_name, email, idc_user_id) VALUES ($1, $2, $3, $4)
                             ON CONFLICT (username) DO UPDATE SET display_name = excluded.display_name, email = excluded.email,
                                 idc_user_id = excluded.idc_user_id
                             WHERE users.kind = 'person'",
                        )
                        .bind(&u.user_name)
                        .bind(&u.display_name)
                        .bind(u.email.as_deref().unwrap_or(""))
                        .bind(&u.id)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                Part::Groups(list) => {
                    groups += list.len();
                    for g in &list {
                        sqlx::query("INSERT INTO groups (name, idc_group_id) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET idc_group_id = excluded.idc_group_id")
                            .bind(&g.display_name)
                            .bind(&g.id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    // Identity Center's groups have the members the sync read, and only those (whose parts come next).
                    sqlx::query(
                        "DELETE FROM group_members WHERE group_id IN (SELECT id FROM groups WHERE idc_group_id IS NOT NULL)",
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                Part::Memberships(pairs) => {
                    for (group_id, user_id) in &pairs {
                        sqlx::query(
                            "INSERT INTO group_members (group_id, user_id)
                             SELECT g.id, u.id FROM groups g, users u WHERE g.idc_group_id = $1 AND u.idc_user_id = $2
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(group_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                Part::Assignments(list) => {
                    for a in &list {
                        let cone_aws::Principal::Group(group_id) = &a.principal else { continue };
                        group_assignments += 1;
                        sqlx::query(
                            "INSERT INTO group_assignments (app_id, entitlement_id, group_id)
                             SELECT $1, $2, id FROM groups WHERE idc_group_id = $3 ON CONFLICT DO NOTHING",
                        )
                        .bind(app_id)
                        .bind(format!("{}|{}", a.account_id, a.permission_set_arn))
                        .bind(group_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                // Stored by `apply_iam`.
                Part::Iam(_) => {}
            }
        }
        // Aliases depend on the whole catalog (a clash changes both names), so they are derived once per sync.
        let rows: Vec<EntitlementRow> = sqlx::query_as(ENTITLEMENT_SELECT).fetch_all(&mut *tx).await?;
        let keys: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.account_name.as_str(), r.permission_set_name.as_str(), r.account_id.as_str()))
            .collect();
        for (row, alias) in rows.iter().zip(cone_core::naming::aliases(&keys)) {
            if row.alias != alias {
                sqlx::query("UPDATE entitlements SET alias = $1 WHERE app_id = $2 AND id = $3")
                    .bind(&alias)
                    .bind(&row.app_id)
                    .bind(&row.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let detail = serde_json::json!({
            "accounts": accounts.len(), "permission_sets": permission_sets.len(),
            "users": users, "groups": groups, "group_assignments": group_assignments,
        });
        audit(&mut tx, now, "connector:aws", "sync", app_id, &detail.to_string()).await?;
        tx.commit().await?;
        Ok(permission_sets)
    }

    #[cfg(test)]
    pub async fn apply_snapshot(&self, app_id: &str, snap: &cone_aws::Snapshot, now: i64) -> Result<()> {
        let parts = futures_util::stream::iter(snap.parts().into_iter().map(Ok)).boxed();
        self.apply_sync(app_id, &snap.instance_arn, parts, now).await.map(drop)
    }

    /// A new run of the sync's spool (see `cone_aws::spool`), in the database beside the data it feeds.
    pub async fn sync_spool(&self) -> Result<cone_aws::SqlSpool> {
        cone_aws::SqlSpool::start(self.pool.clone(), "sync_spool")
            .await
            .map_err(|e| anyhow::anyhow!("cannot prepare the sync's spool table: {e}"))
    }

    pub async fn entitlements(&self) -> Result<Vec<EntitlementRow>> {
        Ok(sqlx::query_as(&format!("{ENTITLEMENT_SELECT} ORDER BY r.name, e.permission_set_name"))
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn entitlement(&self, app_id: &str, id: &str) -> Result<Option<EntitlementRow>> {
        let read = async {
            let sql = format!("{ENTITLEMENT_SELECT} AND e.app_id = $1 AND e.id = $2");
            Ok(sqlx::query_as(&sql).bind(app_id).bind(id).fetch_optional(&self.pool).await?)
        };
        self.cached(&self.reads.entitlements, (app_id.to_string(), id.to_string()), read).await
    }

    /// The caller's active grants: (app id, entitlement id, latest end).
    pub async fn active_grants(&self, user_id: i64, now: i64) -> Result<Vec<(String, String, i64)>> {
        // Read with the time of the read; a grant active now was active then, and only a write makes one active.
        let read = async {
            Ok(sqlx::query_as(
                "SELECT app_id, entitlement_id, MAX(expires_at) FROM grants
                 WHERE user_id = $1 AND state = 'active' AND expires_at > $2 GROUP BY app_id, entitlement_id",
            )
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await?)
        };
        let mut grants = self.cached(&self.reads.grants, user_id, read).await?;
        grants.retain(|(_, _, end)| *end > now);
        Ok(grants)
    }

    /// What the user holds through their Identity Center groups: (app id, entitlement id, group name), by group name.
    pub async fn held_through_groups(&self, user_id: i64) -> Result<Vec<(String, String, String)>> {
        let read = async {
            Ok(sqlx::query_as(
                "SELECT a.app_id, a.entitlement_id, g.name FROM group_assignments a
                 JOIN groups g ON g.id = a.group_id JOIN group_members m ON m.group_id = a.group_id
                 WHERE m.user_id = $1 ORDER BY g.name, a.entitlement_id",
            )
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?)
        };
        self.cached(&self.reads.through_groups, user_id, read).await
    }

    /// Up to `limit` of the people who hold an entitlement, from `offset`, by user name: through an active grant or
    /// through a group.
    pub async fn holders(
        &self,
        app_id: &str,
        entitlement_id: &str,
        now: i64,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<HolderRow>> {
        Ok(sqlx::query_as(
            "SELECT u.username, u.display_name, 'grant' AS source, g.task_id, g.expires_at, NULL AS group_name
             FROM grants g JOIN users u ON u.id = g.user_id
             WHERE g.app_id = $1 AND g.entitlement_id = $2 AND g.state = 'active' AND g.expires_at > $3
             UNION ALL
             SELECT u.username, u.display_name, 'group', NULL, NULL, gr.name
             FROM group_assignments a JOIN groups gr ON gr.id = a.group_id
                 JOIN group_members m ON m.group_id = a.group_id JOIN users u ON u.id = m.user_id
             WHERE a.app_id = $1 AND a.entitlement_id = $2
             ORDER BY username, source, group_name, task_id LIMIT $4 OFFSET $5",
        )
        .bind(app_id)
        .bind(entitlement_id)
        .bind(now)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The caller's active grant on an entitlement with the latest end: (grant id, end, extensions so far).
    pub async fn active_grant(
        &self,
        user_id: i64,
        app_id: &str,
        entitlement_id: &str,
        now: i64,
    ) -> Result<Option<(i64, i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT id, expires_at, extensions FROM grants WHERE user_id = $1 AND app_id = $2 AND entitlement_id = $3
             AND state = 'active' AND expires_at > $4 ORDER BY expires_at DESC LIMIT 1",
        )
        .bind(user_id)
        .bind(app_id)
        .bind(entitlement_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    // ---- tasks ----

    pub async fn task(&self, id: i64) -> Result<Option<TaskRow>> {
        Ok(sqlx::query_as(&format!("{TASK_SELECT} WHERE t.id = $1")).bind(id).fetch_optional(&self.pool).await?)
    }

    /// Inserts the task where the policy placed it. `Ok(Err(id))` when an open task for the same user and
    /// entitlement already exists.
    pub async fn insert_task(&self, t: &NewTask<'_>, placement: Placement<'_>, now: i64) -> Result<Result<i64, i64>> {
        let mut tx = self.begin().await?;
        if let Some(id) = sqlx::query_scalar::<_, i64>(
            "SELECT id FROM tasks WHERE requester_id = $1 AND app_id = $2 AND entitlement_id = $3
             AND state IN ('pending_approval', 'provisioning')",
        )
        .bind(t.requester_id)
        .bind(&t.entitlement.app_id)
        .bind(&t.entitlement.id)
        .fetch_optional(&mut *tx)
        .await?
        {
            return Ok(Err(id));
        }
        let kind = if t.extends_grant_id.is_some() { "extend" } else { "grant" };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tasks (kind, extends_grant_id, max_duration_secs, emergency, requester_id, app_id, entitlement_id,
                 state, justification, duration_secs, form_json, policy_name, steps_json, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending_approval', $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(kind)
        .bind(t.extends_grant_id)
        .bind(t.max_duration_secs)
        .bind(i64::from(t.emergency))
        .bind(t.requester_id)
        .bind(&t.entitlement.app_id)
        .bind(&t.entitlement.id)
        .bind(t.justification)
        .bind(t.duration_secs)
        .bind(&t.form_json)
        .bind(t.policy_name)
        .bind(&t.steps_json)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if t.extends_grant_id.is_none() {
            sqlx::query(
                "INSERT INTO grants (task_id, user_id, app_id, entitlement_id, instance_arn, account_id,
                     permission_set_arn, principal_id, duration_secs, state)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'requested')",
            )
            .bind(id)
            .bind(t.requester_id)
            .bind(&t.entitlement.app_id)
            .bind(&t.entitlement.id)
            .bind(&t.entitlement.instance_arn)
            .bind(&t.entitlement.account_id)
            .bind(&t.entitlement.permission_set_arn)
            .bind(t.principal_id)
            .bind(t.duration_secs)
            .execute(&mut *tx)
            .await?;
        }
        let actor = format!("user:{}", t.requester_id);
        let detail = serde_json::json!({"kind": kind, "emergency": t.emergency, "entitlement": t.entitlement.id,
            "duration_secs": t.duration_secs, "policy": t.policy_name, "justification": t.justification});
        audit(&mut tx, now, &actor, "task.create", &format!("task:{id}"), &detail.to_string()).await?;
        place(&mut tx, id, placement, None, None, now).await?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    /// Records an approver's decision on a waiting task (`steps_json`, the policy instance with the decision),
    /// unless the task changed since it was read as `expect_steps_json` (then false).
    #[allow(clippy::too_many_arguments)]
    pub async fn decide(
        &self,
        task_id: i64,
        expect_steps_json: &str,
        steps_json: &str,
        expect_index: i64,
        decider: i64,
        comment: &str,
        placement: Placement<'_>,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let recorded = sqlx::query(
            "UPDATE tasks SET steps_json = $1 WHERE id = $2 AND state = 'pending_approval' AND steps_json = $3",
        )
        .bind(steps_json)
        .bind(task_id)
        .bind(expect_steps_json)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !recorded {
            return Ok(false);
        }
        let action = if matches!(placement, Placement::Denied) { "task.deny" } else { "task.approve" };
        let detail = serde_json::json!({ "comment": comment, "step": expect_index });
        audit(&mut tx, now, &format!("user:{decider}"), action, &format!("task:{task_id}"), &detail.to_string())
            .await?;
        place(&mut tx, task_id, placement, Some(decider), Some(comment), now).await?;
        tx.commit().await?;
        Ok(true)
    }

    // ---- provisioning and revocation ----

    /// Takes the next due job and leases it, so a crashed worker's job is retried once the lease runs out. On
    /// PostgreSQL replicas claim side by side: each skips the rows another is claiming, and the lease written here
    /// keeps the job theirs after the commit.
    pub async fn claim_job(&self, now: i64, lease_secs: i64) -> Result<Option<JobRow>> {
        let mut tx = self.pool.begin_with(self.backend.begin_statement()).await?;
        // Not a job whose assignment (account, permission set, principal) another job holds a lease on: jobs on one
        // assignment run in order (a revocation never overtakes its provisioning), jobs on different ones at once.
        // On PostgreSQL two replicas claiming at once would not see each other's uncommitted lease, so claims take
        // turns (a claim is two short statements; the jobs themselves still run side by side). Not the writers'
        // lock: a claim changes nothing the cached reads depend on.
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)").bind(CLAIM_LOCK).execute(&mut *tx).await?;
        }
        let job: Option<JobRow> = sqlx::query_as(&format!(
            "SELECT j.id, j.kind, j.grant_id, j.finding_id, j.attempts FROM jobs j
             LEFT JOIN grants g ON g.id = j.grant_id LEFT JOIN drift_findings f ON f.id = j.finding_id
             WHERE j.state = 'pending' AND j.run_after <= $1 AND (j.locked_until IS NULL OR j.locked_until <= $1)
               AND NOT EXISTS (
                 SELECT 1 FROM jobs o
                 LEFT JOIN grants og ON og.id = o.grant_id LEFT JOIN drift_findings od ON od.id = o.finding_id
                 WHERE o.state = 'pending' AND o.locked_until > $1 AND o.id <> j.id
                   AND COALESCE(og.account_id, od.account_id) = COALESCE(g.account_id, f.account_id)
                   AND COALESCE(og.permission_set_arn, od.permission_set_arn)
                       = COALESCE(g.permission_set_arn, f.permission_set_arn)
                   AND COALESCE(og.principal_id, od.principal_id) = COALESCE(g.principal_id, f.principal_id))
             ORDER BY j.run_after, j.id LIMIT 1{}",
            self.backend.skip_locked("j")
        ))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(job) = &job {
            sqlx::query("UPDATE jobs SET locked_until = $1, attempts = attempts + 1, updated_at = $2 WHERE id = $3")
                .bind(now + lease_secs)
                .bind(now)
                .bind(job.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(job)
    }

    pub async fn grant(&self, id: i64) -> Result<GrantRow> {
        Ok(sqlx::query_as(
            "SELECT id, task_id, instance_arn, account_id, permission_set_arn, principal_id, duration_secs FROM grants WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Another active grant gives the same principal the same permission set in the same account.
    pub async fn covered_by_other_grant(&self, g: &GrantRow, now: i64) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM grants WHERE id != $1 AND state = 'active' AND expires_at > $2
             AND principal_id = $3 AND account_id = $4 AND permission_set_arn = $5",
        )
        .bind(g.id)
        .bind(now)
        .bind(&g.principal_id)
        .bind(&g.account_id)
        .bind(&g.permission_set_arn)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// The assignment exists: the grant starts now and the task is granted.
    /// The assignment exists: the grant starts now and the task is granted. When the requester released the
    /// grant while AWS was still provisioning, the assignment just made is queued for removal instead.
    pub async fn provisioned(&self, job: &JobRow, g: &GrantRow, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let activated = sqlx::query(
            "UPDATE grants SET state = 'active', starts_at = $1, expires_at = $2 WHERE id = $3 AND state = 'provisioning'",
        )
        .bind(now)
        .bind(now + g.duration_secs)
        .bind(g.id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        finish_job(&mut tx, job.id, "done", None, now).await?;
        if activated {
            set_task_state(&mut tx, g.task_id, "granted", now).await?;
            audit(&mut tx, now, "worker", "grant.activate", &format!("task:{}", g.task_id), "{}").await?;
        } else {
            sqlx::query("UPDATE grants SET state = 'revoking' WHERE id = $1").bind(g.id).execute(&mut *tx).await?;
            enqueue(&mut tx, "revoke", g.id, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The assignment is gone (or another grant still needs it): the grant has ended.
    pub async fn revoked(&self, job: &JobRow, g: &GrantRow, kept_for_other: bool, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE grants SET state = 'ended', ended_at = $1 WHERE id = $2")
            .bind(now)
            .bind(g.id)
            .execute(&mut *tx)
            .await?;
        finish_job(&mut tx, job.id, "done", None, now).await?;
        let detail = serde_json::json!({ "assignment_kept_for_overlapping_grant": kept_for_other });
        audit(&mut tx, now, "worker", "grant.revoke", &format!("task:{}", g.task_id), &detail.to_string()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Provisioning failed for good.
    pub async fn provisioning_failed(&self, job: &JobRow, g: &GrantRow, error: &str, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE grants SET state = 'failed' WHERE id = $1").bind(g.id).execute(&mut *tx).await?;
        sqlx::query("UPDATE tasks SET state = 'failed', reason = $1, updated_at = $2 WHERE id = $3")
            .bind(error)
            .bind(now)
            .bind(g.task_id)
            .execute(&mut *tx)
            .await?;
        finish_job(&mut tx, job.id, "failed", Some(error), now).await?;
        audit(
            &mut tx,
            now,
            "worker",
            "grant.fail",
            &format!("task:{}", g.task_id),
            &serde_json::json!({"error": error}).to_string(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn retry_job(&self, job: &JobRow, error: &str, run_after: i64, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET locked_until = NULL, run_after = $1, last_error = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(run_after)
        .bind(error)
        .bind(now)
        .bind(job.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends every grant whose time is up and queues the removal of its assignment, in one transaction so that a
    /// crash between the two cannot lose the revocation. Returns the affected task ids.
    pub async fn expire_due_grants(&self, now: i64) -> Result<Vec<i64>> {
        let mut tx = self.begin().await?;
        let due: Vec<(i64, i64)> =
            sqlx::query_as("SELECT id, task_id FROM grants WHERE state = 'active' AND expires_at <= $1")
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
        // Nothing due (most ticks): no commit, so the cached reads keep answering.
        if due.is_empty() {
            return Ok(Vec::new());
        }
        for (grant_id, task_id) in &due {
            sqlx::query("UPDATE grants SET state = 'revoking' WHERE id = $1").bind(grant_id).execute(&mut *tx).await?;
            set_task_state(&mut tx, *task_id, "expired", now).await?;
            enqueue(&mut tx, "revoke", *grant_id, now).await?;
            audit(&mut tx, now, "worker", "grant.expire", &format!("task:{task_id}"), "{}").await?;
        }
        tx.commit().await?;
        Ok(due.into_iter().map(|(_, t)| t).collect())
    }

    /// The earliest moment a worker has something to do: a job becomes due, a grant ends, or an undecided
    /// request times out (`pending_timeout` after it was filed).
    pub async fn next_due(&self, pending_timeout: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(t) FROM (
                 SELECT MIN(CASE WHEN locked_until > run_after THEN locked_until ELSE run_after END) AS t
                     FROM jobs WHERE state = 'pending'
                 UNION ALL SELECT MIN(expires_at) FROM grants WHERE state = 'active'
                 UNION ALL SELECT MIN(created_at) + $1 FROM tasks WHERE state = 'pending_approval') AS due",
        )
        .bind(pending_timeout)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Withdraws the caller's undecided requests for an entitlement and releases their grants on it (active or
    /// still provisioning), queueing the removal of the assignments. Returns the affected task ids.
    pub async fn drop_access(&self, user_id: i64, app_id: &str, entitlement_id: &str, now: i64) -> Result<Vec<i64>> {
        let mut tx = self.begin().await?;
        let pending: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM tasks WHERE requester_id = $1 AND app_id = $2 AND entitlement_id = $3
             AND state = 'pending_approval'",
        )
        .bind(user_id)
        .bind(app_id)
        .bind(entitlement_id)
        .fetch_all(&mut *tx)
        .await?;
        for id in &pending {
            cancel(&mut tx, *id, user_id, now).await?;
        }
        let held: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT id, task_id FROM grants WHERE user_id = $1 AND app_id = $2 AND entitlement_id = $3
             AND (state = 'provisioning' OR (state = 'active' AND expires_at > $4))",
        )
        .bind(user_id)
        .bind(app_id)
        .bind(entitlement_id)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for (grant_id, task_id) in &held {
            // A provisioning grant keeps its provision job: `provisioned` sees the release and queues the removal.
            let state: String = sqlx::query_scalar(
                "UPDATE grants SET state = CASE WHEN state = 'active' THEN 'revoking' ELSE 'released' END,
                     expires_at = $1 WHERE id = $2 RETURNING state",
            )
            .bind(now)
            .bind(grant_id)
            .fetch_one(&mut *tx)
            .await?;
            if state == "revoking" {
                enqueue(&mut tx, "revoke", *grant_id, now).await?;
            }
            set_task_state(&mut tx, *task_id, "released", now).await?;
            audit(&mut tx, now, &format!("user:{user_id}"), "grant.release", &format!("task:{task_id}"), "{}").await?;
        }
        tx.commit().await?;
        Ok(pending.into_iter().chain(held.into_iter().map(|(_, t)| t)).collect())
    }

    /// Switches the requester's undecided task to its policy's emergency steps and places it where they lead;
    /// false when it was decided meanwhile.
    pub async fn escalate(
        &self,
        task_id: i64,
        user_id: i64,
        steps_json: &str,
        placement: Placement<'_>,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE tasks SET emergency = 1, steps_json = $1, step_index = 0, updated_at = $2
             WHERE id = $3 AND requester_id = $4 AND state = 'pending_approval'",
        )
        .bind(steps_json)
        .bind(now)
        .bind(task_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !done {
            return Ok(false);
        }
        audit(&mut tx, now, &format!("user:{user_id}"), "task.escalate", &format!("task:{task_id}"), "{}").await?;
        place(&mut tx, task_id, placement, None, None, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Undecided tasks that wait for no group (for named people or a policy's wait step).
    pub async fn pending_tasks_without_group(&self) -> Result<Vec<TaskRow>> {
        Ok(sqlx::query_as(&format!(
            "{TASK_SELECT} WHERE t.state = 'pending_approval' AND t.waiting_for_group IS NULL ORDER BY t.id"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Places a task whose policy wait ended where its policy now leads, unless it changed since it was read as
    /// `expect_steps_json` (then false).
    pub async fn resume(
        &self,
        task_id: i64,
        expect_steps_json: &str,
        placement: Placement<'_>,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let still: Option<i64> =
            sqlx::query_scalar("SELECT id FROM tasks WHERE id = $1 AND state = 'pending_approval' AND steps_json = $2")
                .bind(task_id)
                .bind(expect_steps_json)
                .fetch_optional(&mut *tx)
                .await?;
        if still.is_none() {
            return Ok(false);
        }
        audit(&mut tx, now, "worker", "task.wait_ended", &format!("task:{task_id}"), "{}").await?;
        place(&mut tx, task_id, placement, None, None, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Cancels the requester's undecided task; false when it was decided meanwhile.
    pub async fn cancel_task(&self, task_id: i64, user_id: i64, now: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = cancel(&mut tx, task_id, user_id, now).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Requests nobody decided before `cutoff` (their creation time) time out. Returns their ids.
    pub async fn time_out_pending(&self, cutoff: i64, now: i64) -> Result<Vec<i64>> {
        let mut tx = self.begin().await?;
        let due: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM tasks WHERE state = 'pending_approval' AND created_at <= $1")
                .bind(cutoff)
                .fetch_all(&mut *tx)
                .await?;
        if due.is_empty() {
            return Ok(due);
        }
        for id in &due {
            close_undecided(&mut tx, *id, "timed_out", now).await?;
            audit(&mut tx, now, "worker", "task.time_out", &format!("task:{id}"), "{}").await?;
        }
        tx.commit().await?;
        Ok(due)
    }

    pub async fn comment(&self, task_id: i64, user_id: i64, comment: &str, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let detail = serde_json::json!({ "comment": comment }).to_string();
        audit(&mut tx, now, &format!("user:{user_id}"), "task.comment", &format!("task:{task_id}"), &detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The task's history from the audit log, oldest first.
    pub async fn task_events(&self, task_id: i64) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(
            "SELECT a.at, COALESCE(u.username, 'cone') AS actor, a.action, a.detail FROM audit_log a
             LEFT JOIN users u ON a.actor = 'user:' || u.id WHERE a.subject = $1 ORDER BY a.id",
        )
        .bind(format!("task:{task_id}"))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Tasks matching `filter`, newest first, `limit` from `offset`; `open` narrows to undecided or provisioning
    /// tasks, `closed` to the rest.
    pub async fn search_tasks(
        &self,
        filter: TaskFilter<'_>,
        open: Option<bool>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<TaskRow>> {
        let open_clause = match open {
            None => "",
            Some(true) => " AND t.state IN ('pending_approval', 'provisioning')",
            Some(false) => " AND t.state NOT IN ('pending_approval', 'provisioning')",
        };
        let rows = match filter {
            TaskFilter::Requested(user_id) => {
                sqlx::query_as(&format!(
                    "{TASK_SELECT} WHERE t.requester_id = $1{open_clause} ORDER BY t.id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(user_id)
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?
            }
            TaskFilter::Approvable { user_id, groups } => {
                // Groups are few per user; JSON keeps the statement the same whatever their number.
                let groups = serde_json::to_string(groups)?;
                let groups_in = self.backend.json_values("$2");
                sqlx::query_as(&format!(
                    "{TASK_SELECT} WHERE t.state = 'pending_approval' AND t.requester_id != $1
                     AND (t.waiting_for_group IS NULL OR t.waiting_for_group IN (SELECT value FROM {groups_in})){open_clause}
                     ORDER BY t.id DESC LIMIT $3 OFFSET $4"
                ))
                .bind(user_id)
                .bind(groups)
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(rows)
    }

    // ---- drift ----

    /// The grants a sweep of a sync that started at `synced_at` compares with: those that may hold an assignment,
    /// and those ended since (`drift::compare` decides which explain what).
    pub async fn drift_grants(&self, synced_at: i64) -> Result<Vec<crate::drift::GrantView>> {
        Ok(sqlx::query_as(&format!(
            "SELECT id, instance_arn, account_id, permission_set_arn, principal_id, state, starts_at, expires_at,
                 ended_at
             FROM grants WHERE state IN {HOLDING_STATES} OR (state = 'ended' AND ended_at >= $1)"
        ))
        .bind(synced_at)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records a sweep of `instance_arn` in one transaction: new findings are audited once, seen ones get a new
    /// `last_seen`, open ones not seen are resolved (and audited), and each finding with a remedy gets a repair job
    /// unless one is waiting already, so a repair that ran but did not stick is tried again without piling up.
    pub async fn record_drift(
        &self,
        instance_arn: &str,
        findings: &[crate::drift::Finding],
        now: i64,
    ) -> Result<DriftRecord> {
        let mut tx = self.begin().await?;
        let mut record = DriftRecord::default();
        let mut seen = Vec::with_capacity(findings.len());
        for f in findings {
            let remedy = f.remedy.map(|r| r.as_str());
            let open: Option<i64> = sqlx::query_scalar(
                "UPDATE drift_findings SET last_seen = $1, grant_id = $2, remedy = $3
                 WHERE resolved_at IS NULL AND kind = $4 AND instance_arn = $5 AND account_id = $6
                 AND permission_set_arn = $7 AND principal_id = $8 RETURNING id",
            )
            .bind(now)
            .bind(f.grant_id)
            .bind(remedy)
            .bind(f.kind.as_str())
            .bind(instance_arn)
            .bind(&f.account_id)
            .bind(&f.permission_set_arn)
            .bind(&f.principal_id)
            .fetch_optional(&mut *tx)
            .await?;
            let id = match open {
                Some(id) => id,
                None => {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO drift_findings (kind, instance_arn, account_id, permission_set_arn, principal_id,
                             grant_id, remedy, first_seen, last_seen)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                    )
                    .bind(f.kind.as_str())
                    .bind(instance_arn)
                    .bind(&f.account_id)
                    .bind(&f.permission_set_arn)
                    .bind(&f.principal_id)
                    .bind(f.grant_id)
                    .bind(remedy)
                    .bind(now)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    let row = drift_row(&mut *tx, id).await?;
                    let action = format!("drift.{}", f.kind.as_str());
                    audit(&mut tx, now, "worker", &action, &format!("drift:{id}"), &row.audit_detail()).await?;
                    record.opened.push(row);
                    id
                }
            };
            seen.push(id);
            if let Some(remedy) = f.remedy {
                let waiting: Option<i64> =
                    sqlx::query_scalar("SELECT 1 FROM jobs WHERE finding_id = $1 AND state = 'pending' LIMIT 1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if waiting.is_none() {
                    insert_job(&mut tx, remedy.job_kind(), f.grant_id, Some(id), now).await?;
                    record.queued += 1;
                }
            }
        }
        let resolved: Vec<i64> = sqlx::query_scalar(&format!(
            "UPDATE drift_findings SET resolved_at = $1
             WHERE resolved_at IS NULL AND instance_arn = $2
             AND id NOT IN (SELECT CAST(value AS BIGINT) FROM {})
             RETURNING id",
            self.backend.json_values("$3")
        ))
        .bind(now)
        .bind(instance_arn)
        .bind(serde_json::to_string(&seen)?)
        .fetch_all(&mut *tx)
        .await?;
        for id in &resolved {
            let detail = drift_row(&mut *tx, *id).await?.audit_detail();
            audit(&mut tx, now, "worker", "drift.resolved", &format!("drift:{id}"), &detail).await?;
        }
        record.resolved = resolved.len();
        tx.commit().await?;
        Ok(record)
    }

    pub async fn drift_finding(&self, id: i64) -> Result<DriftRow> {
        drift_row(&self.pool, id).await
    }

    /// Open findings, oldest first.
    pub async fn open_drift(&self) -> Result<Vec<DriftRow>> {
        Ok(sqlx::query_as(&format!("{DRIFT_SELECT} WHERE f.resolved_at IS NULL ORDER BY f.id"))
            .fetch_all(&self.pool)
            .await?)
    }

    /// A grant now holds (or is making, or removing) the finding's assignment.
    pub async fn drift_explained(&self, f: &DriftRow) -> Result<bool> {
        let holder: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT 1 FROM grants WHERE state IN {HOLDING_STATES} AND instance_arn = $1
                 AND account_id = $2 AND permission_set_arn = $3 AND principal_id = $4 LIMIT 1"
        ))
        .bind(&f.instance_arn)
        .bind(&f.account_id)
        .bind(&f.permission_set_arn)
        .bind(&f.principal_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(holder.is_some())
    }

    /// The grant is active and not yet due to end.
    pub async fn grant_active(&self, grant_id: i64, now: i64) -> Result<bool> {
        let active: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM grants WHERE id = $1 AND state = 'active' AND expires_at > $2")
                .bind(grant_id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        Ok(active.is_some())
    }

    /// A drift repair job is done; what it did is audited on its finding.
    pub async fn drift_repaired(&self, job: &JobRow, repair: Repair, now: i64) -> Result<()> {
        let finding_id = job.finding_id.with_context(|| format!("drift job {} names no finding", job.id))?;
        let mut tx = self.begin().await?;
        finish_job(&mut tx, job.id, "done", None, now).await?;
        let action = match repair {
            Repair::Skipped => None,
            Repair::Removed => Some("drift.remove"),
            Repair::Restored => {
                // The grant may have ended while its assignment was being restored (another process revoked it):
                // then the restored assignment must go again.
                let grant_id = job.grant_id.with_context(|| format!("drift job {} names no grant", job.id))?;
                let ended: Option<i64> = sqlx::query_scalar(
                    "UPDATE grants SET state = 'revoking' WHERE id = $1 AND state = 'ended' RETURNING id",
                )
                .bind(grant_id)
                .fetch_optional(&mut *tx)
                .await?;
                if ended.is_some() {
                    enqueue(&mut tx, "revoke", grant_id, now).await?;
                }
                Some("drift.reprovision")
            }
        };
        if let Some(action) = action {
            let detail = drift_row(&mut *tx, finding_id).await?.audit_detail();
            audit(&mut tx, now, "worker", action, &format!("drift:{finding_id}"), &detail).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The id of the first audit entry whose hash does not match its content or its predecessor, if any. Reads
    /// the log a page at a time.
    pub async fn audit_chain_break(&self) -> Result<Option<i64>> {
        let mut filter = AuditFilter::default();
        let mut prev = String::new();
        loop {
            let rows = self.audit_entries(&filter, AUDIT_BATCH).await?;
            let Some(last) = rows.last() else { return Ok(None) };
            filter.after_id = last.id;
            for AuditRow { id, at, actor, action, subject, detail, prev_hash, hash } in rows {
                if prev_hash != prev || hash != audit_hash(&prev, at, &actor, &action, &subject, &detail) {
                    return Ok(Some(id));
                }
                prev = hash;
            }
        }
    }

    /// Up to `limit` audit entries matching `filter`, in id order. Callers page with `after_id` (the last id they
    /// saw), which stays right while entries are appended: ids grow in commit order, since writers run one at a time.
    pub async fn audit_entries(&self, filter: &AuditFilter, limit: i64) -> Result<Vec<AuditRow>> {
        let (action_clause, action) = match filter.action.as_deref() {
            None => ("", String::new()),
            Some(a) => match a.strip_suffix(".*") {
                // `\` escapes LIKE's wildcards, which `_` in action names would otherwise be.
                Some(family) => (
                    " AND action LIKE $5 ESCAPE '\\'",
                    format!("{}.%", family.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")),
                ),
                None => (" AND action = $5", a.to_string()),
            },
        };
        let sql = format!(
            "SELECT id, at, actor, action, subject, detail, prev_hash, hash FROM audit_log
             WHERE id > $1 AND at >= $2 AND at < $3{action_clause} ORDER BY id LIMIT $4"
        );
        let mut query = sqlx::query_as(&sql)
            .bind(filter.after_id)
            .bind(filter.since.unwrap_or(i64::MIN))
            .bind(filter.until.unwrap_or(i64::MAX))
            .bind(limit);
        if !action_clause.is_empty() {
            query = query.bind(action);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    // ---- webhook deliveries ----

    /// Takes up to `limit` due deliveries and leases them for `lease_secs`, as [`Db::claim_job`] does jobs: on
    /// PostgreSQL, replicas skip the rows another is claiming, so a delivery is attempted by one replica at a time.
    pub async fn claim_deliveries(&self, now: i64, lease_secs: i64, limit: i64) -> Result<Vec<DeliveryRow>> {
        let mut tx = self.pool.begin_with(self.backend.begin_statement()).await?;
        let mut due: Vec<DeliveryRow> = sqlx::query_as(&format!(
            "SELECT id, delivery_id, webhook, event, body, attempts FROM webhook_deliveries
             WHERE state = 'pending' AND run_after <= $1 AND (locked_until IS NULL OR locked_until <= $1)
             ORDER BY run_after, id LIMIT $2{}",
            self.backend.skip_locked("webhook_deliveries")
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        for d in &mut due {
            sqlx::query(
                "UPDATE webhook_deliveries SET locked_until = $1, attempts = attempts + 1, updated_at = $2 WHERE id = $3",
            )
            .bind(now + lease_secs)
            .bind(now)
            .bind(d.id)
            .execute(&mut *tx)
            .await?;
            d.attempts += 1;
        }
        tx.commit().await?;
        Ok(due)
    }

    /// Records an attempt: `delivered`, `failed` (given up), or `pending` again from `run_after`.
    pub async fn record_delivery(
        &self,
        id: i64,
        state: &str,
        status: Option<u16>,
        error: Option<&str>,
        run_after: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, last_status = $2, last_error = $3, run_after = $4,
                 locked_until = NULL, updated_at = $5
             WHERE id = $6 AND state = 'pending'",
        )
        .bind(state)
        .bind(status.map(i64::from))
        .bind(error)
        .bind(run_after)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// When the next pending delivery becomes due (or its lease ends).
    pub async fn next_delivery_due(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(CASE WHEN locked_until > run_after THEN locked_until ELSE run_after END)
             FROM webhook_deliveries WHERE state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    // ---- access document ----

    /// Records the configuration file's access document as a new version when the file says something else than
    /// at its last version, and returns the version in force. So a version applied through the API since then
    /// stays in force until the file itself changes, and servers restarting with the same file agree.
    pub async fn apply_file_access(&self, document: &str, comment: &str, now: i64) -> Result<ConfigVersionRow> {
        let mut tx = self.begin().await?;
        let digest = hex::encode(Sha256::digest(document.as_bytes()));
        let last: Option<String> =
            sqlx::query_scalar("SELECT digest FROM config_versions WHERE source = 'file' ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        if last.as_deref() != Some(digest.as_str()) {
            insert_config_version(&mut tx, document, &digest, None, comment, now).await?;
        }
        let current = newest_config(&mut tx).await?.context("the access document's version just recorded is gone")?;
        tx.commit().await?;
        Ok(current)
    }

    /// Records an access document applied through the API by `author_id`. `base`, when given, is the version its
    /// author started from: if another has been applied since, nothing is recorded.
    pub async fn apply_access(
        &self,
        document: &str,
        author_id: i64,
        comment: &str,
        base: Option<i64>,
        now: i64,
    ) -> Result<Applied> {
        let mut tx = self.begin().await?;
        let digest = hex::encode(Sha256::digest(document.as_bytes()));
        let newest = newest_config(&mut tx).await?;
        if let Some(base) = base
            && newest.as_ref().map_or(0, |v| v.id) != base
        {
            return Ok(Applied::Stale(newest.map_or(0, |v| v.id)));
        }
        if let Some(v) = newest.filter(|v| v.digest == digest) {
            return Ok(Applied::Unchanged(v));
        }
        insert_config_version(&mut tx, document, &digest, Some(author_id), comment, now).await?;
        let row = newest_config(&mut tx).await?.context("the access document's version just recorded is gone")?;
        tx.commit().await?;
        Ok(Applied::New(row))
    }

    /// The access document in force: the newest version.
    pub async fn current_access(&self) -> Result<Option<ConfigVersionRow>> {
        Ok(self.access_versions(0, 1).await?.pop())
    }

    pub async fn access_version(&self, id: i64) -> Result<Option<ConfigVersionRow>> {
        Ok(sqlx::query_as(&format!("{CONFIG_SELECT} WHERE v.id = $1")).bind(id).fetch_optional(&self.pool).await?)
    }

    /// Versions of the access document, newest first.
    pub async fn access_versions(&self, offset: i64, limit: i64) -> Result<Vec<ConfigVersionRow>> {
        Ok(sqlx::query_as(&format!("{CONFIG_SELECT} ORDER BY v.id DESC LIMIT $1 OFFSET $2"))
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Forgets delivered and failed deliveries last touched before `before` (the audit log keeps the events).
    pub async fn prune_deliveries(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM webhook_deliveries WHERE state != 'pending' AND updated_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

async fn newest_config(tx: &mut Tx) -> Result<Option<ConfigVersionRow>> {
    Ok(sqlx::query_as(&format!("{CONFIG_SELECT} ORDER BY v.id DESC LIMIT 1")).fetch_optional(&mut **tx).await?)
}

/// A new version of the access document, with its audit entry (`file` or the author as actor).
async fn insert_config_version(
    tx: &mut Tx,
    document: &str,
    digest: &str,
    author_id: Option<i64>,
    comment: &str,
    now: i64,
) -> Result<()> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO config_versions (document, digest, source, author_id, comment, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(document)
    .bind(digest)
    .bind(if author_id.is_some() { "api" } else { "file" })
    .bind(author_id)
    .bind(comment)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let actor = author_id.map_or("file".to_string(), |a| format!("user:{a}"));
    let detail = serde_json::json!({ "digest": digest, "comment": comment }).to_string();
    audit(tx, now, &actor, "config.apply", &format!("config:{id}"), &detail).await
}

async fn place(
    tx: &mut Tx,
    task_id: i64,
    placement: Placement<'_>,
    decider: Option<i64>,
    reason: Option<&str>,
    now: i64,
) -> Result<()> {
    let (state, index, group) = match placement {
        Placement::Waiting { index, group } => ("pending_approval", index as i64, group),
        Placement::Provision => ("provisioning", -1, None),
        Placement::Denied => ("denied", -1, None),
    };
    sqlx::query(
        "UPDATE tasks SET state = $1, step_index = CASE WHEN $2 >= 0 THEN $2 ELSE step_index END, waiting_for_group = $3,
             decided_by = COALESCE($4, decided_by), reason = COALESCE($5, reason), updated_at = $6 WHERE id = $7",
    )
    .bind(state)
    .bind(index)
    .bind(group)
    .bind(decider)
    .bind(reason.filter(|r| !r.is_empty()))
    .bind(now)
    .bind(task_id)
    .execute(&mut **tx)
    .await?;
    let grant_state = match state {
        "provisioning" => "provisioning",
        "denied" => "denied",
        _ => "requested",
    };
    sqlx::query("UPDATE grants SET state = $1 WHERE task_id = $2")
        .bind(grant_state)
        .bind(task_id)
        .execute(&mut **tx)
        .await?;
    if state == "provisioning" {
        let (extends, add, max): (Option<i64>, i64, i64) =
            sqlx::query_as("SELECT extends_grant_id, duration_secs, max_duration_secs FROM tasks WHERE id = $1")
                .bind(task_id)
                .fetch_one(&mut **tx)
                .await?;
        match extends {
            Some(grant_id) => extend_grant(tx, task_id, grant_id, add, max, now).await?,
            None => {
                let grant_id: i64 = sqlx::query_scalar("SELECT id FROM grants WHERE task_id = $1")
                    .bind(task_id)
                    .fetch_one(&mut **tx)
                    .await?;
                enqueue(tx, "provision", grant_id, now).await?;
            }
        }
    }
    Ok(())
}

/// An approved extension moves the end of the grant; the assignment already exists, so there is nothing to
/// provision. The end never reaches further than the policy's maximum from now.
async fn extend_grant(tx: &mut Tx, task_id: i64, grant_id: i64, add: i64, max: i64, now: i64) -> Result<()> {
    // The grant is unexpired, so its end moves by `add` from where it is, capped at `max` from now.
    let extended = sqlx::query(
        "UPDATE grants SET expires_at = CASE WHEN expires_at + $1 < $2 THEN expires_at + $1 ELSE $2 END,
             extensions = extensions + 1
         WHERE id = $3 AND state = 'active' AND expires_at > $4",
    )
    .bind(add)
    .bind(now + max)
    .bind(grant_id)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if extended {
        set_task_state(tx, task_id, "granted", now).await?;
        audit(tx, now, "worker", "grant.extend", &format!("task:{task_id}"), "{}").await
    } else {
        sqlx::query("UPDATE tasks SET state = 'failed', reason = $1, updated_at = $2 WHERE id = $3")
            .bind("The grant ended before the extension was approved; request access again.")
            .bind(now)
            .bind(task_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// Cancels a task its requester still waits on; false when it is no longer undecided or not theirs.
async fn cancel(tx: &mut Tx, task_id: i64, user_id: i64, now: i64) -> Result<bool> {
    let mine: Option<i64> =
        sqlx::query_scalar("SELECT id FROM tasks WHERE id = $1 AND requester_id = $2 AND state = 'pending_approval'")
            .bind(task_id)
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?;
    if mine.is_none() {
        return Ok(false);
    }
    close_undecided(tx, task_id, "cancelled", now).await?;
    audit(tx, now, &format!("user:{user_id}"), "task.cancel", &format!("task:{task_id}"), "{}").await?;
    Ok(true)
}

/// Closes an undecided task; its grant (if it has one of its own) never starts.
async fn close_undecided(tx: &mut Tx, task_id: i64, state: &str, now: i64) -> Result<()> {
    set_task_state(tx, task_id, state, now).await?;
    sqlx::query("UPDATE grants SET state = 'cancelled' WHERE task_id = $1").bind(task_id).execute(&mut **tx).await?;
    Ok(())
}

async fn set_task_state(tx: &mut Tx, task_id: i64, state: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE tasks SET state = $1, updated_at = $2 WHERE id = $3")
        .bind(state)
        .bind(now)
        .bind(task_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn enqueue(tx: &mut Tx, kind: &str, grant_id: i64, now: i64) -> Result<()> {
    insert_job(tx, kind, Some(grant_id), None, now).await
}

async fn insert_job(tx: &mut Tx, kind: &str, grant_id: Option<i64>, finding_id: Option<i64>, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO jobs (kind, grant_id, finding_id, state, run_after, created_at, updated_at)
         VALUES ($1, $2, $3, 'pending', $4, $5, $6)",
    )
    .bind(kind)
    .bind(grant_id)
    .bind(finding_id)
    .bind(now)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn finish_job(tx: &mut Tx, job_id: i64, state: &str, error: Option<&str>, now: i64) -> Result<()> {
    sqlx::query("UPDATE jobs SET state = $1, locked_until = NULL, last_error = $2, updated_at = $3 WHERE id = $4")
        .bind(state)
        .bind(error)
        .bind(now)
        .bind(job_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn drift_row<'e>(executor: impl Executor<'e, Database = sqlx::Any>, id: i64) -> Result<DriftRow> {
    Ok(sqlx::query_as(&format!("{DRIFT_SELECT} WHERE f.id = $1")).bind(id).fetch_one(executor).await?)
}

/// On PostgreSQL, other replicas' changes: a changed task is forwarded to this process's long-polling clients
/// (`cone_task`), a change behind the cached reads advances `db`'s generation (`cone_cache`), and a new version of
/// the access document notifies `access` (`cone_config`).
pub async fn forward_changes(
    db: Db,
    database: Database,
    changes: tokio::sync::broadcast::Sender<i64>,
    access: Arc<Notify>,
) {
    let Database::Postgres { url, name } = database else { return };
    let missed = || {
        db.data_changed();
        access.notify_one();
    };
    loop {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen_all(["cone_task", "cone_cache", "cone_config"]).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listening.await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("cannot listen for other replicas' changes on {name}, retrying: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Whatever changed before the listener was up is unknown.
        missed();
        loop {
            match listener.recv().await {
                Ok(n) if n.channel() == "cone_cache" => db.data_changed(),
                Ok(n) if n.channel() == "cone_config" => access.notify_one(),
                Ok(n) => {
                    if let Ok(id) = n.payload().parse() {
                        let _ = changes.send(id);
                    }
                }
                // The listener reconnects by itself on the next `recv`. Notifications sent while it was away are
                // lost: a waiting client loses at most its long-poll timeout, and the cached reads start afresh.
                Err(e) => {
                    tracing::warn!("lost the listener for other replicas' changes on {name}, reconnecting: {e}");
                    missed();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Appends to the hash-chained audit log: each entry's hash covers its content and the previous entry's hash, so
/// any edit or deletion breaks the chain. A task or grant event also queues a delivery for each webhook subscribed
/// to it, in the same transaction: sent if and only if the change commits.
pub async fn audit(tx: &mut Tx, at: i64, actor: &str, action: &str, subject: &str, detail: &str) -> Result<()> {
    let prev: Option<String> =
        sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetch_optional(&mut **tx).await?;
    let prev = prev.unwrap_or_default();
    let hash = audit_hash(&prev, at, actor, action, subject, detail);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_log (at, actor, action, subject, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id",
    )
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(detail)
    .bind(&prev)
    .bind(&hash)
    .fetch_one(&mut **tx)
    .await?;
    let outbox = tx.outbox.clone();
    let webhooks = outbox.subscribers(action);
    if !webhooks.is_empty() {
        let entry = AuditRow {
            id,
            at,
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            detail: detail.into(),
            prev_hash: prev,
            hash,
        };
        queue_deliveries(tx, &entry, &webhooks).await?;
    }
    Ok(())
}

/// What a webhook payload says about the event's task.
#[derive(FromRow, serde::Serialize)]
struct WebhookTask {
    kind: String,
    requester: String,
    app_id: String,
    entitlement_id: String,
    account_id: Option<String>,
    account_name: Option<String>,
    permission_set_name: Option<String>,
}

/// Queues the delivery of the audit entry `e` to each of `webhooks`. The body is fixed here, so every attempt
/// sends the same bytes; each delivery has its own id, which receivers use to drop repeats.
async fn queue_deliveries(tx: &mut Tx, e: &AuditRow, webhooks: &[&str]) -> Result<()> {
    let task_id = e.subject.strip_prefix("task:").and_then(|n| n.parse::<i64>().ok());
    let actor = match e.actor.strip_prefix("user:").and_then(|n| n.parse::<i64>().ok()) {
        Some(user_id) => sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?
            .unwrap_or_else(|| e.actor.clone()),
        None => "cone".to_string(),
    };
    let task: Option<WebhookTask> = match task_id {
        Some(id) => {
            sqlx::query_as(
                "SELECT t.kind, u.username AS requester, t.app_id, t.entitlement_id, e.resource_id AS account_id,
                     r.name AS account_name, e.permission_set_name
                 FROM tasks t JOIN users u ON u.id = t.requester_id
                 LEFT JOIN entitlements e ON e.app_id = t.app_id AND e.id = t.entitlement_id
                 LEFT JOIN resources r ON r.app_id = e.app_id AND r.id = e.resource_id
                 WHERE t.id = $1",
            )
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
        }
        None => None,
    };
    let detail = serde_json::from_str(&e.detail).unwrap_or_else(|_| serde_json::Value::String(e.detail.clone()));
    for webhook in webhooks {
        let delivery_id = uuid::Uuid::new_v4().to_string();
        let body = serde_json::json!({
            "id": delivery_id, "event": e.action, "audit_id": e.id, "at": rfc3339(e.at), "task_id": task_id,
            "actor": actor, "task": task, "detail": detail,
        })
        .to_string();
        sqlx::query(
            "INSERT INTO webhook_deliveries (delivery_id, webhook, audit_id, event, body, state, run_after, created_at,
                 updated_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8)",
        )
        .bind(&delivery_id)
        .bind(*webhook)
        .bind(e.id)
        .bind(&e.action)
        .bind(&body)
        .bind(e.at)
        .bind(e.at)
        .bind(e.at)
        .execute(&mut **tx)
        .await?;
    }
    tx.queued = true;
    Ok(())
}

/// A Unix time as RFC 3339 in UTC, to the second (`2025-01-31T09:30:00Z`).
pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn audit_hash(prev: &str, at: i64, actor: &str, action: &str, subject: &str, detail: &str) -> String {
    let mut h = Sha256::new();
    for part in [prev, &at.to_string(), actor, action, subject, detail] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

// ---- web console sessions ----

impl Db {
    /// Stores a web console session by its secret's hash, with its audit entry; sessions that ended go on the way.
    /// Records a console sign-in; `oidc_issuer` names the identity provider that signed the person in, if any.
    pub async fn insert_web_session(
        &self,
        token_hash: &str,
        user_id: i64,
        now: i64,
        expires_at: i64,
        oidc_issuer: Option<&str>,
    ) -> Result<()> {
        let detail = match oidc_issuer {
            None => serde_json::json!({ "via": "web" }),
            Some(issuer) => serde_json::json!({ "via": "web", "oidc": issuer }),
        };
        self.sign_in("web_sessions", token_hash, user_id, now, expires_at, detail).await
    }

    /// The user of an unexpired web console session.
    pub async fn web_session_user(&self, token_hash: &str, now: i64) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(
            "SELECT u.id, u.username, u.display_name, u.email, u.idc_user_id, u.password_hash, u.kind
             FROM web_sessions w JOIN users u ON u.id = w.user_id WHERE w.token_hash = $1 AND w.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Ends a web console session (signing out), with its audit entry.
    pub async fn delete_web_session(&self, token_hash: &str, user_id: i64, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1").bind(token_hash).execute(&mut *tx).await?;
        let user = format!("user:{user_id}");
        audit(&mut tx, now, &user, "logout", &user, r#"{"via":"web"}"#).await?;
        tx.commit().await?;
        Ok(())
    }
}

// ---- IAM and the access-key inventory ----

/// An access key with its user's name, as stored (times are Unix seconds).
#[derive(Debug, Clone, FromRow)]
pub struct AccessKeyRow {
    pub account_id: String,
    /// The account's name in the catalog; absent for an account the catalog does not know.
    pub account_name: Option<String>,
    pub id: String,
    pub user_arn: String,
    pub user_name: String,
    pub status: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub last_used_service: Option<String>,
    pub last_used_region: Option<String>,
}

/// Which access keys to list: empty strings match every account, user and status.
#[derive(Debug, Clone, Default)]
pub struct AccessKeyFilter {
    /// An account id, or its name in the catalog.
    pub account: String,
    pub user_name: String,
    pub status: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct IamUserRow {
    pub account_id: String,
    pub account_name: Option<String>,
    pub arn: String,
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub password_last_used_at: Option<i64>,
    pub access_keys: i64,
}

/// A value of a row [`insert_rows`] writes.
enum Cell<'a> {
    Text(Option<&'a str>),
    Time(Option<i64>),
}

/// Inserts `rows` into `table`'s `columns`, one statement per row.
async fn insert_rows(tx: &mut Tx, table: &str, columns: &[&str], rows: Vec<Vec<Cell<'_>>>) -> Result<()> {
    let params: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let sql = format!("INSERT INTO {table} ({}) VALUES ({})", columns.join(", "), params.join(", "));
    for row in rows {
        let mut query = sqlx::query(&sql);
        for cell in row {
            query = match cell {
                Cell::Text(t) => query.bind(t),
                Cell::Time(t) => query.bind(t),
            };
        }
        query.execute(&mut **tx).await.with_context(|| format!("storing a row of {table}"))?;
    }
    Ok(())
}

/// An RFC 3339 time from AWS as Unix seconds.
fn unix(text: &str) -> Result<i64> {
    Ok(chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("AWS gave the time \"{text}\", which is not RFC 3339; the IAM sync stored nothing"))?
        .timestamp())
}

fn unix_opt(text: &Option<String>) -> Result<Option<i64>> {
    text.as_deref().map(unix).transpose()
}

/// The IAM tables, children first, so that a delete never leaves a row naming a deleted one.
const IAM_TABLES: [&str; 7] = [
    "iam_access_keys",
    "iam_role_trusts",
    "iam_group_members",
    "iam_roles",
    "iam_groups",
    "iam_users",
    "iam_skipped_accounts",
];

/// The account an IAM row belongs to, from its ARN, as a cell.
fn account(arn: &str) -> Cell<'_> {
    Cell::Text(Some(cone_aws::arn_account(arn)))
}

/// Inserts one account's IAM (see [`Db::apply_iam`]).
async fn insert_iam(tx: &mut Tx, iam: &cone_aws::IamSnapshot) -> Result<()> {
    use Cell::{Text, Time};
    let mut rows = Vec::new();
    for u in &iam.users {
        let (created, used) = (unix(&u.created)?, unix_opt(&u.password_last_used)?);
        rows.push(vec![
            account(&u.arn),
            Text(Some(&u.arn)),
            Text(Some(&u.id)),
            Text(Some(&u.name)),
            Time(Some(created)),
            Time(used),
        ]);
    }
    let columns = ["account_id", "arn", "id", "name", "created_at", "password_last_used_at"];
    insert_rows(tx, "iam_users", &columns, rows).await?;
    let mut rows = Vec::new();
    for g in &iam.groups {
        let created = Time(Some(unix(&g.created)?));
        rows.push(vec![account(&g.arn), Text(Some(&g.arn)), Text(Some(&g.id)), Text(Some(&g.name)), created]);
    }
    insert_rows(tx, "iam_groups", &["account_id", "arn", "id", "name", "created_at"], rows).await?;
    let rows = iam.group_members.iter().map(|(g, u)| vec![account(g), Text(Some(g)), Text(Some(u))]).collect();
    insert_rows(tx, "iam_group_members", &["account_id", "group_arn", "user_arn"], rows).await?;
    let mut rows = Vec::new();
    for r in &iam.roles {
        let (created, used) = (unix(&r.created)?, unix_opt(&r.last_used)?);
        rows.push(vec![
            account(&r.arn),
            Text(Some(&r.arn)),
            Text(Some(&r.id)),
            Text(Some(&r.name)),
            Time(Some(created)),
            Time(used),
        ]);
    }
    let columns = ["account_id", "arn", "id", "name", "created_at", "last_used_at"];
    insert_rows(tx, "iam_roles", &columns, rows).await?;
    let rows = iam
        .trusted
        .iter()
        .map(|t| vec![account(&t.role_arn), Text(Some(&t.role_arn)), Text(Some(&t.kind)), Text(Some(&t.value))])
        .collect();
    let columns = ["account_id", "role_arn", "principal_kind", "principal"];
    insert_rows(tx, "iam_role_trusts", &columns, rows).await?;
    let mut rows = Vec::new();
    for k in &iam.access_keys {
        rows.push(vec![
            account(&k.user_arn),
            Text(Some(&k.id)),
            Text(Some(&k.user_arn)),
            Text(Some(&k.status)),
            Time(Some(unix(&k.created)?)),
            Time(unix_opt(&k.last_used)?),
            Text(k.last_used_service.as_deref()),
            Text(k.last_used_region.as_deref()),
        ]);
    }
    let columns = [
        "account_id",
        "id",
        "user_arn",
        "status",
        "created_at",
        "last_used_at",
        "last_used_service",
        "last_used_region",
    ];
    insert_rows(tx, "iam_access_keys", &columns, rows).await?;
    let rows = iam.skipped.iter().map(|s| vec![Text(Some(&s.account_id)), Text(Some(&s.reason))]).collect();
    insert_rows(tx, "iam_skipped_accounts", &["account_id", "reason"], rows).await?;
    Ok(())
}

impl Db {
    /// Replaces the IAM tables with the [`Part::Iam`] parts (one per account) of an IAM sync, in one transaction. No
    /// parts (neither `aws.sync_iam` nor `aws.sync_secrets` on) forgets what an earlier sync stored. Audited when
    /// something is stored or forgotten.
    pub async fn apply_iam(&self, app_id: &str, mut parts: PartStream<'_>, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut forgotten = 0;
        for table in IAM_TABLES {
            forgotten += sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?.rows_affected();
        }
        let (mut users, mut groups, mut roles, mut access_keys, mut skipped) = (0, 0, 0, 0, Vec::new());
        while let Some(part) = parts.next().await {
            let Part::Iam(iam) = part? else { continue };
            insert_iam(&mut tx, &iam).await?;
            users += iam.users.len();
            groups += iam.groups.len();
            roles += iam.roles.len();
            access_keys += iam.access_keys.len();
            skipped.extend(iam.skipped.into_iter().map(|s| s.account_id));
        }
        skipped.sort();
        let detail = serde_json::json!({
            "users": users, "groups": groups, "roles": roles, "access_keys": access_keys, "skipped_accounts": skipped,
        });
        if users + groups + roles > 0 || forgotten > 0 {
            audit(&mut tx, now, "connector:aws", "iam.sync", app_id, &detail.to_string()).await?;
        }
        tx.commit().await
    }

    #[cfg(test)]
    pub async fn apply_iam_snapshot(&self, app_id: &str, iam: &cone_aws::IamSnapshot, now: i64) -> Result<()> {
        let parts = futures_util::stream::iter([Ok(Part::Iam(iam.clone()))]).boxed();
        self.apply_iam(app_id, parts, now).await
    }

    /// Up to `limit` access keys `filter` selects, from `offset`, by user name, account and key id; account names
    /// from app `app_id`'s catalog.
    pub async fn access_keys(
        &self,
        app_id: &str,
        filter: &AccessKeyFilter,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<AccessKeyRow>> {
        Ok(sqlx::query_as(
            "SELECT k.account_id, r.name AS account_name, k.id, k.user_arn, u.name AS user_name, k.status,
                 k.created_at, k.last_used_at, k.last_used_service, k.last_used_region
             FROM iam_access_keys k JOIN iam_users u ON u.account_id = k.account_id AND u.arn = k.user_arn
             LEFT JOIN resources r ON r.app_id = $1 AND r.id = k.account_id
             WHERE ($2 = '' OR u.name = $2) AND ($3 = '' OR k.status = $3)
                 AND ($4 = '' OR k.account_id = $4 OR r.name = $4)
             ORDER BY u.name, k.account_id, k.id LIMIT $5 OFFSET $6",
        )
        .bind(app_id)
        .bind(&filter.user_name)
        .bind(&filter.status)
        .bind(&filter.account)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Up to `limit` IAM users from `offset` in `account` (an id or catalog name; empty for all), by name, with
    /// how many access keys each has; account names from app `app_id`'s catalog.
    pub async fn iam_users(&self, app_id: &str, account: &str, offset: i64, limit: i64) -> Result<Vec<IamUserRow>> {
        Ok(sqlx::query_as(
            "SELECT u.account_id, r.name AS account_name, u.arn, u.id, u.name, u.created_at, u.password_last_used_at,
                 (SELECT COUNT(*) FROM iam_access_keys k WHERE k.account_id = u.account_id AND k.user_arn = u.arn)
                     AS access_keys
             FROM iam_users u LEFT JOIN resources r ON r.app_id = $1 AND r.id = u.account_id
             WHERE ($2 = '' OR u.account_id = $2 OR r.name = $2)
             ORDER BY u.name, u.arn LIMIT $3 OFFSET $4",
        )
        .bind(app_id)
        .bind(account)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// `(user arn, group name)` for each group of the users `user_arns` names, by group name.
    pub async fn iam_groups_of(&self, user_arns: &[&str]) -> Result<Vec<(String, String)>> {
        let arns = self.backend.json_values("$1");
        Ok(sqlx::query_as(&format!(
            "SELECT m.user_arn, g.name FROM iam_group_members m
             JOIN iam_groups g ON g.account_id = m.account_id AND g.arn = m.group_arn
             WHERE m.user_arn IN (SELECT value FROM {arns}) ORDER BY g.name"
        ))
        .bind(serde_json::to_string(user_arns)?)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Fresh databases on each backend, for tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// What keeps a test database alive: its SQLite directory, or its PostgreSQL cluster.
    pub type Keep = Box<dyn std::any::Any + Send>;

    pub async fn sqlite() -> (Db, Keep) {
        let dir = tempfile::tempdir().unwrap();
        (Db::open(&Database::Sqlite(dir.path().join("cone.db"))).await.unwrap(), Box::new(dir))
    }

    /// A database in a cluster of its own; `None` (with a SKIP line) only where PostgreSQL is not installed, which
    /// `cargo xtask test` installs.
    pub async fn postgres(test: &str) -> Option<(Db, Keep)> {
        let Some(pg) = cone_testkit::Postgres::start().unwrap() else {
            eprintln!("SKIP {test} on PostgreSQL: it is not installed (cargo xtask test installs it)");
            return None;
        };
        let db = Db::open(&Database::try_from(pg.url.clone()).unwrap()).await.unwrap();
        Some((db, Box::new(pg)))
    }

    /// Runs each `async fn NAME(db: Db)` as a test on SQLite (`sqlite::NAME`) and on PostgreSQL (`postgres::NAME`).
    macro_rules! on_both_backends {
        ($($name:ident),* $(,)?) => {
            mod sqlite {
                $(#[tokio::test]
                async fn $name() {
                    let (db, _keep) = $crate::db::testing::sqlite().await;
                    super::$name(db).await
                })*
            }
            mod postgres {
                $(#[tokio::test]
                async fn $name() {
                    if let Some((db, _keep)) = $crate::db::testing::postgres(stringify!($name)).await {
                        super::$name(db).await
                    }
                })*
            }
        };
    }
    pub(crate) use on_both_backends;
}

#[cfg(test)]
mod tests {
    use super::*;

    testing::on_both_backends!(
        audit_log_is_chained_and_append_only,
        drift_is_audited_once_repaired_until_it_sticks_and_resolved,
        device_codes_are_single_use_and_rate_limited,
        concurrent_writers_keep_one_chain_and_claim_each_job_once,
        webhook_deliveries_are_queued_with_their_event_and_claimed_once,
        audit_entries_page_by_id_time_and_action,
        a_sync_never_turns_a_service_account_into_a_person,
        the_file_applies_when_it_changes_and_the_api_in_between,
        group_assignments_are_replaced_per_sync_and_reach_the_members,
    );

    /// A sync stores the assignments whose principal is a group (and only those); their members hold the
    /// entitlement through the group, and the next sync replaces them whole.
    async fn group_assignments_are_replaced_per_sync_and_reach_the_members(db: Db) {
        use cone_aws::{AssignmentRecord, Group, Principal};
        let user = |id: &str, name: &str| cone_aws::User {
            id: id.into(),
            user_name: name.into(),
            display_name: name.into(),
            email: None,
        };
        let assignment =
            |principal| AssignmentRecord { account_id: "111".into(), permission_set_arn: "ps-admin".into(), principal };
        let snap = cone_aws::Snapshot {
            resumed: None,
            instance_arn: "inst".into(),
            identity_store_id: "d-1".into(),
            accounts: vec![cone_aws::Account {
                id: "111".into(),
                name: "Production".into(),
                email: String::new(),
                status: "ACTIVE".into(),
            }],
            permission_sets: vec![cone_aws::PermissionSet {
                arn: "ps-admin".into(),
                name: "AdministratorAccess".into(),
                description: None,
                session_duration: None,
            }],
            provisioned: vec![("111".into(), "ps-admin".into())],
            users: vec![user("u-alice", "alice"), user("u-bob", "bob")],
            groups: vec![
                Group { id: "g-admins".into(), display_name: "Admins".into() },
                Group { id: "g-ops".into(), display_name: "Ops".into() },
            ],
            memberships: vec![("g-admins".into(), "u-alice".into()), ("g-ops".into(), "u-alice".into())],
            assignments: vec![
                assignment(Principal::Group("g-admins".into())),
                assignment(Principal::Group("g-ops".into())),
                assignment(Principal::User("u-bob".into())),
            ],
        };
        db.apply_snapshot("aws", &snap, 1).await.unwrap();
        let alice = db.user_by_name("alice").await.unwrap().unwrap();
        let bob = db.user_by_name("bob").await.unwrap().unwrap();
        let held = |group: &str| ("aws".to_string(), "111|ps-admin".to_string(), group.to_string());
        assert_eq!(db.held_through_groups(alice.id).await.unwrap(), [held("Admins"), held("Ops")]);
        assert_eq!(db.held_through_groups(bob.id).await.unwrap(), [], "a user assignment is no group's");
        let holders = db.holders("aws", "111|ps-admin", 5, 0, 10).await.unwrap();
        let seen: Vec<_> =
            holders.iter().map(|h| (h.username.as_str(), h.source.as_str(), h.group_name.as_deref())).collect();
        assert_eq!(seen, [("alice", "group", Some("Admins")), ("alice", "group", Some("Ops"))]);
        assert_eq!(db.holders("aws", "111|ps-admin", 5, 1, 10).await.unwrap().len(), 1, "paged by offset");

        // The next sync replaces them, and the cached read follows.
        let fewer = cone_aws::Snapshot { assignments: vec![assignment(Principal::Group("g-ops".into()))], ..snap };
        db.apply_snapshot("aws", &fewer, 2).await.unwrap();
        assert_eq!(db.held_through_groups(alice.id).await.unwrap(), [held("Ops")]);
    }

    /// The file's access document is recorded when it says something new, and only then, so an API version
    /// survives restarts with the same file; an API change is refused when it started from an older version; every
    /// version is audited with its author.
    async fn the_file_applies_when_it_changes_and_the_api_in_between(db: Db) {
        db.set_password("carol", "hash").await.unwrap();
        let carol = db.user_by_name("carol").await.unwrap().unwrap();
        let v1 = db.apply_file_access("policies: []\n", "start", 10).await.unwrap();
        assert_eq!((v1.source.as_str(), v1.author.as_deref()), ("file", None));
        // A restart with the same file records nothing.
        assert_eq!(db.apply_file_access("policies: []\n", "start", 11).await.unwrap().id, v1.id);
        let Applied::New(v2) = db.apply_access("policies: [] # api\n", carol.id, "why", Some(v1.id), 12).await.unwrap()
        else {
            panic!("not applied")
        };
        assert_eq!((v2.source.as_str(), v2.author.as_deref(), v2.comment.as_str()), ("api", Some("carol"), "why"));
        // The same document again is no new version; a change from a stale base is refused with the newest.
        assert!(matches!(db.apply_access("policies: [] # api\n", carol.id, "", None, 13).await.unwrap(),
            Applied::Unchanged(ref v) if v.id == v2.id));
        assert!(matches!(db.apply_access("x: 1\n", carol.id, "", Some(v1.id), 13).await.unwrap(),
            Applied::Stale(id) if id == v2.id));
        // The unchanged file leaves the API's version in force; a changed file wins.
        assert_eq!(db.apply_file_access("policies: []\n", "restart", 14).await.unwrap().id, v2.id);
        let v3 = db.apply_file_access("access_profiles: []\n", "restart", 15).await.unwrap();
        assert!(v3.id > v2.id && v3.source == "file");
        assert_eq!(db.current_access().await.unwrap().unwrap().id, v3.id);
        let history: Vec<i64> = db.access_versions(0, 10).await.unwrap().iter().map(|v| v.id).collect();
        assert_eq!(history, [v3.id, v2.id, v1.id]);
        assert_eq!(db.access_versions(1, 1).await.unwrap()[0].id, v2.id);
        let filter = AuditFilter { action: Some("config.apply".into()), ..Default::default() };
        let actors: Vec<String> = db.audit_entries(&filter, 10).await.unwrap().into_iter().map(|e| e.actor).collect();
        assert_eq!(actors, ["file", &format!("user:{}", carol.id), "file"]);
        assert_eq!(db.audit_chain_break().await.unwrap(), None);
    }

    /// Deliveries are written with the event (none for a rolled-back change), only for subscribed webhooks, and
    /// claimed by one claimant at a time until their lease ends.
    async fn webhook_deliveries_are_queued_with_their_event_and_claimed_once(db: Db) {
        let db = db
            .with_webhooks(vec![("all".into(), vec!["*".into()]), ("revocations".into(), vec!["grant.revoke".into()])]);
        db.set_password("alice", "hash").await.unwrap();
        let alice = db.user_by_name("alice").await.unwrap().unwrap();
        let record = async |action: &str, actor: &str, commit: bool| {
            let mut tx = db.begin().await.unwrap();
            audit(&mut tx, 100, actor, action, "task:7", r#"{"comment":"hi"}"#).await.unwrap();
            if commit {
                tx.commit().await.unwrap();
            }
        };
        record("task.comment", &format!("user:{}", alice.id), true).await;
        tokio::time::timeout(Duration::from_secs(1), db.deliveries_queued().notified())
            .await
            .expect("a commit that queued deliveries wakes the sender");
        record("grant.revoke", "worker", false).await;
        record("login", "user:1", true).await;
        record("drift.unexplained", "worker", true).await;
        record("grant.revoke", "worker", true).await;

        let rows: Vec<(String, String, String, String)> =
            sqlx::query_as("SELECT webhook, event, state, body FROM webhook_deliveries ORDER BY id")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        let routed: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
        assert_eq!(routed, [("all", "task.comment"), ("all", "grant.revoke"), ("revocations", "grant.revoke")]);
        assert!(rows.iter().all(|r| r.2 == "pending"));
        let body: serde_json::Value = serde_json::from_str(&rows[0].3).unwrap();
        assert_eq!(body["event"], "task.comment");
        assert_eq!(body["actor"], "alice");
        assert_eq!(body["task_id"], 7);
        assert_eq!(body["at"], "1970-01-01T00:01:40Z");
        assert_eq!(body["detail"]["comment"], "hi");
        assert!(body["audit_id"].is_i64() && body["id"].as_str().is_some_and(|id| id.len() == 36), "{body}");
        let other: serde_json::Value = serde_json::from_str(&rows[1].3).unwrap();
        assert_eq!(other["actor"], "cone");
        assert_ne!(other["id"], serde_json::from_str::<serde_json::Value>(&rows[2].3).unwrap()["id"]);

        // Many claimants at once: each delivery goes to one of them; the lease keeps it theirs until it ends.
        let claimants: Vec<_> = (0..6)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move { db.claim_deliveries(100, 60, 1).await.unwrap() })
            })
            .collect();
        let mut claimed = vec![];
        for c in claimants {
            claimed.extend(c.await.unwrap().into_iter().map(|d| (d.id, d.attempts)));
        }
        claimed.sort();
        assert_eq!(claimed.len(), 3, "{claimed:?}");
        claimed.dedup_by_key(|c| c.0);
        assert_eq!(claimed.len(), 3, "each delivery claimed once");
        assert!(claimed.iter().all(|c| c.1 == 1));
        assert!(db.claim_deliveries(159, 60, 10).await.unwrap().is_empty(), "leased");
        assert_eq!(db.next_delivery_due().await.unwrap(), Some(160));

        // A claimant that died leaves them to the next after the lease; recorded outcomes stick.
        let again = db.claim_deliveries(160, 60, 10).await.unwrap();
        assert_eq!(again.iter().map(|d| d.attempts).collect::<Vec<_>>(), [2, 2, 2]);
        db.record_delivery(again[0].id, "delivered", Some(204), None, 161, 161).await.unwrap();
        db.record_delivery(again[1].id, "failed", Some(500), Some("the receiver answered 500"), 161, 161)
            .await
            .unwrap();
        db.record_delivery(again[2].id, "pending", None, Some("cannot connect"), 170, 161).await.unwrap();
        db.record_delivery(again[0].id, "pending", None, None, 999, 162).await.unwrap();
        assert!(db.claim_deliveries(169, 60, 10).await.unwrap().is_empty());
        let last = db.claim_deliveries(170, 60, 10).await.unwrap();
        assert_eq!((last.len(), last[0].id, last[0].attempts), (1, again[2].id, 3));
        assert_eq!(db.prune_deliveries(162).await.unwrap(), 2, "the delivered and the failed one");
    }

    async fn audit_entries_page_by_id_time_and_action(db: Db) {
        for (at, action) in [(10, "task.create"), (20, "task.wait_ended"), (30, "tasks.create"), (40, "grant.revoke")] {
            let mut tx = db.begin().await.unwrap();
            audit(&mut tx, at, "worker", action, "task:1", "{}").await.unwrap();
            tx.commit().await.unwrap();
        }
        let ids = async |filter: AuditFilter, limit: i64| -> Vec<i64> {
            db.audit_entries(&filter, limit).await.unwrap().into_iter().map(|r| r.id).collect()
        };
        assert_eq!(ids(AuditFilter::default(), 10).await, [1, 2, 3, 4]);
        assert_eq!(ids(AuditFilter { after_id: 1, ..Default::default() }, 2).await, [2, 3]);
        assert_eq!(ids(AuditFilter { since: Some(20), until: Some(40), ..Default::default() }, 10).await, [2, 3]);
        let action = |a: &str| AuditFilter { action: Some(a.into()), ..Default::default() };
        assert_eq!(ids(action("grant.revoke"), 10).await, [4]);
        assert_eq!(ids(action("task.*"), 10).await, [1, 2]);
        // `_` in a family is not a wildcard.
        assert_eq!(ids(action("t_sk.*"), 10).await, Vec::<i64>::new());
    }

    /// An Identity Center user of a service account's name is not linked to it: the account would gain that
    /// person's groups and access.
    async fn a_sync_never_turns_a_service_account_into_a_person(db: Db) {
        db.set_password("carol", "hash").await.unwrap();
        let carol = db.user_by_name("carol").await.unwrap().unwrap();
        let token = NewApiToken {
            token_hash: "h",
            kind: "service",
            name: "ci",
            owner: TokenOwner::Service("service:bot"),
            created_by: carol.id,
            expires_at: None,
        };
        db.create_api_token(&token, 1).await.unwrap().unwrap();
        let user = |id: &str, name: &str| cone_aws::User {
            id: id.into(),
            user_name: name.into(),
            display_name: name.into(),
            email: None,
        };
        let snap = cone_aws::Snapshot {
            resumed: None,
            instance_arn: "inst".into(),
            identity_store_id: "d-1".into(),
            accounts: vec![],
            permission_sets: vec![],
            provisioned: vec![],
            users: vec![user("u-1", "service:bot"), user("u-2", "carol")],
            groups: vec![],
            memberships: vec![],
            assignments: vec![],
        };
        db.apply_snapshot("aws", &snap, 2).await.unwrap();
        let bot = db.user_by_name("service:bot").await.unwrap().unwrap();
        assert_eq!((bot.kind.as_str(), bot.idc_user_id), ("service", None));
        let carol = db.user_by_name("carol").await.unwrap().unwrap();
        assert_eq!((carol.kind.as_str(), carol.idc_user_id.as_deref()), ("person", Some("u-2")));
        // Nor does a person's name become a service account.
        let clash = NewApiToken { owner: TokenOwner::Service("carol"), token_hash: "h2", ..token };
        assert!(db.create_api_token(&clash, 3).await.unwrap().is_none());
    }

    async fn audit_log_is_chained_and_append_only(db: Db) {
        for i in 0..3 {
            let mut tx = db.begin().await.unwrap();
            audit(&mut tx, i, "user:1", "test", "task:1", "{}").await.unwrap();
            tx.commit().await.unwrap();
        }
        assert_eq!(db.audit_chain_break().await.unwrap(), None);
        assert!(sqlx::query("UPDATE audit_log SET actor = 'x'").execute(&db.pool).await.is_err());
        assert!(sqlx::query("DELETE FROM audit_log").execute(&db.pool).await.is_err());
        // Someone with raw database access who drops the guard still cannot edit unnoticed.
        let drop = match db.backend {
            Backend::Sqlite => "DROP TRIGGER audit_log_no_update",
            Backend::Postgres => "DROP TRIGGER audit_log_no_update ON audit_log",
        };
        sqlx::query(drop).execute(&db.pool).await.unwrap();
        sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE id = 2").execute(&db.pool).await.unwrap();
        assert_eq!(db.audit_chain_break().await.unwrap(), Some(2));
    }

    async fn drift_is_audited_once_repaired_until_it_sticks_and_resolved(db: Db) {
        use crate::drift::{Finding, Kind, Remedy};
        let f = Finding {
            kind: Kind::Unexplained,
            account_id: "111".into(),
            permission_set_arn: "ps-admin".into(),
            principal_id: "u-bob".into(),
            grant_id: None,
            remedy: Some(Remedy::Remove),
        };
        let first = db.record_drift("inst", std::slice::from_ref(&f), 10).await.unwrap();
        assert_eq!((first.opened.len(), first.queued), (1, 1));
        let again = db.record_drift("inst", std::slice::from_ref(&f), 20).await.unwrap();
        assert_eq!((again.opened.len(), again.queued, again.resolved), (0, 0, 0));
        let open = db.open_drift().await.unwrap();
        assert_eq!((open.len(), open[0].first_seen, open[0].last_seen), (1, 10, 20));

        // The removal ran, but someone assigned it again before the next sweep: one more removal, no new finding.
        let job = db.claim_job(20, 300).await.unwrap().unwrap();
        assert_eq!((job.kind.as_str(), job.grant_id, job.finding_id), ("remove_drift", None, Some(open[0].id)));
        db.drift_repaired(&job, Repair::Removed, 21).await.unwrap();
        let back = db.record_drift("inst", std::slice::from_ref(&f), 30).await.unwrap();
        assert_eq!((back.opened.len(), back.queued), (0, 1));

        let gone = db.record_drift("inst", &[], 40).await.unwrap();
        assert_eq!(gone.resolved, 1);
        assert!(db.open_drift().await.unwrap().is_empty());
        let actions: Vec<String> =
            sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id").fetch_all(&db.pool).await.unwrap();
        assert_eq!(actions, ["drift.unexplained", "drift.remove", "drift.resolved"]);
        assert_eq!(db.audit_chain_break().await.unwrap(), None);
    }

    async fn device_codes_are_single_use_and_rate_limited(db: Db) {
        db.set_password("alice", "hash").await.unwrap();
        let alice = db.user_by_name("alice").await.unwrap().unwrap();
        db.create_device_code("h", "ABCD-EFGH", 100, 5).await.unwrap();
        assert_eq!(db.poll_device_code("h", 10).await.unwrap(), DevicePoll::Pending);
        assert_eq!(db.poll_device_code("h", 11).await.unwrap(), DevicePoll::SlowDown);
        assert!(db.decide_device_code("ABCD-EFGH", alice.id, true, 12).await.unwrap());
        assert_eq!(db.poll_device_code("h", 20).await.unwrap(), DevicePoll::Approved(alice.id));
        assert_eq!(db.poll_device_code("h", 30).await.unwrap(), DevicePoll::Unknown);
        db.create_device_code("old", "WXYZ-WXYZ", 100, 5).await.unwrap();
        assert!(!db.decide_device_code("WXYZ-WXYZ", alice.id, true, 100).await.unwrap());
        assert_eq!(db.poll_device_code("old", 100).await.unwrap(), DevicePoll::Expired);
        // A denied code is told so once, and cannot be approved afterwards.
        db.create_device_code("no", "BCDF-BCDF", 100, 5).await.unwrap();
        assert!(db.decide_device_code("BCDF-BCDF", alice.id, false, 10).await.unwrap());
        assert!(!db.decide_device_code("BCDF-BCDF", alice.id, true, 11).await.unwrap());
        assert_eq!(db.poll_device_code("no", 12).await.unwrap(), DevicePoll::Denied);
    }

    /// Many connections at once (as several replicas would use): the audit log stays one chain, and each job is
    /// claimed by exactly one claimant.
    async fn concurrent_writers_keep_one_chain_and_claim_each_job_once(db: Db) {
        use crate::drift::{Finding, Kind, Remedy};
        let appenders: Vec<_> = (0..8)
            .map(|n| {
                let db = db.clone();
                tokio::spawn(async move {
                    for i in 0..10 {
                        let mut tx = db.begin().await.unwrap();
                        audit(&mut tx, i, &format!("user:{n}"), "test", "task:1", "{}").await.unwrap();
                        tx.commit().await.unwrap();
                    }
                })
            })
            .collect();
        for a in appenders {
            a.await.unwrap();
        }
        let entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log").fetch_one(&db.pool).await.unwrap();
        assert_eq!((entries, db.audit_chain_break().await.unwrap()), (80, None));

        let findings: Vec<Finding> = (0..20)
            .map(|n| Finding {
                kind: Kind::Unexplained,
                account_id: "111".into(),
                permission_set_arn: "ps-admin".into(),
                principal_id: format!("u-{n}"),
                grant_id: None,
                remedy: Some(Remedy::Remove),
            })
            .collect();
        assert_eq!(db.record_drift("inst", &findings, 10).await.unwrap().queued, 20);
        let claimants: Vec<_> = (0..8)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut claimed = vec![];
                    while let Some(job) = db.claim_job(10, 300).await.unwrap() {
                        claimed.push(job.id);
                    }
                    claimed
                })
            })
            .collect();
        let mut claimed = vec![];
        for c in claimants {
            claimed.extend(c.await.unwrap());
        }
        claimed.sort();
        let before = claimed.len();
        claimed.dedup();
        assert_eq!((before, claimed.len()), (20, 20), "every job claimed once");
    }
}
