//! The connector in service mode: its credentials (hashed; one in force at a time), the hosts that connected, and
//! the calls handed to them. A call is queued by the worker that needs it, claimed by one host for a lease that the
//! host renews while it runs, answered, and read (and deleted) by the worker; a lease that runs out puts the call
//! back for another host.

use anyhow::Result;
use sqlx::FromRow;

use super::audit::record;
use super::pool::Db;

/// A connector process as it last reported itself.
#[derive(Debug, Clone, FromRow)]
pub struct HostRow {
    pub host_id: String,
    pub client_id: String,
    pub version: String,
    pub first_seen_at: i64,
    pub last_contact_at: i64,
}

/// A call this process queued: its id, and its answer when a host's answer reaches this process. Dropped, the call
/// is no longer waited on here.
pub struct Queued {
    pub id: i64,
    pub answer: tokio::sync::oneshot::Receiver<String>,
    calls: std::sync::Arc<super::pool::CallSignals>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.calls.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.id);
    }
}

/// A call a host claimed: its id and the call as JSON.
#[derive(Debug, Clone, FromRow)]
pub struct ClaimedCall {
    pub id: i64,
    pub call: String,
}

/// Calls older than this whose caller never came back for them (a crashed server) are removed.
const FORGOTTEN_AFTER: i64 = 24 * 3600;
/// How often a host's contact is written down, at most.
const CONTACT_EVERY: i64 = 10;

