//! The append-only, hash-chained audit log: every state change is recorded here, in the transaction that makes it.

use anyhow::Result;
use sha2::{Digest, Sha256};
use sqlx::FromRow;

use super::outbox::{self, Event};
use super::pool::{Db, Tx};

/// How many audit entries a reader of the whole log holds at once.
pub const AUDIT_BATCH: i64 = 1000;

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

/// Appends to the hash-chained audit log: each entry's hash covers its content and the previous entry's hash, so
/// any edit or deletion breaks the chain. A task or grant event also queues a delivery for each webhook subscribed
/// to it, in the same transaction: sent if and only if the change commits.
pub async fn record(tx: &mut Tx, at: i64, actor: &str, action: &str, subject: &str, detail: &str) -> Result<()> {
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
        outbox::queue(tx, &Event { id, at, actor, action, subject, detail }, &webhooks).await?;
    }
    Ok(())
}

pub fn audit_hash(prev: &str, at: i64, actor: &str, action: &str, subject: &str, detail: &str) -> String {
    let mut h = Sha256::new();
    for part in [prev, &at.to_string(), actor, action, subject, detail] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

impl Db {
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
}
