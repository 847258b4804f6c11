//! The REST API and web pages: translation between HTTP and the services in `app`.

use std::sync::Arc;

use arc_swap::ArcSwap;

use std::sync::OnceLock;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cone_api::{
    ApiError, ConnectorStatus, CreateTask, Decision, DriftPage, DropRequest, DropResult, EntitlementPage, Me, Task,
    TaskPage, codes,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, broadcast};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, CurrentUser};
use crate::config::{Access, Config};
use crate::db::Db;
use crate::{access, app, iam, tokens};

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    /// The access document in force (see [`AppState::access`]).
    pub access: Arc<ArcSwap<Access>>,
    pub public_url: String,
    /// Ids of tasks that just changed, for long-polling clients.
    pub task_changes: broadcast::Sender<i64>,
    /// Wakes the workers when there is new work.
    pub wake: Arc<Notify>,
    /// Asks this process's sync loop for a sync now (an administrator's "sync now").
    pub sync_now: Arc<Notify>,
    /// How this process's syncs with AWS stand.
    pub sync_status: Arc<std::sync::Mutex<ConnectorStatus>>,
    pub sign_in_failures: Arc<crate::auth::Throttle>,
}

impl AppState {
    /// The catalog and policies in force. A request holds the ones it started with, whatever changes meanwhile.
    pub fn access(&self) -> Arc<Access> {
        self.access.load_full()
    }
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

/// A request body in JSON. Unlike `axum::Json`, whatever is wrong with it is answered as an [`ApiError`] that says
/// where (`duration_secs: invalid type: string "x", expected i64`). Text holding NUL characters is refused: neither
/// store keeps them (PostgreSQL cannot), and no field has a use for them.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiFailure;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiFailure> {
        let Json(value) =
            <Json<serde_json::Value> as FromRequest<S>>::from_request(req, state).await.map_err(body_rejected)?;
        body_value(value).map(ApiJson)
    }
}

/// An optional body: none when the request has no `Content-Type`, or its body is `null`.
impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = ApiFailure;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiFailure> {
        match <Json<serde_json::Value> as OptionalFromRequest<S>>::from_request(req, state).await {
            Ok(Some(Json(serde_json::Value::Null))) | Ok(None) => Ok(None),
            Ok(Some(Json(value))) => body_value(value).map(|v| Some(ApiJson(v))),
            Err(e) => Err(body_rejected(e)),
        }
    }
}

fn body_rejected(e: JsonRejection) -> ApiFailure {
    match e {
        JsonRejection::MissingJsonContentType(_) => ApiFailure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::INVALID_REQUEST,
            "Send the request body as JSON, with the header `Content-Type: application/json`.",
        ),
        e => ApiFailure::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            format!(
                "The request body cannot be read: {}. Send one JSON object as /api/v1/openapi.json describes.",
                e.body_text()
            ),
        ),
    }
}

fn body_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiFailure> {
    if holds_nul(&value) {
        return Err(nul_refused("the request body"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." { String::new() } else { format!("{at}: ") };
        ApiFailure::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            format!("The request body is not what this endpoint takes ({at}{}); see /api/v1/openapi.json.", e.inner()),
        )
    })
}

fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

fn nul_refused(place: &str) -> ApiFailure {
    ApiFailure::new(
        StatusCode::BAD_REQUEST,
        codes::INVALID_REQUEST,
        format!("Text in {place} contains a NUL character (\\u0000 or %00), which Cone does not accept; remove it."),
    )
}

/// Query parameters, with problems answered as an [`ApiError`] naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiFailure> {
        // A percent sign always starts an escape in a query, so `%00` anywhere is a NUL once decoded.
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(nul_refused("the query string"));
        }
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await.map_err(|e: QueryRejection| {
                ApiFailure::new(
                    StatusCode::BAD_REQUEST,
                    codes::INVALID_REQUEST,
                    format!("{}. See /api/v1/openapi.json for this endpoint's parameters.", e.body_text()),
                )
            })?;
        Ok(ApiQuery(value))
    }
}

/// Path parameters (ids), with a malformed one answered as an [`ApiError`].
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiFailure> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await.map_err(|e: PathRejection| {
                let status = e.status();
                if status.is_server_error() {
                    return anyhow::anyhow!("path parameters: {}", e.body_text()).into();
                }
                ApiFailure::new(status, codes::INVALID_REQUEST, format!("{}; ids are whole numbers.", e.body_text()))
            })?;
        Ok(ApiPath(value))
    }
}

