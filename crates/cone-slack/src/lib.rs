//! Slack's Web API as Cone uses it: find a person by email, read a person's verified email, post a message (to a
//! person, or in a message's thread) and update it; and the check of the signature Slack puts on the requests it
//! sends (interactivity). The Slack SDKs are for Python, JavaScript and Java; these five calls over reqwest are
//! all Cone needs.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

/// How far a request's timestamp may be from now, in seconds, as Slack recommends: older ones may be replays.
pub const TOLERANCE: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Slack answered `ok: false` with this error code (`users_not_found`, `invalid_auth`, …).
    #[error("Slack answered {0}")]
    Slack(String),
    /// Slack asked to slow down for this many seconds.
    #[error("Slack asked to wait {0} s (rate limited)")]
    RateLimited(u64),
    #[error("cannot reach Slack: {0}")]
    Http(String),
}

impl Error {
    /// Whether trying again later may work: not for a wrong token or a person Slack does not know.
    pub fn transient(&self) -> bool {
        match self {
            Error::Slack(code) => matches!(
                code.as_str(),
                "ratelimited" | "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout"
            ),
            Error::RateLimited(_) | Error::Http(_) => true,
        }
    }
}

/// A Slack user as Cone reads one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: Option<String>,
    /// Whether Slack confirmed the address; an unconfirmed one proves nothing.
    pub email_confirmed: bool,
}

/// Where a posted message is: its conversation and timestamp (Slack's id for it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
}

/// A Slack app's bot, calling the Web API at `api` (`https://slack.com/api/`, or a stand-in in tests).
pub struct Slack {
    http: reqwest::Client,
    api: reqwest::Url,
    token: String,
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack").field("api", &self.api.as_str()).finish_non_exhaustive()
    }
}

impl Slack {
    pub fn new(api: &str, bot_token: String) -> Result<Slack, Error> {
        let base = if api.ends_with('/') { api.to_string() } else { format!("{api}/") };
        let api =
            reqwest::Url::parse(&base).map_err(|e| Error::Http(format!("the API address {api} is not a URL: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cone-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Http(e.to_string()))?;
        Ok(Slack { http, api, token: bot_token })
    }

    /// The Slack user with this email address, if there is one.
    pub async fn lookup_by_email(&self, email: &str) -> Result<Option<String>, Error> {
        match self.get("users.lookupByEmail", &[("email", email)]).await {
            Ok(v) => Ok(v["user"]["id"].as_str().map(str::to_string)),
            Err(Error::Slack(code)) if code == "users_not_found" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A user and their email (the app needs the `users:read.email` scope).
    pub async fn user(&self, id: &str) -> Result<User, Error> {
        let v = self.get("users.info", &[("user", id)]).await?;
        let u = &v["user"];
        Ok(User {
            id: u["id"].as_str().unwrap_or(id).to_string(),
            email: u["profile"]["email"].as_str().map(str::to_string),
            email_confirmed: u["is_email_confirmed"].as_bool().unwrap_or(false),
        })
    }

    /// Posts `text` (and `blocks`, which Slack shows instead where it can) to `channel`: a conversation, or a user
    /// id for a direct message from the bot; in the thread of `thread_ts` when given.
    pub async fn post(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        text: &str,
        blocks: Option<&Value>,
    ) -> Result<Posted, Error> {
        let mut body = json!({ "channel": channel, "text": text, "unfurl_links": false });
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts);
        }
        if let Some(b) = blocks {
            body["blocks"] = b.clone();
        }
        let v = self.post_json("chat.postMessage", &body).await?;
        serde_json::from_value(v)
            .map_err(|e| Error::Http(format!("chat.postMessage answered without channel and ts: {e}")))
    }

    /// Replaces the text and blocks of the message at `ts` in `channel`.
    pub async fn update(&self, channel: &str, ts: &str, text: &str, blocks: &Value) -> Result<(), Error> {
        let body = json!({ "channel": channel, "ts": ts, "text": text, "blocks": blocks });
        self.post_json("chat.update", &body).await.map(drop)
    }

    async fn get(&self, method: &str, query: &[(&str, &str)]) -> Result<Value, Error> {
        let req = self.http.get(self.url(method)?).query(query);
        self.send(req).await
    }

    async fn post_json(&self, method: &str, body: &Value) -> Result<Value, Error> {
        let req = self
            .http
            .post(self.url(method)?)
            .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string());
        self.send(req).await
    }

    fn url(&self, method: &str) -> Result<reqwest::Url, Error> {
        self.api.join(method).map_err(|e| Error::Http(e.to_string()))
    }

    /// Sends with the bot token and reads Slack's answer: `ok: true`, or its error code.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, Error> {
        let resp = req.bearer_auth(&self.token).send().await.map_err(|e| Error::Http(e.without_url().to_string()))?;
        if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let wait = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(30);
            return Err(Error::RateLimited(wait));
        }
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .map_err(|e| Error::Http(format!("Slack answered {status} without JSON: {}", e.without_url())))?;
        if v["ok"].as_bool() == Some(true) {
            Ok(v)
        } else {
            Err(Error::Slack(v["error"].as_str().unwrap_or("an error it did not name").to_string()))
        }
    }
}

