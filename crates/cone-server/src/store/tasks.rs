//! Requests (tasks): filed where the policy placed them, decided, escalated, withdrawn or timed out, and searched;
//! their history is the audit log's.

use anyhow::Result;
use cone_core::grant::GrantEvent;
use cone_core::job::JobKind;
use cone_core::task::{Event, TaskKind, TaskState};
use sqlx::FromRow;

use super::audit::record;
use super::grants::{extend, release};
use super::lifecycle::{enqueue, move_grant, next_task_state, own_grant, task_state};
use super::pool::{Db, Tx};
use super::rows::EntitlementRow;

#[derive(Debug, Clone, FromRow)]
pub struct TaskRow {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub kind: TaskKind,
    /// 0 or 1.
    pub emergency: i64,
    pub requester_id: i64,
    pub requester: String,
    pub app_id: String,
    pub entitlement_id: String,
    #[sqlx(try_from = "String")]
    pub state: TaskState,
    pub justification: String,
    pub duration_secs: i64,
    pub steps_json: String,
    pub step_index: i64,
    pub waiting_for_group: Option<String>,
    pub decided_by: Option<String>,
    /// Who ended its grant before its time.
    pub ended_by: Option<String>,
    pub reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub grant_expires_at: Option<i64>,
    pub permission_set_name: Option<String>,
    pub account_name: Option<String>,
    /// For a group membership.
    pub group_name: Option<String>,
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

/// Which tasks a search returns.
pub enum TaskFilter<'a> {
    /// The caller's own requests.
    Requested(i64),
    /// Requests waiting for a decision by one of these groups or by named people (the caller filters those),
    /// other than the caller's own.
    Approvable { user_id: i64, groups: &'a [String] },
    /// Everyone's (administrators).
    All,
}

/// Which tasks by state a search returns.
#[derive(Debug, Clone, Copy)]
pub enum States {
    /// Undecided or provisioning.
    Open,
    /// Every other state.
    Closed,
    /// Open, or holding an active grant.
    Live,
    Is(TaskState),
}

/// What else a search narrows to; each given field must match.
#[derive(Debug, Default, Clone, Copy)]
pub struct Narrow<'a> {
    pub states: Option<States>,
    /// The requester's user name.
    pub user: Option<&'a str>,
    /// The account's id, or its name in any case.
    pub account: Option<&'a str>,
    /// The permission set's name, in any case.
    pub permission_set: Option<&'a str>,
    /// `(app id, entitlement id)`.
    pub entitlement: Option<(&'a str, &'a str)>,
}

/// One audit entry about a task, with the actor's username when it is a person.
#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// A task's events (`$1` is its audit subject), each with their number: counted in the same statement, so the
/// number matches what was read.
const EVENT_SELECT: &str = "SELECT a.at, COALESCE(u.username, 'cone') AS actor, a.action, a.detail,
     COUNT(*) OVER () AS total FROM audit_log a LEFT JOIN users u ON a.actor = 'user:' || u.id WHERE a.subject = $1";

#[derive(FromRow)]
struct Counted {
    #[sqlx(flatten)]
    event: EventRow,
    total: i64,
}

pub(super) const TASK_SELECT: &str =
    "SELECT t.id, t.kind, t.emergency, t.requester_id, u.username AS requester, t.app_id, t.entitlement_id, t.state,
        t.justification, t.duration_secs, t.steps_json, t.step_index, t.waiting_for_group,
        d.username AS decided_by, x.username AS ended_by, t.reason, t.created_at, t.updated_at,
        g.expires_at AS grant_expires_at, e.permission_set_name, r.name AS account_name, e.group_name
    FROM tasks t JOIN users u ON u.id = t.requester_id LEFT JOIN users d ON d.id = t.decided_by
    LEFT JOIN users x ON x.id = t.ended_by
    LEFT JOIN grants g ON g.id = COALESCE(t.extends_grant_id, (SELECT id FROM grants WHERE task_id = t.id))
    LEFT JOIN entitlements e ON e.app_id = t.app_id AND e.id = t.entitlement_id
    LEFT JOIN resources r ON r.app_id = e.app_id AND r.id = e.resource_id";

