//! `notifications:`: when grants are warned of, and the channels (email through SMTP) people are told on.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::duration;
use super::secrets::secret_source;
use crate::webhooks::SecretSource;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NotificationsConfig {
    #[serde(default = "default_expiry_warning", with = "duration")]
    expiry_warning: i64,
    #[serde(default)]
    email: Option<EmailConfig>,
}

impl Default for NotificationsConfig {
    fn default() -> NotificationsConfig {
        NotificationsConfig { expiry_warning: default_expiry_warning(), email: None }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailConfig {
    /// `Cone <cone@example.com>`.
    from: String,
    host: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    tls: Tls,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    /// Only to refuse it with a clear message.
    #[serde(default)]
    password: Option<Value>,
    /// PEM certificates to trust beside the system's (a private certificate authority).
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
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
    pub email: Option<Email>,
}

impl Default for Notifications {
    fn default() -> Notifications {
        Notifications { expiry_warning: default_expiry_warning(), email: None }
    }
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
        let email = self.email.map(EmailConfig::compile).transpose()?;
        Ok(Notifications { expiry_warning: self.expiry_warning, email })
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

fn default_expiry_warning() -> i64 {
    15 * 60
}
