//! The services behind the API: each checks, decides with `cone_core`, and records the result in one
//! transaction (with its audit entry and any job), then tells waiting clients and workers.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use cone_api::{
    ApiError, CreateTask, DriftFinding, DriftPage, DropResult, Entitlement, Task, TaskEvent, TaskPage, codes,
};
use cone_core::policy::{self, Outcome, Step};
use cone_core::request;
use cone_core::task::{Event, TaskState};

use crate::db::{EntitlementRow, NewTask, Placement, TaskFilter, TaskRow, UserRow};
use crate::http::{ApiFailure, AppState, now};

fn time(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

/// The entitlement as the caller sees it: its policy's limits and form, and the end of the caller's active grant
/// (from `active`, their `(app id, entitlement id, end)` list).
fn to_api(s: &AppState, row: &EntitlementRow, active: &[(String, String, i64)]) -> Entitlement {
    let policy = s.config.policy_for(&row.account_name, &row.permission_set_name);
    let granted_until = active.iter().find(|(a, e, _)| a == &row.app_id && e == &row.id).map(|(_, _, t)| *t);
    Entitlement {
        app_id: row.app_id.clone(),
        id: row.id.clone(),
        kind: cone_api::KIND_AWS_PERMISSION_SET.into(),
        alias: row.alias.clone(),
        display_name: row.permission_set_name.clone(),
        resource_name: row.account_name.clone(),
        account_id: row.account_id.clone(),
        role_name: row.permission_set_name.clone(),
        max_duration_secs: policy.max_duration,
        form: policy.form.clone(),
        granted_until: granted_until.map(time),
    }
}

/// Every entitlement is visible and requestable by every signed-in user (the one access profile for now).
pub async fn entitlements_for(s: &AppState, u: &UserRow) -> anyhow::Result<Vec<Entitlement>> {
    let active = s.db.active_grants(u.id, now()).await?;
    Ok(s.db.entitlements().await?.iter().map(|r| to_api(s, r, &active)).collect())
}

async fn load_entitlement(s: &AppState, app_id: &str, id: &str) -> Result<EntitlementRow, ApiFailure> {
    s.db.entitlement(app_id, id).await?.ok_or_else(|| {
        ApiFailure::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!("No entitlement \"{id}\" in app \"{app_id}\"; it may have been removed. Run `cone aws setup` to refresh your profiles."),
        )
    })
}

pub async fn entitlement_for(s: &AppState, u: &UserRow, app_id: &str, id: &str) -> Result<Entitlement, ApiFailure> {
    let row = load_entitlement(s, app_id, id).await?;
    let active = s.db.active_grants(u.id, now()).await?;
    Ok(to_api(s, &row, &active))
}

/// Files a request. On an entitlement the requester holds already, the request becomes an extension of that
/// grant (through the same policy) instead of a second, overlapping grant.
pub async fn create_task(s: &AppState, u: &UserRow, req: CreateTask) -> Result<Task, ApiFailure> {
    let row = load_entitlement(s, &req.app_id, &req.entitlement_id).await?;
    let policy = s.config.policy_for(&row.account_name, &row.permission_set_name);
    let extension = match s.db.active_grant(u.id, &row.app_id, &row.id, now()).await? {
        Some((grant_id, end, used)) => {
            let add = req.duration_secs.unwrap_or(s.config.default_duration.min(policy.max_duration));
            request::extension_end(end, now(), add, policy.max_duration, used, policy.max_extensions).map_err(
                |request::Invalid(problems)| {
                    ApiFailure::new(StatusCode::CONFLICT, codes::EXTENSION_REFUSED, problems.join(" "))
                },
            )?;
            Some((grant_id, add))
        }
        None => None,
    };
    if extension.is_none() && policy.form.iter().any(|f| f.required) && req.form_data.is_empty() {
        return Err(ApiFailure::new(
            StatusCode::BAD_REQUEST,
            codes::FORM_REQUIRED,
            format!(
                "This entitlement requires a request form; request it with `cone get --app-id {} --entitlement-id {}`.",
                cone_core::naming::shell_quote(&row.app_id),
                cone_core::naming::shell_quote(&row.id)
            ),
        ));
    }
    let form: Vec<request::FormField> =
        policy.form.iter().map(|f| request::FormField { name: f.name.clone(), required: f.required }).collect();
    let duration = match extension {
        Some((_, add)) => add,
        None => {
            request::validate(req.duration_secs, s.config.default_duration, policy.max_duration, &form, &req.form_data)
                .map_err(|request::Invalid(problems)| {
                    ApiFailure::new(StatusCode::BAD_REQUEST, codes::INVALID_REQUEST, problems.join(" "))
                })?
        }
    };
    let principal = u.idc_user_id.as_deref().ok_or_else(|| {
        ApiFailure::new(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            format!("Your Cone user \"{}\" is not linked to an IAM Identity Center user of the same name; ask an administrator to create or sync it.", u.username),
        )
    })?;
    let steps = if req.emergency { emergency_steps(&policy, &req.justification)? } else { policy.steps.clone() };
    let steps_json = steps_to_json(&steps);
    let outcome = policy::advance(&steps, 0);
    let new = NewTask {
        requester_id: u.id,
        entitlement: &row,
        principal_id: principal,
        extends_grant_id: extension.map(|(id, _)| id),
        max_duration_secs: policy.max_duration,
        emergency: req.emergency,
        justification: req.justification.trim(),
        duration_secs: duration,
        form_json: serde_json::to_string(&req.form_data).map_err(anyhow::Error::from)?,
        policy_name: &policy.name,
        steps_json,
    };
    match s.db.insert_task(&new, placement(&outcome), now()).await? {
        Ok(id) => {
            changed(s, id);
            load_task(s, id).await
        }
        Err(existing) => Err(ApiFailure(
            StatusCode::CONFLICT,
            ApiError {
                code: codes::PENDING_REQUEST_EXISTS.into(),
                message: format!(
                    "A pending request already exists for this entitlement (task {existing}); check it with `cone task get {existing}`."
                ),
                task_id: Some(existing),
            },
        )),
    }
}