impl Db {
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
        let kind = if t.extends_grant_id.is_some() { TaskKind::Extend } else { TaskKind::Grant };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tasks (kind, extends_grant_id, max_duration_secs, emergency, requester_id, app_id, entitlement_id,
                 state, justification, duration_secs, form_json, policy_name, steps_json, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
        )
        .bind(kind.as_str())
        .bind(t.extends_grant_id)
        .bind(t.max_duration_secs)
        .bind(i64::from(t.emergency))
        .bind(t.requester_id)
        .bind(&t.entitlement.app_id)
        .bind(&t.entitlement.id)
        .bind(TaskState::PendingApproval.as_str())
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
                     permission_set_arn, principal_id, duration_secs, state, group_id, kind)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
            .bind(cone_core::grant::GrantState::Requested.as_str())
            .bind(&t.entitlement.group_id)
            .bind(&t.entitlement.kind)
            .execute(&mut *tx)
            .await?;
        }
        let actor = format!("user:{}", t.requester_id);
        let detail = serde_json::json!({"kind": kind.as_str(), "emergency": t.emergency, "entitlement": t.entitlement.id,
            "duration_secs": t.duration_secs, "policy": t.policy_name, "justification": t.justification});
        record(&mut tx, now, &actor, "task.create", &format!("task:{id}"), &detail.to_string()).await?;
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
        record(&mut tx, now, &format!("user:{decider}"), action, &format!("task:{task_id}"), &detail.to_string())
            .await?;
        place(&mut tx, task_id, placement, Some(decider), Some(comment), now).await?;
        tx.commit().await?;
        Ok(true)
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
        record(&mut tx, now, &format!("user:{user_id}"), "task.escalate", &format!("task:{task_id}"), "{}").await?;
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
        record(&mut tx, now, "worker", "task.wait_ended", &format!("task:{task_id}"), "{}").await?;
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
            close_undecided(&mut tx, *id, Event::TimedOut, None, now).await?;
            record(&mut tx, now, "worker", "task.time_out", &format!("task:{id}"), "{}").await?;
        }
        tx.commit().await?;
        Ok(due)
    }

    /// Adds a comment unless the task has `max` already (false then).
    pub async fn comment(&self, task_id: i64, user_id: i64, comment: &str, max: i64, now: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let subject = format!("task:{task_id}");
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE subject = $1 AND action = 'task.comment'")
                .bind(&subject)
                .fetch_one(&mut *tx)
                .await?;
        if n >= max {
            tx.rollback().await?;
            return Ok(false);
        }
        let detail = serde_json::json!({ "comment": comment }).to_string();
        record(&mut tx, now, &format!("user:{user_id}"), "task.comment", &subject, &detail).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// `limit` events of the task's history from the audit log, oldest first, from `offset`.
    pub async fn task_events(&self, task_id: i64, offset: i64, limit: i64) -> Result<Vec<EventRow>> {
        let rows: Vec<Counted> = sqlx::query_as(&format!("{EVENT_SELECT} ORDER BY a.id LIMIT $2 OFFSET $3"))
            .bind(format!("task:{task_id}"))
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.event).collect())
    }

    /// The task's last `n` events, oldest first, and how many events it has in all.
    pub async fn latest_task_events(&self, task_id: i64, n: i64) -> Result<(Vec<EventRow>, i64)> {
        let rows: Vec<Counted> = sqlx::query_as(&format!("{EVENT_SELECT} ORDER BY a.id DESC LIMIT $2"))
            .bind(format!("task:{task_id}"))
            .bind(n)
            .fetch_all(&self.pool)
            .await?;
        let total = rows.first().map_or(0, |r| r.total);
        Ok((rows.into_iter().rev().map(|r| r.event).collect(), total))
    }

    /// Tasks matching `filter` and `narrow`, newest first, `limit` from `offset`.
    pub async fn search_tasks(
        &self,
        filter: TaskFilter<'_>,
        narrow: Narrow<'_>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<TaskRow>> {
        // Conditions are joined to the statement with numbered placeholders, their values bound in the same order.
        enum Arg<'a> {
            Int(i64),
            Text(&'a str),
        }
        fn next<'a>(arg: Arg<'a>, args: &mut Vec<Arg<'a>>) -> String {
            args.push(arg);
            format!("${}", args.len())
        }
        let groups;
        let mut conditions = Vec::new();
        let mut args = Vec::new();
        match filter {
            TaskFilter::Requested(user_id) => {
                conditions.push(format!("t.requester_id = {}", next(Arg::Int(user_id), &mut args)));
            }
            TaskFilter::Approvable { user_id, groups: names } => {
                // Groups are few per user; JSON keeps the statement the same whatever their number.
                groups = serde_json::to_string(names)?;
                let user = next(Arg::Int(user_id), &mut args);
                let groups_in = self.backend.json_values(&next(Arg::Text(&groups), &mut args));
                conditions.push(format!(
                    "t.state = 'pending_approval' AND t.requester_id != {user}
                     AND (t.waiting_for_group IS NULL OR t.waiting_for_group IN (SELECT value FROM {groups_in}))"
                ));
            }
            TaskFilter::All => {}
        }
        match narrow.states {
            None => {}
            Some(States::Open) => conditions.push("t.state IN ('pending_approval', 'provisioning')".into()),
            Some(States::Closed) => conditions.push("t.state NOT IN ('pending_approval', 'provisioning')".into()),
            Some(States::Live) => conditions.push("t.state IN ('pending_approval', 'provisioning', 'granted')".into()),
            Some(States::Is(state)) => {
                conditions.push(format!("t.state = {}", next(Arg::Text(state.as_str()), &mut args)));
            }
        }
        if let Some(user) = narrow.user {
            conditions.push(format!("u.username = {}", next(Arg::Text(user), &mut args)));
        }
        if let Some(account) = narrow.account {
            let p = next(Arg::Text(account), &mut args);
            // Names as people type them: in any case.
            conditions.push(format!("(e.resource_id = {p} OR LOWER(r.name) = LOWER({p}))"));
        }
        if let Some(permission_set) = narrow.permission_set {
            let p = next(Arg::Text(permission_set), &mut args);
            conditions.push(format!("LOWER(e.permission_set_name) = LOWER({p})"));
        }
        if let Some((app_id, entitlement_id)) = narrow.entitlement {
            let app = next(Arg::Text(app_id), &mut args);
            conditions.push(format!(
                "t.app_id = {app} AND t.entitlement_id = {}",
                next(Arg::Text(entitlement_id), &mut args)
            ));
        }
        let limit_at = next(Arg::Int(limit), &mut args);
        let offset_at = next(Arg::Int(offset), &mut args);
        let conditions =
            if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
        let sql = format!("{TASK_SELECT}{conditions} ORDER BY t.id DESC LIMIT {limit_at} OFFSET {offset_at}");
        let mut query = sqlx::query_as(&sql);
        for arg in args {
            query = match arg {
                Arg::Int(n) => query.bind(n),
                Arg::Text(t) => query.bind(t),
            };
        }
        Ok(query.fetch_all(&self.pool).await?)
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
            release(&mut tx, *grant_id, *task_id, user_id, now).await?;
        }
        tx.commit().await?;
        Ok(pending.into_iter().chain(held.into_iter().map(|(_, t)| t)).collect())
    }
}

