//! The `/_emu/` control endpoints: how tests and the sandbox steer the emulator. They are no part of any AWS
//! API, answer plain JSON, and report failures as `{"error": "..."}`. The crate documentation lists them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{TimeDelta, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::errors::ControlError;
use crate::http::{Api, App, AppState, SignInMode, json_body};
use crate::oidc::{DeviceControlError, Identity, Revocation, Settings};

/// Longest role session STS grants (12 h).
pub const MAX_CREDENTIAL_TTL_SECS: i32 = 43_200;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/device/approve", post(approve_device))
        .route("/device/deny", post(deny_device))
        .route("/device/expire", post(expire_device))
        .route("/authorize/mode", get(sign_in_mode).post(set_sign_in_mode))
        .route("/tokens/expire-all", post(expire_all_tokens))
        .route("/refresh-tokens/revoke", post(revoke_refresh_tokens))
        .route("/settings", get(settings).post(update_settings))
        .route("/throttle", get(throttles).post(throttle))
        .route("/requests", get(requests).delete(clear_requests))
}

fn control_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ControlError> {
    json_body(body, |message| ControlError::new(StatusCode::BAD_REQUEST, message))
}

fn moto_failed(err: anyhow::Error) -> ControlError {
    ControlError::new(StatusCode::BAD_GATEWAY, format!("could not look the user up in moto: {err:#}"))
}

