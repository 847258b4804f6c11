//! The access document (access profiles, entitlement management, policies) and its versions, for
//! administrators: `cone policy` speaks to these.

use axum::Json;
use axum::extract::State;
use cone_api::{AppliedConfig, ApplyConfig, ConfigSummary, ConfigVersion, ConfigVersionPage};
use serde::Deserialize;
use utoipa::IntoParams;

use super::doc::{BadRequest, Conflict, Forbidden, Internal, NotFound, Unauthenticated, UnsupportedMediaType};
use super::extract::{Admin, ApiJson, ApiPath, ApiQuery};
use crate::error::Error;
use crate::services::{Page, access};
use crate::state::AppState;

/// The access document in force. Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/config",
    tag = "configuration",
    responses((status = 200, description = "The version in force", body = ConfigVersion), Unauthenticated, Forbidden, Internal)
)]
pub async fn current(State(s): State<AppState>, _: Admin) -> Result<Json<ConfigVersion>, Error> {
    access::in_force(&s).await.map(Json)
}

/// Applies a new access document, in force on every server at once. It is checked first; a document that does
/// not check changes nothing. Administrators only.
#[utoipa::path(
    put,
    path = "/api/v1/config",
    tag = "configuration",
    request_body = ApplyConfig,
    responses(
        (status = 200, description = "The version in force after the change", body = AppliedConfig),
        BadRequest, Unauthenticated, Forbidden, Conflict, UnsupportedMediaType, Internal
    )
)]
pub async fn apply(
    State(s): State<AppState>,
    Admin(caller): Admin,
    ApiJson(req): ApiJson<ApplyConfig>,
) -> Result<Json<AppliedConfig>, Error> {
    access::apply(&s, caller.user.id, &req).await.map(Json)
}

/// Checks an access document without applying it: what it defines, or where it is wrong. Administrators only.
#[utoipa::path(
    post,
    path = "/api/v1/config/check",
    tag = "configuration",
    request_body = ApplyConfig,
    responses(
        (status = 200, description = "The document checks; what it defines", body = ConfigSummary),
        BadRequest, Unauthenticated, Forbidden, UnsupportedMediaType, Internal
    )
)]
pub async fn check_document(
    State(s): State<AppState>,
    _: Admin,
    ApiJson(req): ApiJson<ApplyConfig>,
) -> Result<Json<ConfigSummary>, Error> {
    access::summarize(&s, &req.document).map(Json)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionsQuery {
    /// `next_page_token` of the previous page; absent for the first.
    #[serde(default)]
    page_token: Option<String>,
    /// Versions per page: 20 when absent, at least 1 and at most 100.
    #[serde(default)]
    page_size: Option<i64>,
}

/// Versions of the access document, newest first, with who applied each and when. Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/config/versions",
    tag = "configuration",
    params(VersionsQuery),
    responses((status = 200, description = "One page", body = ConfigVersionPage), BadRequest, Unauthenticated, Forbidden, Internal)
)]
pub async fn versions(
    State(s): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<VersionsQuery>,
) -> Result<Json<ConfigVersionPage>, Error> {
    let page = Page::new(q.page_token.as_deref(), q.page_size, 20, 100)?;
    Ok(Json(access::versions(&s, page).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct Version {
    /// The version, from `GET /api/v1/config/versions`.
    version: i64,
}

/// One version of the access document. Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/config/versions/{version}",
    tag = "configuration",
    params(Version),
    responses((status = 200, description = "The version", body = ConfigVersion), BadRequest, Unauthenticated, Forbidden, NotFound, Internal)
)]
pub async fn version(
    State(s): State<AppState>,
    _: Admin,
    ApiPath(Version { version }): ApiPath<Version>,
) -> Result<Json<ConfigVersion>, Error> {
    access::version(&s, version).await.map(Json)
}
