//! Routes: SSO OIDC, SSO portal, and the `/_emu/` control endpoints, on one listener (their paths do
//! not collide).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access;
use crate::errors::{ControlError, ERROR_TYPE_HEADER, OidcError, OidcErrorKind, PortalError, PortalErrorKind};
use crate::moto::Directory;
use crate::oidc::{
    CreateTokenRequest, DeviceControlError, Identity, Oidc, RegisterClientRequest, StartDeviceAuthorizationRequest,
};
use crate::portal;

const BEARER_HEADER: &str = "x-amz-sso_bearer_token";

pub struct AppState {
    oidc: Mutex<Oidc>,
    directory: Directory,
}

impl AppState {
    pub fn new(oidc: Oidc, directory: Directory) -> Self {
        Self { oidc: Mutex::new(oidc), directory }
    }

    /// No handler panics while holding the lock, and the state stays consistent if one did, so a poisoned
    /// lock is still usable.
    fn oidc(&self) -> MutexGuard<'_, Oidc> {
        self.oidc.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn caller(&self, headers: &HeaderMap) -> Result<Identity, PortalError> {
        let token = bearer_token(headers)?;
        self.oidc().identity(token, Utc::now()).cloned().ok_or_else(PortalError::invalid_session)
    }
}

type App = State<Arc<AppState>>;

/// The portal's access token; a request without one is an invalid session, like an unknown token.
fn bearer_token(headers: &HeaderMap) -> Result<&str, PortalError> {
    headers.get(BEARER_HEADER).and_then(|v| v.to_str().ok()).ok_or_else(PortalError::invalid_session)
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/client/register", post(register_client))
        .route("/device_authorization", post(start_device_authorization))
        .route("/token", post(create_token))
        .route("/federation/credentials", get(get_role_credentials))
        .route("/assignment/accounts", get(list_accounts))
        .route("/assignment/roles", get(list_account_roles))
        .route("/logout", post(logout))
        .route("/_emu/device/approve", post(approve_device))
        .route("/_emu/device/deny", post(deny_device))
        .route("/_emu/tokens/expire-all", post(expire_all_tokens))
        .fallback(unknown_route)
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let error = response.headers().get(ERROR_TYPE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    tracing::info!(%method, %path, status = response.status().as_u16(), error, "request");
    response
}

async fn unknown_route(method: Method, uri: Uri) -> ControlError {
    ControlError::new(StatusCode::NOT_FOUND, format!("the emulator has no endpoint {method} {}", uri.path()))
}

/// Parses a JSON request body; `error` turns the complaint into the error of the endpoint's family.
fn json_body<T: DeserializeOwned, E>(body: &Bytes, error: impl FnOnce(String) -> E) -> Result<T, E> {
    serde_json::from_slice(body)
        .map_err(|err| error(format!("the request body is not the expected JSON object: {err}")))
}

fn oidc_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, OidcError> {
    json_body(body, |message| OidcError::new(OidcErrorKind::InvalidRequest, message))
}

async fn register_client(State(app): App, body: Bytes) -> Result<Json<Value>, OidcError> {
    let request: RegisterClientRequest = oidc_body(&body)?;
    let response = app.oidc().register_client(&request, Utc::now())?;
    Ok(Json(json!(response)))
}

async fn start_device_authorization(State(app): App, body: Bytes) -> Result<Json<Value>, OidcError> {
    let request: StartDeviceAuthorizationRequest = oidc_body(&body)?;
    let response = app.oidc().start_device_authorization(&request, Utc::now())?;
    tracing::info!(user_code = %response.user_code, "device authorization started; approve it with POST /_emu/device/approve");
    Ok(Json(json!(response)))
}

async fn create_token(State(app): App, body: Bytes) -> Result<Json<Value>, OidcError> {
    let request: CreateTokenRequest = oidc_body(&body)?;
    let response = app.oidc().create_token(&request, Utc::now())?;
    Ok(Json(json!(response)))
}

type Params = Query<HashMap<String, String>>;

fn required_param<'a>(params: &'a HashMap<String, String>, name: &str) -> Result<&'a str, PortalError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| PortalError::new(PortalErrorKind::InvalidRequest, format!("query parameter {name} is required")))
}