/// The frame of the OpenAPI document; its operations come from the handlers' `#[utoipa::path]` attributes,
/// collected where the routes are registered ([`api`]), so that a route and its description cannot part.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cone API",
        description = "Just-in-time access to AWS accounts: entitlements, requests (tasks) and their decisions. \
Every error is an `ApiError` with a stable `code` and a `message` that says what to do.",
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ApiError, cone_api::FieldError)),
    tags(
        (name = "session", description = "Who is signed in, and signing out."),
        (name = "entitlements", description = "What the caller may request."),
        (name = "tasks", description = "Access requests and their decisions."),
        (name = "operations", description = "The server's state: syncs with AWS, drift, the audit log, the IAM \
inventory."),
        (name = "tokens", description = "Personal and service API tokens."),
        (name = "configuration", description = "The access document (access profiles, entitlement management, \
policies) and its versions."),
        (name = "meta", description = "This document."),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description =
            Some("A token from `cone login` (the device sign-in at /oauth/device/code and /oauth/token).".to_string());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The error answers of the document; each body is an [`ApiError`]. The types only describe (the handlers answer
/// with [`ApiFailure`]), so their field is never read.
#[allow(dead_code)]
mod responses {
    use super::*;

    /// The request is malformed (a parameter or body that cannot be read) or asks for something the server
    /// refuses (`invalid_request`, `invalid_form` with `fields`, `form_required`); `message` says what to change.
    #[derive(IntoResponses)]
    #[response(status = 400)]
    pub struct BadRequest(ApiError);

    /// No valid credentials: no bearer token, or one that is unknown, expired or revoked (`unauthenticated`);
    /// `message` says which, and what to do (sign in with `cone login`, or get a new API token).
    #[derive(IntoResponses)]
    #[response(status = 401)]
    pub struct Unauthenticated(ApiError);

    /// Signed in, but not allowed to do this (`forbidden`, `no_emergency_access`).
    #[derive(IntoResponses)]
    #[response(status = 403)]
    pub struct Forbidden(ApiError);

    /// Nothing with that id that the caller may see (`not_found`).
    #[derive(IntoResponses)]
    #[response(status = 404)]
    pub struct NotFound(ApiError);

    /// The request conflicts with the current state (`pending_request_exists` with `task_id`, `wrong_state`,
    /// `extension_refused`, or `invalid_request` when the task changed meanwhile).
    #[derive(IntoResponses)]
    #[response(status = 409)]
    pub struct Conflict(ApiError);

    /// The request body is not declared as JSON (`invalid_request`).
    #[derive(IntoResponses)]
    #[response(status = 415)]
    pub struct UnsupportedMediaType(ApiError);

    /// The server failed (`internal`); its log has the details. Try again shortly.
    #[derive(IntoResponses)]
    #[response(status = 500)]
    pub struct Internal(ApiError);
}
pub(crate) use responses::{
    BadRequest, Conflict, Forbidden, Internal, NotFound, Unauthenticated, UnsupportedMediaType,
};

/// The `/api/v1` routes and the OpenAPI document describing them, built from the same list.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(openapi_json))
        .routes(routes!(me))
        .routes(routes!(auth::logout))
        .routes(routes!(entitlements))
        .routes(routes!(entitlement))
        .routes(routes!(holders))
        .routes(routes!(create_task, search_tasks))
        .routes(routes!(get_task))
        .routes(routes!(approve_task))
        .routes(routes!(deny_task))
        .routes(routes!(comment_task))
        .routes(routes!(cancel_task))
        .routes(routes!(escalate_task))
        .routes(routes!(drop_access))
        .routes(routes!(drift))
        .routes(routes!(audit))
        .routes(routes!(connectors))
        .routes(routes!(sync_connector))
        .routes(routes!(iam::access_keys))
        .routes(routes!(iam::users))
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(tokens::create_service_token))
        .routes(routes!(access::current, access::apply))
        .routes(routes!(access::check_document))
        .routes(routes!(access::versions))
        .routes(routes!(access::version))
        .split_for_parts()
}

pub fn router(state: AppState) -> Router {
    routes().with_state(state)
}

