//! Notifications: turns recorded events, coming grant ends and review campaigns coming due into notifications (the
//! store's `make_notifications`, `warn_of_ends`, `remind_reviewers`), then sends what is due on each channel (email through SMTP, Slack as a
//! direct message from the app's bot), retried with backoff and given up
//! after [`MAX_ATTEMPTS`]. An approver's digest items due together go as one message. Logs name the notification
//! and the person, never an address, a password or a message's text.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cone_core::notify::Channel;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls as SmtpTls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Jitter, backoff, until_due};
use crate::config::{Email, Tls};
use crate::notify::{Facts, Message, digest, message, preferences_url, slack, slack_section};
use crate::state::{AppState, SlackApp};
use crate::store::{Audiences, Db, NotificationRow};

/// How many notifications one pass sends at most.
const BATCH: i64 = 50;
/// Longer than a batch of sends takes, so another replica only takes over from a sender that died.
const LEASE: i64 = 120;
/// Attempts before a notification is given up.
pub const MAX_ATTEMPTS: i64 = 8;
/// A failed send waits at most this long before its next attempt.
const BACKOFF_CAP: i64 = 1800;
/// Sent and failed notifications are kept this long.
const RETENTION: i64 = 30 * 24 * 3600;

/// The channels configured, ready to send.
pub struct Channels {
    email: Option<Mailer>,
    slack: Option<Arc<SlackApp>>,
    /// The console's address, for links.
    console: String,
}

impl Channels {
    /// Reads every channel's secret, so that a missing one stops the server at start.
    pub fn new(config: &crate::config::Notifications, env: impl Fn(&str) -> Option<String>) -> Result<Channels> {
        let email = config.email.as_ref().map(|e| Mailer::new(e, &env)).transpose()?;
        Ok(Channels { email, slack: None, console: String::new() })
    }

    /// Slack messages go through this app.
    pub fn with_slack(mut self, slack: Option<Arc<SlackApp>>) -> Channels {
        self.slack = slack;
        self
    }

    /// Links in messages point into the console at `url`.
    pub fn with_console(mut self, url: &str) -> Channels {
        self.console = url.trim_end_matches('/').to_string();
        self
    }
}

pub fn spawn(s: AppState, channels: Arc<Channels>) {
    tokio::spawn(notify(s, channels));
}

async fn notify(s: AppState, channels: Arc<Channels>) {
    let to = crate::services::notifications::audiences(&s);
    let before = s.config.notifications.expiry_warning;
    let mut pruned_at = 0;
    loop {
        if let Err(e) = notify_once(&s, &channels, &to).await {
            tracing::error!("cannot make or send notifications, retrying shortly: {e:#}");
        }
        if s.now() - pruned_at > 3600 {
            pruned_at = s.now();
            if let Err(e) = s.db.prune_notifications(s.now() - RETENTION).await {
                tracing::warn!("cannot forget old notifications: {e:#}");
            }
        }
        let next = async {
            let sends = s.db.next_notification_due().await?;
            let warnings = s.db.next_warning_due(before, s.config.notifications.review_reminder, s.now()).await?;
            Ok(sends.into_iter().chain(warnings).min())
        };
        let wait = until_due(&s, next.await, "when the next notification is due");
        tokio::select! {
            _ = s.db.news().notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Makes the notifications of new events and coming ends, then sends every one due.
pub async fn notify_once(s: &AppState, channels: &Arc<Channels>, to: &Audiences) -> Result<()> {
    while s.db.make_notifications(to, s.now()).await? > 0 {}
    s.db.warn_of_ends(to, s.config.notifications.expiry_warning, s.now()).await?;
    s.db.remind_reviewers(to, s.config.notifications.review_reminder, s.now()).await?;
    while send_due(&s.db, channels, s.now()).await? as i64 == BATCH {}
    Ok(())
}

/// Claims a batch of due notifications, sends them (a person's digest items on one channel as one message), and
/// records each outcome; returns how many it claimed.
pub async fn send_due(db: &Db, channels: &Arc<Channels>, now: i64) -> Result<usize> {
    let batch = db.claim_notifications(now, LEASE, BATCH).await?;
    let claimed = batch.len();
    // One message per notification, but a person's digest items on one channel together.
    let mut messages: BTreeMap<(i64, i64, &'static str), Vec<NotificationRow>> = BTreeMap::new();
    for n in batch {
        let key = if n.digest == 1 { (n.user_id, 0, n.channel.as_str()) } else { (n.user_id, n.id, "") };
        messages.entry(key).or_default().push(n);
    }
    let mut sends = tokio::task::JoinSet::new();
    for (_, items) in messages {
        let (db, channels) = (db.clone(), channels.clone());
        sends.spawn(async move {
            let sent = channels.send(&items).await;
            record(&db, &items, sent, now).await
        });
    }
    while let Some(done) = sends.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("cannot record a notification's send; it is retried after its lease: {e:#}"),
            Err(e) => tracing::error!("a notification's send stopped unexpectedly; it is retried after its lease: {e}"),
        }
    }
    Ok(claimed)
}

async fn record(db: &Db, items: &[NotificationRow], sent: Result<Option<String>>, now: i64) -> Result<()> {
    let ids: Vec<i64> = items.iter().map(|n| n.id).collect();
    let first = &items[0];
    let (id, user, channel, attempts) = (first.id, first.username.as_str(), first.channel.as_str(), first.attempts);
    let count = |outcome: &'static str| {
        metrics::counter!("cone_notifications_total", "channel" => channel, "outcome" => outcome).increment(1);
    };
    match sent {
        Ok(reference) => {
            count("sent");
            db.record_notification(&ids, "sent", None, reference.as_deref(), now, now).await
        }
        Err(e) => {
            let error = format!("{e:#}");
            // Slack's answers say when trying again cannot help (a wrong token, a person not in Slack).
            let hopeless = e.downcast_ref::<cone_slack::Error>().is_some_and(|e| !e.transient());
            if attempts >= MAX_ATTEMPTS || hopeless {
                count("given_up");
                tracing::error!(notification = id, user, channel, attempts, "notification given up: {error}");
                db.record_notification(&ids, "failed", Some(&error), None, now, now).await
            } else {
                count("retried");
                let delay = backoff(attempts, BACKOFF_CAP, Jitter::Equal);
                tracing::warn!(
                    notification = id,
                    user,
                    channel,
                    attempts,
                    "notification not sent, retrying in {delay} s: {error}"
                );
                db.record_notification(&ids, "pending", Some(&error), None, now + delay, now).await
            }
        }
    }
}

impl Channels {
    /// Sends one message (one notification, or a digest's items) on their channel; `Ok` carries what the channel
    /// calls the message.
    async fn send(&self, items: &[NotificationRow]) -> Result<Option<String>> {
        let first = &items[0];
        let facts = || items.iter().map(NotificationRow::facts).collect::<Vec<Facts>>();
        match first.channel {
            Channel::Email => {
                let m = if first.digest == 1 {
                    digest(&facts(), &self.console)
                } else {
                    message(first.kind, &first.facts(), &first.username, &self.console)
                };
                let mailer = self.email.as_ref().context("email is no longer configured")?;
                mailer.send(first, &m, &self.console).await.map(|()| None)
            }
            Channel::Slack => {
                let app = self.slack.as_ref().context("Slack is no longer configured")?;
                let (text, blocks) = if first.digest == 1 {
                    let m = digest(&facts(), &self.console);
                    (m.subject, slack_section(&m.text))
                } else {
                    slack(first.kind, &first.facts(), &first.username, &self.console)
                };
                // A direct message from the bot to the person Slack knows by this address.
                let Some(person) = app.bot.lookup_by_email(&first.email).await? else {
                    return Err(
                        cone_slack::Error::Slack(format!("users_not_found ({} is not in Slack)", first.email)).into()
                    );
                };
                let posted = app.bot.post(&person, None, &text, Some(&blocks)).await?;
                Ok(Some(format!("{} {}", posted.channel, posted.ts)))
            }
        }
    }
}

/// SMTP connections kept open, and so the most messages sent at once: lettre's pool opens a new connection for each
/// send beyond those idle, and a connection's STARTTLS and AUTH cost more than a message.
const SMTP_CONNECTIONS: usize = 10;

/// Email through the configured SMTP server.
struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// One permit per pooled connection.
    connections: tokio::sync::Semaphore,
    from: Mailbox,
    host: String,
}