/// The policy's emergency steps, for a request that says why.
fn emergency_steps(policy: &crate::config::Resolved, justification: &str) -> Result<Vec<Step>, ApiFailure> {
    let steps = policy.emergency_steps.clone().ok_or_else(|| {
        ApiFailure::new(
            StatusCode::FORBIDDEN,
            codes::NO_EMERGENCY_ACCESS,
            format!("Policy \"{}\" has no emergency access for this entitlement; request it normally.", policy.name),
        )
    })?;
    if justification.trim().is_empty() {
        return Err(ApiFailure::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            "Emergency access needs a justification; say why with --justification.",
        ));
    }
    Ok(steps)
}

fn placement(outcome: &Outcome) -> Placement<'_> {
    match outcome {
        Outcome::Granted => Placement::Provision,
        Outcome::Denied => Placement::Denied,
        Outcome::NeedsApproval { index, group } => Placement::Waiting { index: *index, group },
    }
}

fn changed(s: &AppState, task_id: i64) {
    let _ = s.task_changes.send(task_id);
    s.wake.notify_one();
}

async fn load_task(s: &AppState, id: i64) -> Result<Task, ApiFailure> {
    let row =
        s.db.task(id).await?.ok_or_else(|| {
            ApiFailure::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, format!("There is no task {id}."))
        })?;
    with_events(s, row).await
}

/// The task with its history.
async fn with_events(s: &AppState, t: TaskRow) -> Result<Task, ApiFailure> {
    let events = s.db.task_events(t.id).await?;
    let mut task = task_to_api(t);
    task.events = events
        .into_iter()
        .map(|e| TaskEvent {
            at: time(e.at),
            actor: e.actor,
            action: e.action,
            comment: serde_json::from_str::<serde_json::Value>(&e.detail)
                .ok()
                .and_then(|d| d.get("comment")?.as_str().filter(|c| !c.is_empty()).map(String::from)),
        })
        .collect();
    Ok(task)
}

fn task_to_api(t: TaskRow) -> Task {
    let name = match (&t.permission_set_name, &t.account_name) {
        (Some(ps), Some(account)) => format!("{ps} on {account}"),
        _ => t.entitlement_id.clone(),
    };
    Task {
        id: t.id,
        kind: t.kind,
        emergency: t.emergency != 0,
        requester: t.requester,
        app_id: t.app_id,
        entitlement_id: t.entitlement_id,
        entitlement_name: name,
        state: t.state,
        justification: t.justification,
        duration_secs: t.duration_secs,
        waiting_for_group: t.waiting_for_group,
        decided_by: t.decided_by,
        reason: t.reason,
        grant_expires_at: t.grant_expires_at.map(time),
        created_at: time(t.created_at),
        updated_at: time(t.updated_at),
        events: Vec::new(),
    }
}