/// Every route of the server, before it gets its state.
fn routes() -> Router<AppState> {
    let (api, _) = api();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/oauth/device/code", post(auth::device_authorization))
        .route("/oauth/token", post(auth::token))
        .route("/device", get(crate::web::device::verification_uri))
        .merge(api)
        .merge(crate::metrics::routes())
        .merge(crate::web::routes())
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .route_layer(axum::middleware::from_fn(crate::metrics::track))
}

async fn not_found() -> ApiFailure {
    ApiFailure::new(
        StatusCode::NOT_FOUND,
        codes::NOT_FOUND,
        "There is no such endpoint; /api/v1/openapi.json lists the API's endpoints.",
    )
}

async fn method_not_allowed() -> ApiFailure {
    ApiFailure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::INVALID_REQUEST,
        "This endpoint does not take that method; the `Allow` header lists those it takes.",
    )
}

/// The OpenAPI document of this API (this one), in JSON. No sign-in needed.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json"))
)]
async fn openapi_json() -> Result<Response, ApiFailure> {
    static DOCUMENT: OnceLock<Result<String, String>> = OnceLock::new();
    match DOCUMENT.get_or_init(|| api().1.to_json().map_err(|e| e.to_string())) {
        Ok(text) => Ok(([(header::CONTENT_TYPE, "application/json")], text.clone()).into_response()),
        Err(e) => Err(anyhow::anyhow!("cannot serialise the OpenAPI document: {e}").into()),
    }
}

