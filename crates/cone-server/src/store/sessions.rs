//! Sign-ins: device codes of `cone login`, its 30-day tokens, web console sessions, and personal and service API
//! tokens. Every secret is stored as its hash.

use std::collections::HashMap;

use anyhow::Result;
use sqlx::FromRow;

use super::audit::record;
use super::pool::{Db, Tx};
use super::rows::{USER_COLUMNS, USER_SERVICE, UserRow};

/// What signing someone out everywhere ended.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SignedOut {
    /// `cone login` sessions.
    pub sessions: u64,
    pub console_sessions: u64,
    pub api_tokens: u64,
}

/// Ends every session of each of `users`: `cone login` tokens, console sessions and device codes go, API tokens are
/// revoked (kept, so that using one is answered with why). Four statements however many users: offboarding a
/// thousand leavers must end their sessions within a second on PostgreSQL, where each statement is a round trip.
/// Returns what ended per user; a user who had nothing is absent.
pub(super) async fn sign_out_everywhere(tx: &mut Tx, users: &[i64], now: i64) -> Result<HashMap<i64, SignedOut>> {
    let ids = serde_json::to_string(users)?;
    let of_users = tx.backend.json_ids("$1");
    let mut ended: HashMap<i64, SignedOut> = HashMap::new();
    let delete = async |tx: &mut Tx, table: &str| -> Result<Vec<i64>> {
        let sql = format!("DELETE FROM {table} WHERE user_id IN ({of_users}) RETURNING user_id");
        Ok(sqlx::query_scalar(&sql).bind(&ids).fetch_all(&mut **tx).await?)
    };
    for user in delete(tx, "access_tokens").await? {
        ended.entry(user).or_default().sessions += 1;
    }
    for user in delete(tx, "web_sessions").await? {
        ended.entry(user).or_default().console_sessions += 1;
    }
    // A device code is a sign-in not yet finished: it goes, uncounted.
    delete(tx, "device_codes").await?;
    let revoke = format!(
        "UPDATE api_tokens SET revoked_at = $2 WHERE revoked_at IS NULL AND user_id IN ({of_users}) RETURNING user_id"
    );
    for user in sqlx::query_scalar::<_, i64>(&revoke).bind(&ids).bind(now).fetch_all(&mut **tx).await? {
        ended.entry(user).or_default().api_tokens += 1;
    }
    Ok(ended)
}

/// Whose API tokens a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokensOf {
    /// The caller's.
    Caller,
    /// The caller's and every service account's (administrators).
    CallerAndServices,
    /// Everyone's (administrators).
    Everyone,
}

/// A session token's user and end.
#[derive(FromRow)]
struct TokenUser {
    #[sqlx(flatten)]
    user: UserRow,
    expires_at: i64,
}

