//! Requests (tasks): filing, reading (with a long poll), searching, deciding, commenting, cancelling, escalating,
//! and giving access back.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cone_api::{CreateTask, Decision, DropRequest, DropResult, Task, TaskEventPage, TaskPage, TaskState, Withdrawal};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::doc::{BadRequest, Conflict, Forbidden, Internal, NotFound, Unauthenticated, UnsupportedMediaType};
use super::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use crate::error::Error;
use crate::services::tasks::{Narrow, States};
use crate::services::{Page, tasks};
use crate::state::AppState;

/// Requests access (or, on an entitlement the caller holds, more time). The task says whether the policy granted
/// it at once or waits for approvals.
#[utoipa::path(
    post,
    path = "/api/v1/tasks",
    tag = "tasks",
    request_body = CreateTask,
    responses(
        (status = 201, description = "The new task", body = Task),
        BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, UnsupportedMediaType, Internal
    )
)]
pub async fn create_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiJson(req): ApiJson<CreateTask>,
) -> Result<(StatusCode, Json<Task>), Error> {
    let task = tasks::create(&s, &u, req).await?;
    Ok((StatusCode::CREATED, Json(task)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// Long-poll: answer once the task's state differs from this one, or after `wait_secs`.
    #[serde(default)]
    known_state: Option<String>,
    /// How long a long-poll may wait, in seconds; at most 60 count.
    #[serde(default)]
    wait_secs: Option<u64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TaskId {
    /// The task's id.
    id: i64,
}

/// One task the caller may see (theirs, one they are asked to decide, or any for administrators), with its
/// history; optionally once its state changes.
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}",
    tag = "tasks",
    params(TaskId, TaskQuery),
    responses((status = 200, description = "The task", body = Task), BadRequest, Unauthenticated, NotFound, Internal)
)]
pub async fn get_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiPath(TaskId { id }): ApiPath<TaskId>,
    ApiQuery(q): ApiQuery<TaskQuery>,
) -> Result<Json<Task>, Error> {
    let wait = std::time::Duration::from_secs(q.wait_secs.unwrap_or(0).min(60));
    // A state this server does not know differs from every task's: the answer comes at once.
    let known = q.known_state.as_deref().and_then(TaskState::parse);
    Ok(Json(tasks::watch(&s, &u, id, known, wait).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// `next_page_token` of the previous page; absent for the first.
    #[serde(default)]
    page_token: Option<String>,
    /// Events per page: 50 when absent, at least 1 and at most 200.
    #[serde(default)]
    page_size: Option<i64>,
}

/// The whole history of a task the caller may see, oldest first, a page at a time (a task's own answer carries
/// only its latest events).
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}/events",
    tag = "tasks",
    params(TaskId, HistoryQuery),
    responses((status = 200, description = "One page", body = TaskEventPage), BadRequest, Unauthenticated, NotFound, Internal)
)]
pub async fn task_events(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiPath(TaskId { id }): ApiPath<TaskId>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<TaskEventPage>, Error> {
    let page = Page::new(q.page_token.as_deref(), q.page_size, 50, 200)?;
    Ok(Json(tasks::history(&s, &u, id, page).await?))
}

/// Whose tasks a search returns.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The caller's requests.
    #[default]
    Mine,
    /// Requests waiting for the caller's decision.
    Approvable,
    /// Everyone's requests (administrators only).
    All,
}