/// The signed-in user.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "session",
    responses((status = 200, description = "The caller", body = Me), Unauthenticated, Internal)
)]
async fn me(State(s): State<AppState>, CurrentUser(u): CurrentUser) -> Result<Json<Me>, ApiFailure> {
    let groups = s.db.user_groups(u.id).await?;
    let admin = s.config.admins.include(&u.username, &groups);
    Ok(Json(Me { username: u.username, display_name: u.display_name, email: u.email, groups, admin }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Only entitlements of this kind (`aws_permission_set`).
    #[serde(default)]
    kind: Option<String>,
    /// `next_page_token` of the previous page; absent for the first.
    #[serde(default)]
    page_token: Option<String>,
    /// Entitlements per page: 100 when absent, at least 1 and at most 1000.
    #[serde(default)]
    page_size: Option<usize>,
}

/// The entitlements the caller may request, and those they hold.
#[utoipa::path(
    get,
    path = "/api/v1/entitlements",
    tag = "entitlements",
    params(PageQuery),
    responses((status = 200, description = "One page", body = EntitlementPage), BadRequest, Unauthenticated, Internal)
)]
async fn entitlements(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<EntitlementPage>, ApiFailure> {
    let start = page_offset(q.page_token.as_deref())?;
    let all = app::entitlements_for(&s, &u).await?;
    let all: Vec<_> = all.into_iter().filter(|e| q.kind.as_deref().is_none_or(|k| k == e.kind)).collect();
    let start = usize::try_from(start).unwrap_or(usize::MAX).min(all.len());
    let size = q.page_size.unwrap_or(100).clamp(1, 1000);
    let end = start.saturating_add(size).min(all.len());
    let next_page_token = (end < all.len()).then(|| end.to_string());
    Ok(Json(EntitlementPage {
        entitlements: all.get(start..end).map(<[_]>::to_vec).unwrap_or_default(),
        next_page_token,
    }))
}

/// Page tokens are offsets; clients treat them as opaque.
pub(crate) fn page_offset(token: Option<&str>) -> Result<i64, ApiFailure> {
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

/// A page of at most `size` from `rows`, which a query read from `offset` with one row more than the page, to tell
/// whether another page exists; with the next page's token if it does.
pub(crate) fn one_page<T>(mut rows: Vec<T>, offset: i64, size: i64) -> (Vec<T>, Option<String>) {
    let next = (rows.len() as i64 > size).then(|| offset.saturating_add(size).to_string());
    rows.truncate(usize::try_from(size).unwrap_or(0));
    (rows, next)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EntitlementQuery {
    /// The app (`aws`).
    app_id: String,
    /// The entitlement: `<account id>|<permission set ARN>` for AWS.
    entitlement_id: String,
}

/// One entitlement, with the end of the caller's active grant on it.
#[utoipa::path(
    get,
    path = "/api/v1/entitlement",
    tag = "entitlements",
    params(EntitlementQuery),
    responses(
        (status = 200, description = "The entitlement", body = cone_api::Entitlement),
        BadRequest, Unauthenticated, NotFound, Internal
    )
)]
async fn entitlement(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiQuery(q): ApiQuery<EntitlementQuery>,
) -> Result<Json<cone_api::Entitlement>, ApiFailure> {
    Ok(Json(app::entitlement_for(&s, &u, &q.app_id, &q.entitlement_id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HoldersQuery {
    /// The app (`aws`).
    app_id: String,
    /// The entitlement: `<account id>|<permission set ARN>` for AWS.
    entitlement_id: String,
    /// `next_page_token` of the previous page; absent for the first.
    #[serde(default)]
    page_token: Option<String>,
    /// Holders per page: 100 when absent, at least 1 and at most 1000.
    #[serde(default)]
    page_size: Option<i64>,
}

/// Who holds an entitlement and from where: an active grant (its task and end) or an Identity Center group
/// assignment (the group). Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/entitlement/holders",
    tag = "entitlements",
    params(HoldersQuery),
    responses(
        (status = 200, description = "One page, by user name", body = cone_api::HolderPage),
        BadRequest, Unauthenticated, Forbidden, NotFound, Internal
    )
)]
async fn holders(
    State(s): State<AppState>,
    _: auth::Admin,
    ApiQuery(q): ApiQuery<HoldersQuery>,
) -> Result<Json<cone_api::HolderPage>, ApiFailure> {
    let offset = page_offset(q.page_token.as_deref())?;
    let size = q.page_size.unwrap_or(100).clamp(1, 1000);
    Ok(Json(app::holders(&s, &q.app_id, &q.entitlement_id, offset, size).await?))
}

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
async fn create_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiJson(req): ApiJson<CreateTask>,
) -> Result<(StatusCode, Json<Task>), ApiFailure> {
    let task = app::create_task(&s, &u, req).await?;
    Ok((StatusCode::CREATED, Json(task)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TaskQuery {
    /// Long-poll: answer once the task's state differs from this one, or after `wait_secs`.
    #[serde(default)]
    known_state: Option<String>,
    /// How long a long-poll may wait, in seconds; at most 60 count.
    #[serde(default)]
    wait_secs: Option<u64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct TaskId {
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
async fn get_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiPath(TaskId { id }): ApiPath<TaskId>,
    ApiQuery(q): ApiQuery<TaskQuery>,
) -> Result<Json<Task>, ApiFailure> {
    let wait = std::time::Duration::from_secs(q.wait_secs.unwrap_or(0).min(60));
    Ok(Json(app::watch_task(&s, &u, id, q.known_state.as_deref(), wait).await?))
}

/// Whose tasks a search returns.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Scope {
    /// The caller's requests.
    #[default]
    Mine,
    /// Requests waiting for the caller's decision.
    Approvable,
}

/// Which tasks by state a search returns.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum StateFilter {
    /// Undecided and provisioning.
    Open,
    /// Every other state.
    Closed,
    #[default]
    All,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// `mine` (the default) or `approvable`.
    #[serde(default)]
    #[param(inline)]
    scope: Option<Scope>,
    /// `open`, `closed` or `all` (the default).
    #[serde(default)]
    #[param(inline)]
    state: Option<StateFilter>,
    /// `next_page_token` of the previous page; absent for the first.
    #[serde(default)]
    page_token: Option<String>,
    /// Tasks per page: 50 when absent, at least 1 and at most 200.
    #[serde(default)]
    page_size: Option<i64>,
}

/// The caller's requests, or those waiting for their decision, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    tag = "tasks",
    params(SearchQuery),
    responses((status = 200, description = "One page", body = TaskPage), BadRequest, Unauthenticated, Internal)
)]
async fn search_tasks(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<TaskPage>, ApiFailure> {
    let offset = page_offset(q.page_token.as_deref())?;
    let size = q.page_size.unwrap_or(50).clamp(1, 200);
    let scope = match q.scope.unwrap_or_default() {
        Scope::Mine => "mine",
        Scope::Approvable => "approvable",
    };
    let state = match q.state.unwrap_or_default() {
        StateFilter::Open => "open",
        StateFilter::Closed => "closed",
        StateFilter::All => "all",
    };
    Ok(Json(app::search_tasks(&s, &u, scope, Some(state), offset, size).await?))
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
async fn approve_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiPath(TaskId { id }): ApiPath<TaskId>,
    body: Option<ApiJson<Decision>>,
) -> Result<Json<Task>, ApiFailure> {
    Ok(Json(app::decide(&s, &u, id, true, &comment_of(body)).await?))
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
async fn deny_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiPath(TaskId { id }): ApiPath<TaskId>,
    body: Option<ApiJson<Decision>>,
) -> Result<Json<Task>, ApiFailure> {
    Ok(Json(app::decide(&s, &u, id, false, &comment_of(body)).await?))
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
async fn comment_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiPath(TaskId { id }): ApiPath<TaskId>,
    body: Option<ApiJson<Decision>>,
) -> Result<Json<Task>, ApiFailure> {
    Ok(Json(app::comment(&s, &u, id, &comment_of(body)).await?))
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
async fn cancel_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiPath(TaskId { id }): ApiPath<TaskId>,
) -> Result<Json<Task>, ApiFailure> {
    Ok(Json(app::cancel(&s, &u, id).await?))
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
async fn escalate_task(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiPath(TaskId { id }): ApiPath<TaskId>,
) -> Result<Json<Task>, ApiFailure> {
    Ok(Json(app::escalate(&s, &u, id).await?))
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
async fn drop_access(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiJson(req): ApiJson<DropRequest>,
) -> Result<Json<DropResult>, ApiFailure> {
    Ok(Json(app::drop_access(&s, &u, &req.app_id, &req.entitlement_id).await?))
}

/// Open drift findings: differences between Identity Center's assignments and Cone's grants. Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/drift",
    tag = "operations",
    responses((status = 200, description = "The open findings", body = DriftPage), Unauthenticated, Forbidden, Internal)
)]
async fn drift(State(s): State<AppState>, _: auth::Admin) -> Result<Json<DriftPage>, ApiFailure> {
    Ok(Json(app::open_drift(&s).await?))
}

/// The audit log, a page at a time, for administrators.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "operations",
    params(crate::audit::PageQuery),
    responses((status = 200, description = "Entries in id order", body = cone_api::AuditPage), BadRequest, Unauthenticated, Forbidden, Internal)
)]
async fn audit(
    State(s): State<AppState>,
    _: auth::Admin,
    ApiQuery(q): ApiQuery<crate::audit::PageQuery>,
) -> Result<Json<cone_api::AuditPage>, ApiFailure> {
    Ok(Json(crate::audit::page(&s.db, q).await?))
}

/// How this server's syncs with AWS stand.
#[utoipa::path(
    get,
    path = "/api/v1/connectors",
    tag = "operations",
    responses((status = 200, description = "One entry per app", body = Vec<ConnectorStatus>), Unauthenticated, Internal)
)]
async fn connectors(State(s): State<AppState>, CurrentUser(_): CurrentUser) -> Json<Vec<ConnectorStatus>> {
    let status = s.sync_status.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    Json(vec![status])
}

