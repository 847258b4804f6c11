//! Signing in and out: `cone login`'s device authorization (RFC 8628: `/oauth/device/code`, `/oauth/token`),
//! who the caller is, and signing out.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use cone_api::{DeviceAuthorization, Me, OAuthError, SignedOut};
use serde::Deserialize;

use super::doc::{Internal, Unauthenticated};
use super::extract::{CurrentUser, bearer};
use crate::error::Error;
use crate::services::auth::{self, Caller};
use crate::state::AppState;
use crate::store::DevicePoll;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[derive(Deserialize)]
pub struct DeviceCodeRequest {
    pub client_id: String,
}

pub async fn device_authorization(
    State(s): State<AppState>,
    Form(req): Form<DeviceCodeRequest>,
) -> Result<Json<DeviceAuthorization>, Error> {
    Ok(Json(auth::device_authorization(&s, &req.client_id).await?))
}

#[derive(Deserialize)]
pub struct TokenRequest {
    pub grant_type: String,
    #[serde(default)]
    pub device_code: String,
    #[serde(default)]
    pub client_id: String,
}

/// The token endpoint answers in OAuth's own error format (RFC 6749 §5.2), which the device flow's clients read.
pub async fn token(State(s): State<AppState>, Form(req): Form<TokenRequest>) -> Response {
    let oauth_error = |error: &str, description: &str| {
        (StatusCode::BAD_REQUEST, Json(OAuthError { error: error.into(), error_description: description.into() }))
            .into_response()
    };
    if req.grant_type != DEVICE_GRANT {
        return oauth_error("unsupported_grant_type", "Only the device_code grant is supported.");
    }
    if req.client_id != cone_api::CLI_CLIENT_ID {
        return oauth_error("invalid_client", "Unknown client_id.");
    }
    match auth::redeem_device_code(&s, &req.device_code).await {
        Ok(Ok(token)) => Json(token).into_response(),
        Ok(Err(DevicePoll::Unknown | DevicePoll::Approved(_))) => {
            oauth_error("invalid_grant", "Unknown or already used device code; run `cone login` again.")
        }
        Ok(Err(DevicePoll::Pending)) => {
            oauth_error("authorization_pending", "Waiting for the user to approve the sign-in.")
        }
        Ok(Err(DevicePoll::SlowDown)) => oauth_error("slow_down", "Polling too fast."),
        Ok(Err(DevicePoll::Expired)) => {
            oauth_error("expired_token", "The sign-in code expired; run `cone login` again.")
        }
        Ok(Err(DevicePoll::Denied)) => oauth_error("access_denied", "The sign-in was refused."),
        Err(e) => Error::from(e).into_response(),
    }
}

/// The signed-in user.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "session",
    responses((status = 200, description = "The caller", body = Me), Unauthenticated, Internal)
)]
pub async fn me(State(s): State<AppState>, CurrentUser(u): CurrentUser) -> Result<Json<Me>, Error> {
    Ok(Json(auth::me(&s, u).await?))
}

/// Signs out: the token of the request stops working (an API token is revoked).
#[utoipa::path(
    post,
    path = "/api/v1/logout",
    tag = "session",
    responses((status = 200, description = "Signed out", body = SignedOut), Unauthenticated, Internal)
)]
pub async fn logout(
    State(s): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
) -> Result<Json<SignedOut>, Error> {
    if let Some(token) = bearer(&headers) {
        auth::sign_out(&s, &caller, token).await?;
    }
    Ok(Json(SignedOut { signed_out: true }))
}
