//! The services behind the API: each checks, decides with `cone_core`, and records the result in one
//! transaction (with its audit entry and any job), then tells waiting clients and workers.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use cone_api::{
    ApiError, CreateTask, DriftFinding, DriftPage, DropResult, Entitlement, Task, TaskDecision, TaskEvent, TaskPage,
    codes,
};
use cone_core::catalog::{Target, Viewer};
use cone_core::policy::{Approvers, DecisionError, Instance, Outcome, Pending, Step};
use cone_core::request;
use cone_core::task::{Event, TaskState};

use crate::config::{Access, Branches, Policy};
use crate::db::{EntitlementRow, NewTask, Placement, TaskFilter, TaskRow, UserRow};
use crate::http::{ApiFailure, AppState, now, one_page};
use crate::rules::{Facts, Request, Requester};

pub(crate) fn time(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

/// What a user holds: their active grants `(app id, entitlement id, end)` and what they hold through groups
/// `(app id, entitlement id, group name)`. Both are cached reads, so building a listing costs no query per row.
struct Holdings {
    grants: Vec<(String, String, i64)>,
    groups: Vec<(String, String, String)>,
}

impl Holdings {
    async fn of(s: &AppState, u: &UserRow) -> anyhow::Result<Holdings> {
        Ok(Holdings { grants: s.db.active_grants(u.id, now()).await?, groups: s.db.held_through_groups(u.id).await? })
    }

    fn granted_until(&self, app_id: &str, id: &str) -> Option<i64> {
        self.grants.iter().find(|(a, e, _)| a == app_id && e == id).map(|(_, _, t)| *t)
    }

    fn groups(&self, app_id: &str, id: &str) -> Vec<String> {
        self.groups.iter().filter(|(a, e, _)| a == app_id && e == id).map(|(_, _, g)| g.clone()).collect()
    }

    fn holds(&self, app_id: &str, id: &str) -> bool {
        self.granted_until(app_id, id).is_some() || self.groups.iter().any(|(a, e, _)| a == app_id && e == id)
    }
}

/// The entitlement as the caller sees it: its policy's limits and form, the end of the caller's active grant and
/// the groups through which they hold it.
fn to_api(access: &Access, row: &EntitlementRow, held: &Holdings) -> Entitlement {
    let policy = access.policy_for(&row.account_name, &row.permission_set_name);
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
        granted_until: held.granted_until(&row.app_id, &row.id).map(time),
        held_through_groups: held.groups(&row.app_id, &row.id),
        emergency_access: policy.emergency_steps.is_some(),
    }
}

/// The user's catalog: the entitlements their access profiles offer (all of them when none are configured), and
/// those they hold (by grant or through a group), so that access outliving a catalog change can still be checked
/// and given back.
pub async fn entitlements_for(s: &AppState, u: &UserRow) -> anyhow::Result<Vec<Entitlement>> {
    let held = Holdings::of(s, u).await?;
    let access = s.access();
    let groups = catalog_groups(s, &access, u).await?;
    let rows = s.db.entitlements().await?;
    let shown = |r: &&EntitlementRow| held.holds(&r.app_id, &r.id) || offers(&access, u, &groups, r);
    Ok(rows.iter().filter(shown).map(|r| to_api(&access, r, &held)).collect())
}

/// The user's groups when access profiles need them; without profiles the catalog is everything, for everyone.
async fn catalog_groups(s: &AppState, access: &Access, u: &UserRow) -> anyhow::Result<Vec<String>> {
    if access.catalog.profiles.is_empty() { Ok(Vec::new()) } else { s.db.user_groups(u.id).await }
}

fn offers(access: &Access, u: &UserRow, groups: &[String], row: &EntitlementRow) -> bool {
    let viewer = Viewer { name: &u.username, groups };
    access.catalog.offers(&viewer, &Target { account: &row.account_name, permission_set: &row.permission_set_name })
}

