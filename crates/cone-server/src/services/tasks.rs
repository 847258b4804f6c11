//! Requests: filing one (or an extension) where its policy places it, deciding, withdrawing, escalating,
//! commenting, giving access back, watching one change, and searching; and moving on the requests whose policy
//! wait ended (for the workers).

use std::time::Duration;

use cone_api::{CreateTask, DropResult, TASK_EVENTS_SHOWN, Task, TaskDecision, TaskEvent, TaskEventPage, TaskPage};
use cone_core::policy::{Approvers, DecisionError, Instance, Outcome, Pending, Step};
use cone_core::request;
use cone_core::task::{Event, TaskKind, TaskState};

use super::entitlements::{Holdings, load, offered, refuse_if_held_through_group};
use super::{Page, time};
use crate::config::{Branches, Policy};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{EntitlementRow, EventRow, NewTask, Placement, TaskFilter, TaskRow, USER_SERVICE, UserRow};
pub use crate::store::{Narrow, States};
use cone_core::condition::{Facts, Request, Requester};

/// Whose tasks a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The caller's requests.
    Mine,
    /// Requests waiting for the caller's decision.
    Approvable,
    /// Everyone's requests (administrators).
    All,
}

/// Files a request. On an entitlement the requester holds already, the request becomes an extension of that
/// grant (through the same policy) instead of a second, overlapping grant.
pub async fn create(s: &AppState, u: &UserRow, req: CreateTask) -> Result<Task> {
    if u.kind == USER_SERVICE {
        return Err(Error::Forbidden(format!(
            "{} is a service account, which holds no AWS access of its own; request access as a person.",
            u.username
        )));
    }
    typed("justification", &req.justification)?;
    let through_groups = Holdings::of(s, u).await?.groups(&req.app_id, &req.entitlement_id);
    refuse_if_held_through_group(&through_groups)?;
    let row = offered(s, u, &req.app_id, &req.entitlement_id).await?;
    let access = s.access();
    let policy = access.policy_for(&row.target());
    let now = s.now();
    let extension = match s.db.active_grant(u.id, &row.app_id, &row.id, now).await? {
        Some((grant_id, end, used)) => {
            let add = req.duration_secs.unwrap_or(s.config.default_duration.min(policy.max_duration));
            request::extension_end(end, now, add, policy.max_duration, used, policy.max_extensions)
                .map_err(|request::Invalid(problems)| Error::ExtensionRefused(problems.join(" ")))?;
            Some((grant_id, add))
        }
        None => None,
    };
    if extension.is_none() && policy.form.iter().any(|f| f.required) && req.form_data.is_empty() {
        return Err(Error::FormRequired(format!(
            "This entitlement requires a request form; request it with `cone get --app-id {} --entitlement-id {}`.",
            cone_core::naming::shell_quote(&row.app_id),
            cone_core::naming::shell_quote(&row.id)
        )));
    }
    let (duration, form) = match extension {
        // The grant's form stands for its extensions.
        Some((_, add)) => (add, cone_core::form::FormData::new()),
        None => {
            let duration = request::validate(req.duration_secs, s.config.default_duration, policy.max_duration)
                .map_err(|request::Invalid(problems)| Error::invalid(problems.join(" ")))?;
            (duration, cone_core::form::validate(&policy.form, &req.form_data).map_err(Error::InvalidForm)?)
        }
    };
    // A person Identity Center does not know gets a user there when the grant is first made, if Cone may create one.
    let principal = match u.idc_user_id.as_deref() {
        Some(id) => id,
        None if s.config.aws.account_provisioning.identity_center_users => "",
        None => {
            return Err(Error::Forbidden(format!(
                "Your Cone user \"{}\" is not linked to an IAM Identity Center user of the same name; ask an \
                 administrator to create or sync it, or to turn on aws.account_provisioning.identity_center_users.",
                u.username
            )));
        }
    };
    let kind = if extension.is_some() { TaskKind::Extend } else { TaskKind::Grant };
    let form_json = serde_json::to_string(&form).map_err(anyhow::Error::from)?;
    let request = Request { form, ..Request::new(kind.as_str(), duration, req.emergency, &req.justification) };
    let branches = if req.emergency { emergency_branches(policy, &req.justification)? } else { &policy.steps };
    let instance = start(s, u, &row, policy, branches, request).await?;
    let outcome = instance.outcome(now);
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
    match s.db.insert_task(&new, placement(&outcome), now).await? {
        Ok(id) => {
            s.task_changed(id);
            load_task(s, id).await
        }
        Err(existing) => Err(Error::PendingRequestExists { task_id: existing }),
    }
}

