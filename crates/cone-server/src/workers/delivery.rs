//! Webhook deliveries: claimed from the outbox, sent signed, retried with backoff, given up after the webhook's
//! `max_attempts`. Logs name the webhook and the delivery, never the URL or the secret.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{Jitter, backoff, until_due};
use crate::state::AppState;
use crate::store::DeliveryState::{Delivered, Failed, Pending};
use crate::store::{Db, DeliveryRow};
use crate::webhooks::{HEADER_ATTEMPT, HEADER_EVENT, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Secret, signature};

/// How many webhook deliveries one worker attempts at once.
const DELIVERY_BATCH: i64 = 8;
/// How long a claimed delivery stays this worker's: longer than a batch of attempts takes (each times out after
/// 10 s), so another replica only takes over from a worker that died.
const DELIVERY_LEASE: i64 = 60;
/// Delivered and failed deliveries are kept this long (the audit log keeps the events for good).
const DELIVERY_RETENTION: i64 = 30 * 24 * 3600;
/// A failed delivery waits at most an hour before its next attempt.
const WEBHOOK_BACKOFF_CAP: i64 = 3600;
/// A receiver gets this long to answer an attempt.
const TIMEOUT: Duration = Duration::from_secs(10);

pub fn spawn(s: AppState, sender: Arc<Sender>) {
    tokio::spawn(deliver(s, sender));
}

/// Sends due webhook deliveries, then sleeps until the next is due, or until a committed change queues one.
async fn deliver(s: AppState, sender: Arc<Sender>) {
    let mut pruned_at = 0;
    loop {
        loop {
            match deliver_due(&s.db, &sender, s.now()).await {
                Ok(n) if n as i64 == DELIVERY_BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!("cannot send webhook deliveries, retrying shortly: {e:#}");
                    break;
                }
            }
        }
        if s.now() - pruned_at > 3600 {
            pruned_at = s.now();
            if let Err(e) = s.db.prune_deliveries(s.now() - DELIVERY_RETENTION).await {
                tracing::warn!("cannot forget old webhook deliveries: {e:#}");
            }
        }
        let wait = until_due(&s, s.db.next_delivery_due().await, "when the next webhook delivery is due");
        tokio::select! {
            _ = s.db.deliveries_queued().notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Claims a batch of due deliveries, attempts them side by side, and records each outcome; returns how many it
/// claimed.
pub async fn deliver_due(db: &Db, sender: &Arc<Sender>, now: i64) -> anyhow::Result<usize> {
    let batch = db.claim_deliveries(now, DELIVERY_LEASE, DELIVERY_BATCH).await?;
    let claimed = batch.len();
    let mut attempts = tokio::task::JoinSet::new();
    for d in batch {
        let (db, sender) = (db.clone(), sender.clone());
        attempts.spawn(async move {
            let attempt = sender.send(&d, now).await;
            record_attempt(&db, &sender, &d, attempt, now).await
        });
    }
    while let Some(done) = attempts.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("cannot record a webhook attempt; it is retried after its lease: {e:#}"),
            Err(e) => tracing::error!("a webhook attempt stopped unexpectedly; it is retried after its lease: {e}"),
        }
    }
    Ok(claimed)
}