/// The identity-store user named `user_name`, or a 404 telling how to create one.
async fn known_user(app: &AppState, user_name: &str) -> Result<Identity, ControlError> {
    app.find_user(user_name).await.map_err(moto_failed)?.ok_or_else(|| {
        ControlError::new(
            StatusCode::NOT_FOUND,
            format!(
                "the identity store has no user named {user_name:?}; create it with identitystore CreateUser first"
            ),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveRequest {
    user_code: String,
    user_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserCodeRequest {
    user_code: String,
}

fn device_control_error(user_code: &str, err: DeviceControlError) -> ControlError {
    match err {
        DeviceControlError::UnknownUserCode => ControlError::new(
            StatusCode::NOT_FOUND,
            format!("no device authorization has user code {user_code:?}; start one with POST /device_authorization"),
        ),
        DeviceControlError::NotPending(state) => ControlError::new(
            StatusCode::CONFLICT,
            format!("the device authorization with user code {user_code:?} is {state}; start a new one"),
        ),
    }
}

async fn approve_device(State(app): App, body: Bytes) -> Result<Json<Value>, ControlError> {
    let request: ApproveRequest = control_body(&body)?;
    let identity = known_user(&app, &request.user_name).await?;
    let user_id = identity.user_id.clone();
    app.oidc()
        .approve(&request.user_code, identity, Utc::now())
        .map_err(|err| device_control_error(&request.user_code, err))?;
    tracing::info!(user_code = %request.user_code, user = %request.user_name, "device authorization approved");
    Ok(Json(json!({ "user_code": request.user_code, "user_name": request.user_name, "user_id": user_id })))
}

async fn deny_device(State(app): App, body: Bytes) -> Result<Json<Value>, ControlError> {
    let request: UserCodeRequest = control_body(&body)?;
    app.oidc().deny(&request.user_code, Utc::now()).map_err(|err| device_control_error(&request.user_code, err))?;
    tracing::info!(user_code = %request.user_code, "device authorization denied");
    Ok(Json(json!({ "user_code": request.user_code })))
}

async fn expire_device(State(app): App, body: Bytes) -> Result<Json<Value>, ControlError> {
    let request: UserCodeRequest = control_body(&body)?;
    app.oidc()
        .expire_device(&request.user_code, Utc::now())
        .map_err(|err| device_control_error(&request.user_code, err))?;
    tracing::info!(user_code = %request.user_code, "device authorization expired on request");
    Ok(Json(json!({ "user_code": request.user_code })))
}

async fn sign_in_mode(State(app): App) -> Json<Value> {
    Json(json!(app.controls().sign_in))
}

async fn set_sign_in_mode(State(app): App, body: Bytes) -> Result<Json<Value>, ControlError> {
    let mode: SignInMode = control_body(&body).map_err(|err| {
        ControlError::new(
            err.status,
            format!(
                "{}; send {{\"mode\": \"interactive\"}}, {{\"mode\": \"approve\", \"user_name\": \"...\"}} or \
                 {{\"mode\": \"deny\"}}",
                err.message
            ),
        )
    })?;
    if let SignInMode::Approve { user_name } = &mode {
        known_user(&app, user_name).await?;
    }
    tracing::info!(?mode, "sign-in mode changed");
    app.controls().sign_in = mode.clone();
    Ok(Json(json!(mode)))
}

async fn expire_all_tokens(State(app): App) -> Json<Value> {
    let expired = app.oidc().expire_all_access_tokens(Utc::now());
    tracing::info!(expired, "access tokens expired on request");
    Json(json!({ "expired": expired }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    user_name: Option<String>,
    refresh_token: Option<String>,
    #[serde(default)]
    all: bool,
}

async fn revoke_refresh_tokens(State(app): App, body: Bytes) -> Result<Json<Value>, ControlError> {
    let request: RevokeRequest = control_body(&body)?;
    let which = match (&request.user_name, &request.refresh_token, request.all) {
        (Some(user_name), None, false) => Revocation::User(user_name),
        (None, Some(token), false) => Revocation::Token(token),
        (None, None, true) => Revocation::All,
        _ => {
            return Err(ControlError::new(
                StatusCode::BAD_REQUEST,
                "name exactly one of \"user_name\", \"refresh_token\" or \"all\": true",
            ));
        }
    };
    let revoked = app.oidc().revoke_refresh_tokens(which);
    tracing::info!(revoked, ?which, "refresh tokens revoked on request");
    Ok(Json(json!({ "revoked": revoked })))
}

fn settings_body(app: &AppState) -> Json<Value> {
    let oidc = app.oidc().settings();
    Json(json!({
        "token_ttl_secs": oidc.token_ttl.num_seconds(),
        "credential_ttl_secs": app.controls().credential_ttl_secs,
        "issue_refresh_tokens": oidc.issue_refresh_tokens,
    }))
}

async fn settings(State(app): App) -> Json<Value> {
    settings_body(&app)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsUpdate {
    token_ttl_secs: Option<u32>,
    credential_ttl_secs: Option<i32>,
    issue_refresh_tokens: Option<bool>,
}

async fn update_settings(State(app): App, body: Bytes) -> Result<Json<Value>, ControlError> {
    let update: SettingsUpdate = control_body(&body)?;
    if update.token_ttl_secs == Some(0) {
        return Err(ControlError::new(StatusCode::BAD_REQUEST, "token_ttl_secs must be at least 1"));
    }
    if let Some(ttl) = update.credential_ttl_secs.filter(|ttl| !(1..=MAX_CREDENTIAL_TTL_SECS).contains(ttl)) {
        return Err(ControlError::new(
            StatusCode::BAD_REQUEST,
            format!("credential_ttl_secs must be from 1 to {MAX_CREDENTIAL_TTL_SECS}, got {ttl}"),
        ));
    }
    {
        let mut oidc = app.oidc();
        let current = oidc.settings();
        oidc.set_settings(Settings {
            token_ttl: update.token_ttl_secs.map_or(current.token_ttl, |s| TimeDelta::seconds(i64::from(s))),
            issue_refresh_tokens: update.issue_refresh_tokens.unwrap_or(current.issue_refresh_tokens),
        });
    }
    if let Some(ttl) = update.credential_ttl_secs {
        app.controls().credential_ttl_secs = ttl;
    }
    let body = settings_body(&app);
    tracing::info!(settings = %body.0, "settings changed");
    Ok(body)
}

fn throttles_body(app: &AppState) -> Json<Value> {
    let controls = app.controls();
    Json(json!({ "oidc": controls.throttled_oidc, "portal": controls.throttled_portal }))
}

async fn throttles(State(app): App) -> Json<Value> {
    throttles_body(&app)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThrottleRequest {
    api: Api,
    count: u32,
}

async fn throttle(State(app): App, body: Bytes) -> Result<Json<Value>, ControlError> {
    let request: ThrottleRequest = control_body(&body)?;
    {
        let mut controls = app.controls();
        match request.api {
            Api::Oidc => controls.throttled_oidc = request.count,
            Api::Portal => controls.throttled_portal = request.count,
        }
    }
    tracing::info!(api = ?request.api, count = request.count, "next calls will be throttled");
    Ok(throttles_body(&app))
}

async fn requests(State(app): App) -> Json<Value> {
    Json(json!({ "requests": *app.requests() }))
}

async fn clear_requests(State(app): App) -> Json<Value> {
    let cleared = {
        let mut requests = app.requests();
        let cleared = requests.len();
        requests.clear();
        cleared
    };
    Json(json!({ "cleared": cleared }))
}
