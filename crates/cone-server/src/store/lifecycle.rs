//! The writes that move tasks, grants, jobs, created accounts and review items along their lifecycles. Each starts
//! from the state it reads, asks `cone_core` where the event leads, and writes that: the SQL records a decision, it
//! never makes one. An event a state does not allow changes nothing and is logged, since it means two writers
//! disagreed about a row. A review item's removal is audited here too, since a grant's end may finish it.

use std::fmt::Debug;

use anyhow::Result;
use cone_core::account::{AccountEvent, AccountState};
use cone_core::grant::{GrantEvent, GrantState};
use cone_core::job::{JobKind, JobState};
use cone_core::review::{ItemEvent, ItemState};
use cone_core::task::{Event, TaskState};

use super::audit::record;
use super::pool::{Tx, sql_list};

/// Where `event` leads from `from`, as `on` decides; `None`, logged, when it does not apply.
fn decide<S: Copy + Debug, E: Copy + Debug>(
    what: &str,
    id: i64,
    from: S,
    event: E,
    on: fn(S, E) -> Option<S>,
) -> Option<S> {
    let to = on(from, event);
    if to.is_none() {
        tracing::warn!("{what} {id} is {from:?}, where {event:?} does not apply; it stays as it is");
    }
    to
}

pub(super) async fn task_state(tx: &mut Tx, task_id: i64) -> Result<TaskState> {
    let state: String =
        sqlx::query_scalar("SELECT state FROM tasks WHERE id = $1").bind(task_id).fetch_one(&mut **tx).await?;
    TaskState::try_from(state).map_err(anyhow::Error::msg)
}

/// Where `event` takes the task, without writing it (for writes that change more than the state).
pub(super) async fn next_task_state(tx: &mut Tx, task_id: i64, event: Event) -> Result<Option<TaskState>> {
    let from = task_state(tx, task_id).await?;
    Ok(decide("task", task_id, from, event, TaskState::on))
}

/// Moves the task by `event`, with `reason` when given (why it failed).
pub(super) async fn move_task(
    tx: &mut Tx,
    task_id: i64,
    event: Event,
    reason: Option<&str>,
    now: i64,
) -> Result<Option<TaskState>> {
    let Some(to) = next_task_state(tx, task_id, event).await? else { return Ok(None) };
    sqlx::query("UPDATE tasks SET state = $1, reason = COALESCE($2, reason), updated_at = $3 WHERE id = $4")
        .bind(to.as_str())
        .bind(reason)
        .bind(now)
        .bind(task_id)
        .execute(&mut **tx)
        .await?;
    Ok(Some(to))
}

/// Grant states in which the grant's assignment exists or may exist, as an SQL list.
pub(super) fn holding_states() -> String {
    sql_list(GrantState::HOLDING.map(GrantState::as_str))
}

pub(super) async fn grant_state(tx: &mut Tx, grant_id: i64) -> Result<GrantState> {
    let state: String =
        sqlx::query_scalar("SELECT state FROM grants WHERE id = $1").bind(grant_id).fetch_one(&mut **tx).await?;
    GrantState::try_from(state).map_err(anyhow::Error::msg)
}

/// Where `event` takes a grant in state `from`.
pub(super) fn next_grant_state(grant_id: i64, from: GrantState, event: GrantEvent) -> Option<GrantState> {
    decide("grant", grant_id, from, event, GrantState::on)
}

/// Moves the grant by `event` when only its state changes.
pub(super) async fn move_grant(tx: &mut Tx, grant_id: i64, event: GrantEvent) -> Result<Option<GrantState>> {
    let from = grant_state(tx, grant_id).await?;
    let Some(to) = next_grant_state(grant_id, from, event) else { return Ok(None) };
    set_grant_state(tx, grant_id, to).await?;
    Ok(Some(to))
}