/// Asks this server for a sync with AWS now, beside its schedule (at most one every 10 s); the connector's
/// `last_attempt_at` moves when it has run. Administrators only.
#[utoipa::path(
    post,
    path = "/api/v1/connectors/sync",
    tag = "operations",
    responses((status = 202, description = "A sync is asked for; the connector as it stands", body = ConnectorStatus), Unauthenticated, Forbidden, Internal)
)]
async fn sync_connector(
    State(s): State<AppState>,
    auth::Admin(caller): auth::Admin,
) -> (StatusCode, Json<ConnectorStatus>) {
    (StatusCode::ACCEPTED, Json(app::ask_for_sync(&s, &caller.user)))
}

/// An application state and a way to call the router, for tests.
#[cfg(test)]
pub(crate) mod testing {
    use axum::body::Body;
    use axum::http::Method;
    use tower::ServiceExt;

    use super::*;

    /// A state on `db` with the configuration lines `extra` (such as `admins: { users: [carol] }`).
    pub fn state(db: Db, extra: &str) -> AppState {
        let mut config =
            crate::config::Config::parse(&format!("database: /unused.db\naws: {{ sso_region: us-east-1 }}\n{extra}"))
                .unwrap();
        AppState {
            db,
            access: Arc::new(ArcSwap::from_pointee(std::mem::take(&mut config.access))),
            config: Arc::new(config),
            public_url: "http://127.0.0.1".into(),
            task_changes: broadcast::channel(16).0,
            wake: Arc::new(Notify::new()),
            sync_now: Arc::new(Notify::new()),
            sync_status: Arc::new(std::sync::Mutex::new(ConnectorStatus {
                app_id: "aws".into(),
                state: cone_api::CONNECTOR_SYNCING.into(),
                last_success_at: None,
                last_attempt_at: None,
                last_error: None,
            })),
            sign_in_failures: Arc::default(),
        }
    }

