//! The REST API and web pages: translation between HTTP and the services in `app`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cone_api::{
    ApiError, ConnectorStatus, CreateTask, Decision, DriftPage, DropRequest, DropResult, EntitlementPage, Me, Task,
    TaskPage, codes,
};
use serde::Deserialize;
use tokio::sync::{Notify, broadcast};

use crate::app;
use crate::auth::{self, CurrentUser};
use crate::config::Config;
use crate::db::Db;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub public_url: String,
    /// Ids of tasks that just changed, for long-polling clients.
    pub task_changes: broadcast::Sender<i64>,
    /// Wakes the workers when there is new work.
    pub wake: Arc<Notify>,
    /// How this process's syncs with AWS stand.
    pub sync_status: Arc<std::sync::Mutex<ConnectorStatus>>,
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An API error: a status and the JSON body every client understands.
#[derive(Debug)]
pub struct ApiFailure(pub StatusCode, pub ApiError);

impl ApiFailure {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiFailure {
        ApiFailure(status, ApiError { code: code.into(), message: message.into(), task_id: None, fields: vec![] })
    }
}

impl From<anyhow::Error> for ApiFailure {
    fn from(e: anyhow::Error) -> ApiFailure {
        tracing::error!("request failed: {e:#}");
        ApiFailure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "The server hit an internal error; its log has the details. Try again shortly.",
        )
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/oauth/device/code", post(auth::device_authorization))
        .route("/oauth/token", post(auth::token))
        .route("/device", get(auth::device_page).post(auth::device_approve))
        .route("/api/v1/me", get(me))
        .route("/api/v1/logout", post(auth::logout))
        .route("/api/v1/entitlements", get(entitlements))
        .route("/api/v1/entitlement", get(entitlement))
        .route("/api/v1/tasks", post(create_task).get(search_tasks))
        .route("/api/v1/tasks/{id}", get(get_task))
        .route("/api/v1/tasks/{id}/{action}", post(task_action))
        .route("/api/v1/drop", post(drop_access))
        .route("/api/v1/drift", get(drift))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/connectors", get(connectors))
        .merge(crate::metrics::routes())
        .route_layer(axum::middleware::from_fn(crate::metrics::track))
        .with_state(state)
}

async fn me(State(s): State<AppState>, CurrentUser(u): CurrentUser) -> Result<Json<Me>, ApiFailure> {
    let groups = s.db.user_groups(u.id).await?;
    let admin = s.config.admins.include(&u.username, &groups);
    Ok(Json(Me { username: u.username, display_name: u.display_name, email: u.email, groups, admin }))
}

#[derive(Deserialize)]
struct PageQuery {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    page_token: Option<String>,
    #[serde(default)]
    page_size: Option<usize>,
}

async fn entitlements(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    Query(q): Query<PageQuery>,
) -> Result<Json<EntitlementPage>, ApiFailure> {
    let all = app::entitlements_for(&s, &u).await?;
    let all: Vec<_> = all.into_iter().filter(|e| q.kind.as_deref().is_none_or(|k| k == e.kind)).collect();
    let start = page_offset(q.page_token.as_deref())? as usize;
    let size = q.page_size.unwrap_or(100).clamp(1, 1000);
    let end = (start + size).min(all.len());
    let next_page_token = (end < all.len()).then(|| end.to_string());
    Ok(Json(EntitlementPage {
        entitlements: all.get(start..end).map(<[_]>::to_vec).unwrap_or_default(),
        next_page_token,
    }))
}

/// Page tokens are offsets; clients treat them as opaque.
fn page_offset(token: Option<&str>) -> Result<i64, ApiFailure> {
    match token {
        None | Some("") => Ok(0),
        Some(t) => t.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
            ApiFailure::new(
                StatusCode::BAD_REQUEST,
                codes::INVALID_REQUEST,
                "Invalid page_token; start again without one.",
            )
        }),
    }
}

