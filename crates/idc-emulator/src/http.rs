//! Routes: SSO OIDC, the browser sign-in behind `/authorize`, SSO portal, and the `/_emu/` control endpoints,
//! on one listener (their paths do not collide).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::Result;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access;
use crate::control;
use crate::errors::{ControlError, ERROR_TYPE_HEADER, OidcError, OidcErrorKind, PortalError, PortalErrorKind};
use crate::moto::Directory;
use crate::oidc::{CreateTokenRequest, Identity, Oidc, RegisterClientRequest, StartDeviceAuthorizationRequest};
use crate::portal;
use crate::sign_in;

const BEARER_HEADER: &str = "x-amz-sso_bearer_token";
const REQUEST_ID_HEADER: &str = "x-amzn-RequestId";
/// Enough for any test run; older entries are dropped so a long-running sandbox does not grow without bound.
const REQUEST_LOG_CAPACITY: usize = 10_000;
/// The text AWS services commonly put in throttling errors.
const THROTTLED_MESSAGE: &str = "Rate exceeded";

/// The AWS API families whose calls can be throttled on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    Oidc,
    Portal,
}

/// How `/authorize` answers once the request is valid.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum SignInMode {
    /// Show the sign-in page, where a person picks the user.
    Interactive,
    /// Sign this identity-store user in at once (for tests).
    Approve { user_name: String },
    /// Refuse at once with `error=access_denied` (for tests).
    Deny,
}

/// Behaviour that tests change at run time through `/_emu/`.
#[derive(Debug)]
pub struct Controls {
    /// STS takes an i32; the flag and `/_emu/settings` keep it within 1..=43200 (12 h, the STS maximum).
    pub credential_ttl_secs: i32,
    pub sign_in: SignInMode,
    /// How many of the next calls to each API answer 429.
    pub throttled_oidc: u32,
    pub throttled_portal: u32,
}

/// One request to an AWS API or the sign-in page, as `/_emu/requests` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    pub at: String,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
}

pub struct AppState {
    oidc: Mutex<Oidc>,
    pub directory: Directory,
    controls: Mutex<Controls>,
    requests: Mutex<VecDeque<LoggedRequest>>,
    /// Access key ids of the role credentials handed out, and the console sign-in tokens made from them.
    issued_keys: Mutex<std::collections::HashSet<String>>,
    sign_in_tokens: Mutex<std::collections::HashSet<String>>,
}

/// No handler panics while holding a lock, and the state stays consistent if one did, so a poisoned lock is
/// still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AppState {
    pub fn new(oidc: Oidc, directory: Directory, controls: Controls) -> Self {
        Self {
            oidc: Mutex::new(oidc),
            directory,
            controls: Mutex::new(controls),
            requests: Mutex::default(),
            issued_keys: Mutex::default(),
            sign_in_tokens: Mutex::default(),
        }
    }

    /// A console sign-in token for credentials this emulator issued.
    pub fn sign_in_token_for(&self, access_key_id: &str) -> Option<String> {
        if !lock(&self.issued_keys).contains(access_key_id) {
            return None;
        }
        let token = format!("signin-{}", hex::encode(rand::random::<[u8; 16]>()));
        lock(&self.sign_in_tokens).insert(token.clone());
        Some(token)
    }

    pub fn sign_in_token_known(&self, token: &str) -> bool {
        lock(&self.sign_in_tokens).contains(token)
    }

    pub fn oidc(&self) -> MutexGuard<'_, Oidc> {
        lock(&self.oidc)
    }

    pub fn controls(&self) -> MutexGuard<'_, Controls> {
        lock(&self.controls)
    }

    pub fn requests(&self) -> MutexGuard<'_, VecDeque<LoggedRequest>> {
        lock(&self.requests)
    }

    fn caller(&self, headers: &HeaderMap) -> Result<Identity, PortalError> {
        let token = bearer_token(headers)?;
        self.oidc().identity(token, Utc::now()).cloned().ok_or_else(PortalError::invalid_session)
    }

    /// The identity-store user with this user name, None when there is none.
    pub async fn find_user(&self, user_name: &str) -> Result<Option<Identity>> {
        let instance = self.directory.instance().await?;
        let user_id = self.directory.user_id(&instance.identity_store_id, user_name).await?;
        Ok(user_id.map(|user_id| Identity { user_id, user_name: user_name.to_string() }))
    }

    /// Counts one throttled call off; true when this call is to be throttled.
    fn take_throttle(&self, api: Api) -> bool {
        let mut controls = self.controls();
        let remaining = match api {
            Api::Oidc => &mut controls.throttled_oidc,
            Api::Portal => &mut controls.throttled_portal,
        };
        if *remaining == 0 {
            return false;
        }
        *remaining -= 1;
        true
    }
}

