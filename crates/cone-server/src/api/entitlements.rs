//! `/api/v1/entitlements`, `/api/v1/entitlement` and its holders.

use axum::Json;
use axum::extract::State;
use cone_api::EntitlementPage;
use serde::Deserialize;
use utoipa::IntoParams;

use super::doc::{BadRequest, Forbidden, Internal, NotFound, Unauthenticated};
use super::extract::{Admin, ApiQuery, CurrentUser};
use crate::error::Error;
use crate::services::{Page, entitlements};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Words that must all appear, ignoring case, in an entitlement's alias, name, account name or id, or role.
    #[serde(default)]
    q: Option<String>,
    /// Only entitlements of this account (its id or name).
    #[serde(default)]
    account: Option<String>,
    /// Only entitlements of this kind (`aws_permission_set`, `aws_idc_group_membership`,
    /// `aws_iam_group_membership`).
    #[serde(default)]
    kind: Option<String>,
    /// Also count the matches by account and by kind (`facets`).
    #[serde(default)]
    facets: Option<bool>,
    /// `next_page_token` of the previous page; absent for the first.
    #[serde(default)]
    page_token: Option<String>,
    /// Entitlements per page: 100 when absent, at least 1 and at most 1000.
    #[serde(default)]
    page_size: Option<usize>,
}

/// The entitlements the caller may request, and those they hold; searched and filtered when asked.
#[utoipa::path(
    get,
    path = "/api/v1/entitlements",
    tag = "entitlements",
    params(PageQuery),
    responses((status = 200, description = "One page", body = EntitlementPage), BadRequest, Unauthenticated, Internal)
)]
pub async fn entitlements(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<EntitlementPage>, Error> {
    let size = q.page_size.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let page = Page::new(q.page_token.as_deref(), size, 100, 1000)?;
    let search = entitlements::Search { words: q.q.as_deref(), account: q.account.as_deref(), kind: q.kind.as_deref() };
    Ok(Json(entitlements::page(&s, &u, search, page, q.facets.unwrap_or(false)).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntitlementQuery {
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
pub async fn entitlement(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiQuery(q): ApiQuery<EntitlementQuery>,
) -> Result<Json<cone_api::Entitlement>, Error> {
    Ok(Json(entitlements::entitlement_for(&s, &u, &q.app_id, &q.entitlement_id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HoldersQuery {
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
pub async fn holders(
    State(s): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<HoldersQuery>,
) -> Result<Json<cone_api::HolderPage>, Error> {
    let page = Page::new(q.page_token.as_deref(), q.page_size, 100, 1000)?;
    Ok(Json(entitlements::holders(&s, &q.app_id, &q.entitlement_id, page).await?))
}