/// Chooses the policy branch for the request and starts its steps now.
async fn start(
    s: &AppState,
    u: &UserRow,
    row: &EntitlementRow,
    policy: &Policy,
    branches: &Branches,
    request: Request,
) -> Result<Instance> {
    let identity = s.config.identity(&u.username);
    let now = s.now();
    let facts = Facts {
        requester: Requester {
            name: u.username.clone(),
            email: u.email.clone(),
            groups: s.db.user_groups(u.id).await?,
            manager: identity.and_then(|i| i.manager.clone()),
            attributes: identity.map(|i| i.attributes.clone()).unwrap_or_default(),
        },
        entitlement: cone_core::condition::Entitlement {
            app: row.app_id.clone(),
            account_id: row.account_id.clone(),
            account_name: row.account_name.clone(),
            permission_set: row.permission_set_name.clone(),
            group: row.group_name.clone(),
        },
        request,
        now: cone_core::condition::timestamp(time(now)),
    };
    let steps = branches.choose(&facts, &policy.name, &s.config.aws.owners).map_err(|e| {
        Error::invalid(format!(
            "This request cannot be decided, so nothing was filed: {e}. Give what the condition reads (a form field \
             left out, say), or ask the policy's author to guard it with has(…)."
        ))
    })?;
    Ok(Instance::new(&u.username, now, steps))
}