pub type App = State<Arc<AppState>>;

/// The portal's access token; a request without one is an invalid session, like an unknown token.
fn bearer_token(headers: &HeaderMap) -> Result<&str, PortalError> {
    headers.get(BEARER_HEADER).and_then(|v| v.to_str().ok()).ok_or_else(PortalError::invalid_session)
}

pub fn router(state: Arc<AppState>) -> Router {
    let oidc = Router::new()
        .route("/client/register", post(register_client))
        .route("/device_authorization", post(start_device_authorization))
        .route("/token", post(create_token))
        .route_layer(middleware::from_fn_with_state(state.clone(), throttle_oidc));
    let portal = Router::new()
        .route("/federation/credentials", get(get_role_credentials))
        .route("/federation", get(crate::federation::federation))
        .route("/assignment/accounts", get(list_accounts))
        .route("/assignment/roles", get(list_account_roles))
        .route("/logout", post(logout))
        .route_layer(middleware::from_fn_with_state(state.clone(), throttle_portal));
    Router::new()
        .merge(oidc)
        .merge(portal)
        .route("/authorize", get(sign_in::authorize).post(sign_in::decide))
        .nest("/_emu", control::routes())
        .fallback(unknown_route)
        .layer(middleware::from_fn_with_state(state.clone(), log_request))
        .with_state(state)
}

async fn log_request(State(app): App, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let mut response = next.run(request).await;
    let error_type = response.headers().get(ERROR_TYPE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let status = response.status().as_u16();
    tracing::info!(%method, %path, status, error = error_type.as_deref().unwrap_or(""), "request");
    if !path.starts_with("/_emu/") {
        // Clients log it and SDKs expose it on errors; the real service sends one with every answer.
        if let Ok(id) = HeaderValue::try_from(request_id()) {
            response.headers_mut().insert(REQUEST_ID_HEADER, id);
        }
        let at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut requests = app.requests();
        if requests.len() == REQUEST_LOG_CAPACITY {
            requests.pop_front();
        }
        requests.push_back(LoggedRequest { at, method, path, query, status, error_type });
    }
    response
}

/// A random UUID (version 4), the form the real service's request ids take.
fn request_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

async fn throttle_oidc(State(app): App, request: Request, next: Next) -> Response {
    if app.take_throttle(Api::Oidc) {
        return OidcError::new(OidcErrorKind::TooManyRequests, THROTTLED_MESSAGE).into_response();
    }
    next.run(request).await
}

async fn throttle_portal(State(app): App, request: Request, next: Next) -> Response {
    if app.take_throttle(Api::Portal) {
        return PortalError::new(PortalErrorKind::TooManyRequests, THROTTLED_MESSAGE).into_response();
    }
    next.run(request).await
}

async fn unknown_route(method: Method, uri: Uri) -> ControlError {
    ControlError::new(StatusCode::NOT_FOUND, format!("the emulator has no endpoint {method} {}", uri.path()))
}

/// Parses a JSON request body; `error` turns the complaint into the error of the endpoint's family.
pub fn json_body<T: DeserializeOwned, E>(body: &Bytes, error: impl FnOnce(String) -> E) -> Result<T, E> {
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
    let ttl = app.controls().credential_ttl_secs;
    let credentials = portal::role_credentials(&app.directory, &identity, account_id, role_name, ttl).await?;
    lock(&app.issued_keys).insert(credentials.access_key_id.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_version_4_uuids() {
        let id = request_id();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{id}");
        assert!(groups[2].starts_with('4'), "{id}");
        assert!("89ab".contains(&groups[3][..1]), "{id}");
        assert_ne!(id, request_id());
    }
}