/// Marks the delivery delivered, or schedules it again with backoff, or gives up after the webhook's
/// `max_attempts`. Logs name the webhook and the delivery, never the URL or the secret.
async fn record_attempt(db: &Db, sender: &Sender, d: &DeliveryRow, attempt: Attempt, now: i64) -> anyhow::Result<()> {
    let (webhook, delivery, event) = (d.webhook.as_str(), d.delivery_id.as_str(), d.event.as_str());
    match attempt {
        Attempt::Delivered(status) => db.record_delivery(d.id, Delivered, Some(status), None, now, now).await,
        Attempt::Unconfigured => {
            tracing::error!(
                webhook,
                delivery,
                event,
                "webhook delivery dropped: no webhook of this name is configured any more"
            );
            let error = "the webhook is no longer configured";
            db.record_delivery(d.id, Failed, None, Some(error), now, now).await
        }
        Attempt::Failed { status, error } => {
            let max = sender.target(webhook).map_or(1, |t| t.max_attempts);
            if d.attempts >= max {
                tracing::error!(
                    webhook,
                    delivery,
                    event,
                    attempts = d.attempts,
                    "webhook delivery failed for good: {error}; the receiver can read the event from \
                     GET /api/v1/audit"
                );
                db.record_delivery(d.id, Failed, status, Some(&error), now, now).await
            } else {
                let delay = backoff(d.attempts, WEBHOOK_BACKOFF_CAP, Jitter::Equal);
                tracing::warn!(
                    webhook,
                    delivery,
                    event,
                    attempts = d.attempts,
                    "webhook delivery failed, retrying in {delay} s: {error}"
                );
                db.record_delivery(d.id, Pending, status, Some(&error), now + delay, now).await
            }
        }
    }
}

/// A configured webhook, ready to send to.
pub struct Target {
    pub url: reqwest::Url,
    secret: Secret,
    pub max_attempts: i64,
}

/// How one attempt went.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered 2xx.
    Delivered(u16),
    /// It answered something else, or could not be reached (`status` is `None`); worth trying again.
    Failed { status: Option<u16>, error: String },
    /// The delivery names a webhook the configuration no longer has.
    Unconfigured,
}

/// Sends deliveries to the configured webhooks.
pub struct Sender {
    http: reqwest::Client,
    targets: HashMap<String, Target>,
}

