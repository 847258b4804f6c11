//! A local stand-in for the Slack Web API methods cone-server calls (`users.lookupByEmail`, `users.info`,
//! `chat.postMessage`, `chat.update`), answering with Slack's documented shapes and recording every call; and
//! clicks on a message's buttons, sent to cone-server's interactivity endpoint signed as Slack signs them. Slack
//! itself is not reachable from the test machines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

pub const BOT_TOKEN: &str = "xoxb-cone-test-token";
pub const SIGNING_SECRET: &str = "cone-test-signing-secret-0123456789";

/// A person Slack knows: their id, address, and whether Slack confirmed it.
#[derive(Debug, Clone)]
pub struct SlackUser {
    pub id: String,
    pub email: String,
    pub confirmed: bool,
}

/// A Web API call the stand-in answered: its method, whether it carried the bot token, its body or query, and the
/// answer.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub authorized: bool,
    pub body: Value,
    pub answer: Value,
}

#[derive(Default)]
struct Inner {
    users: Vec<SlackUser>,
    calls: Vec<Call>,
}

pub struct SlackStandIn {
    inner: Arc<Mutex<Inner>>,
    pub api_url: String,
    _server: tokio::task::JoinHandle<()>,
}

type Shared = Arc<Mutex<Inner>>;

impl SlackStandIn {
    /// Starts on a free loopback port (on the calling tokio runtime) with these people.
    pub async fn start(users: Vec<SlackUser>) -> Result<SlackStandIn> {
        let inner: Shared = Arc::new(Mutex::new(Inner { users, calls: Vec::new() }));
        let app = axum::Router::new()
            .route("/api/{method}", axum::routing::get(query_call).post(json_call))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api_url = format!("http://{}/api/", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(SlackStandIn { inner, api_url, _server: server })
    }

    /// The `notifications.slack` settings that use this stand-in, with the secrets in 0600 files under `dir`.
    pub fn settings(&self, dir: &std::path::Path) -> Result<String> {
        let write = |name: &str, secret: &str| -> Result<std::path::PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, secret)?;
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            Ok(path)
        };
        let (token, signing) = (write("slack-bot.secret", BOT_TOKEN)?, write("slack-signing.secret", SIGNING_SECRET)?);
        Ok(format!(
            "  slack:\n    bot_token_file: {}\n    signing_secret_file: {}\n    api_url: {}\n",
            token.display(),
            signing.display(),
            self.api_url
        ))
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().map(|i| i.calls.clone()).unwrap_or_default()
    }

    /// Waits up to `timeout` for a call of `method` that `matches`.
    pub fn wait_for(&self, method: &str, timeout: Duration, matches: impl Fn(&Value) -> bool) -> Result<Call> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.calls().into_iter().find(|c| c.method == method && matches(&c.body)) {
                return Ok(c);
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = self.calls().iter().map(|c| format!("{} {}", c.method, c.body)).collect();
                bail!("no matching {method} within {timeout:?}; calls: {seen:#?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A click by `user` on the button `action` (`approve`, `deny`) of the message `posted` (a recorded
/// `chat.postMessage`, answered with `channel` and `ts`), as Slack posts it: `payload=` form-encoded JSON.
pub fn click(user: &str, action: &str, value: &str, channel: &str, ts: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": { "id": user, "username": user, "team_id": "T-CONE" },
        "api_app_id": "A-CONE",
        "container": { "type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false },
        "channel": { "id": channel, "name": "directmessage" },
        "message": { "ts": ts, "type": "message" },
        "response_url": "https://hooks.slack.invalid/actions/T-CONE/1/x",
        "actions": [{ "action_id": action, "block_id": "cone", "value": value, "type": "button", "action_ts": ts }],
    });
    format!("payload={}", cone_client::encode(&payload.to_string()))
}

/// Headers Slack sends with `body` at Unix time `at`, signed with `secret`.
pub fn signed(secret: &str, at: i64, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-slack-request-timestamp", at.to_string()),
        ("x-slack-signature", cone_slack::sign(secret.as_bytes(), &at.to_string(), body.as_bytes())),
        ("content-type", "application/x-www-form-urlencoded".into()),
    ]
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {BOT_TOKEN}"))
}

async fn query_call(
    State(inner): State<Shared>,
    Path(method): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let mut inner = inner.lock().expect("stand-in lock");
    let answer = if authorized(&headers) { query_answer(&inner, &method, &q) } else { invalid_auth() };
    inner.calls.push(Call { method, authorized: authorized(&headers), body: json!(q), answer: answer.clone() });
    Json(answer)
}

fn invalid_auth() -> Value {
    json!({ "ok": false, "error": "invalid_auth" })
}

fn query_answer(inner: &Inner, method: &str, q: &HashMap<String, String>) -> Value {
    let user_json = |u: &SlackUser| json!({ "id": u.id, "name": u.id, "is_email_confirmed": u.confirmed, "profile": { "email": u.email } });
    let arg = |k: &str| q.get(k).cloned().unwrap_or_default();
    match method {
        "users.lookupByEmail" => match inner.users.iter().find(|u| u.email == arg("email") && u.confirmed) {
            Some(u) => json!({ "ok": true, "user": user_json(u) }),
            None => json!({ "ok": false, "error": "users_not_found" }),
        },
        "users.info" => match inner.users.iter().find(|u| u.id == arg("user")) {
            Some(u) => json!({ "ok": true, "user": user_json(u) }),
            None => json!({ "ok": false, "error": "user_not_found" }),
        },
        _ => json!({ "ok": false, "error": "unknown_method" }),
    }
}

async fn json_call(
    State(inner): State<Shared>,
    Path(method): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let mut inner = inner.lock().expect("stand-in lock");
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    let answer = if !authorized(&headers) {
        invalid_auth()
    } else {
        match method.as_str() {
            "chat.postMessage" => {
                // A message to a user id goes to the bot's direct conversation with them.
                let channel = text("channel").replacen('U', "D", 1);
                let ts = format!("1700000000.{:06}", inner.calls.len());
                json!({ "ok": true, "channel": channel, "ts": ts, "message": { "text": text("text"), "ts": ts } })
            }
            "chat.update" => json!({ "ok": true, "channel": text("channel"), "ts": text("ts"), "text": text("text") }),
            _ => json!({ "ok": false, "error": "unknown_method" }),
        }
    };
    inner.calls.push(Call { method, authorized: authorized(&headers), body, answer: answer.clone() });
    Json(answer)
}
