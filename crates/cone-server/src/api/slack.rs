//! Slack's interactivity endpoint: a button clicked on a message Cone sent. Slack signs each request; an unsigned,
//! mis-signed or older than five minutes one is refused. The click is answered at once (Slack allows three
//! seconds) and decided after, by `services::slack`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::error::Error;
use crate::services::slack;
use crate::state::AppState;

/// The most a click's request may carry (Slack's payloads are a few kilobytes).
pub const BODY_LIMIT: usize = 64 * 1024;

pub async fn interactivity(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<StatusCode, Error> {
    let Some(app) = s.slack.clone() else {
        return Err(Error::NotFound("Slack is not configured on this server (`notifications.slack`).".into()));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (timestamp, signature) = (header("x-slack-request-timestamp"), header("x-slack-signature"));
    if let Err(e) = cone_slack::verify(app.signing_secret.reveal(), timestamp, &body, signature, s.now()) {
        tracing::warn!("refused a request said to come from Slack: {e}");
        return Err(Error::Unauthenticated(format!("Refused: {e}.")));
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
        .map_err(|_| Error::invalid("Slack's request is not a form; it carries `payload=`."))?;
    let payload = form.into_iter().find(|(k, _)| k == "payload").map(|(_, v)| v).unwrap_or_default();
    let interaction = serde_json::from_str(&payload)
        .map_err(|e| Error::invalid(format!("Slack's payload is not one Cone reads: {e}.")))?;
    tokio::spawn(async move { slack::clicked(&s, &app, interaction).await });
    Ok(StatusCode::OK)
}