/// The policy's emergency branches, for a request that says why.
fn emergency_branches<'a>(policy: &'a Policy, justification: &str) -> Result<&'a Branches> {
    let branches = policy.emergency_steps.as_ref().ok_or_else(|| {
        Error::NoEmergencyAccess(format!(
            "Policy \"{}\" has no emergency access for this entitlement; request it normally.",
            policy.name
        ))
    })?;
    if justification.trim().is_empty() {
        let field = cone_api::FieldError {
            field: "justification".into(),
            message: "Emergency access needs a justification.".into(),
        };
        return Err(Error::Invalid {
            message: "Emergency access needs a justification; say why you need it (on the command line, with --justification).".into(),
            fields: vec![field],
        });
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

async fn load_task(s: &AppState, id: i64) -> Result<Task> {
    let row = s.db.task(id).await?.ok_or_else(|| Error::NotFound(format!("There is no task {id}.")))?;
    with_events(s, row).await
}

/// The task with its latest events.
async fn with_events(s: &AppState, t: TaskRow) -> Result<Task> {
    let (events, total) = s.db.latest_task_events(t.id, TASK_EVENTS_SHOWN).await?;
    let mut task = task_to_api(s, t);
    task.earlier_events = total.saturating_sub(events.len() as i64).max(0);
    task.events = events.into_iter().map(event_to_api).collect();
    Ok(task)
}

fn event_to_api(e: EventRow) -> TaskEvent {
    TaskEvent {
        at: time(e.at),
        actor: e.actor,
        action: e.action,
        comment: serde_json::from_str::<serde_json::Value>(&e.detail)
            .ok()
            .and_then(|d| d.get("comment")?.as_str().filter(|c| !c.is_empty()).map(String::from)),
    }
}

/// One page of the history of a task the caller may see, oldest first.
pub async fn history(s: &AppState, u: &UserRow, id: i64, page: Page) -> Result<TaskEventPage> {
    let t = visible_task(s, u, id).await?;
    let (events, next_page_token) = page.cut(s.db.task_events(t.id, page.offset, page.limit()).await?);
    Ok(TaskEventPage { events: events.into_iter().map(event_to_api).collect(), next_page_token })
}

/// Whom a pending task waits for, or why the policy denied it, for people.
fn policy_status(t: &TaskRow, i: &Instance, now: i64) -> (Option<String>, Option<String>) {
    match i.outcome(now) {
        Outcome::Waiting { on: Pending::Until(until), .. } if t.state == TaskState::PendingApproval => {
            (Some(format!("the policy's waiting period, until {}", time(until).format("%Y-%m-%d %H:%M:%S UTC"))), None)
        }
        Outcome::Waiting { on, .. } if t.state == TaskState::PendingApproval => (on.describe(&i.requester), None),
        Outcome::Denied { reason } if t.state == TaskState::Denied && t.decided_by.is_none() => (None, Some(reason)),
        _ => (None, None),
    }
}

/// What an approved request waits for on a server that does not write to AWS.
const SYNC_ONLY: &str = "AWS provisioning, which is off on this server (sync-only mode); it runs once an administrator \
     turns provisioning on (BATON_PROVISIONING=true)";

fn task_to_api(s: &AppState, t: TaskRow) -> Task {
    let instance = instance(&t);
    let (mut waiting_for, policy_reason) = policy_status(&t, &instance, s.now());
    if t.state == TaskState::Provisioning && !s.config.aws.provisioning {
        waiting_for = Some(SYNC_ONLY.into());
    }
    let name = match (&t.permission_set_name, &t.account_name, &t.group_name) {
        // Only an IAM group belongs to an account.
        (_, Some(account), Some(group)) if !group.is_empty() => format!("membership of IAM group {group} in {account}"),
        (_, _, Some(group)) if !group.is_empty() => format!("membership of group {group}"),
        (Some(ps), Some(account), _) => format!("{ps} on {account}"),
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
        ended_by: t.ended_by,
        reason: t.reason.or(policy_reason),
        grant_expires_at: t.grant_expires_at.map(time),
        created_at: time(t.created_at),
        updated_at: time(t.updated_at),
        events: Vec::new(),
        earlier_events: 0,
    }
}

/// Requesters see their tasks; the people a step of the task's policy asks see it too.
async fn visible_task(s: &AppState, u: &UserRow, id: i64) -> Result<TaskRow> {
    let not_found = || Error::NotFound(format!("There is no task {id} that you can see."));
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

/// One task the caller may see, with its history.
pub async fn get(s: &AppState, u: &UserRow, id: i64) -> Result<Task> {
    watch(s, u, id, None, Duration::ZERO).await
}

/// Answers when the task's state differs from `known_state`, or after `wait`.
pub async fn watch(s: &AppState, u: &UserRow, id: i64, known_state: Option<TaskState>, wait: Duration) -> Result<Task> {
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribe before reading so that a change between the read and the wait is not missed.
    let mut changes = s.task_changes.subscribe();
    loop {
        let t = visible_task(s, u, id).await?;
        // A stopping server answers with the task as it is; the client asks again, of another replica.
        let stopping = *s.stopping.borrow();
        if known_state.is_none_or(|k| k != t.state) || tokio::time::Instant::now() >= deadline || stopping {
            return with_events(s, t).await;
        }
        tokio::select! {
            _ = changes.recv() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            () = s.stopped() => {}
        }
    }
}

/// Whether the task waits, at its current step, for a decision `u` may make (as a search of approvable tasks
/// finds).
pub async fn asks_caller(s: &AppState, u: &UserRow, id: i64) -> Result<bool> {
    let t = visible_task(s, u, id).await?;
    let groups = s.db.user_groups(u.id).await?;
    Ok(t.state == TaskState::PendingApproval
        && asks(&instance(&t), &u.username, &groups, usize::try_from(t.step_index).ok()))
}

pub async fn decide(s: &AppState, u: &UserRow, id: i64, approve: bool, comment: &str) -> Result<Task> {
    typed("comment", comment)?;
    let t = visible_task(s, u, id).await?;
    let event = if approve { Event::Approved } else { Event::Denied };
    if t.state.on(event).is_none() {
        return Err(Error::WrongState(format!("Task {id} is {}; it no longer waits for a decision.", t.state.words())));
    }
    let groups = s.db.user_groups(u.id).await?;
    let mut instance = instance(&t);
    let now = s.now();
    instance.decide(&u.username, &groups, approve, now).map_err(|e| match e {
        DecisionError::NotWaiting | DecisionError::WaitingUntil(_) => Error::WrongState(e.message()),
        _ => Error::Forbidden(e.message()),
    })?;
    let outcome = instance.outcome(now);
    let steps_json = serde_json::to_string(&instance).map_err(anyhow::Error::from)?;
    if !s.db.decide(id, &t.steps_json, &steps_json, t.step_index, u.id, comment, placement(&outcome), now).await? {
        return Err(Error::WrongState(format!(
            "Task {id} changed a moment ago (someone else decided it); see `cone task get {id}` and try again."
        )));
    }
    s.task_changed(id);
    load_task(s, id).await
}

/// Moves on the tasks whose policy wait ended (the worker calls this every few seconds); returns their ids.
pub async fn end_waits(s: &AppState) -> anyhow::Result<Vec<i64>> {
    let mut moved = Vec::new();
    for t in s.db.pending_tasks_without_group().await? {
        let now = s.now();
        let outcome = instance(&t).outcome(now);
        let same = matches!(outcome, Outcome::Waiting { index, .. } if index as i64 == t.step_index);
        if !same && s.db.resume(t.id, &t.steps_json, placement(&outcome), now).await? {
            moved.push(t.id);
        }
    }
    Ok(moved)
}

/// The requester withdraws a request nobody has decided yet.
pub async fn cancel(s: &AppState, u: &UserRow, id: i64) -> Result<Task> {
    let t = visible_task(s, u, id).await?;
    if t.requester_id != u.id {
        return Err(Error::Forbidden(format!(
            "Only {} can cancel task {id}; deny it instead with `cone task deny {id}`.",
            t.requester
        )));
    }
    let cancellable = t.state.on(Event::Cancelled).is_some();
    if !cancellable || !s.db.cancel_task(id, u.id, s.now()).await? {
        let hint = if matches!(t.state, TaskState::Granted | TaskState::Provisioning) {
            "; to give the access back, run `cone drop`"
        } else {
            ""
        };
        return Err(Error::WrongState(format!(
            "Task {id} is {}, so it can no longer be cancelled{hint}.",
            t.state.words()
        )));
    }
    s.task_changed(id);
    load_task(s, id).await
}

/// The requester moves an undecided request to its policy's emergency steps.
pub async fn escalate(s: &AppState, u: &UserRow, id: i64) -> Result<Task> {
    let t = visible_task(s, u, id).await?;
    if t.requester_id != u.id {
        return Err(Error::Forbidden(format!("Only {} can escalate task {id}.", t.requester)));
    }
    let row = load(s, &t.app_id, &t.entitlement_id).await?;
    let access = s.access();
    let policy = access.policy_for(&row.target());
    let branches = emergency_branches(policy, &t.justification)?;
    let request = Request::new(t.kind.as_str(), t.duration_secs, true, &t.justification);
    let instance = start(s, u, &row, policy, branches, request).await?;
    let now = s.now();
    let outcome = instance.outcome(now);
    let steps_json = serde_json::to_string(&instance).map_err(anyhow::Error::from)?;
    if !s.db.escalate(id, u.id, &steps_json, placement(&outcome), now).await? {
        return Err(Error::WrongState(format!(
            "Task {id} is no longer waiting for a decision, so it cannot be escalated; see `cone task get {id}`."
        )));
    }
    s.task_changed(id);
    load_task(s, id).await
}

/// Gives back the caller's access to an entitlement and withdraws their undecided requests for it.
pub async fn drop_access(s: &AppState, u: &UserRow, app_id: &str, id: &str) -> Result<DropResult> {
    let row = load(s, app_id, id).await?;
    let ids = s.db.drop_access(u.id, &row.app_id, &row.id, s.now()).await?;
    let mut tasks = Vec::with_capacity(ids.len());
    for id in ids {
        s.task_changed(id);
        tasks.push(load_task(s, id).await?);
    }
    Ok(DropResult { tasks })
}

pub async fn comment(s: &AppState, u: &UserRow, id: i64, comment: &str) -> Result<Task> {
    visible_task(s, u, id).await?;
    let comment = comment.trim();
    if comment.is_empty() {
        return Err(Error::invalid("The comment is empty."));
    }
    typed("comment", comment)?;
    if !s.db.comment(id, u.id, comment, request::MAX_COMMENTS, s.now()).await? {
        return Err(Error::WrongState(format!(
            "Task {id} has {} comments, the most one task takes; say more in a linked document or a new request.",
            request::MAX_COMMENTS
        )));
    }
    load_task(s, id).await
}

/// Refuses a text someone typed that is longer than Cone keeps (`request::MAX_TEXT`).
fn typed(what: &str, text: &str) -> Result<()> {
    request::text(what, text).map_err(|request::Invalid(problems)| Error::invalid(problems.join(" ")))
}

/// The caller's requests, those waiting for the caller's decision, or (for administrators) everyone's, narrowed by
/// `narrow`, newest first.
pub async fn search(s: &AppState, u: &UserRow, scope: Scope, narrow: Narrow<'_>, page: Page) -> Result<TaskPage> {
    let groups = s.db.user_groups(u.id).await?;
    let filter = match scope {
        Scope::Mine => TaskFilter::Requested(u.id),
        Scope::Approvable => TaskFilter::Approvable { user_id: u.id, groups: &groups },
        Scope::All => {
            super::auth::require_admin(s, u).await?;
            TaskFilter::All
        }
    };
    let (mut rows, next_page_token) = page.cut(s.db.search_tasks(filter, narrow, page.offset, page.limit()).await?);
    if scope == Scope::Approvable {
        // The store finds tasks waiting for one of the caller's groups or for named people; only the instance
        // knows whether the caller is one of them, so a page can come back shorter than its size.
        rows.retain(|t| asks(&instance(t), &u.username, &groups, usize::try_from(t.step_index).ok()));
    }
    Ok(TaskPage { tasks: rows.into_iter().map(|t| task_to_api(s, t)).collect(), next_page_token })
}

/// The longest reason an administrator may give for withdrawing a grant.
const MAX_REASON: usize = 1000;

/// An administrator ends the grant of task `id` now (an extension's task names the grant it extends); the
/// requester sees who did and why.
pub async fn withdraw(s: &AppState, u: &UserRow, id: i64, reason: &str) -> Result<Task> {
    super::auth::require_admin(s, u).await?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON || reason.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "Say why the grant is withdrawn, in 1 to {MAX_REASON} characters on one line: the requester is shown it."
        )));
    }
    let t = s.db.task(id).await?.ok_or_else(|| Error::NotFound(format!("There is no task {id}.")))?;
    let Some(grant_task) = s.db.withdraw_grant(id, u.id, reason, s.now()).await? else {
        return Err(Error::WrongState(format!(
            "Task {id} holds no live grant (it is {}); nothing to withdraw.",
            t.state.words()
        )));
    };
    s.task_changed(grant_task);
    tracing::info!(task = grant_task, by = %u.username, "grant withdrawn by an administrator");
    load_task(s, grant_task).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(steps_json: &str, step_index: i64) -> TaskRow {
        TaskRow {
            id: 1,
            kind: TaskKind::Grant,
            emergency: 0,
            requester_id: 1,
            requester: "alice".into(),
            app_id: "aws".into(),
            entitlement_id: "e".into(),
            state: TaskState::PendingApproval,
            justification: String::new(),
            duration_secs: 3600,
            steps_json: steps_json.into(),
            step_index,
            waiting_for_group: None,
            decided_by: None,
            ended_by: None,
            reason: None,
            created_at: 0,
            updated_at: 0,
            grant_expires_at: None,
            permission_set_name: None,
            account_name: None,
            group_name: None,
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
