//! The REST API under `/api/v1`: each handler translates HTTP to a call of a service and back. The routes and the
//! OpenAPI document are built from one list ([`routes`]), so that a route and its description cannot part.

mod config;
pub mod connector;
pub mod doc;
mod entitlements;
pub mod extract;
pub mod metrics;
mod notifications;
mod operations;
mod reviews;
pub mod session;
pub mod slack;
mod tasks;
#[cfg(test)]
mod tests;
mod tokens;

use std::sync::OnceLock;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Error;
use crate::state::AppState;

/// The `/api/v1` routes and the OpenAPI document describing them, built from the same list.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .routes(routes!(openapi_json))
        .routes(routes!(session::me))
        .routes(routes!(session::logout))
        .routes(routes!(entitlements::entitlements))
        .routes(routes!(entitlements::entitlement))
        .routes(routes!(entitlements::holders))
        .routes(routes!(tasks::create_task, tasks::search_tasks))
        .routes(routes!(tasks::get_task))
        .routes(routes!(tasks::task_events))
        .routes(routes!(tasks::approve_task))
        .routes(routes!(tasks::deny_task))
        .routes(routes!(tasks::comment_task))
        .routes(routes!(tasks::cancel_task))
        .routes(routes!(tasks::escalate_task))
        .routes(routes!(tasks::withdraw_grant))
        .routes(routes!(tasks::drop_access))
        .routes(routes!(operations::drift))
        .routes(routes!(operations::audit))
        .routes(routes!(operations::connectors))
        .routes(routes!(operations::sync_connector))
        .routes(routes!(connector::rotate_credentials, connector::revoke_credentials))
        .routes(routes!(connector::next))
        .routes(routes!(connector::lease))
        .routes(routes!(connector::part))
        .routes(routes!(connector::journal))
        .routes(routes!(connector::answer))
        .routes(routes!(operations::access_keys))
        .routes(routes!(operations::iam_users))
        .routes(routes!(operations::created_iam_users))
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(tokens::create_service_token))
        .routes(routes!(tokens::sign_out_user))
        .routes(routes!(notifications::preferences, notifications::set_preferences))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::test))
        .routes(routes!(reviews::create_campaign, reviews::campaigns))
        .routes(routes!(reviews::campaign))
        .routes(routes!(reviews::templates))
        .routes(routes!(reviews::create_from_template))
        .routes(routes!(reviews::close_campaign))
        .routes(routes!(reviews::report))
        .routes(routes!(reviews::items))
        .routes(routes!(reviews::item))
        .routes(routes!(reviews::decide))
        .routes(routes!(reviews::reassign))
        .routes(routes!(config::current, config::apply))
        .routes(routes!(config::check_document))
        .routes(routes!(config::versions))
        .routes(routes!(config::version))
        .split_for_parts()
}

pub async fn not_found() -> Error {
    Error::NotFound("There is no such endpoint; /api/v1/openapi.json lists the API's endpoints.".into())
}

pub async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed("This endpoint does not take that method; the `Allow` header lists those it takes.".into())
}

/// The OpenAPI document of this API (this one), in JSON. No sign-in needed.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json"))
)]
async fn openapi_json() -> Result<Response, Error> {
    static DOCUMENT: OnceLock<Result<String, String>> = OnceLock::new();
    match DOCUMENT.get_or_init(|| routes().1.to_json().map_err(|e| e.to_string())) {
        Ok(text) => Ok(([(header::CONTENT_TYPE, "application/json")], text.clone()).into_response()),
        Err(e) => Err(anyhow::anyhow!("cannot serialise the OpenAPI document: {e}").into()),
    }
}
