//! The web console: server-rendered pages for requesters (catalog, request form, their requests and grants),
//! approvers (inbox), reviewers (access reviews), both (a request's page with its history and comments) and administrators (everyone's grants, to
//! withdraw; review campaigns; the access document with its history, connectors, audit log, drift, access keys, API tokens), signed in with a local password or through an
//! OpenID Connect provider.
//!
//! Pages are built with `maud`, which escapes every value unless told otherwise, styled by one embedded
//! stylesheet, and use no script: they work without JavaScript under a Content-Security-Policy that allows nothing
//! else. A session is a cookie holding a random secret whose hash is stored (`session`); every POST carries a form
//! token derived from that secret. Handlers call the same services as the API, so the console can do nothing
//! the API would refuse, and answers in the same words.

mod admin;
mod approver;
mod apps;
pub mod device;
mod filters;
mod layout;
mod notifications;
mod oidc;
mod oversight;
mod policies;
mod requester;
mod reviews;
mod session;
#[cfg(test)]
mod tests;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};

use crate::state::AppState;
use layout::WebError;

/// What the pages may load: their own stylesheet and icon, and nothing else; forms post only to this server.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes, under `/console` (and `/`, which leads there).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(requester::catalog))
        .route("/console/console.css", get(|| asset("text/css; charset=utf-8", include_str!("console.css"))))
        .route("/console/favicon.svg", get(|| asset("image/svg+xml", include_str!("favicon.svg"))))
        .route("/console/login", get(session::login_page).post(session::login))
        .route("/console/login/oidc", get(oidc::start))
        .route(oidc::CALLBACK, get(oidc::callback))
        .route("/console/logout", post(session::logout))
        .route("/console/device", get(device::device_page).post(device::decide))
        .route("/console/request", get(requester::request_page).post(requester::submit))
        .route("/console/requests", get(requester::my_requests))
        .route("/console/release", post(requester::release))
        .route("/console/tasks/{id}/withdraw", post(requester::withdraw))
        .route("/console/tasks/{id}/escalate", post(requester::escalate))
        .route("/console/inbox", get(approver::inbox))
        .route("/console/tasks/{id}", get(approver::task_page))
        .route("/console/tasks/{id}/history", get(approver::history_page))
        .route("/console/tasks/{id}/decide", post(approver::decide))
        .route("/console/tasks/{id}/comment", post(approver::comment))
        .route("/console/grants", get(oversight::grants))
        .route("/console/tasks/{id}/withdraw-grant", post(oversight::withdraw))
        .route("/console/sign-out", post(oversight::sign_out))
        .route("/console/api-tokens", get(oversight::api_tokens))
        .route("/console/notifications", get(notifications::notifications_page).post(notifications::save))
        .route("/console/notifications/test", post(notifications::test))
        .route("/console/reviews", get(reviews::inbox))
        .route("/console/reviews/decide", post(reviews::decide))
        .route("/console/reviews/campaigns", get(reviews::campaigns).post(reviews::create))
        .route("/console/reviews/campaigns/{id}", get(reviews::campaign))
        .route("/console/reviews/campaigns/{id}/close", post(reviews::close))
        .route("/console/reviews/campaigns/{id}/report", get(reviews::report))
        .route("/console/reviews/templates/{name}", post(reviews::open_template))
        .route("/console/audit", get(admin::audit))
        .route("/console/audit/export", get(admin::audit_export))
        .route("/console/drift", get(admin::drift))
        .route("/console/connectors", get(admin::connectors))
        .route("/console/connectors/sync", post(admin::sync_now))
        .route("/console/connectors/credentials", post(admin::rotate_credentials))
        .route("/console/connectors/credentials/revoke", post(admin::revoke_credentials))
        .route("/console/access-keys", get(admin::access_keys))
        .route("/console/created-users", get(admin::created_users))
        .route("/console/apps", get(apps::apps).post(apps::change))
        .route("/console/policies", get(policies::policies).post(policies::change))
        .route("/console/policies/history", get(policies::history))
        .route("/console/policies/versions/{id}", get(policies::version))
        .route("/console/{*rest}", any(|| async { no_such_page() }))
        .layer(axum::middleware::map_response(protect))
}

/// Headers every console answer carries: the CSP, no framing, no sniffing, no caching of pages that show people's
/// access (the stylesheet and icon set their own caching).
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A file of the console, built into the binary so that a deployment has nothing else to serve.
async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=3600")], body)
}

/// A console address that leads nowhere (the API's own answer for unknown paths is JSON).
fn no_such_page() -> WebError {
    WebError::new(
        StatusCode::NOT_FOUND,
        "No such page",
        "There is no console page at this address; start from the catalog.",
    )
}