impl Sender {
    /// Reads every webhook's secret (from the environment through `env`, or from its file), so that a missing one
    /// stops the server at start rather than failing each delivery.
    pub fn new(webhooks: &[crate::config::Webhook], env: impl Fn(&str) -> Option<String>) -> Result<Sender> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            // A redirect is an answer to report, not to follow with the signed body.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cone-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot create the HTTP client for webhooks")?;
        let mut targets = HashMap::new();
        for w in webhooks {
            let secret = w.secret.read(&format!("webhook \"{}\"", w.name), &env)?;
            targets.insert(w.name.clone(), Target { url: w.url.clone(), secret, max_attempts: w.max_attempts });
        }
        Ok(Sender { http, targets })
    }

    pub fn target(&self, webhook: &str) -> Option<&Target> {
        self.targets.get(webhook)
    }

    /// One attempt at `d`, signed at `timestamp`. Errors never carry the URL (it may hold a token) or the secret.
    pub async fn send(&self, d: &DeliveryRow, timestamp: i64) -> Attempt {
        let Some(target) = self.targets.get(&d.webhook) else { return Attempt::Unconfigured };
        let signature = signature(target.secret.reveal(), timestamp, &d.body);
        let sent = self
            .http
            .post(target.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_ID, &d.delivery_id)
            .header(HEADER_EVENT, &d.event)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, format!("sha256={signature}"))
            .header(HEADER_ATTEMPT, d.attempts.to_string())
            .body(d.body.clone())
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => Attempt::Delivered(resp.status().as_u16()),
            Ok(resp) => {
                let status = resp.status();
                Attempt::Failed { status: Some(status.as_u16()), error: format!("the receiver answered {status}") }
            }
            Err(e) => {
                let what = if e.is_timeout() {
                    format!("no answer within {TIMEOUT:?}")
                } else if e.is_connect() {
                    "cannot connect to the receiver".to_string()
                } else {
                    "the request failed".to_string()
                };
                Attempt::Failed { status: None, error: format!("{what}: {:#}", anyhow::Error::new(e.without_url())) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use hmac::{Hmac, Mac};

    use super::Sender;
    use crate::config::Webhook;
    use crate::store::{Db, record as audit};
    use crate::webhooks::SecretSource;

    crate::store::testing::on_both_backends!(webhooks_are_signed_retried_and_given_up);

    /// What a receiver got: (path, headers, body).
    type Received = Arc<Mutex<Vec<(String, HeaderMap, String)>>>;

    /// `/ok` fails its first two requests, then accepts; `/down` always fails.
    async fn receive(
        State(got): State<Received>,
        Path(path): Path<String>,
        headers: HeaderMap,
        body: String,
    ) -> StatusCode {
        let mut got = got.lock().unwrap();
        got.push((path.clone(), headers, body));
        let tries = got.iter().filter(|r| r.0 == path).count();
        if path == "ok" && tries > 2 { StatusCode::NO_CONTENT } else { StatusCode::SERVICE_UNAVAILABLE }
    }

    async fn webhooks_are_signed_retried_and_given_up(db: Db) {
        let got = Received::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/{path}", axum::routing::post(receive)).with_state(got.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let hook = |name: &str, events: &str, max_attempts| Webhook {
            name: name.into(),
            url: reqwest::Url::parse(&format!("http://{addr}/{name}")).unwrap(),
            secret: SecretSource::Env(format!("{name}_SECRET")),
            events: vec![events.into()],
            max_attempts,
        };
        let hooks = [hook("ok", "*", 5), hook("down", "grant.*", 3)];
        let secret = |name: &str| Some(format!("{name}-0123456789abcdef"));
        let sender = Arc::new(Sender::new(&hooks, secret).unwrap());
        let db = db.with_webhooks(hooks.iter().map(|w| (w.name.clone(), w.events.clone())).collect());
        let mut tx = db.begin().await.unwrap();
        audit(&mut tx, 1000, "worker", "grant.activate", "task:3", "{}").await.unwrap();
        tx.commit().await.unwrap();

        // Far enough apart for any backoff; each round attempts what is due.
        let mut now = 1000;
        for _ in 0..8 {
            super::deliver_due(&db, &sender, now).await.unwrap();
            now += 4000;
        }
        let got = got.lock().unwrap().clone();
        let tries = |path: &str| got.iter().filter(|r| r.0 == path).collect::<Vec<_>>();
        assert_eq!(tries("ok").len(), 3, "two failures, then delivered, then nothing more");
        assert_eq!(tries("down").len(), 3, "given up after max_attempts");

        for (path, headers, body) in &got {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            let timestamp = header("cone-webhook-timestamp");
            let mut mac =
                Hmac::<sha2::Sha256>::new_from_slice(format!("{path}_SECRET-0123456789abcdef").as_bytes()).unwrap();
            mac.update(format!("{timestamp}.{body}").as_bytes());
            let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            assert_eq!(header("cone-webhook-signature"), expected, "signed with {path}'s secret");
            assert_eq!(header("cone-webhook-event"), "grant.activate");
            assert_eq!(header("content-type"), "application/json");
            let payload: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(payload["id"], header("cone-webhook-id"), "the body names the delivery");
            assert_eq!(payload["event"], "grant.activate");
        }
        // Every attempt of a delivery carries its id and the same body; attempts count up; timestamps are fresh.
        for path in ["ok", "down"] {
            let attempts = tries(path);
            let header = |i: usize, name: &str| attempts[i].1.get(name).unwrap().to_str().unwrap().to_string();
            assert!(attempts.iter().all(|a| a.2 == attempts[0].2));
            assert!((0..3).all(|i| header(i, "cone-webhook-id") == header(0, "cone-webhook-id")));
            assert_eq!((0..3).map(|i| header(i, "cone-webhook-attempt")).collect::<Vec<_>>(), ["1", "2", "3"]);
            assert_ne!(header(0, "cone-webhook-timestamp"), header(1, "cone-webhook-timestamp"));
        }
        assert_ne!(tries("ok")[0].1.get("cone-webhook-id"), tries("down")[0].1.get("cone-webhook-id"));
        let states: Vec<(String, String, i64, Option<i64>)> =
            sqlx::query_as("SELECT webhook, state, attempts, last_status FROM webhook_deliveries ORDER BY webhook")
                .fetch_all(db.pool())
                .await
                .unwrap();
        assert_eq!(
            states,
            [("down".into(), "failed".into(), 3, Some(503)), ("ok".into(), "delivered".into(), 3, Some(204))]
        );
    }
}
