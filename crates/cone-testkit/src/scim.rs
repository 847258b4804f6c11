//! A stand-in for IAM Identity Center's SCIM API, which moto does not have: `GET /scim/v2/Users` with AWS's cursor
//! paging (two users a page, so paging is always exercised) behind a bearer token, listing moto's identity-store
//! users with the `active` flag a test sets.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::moto_sdk_config;

/// Users a page: fewer than the count asked for, as AWS allows, so that a client must follow `nextCursor`.
const PAGE: usize = 2;

pub struct ScimStandIn {
    /// What `BATON_SCIM_ENDPOINT` is set to.
    pub endpoint: String,
    /// What `BATON_SCIM_TOKEN` is set to.
    pub token: String,
    inner: Arc<Inner>,
}

struct Inner {
    ids: aws_sdk_identitystore::Client,
    identity_store_id: String,
    token: String,
    inactive: Mutex<HashSet<String>>,
}

#[derive(serde::Deserialize)]
struct Paging {
    cursor: Option<String>,
}

impl ScimStandIn {
    /// Serves the users of moto's identity store `identity_store_id`, all active.
    pub async fn start(moto_endpoint: &str, identity_store_id: &str) -> Result<ScimStandIn> {
        let token = format!("scim-token-{}", std::process::id());
        let inner = Arc::new(Inner {
            ids: aws_sdk_identitystore::Client::new(&moto_sdk_config(moto_endpoint)),
            identity_store_id: identity_store_id.to_string(),
            token: token.clone(),
            inactive: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the SCIM stand-in")?;
        let endpoint = format!("http://{}/scim/v2", listener.local_addr()?);
        let app = axum::Router::new().route("/scim/v2/Users", axum::routing::get(users)).with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(ScimStandIn { endpoint, token, inner })
    }

    /// From now on the user reads as `active: false`.
    pub fn deactivate(&self, user_id: &str) {
        self.inner.inactive.lock().unwrap_or_else(|e| e.into_inner()).insert(user_id.to_string());
    }
}

async fn users(State(s): State<Arc<Inner>>, headers: HeaderMap, Query(q): Query<Paging>) -> Response {
    let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if presented != Some(&format!("Bearer {}", s.token)) {
        let body = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "401",
                           "detail": "Authorization header is invalid or missing." });
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let listed = match s.ids.list_users().identity_store_id(&s.identity_store_id).send().await {
        Ok(out) => out.users,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let start: usize = q.cursor.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0);
    let inactive = s.inactive.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let page: Vec<_> = listed
        .iter()
        .skip(start)
        .take(PAGE)
        .map(|u| json!({ "id": u.user_id(), "userName": u.user_name(), "active": !inactive.contains(u.user_id()) }))
        .collect();
    let mut body = json!({ "Resources": page, "itemsPerPage": page.len() });
    if start + PAGE < listed.len() {
        body["nextCursor"] = json!((start + PAGE).to_string());
    }
    axum::Json(body).into_response()
}
