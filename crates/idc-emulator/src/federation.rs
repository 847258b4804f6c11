//! The AWS sign-in federation endpoint (`signin.aws.amazon.com/federation`) that turns role credentials into a
//! console sign-in URL: `Action=getSigninToken` takes the credentials as a JSON `Session` and answers
//! `{"SigninToken": …}`; `Action=login` with that token sends the browser to `Destination`.
//!
//! Only credentials this emulator issued through GetRoleCredentials are accepted, so a client that sends the wrong
//! values (or encodes them wrongly) fails as it would against AWS. Errors are plain 400s, as the real endpoint's.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::http::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Session {
    session_id: String,
    session_key: String,
    session_token: String,
}

fn bad_request(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, why.to_string()).into_response()
}

pub async fn federation(State(app): State<Arc<AppState>>, Query(q): Query<HashMap<String, String>>) -> Response {
    match q.get("Action").map(String::as_str) {
        Some("getSigninToken") => {
            let Some(Ok(session)) = q.get("Session").map(|s| serde_json::from_str::<Session>(s)) else {
                return bad_request("Session must be JSON with sessionId, sessionKey and sessionToken");
            };
            if session.session_key.is_empty() || session.session_token.is_empty() {
                return bad_request("the session is incomplete");
            }
            match app.sign_in_token_for(&session.session_id) {
                Some(token) => axum::Json(serde_json::json!({ "SigninToken": token })).into_response(),
                None => bad_request("these credentials were not issued by this emulator"),
            }
        }
        Some("login") => {
            let (Some(token), Some(destination)) = (q.get("SigninToken"), q.get("Destination")) else {
                return bad_request("login needs SigninToken and Destination");
            };
            if !app.sign_in_token_known(token) {
                return bad_request("unknown SigninToken");
            }
            (StatusCode::FOUND, [(header::LOCATION, destination.clone())]).into_response()
        }
        _ => bad_request("Action must be getSigninToken or login"),
    }
}
