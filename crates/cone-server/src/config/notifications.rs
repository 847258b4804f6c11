//! `notifications:`: when grants are warned of and reviewers reminded, and the channels (email through SMTP) people are told on.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::duration;
use super::secrets::secret_source;
use crate::webhooks::SecretSource;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NotificationsConfig {
    /// How long before a grant ends its holder is warned (1m to 7d).
    #[serde(default = "default_expiry_warning", with = "duration")]
    #[schemars(with = "super::Duration")]
    expiry_warning: i64,
    /// How long before a review campaign is due its reviewers with items left are reminded (1h to 30d).
    #[serde(default = "default_review_reminder", with = "duration")]
    #[schemars(with = "super::Duration")]
    review_reminder: i64,
    /// Email through an SMTP server; without it, nobody is emailed.
    #[serde(default)]
    email: Option<EmailConfig>,
    /// A Slack app that tells people in direct messages and takes approvers' decisions from buttons; without it,
    /// nothing goes to Slack.
    #[serde(default)]
    slack: Option<SlackConfig>,
}

impl Default for NotificationsConfig {
    fn default() -> NotificationsConfig {
        NotificationsConfig {
            expiry_warning: default_expiry_warning(),
            review_reminder: default_review_reminder(),
            email: None,
            slack: None,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SlackConfig {
    /// The environment variable holding the app's bot token (`xoxb-…`); this or `bot_token_file`.
    #[serde(default)]
    bot_token_env: Option<String>,
    /// The file holding the app's bot token.
    #[serde(default)]
    bot_token_file: Option<PathBuf>,
    /// Only to refuse it with a clear message.
    #[serde(default)]
    #[schemars(skip)]
    bot_token: Option<Value>,
    /// The environment variable holding the app's signing secret, which proves Slack's requests; this or
    /// `signing_secret_file`.
    #[serde(default)]
    signing_secret_env: Option<String>,
    /// The file holding the app's signing secret.
    #[serde(default)]
    signing_secret_file: Option<PathBuf>,
    /// Only to refuse it with a clear message.
    #[serde(default)]
    #[schemars(skip)]
    signing_secret: Option<Value>,
    /// Slack's Web API; another address only for a stand-in.
    #[serde(default = "default_slack_api")]
    api_url: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EmailConfig {
    /// The sender, such as `Cone <cone@example.com>`.
    from: String,
    /// The SMTP server's host name.
    host: String,
    /// The SMTP server's port; 587 with `tls: starttls`, 465 with `implicit`, 25 with `none` when absent.
    #[serde(default)]
    port: Option<u16>,
    /// How the connection to the SMTP server is protected.
    #[serde(default)]
    tls: Tls,
    /// The user to sign in to the SMTP server as, when it asks; then also `password_env` or `password_file`.
    #[serde(default)]
    username: Option<String>,
    /// The environment variable holding the SMTP password.
    #[serde(default)]
    password_env: Option<String>,
    /// The file holding the SMTP password.
    #[serde(default)]
    password_file: Option<PathBuf>,
    /// Only to refuse it with a clear message.
    #[serde(default)]
    #[schemars(skip)]
    password: Option<Value>,
    /// PEM certificates to trust beside the system's (a private certificate authority).
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tls {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only for a relay on the same host.
    None,
}

/// The checked `notifications:` section.
#[derive(Debug, Clone)]
pub struct Notifications {
    /// Seconds before a grant's end its holder is warned.
    pub expiry_warning: i64,
    /// Seconds before a review campaign is due its reviewers with items left are reminded.
    pub review_reminder: i64,
    pub email: Option<Email>,
    pub slack: Option<Slack>,
}

impl Default for Notifications {
    fn default() -> Notifications {
        Notifications {
            expiry_warning: default_expiry_warning(),
            review_reminder: default_review_reminder(),
            email: None,
            slack: None,
        }
    }
}

/// A Slack app: its bot token posts, its signing secret proves Slack's requests. Both are read at start.
#[derive(Debug, Clone)]
pub struct Slack {
    pub bot_token: SecretSource,
    pub signing_secret: SecretSource,
    pub api_url: String,
}

/// Email through an SMTP server. The password is read when the server starts (`workers::notify`).
#[derive(Debug, Clone)]
pub struct Email {
    pub from: lettre::message::Mailbox,
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    /// The user name and where its password comes from, when the server asks for authentication.
    pub login: Option<(String, SecretSource)>,
    pub ca_file: Option<PathBuf>,
}

impl NotificationsConfig {
    pub(super) fn compile(self) -> Result<Notifications> {
        if !(60..=7 * 24 * 3600).contains(&self.expiry_warning) {
            bail!("notifications: `expiry_warning` must be between 1m and 7d");
        }
        if !(3600..=30 * 24 * 3600).contains(&self.review_reminder) {
            bail!("notifications: `review_reminder` must be between 1h and 30d");
        }
        let email = self.email.map(EmailConfig::compile).transpose()?;
        let slack = self.slack.map(SlackConfig::compile).transpose()?;
        Ok(Notifications { expiry_warning: self.expiry_warning, review_reminder: self.review_reminder, email, slack })
    }
}

impl EmailConfig {
    fn compile(self) -> Result<Email> {
        let from = self.from.parse().with_context(|| {
            format!("notifications.email: `from: {}` is not an address; write `Cone <cone@example.com>`", self.from)
        })?;
        if self.host.is_empty() {
            bail!("notifications.email: `host` names no SMTP server");
        }
        let inline = self.password.is_some();
        let login = match (self.username, inline || self.password_env.is_some() || self.password_file.is_some()) {
            (Some(user), _) => Some((
                user,
                secret_source(
                    "notifications.email",
                    "password",
                    "smtp",
                    inline,
                    self.password_env,
                    self.password_file,
                )?,
            )),
            (None, true) => bail!("notifications.email: a password needs a `username`"),
            (None, false) => None,
        };
        if login.is_some() && self.tls == Tls::None {
            bail!("notifications.email: a password is never sent without TLS; use `tls: starttls` or `tls: implicit`");
        }
        let port = self.port.unwrap_or(match self.tls {
            Tls::Starttls => 587,
            Tls::Implicit => 465,
            Tls::None => 25,
        });
        Ok(Email { from, host: self.host, port, tls: self.tls, login, ca_file: self.ca_file })
    }
}

impl SlackConfig {
    fn compile(self) -> Result<Slack> {
        let owner = "notifications.slack";
        let bot_token = secret_source(
            owner,
            "bot_token",
            "slack-bot",
            self.bot_token.is_some(),
            self.bot_token_env,
            self.bot_token_file,
        )?;
        let signing_secret = secret_source(
            owner,
            "signing_secret",
            "slack-signing",
            self.signing_secret.is_some(),
            self.signing_secret_env,
            self.signing_secret_file,
        )?;
        let url = reqwest::Url::parse(&self.api_url).ok().filter(|u| ["http", "https"].contains(&u.scheme()));
        if url.is_none() {
            bail!("{owner}: `api_url: {}` is not an http(s) URL; leave it out for Slack itself", self.api_url);
        }
        Ok(Slack { bot_token, signing_secret, api_url: self.api_url })
    }
}

fn default_slack_api() -> String {
    "https://slack.com/api/".into()
}

fn default_expiry_warning() -> i64 {
    15 * 60
}

fn default_review_reminder() -> i64 {
    24 * 3600
}