/// Moves an undecided task where the policy placed it. Approved, its own grant is provisioned, or, for an
/// extension, the grant it extends moves its end.
async fn place(
    tx: &mut Tx,
    task_id: i64,
    placement: Placement<'_>,
    decider: Option<i64>,
    reason: Option<&str>,
    now: i64,
) -> Result<()> {
    let (event, index, group) = match placement {
        Placement::Waiting { index, group } => (None, index as i64, group),
        Placement::Provision => (Some((Event::Approved, GrantEvent::Approved)), -1, None),
        Placement::Denied => (Some((Event::Denied, GrantEvent::Denied)), -1, None),
    };
    // Still waiting, at whichever step: the state stays.
    let state = match event {
        None => Some(task_state(tx, task_id).await?),
        Some((e, _)) => next_task_state(tx, task_id, e).await?,
    };
    let Some(state) = state else { return Ok(()) };
    sqlx::query(
        "UPDATE tasks SET state = $1, step_index = CASE WHEN $2 >= 0 THEN $2 ELSE step_index END, waiting_for_group = $3,
             decided_by = COALESCE($4, decided_by), reason = COALESCE($5, reason), updated_at = $6 WHERE id = $7",
    )
    .bind(state.as_str())
    .bind(index)
    .bind(group)
    .bind(decider)
    .bind(reason.filter(|r| !r.is_empty()))
    .bind(now)
    .bind(task_id)
    .execute(&mut **tx)
    .await?;
    let Some((_, grant_event)) = event else { return Ok(()) };
    let own = own_grant(tx, task_id).await?;
    if let Some(grant_id) = own {
        move_grant(tx, grant_id, grant_event).await?;
    }
    if state == TaskState::Provisioning {
        match own {
            Some(grant_id) => enqueue(tx, JobKind::Provision, Some(grant_id), None, now).await?,
            None => {
                let (extends, add, max): (Option<i64>, i64, i64) = sqlx::query_as(
                    "SELECT extends_grant_id, duration_secs, max_duration_secs FROM tasks WHERE id = $1",
                )
                .bind(task_id)
                .fetch_one(&mut **tx)
                .await?;
                let grant_id = extends
                    .ok_or_else(|| anyhow::anyhow!("task {task_id} has no grant of its own and extends none"))?;
                extend(tx, task_id, grant_id, add, max, now).await?;
            }
        }
    }
    Ok(())
}

/// Cancels a task its requester still waits on; false when it is no longer undecided or not theirs.
async fn cancel(tx: &mut Tx, task_id: i64, user_id: i64, now: i64) -> Result<bool> {
    let mine: Option<i64> = sqlx::query_scalar("SELECT id FROM tasks WHERE id = $1 AND requester_id = $2")
        .bind(task_id)
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
    // Decided meanwhile is an answer, not a disagreement between writers: checked before moving.
    if mine.is_none() || task_state(tx, task_id).await?.on(Event::Cancelled).is_none() {
        return Ok(false);
    }
    close_undecided(tx, task_id, Event::Cancelled, None, now).await?;
    record(tx, now, &format!("user:{user_id}"), "task.cancel", &format!("task:{task_id}"), "{}").await?;
    Ok(true)
}

/// Closes an undecided task (cancelled or timed out); its grant (if it has one of its own) never starts.
pub(super) async fn close_undecided(
    tx: &mut Tx,
    task_id: i64,
    event: Event,
    reason: Option<&str>,
    now: i64,
) -> Result<()> {
    super::lifecycle::move_task(tx, task_id, event, reason, now).await?;
    if let Some(grant_id) = own_grant(tx, task_id).await? {
        move_grant(tx, grant_id, GrantEvent::Withdrawn).await?;
    }
    Ok(())
}