impl Mailer {
    fn new(e: &Email, env: &impl Fn(&str) -> Option<String>) -> Result<Mailer> {
        let mut params = TlsParameters::builder(e.host.clone());
        if let Some(path) = &e.ca_file {
            let pem = std::fs::read(path).with_context(|| {
                format!("notifications.email: cannot read `ca_file` {}; check that it exists", path.display())
            })?;
            let cert = Certificate::from_pem(&pem).with_context(|| {
                format!("notifications.email: `ca_file` {} holds no PEM certificate", path.display())
            })?;
            params = params.add_root_certificate(cert);
        }
        let params = || params.clone().build_rustls().context("notifications.email: cannot set up TLS");
        let tls = match e.tls {
            Tls::Starttls => SmtpTls::Required(params()?),
            Tls::Implicit => SmtpTls::Wrapper(params()?),
            Tls::None => SmtpTls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(e.host.clone())
            .port(e.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(20)))
            .pool_config(PoolConfig::new().max_size(SMTP_CONNECTIONS as u32));
        if let Some((user, source)) = &e.login {
            let password = source.read_at_least("notifications.email", env, 1)?;
            let password = String::from_utf8(password.reveal().to_vec())
                .context("notifications.email: the SMTP password is not UTF-8 text")?;
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Mailer {
            transport: builder.build(),
            connections: tokio::sync::Semaphore::new(SMTP_CONNECTIONS),
            from: e.from.clone(),
            host: e.host.clone(),
        })
    }

    /// Sends `m` to `n`'s person: text and HTML alternatives, a Message-ID that stays the same on every attempt (so
    /// a mail system can drop a repeat), and `List-Unsubscribe` to their preferences.
    async fn send(&self, n: &NotificationRow, m: &Message, console: &str) -> Result<()> {
        let to: Mailbox = n.email.parse().with_context(|| format!("{}'s email address is not one", n.username))?;
        let footer = format!("\n--\nChoose what Cone tells you: {}\n", preferences_url(console));
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&m.subject)
            .message_id(Some(format!("<cone-notification-{}@{}>", n.id, self.host)))
            .header(ListUnsubscribe(format!("<{}>", preferences_url(console))))
            .multipart(MultiPart::alternative_plain_html(format!("{}{footer}", m.text), m.html.clone()))
            .context("cannot build the email")?;
        let _connection = self.connections.acquire().await.context("the mailer is closing")?;
        self.transport.send(email).await.map_err(|e| anyhow::anyhow!("the SMTP server refused or failed: {e}"))?;
        Ok(())
    }
}

/// `List-Unsubscribe` (RFC 2369): lettre has no typed header for it.
#[derive(Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(s.to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}