/// Why a request said to come from Slack is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the request's timestamp is missing or more than 5 minutes from now (a replay?)")]
    Stale,
    #[error("the request's signature does not match the signing secret")]
    BadSignature,
}

/// Checks Slack's signature of a request (`X-Slack-Request-Timestamp`, `X-Slack-Signature`) over its raw `body`:
/// `v0=` and the hex HMAC-SHA256, under the app's signing secret, of `v0:{timestamp}:{body}`. The comparison takes
/// the same time wherever the signatures differ.
pub fn verify(secret: &[u8], timestamp: &str, body: &[u8], signature: &str, now: i64) -> Result<(), Refused> {
    let at: i64 = timestamp.parse().map_err(|_| Refused::Stale)?;
    if (now - at).abs() > TOLERANCE {
        return Err(Refused::Stale);
    }
    let expected = sign(secret, timestamp, body);
    if expected.as_bytes().ct_eq(signature.as_bytes()).into() { Ok(()) } else { Err(Refused::BadSignature) }
}

/// The signature Slack sends with `body` at `timestamp` (`v0=…`); also what tests sign their requests with.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// A click on a message's button, as Slack posts it to the interactivity URL (`payload=` JSON, form-encoded).
#[derive(Debug, Clone, Deserialize)]
pub struct Interaction {
    #[serde(rename = "type")]
    pub kind: String,
    pub user: InteractionUser,
    #[serde(default)]
    pub container: Container,
    #[serde(default)]
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InteractionUser {
    pub id: String,
}

/// The message the button was on.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Container {
    #[serde(default)]
    pub channel_id: String,
    #[serde(default)]
    pub message_ts: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Action {
    pub action_id: String,
    #[serde(default)]
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's own example from "Verifying requests from Slack".
    #[test]
    fn slacks_documented_example_verifies() {
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let ts = "1531420618";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(sign(secret, ts, body), signature);
        assert_eq!(verify(secret, ts, body, signature, 1_531_420_618 + 299), Ok(()));
        assert_eq!(verify(secret, ts, body, signature, 1_531_420_618 + 301), Err(Refused::Stale), "a replay");
        assert_eq!(verify(secret, ts, body, signature, 1_531_420_618 - 301), Err(Refused::Stale));
        assert_eq!(verify(b"another secret", ts, body, signature, 1_531_420_618), Err(Refused::BadSignature));
        assert_eq!(verify(secret, ts, b"token=changed", signature, 1_531_420_618), Err(Refused::BadSignature));
        assert_eq!(verify(secret, "soon", body, signature, 1_531_420_618), Err(Refused::Stale));
    }

    #[tokio::test]
    async fn answers_are_read_as_slack_documents_them() {
        use axum::routing::{get, post};
        let app = axum::Router::new()
            .route(
                "/api/users.lookupByEmail",
                get(|q: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
                    axum::Json(if q["email"] == "bob@example.com" {
                        json!({ "ok": true, "user": { "id": "U2" } })
                    } else {
                        json!({ "ok": false, "error": "users_not_found" })
                    })
                }),
            )
            .route(
                "/api/chat.postMessage",
                post(|headers: axum::http::HeaderMap| async move {
                    axum::Json(if headers["authorization"] == "Bearer xoxb-good" {
                        json!({ "ok": true, "channel": "D2", "ts": "1700000000.000100" })
                    } else {
                        json!({ "ok": false, "error": "invalid_auth" })
                    })
                }),
            )
            .route(
                "/api/chat.update",
                post(|| async { (axum::http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", "7")], "") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}/api", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let slack = Slack::new(&api, "xoxb-good".into()).unwrap();
        assert_eq!(slack.lookup_by_email("bob@example.com").await.unwrap(), Some("U2".into()));
        assert_eq!(slack.lookup_by_email("nobody@example.com").await.unwrap(), None);
        let posted = slack.post("U2", None, "hello", None).await.unwrap();
        assert_eq!(posted, Posted { channel: "D2".into(), ts: "1700000000.000100".into() });
        let e = slack.update("D2", &posted.ts, "bye", &json!([])).await.unwrap_err();
        assert!(matches!(e, Error::RateLimited(7)) && e.transient());
        let wrong = Slack::new(&api, "xoxb-bad".into()).unwrap();
        let e = wrong.post("U2", None, "hello", None).await.unwrap_err();
        assert!(matches!(&e, Error::Slack(code) if code == "invalid_auth") && !e.transient(), "{e}");
    }
}