/// The entitlement if the user's catalog offers it. One outside it is reported as not found, in the same words
/// whether it exists or not, so that a catalog does not reveal the entitlements kept from someone.
async fn offered_entitlement(s: &AppState, u: &UserRow, app_id: &str, id: &str) -> Result<EntitlementRow, ApiFailure> {
    let access = s.access();
    let groups = catalog_groups(s, &access, u).await?;
    s.db.entitlement(app_id, id).await?.filter(|r| offers(&access, u, &groups, r)).ok_or_else(|| {
        ApiFailure::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!("No entitlement \"{id}\" in app \"{app_id}\" that you can request; it may have been removed or be outside your access profiles. Run `cone search` to see what you can request."),
        )
    })
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
    let held = Holdings::of(s, u).await?;
    let row = match held.holds(app_id, id) {
        true => load_entitlement(s, app_id, id).await?,
        false => offered_entitlement(s, u, app_id, id).await?,
    };
    Ok(to_api(&s.access(), &row, &held))
}

/// A page of the people who hold an entitlement, from `offset`.
pub async fn holders(
    s: &AppState,
    app_id: &str,
    id: &str,
    offset: i64,
    size: i64,
) -> Result<cone_api::HolderPage, ApiFailure> {
    let row = load_entitlement(s, app_id, id).await?;
    let (rows, next_page_token) =
        one_page(s.db.holders(&row.app_id, &row.id, now(), offset, size + 1).await?, offset, size);
    let holders = rows
        .into_iter()
        .map(|h| cone_api::Holder {
            username: h.username,
            display_name: h.display_name,
            source: h.source,
            task_id: h.task_id,
            expires_at: h.expires_at.map(time),
            group: h.group_name,
        })
        .collect();
    Ok(cone_api::HolderPage { holders, next_page_token })
}

/// Refuses a request for an entitlement the requester holds through a group: the assignment exists in AWS already,
/// and a grant would add a redundant one.
fn refuse_if_held_through_group(groups: &[String]) -> Result<(), ApiFailure> {
    if groups.is_empty() {
        return Ok(());
    }
    Err(ApiFailure::new(
        StatusCode::CONFLICT,
        codes::HELD_THROUGH_GROUP,
        format!(
            "You hold this entitlement through the Identity Center {}, so no request is needed; use it directly. \
             That group's access is managed in IAM Identity Center, not through Cone.",
            group_names(groups)
        ),
    ))
}

/// Groups for people: `group "Admins"`, `groups "Admins", "Ops"`.
pub(crate) fn group_names(groups: &[String]) -> String {
    let names = groups.iter().map(|g| format!("\"{g}\"")).collect::<Vec<_>>().join(", ");
    format!("{} {names}", if groups.len() == 1 { "group" } else { "groups" })
}

/// Files a request. On an entitlement the requester holds already, the request becomes an extension of that
/// grant (through the same policy) instead of a second, overlapping grant.
pub async fn create_task(s: &AppState, u: &UserRow, req: CreateTask) -> Result<Task, ApiFailure> {
    if u.kind == crate::db::USER_SERVICE {
        return Err(ApiFailure::new(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            format!(
                "{} is a service account, which holds no AWS access of its own; request access as a person.",
                u.username
            ),
        ));
    }
    let through_groups = Holdings::of(s, u).await?.groups(&req.app_id, &req.entitlement_id);
    refuse_if_held_through_group(&through_groups)?;
    let row = offered_entitlement(s, u, &req.app_id, &req.entitlement_id).await?;
    let access = s.access();
    let policy = access.policy_for(&row.account_name, &row.permission_set_name);
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
    let (duration, form) = match extension {
        // The grant's form stands for its extensions.
        Some((_, add)) => (add, cone_core::form::FormData::new()),
        None => {
            let duration = request::validate(req.duration_secs, s.config.default_duration, policy.max_duration)
                .map_err(|request::Invalid(problems)| {
                    ApiFailure::new(StatusCode::BAD_REQUEST, codes::INVALID_REQUEST, problems.join(" "))
                })?;
            (duration, cone_core::form::validate(&policy.form, &req.form_data).map_err(invalid_form)?)
        }
    };
    let principal = u.idc_user_id.as_deref().ok_or_else(|| {
        ApiFailure::new(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            format!("Your Cone user \"{}\" is not linked to an IAM Identity Center user of the same name; ask an administrator to create or sync it.", u.username),
        )
    })?;
    let kind = if extension.is_some() { cone_api::TASK_KIND_EXTEND } else { cone_api::TASK_KIND_GRANT };
    let form_json = serde_json::to_string(&form).map_err(anyhow::Error::from)?;
    let request = Request { form, ..Request::new(kind, duration, req.emergency, &req.justification) };
    let branches = if req.emergency { emergency_branches(policy, &req.justification)? } else { &policy.steps };
    let instance = start(s, u, &row, policy, branches, request).await?;
    let outcome = instance.outcome(now());
    let new = NewTask {
        requester_id: u.id,
        entitlement: &row,
        principal_id: principal,
        extends_grant_id: extension.map(|(id, _)| id),
        max_duration_secs: policy.max_duration,
        emergency: req.emergency,
        justification: req.justification.trim(),
        duration_secs: duration,
        form_json,
        policy_name: &policy.name,
        steps_json: serde_json::to_string(&instance).map_err(anyhow::Error::from)?,
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
                fields: vec![],
            },
        )),
    }
}

