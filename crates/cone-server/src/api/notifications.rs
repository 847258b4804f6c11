//! Notifications (see `services::notifications`): each person's preferences, the administrators' list of what was
//! sent, and test messages.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cone_api::{NotificationList, NotificationSettings, Preferences, TestNotification, TestNotificationQueued};

use super::doc::{BadRequest, Forbidden, Internal, NotFound, Unauthenticated, UnsupportedMediaType};
use super::extract::{ApiJson, ApiQuery, CurrentUser};
use crate::error::Error;
use crate::services::auth::Caller;
use crate::services::{Page, notifications};
use crate::state::AppState;

/// The caller's notification preferences, and the channels that can reach them.
#[utoipa::path(
    get,
    path = "/api/v1/notifications/preferences",
    tag = "notifications",
    responses((status = 200, body = NotificationSettings), Unauthenticated, Internal)
)]
pub async fn preferences(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
) -> Result<Json<NotificationSettings>, Error> {
    Ok(Json(notifications::settings(&s, &u).await?))
}

/// Replaces the caller's notification preferences: the channels to use (`null` for all that reach them), the kinds
/// to mute, and whether requests to approve come as one message an hour.
#[utoipa::path(
    put,
    path = "/api/v1/notifications/preferences",
    tag = "notifications",
    request_body = Preferences,
    responses((status = 200, body = NotificationSettings), BadRequest, Unauthenticated, UnsupportedMediaType, Internal)
)]
pub async fn set_preferences(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiJson(p): ApiJson<Preferences>,
) -> Result<Json<NotificationSettings>, Error> {
    Ok(Json(notifications::set_preferences(&s, &u, p).await?))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only notifications in this state: `pending`, `sent` or `failed`.
    #[serde(default)]
    state: Option<String>,
    /// `next_page_token` of the previous page; absent for the first.
    #[serde(default)]
    page_token: Option<String>,
    /// Notifications per page: 100 when absent, at least 1 and at most 1000.
    #[serde(default)]
    page_size: Option<i64>,
}

/// Every notification, newest first, with its state and last error. Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/notifications",
    tag = "notifications",
    params(ListQuery),
    responses((status = 200, body = NotificationList), BadRequest, Unauthenticated, Forbidden, Internal)
)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<NotificationList>, Error> {
    let page = Page::new(q.page_token.as_deref(), q.page_size, 100, 1000)?;
    Ok(Json(notifications::list(&s, &caller, q.state.as_deref(), page).await?))
}

/// Sends a test message to a person (the caller when no user is named; others for administrators only) on every
/// channel that reaches them.
#[utoipa::path(
    post,
    path = "/api/v1/notifications/test",
    tag = "notifications",
    request_body = TestNotification,
    responses(
        (status = 202, description = "Queued; `GET /api/v1/notifications` shows how it went", body = TestNotificationQueued),
        BadRequest, Unauthenticated, Forbidden, NotFound, UnsupportedMediaType, Internal
    )
)]
pub async fn test(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<TestNotification>,
) -> Result<(StatusCode, Json<TestNotificationQueued>), Error> {
    Ok((StatusCode::ACCEPTED, Json(notifications::test(&s, &caller, req.user.as_deref()).await?)))
}
