//! The append-only, hash-chained audit log: every state change is recorded here, in the transaction that makes it.

use std::collections::HashMap;

use anyhow::Result;
use sha2::{Digest, Sha256};
use sqlx::FromRow;

use super::outbox::{self, Event};
use super::pool::{Db, Tx, like_literal};

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

/// Which audit entries to read: those past `after_id` in the order asked for, from `since` (inclusive) to `until`
/// (exclusive), with the action `action` or, for `family.*`, any action of the family, by `actor`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Where the previous page ended: entries after it in the order asked for (0: from the start).
    pub after_id: i64,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub action: Option<String>,
    /// Only what this actor (`user:ID`, `worker`, …) did.
    pub actor: Option<String>,
    /// Newest first rather than in the log's order.
    pub newest_first: bool,
}

/// Appends to the hash-chained audit log: each entry's hash covers its content and the previous entry's hash, so
/// any edit or deletion breaks the chain. A task or grant event also queues a delivery for each webhook subscribed
/// to it, in the same transaction: sent if and only if the change commits. Returns the entry's id.
pub async fn record(tx: &mut Tx, at: i64, actor: &str, action: &str, subject: &str, detail: &str) -> Result<i64> {
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
    if !cone_core::notify::told(action, true).is_empty() || !cone_core::notify::told(action, false).is_empty() {
        tx.notified = true;
    }
    let outbox = tx.outbox.clone();
    let webhooks = outbox.subscribers(action);
    if !webhooks.is_empty() {
        outbox::queue(tx, &Event { id, at, actor, action, subject, detail }, &webhooks).await?;
    }
    Ok(id)
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
        // The optional conditions take the placeholders after the four every read has, in this order.
        let mut clauses = String::new();
        let mut values = Vec::new();
        if let Some(a) = filter.action.as_deref() {
            let n = 5 + values.len();
            match a.strip_suffix(".*") {
                // `\` escapes LIKE's wildcards, which `_` in action names would otherwise be.
                Some(family) => {
                    clauses.push_str(&format!(" AND action LIKE ${n} ESCAPE '\\'"));
                    values.push(format!("{}.%", like_literal(family)));
                }
                None => {
                    clauses.push_str(&format!(" AND action = ${n}"));
                    values.push(a.to_string());
                }
            }
        }
        if let Some(actor) = filter.actor.as_deref() {
            clauses.push_str(&format!(" AND actor = ${}", 5 + values.len()));
            values.push(actor.to_string());
        }
        let (past, order, start) = match filter.newest_first {
            true => ("<", "DESC", if filter.after_id > 0 { filter.after_id } else { i64::MAX }),
            false => (">", "ASC", filter.after_id),
        };
        let sql = format!(
            "SELECT id, at, actor, action, subject, detail, prev_hash, hash FROM audit_log
             WHERE id {past} $1 AND at >= $2 AND at < $3{clauses} ORDER BY id {order} LIMIT $4"
        );
        let mut query = sqlx::query_as(&sql)
            .bind(start)
            .bind(filter.since.unwrap_or(i64::MIN))
            .bind(filter.until.unwrap_or(i64::MAX))
            .bind(limit);
        for value in values {
            query = query.bind(value);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// The user names of the users `ids`, for showing who did what.
    pub async fn usernames(&self, ids: &[i64]) -> Result<HashMap<i64, String>> {
        let ids = serde_json::to_string(ids)?;
        let sql = format!("SELECT id, username FROM users WHERE id IN ({})", self.backend.json_ids("$1"));
        let rows: Vec<(i64, String)> = sqlx::query_as(&sql).bind(ids).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().collect())
    }
}
