//! Webhook deliveries, queued with the event that causes them (an outbox) and claimed by one sender at a time.

use anyhow::Result;
use sqlx::FromRow;

use super::pool::{Db, Tx};

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

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Delivered,
    /// Given up.
    Failed,
    /// To be tried again.
    Pending,
}

impl DeliveryState {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Pending => "pending",
        }
    }
}

/// An audit entry just recorded, as a webhook payload describes it.
pub(super) struct Event<'a> {
    pub id: i64,
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: &'a str,
    pub detail: &'a str,
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

/// Queues the delivery of the event `e` to each of `webhooks`. The body is fixed here, so every attempt sends the
/// same bytes; each delivery has its own id, which receivers use to drop repeats.
pub(super) async fn queue(tx: &mut Tx, e: &Event<'_>, webhooks: &[&str]) -> Result<()> {
    let task_id = e.subject.strip_prefix("task:").and_then(|n| n.parse::<i64>().ok());
    let actor = match e.actor.strip_prefix("user:").and_then(|n| n.parse::<i64>().ok()) {
        Some(user_id) => sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?
            .unwrap_or_else(|| e.actor.to_string()),
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
    let detail = serde_json::from_str(e.detail).unwrap_or_else(|_| serde_json::Value::String(e.detail.to_string()));
    for webhook in webhooks {
        let delivery_id = uuid::Uuid::new_v4().to_string();
        let body = serde_json::json!({
            "id": delivery_id, "event": e.action, "audit_id": e.id, "at": rfc3339(e.at), "subject": e.subject,
            "task_id": task_id, "actor": actor, "task": task, "detail": detail,
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
        .bind(e.action)
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

impl Db {
    /// Takes up to `limit` due deliveries and leases them for `lease_secs`, as [`Db::claim_job`] does jobs: on
    /// PostgreSQL, replicas skip the rows another is claiming, so a delivery is attempted by one replica at a time.
    pub async fn claim_deliveries(&self, now: i64, lease_secs: i64, limit: i64) -> Result<Vec<DeliveryRow>> {
        let (_turn, mut tx) = self.begin_claim(false).await?;
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

    /// Records an attempt: delivered, failed (given up), or pending again from `run_after`.
    pub async fn record_delivery(
        &self,
        id: i64,
        state: DeliveryState,
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
        .bind(state.as_str())
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

    /// Forgets delivered and failed deliveries last touched before `before` (the audit log keeps the events).
    pub async fn prune_deliveries(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM webhook_deliveries WHERE state != 'pending' AND updated_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