/// Writes the state a transition decided, when only the state changes.
pub(super) async fn set_grant_state(tx: &mut Tx, grant_id: i64, to: GrantState) -> Result<()> {
    sqlx::query("UPDATE grants SET state = $1 WHERE id = $2")
        .bind(to.as_str())
        .bind(grant_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The grant a task of its own has (an extension has none).
pub(super) async fn own_grant(tx: &mut Tx, task_id: i64) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT id FROM grants WHERE task_id = $1").bind(task_id).fetch_optional(&mut **tx).await?)
}

/// Queues a job, due now.
pub(super) async fn enqueue(
    tx: &mut Tx,
    kind: JobKind,
    grant_id: Option<i64>,
    finding_id: Option<i64>,
    now: i64,
) -> Result<()> {
    enqueue_at(tx, kind, grant_id, finding_id, now, now).await
}

/// Queues a job, due at `run_after`.
pub(super) async fn enqueue_at(
    tx: &mut Tx,
    kind: JobKind,
    grant_id: Option<i64>,
    finding_id: Option<i64>,
    run_after: i64,
    now: i64,
) -> Result<()> {
    insert_job(tx, kind, (grant_id, finding_id, None), run_after, now).await.map(drop)
}

/// Queues the removal of what review item `item_id` revoked, due now; returns the job's id.
pub(super) async fn enqueue_review(tx: &mut Tx, item_id: i64, now: i64) -> Result<i64> {
    insert_job(tx, JobKind::ReviewRevoke, (None, None, Some(item_id)), now, now).await
}

/// Inserts a pending job about a grant, a drift finding or a review item.
async fn insert_job(
    tx: &mut Tx,
    kind: JobKind,
    (grant_id, finding_id, item_id): (Option<i64>, Option<i64>, Option<i64>),
    run_after: i64,
    now: i64,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO jobs (kind, grant_id, finding_id, item_id, state, run_after, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(kind.as_str())
    .bind(grant_id)
    .bind(finding_id)
    .bind(item_id)
    .bind(JobState::Pending.as_str())
    .bind(run_after)
    .bind(now)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?)
}

/// Moves review item `item_id` by `event`; `None`, logged, when its state does not allow it.
pub(super) async fn move_item(tx: &mut Tx, item_id: i64, event: ItemEvent) -> Result<Option<ItemState>> {
    let from: String =
        sqlx::query_scalar("SELECT state FROM review_items WHERE id = $1").bind(item_id).fetch_one(&mut **tx).await?;
    let from = ItemState::try_from(from).map_err(anyhow::Error::msg)?;
    let Some(to) = decide("review item", item_id, from, event, ItemState::on) else { return Ok(None) };
    sqlx::query("UPDATE review_items SET state = $1 WHERE id = $2")
        .bind(to.as_str())
        .bind(item_id)
        .execute(&mut **tx)
        .await?;
    Ok(Some(to))
}

/// Moves the account Cone created for user `user_id` in `account_id` by `event`.
pub(super) async fn move_account(
    tx: &mut Tx,
    user_id: i64,
    account_id: &str,
    event: AccountEvent,
    now: i64,
) -> Result<Option<AccountState>> {
    let from: String = sqlx::query_scalar("SELECT state FROM created_accounts WHERE user_id = $1 AND account_id = $2")
        .bind(user_id)
        .bind(account_id)
        .fetch_one(&mut **tx)
        .await?;
    let from = AccountState::try_from(from).map_err(anyhow::Error::msg)?;
    let Some(to) = decide("created account of user", user_id, from, event, AccountState::on) else { return Ok(None) };
    let deleted_at = (to == AccountState::Deleted).then_some(now);
    sqlx::query("UPDATE created_accounts SET state = $1, deleted_at = $2 WHERE user_id = $3 AND account_id = $4")
        .bind(to.as_str())
        .bind(deleted_at)
        .bind(user_id)
        .bind(account_id)
        .execute(&mut **tx)
        .await?;
    Ok(Some(to))
}

pub(super) async fn finish_job(tx: &mut Tx, job_id: i64, state: JobState, error: Option<&str>, now: i64) -> Result<()> {
    sqlx::query("UPDATE jobs SET state = $1, locked_until = NULL, last_error = $2, updated_at = $3 WHERE id = $4")
        .bind(state.as_str())
        .bind(error)
        .bind(now)
        .bind(job_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// An item's audit subject.
pub(super) fn item(id: i64) -> String {
    format!("review_item:{id}")
}

/// An item's audit detail: its campaign, whose access and what it gives, with `extra`'s fields, so that the log (and
/// a webhook) says what was decided without a second lookup.
pub(super) async fn item_detail(tx: &mut Tx, item_id: i64, extra: serde_json::Value) -> Result<String> {
    let (campaign_id, kind, user, access): (i64, String, String, String) = sqlx::query_as(
        "SELECT i.campaign_id, i.kind, COALESCE(u.username, ''), i.reaches FROM review_items i
         LEFT JOIN users u ON u.id = i.user_id WHERE i.id = $1",
    )
    .bind(item_id)
    .fetch_one(&mut **tx)
    .await?;
    let mut detail = serde_json::json!({ "campaign_id": campaign_id, "kind": kind, "user": user, "access": access });
    if let (Some(all), serde_json::Value::Object(more)) = (detail.as_object_mut(), extra) {
        all.extend(more);
    }
    Ok(detail.to_string())
}

/// The item's revoked access is gone from AWS: audited, with the entry kept on the item.
pub(super) async fn removed(tx: &mut Tx, item_id: i64, now: i64) -> Result<()> {
    if move_item(tx, item_id, ItemEvent::Removed).await?.is_none() {
        return Ok(());
    }
    let request_id: Option<String> = sqlx::query_scalar("SELECT request_id FROM review_items WHERE id = $1")
        .bind(item_id)
        .fetch_one(&mut **tx)
        .await?;
    let detail = item_detail(tx, item_id, serde_json::json!({ "request_id": request_id })).await?;
    let audit_id = record(tx, now, "connector:aws", "review.removed", &item(item_id), &detail).await?;
    sqlx::query("UPDATE review_items SET removed_audit_id = $1 WHERE id = $2")
        .bind(audit_id)
        .bind(item_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A grant's revocation is done: the review items that revoked it are too.
pub(super) async fn ended_with_grant(tx: &mut Tx, grant_id: i64, now: i64) -> Result<()> {
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM review_items WHERE grant_id = $1 AND state = 'revoking'")
        .bind(grant_id)
        .fetch_all(&mut **tx)
        .await?;
    for id in ids {
        removed(tx, id, now).await?;
    }
    Ok(())
}