#[derive(FromRow)]
struct DeviceRow {
    expires_at: i64,
    interval_secs: i64,
    last_poll_at: Option<i64>,
    user_id: Option<i64>,
    denied: i64,
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

impl Db {
    /// Stores a new device code unless `max` unexpired ones wait already (false then); expired ones go first, so
    /// codes nobody polled do not pile up.
    pub async fn create_device_code(
        &self,
        code_hash: &str,
        user_code: &str,
        expires_at: i64,
        interval: i64,
        max: i64,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM device_codes WHERE expires_at <= $1").bind(now).execute(&mut *tx).await?;
        let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM device_codes").fetch_one(&mut *tx).await?;
        if waiting >= max {
            tx.commit().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO device_codes (device_code_hash, user_code, expires_at, interval_secs) VALUES ($1, $2, $3, $4)",
        )
        .bind(code_hash)
        .bind(user_code)
        .bind(expires_at)
        .bind(interval)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
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
        // A code that does not exist is answered without waiting for the writers' turn: guessing costs a read.
        let known: Option<i64> = sqlx::query_scalar("SELECT 1 FROM device_codes WHERE device_code_hash = $1")
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await?;
        if known.is_none() {
            return Ok(DevicePoll::Unknown);
        }
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
        record(&mut tx, now, &user, "login", &user, &detail.to_string()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a sign-in (`cone login`'s token, or a console session) with its `logout` entry.
    async fn sign_out(
        &self,
        table: &'static str,
        token_hash: &str,
        user_id: i64,
        detail: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(&format!("DELETE FROM {table} WHERE token_hash = $1")).bind(token_hash).execute(&mut *tx).await?;
        let user = format!("user:{user_id}");
        record(&mut tx, now, &user, "logout", &user, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn revoke_access_token(&self, token_hash: &str, user_id: i64, now: i64) -> Result<()> {
        self.sign_out("access_tokens", token_hash, user_id, "{}", now).await
    }

    pub async fn user_for_token(&self, token_hash: &str, now: i64) -> Result<Option<UserRow>> {
        // Built inside the block, so that a cache hit builds no query.
        let read = async {
            let row: Option<TokenUser> = sqlx::query_as(&format!(
                "SELECT {USER_COLUMNS}, t.expires_at FROM access_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.token_hash = $1 AND u.left_at IS NULL"
            ))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.map(|r| (r.user, r.expires_at)))
        };
        let found = self.cached(&self.reads.tokens, token_hash.to_string(), read).await?;
        Ok(found.filter(|(_, expires_at)| *expires_at > now).map(|(user, _)| user))
    }

    /// Stores a web console session by its secret's hash, with its audit entry; sessions that ended go on the way.
    /// `oidc_issuer` names the identity provider that signed the person in, if any.
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
        Ok(sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM web_sessions w JOIN users u ON u.id = w.user_id
             WHERE w.token_hash = $1 AND w.expires_at > $2 AND u.left_at IS NULL"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Ends a web console session (signing out), with its audit entry.
    pub async fn delete_web_session(&self, token_hash: &str, user_id: i64, now: i64) -> Result<()> {
        self.sign_out("web_sessions", token_hash, user_id, r#"{"via":"web"}"#, now).await
    }

    /// Stores a new API token (and, for a service token, its service account when new) with its audit entry.
    /// `None` when the service account's username belongs to a person.
    pub async fn create_api_token(&self, t: &NewApiToken<'_>, now: i64) -> Result<Option<ApiTokenRow>> {
        let mut tx = self.begin().await?;
        let creator = format!("user:{}", t.created_by);
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
                        record(&mut tx, now, &creator, "service_account.create", &format!("user:{id}"), &detail)
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
        record(&mut tx, now, &creator, "token.create", &format!("token:{id}"), &detail.to_string()).await?;
        let row = sqlx::query_as(&format!("{API_TOKEN_SELECT} WHERE t.id = $1")).bind(id).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(Some(row))
    }

    /// The unrevoked API tokens acting as `user_id`, or those `of` says too.
    pub async fn api_tokens(&self, user_id: i64, of: TokensOf) -> Result<Vec<ApiTokenRow>> {
        let which = match of {
            TokensOf::Caller => 0,
            TokensOf::CallerAndServices => 1,
            TokensOf::Everyone => 2,
        };
        Ok(sqlx::query_as(&format!(
            "{API_TOKEN_SELECT} WHERE t.revoked_at IS NULL
             AND (t.user_id = $1 OR ($2 = 1 AND t.kind = 'service') OR $2 = 2) ORDER BY t.id"
        ))
        .bind(user_id)
        .bind(which)
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
            record(&mut tx, now, &format!("user:{by}"), "token.revoke", &format!("token:{id}"), &detail.to_string())
                .await?;
            row.revoked_at = Some(now);
        }
        tx.commit().await?;
        Ok(Some(row))
    }

    /// An administrator signs `user_id` out everywhere; audited with what it ended.
    pub async fn sign_out_user(&self, user_id: i64, by: i64, now: i64) -> Result<SignedOut> {
        let mut tx = self.begin().await?;
        let ended = sign_out_everywhere(&mut tx, &[user_id], now).await?.remove(&user_id).unwrap_or_default();
        let detail = serde_json::to_string(&ended)?;
        record(&mut tx, now, &format!("user:{by}"), "identity.sign_out", &format!("user:{user_id}"), &detail).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// The API token with this hash, whatever its state, with the user it acts as.
    pub async fn api_token_use(&self, token_hash: &str) -> Result<Option<TokenUse>> {
        Ok(sqlx::query_as(&format!(
            "SELECT t.id AS token_id, t.name AS token_name, t.expires_at, t.revoked_at, t.last_used_at, {USER_COLUMNS}
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1"
        ))
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
}
