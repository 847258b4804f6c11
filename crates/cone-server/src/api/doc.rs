//! The frame of the OpenAPI document and the error answers it describes; the operations come from the handlers'
//! `#[utoipa::path]` attributes, collected where the routes are registered (`api::routes`).

use cone_api::ApiError;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoResponses, OpenApi};

/// The frame of the OpenAPI document; its operations come from the handlers' `#[utoipa::path]` attributes,
/// collected where the routes are registered (`api::routes`), so that a route and its description cannot part.
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
        (name = "notifications", description = "What Cone tells people by email, and their preferences."),
        (name = "reviews", description = "User access reviews: campaigns, reviewers' decisions, the report."),
        (name = "configuration", description = "The access document (access profiles, entitlement management, \
policies) and its versions."),
        (name = "connector", description = "What a connector in service mode (`cone-aws serve`) calls: the next \
call to run, its lease, a sync's parts and the answer. Between cone-aws and cone-server of one version; the bodies \
are cone-aws's (`cone_aws::remote`)."),
        (name = "meta", description = "This document."),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description =
            Some("A token from `cone login` (the device sign-in at /oauth/device/code and /oauth/token).".to_string());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description = Some(
            "The connector's credentials in service mode: BATON_CLIENT_ID and BATON_CLIENT_SECRET, issued at \
             /api/v1/connectors/credentials."
                .to_string(),
        );
        components.add_security_scheme("connector", SecurityScheme::Http(basic));
    }
}

/// The error answers of the document; each body is an [`ApiError`]. The types only describe (the handlers answer
/// with [`Error`](crate::error::Error)), so their field is never read.
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

    /// The request conflicts with the current state (`pending_request_exists` with `task_id`, `wrong_state` when
    /// the task is decided or changed meanwhile, `extension_refused`, `held_through_group`, `stale_version`,
    /// `name_taken`).
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
pub use responses::{BadRequest, Conflict, Forbidden, Internal, NotFound, Unauthenticated, UnsupportedMediaType};