/// Requesters see their tasks; members of a group named in the task's policy see it too.
async fn visible_task(s: &AppState, u: &UserRow, id: i64) -> Result<TaskRow, ApiFailure> {
    let not_found =
        || ApiFailure::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, format!("There is no task {id} that you can see."));
    let t = s.db.task(id).await?.ok_or_else(not_found)?;
    if t.requester_id == u.id {
        return Ok(t);
    }
    let groups = s.db.user_groups(u.id).await?;
    let approves = steps_from_json(&t.steps_json)
        .iter()
        .any(|st| matches!(st, Step::Approval { group } if groups.contains(group)));
    if approves { Ok(t) } else { Err(not_found()) }
}

/// Answers when the task's state differs from `known_state`, or after `wait`.
pub async fn watch_task(
    s: &AppState,
    u: &UserRow,
    id: i64,
    known_state: Option<&str>,
    wait: Duration,
) -> Result<Task, ApiFailure> {
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribe before reading so that a change between the read and the wait is not missed.
    let mut changes = s.task_changes.subscribe();
    loop {
        let t = visible_task(s, u, id).await?;
        if known_state.is_none_or(|k| k != t.state) || tokio::time::Instant::now() >= deadline {
            return with_events(s, t).await;
        }
        tokio::select! {
            _ = changes.recv() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

pub async fn decide(s: &AppState, u: &UserRow, id: i64, approve: bool, comment: &str) -> Result<Task, ApiFailure> {
    let t = visible_task(s, u, id).await?;
    if t.state != "pending_approval" {
        return Err(ApiFailure::new(
            StatusCode::CONFLICT,
            codes::INVALID_REQUEST,
            format!("Task {id} is {}; it no longer waits for a decision.", t.state.replace('_', " ")),
        ));
    }
    let groups = s.db.user_groups(u.id).await?;
    policy::check_approver(&t.requester, &u.username, &groups, t.waiting_for_group.as_deref())
        .map_err(|e| ApiFailure::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, e.message()))?;
    let steps = steps_from_json(&t.steps_json);
    let outcome = if approve { policy::advance(&steps, t.step_index as usize + 1) } else { Outcome::Denied };
    if !s.db.decide(id, t.step_index, u.id, comment, placement(&outcome), now()).await? {
        return Err(ApiFailure::new(
            StatusCode::CONFLICT,
            codes::INVALID_REQUEST,
            format!("Task {id} was decided by someone else a moment ago; see `cone task get {id}`."),
        ));
    }
    changed(s, id);
    load_task(s, id).await
}

/// The requester withdraws a request nobody has decided yet.
pub async fn cancel(s: &AppState, u: &UserRow, id: i64) -> Result<Task, ApiFailure> {
    let t = visible_task(s, u, id).await?;
    if t.requester_id != u.id {
        return Err(ApiFailure::new(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            format!("Only {} can cancel task {id}; deny it instead with `cone task deny {id}`.", t.requester),
        ));
    }
    let cancellable = TaskState::parse(&t.state).and_then(|st| st.on(Event::Cancelled)).is_some();
    if !cancellable || !s.db.cancel_task(id, u.id, now()).await? {
        let hint = if matches!(t.state.as_str(), "granted" | "provisioning") {
            "; to give the access back, run `cone drop`"
        } else {
            ""
        };
        return Err(ApiFailure::new(
            StatusCode::CONFLICT,
            codes::WRONG_STATE,
            format!("Task {id} is {}, so it can no longer be cancelled{hint}.", t.state.replace('_', " ")),
        ));
    }
    changed(s, id);
    load_task(s, id).await
}

/// The requester moves an undecided request to its policy's emergency steps.
pub async fn escalate(s: &AppState, u: &UserRow, id: i64) -> Result<Task, ApiFailure> {
    let t = visible_task(s, u, id).await?;
    if t.requester_id != u.id {
        return Err(ApiFailure::new(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            format!("Only {} can escalate task {id}.", t.requester),
        ));
    }
    let row = load_entitlement(s, &t.app_id, &t.entitlement_id).await?;
    let policy = s.config.policy_for(&row.account_name, &row.permission_set_name);
    let steps = emergency_steps(&policy, &t.justification)?;
    let outcome = policy::advance(&steps, 0);
    if !s.db.escalate(id, u.id, &steps_to_json(&steps), placement(&outcome), now()).await? {
        return Err(ApiFailure::new(
            StatusCode::CONFLICT,
            codes::WRONG_STATE,
            format!(
                "Task {id} is no longer waiting for a decision, so it cannot be escalated; see `cone task get {id}`."
            ),
        ));
    }
    changed(s, id);
    load_task(s, id).await
}

/// Gives back the caller's access to an entitlement and withdraws their undecided requests for it.
pub async fn drop_access(s: &AppState, u: &UserRow, app_id: &str, id: &str) -> Result<DropResult, ApiFailure> {
    let row = load_entitlement(s, app_id, id).await?;
    let ids = s.db.drop_access(u.id, &row.app_id, &row.id, now()).await?;
    let mut tasks = Vec::with_capacity(ids.len());
    for id in ids {
        changed(s, id);
        tasks.push(load_task(s, id).await?);
    }
    Ok(DropResult { tasks })
}

pub async fn comment(s: &AppState, u: &UserRow, id: i64, comment: &str) -> Result<Task, ApiFailure> {
    visible_task(s, u, id).await?;
    let comment = comment.trim();
    if comment.is_empty() {
        return Err(ApiFailure::new(StatusCode::BAD_REQUEST, codes::INVALID_REQUEST, "The comment is empty."));
    }
    s.db.comment(id, u.id, comment, now()).await?;
    load_task(s, id).await
}

/// The caller's requests (`mine`), or the requests waiting for the caller's decision (`approvable`), newest
/// first; `open` narrows to undecided and provisioning tasks, `closed` to the rest.
pub async fn search_tasks(
    s: &AppState,
    u: &UserRow,
    scope: &str,
    state: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<TaskPage, ApiFailure> {
    let bad = |m: &str| ApiFailure::new(StatusCode::BAD_REQUEST, codes::INVALID_REQUEST, m.to_string());
    let open = match state {
        None | Some("") | Some("all") => None,
        Some("open") => Some(true),
        Some("closed") => Some(false),
        Some(_) => return Err(bad("state must be open, closed or all.")),
    };
    let groups = s.db.user_groups(u.id).await?;
    let filter = match scope {
        "mine" => TaskFilter::Requested(u.id),
        "approvable" => TaskFilter::Approvable { user_id: u.id, groups: &groups },
        _ => return Err(bad("scope must be mine or approvable.")),
    };
    // One more than asked tells whether another page exists.
    let mut rows = s.db.search_tasks(filter, open, offset, limit + 1).await?;
    let next_page_token = (rows.len() as i64 > limit).then(|| (offset + limit).to_string());
    rows.truncate(limit as usize);
    Ok(TaskPage { tasks: rows.into_iter().map(task_to_api).collect(), next_page_token })
}

fn steps_to_json(steps: &[Step]) -> String {
    let values: Vec<serde_json::Value> = steps
        .iter()
        .map(|s| match s {
            Step::Accept => "accept".into(),
            Step::Reject => "reject".into(),
            Step::Approval { group } => serde_json::json!({ "approval": group }),
        })
        .collect();
    serde_json::Value::from(values).to_string()
}

/// The policy as it was when the task was filed; later policy edits do not change a running task.
fn steps_from_json(json: &str) -> Vec<Step> {
    let values: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    values
        .iter()
        .map(|v| match (v.as_str(), v.get("approval").and_then(|g| g.as_str())) {
            (Some("accept"), _) => Step::Accept,
            (_, Some(group)) => Step::Approval { group: group.into() },
            _ => Step::Reject,
        })
        .collect()
}

/// The open drift findings, oldest first.
pub async fn open_drift(s: &AppState) -> anyhow::Result<DriftPage> {
    let findings =
        s.db.open_drift()
            .await?
            .into_iter()
            .map(|f| DriftFinding {
                id: f.id,
                kind: f.kind,
                account_id: f.account_id,
                account_name: f.account_name,
                permission_set_arn: f.permission_set_arn,
                permission_set_name: f.permission_set_name,
                principal_id: f.principal_id,
                username: f.username,
                task_id: f.task_id,
                remedy: f.remedy,
                first_seen: time(f.first_seen),
                last_seen: time(f.last_seen),
            })
            .collect();
    Ok(DriftPage { findings })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_and_unknown_steps_reject() {
        let steps = vec![Step::Accept, Step::Approval { group: "approvers".into() }, Step::Reject];
        assert_eq!(steps_from_json(&steps_to_json(&steps)), steps);
        assert_eq!(steps_from_json(r#"["frobnicate"]"#), vec![Step::Reject]);
    }
}
