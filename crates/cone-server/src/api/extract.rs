//! What a handler takes from a request: the JSON body, query and path with problems answered as an `ApiError`
//! that says where, and the signed-in caller.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::services::auth::{self, Caller};
use crate::state::AppState;
use crate::store::UserRow;

/// A request body in JSON. Unlike `axum::Json`, whatever is wrong with it is answered as an `ApiError` that says
/// where (`duration_secs: invalid type: string "x", expected i64`). Text holding NUL characters is refused: neither
/// store keeps them (PostgreSQL cannot), and no field has a use for them.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let Json(value) =
            <Json<serde_json::Value> as FromRequest<S>>::from_request(req, state).await.map_err(body_rejected)?;
        body_value(value).map(ApiJson)
    }
}

/// An optional body: none when the request has no `Content-Type`, or its body is `null`.
impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Error> {
        match <Json<serde_json::Value> as OptionalFromRequest<S>>::from_request(req, state).await {
            Ok(Some(Json(serde_json::Value::Null))) | Ok(None) => Ok(None),
            Ok(Some(Json(value))) => body_value(value).map(|v| Some(ApiJson(v))),
            Err(e) => Err(body_rejected(e)),
        }
    }
}

fn body_rejected(e: JsonRejection) -> Error {
    match e {
        JsonRejection::MissingJsonContentType(_) => Error::UnsupportedMediaType(
            "Send the request body as JSON, with the header `Content-Type: application/json`.".into(),
        ),
        e => Error::invalid(format!(
            "The request body cannot be read: {}. Send one JSON object as /api/v1/openapi.json describes.",
            e.body_text()
        )),
    }
}

fn body_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Error> {
    if holds_nul(&value) {
        return Err(nul_refused("the request body"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." { String::new() } else { format!("{at}: ") };
        Error::invalid(format!(
            "The request body is not what this endpoint takes ({at}{}); see /api/v1/openapi.json.",
            e.inner()
        ))
    })
}

fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

fn nul_refused(place: &str) -> Error {
    Error::invalid(format!(
        "Text in {place} contains a NUL character (\\u0000 or %00), which Cone does not accept; remove it."
    ))
}

/// Query parameters, with problems answered as an `ApiError` naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        // A percent sign always starts an escape in a query, so `%00` anywhere is a NUL once decoded.
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(nul_refused("the query string"));
        }
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await.map_err(|e: QueryRejection| {
                Error::invalid(format!("{}. See /api/v1/openapi.json for this endpoint's parameters.", e.body_text()))
            })?;
        Ok(ApiQuery(value))
    }
}

/// Path parameters (ids), with a malformed one answered as an `ApiError`.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await.map_err(|e: PathRejection| {
                if e.status().is_server_error() {
                    return anyhow::anyhow!("path parameters: {}", e.body_text()).into();
                }
                Error::invalid(format!("{}; ids are whole numbers.", e.body_text()))
            })?;
        Ok(ApiPath(value))
    }
}

/// The bearer token of a request.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let header = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    Some(header.strip_prefix("Bearer ")?.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Error> {
        auth::caller(s, bearer(&parts.headers)).await
    }
}

/// The signed-in user of an API request: a person's session or API token, or a service account's token.
pub struct CurrentUser(pub UserRow);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Error> {
        Ok(CurrentUser(Caller::from_request_parts(parts, s).await?.user))
    }
}

/// A signed-in administrator (`admins` in the configuration); anyone else gets 403.
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Error> {
        let caller = Caller::from_request_parts(parts, s).await?;
        Ok(Admin(auth::admin(s, caller).await?))
    }
}