#[derive(Deserialize)]
struct EntitlementQuery {
    app_id: String,
    entitlement_id: String,
}

async fn entitlement(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    Query(q): Query<EntitlementQuery>,
) -> Result<Json<cone_api::Entitlement>, ApiFailure> {
    Ok(Json(app::entitlement_for(&s, &u, &q.app_id, &q.entitlement_id).await?))
}

async fn create_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    Json(req): Json<CreateTask>,
) -> Result<(StatusCode, Json<Task>), ApiFailure> {
    let task = app::create_task(&s, &u, req).await?;
    Ok((StatusCode::CREATED, Json(task)))
}

#[derive(Deserialize)]
struct TaskQuery {
    /// Long-poll: answer once the task's state differs from this one, or after `wait_secs`.
    #[serde(default)]
    known_state: Option<String>,
    #[serde(default)]
    wait_secs: Option<u64>,
}

async fn get_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<TaskQuery>,
) -> Result<Json<Task>, ApiFailure> {
    let wait = std::time::Duration::from_secs(q.wait_secs.unwrap_or(0).min(60));
    Ok(Json(app::watch_task(&s, &u, id, q.known_state.as_deref(), wait).await?))
}

#[derive(Deserialize)]
struct SearchQuery {
    /// `mine` (default) or `approvable`.
    #[serde(default)]
    scope: Option<String>,
    /// `open`, `closed` or `all` (default).
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    page_token: Option<String>,
    #[serde(default)]
    page_size: Option<i64>,
}

async fn search_tasks(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    Query(q): Query<SearchQuery>,
) -> Result<Json<TaskPage>, ApiFailure> {
    let offset = page_offset(q.page_token.as_deref())?;
    let size = q.page_size.unwrap_or(50).clamp(1, 200);
    let scope = q.scope.as_deref().unwrap_or("mine");
    Ok(Json(app::search_tasks(&s, &u, scope, q.state.as_deref(), offset, size).await?))
}

/// `POST /api/v1/tasks/{id}/approve`, `…/deny`, `…/comment` (all with a [`Decision`] body) or `…/cancel`.
async fn task_action(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    Path((id, action)): Path<(i64, String)>,
    body: Option<Json<Decision>>,
) -> Result<Json<Task>, ApiFailure> {
    let comment = body.map(|b| b.0.comment).unwrap_or_default();
    let task = match action.as_str() {
        "approve" => app::decide(&s, &u, id, true, &comment).await?,
        "deny" => app::decide(&s, &u, id, false, &comment).await?,
        "comment" => app::comment(&s, &u, id, &comment).await?,
        "cancel" => app::cancel(&s, &u, id).await?,
        "escalate" => app::escalate(&s, &u, id).await?,
        _ => {
            return Err(ApiFailure::new(
                StatusCode::NOT_FOUND,
                codes::NOT_FOUND,
                "A task can be approved, denied, commented on, cancelled or escalated.",
            ));
        }
    };
    Ok(Json(task))
}

async fn drop_access(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    Json(req): Json<DropRequest>,
) -> Result<Json<DropResult>, ApiFailure> {
    Ok(Json(app::drop_access(&s, &u, &req.app_id, &req.entitlement_id).await?))
}

/// Open drift findings. Any signed-in user may read them until Cone has administrator roles.
async fn drift(State(s): State<AppState>, _: auth::Admin) -> Result<Json<DriftPage>, ApiFailure> {
    Ok(Json(app::open_drift(&s).await?))
}

/// The audit log, a page at a time, for administrators.
async fn audit(
    State(s): State<AppState>,
    _: auth::Admin,
    Query(q): Query<crate::audit::PageQuery>,
) -> Result<Json<cone_api::AuditPage>, ApiFailure> {
    Ok(Json(crate::audit::page(&s.db, q).await?))
}

async fn connectors(State(s): State<AppState>, CurrentUser(_): CurrentUser) -> Json<Vec<ConnectorStatus>> {
    let status = s.sync_status.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    Json(vec![status])
}