fn invalid_form(fields: Vec<cone_api::FieldError>) -> ApiFailure {
    let ApiFailure(status, error) = ApiFailure::new(
        StatusCode::BAD_REQUEST,
        codes::INVALID_FORM,
        "The request form has invalid fields; correct them and request again.",
    );
    ApiFailure(status, cone_api::ApiError { fields, ..error })
}

/// Chooses the policy branch for the request and starts its steps now.
async fn start(
    s: &AppState,
    u: &UserRow,
    row: &EntitlementRow,
    policy: &Policy,
    branches: &Branches,
    request: Request,
) -> Result<Instance, ApiFailure> {
    let identity = s.config.identity(&u.username);
    let facts = Facts {
        requester: Requester {
            name: u.username.clone(),
            email: u.email.clone(),
            groups: s.db.user_groups(u.id).await?,
            manager: identity.and_then(|i| i.manager.clone()),
            attributes: identity.map(|i| i.attributes.clone()).unwrap_or_default(),
        },
        entitlement: crate::rules::Entitlement {
            app: row.app_id.clone(),
            account_id: row.account_id.clone(),
            account_name: row.account_name.clone(),
            permission_set: row.permission_set_name.clone(),
        },
        request,
        now: crate::rules::timestamp(time(now())),
    };
    let steps = branches.choose(&facts, &policy.name, &s.config.aws.owners);
    Ok(Instance::new(&u.username, now(), steps))
}

/// The policy's emergency branches, for a request that says why.
fn emergency_branches<'a>(policy: &'a Policy, justification: &str) -> Result<&'a Branches, ApiFailure> {
    let branches = policy.emergency_steps.as_ref().ok_or_else(|| {
        ApiFailure::new(
            StatusCode::FORBIDDEN,
            codes::NO_EMERGENCY_ACCESS,
            format!("Policy \"{}\" has no emergency access for this entitlement; request it normally.", policy.name),
        )
    })?;
    if justification.trim().is_empty() {
        let message =
            "Emergency access needs a justification; say why you need it (on the command line, with --justification).";
        let ApiFailure(status, error) = ApiFailure::new(StatusCode::BAD_REQUEST, codes::INVALID_REQUEST, message);
        let field = cone_api::FieldError {
            field: "justification".into(),
            message: "Emergency access needs a justification.".into(),
        };
        return Err(ApiFailure(status, cone_api::ApiError { fields: vec![field], ..error }));
    }
    Ok(branches)
}

fn placement(outcome: &Outcome) -> Placement<'_> {
    match outcome {
        Outcome::Granted => Placement::Provision,
        Outcome::Denied { .. } => Placement::Denied,
        Outcome::Waiting { index, on } => {
            let group = match on {
                Pending::Approval { from: Approvers::Group(g), .. } => Some(g.as_str()),
                _ => None,
            };
            Placement::Waiting { index: *index, group }
        }
    }
}