/// Which tasks by state a search returns: a group of states, or one state (such as `granted`).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(untagged, expecting = "open, closed, live, all, or a task state such as granted or pending_approval")]
pub enum StateFilter {
    Group(#[schema(inline)] StateGroup),
    One(#[schema(inline)] TaskState),
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateGroup {
    /// Undecided and provisioning.
    Open,
    /// Every other state.
    Closed,
    /// Open, or holding an active grant.
    Live,
    All,
}

impl StateFilter {
    fn states(self) -> Option<States> {
        match self {
            StateFilter::Group(StateGroup::Open) => Some(States::Open),
            StateFilter::Group(StateGroup::Closed) => Some(States::Closed),
            StateFilter::Group(StateGroup::Live) => Some(States::Live),
            StateFilter::Group(StateGroup::All) => None,
            StateFilter::One(state) => Some(States::Is(state)),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// `mine` (the default), `approvable`, or `all` (administrators).
    #[serde(default)]
    #[param(inline)]
    scope: Option<Scope>,
    /// `open`, `closed`, `live` (open or granted), `all` (the default) or one state, such as `granted` for active
    /// grants.
    #[serde(default)]
    #[param(inline)]
    state: Option<StateFilter>,
    /// Only this requester's tasks (a user name).
    #[serde(default)]
    user: Option<String>,
    /// Only tasks on this account (its id, or its name in any case).
    #[serde(default)]
    account: Option<String>,
    /// Only tasks on this permission set (its name, in any case).
    #[serde(default)]
    permission_set: Option<String>,
    /// Only tasks on this entitlement (with `app_id`).
    #[serde(default)]
    entitlement_id: Option<String>,
    /// The app of `entitlement_id`.
    #[serde(default)]
    app_id: Option<String>,
    /// `next_page_token` of the previous page; absent for the first.
    #[serde(default)]
    page_token: Option<String>,
    /// Tasks per page: 50 when absent, at least 1 and at most 200.
    #[serde(default)]
    page_size: Option<i64>,
}

/// The caller's requests, those waiting for their decision, or (for administrators) everyone's, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    tag = "tasks",
    params(SearchQuery),
    responses((status = 200, description = "One page", body = TaskPage), BadRequest, Unauthenticated, Forbidden, Internal)
)]
pub async fn search_tasks(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<TaskPage>, Error> {
    let page = Page::new(q.page_token.as_deref(), q.page_size, 50, 200)?;
    let scope = match q.scope.unwrap_or_default() {
        Scope::Mine => tasks::Scope::Mine,
        Scope::Approvable => tasks::Scope::Approvable,
        Scope::All => tasks::Scope::All,
    };
    let entitlement = match (q.app_id.as_deref(), q.entitlement_id.as_deref()) {
        (Some(app), Some(id)) => Some((app, id)),
        (None, None) => None,
        _ => return Err(Error::invalid("Give `app_id` and `entitlement_id` together, or neither.")),
    };
    let narrow = Narrow {
        states: q.state.and_then(StateFilter::states),
        user: q.user.as_deref(),
        account: q.account.as_deref(),
        permission_set: q.permission_set.as_deref(),
        entitlement,
    };
    Ok(Json(tasks::search(&s, &u, scope, narrow, page).await?))
}

/// Approves the task at the step it waits at, when that step asks the caller.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/approve",
    tag = "tasks",
    params(TaskId),
    request_body(content = Option<Decision>, description = "An optional comment"),
    responses(
        (status = 200, description = "The task after the decision", body = Task),
        BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, UnsupportedMediaType, Internal
    )
)]
pub async fn approve_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiPath(TaskId { id }): ApiPath<TaskId>,
    body: Option<ApiJson<Decision>>,
) -> Result<Json<Task>, Error> {
    Ok(Json(tasks::decide(&s, &u, id, true, &comment_of(body)).await?))
}

/// Denies the task at the step it waits at, when that step asks the caller.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/deny",
    tag = "tasks",
    params(TaskId),
    request_body(content = Option<Decision>, description = "An optional comment"),
    responses(
        (status = 200, description = "The task after the decision", body = Task),
        BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, UnsupportedMediaType, Internal
    )
)]
pub async fn deny_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiPath(TaskId { id }): ApiPath<TaskId>,
    body: Option<ApiJson<Decision>>,
) -> Result<Json<Task>, Error> {
    Ok(Json(tasks::decide(&s, &u, id, false, &comment_of(body)).await?))
}

/// Comments on a task the caller may see.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/comment",
    tag = "tasks",
    params(TaskId),
    request_body(content = Decision, description = "The comment"),
    responses(
        (status = 200, description = "The task with the comment", body = Task),
        BadRequest, Unauthenticated, NotFound, UnsupportedMediaType, Internal
    )
)]
pub async fn comment_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiPath(TaskId { id }): ApiPath<TaskId>,
    body: Option<ApiJson<Decision>>,
) -> Result<Json<Task>, Error> {
    Ok(Json(tasks::comment(&s, &u, id, &comment_of(body)).await?))
}

/// The requester withdraws a request nobody has decided yet.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/cancel",
    tag = "tasks",
    params(TaskId),
    responses(
        (status = 200, description = "The cancelled task", body = Task),
        BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, Internal
    )
)]
pub async fn cancel_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiPath(TaskId { id }): ApiPath<TaskId>,
) -> Result<Json<Task>, Error> {
    Ok(Json(tasks::cancel(&s, &u, id).await?))
}

/// The requester moves an undecided request to its policy's emergency steps.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/escalate",
    tag = "tasks",
    params(TaskId),
    responses(
        (status = 200, description = "The escalated task", body = Task),
        BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, Internal
    )
)]
pub async fn escalate_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiPath(TaskId { id }): ApiPath<TaskId>,
) -> Result<Json<Task>, Error> {
    Ok(Json(tasks::escalate(&s, &u, id).await?))
}

/// An administrator ends the grant of a task now, saying why; the requester is shown who and why.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/withdraw",
    tag = "tasks",
    params(TaskId),
    request_body = Withdrawal,
    responses(
        (status = 200, description = "The task whose grant was withdrawn", body = Task),
        BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, UnsupportedMediaType, Internal
    )
)]
pub async fn withdraw_grant(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiPath(TaskId { id }): ApiPath<TaskId>,
    ApiJson(w): ApiJson<Withdrawal>,
) -> Result<Json<Task>, Error> {
    Ok(Json(tasks::withdraw(&s, &u, id, &w.reason).await?))
}

fn comment_of(body: Option<ApiJson<Decision>>) -> String {
    body.map(|ApiJson(d)| d.comment).unwrap_or_default()
}

/// Gives back the caller's access to an entitlement and withdraws their undecided requests for it.
#[utoipa::path(
    post,
    path = "/api/v1/drop",
    tag = "tasks",
    request_body = DropRequest,
    responses(
        (status = 200, description = "The tasks released or cancelled", body = DropResult),
        BadRequest, Unauthenticated, NotFound, UnsupportedMediaType, Internal
    )
)]
pub async fn drop_access(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiJson(req): ApiJson<DropRequest>,
) -> Result<Json<DropResult>, Error> {
    Ok(Json(tasks::drop_access(&s, &u, &req.app_id, &req.entitlement_id).await?))
}