    /// A person with a password and a `cone login` session; returns the session's token.
    pub async fn person(s: &AppState, name: &str) -> String {
        s.db.set_password(name, "x").await.unwrap();
        let user = s.db.user_by_name(name).await.unwrap().unwrap();
        let token = format!("session-of-{name}");
        s.db.insert_access_token(&auth::secret_hash(&token), user.id, now(), now() + 3600).await.unwrap();
        token
    }

    /// Calls the router: the status and the JSON answer (`null` when the body is not JSON).
    pub async fn call(
        s: &AppState,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
        let resp = router(s.clone()).oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use axum::body::Body;
    use axum::http::Method;
    use tower::ServiceExt;

    use super::*;

    const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

    /// The path templates a router holds, read from its `Debug` text (axum lists each route's path there; it has
    /// no other way to enumerate them). Only `/api/v1` paths are kept.
    fn api_paths(router: &Router<AppState>) -> BTreeSet<String> {
        let text = format!("{router:?}");
        let paths: BTreeSet<String> =
            text.split('"').filter(|piece| piece.starts_with("/api/v1/")).map(str::to_string).collect();
        assert!(text.contains("\"/healthz\""), "the router's Debug text no longer lists paths:\n{text}");
        paths
    }

    /// The methods each documented path has operations for.
    fn documented() -> BTreeMap<String, BTreeSet<Method>> {
        let (_, doc) = api();
        let json = serde_json::to_value(&doc.paths).unwrap();
        let mut out = BTreeMap::new();
        for (path, item) in json.as_object().unwrap() {
            let methods = METHODS
                .iter()
                .filter(|m| item.get(m.as_str().to_lowercase()).is_some())
                .cloned()
                .collect::<BTreeSet<_>>();
            out.insert(path.clone(), methods);
        }
        out
    }

    async fn state() -> (AppState, crate::db::testing::Keep) {
        let (db, keep) = crate::db::testing::sqlite().await;
        (testing::state(db, ""), keep)
    }

    /// Every method the router answers on each `/api/v1` path (anything but 405), asked without credentials.
    async fn routed(routes: Router<AppState>, state: AppState) -> BTreeMap<String, BTreeSet<Method>> {
        let mut out = BTreeMap::new();
        let app = routes.clone().with_state(state);
        for path in api_paths(&routes) {
            let concrete: String =
                path.split('/').map(|seg| if seg.starts_with('{') { "1" } else { seg }).collect::<Vec<_>>().join("/");
            let mut methods = BTreeSet::new();
            for method in METHODS {
                let req = Request::builder().method(method.clone()).uri(&concrete).body(Body::empty()).unwrap();
                let status = app.clone().oneshot(req).await.unwrap().status();
                if status != StatusCode::METHOD_NOT_ALLOWED {
                    methods.insert(method);
                }
            }
            out.insert(path, methods);
        }
        out
    }

    /// What the router serves under `/api/v1` and what the document describes differ in nothing: a route added
    /// beside [`api`] (a plain `.route(...)`), or a method added to a documented path, fails here.
    #[tokio::test]
    async fn every_api_route_and_method_is_in_the_openapi_document() {
        let (state, _keep) = state().await;
        let served = routed(routes(), state.clone()).await;
        assert!(served.len() >= 15, "too few routes found: {served:?}");
        assert_eq!(served, documented());

        // The check can fail: an undocumented route, and an undocumented method on a documented path.
        let sneaky = routes().route("/api/v1/sneaky", get(|| async { "hidden" }));
        let served = routed(sneaky, state.clone()).await;
        assert_eq!(served.get("/api/v1/sneaky"), Some(&BTreeSet::from([Method::GET])));
        assert_ne!(served, documented());
        let extra = routes().route("/api/v1/me", axum::routing::delete(|| async { "gone" }));
        let served = routed(extra, state).await;
        assert_eq!(served.get("/api/v1/me"), Some(&BTreeSet::from([Method::GET, Method::DELETE])));
    }

    #[tokio::test]
    async fn the_document_is_served_and_describes_errors_and_the_bearer_scheme() {
        let (state, _keep) = state().await;
        let app = router(state);
        let req = Request::builder().uri("/api/v1/openapi.json").body(Body::empty()).unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
        assert_eq!(doc["paths"]["/api/v1/openapi.json"]["get"]["security"], serde_json::json!([{}]));
        let get_task = &doc["paths"]["/api/v1/tasks/{id}"]["get"];
        let params: Vec<&str> =
            get_task["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(params, ["id", "known_state", "wait_secs"]);
        assert_eq!(
            get_task["responses"]["404"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ApiError"
        );
        for schema in ["ApiError", "Task", "CreateTask", "Entitlement", "DriftPage"] {
            assert!(doc["components"]["schemas"].get(schema).is_some(), "no schema {schema}");
        }
        // Every reference resolves.
        fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
            match v {
                serde_json::Value::Object(fields) => {
                    out.extend(fields.get("$ref").and_then(|r| r.as_str()));
                    fields.values().for_each(|f| refs(f, out));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 20);
        for r in found {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
            assert!(doc["components"]["schemas"].get(name).is_some(), "{r} does not resolve");
        }
    }

    #[tokio::test]
    async fn malformed_input_is_a_4xx_api_error() {
        let (state, _keep) = state().await;
        let app = router(state.clone());
        let token = "t0k3n";
        state.db.set_password("alice", "x").await.unwrap();
        let alice = state.db.user_by_name("alice").await.unwrap().unwrap();
        state.db.insert_access_token(&auth::secret_hash(token), alice.id, now(), now() + 60).await.unwrap();
        let call = async |method: Method, uri: &str, body: Option<&str>| {
            let mut req = Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {token}"));
            if body.is_some() {
                req = req.header("content-type", "application/json");
            }
            let resp =
                app.clone().oneshot(req.body(Body::from(body.unwrap_or("").to_string())).unwrap()).await.unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            if status.is_success() {
                return (status.as_u16(), String::new());
            }
            let err: ApiError = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{uri}: not an ApiError ({e}): {}", String::from_utf8_lossy(&bytes)));
            (status.as_u16(), err.message)
        };
        let (status, message) = call(Method::GET, "/api/v1/tasks/x", None).await;
        assert_eq!(status, 400, "{message}");
        let (status, message) = call(Method::GET, "/api/v1/tasks?page_size=many", None).await;
        assert_eq!(status, 400);
        assert!(message.contains("page_size"), "{message}");
        let (status, message) = call(Method::GET, "/api/v1/tasks?scope=everyone", None).await;
        assert!(status == 400 && message.contains("scope"), "{message}");
        let (status, _) = call(Method::GET, "/api/v1/entitlements?kind=a%00b", None).await;
        assert_eq!(status, 400);
        let (status, message) = call(Method::POST, "/api/v1/tasks", Some(r#"{"app_id": 5}"#)).await;
        assert!(status == 400 && message.contains("app_id"), "{message}");
        let (status, message) =
            call(Method::POST, "/api/v1/tasks", Some(r#"{"app_id": "a\u0000", "entitlement_id": "e"}"#)).await;
        assert!(status == 400 && message.contains("NUL"), "{message}");
        let (status, _) = call(Method::POST, "/api/v1/tasks", Some("{")).await;
        assert_eq!(status, 400);
        let (status, _) = call(Method::POST, "/api/v1/drop", None).await;
        assert_eq!(status, 415);
        let (status, _) = call(Method::GET, "/api/v1/nothing-here", None).await;
        assert_eq!(status, 404);
        let (status, _) = call(Method::DELETE, "/api/v1/me", None).await;
        assert_eq!(status, 405);
        let (status, _) = call(Method::GET, "/api/v1/tasks?page_token=9223372036854775807", None).await;
        assert_eq!(status, 200);
        let (status, _) = call(Method::GET, "/api/v1/entitlements?page_token=9223372036854775807", None).await;
        assert_eq!(status, 200);
    }
}