/// The task's policy instance. Tasks filed before instances were stored hold a bare list of steps (`accept`,
/// `{"approval": GROUP}`, `reject`); anything unreadable becomes a rejection, so a damaged row never grants.
fn instance(t: &TaskRow) -> Instance {
    if let Ok(instance) = serde_json::from_str(&t.steps_json) {
        return instance;
    }
    let values: Vec<serde_json::Value> = serde_json::from_str(&t.steps_json).unwrap_or_default();
    let steps = values
        .iter()
        .map(|v| match (v.as_str(), v.get("approval").and_then(|g| g.as_str())) {
            (Some("accept"), _) => Step::Accept,
            (_, Some(group)) => Step::Approval { from: Approvers::Group(group.into()), count: 1 },
            _ => Step::Reject,
        })
        .collect::<Vec<_>>();
    let mut instance =
        Instance::new(&t.requester, t.created_at, if steps.is_empty() { vec![Step::Reject] } else { steps });
    // The old steps before the one it waits at were done; mark them so the instance waits where the row does.
    for step in instance.steps.iter_mut().take(t.step_index.max(0) as usize) {
        *step = Step::Accept;
    }
    instance
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

/// Whom a pending task waits for, or why the policy denied it, for people.
fn policy_status(t: &TaskRow, i: &Instance) -> (Option<String>, Option<String>) {
    match i.outcome(now()) {
        Outcome::Waiting { on: Pending::Until(until), .. } if t.state == "pending_approval" => {
            (Some(format!("the policy's waiting period, until {}", time(until).format("%Y-%m-%d %H:%M:%S UTC"))), None)
        }
        Outcome::Waiting { on, .. } if t.state == "pending_approval" => (on.describe(&i.requester), None),
        Outcome::Denied { reason } if t.state == "denied" && t.decided_by.is_none() => (None, Some(reason)),
        _ => (None, None),
    }
}

fn task_to_api(t: TaskRow) -> Task {
    let instance = instance(&t);
    let (waiting_for, policy_reason) = policy_status(&t, &instance);
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
        waiting_for,
        decisions: instance
            .decisions
            .into_iter()
            .map(|d| TaskDecision { step: d.step + 1, by: d.by, approve: d.approve, at: time(d.at) })
            .collect(),
        decided_by: t.decided_by,
        reason: t.reason.or(policy_reason),
        grant_expires_at: t.grant_expires_at.map(time),
        created_at: time(t.created_at),
        updated_at: time(t.updated_at),
        events: Vec::new(),
    }
}

/// Requesters see their tasks; the people a step of the task's policy asks see it too.
async fn visible_task(s: &AppState, u: &UserRow, id: i64) -> Result<TaskRow, ApiFailure> {
    let not_found =
        || ApiFailure::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, format!("There is no task {id} that you can see."));
    let t = s.db.task(id).await?.ok_or_else(not_found)?;
    if t.requester_id == u.id {
        return Ok(t);
    }
    // Approvers see what they are asked to decide; administrators oversee every task.
    let groups = s.db.user_groups(u.id).await?;
    if asks(&instance(&t), &u.username, &groups, None) || s.config.admins.include(&u.username, &groups) {
        Ok(t)
    } else {
        Err(not_found())
    }
}

