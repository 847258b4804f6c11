//! The console through its router, on SQLite: sign-in, cookies and form tokens (`sessions`); the catalog, the
//! request form and the approver's decision (`requests`); the administrators' pages (`admin`).

mod admin;
mod requests;
mod sessions;

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use tower::ServiceExt;

use crate::server::{router, testing};
use crate::services::auth::hash_password;
use crate::state::AppState;

/// A browser: a cookie jar in front of the router.
struct Browser {
    app: Router,
    cookies: HashMap<String, String>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|l| l.to_str().ok()).unwrap_or_default()
    }

    /// The form token of the first form on the page.
    fn token(&self) -> String {
        let needle = r#"name="csrf" value=""#;
        let at = self.body.find(needle).expect("a form token on the page") + needle.len();
        self.body[at..].split('"').next().unwrap().to_string()
    }
}

impl Browser {
    fn new(s: &AppState) -> Browser {
        Browser { app: router(s.clone()), cookies: HashMap::new() }
    }

    async fn send(&mut self, method: Method, uri: &str, form: &[(&str, &str)]) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        let jar: Vec<String> = self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
        if !jar.is_empty() {
            req = req.header(header::COOKIE, jar.join("; "));
        }
        let body = if form.is_empty() {
            Body::empty()
        } else {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(serde_urlencoded::to_string(form).unwrap())
        };
        let resp = self.app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        for set in resp.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
            if set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap();
        Answer { status, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
    }

    async fn get(&mut self, uri: &str) -> Answer {
        self.send(Method::GET, uri, &[]).await
    }

    async fn post(&mut self, uri: &str, form: &[(&str, &str)]) -> Answer {
        self.send(Method::POST, uri, form).await
    }

    async fn sign_in(&mut self, user: &str) -> Answer {
        let token = self.get("/console/login").await.token();
        self.post("/console/login", &[("csrf", &token), ("username", user), ("password", "pw"), ("next", "/console")])
            .await
    }
}

async fn state(extra: &str) -> (AppState, crate::store::testing::Keep) {
    let (db, keep) = crate::store::testing::sqlite().await;
    for user in ["alice", "bob"] {
        db.set_password(user, &hash_password("pw").unwrap()).await.unwrap();
    }
    (testing::state(db, extra), keep)
}

const DBA: &str = r#"policies:
  - name: dba
    match: { permission_set: DatabaseAdministrator }
    max_duration: 1h
    form:
      - { name: ticket, required: true, max_length: 10, description: The change ticket }
      - { name: hosts, type: integer, min: 1, max: 5 }
      - { name: urgent, type: bool }
    steps: [{ approval: { users: [bob, carol] } }]
"#;

const READONLY: &str = "policies:\n  - name: readonly\n    match: { permission_set: ReadOnlyAccess }\n    max_duration: 8h\n    steps: [accept]\n";

fn pairs<'a>(list: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    list.iter().map(|(n, v)| (*n, v.as_str())).collect()
}