impl Db {
    /// Issues new connector credentials, revoking those before; audited.
    pub async fn rotate_connector_credentials(
        &self,
        client_id: &str,
        secret_hash: &str,
        by: i64,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let revoked: Vec<String> = sqlx::query_scalar(
            "UPDATE connector_credentials SET revoked_at = $1 WHERE revoked_at IS NULL RETURNING client_id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO connector_credentials (client_id, secret_hash, created_by, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(client_id)
        .bind(secret_hash)
        .bind(by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let detail = serde_json::json!({ "client_id": client_id, "revoked": revoked }).to_string();
        record(&mut tx, now, &format!("user:{by}"), "connector.credentials_rotate", "aws", &detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes the connector credentials in force, if any; audited. Returns the client id revoked.
    pub async fn revoke_connector_credentials(&self, by: i64, now: i64) -> Result<Option<String>> {
        let mut tx = self.begin().await?;
        let revoked: Option<String> = sqlx::query_scalar(
            "UPDATE connector_credentials SET revoked_at = $1 WHERE revoked_at IS NULL RETURNING client_id",
        )
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(client_id) = &revoked {
            let detail = serde_json::json!({ "client_id": client_id }).to_string();
            record(&mut tx, now, &format!("user:{by}"), "connector.credentials_revoke", "aws", &detail).await?;
        }
        tx.commit().await?;
        Ok(revoked)
    }

    /// The hash of the secret of `client_id`, if those credentials are in force.
    pub async fn connector_secret_hash(&self, client_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT secret_hash FROM connector_credentials WHERE client_id = $1 AND revoked_at IS NULL",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A connector was refused: audited, with what it presented (never its secret).
    pub async fn connector_refused(&self, client_id: &str, host_id: &str, why: &str, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let detail = serde_json::json!({ "client_id": client_id, "host_id": host_id, "reason": why }).to_string();
        record(&mut tx, now, "connector:aws", "connector.auth_failed", "aws", &detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that `host_id` was heard from, at most every [`CONTACT_EVERY`] seconds per process.
    pub async fn connector_contact(&self, host_id: &str, client_id: &str, version: &str, now: i64) -> Result<()> {
        {
            let mut seen = self.calls.contacts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.get(host_id).is_some_and(|at| now - at < CONTACT_EVERY) {
                return Ok(());
            }
            // Hosts come and go (each process has its own id): forget those not heard from lately.
            seen.retain(|_, at| now - *at < FORGOTTEN_AFTER);
            seen.insert(host_id.to_string(), now);
        }
        sqlx::query(
            "INSERT INTO connector_hosts (host_id, client_id, version, first_seen_at, last_contact_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (host_id) DO UPDATE SET client_id = excluded.client_id, version = excluded.version,
                 last_contact_at = excluded.last_contact_at",
        )
        .bind(host_id)
        .bind(client_id)
        .bind(version)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The connector hosts heard from since `since`, the latest first.
    pub async fn connector_hosts(&self, since: i64) -> Result<Vec<HostRow>> {
        Ok(sqlx::query_as(
            "SELECT host_id, client_id, version, first_seen_at, last_contact_at FROM connector_hosts
             WHERE last_contact_at >= $1 ORDER BY last_contact_at DESC, host_id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Removes the calls whose caller never came back for them.
    pub async fn forget_calls(&self, now: i64) -> Result<()> {
        sqlx::query("DELETE FROM connector_calls WHERE created_at < $1")
            .bind(now - FORGOTTEN_AFTER)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Queues a call (and, for a sync, the spool run its parts go to).
    pub async fn queue_call(&self, call: &str, spool: Option<&str>, now: i64) -> Result<Queued> {
        let id = sqlx::query_scalar(
            "INSERT INTO connector_calls (call, spool, state, created_at) VALUES ($1, $2, 'queued', $3) RETURNING id",
        )
        .bind(call)
        .bind(spool)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let (tx, answer) = tokio::sync::oneshot::channel();
        self.calls.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, tx);
        self.calls.queued.notify_waiters();
        Ok(Queued { id, answer, calls: self.calls.clone() })
    }

    /// Claims the oldest call that is queued or whose lease ran out, for `host_id`, until `now + lease`: one
    /// statement, its pick skipping rows another replica is claiming at the same moment. A read comes first, so
    /// that a long poll finding nothing takes no write lock (on SQLite, the waiting worker's writes would queue
    /// behind it). Only while `client_id`'s credentials are in force: a long poll that began before they were
    /// revoked gets nothing.
    pub async fn claim_call(
        &self,
        host_id: &str,
        client_id: &str,
        now: i64,
        lease: i64,
    ) -> Result<Option<ClaimedCall>> {
        let claimable: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM connector_calls
             WHERE state = 'queued' OR (state = 'claimed' AND lease_until <= $1) LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if claimable.is_none() {
            return Ok(None);
        }
        Ok(sqlx::query_as(&format!(
            "UPDATE connector_calls SET state = 'claimed', host_id = $1, lease_until = $2
             WHERE id = (SELECT id FROM connector_calls
                         WHERE state = 'queued' OR (state = 'claimed' AND lease_until <= $3) ORDER BY id LIMIT 1{})
               AND EXISTS (SELECT 1 FROM connector_credentials WHERE client_id = $4 AND revoked_at IS NULL)
             RETURNING id, call",
            self.backend.skip_locked("connector_calls")
        ))
        .bind(host_id)
        .bind(now + lease)
        .bind(now)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// When the first lease on a claimed call runs out, if any call is claimed.
    pub async fn next_lease_end(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(lease_until) FROM connector_calls WHERE state = 'claimed'")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Renews the lease of a call `host_id` holds, and gives its spool run (`Some(None)` for a call without one);
    /// `None` when the host no longer holds it (its lease ran out, or it was answered or withdrawn).
    pub async fn renew_call(&self, id: i64, host_id: &str, now: i64, lease: i64) -> Result<Option<Option<String>>> {
        let spool: Option<Option<String>> = sqlx::query_scalar(
            "UPDATE connector_calls SET lease_until = $1
             WHERE id = $2 AND state = 'claimed' AND host_id = $3 AND lease_until > $4 RETURNING spool",
        )
        .bind(now + lease)
        .bind(id)
        .bind(host_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(spool)
    }

    /// The spool run of a call `host_id` holds now (`Some(None)` for a call without one), read without writing;
    /// `None` when it does not hold it.
    pub async fn held_call(&self, id: i64, host_id: &str, now: i64) -> Result<Option<Option<String>>> {
        Ok(sqlx::query_scalar(
            "SELECT spool FROM connector_calls WHERE id = $1 AND state = 'claimed' AND host_id = $2 AND lease_until > $3",
        )
        .bind(id)
        .bind(host_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records the answer of a call `host_id` holds; `false` when it no longer holds it. When the call's caller waits
    /// in this process, the answer is handed to it and the call deleted in one statement.
    pub async fn answer_call(&self, id: i64, host_id: &str, answer: &str, now: i64) -> Result<bool> {
        let waiter = self.calls.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
        if let Some(waiter) = waiter {
            let held = sqlx::query("DELETE FROM connector_calls WHERE id = $1 AND state = 'claimed' AND host_id = $2")
                .bind(id)
                .bind(host_id)
                .execute(&self.pool)
                .await;
            if held.as_ref().is_ok_and(|done| done.rows_affected() == 1) {
                let _ = waiter.send(answer.to_string());
                return Ok(true);
            }
            // Not this host's answer to give (or the store failed): the caller waits on.
            if !waiter.is_closed() {
                self.calls.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, waiter);
            }
            held?;
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE connector_calls SET state = 'done', answer = $1, done_at = $2, lease_until = NULL
             WHERE id = $3 AND state = 'claimed' AND host_id = $4",
        )
        .bind(answer)
        .bind(now)
        .bind(id)
        .bind(host_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        self.calls.answered.notify_waiters();
        Ok(true)
    }

    /// The answer of a call, once there is one; the call is then deleted. `Ok(None)` while it waits or runs (read
    /// without a write lock).
    pub async fn take_answer(&self, id: i64) -> Result<Option<String>> {
        let done: Option<i64> = sqlx::query_scalar("SELECT id FROM connector_calls WHERE id = $1 AND state = 'done'")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        if done.is_none() {
            return Ok(None);
        }
        let answer: Option<Option<String>> =
            sqlx::query_scalar("DELETE FROM connector_calls WHERE id = $1 AND state = 'done' RETURNING answer")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(answer.flatten())
    }

    /// Withdraws a call no host holds (never claimed, or its lease ran out); `false` when a host holds it (its
    /// answer is then awaited) or answered it.
    pub async fn withdraw_call(&self, id: i64, now: i64) -> Result<bool> {
        let gone = sqlx::query(
            "DELETE FROM connector_calls
             WHERE id = $1 AND (state = 'queued' OR (state = 'claimed' AND lease_until <= $2))",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(gone.rows_affected() == 1)
    }

    /// Puts a part a host's sync sent into the spool run of the call.
    pub async fn spool_part(&self, run: &str, seq: i64, part: &cone_aws::Part) -> Result<()> {
        cone_aws::SqlSpool::join(self.pool.clone(), "sync_spool", run)
            .put_numbered(seq, part)
            .await
            .map_err(|e| anyhow::anyhow!("cannot store a part of the connector's sync: {e}"))
    }

    /// Notified when this process queued a call, or heard that another replica did.
    pub fn calls_queued(&self) -> &tokio::sync::Notify {
        &self.calls.queued
    }

    /// Notified when this process recorded an answer, or heard that another replica did.
    pub fn calls_answered(&self) -> &tokio::sync::Notify {
        &self.calls.answered
    }
}
