//! User access reviews (see `services::reviews`): campaigns for administrators, items and decisions for reviewers,
//! and the report.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cone_api::{
    NewReviewCampaign, ReviewCampaign, ReviewCampaignList, ReviewDecide, ReviewDecided, ReviewItem, ReviewItemPage,
    ReviewItemState, ReviewReassign, ReviewTemplateList,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::doc::{BadRequest, Conflict, Forbidden, Internal, NotFound, Unauthenticated, UnsupportedMediaType};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::error::Error;
use crate::services::Page;
use crate::services::auth::Caller;
use crate::services::reviews::{self, Format, ItemQuery};
use crate::state::AppState;

/// Creates a campaign: every access item in its scope, as the last sync found it (direct account assignments,
/// Identity Center group memberships, active grants), each given to its reviewers. Administrators only.
#[utoipa::path(
    post,
    path = "/api/v1/reviews/campaigns",
    tag = "reviews",
    request_body = NewReviewCampaign,
    responses(
        (status = 201, description = "The new campaign", body = ReviewCampaign),
        BadRequest, Unauthenticated, Forbidden, UnsupportedMediaType, Internal
    )
)]
pub async fn create_campaign(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewReviewCampaign>,
) -> Result<(StatusCode, Json<ReviewCampaign>), Error> {
    Ok((StatusCode::CREATED, Json(reviews::create(&s, &caller, req).await?)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct Template {
    /// The template's name in the access document's `access_reviews`.
    name: String,
}

/// The access document's review templates, with when each last opened a campaign and opens the next.
/// Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/reviews/templates",
    tag = "reviews",
    responses((status = 200, body = ReviewTemplateList), Unauthenticated, Forbidden, Internal)
)]
pub async fn templates(State(s): State<AppState>, caller: Caller) -> Result<Json<ReviewTemplateList>, Error> {
    Ok(Json(reviews::templates(&s, &caller).await?))
}

/// Opens a campaign from an access review template of the access document now: its scope and reviewers, due
/// `due_in` from now, named after it and the day. Administrators only.
#[utoipa::path(
    post,
    path = "/api/v1/reviews/templates/{name}/campaigns",
    tag = "reviews",
    params(Template),
    responses(
        (status = 201, description = "The new campaign", body = ReviewCampaign),
        BadRequest, Unauthenticated, Forbidden, NotFound, Internal
    )
)]
pub async fn create_from_template(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(Template { name }): ApiPath<Template>,
) -> Result<(StatusCode, Json<ReviewCampaign>), Error> {
    Ok((StatusCode::CREATED, Json(reviews::create_from_template(&s, &caller, &name).await?)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// `next_page_token` of the previous page; absent for the first.
    #[serde(default)]
    page_token: Option<String>,
    /// Entries per page: 100 when absent, at least 1 and at most 1000.
    #[serde(default)]
    page_size: Option<i64>,
}

/// Campaigns, newest first, with how far each is. Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/reviews/campaigns",
    tag = "reviews",
    params(PageQuery),
    responses((status = 200, body = ReviewCampaignList), BadRequest, Unauthenticated, Forbidden, Internal)
)]
pub async fn campaigns(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<ReviewCampaignList>, Error> {
    let page = Page::new(q.page_token.as_deref(), q.page_size, 100, 1000)?;
    Ok(Json(reviews::campaigns(&s, &caller, page).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct Id {
    id: i64,
}

/// A campaign with each reviewer's progress. Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/reviews/campaigns/{id}",
    tag = "reviews",
    params(Id),
    responses((status = 200, body = ReviewCampaign), BadRequest, Unauthenticated, Forbidden, NotFound, Internal)
)]
pub async fn campaign(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(Id { id }): ApiPath<Id>,
) -> Result<Json<ReviewCampaign>, Error> {
    Ok(Json(reviews::campaign(&s, &caller, id).await?))
}

/// Closes a campaign: its decisions become final. Administrators only.
#[utoipa::path(
    post,
    path = "/api/v1/reviews/campaigns/{id}/close",
    tag = "reviews",
    params(Id),
    responses((status = 200, body = ReviewCampaign), BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, Internal)
)]
pub async fn close_campaign(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(Id { id }): ApiPath<Id>,
) -> Result<Json<ReviewCampaign>, Error> {
    Ok(Json(reviews::close(&s, &caller, id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `csv` (the default) or `jsonl` (JSON Lines, one review item per line).
    #[serde(default)]
    format: Option<String>,
}

/// The campaign's evidence: every item, its decision, reviewer, time and comment, the removal's outcome with AWS's
/// request id, and the hashes of the audit entries (`cone-server export-audit`). Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/reviews/campaigns/{id}/report",
    tag = "reviews",
    params(Id, ReportQuery),
    responses(
        (status = 200, description = "The report: CSV, or JSON Lines with `format=jsonl`", body = String, content_type = "text/csv"),
        BadRequest, Unauthenticated, Forbidden, NotFound, Internal
    )
)]
pub async fn report(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(Id { id }): ApiPath<Id>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, Error> {
    let format = Format::parse(q.format.as_deref())?;
    let body = reviews::report(&s, &caller, id, format).await?;
    let headers = [
        (header::CONTENT_TYPE, format.content_type().to_string()),
        (header::CONTENT_DISPOSITION, format.attachment(id)),
    ];
    Ok((headers, body).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemsQuery {
    /// Only this campaign's items.
    #[serde(default)]
    campaign: Option<i64>,
    /// Only items about this person (a user name).
    #[serde(default)]
    user: Option<String>,
    /// Only items in this state.
    #[serde(default)]
    #[param(inline)]
    state: Option<ReviewItemState>,
    /// Words to find in the person's name, the account, the permission set or the group.
    #[serde(default)]
    q: Option<String>,
    /// `person` (the default) or `entitlement`: how items are ordered, so that a page holds one's items together.
    #[serde(default)]
    by: Option<String>,
    /// Every item, not only the caller's to decide (administrators only).
    #[serde(default)]
    all: bool,
    #[serde(default)]
    page_token: Option<String>,
    /// Items per page: 100 when absent, at least 1 and at most 1000.
    #[serde(default)]
    page_size: Option<i64>,
}

/// The items the caller may decide, or with `all` every item (administrators only).
#[utoipa::path(
    get,
    path = "/api/v1/reviews/items",
    tag = "reviews",
    params(ItemsQuery),
    responses((status = 200, body = ReviewItemPage), BadRequest, Unauthenticated, Forbidden, Internal)
)]
pub async fn items(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ItemsQuery>,
) -> Result<Json<ReviewItemPage>, Error> {
    let by_entitlement = match q.by.as_deref() {
        None | Some("person") => false,
        Some("entitlement") => true,
        Some(other) => return Err(Error::invalid(format!("Unknown order \"{other}\"; use person or entitlement."))),
    };
    let page = Page::new(q.page_token.as_deref(), q.page_size, 100, 1000)?;
    let query = ItemQuery { campaign: q.campaign, user: q.user, state: q.state, q: q.q, by_entitlement, all: q.all };
    Ok(Json(reviews::items(&s, &caller, &query, page).await?))
}

/// One item, for its reviewers, its person and administrators.
#[utoipa::path(
    get,
    path = "/api/v1/reviews/items/{id}",
    tag = "reviews",
    params(Id),
    responses((status = 200, body = ReviewItem), BadRequest, Unauthenticated, Forbidden, NotFound, Internal)
)]
pub async fn item(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(Id { id }): ApiPath<Id>,
) -> Result<Json<ReviewItem>, Error> {
    Ok(Json(reviews::item(&s, &caller, id).await?))
}

/// Certifies or revokes items the caller reviews (a revocation needs a comment and starts the removal at once).
/// Items that cannot take the decision are listed with the reason; the others are decided.
#[utoipa::path(
    post,
    path = "/api/v1/reviews/decisions",
    tag = "reviews",
    request_body = ReviewDecide,
    responses((status = 200, body = ReviewDecided), BadRequest, Unauthenticated, UnsupportedMediaType, Internal)
)]
pub async fn decide(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ReviewDecide>,
) -> Result<Json<ReviewDecided>, Error> {
    Ok(Json(reviews::decide(&s, &caller, &req).await?))
}

/// Gives an undecided item to another reviewer. Administrators only.
#[utoipa::path(
    post,
    path = "/api/v1/reviews/items/{id}/reassign",
    tag = "reviews",
    params(Id),
    request_body = ReviewReassign,
    responses(
        (status = 200, body = ReviewItem),
        BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, UnsupportedMediaType, Internal
    )
)]
pub async fn reassign(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(Id { id }): ApiPath<Id>,
    ApiJson(req): ApiJson<ReviewReassign>,
) -> Result<Json<ReviewItem>, Error> {
    Ok(Json(reviews::reassign(&s, &caller, id, &req.reviewer).await?))
}