/// Whether a step of the instance (only step `at`, when given) asks `who`, a member of `groups`, to decide.
fn asks(i: &Instance, who: &str, groups: &[String], at: Option<usize>) -> bool {
    i.steps.iter().enumerate().filter(|(n, _)| at.is_none_or(|a| a == *n)).any(|(_, step)| match step {
        Step::Approval { from: Approvers::Group(g), .. } => groups.contains(g),
        Step::Approval { from: Approvers::Users(names) | Approvers::Owners(names), .. } => {
            names.iter().any(|n| n == who)
        }
        Step::Approval { from: Approvers::Manager(m), .. } => m.as_deref() == Some(who),
        _ => false,
    })
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

/// Asks the sync loop for a sync now and returns how the connector stands.
pub fn ask_for_sync(s: &AppState, u: &UserRow) -> cone_api::ConnectorStatus {
    tracing::info!(user = %u.username, "sync with AWS asked for");
    s.sync_now.notify_one();
    s.sync_status.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

/// Whether the task waits, at its current step, for a decision `u` may make (as `search_tasks` "approvable" finds).
pub async fn asks_caller(s: &AppState, u: &UserRow, id: i64) -> Result<bool, ApiFailure> {
    let t = visible_task(s, u, id).await?;
    let groups = s.db.user_groups(u.id).await?;
    Ok(t.state == "pending_approval" && asks(&instance(&t), &u.username, &groups, usize::try_from(t.step_index).ok()))
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
    let mut instance = instance(&t);
    instance.decide(&u.username, &groups, approve, now()).map_err(|e| {
        let status = match e {
            DecisionError::NotWaiting | DecisionError::WaitingUntil(_) => StatusCode::CONFLICT,
            _ => StatusCode::FORBIDDEN,
        };
        ApiFailure::new(status, codes::FORBIDDEN, e.message())
    })?;
    let outcome = instance.outcome(now());
    let steps_json = serde_json::to_string(&instance).map_err(anyhow::Error::from)?;
    if !s.db.decide(id, &t.steps_json, &steps_json, t.step_index, u.id, comment, placement(&outcome), now()).await? {
        return Err(ApiFailure::new(
            StatusCode::CONFLICT,
            codes::INVALID_REQUEST,
            format!(
                "Task {id} changed a moment ago (someone else decided it); see `cone task get {id}` and try again."
            ),
        ));
    }
    changed(s, id);
    load_task(s, id).await
}

/// Moves on the tasks whose policy wait ended (the worker calls this every few seconds); returns their ids.
pub async fn end_waits(s: &AppState) -> anyhow::Result<Vec<i64>> {
    let mut moved = Vec::new();
    for t in s.db.pending_tasks_without_group().await? {
        let outcome = instance(&t).outcome(now());
        let same = matches!(outcome, Outcome::Waiting { index, .. } if index as i64 == t.step_index);
        if !same && s.db.resume(t.id, &t.steps_json, placement(&outcome), now()).await? {
            moved.push(t.id);
        }
    }
    Ok(moved)
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
    let access = s.access();
    let policy = access.policy_for(&row.account_name, &row.permission_set_name);
    let branches = emergency_branches(policy, &t.justification)?;
    let request = Request::new(&t.kind, t.duration_secs, true, &t.justification);
    let instance = start(s, u, &row, policy, branches, request).await?;
    let outcome = instance.outcome(now());
    let steps_json = serde_json::to_string(&instance).map_err(anyhow::Error::from)?;
    if !s.db.escalate(id, u.id, &steps_json, placement(&outcome), now()).await? {
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
    let (mut rows, next_page_token) =
        one_page(s.db.search_tasks(filter, open, offset, limit + 1).await?, offset, limit);
    if scope == "approvable" {
        // The store finds tasks waiting for one of the caller's groups or for named people; only the instance
        // knows whether the caller is one of them, so a page can come back shorter than `limit`.
        rows.retain(|t| asks(&instance(t), &u.username, &groups, usize::try_from(t.step_index).ok()));
    }
    Ok(TaskPage { tasks: rows.into_iter().map(task_to_api).collect(), next_page_token })
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
    fn a_request_for_access_held_through_a_group_names_the_group() {
        assert!(refuse_if_held_through_group(&[]).is_ok());
        let ApiFailure(status, e) = refuse_if_held_through_group(&["Admins".into()]).unwrap_err();
        assert_eq!((status, e.code.as_str()), (StatusCode::CONFLICT, codes::HELD_THROUGH_GROUP));
        assert!(e.message.contains("group \"Admins\", so no request is needed"), "{}", e.message);
        assert!(e.message.contains("managed in IAM Identity Center"), "{}", e.message);
        assert_eq!(group_names(&["A".into(), "B".into()]), "groups \"A\", \"B\"");
    }

    fn row(steps_json: &str, step_index: i64) -> TaskRow {
        TaskRow {
            id: 1,
            kind: "grant".into(),
            emergency: 0,
            requester_id: 1,
            requester: "alice".into(),
            app_id: "aws".into(),
            entitlement_id: "e".into(),
            state: "pending_approval".into(),
            justification: String::new(),
            duration_secs: 3600,
            steps_json: steps_json.into(),
            step_index,
            waiting_for_group: None,
            decided_by: None,
            reason: None,
            created_at: 0,
            updated_at: 0,
            grant_expires_at: None,
            permission_set_name: None,
            account_name: None,
        }
    }

    #[test]
    fn reads_instances_and_the_old_step_lists() {
        let stored = Instance::new("alice", 5, vec![Step::Wait { secs: 60 }]);
        assert_eq!(instance(&row(&serde_json::to_string(&stored).unwrap(), 0)), stored);
        let old = instance(&row(r#"["accept", {"approval": "approvers"}, {"approval": "security"}]"#, 2));
        assert!(matches!(old.outcome(0), Outcome::Waiting { index: 2, .. }));
        assert_eq!(old.steps[2], Step::Approval { from: Approvers::Group("security".into()), count: 1 });
        assert_eq!(instance(&row(r#"["frobnicate"]"#, 0)).steps, vec![Step::Reject]);
        assert_eq!(instance(&row("not json", 0)).steps, vec![Step::Reject]);
    }
}