async fn get_role_credentials(
    State(app): App,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Json<Value>, PortalError> {
    let identity = app.caller(&headers)?;
    let role_name = required_param(&params, "role_name")?;
    let account_id = required_param(&params, "account_id")?;
    let credentials = portal::role_credentials(&app.directory, &identity, account_id, role_name).await?;
    Ok(Json(json!({
        "roleCredentials": {
            "accessKeyId": credentials.access_key_id,
            "secretAccessKey": credentials.secret_access_key,
            "sessionToken": credentials.session_token,
            "expiration": credentials.expiration_millis,
        }
    })))
}

async fn list_accounts(State(app): App, headers: HeaderMap, Query(params): Params) -> Result<Json<Value>, PortalError> {
    let identity = app.caller(&headers)?;
    let accounts = portal::accounts(&app.directory, &identity).await?;
    page_body("accountList", accounts, &params)
}

async fn list_account_roles(
    State(app): App,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Json<Value>, PortalError> {
    let identity = app.caller(&headers)?;
    let account_id = required_param(&params, "account_id")?;
    let roles = portal::roles(&app.directory, &identity, account_id).await?;
    page_body("roleList", roles, &params)
}

/// Paginated portal answer; `nextToken` is left out on the last page, as the real service does.
fn page_body<T: Serialize>(
    key: &str,
    items: Vec<T>,
    params: &HashMap<String, String>,
) -> Result<Json<Value>, PortalError> {
    let page = access::paginate(
        items,
        params.get("next_token").map(String::as_str),
        params.get("max_result").map(String::as_str),
    )?;
    let mut body = serde_json::Map::new();
    body.insert(key.to_string(), json!(page.items));
    if let Some(token) = page.next_token {
        body.insert("nextToken".to_string(), Value::String(token));
    }
    Ok(Json(Value::Object(body)))
}

async fn logout(State(app): App, headers: HeaderMap) -> Result<StatusCode, PortalError> {
    let token = bearer_token(&headers)?;
    if app.oidc().logout(token, Utc::now()) { Ok(StatusCode::OK) } else { Err(PortalError::invalid_session()) }
}

#[derive(Deserialize)]
struct ApproveRequest {
    user_code: String,
    user_name: String,
}

#[derive(Deserialize)]
struct DenyRequest {
    user_code: String,
}

fn control_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ControlError> {
    json_body(body, |message| ControlError::new(StatusCode::BAD_REQUEST, message))
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
    let moto_failed = |err: anyhow::Error| {
        ControlError::new(StatusCode::BAD_GATEWAY, format!("could not look the user up in moto: {err:#}"))
    };
    let instance = app.directory.instance().await.map_err(moto_failed)?;
    let user_id =
        app.directory.user_id(&instance.identity_store_id, &request.user_name).await.map_err(moto_failed)?.ok_or_else(
            || {
                ControlError::new(
                    StatusCode::NOT_FOUND,
                    format!(
                        "identity store {} has no user named {:?}; create it with identitystore CreateUser first",
                        instance.identity_store_id, request.user_name
                    ),
                )
            },
        )?;
    let identity = Identity { user_id: user_id.clone(), user_name: request.user_name.clone() };
    app.oidc()
        .approve(&request.user_code, identity, Utc::now())
        .map_err(|err| device_control_error(&request.user_code, err))?;
    tracing::info!(user_code = %request.user_code, user = %request.user_name, "device authorization approved");
    Ok(Json(json!({ "user_code": request.user_code, "user_name": request.user_name, "user_id": user_id })))
}

async fn deny_device(State(app): App, body: Bytes) -> Result<Json<Value>, ControlError> {
    let request: DenyRequest = control_body(&body)?;
    app.oidc().deny(&request.user_code, Utc::now()).map_err(|err| device_control_error(&request.user_code, err))?;
    tracing::info!(user_code = %request.user_code, "device authorization denied");
    Ok(Json(json!({ "user_code": request.user_code })))
}

async fn expire_all_tokens(State(app): App) -> impl IntoResponse {
    let expired = app.oidc().expire_all_access_tokens(Utc::now());
    tracing::info!(expired, "access tokens expired on request");
    Json(json!({ "expired": expired }))
}
